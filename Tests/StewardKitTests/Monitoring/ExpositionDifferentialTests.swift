import Foundation
import Testing

@testable import StewardKit

/// The exposition format as Prometheus 2.42 reads it: each case is served over HTTP to a real Prometheus, which
/// scrapes it as its own job; Steward's parser must accept and refuse the same cases, and read the same samples.
@Suite("Exposition format: Steward and Prometheus 2.42 agree on every case")
struct ExpositionDifferentialTests {
    /// Hand-written cases over the format's rules and known edge cases; NOW stands for a timestamp a second ago.
    static let cases: [(String, [UInt8])] = {
        var cases: [(String, String)] = [
            ("plain", "x 1\n"),
            ("help and type", "# HELP x Some help.\n# TYPE x gauge\nx 1\n"),
            ("indented comments", "  # HELP x h\n\t# TYPE x gauge\nx 1\n"),
            ("indented sample", "   x 1\n"),
            ("tab before =", "x{a\t=\"b\"} 1\n"),
            ("spaces around labels", "x { a = \"b\" , c = \"d\" } 1\n"),
            ("trailing comma", "x{a=\"b\",} 1\n"),
            ("empty braces", "x{} 1\n"),
            ("numbers", "a 1e3\nb -2.5E-3\nc .5\nd 5.\ne +5\nf 007\n"),
            ("infinities as written", "a +Inf\nb -Inf\nc NaN\n"),
            ("lower-case inf", "x +inf\n"),
            ("lower-case nan", "x nan\n"),
            ("Infinity", "x Infinity\n"),
            ("minus infinity", "x -infinity\n"),
            ("bare inf", "x inf\n"),
            ("signed nan", "x +nan\n"),
            ("hex float", "x 0x1p3\n"),
            ("hex without exponent", "x 0x10\n"),
            ("underscore in a number", "x 1_000\n"),
            ("no value", "x\n"),
            ("two values", "x 1 2 3\n"),
            ("timestamp", "x 1 NOW\n"),
            ("timestamp after a tab", "x 1\tNOW\n"),
            ("negative timestamp", "x 1 -5\n"),
            ("fractional timestamp", "x 1 1.5\n"),
            ("escapes", "x{a=\"q\\\"b\\\\c\\nd\"} 1\n"),
            ("unknown escape", "x{a=\"a\\tb\"} 1\n"),
            ("duplicate label", "x{a=\"1\",a=\"2\"} 1\n"),
            ("name in braces only", "{__name__=\"x\"} 1\n"),
            ("name twice", "x{__name__=\"y\"} 1\n"),
            ("empty label value", "x{a=\"\",b=\"c\"} 1\n"),
            ("bad label name", "x{1a=\"b\"} 1\n"),
            ("colon in label name", "x{a:b=\"c\"} 1\n"),
            ("colon in metric name", "a:b 1\n"),
            ("single-quoted value", "x{a='b'} 1\n"),
            ("unclosed value", "x{a=\"b} 1\n"),
            ("comment", "# just a comment\nx 1\n"),
            ("HELP without text", "# HELP x\nx 1\n"),
            ("HELP with escapes", "# HELP x a \\\\ b \\n c \\\" d\nx 1\n"),
            ("#HELP without space", "#HELP x h\nx 1\n"),
            ("TYPE after samples", "x 1\n# TYPE x gauge\n"),
            ("unknown TYPE", "# TYPE x foo\nx 1\n"),
            ("TYPE twice", "# TYPE x gauge\n# TYPE x counter\nx 1\n"),
            ("CRLF", "x 1\r\n"),
            ("no final newline", "x 1"),
            ("blank lines", "\n\nx 1\n\n"),
            ("same series twice", "x 1\nx 2\n"),
            ("histogram", "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"),
            ("summary", "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n"),
            ("counter", "# TYPE c counter\nc_total 5\n"),
            ("untyped", "# TYPE u untyped\nu 5\n"),
            ("blank-only line", "  \t\nx 1\n"),
            ("trailing blanks", "x 1  \ny 2 NOW \t\n"),
            ("no blank before the value", "x{a=\"b\"}1\n"),
            ("several blanks", "x{a=\"b\"}  \t 1 \t NOW\n"),
            ("HELP twice", "# HELP x one\n# HELP x two\nx 1\n"),
            ("signed timestamp", "x 1 +5\n"),
            ("timestamp with exponent", "x 1 1e3\n"),
            ("bare Inf", "x Inf\n"),
            ("half an exponent", "x 1e\n"),
            ("NUL in a label value", "x{a=\"a\u{0}b\"} 1\n"),
            ("unicode label value", "x{a=\"żółw ✓\"} 1\n"),
            ("name starting with a digit", "1x 1\n"),
            ("indented labels", "  {a=\"b\"} 1\n"),
            ("TYPE before another family's samples", "# TYPE x counter\ny 1\nx 2\n"),
        ]
        cases.append(("long label value", "x{a=\"" + String(repeating: "v", count: 5000) + "\"} 1\n"))
        var bytes = cases.map { ($0.0, Array($0.1.utf8)) }
        bytes.append(("invalid UTF-8 in a label value", Array("x{a=\"".utf8) + [0xFF, 0xFE] + Array("\"} 1\n".utf8)))
        bytes.append(("invalid UTF-8 in HELP", Array("# HELP x ".utf8) + [0xC3, 0x28] + Array("\nx 1\n".utf8)))
        bytes.append(("invalid UTF-8 in a comment", Array("# note ".utf8) + [0xFF] + Array("\nx 1\n".utf8)))
        return bytes + generated
    }()

    /// Generated cases: a seeded mix of the pieces above (names, label values with escapes and non-ASCII text,
    /// numbers in every spelling, blanks, comments, timestamps), most valid, some with one piece broken.
    static let generated: [(String, [UInt8])] = {
        var random = SplitMix(seed: 2042)
        let names = ["node_cpu_seconds_total", "a:b_c", "_x", "up2", "node_filesystem_avail_bytes"]
        let labelNames = ["mode", "cpu", "device", "_hidden", "le", "quantile", "a1"]
        let values = [
            "0", "1", "-1.5", "1e-9", "3.4E+38", ".25", "7.", "+Inf", "-Inf", "NaN", "nan", "inf", "-infinity", "0.1e2", "123456789012345678",
        ]
        let labelValues = ["", "idle", "/dev/sda1", "a\\b", "q\\\"x", "line\\nnext", "żółw", "tab\tin", "{}=,", "\\t kept"]
        let breaks = ["x{a=\"b\" 1", "x 1 2 3", "x{a=b} 1", "x 0x1p1", "x 1_0", "x{a=\"b\",a=\"c\"} 1", " x 1", "x{__name__=\"y\"} 1"]
        var cases: [(String, [UInt8])] = []
        for index in 0..<40 {
            var text = ""
            let lines = Int.random(in: 1...8, using: &random)
            for _ in 0..<lines {
                let name = names.randomElement(using: &random)!
                switch Int.random(in: 0..<10, using: &random) {
                case 0: text += "# HELP \(name) help with \\\\ and \\n\n"
                case 1:
                    text +=
                        (Bool.random(using: &random) ? "  " : "")
                        + "# TYPE \(name) \(["gauge", "counter", "untyped"].randomElement(using: &random)!)\n"
                case 2: text += "# a comment { with } braces\n"
                default:
                    var labels: [String] = []
                    for label in labelNames.shuffled(using: &random).prefix(Int.random(in: 0...3, using: &random)) {
                        let blank = ["", " ", "\t"].randomElement(using: &random)!
                        labels.append("\(label)\(blank)=\(blank)\"\(labelValues.randomElement(using: &random)!)\"")
                    }
                    let braces = labels.isEmpty && Bool.random(using: &random) ? "" : "{" + labels.joined(separator: ",") + "}"
                    let separator = [" ", "\t", "  "].randomElement(using: &random)!
                    let stamp = Int.random(in: 0..<4, using: &random) == 0 ? " NOW" : ""
                    text += name + braces + separator + values.randomElement(using: &random)! + stamp + "\n"
                }
            }
            if index % 5 == 4 { text += breaks.randomElement(using: &random)! + "\n" }
            cases.append(("generated \(index)", Array(text.utf8)))
        }
        return cases
    }()

    @Test("every case: accepted or refused alike, and the same samples stored (timestamps included)")
    func againstPrometheus() async throws {
        guard RealPrometheus.installed else {
            Issue.record("Debian's prometheus is not installed (make test installs it)")
            return
        }
        let directory = TemporaryDirectory()
        let now = Int64(Date().timeIntervalSince1970 * 1000) - 1000
        try FileManager.default.createDirectory(atPath: directory.path + "/cases", withIntermediateDirectories: true)
        var bodies: [[UInt8]] = []
        for (index, (_, body)) in Self.cases.enumerated() {
            let text = Self.replacing(body, Array("NOW".utf8), with: Array(String(now).utf8))
            bodies.append(text)
            try Data(text).write(to: URL(fileURLWithPath: directory.path + "/cases/case\(index).txt"))
        }
        let webPort = try SyslogTests.freePort()
        let web = try PythonChild(["-m", "http.server", "--bind", "127.0.0.1", "--directory", directory.path + "/cases", String(webPort)])
        defer { web.stop() }
        var config = "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n"
        for index in Self.cases.indices {
            config +=
                "  - job_name: case\(index)\n    metrics_path: /case\(index).txt\n    static_configs:\n      - targets: ['127.0.0.1:\(webPort)']\n"
        }
        let prometheus = try RealPrometheus(directory: directory.path, config: config)
        defer { prometheus.stop() }
        let port = prometheus.port
        let helper = PromQLTests()
        // Every job scraped at least twice.
        let scraped = try await waitUntil {
            guard let data = try? helper.get(port, "/api/v1/query?query=" + Self.encoded("min(count_over_time(up[1m])) >= 3")),
                let answer = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let result = (answer["data"] as? [String: Any])?["result"] as? [Any]
            else { return false }
            return !result.isEmpty
        }
        #expect(scraped)
        for (index, (name, _)) in Self.cases.enumerated() {
            // Accepted: some scrape succeeded (a busy machine may time one out, never all of them). The windows are
            // wide: a sample given a timestamp at the start keeps it, and under load the wait above can pass a minute.
            let up = try Self.query(helper, port, "max_over_time(up{job=\"case\(index)\"}[15m])")
            let accepted = up.values.first == 1
            let theirs = accepted ? try Self.query(helper, port, "last_over_time({job=\"case\(index)\",__name__!~\"up|scrape_.+\"}[15m])") : [:]
            let times = accepted ? try Self.sampleTimes(helper, port, "{job=\"case\(index)\",__name__!~\"up|scrape_.+\"}[15m]") : [:]
            let text = String(decoding: bodies[index], as: UTF8.self)
            let ours: [String: Double]?
            var ourTimes: [String: Double] = [:]
            do {
                let families = try PrometheusText.parse(data: bodies[index])
                var samples: [String: Double] = [:]
                for sample in families.flatMap(\.samples) {
                    let key = PromQL.Labels(sample.labels + [("__name__", sample.name)]).description
                    // A series given twice in one scrape: Prometheus keeps the first.
                    if samples[key] == nil {
                        samples[key] = sample.value
                        if let time = sample.timestamp { ourTimes[key] = Double(time) / 1000 }
                    }
                }
                ours = samples
            } catch {
                ours = nil
            }
            #expect((ours != nil) == accepted, "\(name): Prometheus \(accepted ? "accepts" : "refuses") \(text.debugDescription)")
            if let ours, accepted {
                let stripped = theirs.mapKeys { Self.withoutTarget($0) }
                #expect(PromQLTests.same(ours, stripped), "\(name): ours \(ours) theirs \(stripped)")
                // With a timestamp in the text, Prometheus stores the sample at that time (every scrape the same one);
                // so does Steward.
                for (key, time) in ourTimes { #expect(times[key] == [time], "\(name): \(key) at \(time), Prometheus: \(times[key] ?? [])") }
            }
        }
    }

    /// The times of each series' samples in a range query, by labels without the scrape target's.
    static func sampleTimes(_ helper: PromQLTests, _ port: Int, _ expression: String) throws -> [String: [Double]] {
        let data = try helper.get(port, "/api/v1/query?query=" + encoded(expression))
        let answer = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        var out: [String: [Double]] = [:]
        for item in (answer["data"] as! [String: Any])["result"] as? [[String: Any]] ?? [] {
            let metric = (item["metric"] as? [String: String] ?? [:]).filter { $0.key != "job" && $0.key != "instance" }.map { ($0.key, $0.value) }
            out[PromQL.Labels(metric).description] = Array(Set((item["values"] as? [[Any]] ?? []).compactMap { $0.first as? Double })).sorted()
        }
        return out
    }

    static func withoutTarget(_ key: String) -> String {
        key.replacingOccurrences(of: #"instance="[^"]*", ?"#, with: "", options: .regularExpression)
            .replacingOccurrences(of: #"job="case[0-9]+"(, )?"#, with: "", options: .regularExpression)
            .replacingOccurrences(of: ", }", with: "}")
    }

    static func query(_ helper: PromQLTests, _ port: Int, _ expression: String) throws -> [String: Double] {
        let data = try helper.get(port, "/api/v1/query?query=" + encoded(expression))
        let answer = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return PromQLTests.normalize(answer["data"] as! [String: Any])
    }

    static func encoded(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }

    static func replacing(_ bytes: [UInt8], _ target: [UInt8], with replacement: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if index + target.count <= bytes.count, Array(bytes[index..<(index + target.count)]) == target {
                out += replacement
                index += target.count
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return out
    }
}

extension Dictionary where Key == String {
    func mapKeys(_ transform: (String) -> String) -> [String: Value] {
        Dictionary(map { (transform($0.key), $0.value) }, uniquingKeysWith: { a, _ in a })
    }
}
