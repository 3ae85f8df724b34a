import Foundation
import Prometheus

/// Steward's own Prometheus metrics: traffic, errors and latency per route, plus gauges filled at scrape time.
public final class HTTPMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "steward", metricName: "http_requests", unitName: "total", helpText: "HTTP requests handled, by route template and status")
    }
    static var latency: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "steward", metricName: "http_request_duration", unitName: "seconds",
            helpText: "Time from request head to response head, by route template")
    }
    static var jobs: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "steward", metricName: "jobs", unitName: "", helpText: "Jobs currently stored, by state")
    }
    static var databaseSize: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "steward", metricName: "database_size", unitName: "bytes", helpText: "Size of the SQLite database including its WAL")
    }

    public init() {
        registry.makeGauge(
            descriptor: .init(namespace: "steward", metricName: "build_info", unitName: "", helpText: "Steward version running"),
            labels: [("version", StewardVersion.current)]
        ).set(to: 1.0)
        registry.makeGauge(
            descriptor: .init(namespace: "steward", metricName: "start_time", unitName: "seconds", helpText: "Unix time the process started")
        )
        .set(to: Date().timeIntervalSince1970)
    }

    func record(method: String, route: String, status: Int, duration: Duration) {
        registry.makeCounter(descriptor: Self.requests, labels: [("method", method), ("route", route), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: Self.latency, labels: [("method", method), ("route", route)], buckets: latencyBuckets)
            .record(duration)
    }

    func setJobs(_ counts: [Job.State: Int]) {
        for state in Job.State.allCases {
            registry.makeGauge(descriptor: Self.jobs, labels: [("state", state.rawValue)]).set(to: Double(counts[state] ?? 0))
        }
    }

    func setDatabaseSize(_ bytes: Int64) {
        registry.makeGauge(descriptor: Self.databaseSize).set(to: Double(bytes))
    }
}
