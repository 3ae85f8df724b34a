import Foundation
import GRDB
import Testing

@testable import StewardKit

/// A real prometheus-node-exporter on 127.0.0.1 at a free port, stopped when released.
final class NodeExporter: @unchecked Sendable {
    let process = Process()
    let url: String

    init() throws {
        let socket = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        close(socket)
        url = "http://127.0.0.1:\(port)/metrics"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus-node-exporter")
        process.arguments = ["--web.listen-address=127.0.0.1:\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Wait until it answers (it starts in well under a second; the bound is only there to end a broken run).
    func ready() async throws -> [PrometheusText.Family] {
        var lastError: (any Error)?
        for _ in 0..<100 {
            do { return try await MetricsScraper(timeout: 2).scrape(url) } catch { lastError = error }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw lastError!
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
    }
}

@Suite struct CollectorTests {
    @Test func parsesRealNodeExporterOutput() async throws {
        let exporter = try NodeExporter()
        let families = try await exporter.ready()
        let byName = Dictionary(families.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let cpu = try #require(byName["node_cpu_seconds_total"])
        #expect(cpu.type == .counter)
        #expect(cpu.help?.isEmpty == false)
        #expect(cpu.samples.contains { $0.label("mode") == "idle" && $0.label("cpu") == "0" })
        #expect(byName["node_load1"]?.type == .gauge)
        #expect(byName["node_memory_MemTotal_bytes"]?.samples.first.map { $0.value > 0 } == true)
        // A summary with its quantiles, _sum and _count under one family.
        let gc = try #require(byName["go_gc_duration_seconds"])
        #expect(gc.type == .summary)
        #expect(gc.samples.contains { $0.label("quantile") == "0.5" })
        #expect(gc.samples.contains { $0.name == "go_gc_duration_seconds_sum" })
        #expect(gc.samples.contains { $0.name == "go_gc_duration_seconds_count" })
        #expect(byName["go_gc_duration_seconds_count"] == nil)
        // Every family the exporter declared is typed, and no sample was left without a family.
        #expect(families.allSatisfy { !$0.samples.isEmpty || $0.help != nil })

        // Through the collector into the store: only allowed series are kept, and the derived gauges appear.
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        var settings = HostSettings()
        settings.name = "exporter"
        settings.address = "127.0.0.1"
        settings.metricsURL = exporter.url
        let host = try hosts.create(settings, by: AuditActor(actor: "test"), now: Date())
        let store = try MetricStore(database: database)
        let collector = MetricCollector(store: store, hosts: hosts, intervalSeconds: 10, timeoutSeconds: 2, logger: quietLogger)
        let first = try await collector.collect(at: 1_800_000_000_000)
        let second = try await collector.collect(at: 1_800_000_010_000)
        #expect(first > 20 && second > first - 5)
        let names = Set(store.series(hostID: host.id).map(\.name))
        #expect(names.contains("node_cpu_seconds_total"))
        #expect(!names.contains("go_gc_duration_seconds"))
        #expect(names.isSubset(of: Set(MetricAllowList.defaultPatterns + HostSummary.names)))
        for name in [HostSummary.up, HostSummary.memoryPercent, HostSummary.cpuPercent, HostSummary.loadPerCore] {
            #expect(names.contains(name), "\(name) missing")
        }
        let up = try #require(store.series(hostID: host.id, name: HostSummary.up).first)
        #expect(store.latest(up.id)?.value == 1)
        #expect(try hosts.host(id: host.id)?.state == .up)
        // Reopened from disk after the round's flush, the same samples are there.
        let reopened = try MetricStore(database: database)
        #expect(try reopened.raw(up.id, from: 0, to: .max).count == 2)
    }

    @Test func scrapeFailuresMarkTheHostDownAndRecordUpZero() async throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        var settings = HostSettings()
        settings.name = "silent"
        settings.address = "127.0.0.1"
        settings.metricsURL = "http://127.0.0.1:9/metrics"  // the discard port: nothing listens
        let host = try hosts.create(settings, by: AuditActor(actor: "test"), now: Date())
        try hosts.setState(id: host.id, .up, detail: nil, seen: Date())
        let store = try MetricStore(database: database)
        let collector = MetricCollector(store: store, hosts: hosts, intervalSeconds: 10, timeoutSeconds: 2, logger: quietLogger)
        try await collector.collect(at: 1_800_000_000_000)
        #expect(try hosts.host(id: host.id)?.state == .up)  // one failure is not enough
        try await collector.collect(at: 1_800_000_010_000)
        let after = try #require(try hosts.host(id: host.id))
        #expect(after.state == .down)
        #expect(after.stateDetail?.contains("127.0.0.1:9") == true)
        let up = try #require(store.series(hostID: host.id, name: HostSummary.up).first)
        #expect(store.latest(up.id)?.value == 0)
    }

    @Test func panelHostIsReadFromProc() throws {
        let families = ProcCollector().collect()
        let names = Set(families.map(\.name))
        for name in [
            "node_cpu_seconds_total", "node_load1", "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes",
            "node_network_receive_bytes_total", "node_boot_time_seconds", "node_filesystem_size_bytes",
        ] {
            #expect(names.contains(name), "\(name) missing")
        }
        let root = families.first { $0.name == "node_filesystem_size_bytes" }?.samples.first { $0.label("mountpoint") == "/" }
        #expect((root?.value ?? 0) > 0)
        let first = HostSummary.derive(families, time: 0, previous: nil)
        #expect((0...100).contains(first.values[HostSummary.memoryPercent] ?? -1))
        let second = HostSummary.derive(ProcCollector().collect(), time: 1000, previous: first.counters)
        #expect((0...100).contains(second.values[HostSummary.cpuPercent] ?? 0))
        #expect(ProcCollector.unescapeMount("/mnt/with\\040space") == "/mnt/with space")
        #expect(ProcCollector.isWholeDisk("sda") && !ProcCollector.isWholeDisk("sda1") && ProcCollector.isWholeDisk("nvme0n1"))
        #expect(!ProcCollector.isWholeDisk("nvme0n1p2") && !ProcCollector.isWholeDisk("loop3"))
    }

    @Test func parserHandlesTheWholeFormat() throws {
        let text = #"""
            # HELP http_requests_total The total number of HTTP requests.\nSecond line with a \\ backslash.
            # TYPE http_requests_total counter
            http_requests_total{method="post",code="200"} 1027 1395066363000
            http_requests_total{method="post",code="400"}    3 1395066363000

            # Escaping in label values:
            msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
            metric_without_timestamp_and_labels 12.47
            something_weird{problem="division by zero"} +Inf 3982045
            negative_infinity -Inf
            not_a_number NaN
            # TYPE http_request_duration_seconds histogram
            http_request_duration_seconds_bucket{le="0.05"} 24054
            http_request_duration_seconds_bucket{le="+Inf"} 144320
            http_request_duration_seconds_sum 53423
            http_request_duration_seconds_count 144320
            # TYPE rpc_duration_seconds summary
            rpc_duration_seconds{quantile="0.5"} 4773
            rpc_duration_seconds_sum 1.7560473e+07
            rpc_duration_seconds_count 2693
            trailing_comma{a="1",} 1
            """#
        let families = try PrometheusText.parse(text)
        let byName = Dictionary(families.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["http_requests_total"]?.help == "The total number of HTTP requests.\nSecond line with a \\ backslash.")
        #expect(byName["http_requests_total"]?.samples.map(\.timestamp) == [1_395_066_363_000, 1_395_066_363_000])
        let msdos = try #require(byName["msdos_file_access_time_seconds"]?.samples.first)
        #expect(msdos.label("path") == #"C:\DIR\FILE.TXT"#)
        #expect(msdos.label("error") == "Cannot find file:\n\"FILE.TXT\"")
        #expect(byName["something_weird"]?.samples.first?.value == .infinity)
        #expect(byName["something_weird"]?.samples.first?.timestamp == 3_982_045)
        // The format's own example writes -3982045, but Prometheus 2.42 reads only digits there (ExpositionDifferentialTests).
        #expect(throws: PrometheusText.ParseError.self) { try PrometheusText.parse("x 1 -3982045\n") }
        #expect(byName["negative_infinity"]?.samples.first?.value == -.infinity)
        #expect(byName["not_a_number"]?.samples.first?.value.isNaN == true)
        #expect(byName["http_request_duration_seconds"]?.samples.count == 4)
        #expect(byName["http_request_duration_seconds"]?.samples[1].label("le") == "+Inf")
        #expect(byName["rpc_duration_seconds"]?.samples.count == 3)
        #expect(byName["trailing_comma"]?.samples.first?.labels.count == 1)
        // Canonical labels round-trip through their text.
        let canonical = PrometheusText.canonicalLabels(msdos.labels)
        #expect(PrometheusText.labels(fromCanonical: canonical).map(\.1) == msdos.labels.sorted { $0.0 < $1.0 }.map(\.1))

        for (bad, fragment) in [
            ("metric{a=\"1\" 2", "expected , or }"), ("metric{a=\"1\"", "not closed"), ("metric{a=1} 2", "double quotes"),
            ("metric 12abc", "not a sample value"),
            ("9metric 1", "not a metric name"), ("metric 1 soon", "not a timestamp"),
            ("# TYPE metric countr", "unknown metric type"),
        ] {
            #expect(throws: PrometheusText.ParseError.self) { try PrometheusText.parse("ok 1\n" + bad) }
            do {
                _ = try PrometheusText.parse("ok 1\n" + bad)
            } catch {
                #expect(error.line == 2 && error.message.contains(fragment), "\(bad): \(error)")
            }
        }
    }

    @Test func allowListPatterns() {
        let list = MetricAllowList(text: "node_memory_*\n# comment\nnode_load1\n")
        #expect(list.allows(.init(name: "node_memory_MemTotal_bytes", labels: [], value: 1)))
        #expect(list.allows(.init(name: "node_load1", labels: [], value: 1)))
        #expect(!list.allows(.init(name: "node_load5", labels: [], value: 1)))
        #expect(MetricAllowList(text: nil) == .standard && MetricAllowList(text: " \n") == .standard)
        #expect(!MetricAllowList.standard.allows(.init(name: "node_network_receive_bytes_total", labels: [("device", "lo")], value: 1)))
        #expect(!MetricAllowList.standard.allows(.init(name: "node_filesystem_size_bytes", labels: [("fstype", "tmpfs")], value: 1)))
        #expect(MetricAllowList.problem("node_load1\nbad name") != nil)
        #expect(MetricAllowList.problem("node_*_bytes") == nil)
        #expect(MetricAllowList.matches("a*b*c", "axxbyyc") && !MetricAllowList.matches("a*b", "ab c"))
    }
}
