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

    /// Log lines that could not be written (stderr on a full disk, a closed pipe): skipped and counted here.
    func setLogFailures(_ lines: Int) {
        registry.makeGauge(
            descriptor: .init(
                namespace: "steward", metricName: "log_write_failures", unitName: "",
                helpText: "Log lines that could not be written to standard error since start, and were skipped")
        ).set(to: Double(lines))
    }

    /// The data directory's file system: free bytes, and writes refused for want of space since start.
    func setDisk(free: Int64?, fullErrors: Int) {
        if let free {
            registry.makeGauge(
                descriptor: .init(
                    namespace: "steward", metricName: "data_disk_free", unitName: "bytes", helpText: "Free bytes on the data directory's file system")
            ).set(to: Double(free))
        }
        registry.makeGauge(
            descriptor: .init(
                namespace: "steward", metricName: "disk_full_errors", unitName: "",
                helpText: "Requests whose write failed because the data directory's disk was full, since start")
        ).set(to: Double(fullErrors))
    }

    /// Overload figures: requests turned away per route class (by the gates and on the network thread), and anonymous
    /// health checks answered on the network thread (which have no log line or request sample of their own).
    func setShedding(_ shedding: LoadShedding) {
        for (kind, gate) in shedding.gates {
            let figures = gate.figures
            registry.makeGauge(
                descriptor: .init(
                    namespace: "steward", metricName: "requests_shed", unitName: "",
                    helpText: "Requests a route class's gate turned away (503) since start, after queueing or at once"),
                labels: [("class", kind.rawValue)]
            ).set(to: Double(figures.shed))
            registry.makeGauge(
                descriptor: .init(
                    namespace: "steward", metricName: "requests_in_flight", unitName: "", helpText: "Requests holding a place, by route class"),
                labels: [("class", kind.rawValue)]
            ).set(to: Double(figures.active))
        }
        let fast = shedding.figures
        registry.makeGauge(
            descriptor: .init(
                namespace: "steward", metricName: "requests_shed_early", unitName: "",
                helpText: "Requests turned away (503) on the network thread while their class was full, since start")
        ).set(to: Double(fast.shed))
        registry.makeGauge(
            descriptor: .init(
                namespace: "steward", metricName: "health_checks_fast", unitName: "",
                helpText: "Anonymous GET /healthz answered on the network thread, since start")
        ).set(to: Double(fast.health))
        registry.makeGauge(
            descriptor: .init(
                namespace: "steward", metricName: "connection_reads_held", unitName: "",
                helpText:
                    "Times a keep-alive connection's reading was held after an answer on the network thread (after a 503 until its Retry-After, after a health check for 100 ms), since start"
            )
        ).set(to: Double(fast.paced))
    }

    func setDatabaseSize(_ bytes: Int64) {
        registry.makeGauge(descriptor: Self.databaseSize).set(to: Double(bytes))
    }

    /// The metric store's own figures: how many series it holds, samples refused as out of order, and what the
    /// last collection round appended.
    func setMetricStore(series: Int, outOfOrder: Int, lastRound: (time: Int64, samples: Int, flushed: Int)) {
        registry.makeGauge(descriptor: .init(namespace: "steward", metricName: "metric_series", unitName: "", helpText: "Series in the metric store"))
            .set(to: Double(series))
        registry.makeGauge(
            descriptor: .init(
                namespace: "steward", metricName: "metric_samples_out_of_order", unitName: "",
                helpText: "Samples dropped since start because they were not newer than their series' last sample")
        ).set(to: Double(outOfOrder))
        registry.makeGauge(
            descriptor: .init(
                namespace: "steward", metricName: "metric_collection_samples", unitName: "", helpText: "Samples the last collection round appended")
        ).set(to: Double(lastRound.samples))
        registry.makeGauge(
            descriptor: .init(
                namespace: "steward", metricName: "metric_collection_time", unitName: "seconds", helpText: "Unix time of the last collection round")
        ).set(to: Double(lastRound.time) / 1000)
    }

    /// Remote write, per endpoint: how far behind it is and what became of the samples (totals kept in the database,
    /// so they survive restarts).
    func setRemoteWrite(_ statuses: [RemoteWriteStatus]) {
        func gauge(_ name: String, _ unit: String, _ help: String, _ endpoint: String, _ value: Double) {
            registry.makeGauge(
                descriptor: .init(namespace: "steward", metricName: "remote_write_" + name, unitName: unit, helpText: help),
                labels: [("endpoint", endpoint)]
            ).set(to: value)
        }
        for status in statuses {
            let name = status.endpoint.name
            gauge("lag", "seconds", "Age of the oldest sample the endpoint has not accepted yet (0 when it has them all)", name, status.lagSeconds)
            gauge("pending_samples", "", "Samples queued for the endpoint", name, Double(status.pendingSamples))
            gauge("samples_sent", "", "Samples the endpoint accepted", name, Double(status.endpoint.samplesSent))
            gauge(
                "samples_rejected", "", "Samples the endpoint refused with a 4xx other than 429 (not sent again)", name,
                Double(status.endpoint.samplesRejected))
            gauge(
                "samples_dropped", "", "Samples dropped because the endpoint had not taken them within the backlog limit", name,
                Double(status.endpoint.samplesDropped))
            gauge(
                "requests_retried", "", "Requests that failed with 5xx, 429 or a network error and were retried", name,
                Double(status.endpoint.requestsRetried))
            gauge("enabled", "", "1 while the endpoint is enabled", name, status.endpoint.enabled ? 1 : 0)
        }
    }
}
