import Foundation
import GRDB
import Logging
import StewardKit

// MARK: promql

/// The alert bench's 1,000 rules over 100 hosts written as PromQL, one cycle at a time; and a range query over 30 days
/// of one host. Prometheus 2.42 answers the same expressions on the same samples in the same run (backfilled with
/// promtool), timed by its own query statistics (evaluation time, without HTTP).
func benchPromQL(_ options: Options) throws {
    let hostCount = options.int("hosts", 100)
    let ruleCount = options.int("rules", 1000)
    let cycles = options.int("cycles", 5)
    let days = options.int("days", 30)
    let work = try freshWorkDirectory(options, "promql")
    say(
        "steward-bench promql: \(ruleCount) rules x \(hostCount) hosts, \(cycles) cycles; a \(days)-day range query of one host; machine: \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
    let database = try makeDatabase(work + "/promql.db")
    let hosts = try addHosts(database, count: hostCount)
    let store = try MetricStore(database: database)
    let end = Int64(1_790_000_000_000)
    let openMetrics = work + "/data.om"
    let writer = try OpenMetricsWriter(path: openMetrics)
    // The fleet's last hour, and the first host's earlier days (one host's 30 days, the range query's data).
    let longStart = end - Int64(days) * 86_400_000
    // Of the earlier days, Prometheus gets the two series the range queries read.
    let longSeries: Set<Int> = Set(
        HostGenerator.series.indices.filter { ["node_load1", "node_network_receive_bytes_total"].contains(HostGenerator.series[$0].name) })
    var samples = try ingest(
        store, hosts: [hosts[0]], start: longStart, steps: (days * 86400 - 3600) / 10, flushEvery: 8640,
        sink: { _, time, values in
            writer.add(host: hosts[0].name, time: time, values: values, only: longSeries)
        })
    let hourStart = end - 3_600_000 + 10_000
    samples += try ingest(
        store, hosts: hosts, start: hourStart, steps: 360, flushEvery: 360,
        sink: { index, time, values in
            writer.add(host: hosts[index].name, time: time, values: values)
        })
    try writer.finish()
    say("data: \(samples) samples (\(hostCount) hosts for 1 hour, \(hosts[0].name) for \(days) days, every 10 s)")

    // The alert bench's ten shapes, as PromQL, each with ten windows and ten thresholds.
    let shapes: [(expr: (Int) -> String, comparison: AlertRule.Comparison, warn: Double)] = [
        ({ "avg_over_time(\(HostSummary.cpuPercent)[\($0)s])" }, .gt, 80), ({ "avg_over_time(\(HostSummary.memoryPercent)[\($0)s])" }, .gt, 90),
        ({ "max_over_time(\(HostSummary.filesystemPercent)[\($0)s])" }, .gt, 85),
        ({ "avg_over_time(\(HostSummary.loadPerCore)[\($0 + 600)s])" }, .gt, 1.5), ({ "max_over_time(\(HostSummary.up)[\($0 / 5)s])" }, .gt, 2),
        ({ "max_over_time(node_load1[\($0 + 300)s])" }, .gt, 3), ({ #"rate(node_cpu_seconds_total{mode="iowait"}[\#($0)s])"# }, .gt, 0.2),
        ({ #"rate(node_network_receive_bytes_total{device="eth0"}[\#($0)s])"# }, .gt, 1e7),
        ({ #"min_over_time(node_filesystem_avail_bytes{mountpoint="/"}[\#($0 + 300)s])"# }, .lt, 1e9),
        ({ "predict_linear(\(HostSummary.filesystemPercent)[\($0 + 3300)s], 86400)" }, .gt, 100),
    ]
    let rules = AlertRuleStore(database: database)
    var expressions: [String] = []
    for index in 0..<ruleCount {
        let shape = shapes[index % shapes.count]
        var rule = AlertRule()
        rule.name = "rule \(index)"
        rule.source = PromQLRule.source
        rule.expression = shape.expr(300 + (index / shapes.count % 10) * 30)
        rule.comparison = shape.comparison
        rule.warnThreshold = shape.warn * (1 + Double(index / shapes.count) / 1000)
        rule.forSeconds = 60
        rule.summary = "{{ $labels.instance }} {{ $value }}"
        _ = try rules.create(rule, by: AuditActor(actor: "bench"), now: Date())
        expressions.append(PrometheusRules.alertExpressions(rule)[0].expr)
    }
    let evaluator = try AlertEvaluator(
        database: database, hosts: HostStore(database: database), metrics: store, sources: [], intervalSeconds: 15,
        logger: .init(label: "bench"), clock: { EpochMilliseconds.date(end) })
    let (durations, transitions) = try evaluationCycles(evaluator, cycles)
    let cycleP50 = percentile(Array(durations.dropFirst()), 0.5)
    say(
        "cycle: \(ruleCount) PromQL rules over \(hostCount) hosts; first \(format(durations[0], 0)) ms (writes every new state), "
            + "then p50 \(format(cycleP50, 0)) ms, max \(format(durations.dropFirst().max() ?? 0, 0)) ms (goal < 1000 ms); \(transitions) transitions"
    )

    // The range query: one host's 30 days, hourly, as a dashboard asks it.
    let reopened = try MetricStore(database: database)
    let source = MetricStoreSource(store: reopened, hostNames: Dictionary(uniqueKeysWithValues: hosts.map { ($0.id, $0.name) }))
    let rangeQueries = [
        #"avg_over_time(node_load1{host="\#(hosts[0].name)"}[1h])"#,
        #"rate(node_network_receive_bytes_total{host="\#(hosts[0].name)",device="eth0"}[1h])"#,
    ]
    var ours: [String: [Double]] = [:]
    var pointsAnswered = 0
    for query in rangeQueries {
        let expr = try PromQL.parse(query)
        for _ in 0..<20 {
            let (series, seconds) = try time { try PromQL.rangeQuery(expr, source: source, from: longStart + 3_600_000, to: end, step: 3_600_000) }
            pointsAnswered = series.first?.points.count ?? 0
            ours[query, default: []].append(seconds * 1000)
        }
    }

    // Prometheus on the same samples.
    guard let prometheus = try PrometheusOnData(work: work, openMetrics: openMetrics) else {
        say("\nprometheus: not installed (Debian's prometheus package); comparison skipped")
        return
    }
    defer { prometheus.stop() }
    var theirCycle: [Double] = []
    for _ in 0..<3 {
        var total = 0.0
        for expression in expressions { total += try prometheus.evaluationSeconds(query: expression, at: end) }
        theirCycle.append(total * 1000)
    }
    say(
        "  Prometheus: the same \(ruleCount) alert expressions at the same time, evaluation time summed (its query stats, no HTTP): "
            + "p50 \(format(percentile(theirCycle, 0.5), 0)) ms; ratio Steward/Prometheus \(format(cycleP50 / max(percentile(theirCycle, 0.5), 0.001)))"
    )
    for query in rangeQueries {
        var theirs: [Double] = []
        for _ in 0..<20 {
            theirs.append(
                try prometheus.evaluationSeconds(query: query, from: longStart + 3_600_000, to: end, step: 3600) * 1000)
        }
        let mine = percentile(ours[query] ?? [0], 0.5)
        let other = percentile(theirs, 0.5)
        say(
            "range: \(query), \(days) days at 1 h (\(pointsAnswered) points): Steward p50 \(format(mine, 1)) ms in-process (goal < 50 ms); "
                + "Prometheus p50 \(format(other, 1)) ms (its stats); ratio \(format(mine / max(other, 0.001)))")
    }
}

/// An OpenMetrics file of HostGenerator's series, for promtool; every series a family of its own name.
final class OpenMetricsWriter {
    let path: String
    /// Per series index: a temporary file of its lines, joined family by family at the end.
    var parts: [FileHandle] = []
    var partPaths: [String] = []

    init(path: String) throws {
        self.path = path
        for index in HostGenerator.series.indices {
            let part = path + ".part\(index)"
            FileManager.default.createFile(atPath: part, contents: nil)
            partPaths.append(part)
            parts.append(try FileHandle(forWritingTo: URL(fileURLWithPath: part)))
        }
    }

    func add(host: String, time: Int64, values: [Double], only: Set<Int>? = nil) {
        let seconds = String(time / 1000)
        for (index, value) in values.enumerated() where only?.contains(index) != false {
            let entry = HostGenerator.series[index]
            let line =
                "\(entry.name){host=\"\(host)\",instance=\"\(host)\"" + (entry.labels.isEmpty ? "" : "," + entry.labels) + "} \(value) \(seconds)\n"
            parts[index].write(Data(line.utf8))
        }
    }

    func finish() throws {
        for part in parts { try part.close() }
        FileManager.default.createFile(atPath: path, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var families: [String: [Int]] = [:]
        var order: [String] = []
        for (index, entry) in HostGenerator.series.enumerated() {
            if families[entry.name] == nil { order.append(entry.name) }
            families[entry.name, default: []].append(index)
        }
        for name in order {
            out.write(Data("# TYPE \(name) gauge\n".utf8))
            // A family's series one after another, each in time order (lines of one series are contiguous per host
            // only within a part, so the part is sorted by series key first, keeping time order).
            for index in families[name]! {
                let text = try String(contentsOfFile: partPaths[index], encoding: .utf8)
                var bySeries: [Substring: [Substring]] = [:]
                var keys: [Substring] = []
                for line in text.split(separator: "\n") {
                    let key = line[..<(line.firstIndex(of: "}") ?? line.endIndex)]
                    if bySeries[key] == nil { keys.append(key) }
                    bySeries[key, default: []].append(line)
                }
                for key in keys { out.write(Data((bySeries[key]!.joined(separator: "\n") + "\n").utf8)) }
                try? FileManager.default.removeItem(atPath: partPaths[index])
            }
        }
        out.write(Data("# EOF\n".utf8))
        try out.close()
    }
}

/// Debian's Prometheus serving blocks that promtool wrote from an OpenMetrics file.
final class PrometheusOnData {
    let server = Process()
    let port: Int

    init?(work: String, openMetrics: String) throws {
        let promtool = "/usr/bin/promtool"
        let binary = "/usr/bin/prometheus"
        guard FileManager.default.isExecutableFile(atPath: promtool), FileManager.default.isExecutableFile(atPath: binary) else { return nil }
        let blocks = work + "/prometheus"
        let (_, seconds) = try time { try run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", openMetrics, blocks]) }
        say("  (promtool backfilled the same samples in \(format(seconds, 1)) s)")
        port = 19091
        let config = work + "/prometheus.yml"
        try "global:\n  scrape_interval: 1h\n".write(toFile: config, atomically: true, encoding: .utf8)
        server.executableURL = URL(fileURLWithPath: binary)
        server.arguments = [
            "--config.file=\(config)", "--storage.tsdb.path=\(blocks)", "--storage.tsdb.retention.time=100y",
            "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
        ]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        var ready = false
        for _ in 0..<120 where !ready {
            ready = (try? fetch(URL(string: "http://127.0.0.1:\(port)/-/ready")!))?.contains("Ready") == true
            if !ready { Thread.sleep(forTimeInterval: 0.5) }
        }
        guard ready else { throw BenchError("Prometheus did not become ready") }
        // promtool writes 2-hour blocks; Prometheus compacts them into longer ones as it would hold them after a
        // month. Wait until the block count has not changed for 75 s (at most 8 minutes).
        var lastCount = -1
        var stable = 0
        for _ in 0..<96 where stable < 15 {
            Thread.sleep(forTimeInterval: 5)
            let count = (try? FileManager.default.contentsOfDirectory(atPath: blocks).filter { $0.hasPrefix("01") }.count) ?? 0
            stable = count == lastCount ? stable + 1 : 0
            lastCount = count
        }
        say("  (Prometheus kept \(lastCount) block(s) after compaction)")
    }

    /// Prometheus's own evaluation time of one query (its stats=all timings), in seconds.
    func evaluationSeconds(query: String, at time: Int64? = nil, from: Int64? = nil, to: Int64? = nil, step: Int? = nil) throws -> Double {
        var components = URLComponents(string: "http://127.0.0.1:\(port)/api/v1/" + (from == nil ? "query" : "query_range"))!
        var items = [URLQueryItem(name: "query", value: query), URLQueryItem(name: "stats", value: "all")]
        if let time { items.append(.init(name: "time", value: String(Double(time) / 1000))) }
        if let from, let to, let step {
            items += [
                .init(name: "start", value: String(from / 1000)), .init(name: "end", value: String(to / 1000)),
                .init(name: "step", value: String(step)),
            ]
        }
        components.queryItems = items
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        let body = try fetch(components.url!)
        guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let stats = (object["data"] as? [String: Any])?["stats"] as? [String: Any],
            let timings = stats["timings"] as? [String: Any], let total = timings["evalTotalTime"] as? Double
        else { throw BenchError("Prometheus answered without timings: \(body.prefix(300))") }
        return total
    }

    func stop() {
        server.terminate()
        server.waitUntilExit()
    }
}
