import Foundation
import Prometheus

/// Steward's own Prometheus metrics: traffic, errors and latency per route, plus gauges filled at scrape time.
public final class HTTPMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    public init() {
        registry.makeGauge(name: "steward_build_info", labels: [("version", StewardVersion.current)], help: "Steward version running").set(to: 1.0)
        registry.makeGauge(name: "steward_start_time_seconds", help: "Unix time the process started").set(to: Date().timeIntervalSince1970)
    }

    func record(method: String, route: String, status: Int, duration: Duration) {
        registry.makeCounter(
            name: "steward_http_requests_total", labels: [("method", method), ("route", route), ("status", String(status))],
            help: "HTTP requests handled, by route template and status"
        ).increment()
        registry.makeDurationHistogram(
            name: "steward_http_request_duration_seconds", labels: [("method", method), ("route", route)], buckets: latencyBuckets,
            help: "Time from request head to response head, by route template"
        ).record(duration)
    }

    func setJobs(_ counts: [Job.State: Int]) {
        for state in Job.State.allCases {
            registry.makeGauge(name: "steward_jobs", labels: [("state", state.rawValue)], help: "Jobs currently stored, by state")
                .set(to: Double(counts[state] ?? 0))
        }
    }

    func setDatabaseSize(_ bytes: Int64) {
        registry.makeGauge(name: "steward_database_size_bytes", help: "Size of the SQLite database including its WAL").set(to: Double(bytes))
    }
}
