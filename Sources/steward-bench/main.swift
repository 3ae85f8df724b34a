// steward-bench: measurements of Steward's engines outside the server, and the ingest driver the crash test uses.
//
//   steward-bench metrics [--hosts 100] [--days 7] [--long-days 30] [--prometheus-days 1] [--work DIR]
//   steward-bench ingest --database FILE [--hosts 5]      ingest until killed, printing each committed watermark
//   steward-bench verify --database FILE --through MS [--hosts 5]   check every sample up to MS is present
//   steward-bench backup [--megabytes 1024] [--rounds 2] [--work DIR]   a Steward backup job versus restic directly
//   steward-bench rollout [--hosts 20] [--waves 4] [--rounds 2]   Steward's time on top of ansible's in a rollout
//   steward-bench retention [--hosts 100] [--days 30]   enforce raw metrics 7 days with a concurrent ingest writer
//   steward-bench logs [--lines 10000000] [--hosts 50]   journal ingest rate, bytes a line on disk, searches vs grep and journalctl
//   steward-bench promql [--rules 1000] [--hosts 100] [--days 30]   PromQL rule cycles and a 30-day range query vs Prometheus
//   steward-bench slo [--slos 200] [--days 30]   SLO engine cycles vs recounting every window from raw samples
import Foundation
import GRDB
import Logging
import StewardKit

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Unbuffered, so a reader sees each line at once (the crash test kills this process mid-stream).
func say(_ text: String) { FileHandle.standardOutput.write((text + "\n").data(using: .utf8)!) }

struct Options {
    var values: [String: String] = [:]
    init(_ arguments: ArraySlice<String>) {
        var iterator = arguments.makeIterator()
        while let key = iterator.next() {
            guard key.hasPrefix("--") else { continue }
            values[String(key.dropFirst(2))] = iterator.next() ?? ""
        }
    }
    func int(_ key: String, _ fallback: Int) -> Int { values[key].flatMap(Int.init) ?? fallback }
    func string(_ key: String) -> String? { values[key] }
}

/// A deterministic generator, so every run (and the Prometheus copy) sees the same numbers.
struct Random {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
}

/// One host's series shaped like node_exporter's (20 of them) plus the 6 gauges Steward derives per host.
struct HostGenerator {
    static let series: [(name: String, labels: String, type: PrometheusText.FamilyType)] = [
        ("node_cpu_seconds_total", #"cpu="0",mode="idle""#, .counter), ("node_cpu_seconds_total", #"cpu="0",mode="user""#, .counter),
        ("node_cpu_seconds_total", #"cpu="0",mode="system""#, .counter), ("node_cpu_seconds_total", #"cpu="0",mode="iowait""#, .counter),
        ("node_load1", "", .gauge), ("node_load5", "", .gauge), ("node_load15", "", .gauge),
        ("node_memory_MemTotal_bytes", "", .gauge), ("node_memory_MemAvailable_bytes", "", .gauge), ("node_memory_Cached_bytes", "", .gauge),
        ("node_memory_SwapFree_bytes", "", .gauge),
        ("node_filesystem_size_bytes", #"device="/dev/vda1",fstype="ext4",mountpoint="/""#, .gauge),
        ("node_filesystem_avail_bytes", #"device="/dev/vda1",fstype="ext4",mountpoint="/""#, .gauge),
        ("node_disk_read_bytes_total", #"device="vda""#, .counter), ("node_disk_written_bytes_total", #"device="vda""#, .counter),
        ("node_network_receive_bytes_total", #"device="eth0""#, .counter), ("node_network_transmit_bytes_total", #"device="eth0""#, .counter),
        ("node_procs_running", "", .gauge), ("node_context_switches_total", "", .counter), ("node_boot_time_seconds", "", .gauge),
        (HostSummary.up, "", .gauge), (HostSummary.cpuPercent, "", .gauge), (HostSummary.memoryPercent, "", .gauge),
        (HostSummary.filesystemPercent, "", .gauge), (HostSummary.loadPerCore, "", .gauge), (HostSummary.networkBytes, "", .gauge),
    ]

    var random: Random
    var cpu = [5_000_000.0, 400_000.0, 150_000.0, 9_000.0]
    var load = [0.4, 0.4, 0.4]
    let memTotal = 8_341_045_248.0
    var available = 5_100_000_000.0 - 5_100_000_000.0.truncatingRemainder(dividingBy: 4096)
    var cached = 1_900_000_000.0 - 1_900_000_000.0.truncatingRemainder(dividingBy: 4096)
    var swapFree = 1_073_737_728.0
    let fsSize = 52_521_566_208.0
    var fsAvail = 30_123_458_560.0
    var disk = [2_345_678_848.0, 9_876_543_488.0]
    var network = [123_456_789_012.0, 98_765_432_109.0]
    var switches = 987_654_321.0
    let boot = 1_763_200_000.0

    init(seed: UInt64) { random = Random(state: seed) }

    static func round2(_ value: Double) -> Double { (value * 100).rounded() / 100 }

    mutating func next(into values: inout [Double]) {
        let user = Double(random.int(20...300)) / 100
        let system = Double(random.int(10...90)) / 100
        let iowait = Double(random.int(0...25)) / 100
        let idle = 10 - user - system - iowait
        let previousIdle = cpu[0]
        cpu[0] = Self.round2(cpu[0] + idle)
        cpu[1] = Self.round2(cpu[1] + user)
        cpu[2] = Self.round2(cpu[2] + system)
        cpu[3] = Self.round2(cpu[3] + iowait)
        load[0] = Self.round2(min(4, max(0, load[0] + Double(random.int(-10...10)) / 100)))
        load[1] = Self.round2(load[1] + (load[0] - load[1]) / 30)
        load[2] = Self.round2(load[2] + (load[0] - load[2]) / 90)
        available = min(memTotal - 1_000_000_000, max(500_000_000, available + Double(random.int(-300...300)) * 4096))
        available -= available.truncatingRemainder(dividingBy: 4096)
        if random.int(0...20) == 0 { cached += Double(random.int(-50...60)) * 4096 }
        if random.int(0...2000) == 0 { swapFree -= Double(random.int(1...100)) * 4096 }
        if random.int(0...5) == 0 { fsAvail -= Double(random.int(1...64)) * 4096 }
        if random.int(0...3) == 0 { disk[0] += Double(random.int(1...512)) * 512 }
        disk[1] += Double(random.int(0...400)) * 4096
        let received = Double(random.int(1_000...400_000))
        let sent = Double(random.int(800...250_000))
        network[0] += received
        network[1] += sent
        switches += Double(random.int(2_000...20_000))
        values[0] = cpu[0]
        values[1] = cpu[1]
        values[2] = cpu[2]
        values[3] = cpu[3]
        values[4] = load[0]
        values[5] = load[1]
        values[6] = load[2]
        values[7] = memTotal
        values[8] = available
        values[9] = cached
        values[10] = swapFree
        values[11] = fsSize
        values[12] = fsAvail
        values[13] = disk[0]
        values[14] = disk[1]
        values[15] = network[0]
        values[16] = network[1]
        values[17] = Double(random.int(1...6))
        values[18] = switches
        values[19] = boot
        values[20] = 1
        // The derived gauges, rounded as the collector rounds them.
        values[21] = HostSummary.rounded(100 * (1 - (cpu[0] - previousIdle) / 10), digits: 2)
        values[22] = HostSummary.rounded(100 * (1 - available / memTotal), digits: 2)
        values[23] = HostSummary.rounded(100 * (fsSize - fsAvail) / fsSize, digits: 2)
        values[24] = HostSummary.rounded(load[0] / 2, digits: 3)
        values[25] = HostSummary.rounded((received + sent) / 10, digits: 0)
    }
}

func makeDatabase(_ path: String) throws -> DatabasePool {
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    let pool = try StewardDatabase.open(path: path)
    let migrations = try locateMigrations()
    try MigrationRunner.load(directory: migrations).migrate(pool, databasePath: path)
    return pool
}

func locateMigrations() throws -> String {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    for _ in 0..<6 {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.path + "/migrations/0001_core.sql") { return url.path + "/migrations" }
    }
    let cwd = FileManager.default.currentDirectoryPath + "/migrations"
    guard FileManager.default.fileExists(atPath: cwd) else { throw BenchError("run from the repository root: migrations/ not found") }
    return cwd
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

func addHosts(_ database: DatabasePool, count: Int, prefix: String = "host") throws -> [StewardKit.Host] {
    let store = HostStore(database: database)
    return try (1...count).map { index in
        var settings = HostSettings()
        settings.name = String(format: "\(prefix)-%03d", index)
        settings.address = "10.0.\(index / 250).\(index % 250 + 1)"
        settings.groups = ["rack-\(index % 4 + 1)"]
        settings.metricsURL = "http://\(settings.address):9100/metrics"
        return try store.create(settings, by: AuditActor(actor: "bench"), now: Date())
    }
}

/// Ingest `steps` scrapes of every host starting at `start`; returns samples appended. Flushes every `flushEvery` steps.
func ingest(
    _ store: MetricStore, hosts: [StewardKit.Host], start: Int64, steps: Int, flushEvery: Int, afterFlush: ((Int64) -> Void)? = nil,
    sink: ((Int, Int64, [Double]) -> Void)? = nil
) throws -> Int {
    var generators = hosts.map { HostGenerator(seed: UInt64($0.id) &* 7919) }
    let ids = try hosts.map { host in try store.resolve(hostID: host.id, series: HostGenerator.series) }
    var values = [Double](repeating: 0, count: HostGenerator.series.count)
    var total = 0
    for step in 0..<steps {
        let time = start + Int64(step) * 10_000
        for index in hosts.indices {
            generators[index].next(into: &values)
            total += store.append(time: time, series: ids[index], values: values)
            sink?(index, time, values)
        }
        if (step + 1) % flushEvery == 0 || step == steps - 1 {
            try store.flush()
            afterFlush?(time)
        }
    }
    return total
}

func fileSize(_ path: String) -> Int64 { StewardDatabase.sizeOnDisk(path: path) }

func checkpoint(_ database: DatabasePool) throws {
    try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

func time<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try body()
    return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}

func format(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

// MARK: metrics

func benchMetrics(_ options: Options) throws {
    let hostCount = options.int("hosts", 100)
    let days = options.int("days", 7)
    let longDays = options.int("long-days", 30)
    let promDays = options.int("prometheus-days", 1)
    let work = options.string("work") ?? NSTemporaryDirectory() + "steward-bench-metrics"
    try? FileManager.default.removeItem(atPath: work)
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    let cores = ProcessInfo.processInfo.activeProcessorCount
    say(
        "steward-bench metrics: \(hostCount) hosts x \(HostGenerator.series.count) series (20 node_exporter + 6 derived), 10 s interval, \(days) days"
    )
    say("machine: \(cores) cores; work directory \(work)")

    let path = work + "/metrics.db"
    let database = try makeDatabase(path)
    let emptySize = fileSize(path)
    let hosts = try addHosts(database, count: hostCount)
    let store = try MetricStore(database: database)
    let steps = days * 8640
    let end = Int64(1_790_000_000_000) / 86_400_000 * 86_400_000  // midnight UTC
    let start = end - Int64(steps) * 10_000
    let (samples, seconds) = try time { try ingest(store, hosts: hosts, start: start, steps: steps, flushEvery: 360) }
    try checkpoint(database)
    let size = fileSize(path) - emptySize
    let payload = try database.read { db in
        try Row.fetchAll(
            db, sql: "SELECT resolution, SUM(length(data)) AS bytes, SUM(samples) AS n, COUNT(*) AS chunks FROM metric_chunks GROUP BY resolution")
    }
    say("")
    say(
        "ingest: \(samples) samples in \(format(seconds)) s = \(format(Double(samples) / seconds / 1000, 0))k samples/s (goal >= 500k), flushing every 360 steps"
    )
    say(
        "disk, whole file: \(size) bytes over an empty database = \(format(Double(size) / Double(samples))) bytes/sample (goal <= 2.0), with "
            + "the 1h rollups and SQLite's row and page overhead (1m rollups are written when raw samples age out of the 7-day raw tier)")
    for row in payload {
        let resolution = MetricResolution(rawValue: row["resolution"]) ?? .raw
        let bytes: Int64 = row["bytes"]
        let n: Int64 = row["n"]
        let chunks: Int64 = row["chunks"]
        let perSample =
            resolution == .raw
            ? ", \(format(Double(bytes) / Double(samples))) bytes per raw sample (goal <= 2.0; Prometheus reaches 1.3-1.8)"
            : ", \(format(Double(bytes) / Double(n))) bytes per bucket (5 columns), \(format(Double(bytes) / Double(samples))) per raw sample"
        say("  \(resolution.label) chunks: \(chunks), \(bytes) bytes of chunk data\(perSample)")
    }

    // A second host with a month of data for the long query.
    let long = try addHosts(database, count: 1, prefix: "long")
    let longSteps = longDays * 8640
    let longStart = end - Int64(longSteps) * 10_000
    _ = try ingest(store, hosts: long, start: longStart, steps: longSteps, flushEvery: 360)
    try checkpoint(database)

    let beforeVacuum = fileSize(path)
    let (_, vacuumSeconds) = try time { try database.writeWithoutTransaction { db in try db.execute(sql: "VACUUM") } }
    try checkpoint(database)
    let packed = fileSize(path) - emptySize
    let longSamples = Int64(longSteps) * Int64(HostGenerator.series.count)
    say(
        "after adding \(longSamples) samples for the 30-day host: \(beforeVacuum - emptySize) bytes; VACUUM (\(format(vacuumSeconds, 1)) s) packs it to "
            + "\(packed) bytes = \(format(Double(packed) / Double(Int64(samples) + longSamples))) bytes/sample with rollups")

    let reopened = try MetricStore(database: database)
    let series = try reopened.series(hostID: long[0].id, name: "node_load1", labels: "").unwrap("the long host's node_load1")
    let range = Int64(longDays) * 86_400_000
    var latencies: [Double] = []
    var points = 0
    for _ in 0..<200 {
        let (result, elapsed) = try time {
            try MetricQuery.evaluate(reopened, series: series, function: .avg, from: end - range, to: end, step: 3_600_000, resolution: .hour)
        }
        points = result.values.compactMap { $0 }.count
        latencies.append(elapsed * 1000)
    }
    say("")
    say(
        "query: \(longDays) days of one series at 1 h steps (\(points) points from 1h rollups): p50 \(format(percentile(latencies, 0.5), 3)) ms, "
            + "p99 \(format(percentile(latencies, 0.99), 3)) ms (goal < 10 ms)")
    var rawLatencies: [Double] = []
    for _ in 0..<50 {
        let (_, elapsed) = try time {
            try MetricQuery.evaluate(reopened, series: series, function: .avg, from: end - 86_400_000, to: end, step: 60_000, resolution: .raw)
        }
        rawLatencies.append(elapsed * 1000)
    }
    say("query: 1 day of one series at 1 min steps from raw samples (8640 decoded): p50 \(format(percentile(rawLatencies, 0.5), 3)) ms")

    let dashboard = MetricsDashboard(store: reopened, hosts: HostStore(database: database), database: database)
    var fleetLatencies: [Double] = []
    var rows = 0
    for _ in 0..<50 {
        let (fleet, elapsed) = try time { try dashboard.fleet(now: end) }
        rows = fleet.rows.count
        fleetLatencies.append(elapsed * 1000)
    }
    say(
        "fleet overview: \(rows) hosts x 5 gauges with their last hour (60 points each): p50 \(format(percentile(fleetLatencies, 0.5), 2)) ms, "
            + "p99 \(format(percentile(fleetLatencies, 0.99), 2)) ms (goal < 50 ms)")

    // Tiering at its steady state: the raw tier reaches the oldest day, as the hourly retention run meets it. Its raw
    // chunks are rolled up into 1-minute chunks (timed), then deleted; a minute query over that day reads the same.
    let probe = try reopened.series(hostID: hosts[0].id, name: "node_load1", labels: "").unwrap("node_load1 of the first host")
    let agedTo = start + 86_400_000
    let minutesBefore = try reopened.rollups(probe.id, .minute, from: start, to: agedTo - 1)
    let (written, rollSeconds) = try time { try MetricStore.rollUpAgingRaw(database, endingBefore: agedTo) }
    let agedSamples = try database.write { db -> Int64 in
        let count =
            try Int64.fetchOne(db, sql: "SELECT SUM(samples) FROM metric_chunks WHERE resolution = 0 AND end_ms < ?", arguments: [agedTo]) ?? 0
        try db.execute(sql: "DELETE FROM metric_chunks WHERE resolution = 0 AND end_ms < ?", arguments: [agedTo])
        return count
    }
    let minuteBytes = try database.read { db in
        try Int64.fetchOne(db, sql: "SELECT SUM(length(data)) FROM metric_chunks WHERE resolution = 60000") ?? 0
    }
    let minutesAfter = try MetricStore(database: database).rollups(probe.id, .minute, from: start, to: agedTo - 1)
    let same =
        minutesBefore.count == minutesAfter.count
        && zip(minutesBefore, minutesAfter).allSatisfy { $0.start == $1.start && $0.count == $1.count && $0.sum == $1.sum && $0.last == $1.last }
    say("")
    say(
        "tiering: the oldest day's raw chunks (\(agedSamples) samples) rolled up into \(written) 1m chunks in \(format(rollSeconds, 1)) s, then deleted; "
            + "1m chunk data \(format(Double(minuteBytes) / Double(max(agedSamples, 1)))) bytes per aged raw sample; a 1-day minute query reads "
            + (same
                ? "the same \(minutesAfter.count) buckets as before"
                : "DIFFERENT buckets (\(minutesBefore.count) before, \(minutesAfter.count) after)"))

    if promDays > 0 { try comparePrometheus(hostCount: hostCount, days: promDays, end: end, work: work) }
}

extension Optional {
    func unwrap(_ what: String) throws -> Wrapped {
        guard let self else { throw BenchError("\(what) not found") }
        return self
    }
}

// MARK: alerts

/// 1,000 rules over 100 hosts evaluated against an hour of node_exporter-shaped data: the time of one cycle.
func benchAlerts(_ options: Options) throws {
    let hostCount = options.int("hosts", 100)
    let ruleCount = options.int("rules", 1000)
    let cycles = options.int("cycles", 5)
    let work = try freshWorkDirectory(options, "alerts")
    say(
        "steward-bench alerts: \(ruleCount) rules x \(hostCount) hosts, \(cycles) cycles; machine: \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
    let database = try makeDatabase(work + "/alerts.db")
    let hosts = try addHosts(database, count: hostCount)
    let store = try MetricStore(database: database)
    let now = Int64(1_790_000_000_000)
    let (samples, ingestSeconds) = try time { try ingest(store, hosts: hosts, start: now - 3_600_000, steps: 360, flushEvery: 360) }
    say("data: \(samples) samples (1 hour, 10 s) ingested in \(format(ingestSeconds, 1)) s")
    // A mix: the derived gauges with short windows, node series with label filters, rates, and predictions.
    let shapes: [(metric: String, matchers: String, aggregation: AlertRule.Aggregation, window: Int, warn: Double)] = [
        (HostSummary.cpuPercent, "", .avg, 300, 80), (HostSummary.memoryPercent, "", .avg, 300, 90),
        (HostSummary.filesystemPercent, "", .max, 300, 85), (HostSummary.loadPerCore, "", .avg, 900, 1.5),
        (HostSummary.up, "", .max, 60, 2), ("node_load1", "", .max, 600, 3),
        ("node_cpu_seconds_total", "mode=iowait", .rate, 300, 0.2), ("node_network_receive_bytes_total", "device=eth0", .rate, 300, 1e7),
        ("node_filesystem_avail_bytes", "mountpoint=/", .min, 600, 1e9), (HostSummary.filesystemPercent, "", .predictLinear, 3600, 100),
    ]
    let rules = AlertRuleStore(database: database)
    for index in 0..<ruleCount {
        let shape = shapes[index % shapes.count]
        var rule = AlertRule()
        rule.name = "rule \(index)"
        rule.metric = shape.metric
        rule.matchers = shape.matchers
        rule.aggregation = shape.aggregation
        // Ten windows per shape: 100 distinct queries per host, each shared by 10 rules that differ in thresholds.
        rule.windowSeconds = shape.window + (index / shapes.count % 10) * 30
        rule.horizonSeconds = shape.aggregation == .predictLinear ? 86400 : 0
        rule.comparison = shape.metric == "node_filesystem_avail_bytes" ? .below : .above
        rule.warnThreshold = shape.warn * (1 + Double(index / shapes.count) / 1000)
        rule.forSeconds = 60
        rule.summary = "{{host}} {{value}}"
        _ = try rules.create(rule, by: AuditActor(actor: "bench"), now: Date())
    }
    let evaluator = try AlertEvaluator(
        database: database, hosts: HostStore(database: database), metrics: store, sources: [], intervalSeconds: 15,
        logger: .init(label: "bench"), clock: { EpochMilliseconds.date(now) })
    let (durations, transitions) = try evaluationCycles(evaluator, cycles)
    say(
        "cycle: \(ruleCount * hostCount) rule-host evaluations; first \(format(durations[0], 0)) ms (writes every new state), "
            + "then p50 \(format(percentile(Array(durations.dropFirst()), 0.5), 0)) ms, max \(format(durations.dropFirst().max() ?? 0, 0)) ms (goal < 1000 ms); "
            + "\(transitions) transitions recorded")
}

/// The bench's work directory (`--work`, or one under the temporary directory), emptied.
func freshWorkDirectory(_ options: Options, _ name: String) throws -> String {
    let work = options.string("work") ?? NSTemporaryDirectory() + "steward-bench-" + name
    try? FileManager.default.removeItem(atPath: work)
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    return work
}

/// `cycles` evaluation cycles: each one's milliseconds, and the transitions they recorded.
func evaluationCycles(_ evaluator: AlertEvaluator, _ cycles: Int) throws -> (durations: [Double], transitions: Int) {
    var durations: [Double] = []
    var transitions = 0
    for _ in 0..<cycles {
        let (changed, seconds) = try time { try evaluator.evaluateNow() }
        transitions += changed.count
        durations.append(seconds * 1000)
    }
    return (durations, transitions)
}

// MARK: Prometheus

func comparePrometheus(hostCount: Int, days: Int, end: Int64, work: String) throws {
    let promtool = "/usr/bin/promtool"
    let prometheus = "/usr/bin/prometheus"
    guard FileManager.default.isExecutableFile(atPath: promtool), FileManager.default.isExecutableFile(atPath: prometheus) else {
        say("\nprometheus: not installed (Debian's prometheus package); comparison skipped")
        return
    }
    say("")
    say("comparison with Prometheus 2 (Debian's prometheus): the same \(hostCount) hosts, \(days) day(s), same values")
    let steps = days * 8640
    let start = end - Int64(steps) * 10_000
    // Steward on exactly this data.
    let path = work + "/compare.db"
    let database = try makeDatabase(path)
    let emptySize = fileSize(path)
    let hosts = try addHosts(database, count: hostCount)
    let store = try MetricStore(database: database)
    // The OpenMetrics file for promtool, written family by family as the format wants.
    let text = work + "/data.om"
    FileManager.default.createFile(atPath: text, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: text))
    // lines[series][host]: one text per series and host, appended in time order.
    var lines: [[String]] = Array(repeating: Array(repeating: "", count: hosts.count), count: HostGenerator.series.count)
    let prefixes = HostGenerator.series.map { entry in
        hosts.map { host in "\(entry.name){host=\"\(host.name)\"" + (entry.labels.isEmpty ? "" : "," + entry.labels) + "} " }
    }
    let samples = try ingest(store, hosts: hosts, start: start, steps: steps, flushEvery: 360, afterFlush: nil) { hostIndex, time, values in
        let seconds = String(time / 1000)
        for (index, value) in values.enumerated() {
            lines[index][hostIndex] += prefixes[index][hostIndex] + "\(value) " + seconds + "\n"
        }
    }
    try checkpoint(database)
    let stewardBytes = fileSize(path) - emptySize
    // Family by family (the series of one metric name together), then series by series, each in time order.
    var families: [String: [Int]] = [:]
    var order: [String] = []
    for (index, entry) in HostGenerator.series.enumerated() {
        if families[entry.name] == nil { order.append(entry.name) }
        families[entry.name, default: []].append(index)
    }
    for name in order {
        handle.write("# TYPE \(name) gauge\n".data(using: .utf8)!)
        for index in families[name]! {
            for text in lines[index] { handle.write(Data(text.utf8)) }
            lines[index] = []
        }
    }
    handle.write("# EOF\n".data(using: .utf8)!)
    try handle.close()
    let blocks = work + "/prometheus"
    say(
        "  Steward: \(samples) samples in \(stewardBytes) bytes = \(format(Double(stewardBytes) / Double(samples))) bytes/sample with 1h rollups; "
            + "raw chunk data alone \(format(Double(try rawBytes(database)) / Double(samples))) bytes/sample")
    let (_, importSeconds) = try time { try run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", text, blocks]) }
    try? FileManager.default.removeItem(atPath: text)
    // Prometheus compacts the 2 h blocks promtool writes once it runs; measure after that settles.
    let port = 19090
    let server = Process()
    server.executableURL = URL(fileURLWithPath: prometheus)
    let config = work + "/prometheus.yml"
    try "global:\n  scrape_interval: 1h\n".write(toFile: config, atomically: true, encoding: .utf8)
    server.arguments = [
        "--config.file=\(config)", "--storage.tsdb.path=\(blocks)", "--storage.tsdb.retention.time=100y",
        "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
    ]
    server.standardOutput = FileHandle.nullDevice
    server.standardError = FileHandle.nullDevice
    try server.run()
    defer {
        server.terminate()
        server.waitUntilExit()
    }
    // Its compactor runs once a minute; wait until the block count has not changed for 75 s (at most 6 minutes).
    var lastCount = -1
    var stable = 0
    for _ in 0..<72 where stable < 15 {
        Thread.sleep(forTimeInterval: 5)
        let count = (try? FileManager.default.contentsOfDirectory(atPath: blocks).filter { $0.hasPrefix("01") }.count) ?? 0
        stable = count == lastCount ? stable + 1 : 0
        lastCount = count
    }
    let promBytes = directorySize(blocks, excluding: ["wal", "chunks_head", "queries.active", "lock"])
    say("  import: promtool took \(format(importSeconds, 1)) s; Prometheus kept \(lastCount) block(s) after compaction")
    say(
        "  disk:  Steward \(stewardBytes) bytes = \(format(Double(stewardBytes) / Double(samples))) bytes/sample (with 1h rollups); "
            + "Prometheus \(promBytes) bytes = \(format(Double(promBytes) / Double(samples))) bytes/sample (raw only); "
            + "ratio Steward/Prometheus \(format(Double(stewardBytes) / Double(max(promBytes, 1))))")
    // The same question to both: the day's hourly average of one series. Steward reopens its store first, so only
    // the chunks still being filled are in memory, as after a restart.
    let reopened = try MetricStore(database: database)
    let series = try reopened.series(hostID: hosts[0].id, name: "node_load1", labels: "").unwrap("node_load1")
    var ours: [Double] = []
    for _ in 0..<50 {
        let (_, elapsed) = try time {
            try MetricQuery.evaluate(reopened, series: series, function: .avg, from: start, to: end, step: 3_600_000, resolution: .minute)
        }
        ours.append(elapsed * 1000)
    }
    let query = "avg_over_time(node_load1{host=\"\(hosts[0].name)\"}[1h])"
    var components = URLComponents(string: "http://127.0.0.1:\(port)/api/v1/query_range")!
    components.queryItems = [
        .init(name: "query", value: query), .init(name: "start", value: String(start / 1000 + 3600)), .init(name: "end", value: String(end / 1000)),
        .init(name: "step", value: "3600"),
    ]
    var theirs: [Double] = []
    var answered = 0
    for attempt in 0..<60 {
        let (body, elapsed) = try time { try fetch(components.url!) }
        if body.contains("\"status\":\"success\""), body.contains("\"values\"") {
            answered += 1
            if attempt >= 0 { theirs.append(elapsed * 1000) }
        } else {
            Thread.sleep(forTimeInterval: 0.5)
        }
        if answered >= 50 { break }
    }
    say(
        "  query: 1 day of one series, hourly average (Steward from 1m buckets computed from raw samples): Steward p50 \(format(percentile(ours, 0.5), 3)) ms in-process; "
            + (theirs.isEmpty ? "Prometheus did not answer" : "Prometheus p50 \(format(percentile(theirs, 0.5), 3)) ms over HTTP on loopback"))
}

func rawBytes(_ database: DatabasePool) throws -> Int64 {
    try database.read { db in try Int64.fetchOne(db, sql: "SELECT SUM(length(data)) FROM metric_chunks WHERE resolution = 0") ?? 0 }
}

func directorySize(_ path: String, excluding: Set<String>) -> Int64 {
    guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
    var total: Int64 = 0
    while let item = enumerator.nextObject() as? String {
        if excluding.contains(where: { item == $0 || item.hasPrefix($0 + "/") }) { continue }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + item)
        if attributes?[.type] as? FileAttributeType == .typeRegular { total += (attributes?[.size] as? NSNumber)?.int64Value ?? 0 }
    }
    return total
}

func run(_ argv: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    let pipe = Pipe()
    process.standardError = pipe
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let errors = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchError("\(argv.joined(separator: " ")) failed: \(String(decoding: errors.suffix(2000), as: UTF8.self))")
    }
}

func fetch(_ url: URL) throws -> String {
    let semaphore = DispatchSemaphore(value: 0)
    let result = ResultBox()
    URLSession.shared.dataTask(with: url) { data, _, _ in
        result.text = data.map { String(decoding: $0, as: UTF8.self) } ?? ""
        semaphore.signal()
    }.resume()
    semaphore.wait()
    return result.text
}

final class ResultBox: @unchecked Sendable { var text = "" }

// MARK: crash test driver

/// Ingest (until killed) 10 s steps of simulated time as fast as it can, flushing every step; after each flush print "committed <ms>".
func crashIngest(_ options: Options) throws {
    guard let path = options.string("database") else { throw BenchError("--database FILE is required") }
    let database = try makeDatabase(path)
    let hosts = try addHosts(database, count: options.int("hosts", 5))
    let store = try MetricStore(database: database)
    say("ready")
    _ = try ingest(store, hosts: hosts, start: 1_790_000_000_000, steps: 100_000_000, flushEvery: 1) { time in say("committed \(time)") }
}

/// Reopen the store and check that it holds exactly the generated samples up to `through`, for every series.
func crashVerify(_ options: Options) throws {
    guard let path = options.string("database"), let through = options.string("through").flatMap(Int64.init) else {
        throw BenchError("--database FILE and --through MS are required")
    }
    let database = try StewardDatabase.open(path: path)
    let check = try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    guard check == ["ok"] else { throw BenchError("integrity_check: \(check.joined(separator: "; "))") }
    let store = try MetricStore(database: database)
    let hosts = try HostStore(database: database).all()
    var generators = hosts.map { HostGenerator(seed: UInt64($0.id) &* 7919) }
    var values = [Double](repeating: 0, count: HostGenerator.series.count)
    let start = Int64(1_790_000_000_000)
    var expected: [[RawSamples]] = hosts.map { _ in Array(repeating: RawSamples(), count: HostGenerator.series.count) }
    var time = start
    while time <= through {
        for index in hosts.indices {
            generators[index].next(into: &values)
            for (position, value) in values.enumerated() {
                expected[index][position].times.append(time)
                expected[index][position].values.append(value)
            }
        }
        time += 10_000
    }
    var checked = 0
    var beyond = 0
    for (index, host) in hosts.enumerated() {
        for (position, entry) in HostGenerator.series.enumerated() {
            let series = try store.series(hostID: host.id, name: entry.name, labels: entry.labels).unwrap("\(host.name) \(entry.name)")
            let stored = try store.raw(series.id, from: start, to: .max)
            let upTo = stored.times.firstIndex { $0 > through } ?? stored.count
            beyond += stored.count - upTo
            let kept = RawSamples(times: Array(stored.times[..<upTo]), values: Array(stored.values[..<upTo]))
            guard kept == expected[index][position] else {
                throw BenchError(
                    "\(host.name) \(entry.name){\(entry.labels)}: \(kept.count) samples up to \(through), expected \(expected[index][position].count)"
                )
            }
            checked += kept.count
        }
    }
    say("ok: integrity_check ok; all \(checked) samples committed through \(through) are present (\(beyond) later ones also reached the disk)")
}

let arguments = CommandLine.arguments.dropFirst()
let options = Options(arguments.dropFirst())
do {
    switch arguments.first {
    case "metrics": try benchMetrics(options)
    case "alerts": try benchAlerts(options)
    case "promql": try benchPromQL(options)
    case "ingest": try crashIngest(options)
    case "verify": try crashVerify(options)
    case "backup": try await benchBackup(options)
    case "rollout": try await benchRollout(options)
    case "retention": try await benchRetention(options)
    case "logs": try await benchLogs(options)
    case "slo": try benchSLO(options)
    default:
        say("usage: steward-bench metrics [--hosts N] [--days N] [--long-days N] [--prometheus-days N] [--work DIR]")
        say("       steward-bench alerts [--hosts N] [--rules N] [--cycles N] [--work DIR]")
        say("       steward-bench promql [--hosts N] [--rules N] [--cycles N] [--days N] [--work DIR]")
        say("       steward-bench ingest --database FILE [--hosts N]")
        say("       steward-bench verify --database FILE --through MS")
        say("       steward-bench backup [--megabytes N] [--rounds N] [--work DIR]")
        say("       steward-bench rollout [--hosts N] [--waves N] [--rounds N] [--work DIR]")
        say("       steward-bench retention [--hosts N] [--days N] [--reference-seconds N] [--batch N] [--work DIR]")
        say("       steward-bench logs [--lines N] [--hosts N] [--runs N] [--work DIR]")
        say("       steward-bench slo [--slos N] [--days N] [--cycles N] [--work DIR]")
        exit(2)
    }
} catch {
    FileHandle.standardError.write("steward-bench: \(error)\n".data(using: .utf8)!)
    exit(1)
}
