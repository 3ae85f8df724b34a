import Foundation
import Testing

@testable import StewardKit

/// Series held in memory, for the engine alone.
struct MemorySource: PromQL.Source {
    var series: [(labels: PromQL.Labels, points: [PromQL.Point])]

    func series(matching matchers: [PromQL.Matcher]) throws -> [(id: Int64, labels: PromQL.Labels)] {
        series.enumerated().compactMap { index, series in
            matchers.allSatisfy { $0.matches(series.labels[$0.name] ?? "") } ? (Int64(index), series.labels) : nil
        }
    }

    func points(_ id: Int64, from: Int64, to: Int64) throws -> [PromQL.Point] {
        series[Int(id)].points.filter { $0.time >= from && $0.time <= to }
    }
}

@Suite("PromQL: parsing, and evaluation against Prometheus 2.42 on the same data")
struct PromQLTests {
    @Test("durations as Prometheus writes them; refusals name the construct and where it is")
    func parsing() throws {
        #expect(PromQL.duration("0s") == 0 && PromQL.duration("0m") == 0 && PromQL.duration("0") == 0)
        #expect(PromQL.duration("1h30m") == 5_400_000 && PromQL.duration("500ms") == 500 && PromQL.duration("1y") == 31_536_000_000)
        #expect(PromQL.duration("30m1h") == nil && PromQL.duration("1.5h") == nil && PromQL.duration("5") == nil && PromQL.duration("") == nil)
        #expect(PromQL.formatDuration(5_400_000) == "1h30m" && PromQL.formatDuration(0) == "0s")
        for text in [
            "node_load1 > 0", "a / b < .10", "a and on (instance) b", "a unless ignoring (mode) b", "a or b", #"x{mode='idle'}"#,
            #"x{mountpoint="/a,b"}"#, #"x{fstype!~"tmpfs|overlay", device=~"sd.+"}"#, "avg without (cpu) (rate(x[5m]))",
            "sum by (instance) (rate(x[2m])) / 1024 / 1024 > 100", "predict_linear(x[6h], 4*3600) < 0", "predict_linear(x[6h], 24*60*60)",
            "x * on (instance) group_left (nodename) y", "-x^2", "2 ^ 3 ^ 2", "x offset 5m", "rate(x[5m] offset 1h)", "clamp_min(x, 0)",
            "label_replace(x, \"dst\", \"$1\", \"src\", \"(.*)\")", "absent(up{job=\"node\"})", "topk(3, x)", "quantile(0.9, x) by (mode)",
            "count(x) without (cpu)", "time() - x", "x offset -5m", #"x{nan="1", inf="2"}"#, "08 + 09", "x * on (a) group_left (b) y", "vector(1)",
            "scalar(x) * 2", "sum(x) by (a) > bool 3", "x == 1", "hour()",
            "min_over_time(x[1m]) == 0", "quantile_over_time(0.5, x[10m])", "changes(x[1h]) > 2", "idelta(x[1m])", "# comment\nx",
        ] {
            #expect(throws: Never.self, "\(text)") { _ = try PromQL.parse(text) }
        }
        // 24*60*60 as an argument (a scalar expression) is what the packs write; "increase(x[...])" above must fail.
        #expect(throws: PromQL.ParseError.self) { _ = try PromQL.parse("increase(x[24*60*60 > 0 or 1 == bool 1])") }
        let refused: [(String, Int, String)] = [
            ("(node_load1 > 5", 15, "expected \")\""),
            ("rate(x[5m:1m])", 6, "subqueries"),
            ("x @ 1000", 2, "@ modifier"),
            ("histogram_quantile(0.9, x)", 0, "histogram_quantile is not supported"),
            ("count_values(\"v\", x)", 0, "count_values is not supported"),
            ("rate(x)", 0, "range vector"),
            ("1 > 2", 2, "needs bool"),
            ("x[5m] + 1", 6, "range vector"),
            ("{job=~\".*\"}", 0, "does not match the empty string"),
            ("nosuch(x)", 0, "unknown function nosuch"),
            ("x{a=~\"(\"}", 2, "not a valid regular expression"),
            ("sum(x) by (a) by (b)", 14, "after a complete expression"),
            ("x offset 5", 9, "not a duration"),
            ("x offset 0s", 9, "longer than zero"),
            ("rate(x[5m],)", 11, "trailing comma"),
            ("sum(x,)", 6, "trailing comma"),
            (#""it\'s""#, 3, "unknown escape"),
            (#"x{__name__=~"y"}"#, 0, "given twice"),
            ("a * on (a) group_left (a) b", 26, "both in on"),
        ]
        for (text, position, words) in refused {
            do {
                _ = try PromQL.parse(text)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.position == position && error.message.contains(words), "\(text): \(error)")
            }
        }
        // A comparison keeps its operator: "> 0" is not ">= 0".
        guard case .binary(.gtr, _, .number(0), false, nil) = try PromQL.parse("node_load1 > 0") else {
            Issue.record("> 0 was not read as > 0")
            return
        }
    }

    /// A fleet of three hosts with node_exporter's shapes, sampled every 15 s for two hours, with a counter reset, a
    /// filesystem filling up, a series that stopped and a label that only some series have.
    static func fleet(end: Int64) -> [(labels: PromQL.Labels, points: [PromQL.Point])] {
        var seed: UInt64 = 42
        func random() -> Double {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(seed >> 11) / Double(1 << 53)
        }
        let step: Int64 = 15_000
        let times: [Int64] = (0...480).map { end - 7_200_000 + Int64($0) * step }
        var result: [(labels: PromQL.Labels, points: [PromQL.Point])] = []
        func add(_ name: String, _ labels: [(String, String)], _ value: (Int, Int64) -> Double?) {
            var points: [PromQL.Point] = []
            for (index, time) in times.enumerated() {
                if let v = value(index, time) { points.append(PromQL.Point(time: time, value: v)) }
            }
            result.append((PromQL.Labels(labels + [("__name__", name)]), points))
        }
        for (hostIndex, host) in ["web1", "web2", "db1"].enumerated() {
            let base = [("instance", host), ("job", "node")]
            let busy = host == "db1" ? 0.8 : 0.2
            for cpu in ["0", "1"] {
                var totals: [String: Double] = [:]
                for mode in ["idle", "user", "system", "iowait"] {
                    let share = mode == "idle" ? 1 - busy : mode == "user" ? busy * 0.7 : mode == "system" ? busy * 0.2 : busy * 0.1
                    let increments = times.map { _ in 15 * share * (0.8 + 0.4 * random()) }
                    add("node_cpu_seconds_total", base + [("cpu", cpu), ("mode", mode)]) { index, _ in
                        totals[mode, default: 1000] += increments[index]
                        return totals[mode]!
                    }
                }
            }
            let total = Double(8 << 30) * Double(hostIndex + 1)
            add("node_memory_MemTotal_bytes", base) { _, _ in total }
            let count = Double(times.count)
            add("node_memory_MemAvailable_bytes", base) { index, _ in
                let share: Double = 0.3 - 0.25 * Double(index) / count
                return total * share + 1e6 * random()
            }
            let filesystems: [(String, String, String, Double)] = [
                ("/dev/sda1", "/", "ext4", 100e9), ("/dev/sda2", "/boot", "ext4", 1e9), ("tmpfs", "/run", "tmpfs", 2e9),
            ]
            for (device, mountpoint, fstype, size) in filesystems {
                let fs = base + [("device", device), ("mountpoint", mountpoint), ("fstype", fstype)]
                add("node_filesystem_size_bytes", fs) { _, _ in size }
                add("node_filesystem_avail_bytes", fs) { index, _ in
                    host == "db1" && mountpoint == "/" ? size * 0.2 - Double(index) * 3e6 : size * 0.5 + 1e5 * random()
                }
                add("node_filesystem_readonly", fs) { _, _ in mountpoint == "/boot" ? 1 : 0 }
            }
            for device in ["eth0", "lo"] {
                var bytes = 1e9
                add("node_network_receive_bytes_total", base + [("device", device)]) { index, _ in
                    // web2's counter starts again from zero half way (a reboot).
                    if host == "web2" && index == times.count / 2 { bytes = 0 }
                    bytes += 15 * (device == "eth0" ? 2e6 : 1e4) * (0.5 + random())
                    return bytes
                }
            }
            add("node_load1", base) { _, _ in busy * 4 * (0.5 + random()) }
            add("node_timex_offset_seconds", base) { index, _ in (host == "web1" ? 0.0004 : -0.0002) * Double(index) }
            add("node_uname_info", base + [("nodename", host + ".example.com")]) { _, _ in 1 }
            add("node_filefd_allocated", base) { _, _ in 1000 + 50 * random() }
            add("node_filefd_maximum", base) { _, _ in 9_223_372_036_854_775_807 }
            // A series that stopped 4 minutes before the end (still within the lookback), one that stopped 10 minutes
            // before (gone), and one that exists only on db1.
            add("node_textfile_scrape_error", base) { _, time in time <= end - 240_000 ? 0 : nil }
            add("node_systemd_unit_state", base + [("name", "cron.service"), ("state", "failed")]) { _, time in time <= end - 600_000 ? 1 : nil }
            add("node_nf_conntrack_entries", base) { _, time in time <= end - 300_000 ? 5 : nil }
            if host == "db1" { add("node_md_disks", base + [("device", "md0"), ("state", "failed")]) { _, _ in 1 } }
        }
        return result
    }

    /// Expressions in the shapes the node-exporter rule packs use, each compared at several times.
    static let expressions = [
        "node_load1", "node_load1 > 1", "node_load1 > bool 1", "1 < node_load1", "-node_load1", "node_load1 * 2 + 1", "2 ^ 3 ^ 2", "-2 ^ 2",
        "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 25",
        "(node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 25) * on (instance) group_left (nodename) node_uname_info{nodename=~\".+\"}",
        "rate(node_cpu_seconds_total[1m])", "irate(node_cpu_seconds_total[5m])", "increase(node_cpu_seconds_total[10m])",
        "delta(node_memory_MemAvailable_bytes[15m])", "idelta(node_memory_MemAvailable_bytes[5m])",
        "rate(node_network_receive_bytes_total[5m])", "increase(node_network_receive_bytes_total[2h])",
        "resets(node_network_receive_bytes_total[2h])",
        "sum by (instance) (rate(node_network_receive_bytes_total[2m])) / 1024 / 1024 > 1",
        "avg without (cpu) (rate(node_cpu_seconds_total{mode!=\"idle\"}[2m]))",
        "sum without (mode) (avg without (cpu) (rate(node_cpu_seconds_total{mode!=\"idle\"}[2m]))) > 0.5",
        "100 - (avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[2m])) * 100) > 50",
        "avg by (instance) (rate(node_cpu_seconds_total{mode=\"iowait\"}[5m])) * 100 > 2",
        "count without (cpu, mode) (node_cpu_seconds_total{mode=\"idle\"})",
        "node_load1 / on (instance) count without (cpu, mode) (node_cpu_seconds_total{mode=\"idle\"}) > 1",
        "(node_filesystem_avail_bytes * 100) / node_filesystem_size_bytes < 30 and on (instance, device, mountpoint) node_filesystem_readonly == 0",
        "predict_linear(node_filesystem_avail_bytes{fstype!~\"tmpfs\"}[1h], 4 * 3600) < 0",
        "predict_linear(node_filesystem_avail_bytes{mountpoint=\"/\"}[30m], 24*60*60)",
        "deriv(node_timex_offset_seconds[5m])",
        "(node_timex_offset_seconds > 0.05 and deriv(node_timex_offset_seconds[5m]) >= 0) or (node_timex_offset_seconds < -0.05 and deriv(node_timex_offset_seconds[5m]) <= 0)",
        "min_over_time(node_load1[10m])", "max_over_time(node_load1[10m])", "avg_over_time(node_load1[10m])", "sum_over_time(node_load1[2m])",
        "count_over_time(node_load1[2m])", "last_over_time(node_load1[2m])", "stddev_over_time(node_load1[10m])",
        "quantile_over_time(0.9, node_load1[30m])",
        "changes(node_load1[5m])", "present_over_time(node_textfile_scrape_error[1m])",
        "node_nf_conntrack_entries", "node_textfile_scrape_error != 0", "node_textfile_scrape_error == 0",
        "node_systemd_unit_state{state=\"failed\"} == 1",
        "node_md_disks{state=\"failed\"} > 0", "absent(node_md_disks{instance=\"web1\", state=\"failed\"})", "absent(node_load1)",
        "node_filefd_allocated * 100 / node_filefd_maximum > 0", "topk(2, node_load1)", "bottomk(1, node_load1)", "quantile(0.5, node_load1)",
        "max(node_load1) by (job)", "min(node_load1)", "count(node_load1)", "stddev(node_load1)", "stdvar(node_load1)",
        "group(node_load1) by (instance)",
        "node_load1 unless on (instance) node_md_disks", "node_load1 and ignoring (device, state) node_md_disks", "node_md_disks or node_load1",
        "node_cpu_seconds_total{mode=~\"user|system\", cpu!=\"1\"} offset 30m", "rate(node_cpu_seconds_total{mode=\"user\"}[5m] offset 1h)",
        "clamp_min(node_load1 - 1, 0)", "clamp_max(node_load1, 1)", "clamp(node_load1, 0.5, 1)", "abs(-node_load1)", "round(node_load1, 0.1)",
        "ceil(node_load1)", "floor(node_load1)", "sqrt(node_load1)", "ln(node_load1)", "log2(node_load1)", "log10(node_load1)", "exp(node_load1)",
        "sgn(node_load1 - 1)", "timestamp(node_load1)", "time() - timestamp(node_textfile_scrape_error)", "scalar(max(node_load1)) * 2",
        "vector(3) + 1", "label_replace(node_load1, \"host\", \"$1\", \"instance\", \"(web|db)[0-9]+\")",
        "label_replace(node_load1, \"instance\", \"\", \"instance\", \"web1\")", "node_load1 % 0.3", "node_load1 atan2 2 > 0", "hour(vector(time()))",
        "day_of_week()", "sort_desc(node_load1)", "node_load1 offset -5m", "08 + 09", "-{__name__=~\"node_load1|node_filefd_allocated\"}",
        "{__name__=~\"node_load1|node_filefd_allocated\"} >= on (instance) node_load1", "node_nosuch / on (job) node_load1",
        "node_load1 / on (job) node_load1", "timestamp(node_load1 > 0)", "absent(node_nosuch{job!=\"b\", job=\"a\"})", "clamp_min(node_load1, 0/0)",
        "label_replace(node_load1, \"short\", \"$name\", \"instance\", \"(?P<name>[a-z]+)[0-9]+\")", "node_uname_info{nodename=~\"web.*\"}",
        "node_filesystem_avail_bytes{mountpoint=\"/\"} / node_filesystem_size_bytes < bool 0.5",
    ]

    @Test("the node-exporter packs' shapes give what Prometheus 2.42 gives over the same samples, at times on and between samples")
    func againstPrometheus() async throws {
        guard RealPrometheus.installed else {
            Issue.record("Debian's prometheus is not installed (make test installs it)")
            return
        }
        // Whole minutes, two hours back, so Prometheus keeps the blocks.
        let end = (Int64(Date().timeIntervalSince1970) / 60) * 60_000 - 3_600_000
        let fleet = Self.fleet(end: end)
        let directory = TemporaryDirectory()
        var text = ""
        for series in fleet {
            let labels = series.labels.pairs.filter { $0.name != "__name__" }.map { "\($0.name)=\(PromQL.quoted($0.value))" }.joined(separator: ",")
            for point in series.points {
                text += "\(series.labels.name!){\(labels)} \(String(format: "%.17g", point.value)) \(Double(point.time) / 1000)\n"
            }
        }
        text += "# EOF\n"
        try text.write(toFile: directory.path + "/input.om", atomically: true, encoding: .utf8)
        try run(["/usr/bin/promtool", "tsdb", "create-blocks-from", "openmetrics", directory.path + "/input.om", directory.path + "/data"])
        let prometheus = try RealPrometheus(directory: directory.path, config: "global: {}\n", arguments: ["--storage.tsdb.retention.time=30d"])
        defer { prometheus.stop() }
        let port = prometheus.port
        let ready = try await waitUntil { (try? self.get(port, "/-/ready")) != nil }
        #expect(ready)
        let source = MemorySource(series: fleet)
        var compared = 0
        var answered = 0
        for expression in Self.expressions {
            let expr = try PromQL.parse(expression)
            // On a sample, between samples, and with the stopped series' ends around.
            for time in [end, end - 7_000, end - 1_800_000, end - 3_600_000 + 15_000] {
                let answer =
                    try JSONSerialization.jsonObject(
                        with: try get(
                            port,
                            "/api/v1/query?query=\(expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&time=\(Double(time) / 1000)",
                            failOnError: false))
                    as! [String: Any]
                guard let data = answer["data"] as? [String: Any] else {
                    // Prometheus refused to evaluate (duplicate label sets, many-to-many): so must Steward.
                    #expect(throws: PromQL.EvaluationError.self, "\(expression): Prometheus said \(answer)") {
                        _ = try PromQL.query(expr, source: source, at: time)
                    }
                    compared += 1
                    answered += 1
                    continue
                }
                let theirs = Self.normalize(data)
                let ours = Self.normalize(try PromQL.query(expr, source: source, at: time))
                #expect(
                    Self.same(ours, theirs),
                    "\(expression) at end\((time - end) / 1000)s\n ours: \(ours.sorted { $0.key < $1.key })\ntheirs: \(theirs.sorted { $0.key < $1.key })"
                )
                compared += 1
                if !theirs.isEmpty { answered += 1 }
            }
        }
        // Most of the comparisons are over values, not two empty answers.
        #expect(compared == Self.expressions.count * 4 && answered * 10 >= compared * 9, "\(answered) of \(compared) answered")
    }

    static func normalize(_ data: [String: Any]) -> [String: Double] {
        func number(_ any: Any?) -> Double {
            switch (any as? [Any])?.last as? String {
            case "NaN": .nan
            case "+Inf": .infinity
            case "-Inf": -.infinity
            case let text?: Double(text) ?? .nan
            case nil: .nan
            }
        }
        if data["resultType"] as? String == "scalar" { return ["scalar": number(data["result"])] }
        var out: [String: Double] = [:]
        for item in data["result"] as? [[String: Any]] ?? [] {
            let metric = (item["metric"] as? [String: String] ?? [:]).map { ($0.key, $0.value) }
            out[PromQL.Labels(metric).description] = number(item["value"])
        }
        return out
    }

    static func normalize(_ value: PromQL.Value) -> [String: Double] {
        switch value {
        case .scalar(let number): ["scalar": number]
        case .vector(let samples): Dictionary(samples.map { ($0.labels.description, $0.value) }, uniquingKeysWith: { a, _ in a })
        default: [:]
        }
    }

    static func same(_ a: [String: Double], _ b: [String: Double]) -> Bool {
        guard Set(a.keys) == Set(b.keys) else { return false }
        return a.allSatisfy { key, value in
            let other = b[key]!
            if value.isNaN || other.isNaN { return value.isNaN && other.isNaN }
            if value.isInfinite || other.isInfinite { return value == other }
            return abs(value - other) <= 1e-9 * max(1, abs(value), abs(other))
        }
    }

    /// A GET on loopback; with `failOnError`, an HTTP error status is an error (otherwise its body is the answer).
    func get(_ port: Int, _ path: String, failOnError: Bool = true) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = [failOnError ? "-sf" : "-s", "--max-time", "10", "http://127.0.0.1:\(port)\(path)"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw PromQL.EvaluationError(description: "curl \(path) exited \(process.terminationStatus)") }
        return data
    }

    func run(_ argv: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw PromQL.EvaluationError(description: "\(argv[0]) failed: \(printed)") }
    }
}
