import Foundation
import Synchronization
import Testing

@testable import StewardKit

/// The project's rule files (PrometheusRulesTests.packShapes, and copies with low thresholds that fire here) run for
/// over three minutes in a real Prometheus 2.42 and in Steward, both scraping the same real node_exporter.
///
/// Both read it through a small proxy that fetches node_exporter every 10 s and writes that moment as every sample's
/// timestamp, which both store as given: they then hold the same samples, and a difference is the engines', not the
/// moments at which each happened to scrape. Prometheus drops the series Steward does not collect (pseudo
/// filesystems, the loopback device), as its metric_relabel_configs can.
@Suite("Rules: Steward and a real Prometheus agree on the same node_exporter")
struct RuleDifferentialTests {
    /// Copies of the packs' shapes with thresholds this machine crosses, so that rules fire in both.
    static let firingCopies = #"""
        groups:
          - name: low-thresholds
            rules:
              - alert: MemoryUsedCopy
                expr: (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 100) * on(instance) group_left (nodename) node_uname_info{nodename=~".+"}
                for: 0m
                labels: {severity: warning}
                annotations: {summary: "{{ $labels.nodename }} {{ $value | humanize }}"}
              - alert: FilesystemCopy
                expr: node_filesystem_avail_bytes{fstype!=""} / node_filesystem_size_bytes{fstype!=""} * 100 < 101 and node_filesystem_readonly{fstype!=""} == 0
                labels: {severity: critical}
              - alert: CpuCopy
                expr: 1 - avg without (cpu) (rate(node_cpu_seconds_total{mode="idle"}[1m])) > -1
                labels: {severity: warning}
              - alert: CpuCopy
                expr: 1 - avg without (cpu) (rate(node_cpu_seconds_total{mode="idle"}[1m])) > 2
                labels: {severity: critical}
              - alert: ContextSwitchesCopy
                expr: rate(node_context_switches_total[1m]) > 1
                labels: {severity: warning}
              - alert: RegexCopy
                expr: count without (cpu, mode) (node_cpu_seconds_total{mode!~"idle|iowait", cpu=~"0|1"}) > 0
                labels: {severity: warning}
              - alert: PredictCopy
                expr: predict_linear(node_filesystem_avail_bytes{fstype!=""}[6h], 4*3600) > 0
                labels: {severity: warning}
              - alert: UnlessCopy
                expr: node_load1 >= 0 unless on (instance) node_memory_MemTotal_bytes < 0
                labels: {severity: critical}
              - alert: QuietCopy
                expr: node_memory_MemTotal_bytes < 0
                labels: {severity: warning}
        """#

    /// Serves node_exporter's text with the time of each 10-second fetch written into every sample. It answers 503
    /// until the file `go` exists, so neither side holds a first fetch the other started too late to see.
    static let proxy = #"""
        import http.server, os, sys, threading, time, urllib.request
        upstream, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        body = [b""]
        def refresh():
            while not os.path.exists(go):
                time.sleep(0.05)
            time.sleep(10.05 - time.time() % 10)
            while True:
                stamp = int(time.time() // 10 * 10 * 1000)
                text = urllib.request.urlopen(upstream, timeout=5).read().decode()
                lines = [line + " " + str(stamp) if line and not line.startswith("#") else line for line in text.split("\n")]
                body[0] = "\n".join(lines).encode()
                time.sleep(10.05 - time.time() % 10)
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if not body[0]:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body[0])
            def log_message(self, *args):
                pass
        threading.Thread(target=refresh, daemon=True).start()
        http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """#

    final class Clock: Sendable {
        let now = Mutex(Date())
        func set(_ milliseconds: Int64) { now.withLock { $0 = EpochMilliseconds.date(milliseconds) } }
    }

    @Test("over three minutes: the same severity for every rule at every comparison, values within 1 %, the same rules firing")
    func agreeOverThreeMinutes() async throws {
        guard RealPrometheus.installed else {
            Issue.record("Debian's prometheus is not installed (make test installs it)")
            return
        }
        let directory = TemporaryDirectory()
        let exporter = try NodeExporter()
        _ = try await exporter.ready()
        let proxyPort = try SyslogTests.freePort()
        try Self.proxy.write(toFile: directory.path + "/proxy.py", atomically: true, encoding: .utf8)
        let go = directory.path + "/go"
        let proxy = try PythonChild([directory.path + "/proxy.py", exporter.url, String(proxyPort), go])
        defer { proxy.stop() }
        let files = [PrometheusRulesTests.packShapes, Self.firingCopies]
        for (index, text) in files.enumerated() { try text.write(toFile: directory.path + "/rules\(index).yml", atomically: true, encoding: .utf8) }
        let pseudo = ProcCollector.pseudoFilesystems.sorted().joined(separator: "|")
        let config = """
            global: {scrape_interval: 2s, evaluation_interval: 5s}
            rule_files: ['\(directory.path)/rules0.yml', '\(directory.path)/rules1.yml']
            scrape_configs:
              - job_name: node
                static_configs: [{targets: ['127.0.0.1:\(proxyPort)'], labels: {host: node-a}}]
                relabel_configs: [{target_label: instance, replacement: node-a}]
                metric_relabel_configs:
                  - {source_labels: [fstype], regex: '\(pseudo)', action: drop}
                  - {source_labels: [fstype, mountpoint], regex: 'overlay;(/.+|[^/].*)', action: drop}
                  - {source_labels: [__name__, device], regex: 'node_network_.+;lo', action: drop}
            """
        let prometheus = try RealPrometheus(directory: directory.path, config: config)
        defer { prometheus.stop() }

        // Steward: the same host name, collecting everything from the proxy.
        let database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        var settings = HostSettings()
        settings.name = "node-a"
        settings.address = "127.0.0.1"
        settings.metricsURL = "http://127.0.0.1:\(proxyPort)/metrics"
        settings.metricsAllow = "*"
        let host = try hosts.create(settings, by: AuditActor(actor: "t"), now: Date())
        let metrics = try MetricStore(database: database)
        let collector = MetricCollector(store: metrics, hosts: hosts, intervalSeconds: 2, timeoutSeconds: 5, logger: quietLogger)
        let clock = Clock()
        let store = AlertRuleStore(database: database)
        var rules: [AlertRule] = []
        for text in files {
            let imported = PrometheusImport.parse(text)
            #expect(imported.failures.isEmpty, "\(imported.failures)")
            for rule in imported.rules { rules.append(try store.create(rule, by: AuditActor(actor: "t"), now: Date())) }
        }
        let evaluator = try AlertEvaluator(
            database: database, hosts: hosts, metrics: metrics, sources: [], intervalSeconds: 5, logger: quietLogger,
            clock: { clock.now.withLock { $0 } })
        let helper = PromQLTests()
        let ready = try await waitUntil { (try? helper.get(prometheus.port, "/-/ready")) != nil }
        #expect(ready)

        // Steward collects every 2 s and evaluates every 2 s on its own, as its two services do, while the comparisons
        // run. Collecting apart from evaluating keeps a slow evaluation (a loaded CI machine) from missing a fetch.
        let firing = Mutex<Set<String>>([])
        let ruleList = rules
        let collecting = Task {
            while !Task.isCancelled {
                _ = try? await collector.collect(at: EpochMilliseconds.from(Date()))
                try? await Task.sleep(for: .seconds(2))
            }
        }
        defer { collecting.cancel() }
        let background = Task {
            while !Task.isCancelled {
                clock.set(EpochMilliseconds.from(Date()))
                _ = try? await evaluator.evaluate()
                for rule in ruleList where evaluator.state(rule: rule.id, host: host.id)?.phase == .firing {
                    firing.withLock { _ = $0.insert(rule.name) }
                }
                try? await Task.sleep(for: .seconds(2))
            }
        }
        defer { background.cancel() }
        // Both scrape every 2 s from now on; the proxy's first fetch comes at the next 10-second boundary.
        try Data().write(to: URL(fileURLWithPath: go))
        let started = ContinuousClock.now
        var compared = 0
        var moments = 0
        var skipped: [String] = []
        try await Task.sleep(for: .seconds(40))
        while ContinuousClock.now - started < .seconds(185) {
            // A moment both should hold the same samples for: just before the proxy's latest fetch.
            let at = EpochMilliseconds.from(Date()) / 10_000 * 10_000 - 1
            let source = MetricStoreSource(store: metrics, hostNames: [host.id: "node-a"])
            // A scrape either side can still fail on a loaded machine and leave one without a fetch the other has.
            // Such a moment compares samples, not engines: it is skipped and named, and most moments must remain.
            let held = Self.heldSamples
            var ours: Double?
            if case .vector(let samples) = try PromQL.query(PromQL.parse(held), source: source, at: at) { ours = samples.first?.value }
            let theirs = try Self.vector(helper, prometheus.port, held, at: at).first?.value
            moments += 1
            if ours != theirs {
                skipped.append("\(at): Steward holds \(String(describing: ours)) samples, Prometheus \(String(describing: theirs))")
            } else {
                for rule in rules {
                    let ours = try PromQLRule.evaluate(rule, source: source, hosts: ["node-a"], at: at)["node-a"] ?? []
                    let (observation, _) = PromQLRule.observe(rule, samples: ours)
                    var ourSeverity: AlertState.Severity?
                    if case .value(let value) = observation { ourSeverity = AlertStateMachine.severity(of: value, rule: rule, current: nil) }
                    var theirSeverity: AlertState.Severity?
                    for (severity, _, expr) in PrometheusRules.alertExpressions(rule)
                    where !(try Self.vector(helper, prometheus.port, expr, at: at)).isEmpty {
                        let level = AlertState.Severity(rawValue: severity)
                        if theirSeverity != .critical { theirSeverity = level }
                    }
                    #expect(
                        ourSeverity == theirSeverity,
                        "\(rule.name) at \(at): Steward \(String(describing: ourSeverity)), Prometheus \(String(describing: theirSeverity))")
                    // The value the host's level was decided on.
                    let theirs = try Self.vector(helper, prometheus.port, rule.expression, at: at)
                    let theirObservation = PromQLRule.observe(rule, samples: theirs).0
                    if case .value(let a) = observation, case .value(let b) = theirObservation {
                        let close = a.isNaN ? b.isNaN : abs(a - b) <= 0.01 * max(abs(a), abs(b)) || abs(a - b) < 1e-12
                        #expect(close, "\(rule.name) at \(at): Steward \(a), Prometheus \(b)")
                    } else {
                        #expect(observation == theirObservation, "\(rule.name) at \(at): Steward \(observation), Prometheus \(theirObservation)")
                    }
                    compared += 1
                }
            }
            try await Task.sleep(for: .seconds(20))
        }
        background.cancel()
        collecting.cancel()
        _ = await background.result
        let firingSeen = firing.withLock { $0 }
        #expect(skipped.count * 2 < moments, "moments where the two held different samples: \(skipped)")
        #expect(compared >= rules.count * 4, "\(compared) comparisons")
        // The same rules fired in both, and the low-threshold copies among them.
        let alerts = try Self.vector(helper, prometheus.port, #"count by (alertname) (max_over_time(ALERTS{alertstate="firing"}[5m]))"#, at: nil)
        let theirFiring = Set(alerts.compactMap { $0.labels["alertname"] })
        #expect(firingSeen == theirFiring, "Steward fired \(firingSeen.sorted()), Prometheus \(theirFiring.sorted())")
        #expect(
            firingSeen.isSuperset(of: [
                "MemoryUsedCopy", "FilesystemCopy", "CpuCopy", "ContextSwitchesCopy", "RegexCopy", "PredictCopy", "UnlessCopy",
            ]))
        #expect(!firingSeen.contains("QuietCopy"))
    }

    /// How many samples of two of the series the rules read each side holds over the whole run: every fetch either
    /// side missed lowers it.
    static let heldSamples = "sum(count_over_time(node_context_switches_total[6h])) + sum(count_over_time(node_load1[6h]))"

    /// An instant query's series for node-a, as samples without the scrape job's label.
    static func vector(_ helper: PromQLTests, _ port: Int, _ expression: String, at time: Int64?) throws -> [PromQL.Sample] {
        var path = "/api/v1/query?query=" + ExpositionDifferentialTests.encoded(expression)
        if let time { path += "&time=" + String(format: "%.3f", Double(time) / 1000) }
        let data = try helper.get(port, path)
        let answer = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let result = (answer?["data"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
        return result.compactMap { item in
            let metric = (item["metric"] as? [String: String] ?? [:]).filter { $0.key != "job" }
            guard metric["instance"] == nil || metric["instance"] == "node-a" || metric["alertname"] != nil else { return nil }
            let value = PromQLTests.normalize(["resultType": "scalar", "result": item["value"] as Any])["scalar"] ?? .nan
            return PromQL.Sample(labels: PromQL.Labels(metric.map { ($0.key, $0.value) }), value: value)
        }.sorted { $0.labels.description < $1.labels.description }
    }
}
