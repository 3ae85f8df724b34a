import Foundation
import GRDB
import StewardKit
import Synchronization

/// bench/retention: 30 days of node_exporter-shaped metrics for 100 hosts, then the default metrics policy (raw samples
/// 7 days) enforced while an ingest writer keeps appending and flushing the fleet's newest samples. The reference is the
/// same writer for the same time with no enforcement running; the figure that matters is the longest an ingest write
/// waits for the write lock during enforcement (goal ≤ 100 ms).
func benchRetention(_ options: Options) async throws {
    let hostCount = options.int("hosts", 100)
    let days = options.int("days", 30)
    let referenceSeconds = options.int("reference-seconds", 20)
    let batchSize = options.int("batch", 2000)
    let work = options.string("work") ?? NSTemporaryDirectory() + "steward-bench-retention"
    try? FileManager.default.removeItem(atPath: work)
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { if options.string("work") == nil { try? FileManager.default.removeItem(atPath: work) } }
    say(
        "steward-bench retention: \(hostCount) hosts x \(HostGenerator.series.count) series, 10 s interval, \(days) days; policy: raw samples 7 days"
    )
    say("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; work directory \(work)")

    let path = work + "/steward.db"
    // --seed FILE: generating 30 days takes a quarter of an hour; the first run keeps a copy of the generated file
    // (and its end time beside it) there, and later runs start from a copy of it.
    let seed = options.string("seed")
    let database: DatabasePool
    let hosts: [StewardKit.Host]
    let store: MetricStore
    let end: Int64
    if let seed, FileManager.default.fileExists(atPath: seed),
        let saved = try? String(contentsOfFile: seed + ".end", encoding: .utf8), let savedEnd = Int64(saved)
    {
        try FileManager.default.copyItem(atPath: seed, toPath: path)
        database = try StewardDatabase.open(path: path)
        hosts = try HostStore(database: database).all().filter { $0.name.hasPrefix("host-") }
        store = try MetricStore(database: database)
        end = savedEnd
        say("data: copied from \(seed) (\(hosts.count) hosts); database \(fileSize(path) / 1_048_576) MiB")
    } else {
        database = try makeDatabase(path)
        hosts = try addHosts(database, count: hostCount)
        store = try MetricStore(database: database)
        let steps = days * 8640
        end = Int64(Date().timeIntervalSince1970 * 1000) / 10_000 * 10_000
        let start = end - Int64(steps) * 10_000
        let (samples, seconds) = try time { try ingest(store, hosts: hosts, start: start, steps: steps, flushEvery: 360) }
        try checkpoint(database)
        say("data: \(samples) samples ingested in \(format(seconds, 1)) s; database \(fileSize(path) / 1_048_576) MiB")
        if let seed {
            try? FileManager.default.removeItem(atPath: seed)
            try FileManager.default.copyItem(atPath: path, toPath: seed)
            try String(end).write(toFile: seed + ".end", atomically: true, encoding: .utf8)
        }
    }
    try await database.read { db in
        for row in try Row.fetchAll(db, sql: "SELECT resolution, COUNT(*), SUM(length(data)) FROM metric_chunks GROUP BY resolution") {
            say("  chunks at resolution \(row[0] as Int) ms: \(row[1] as Int) rows, \(((row[2] as Int64?) ?? 0) / 1_048_576) MiB")
        }
    }

    // The writer: the fleet's next scrape every `every` ms (Steward scrapes every 10 s), flushed to the database. Before
    // each flush it takes the write lock with an empty transaction: that time is what an ingest write waits for the
    // lock (behind an enforcement batch, or a vacuum step); the flush's own time is reported beside it.
    let every = options.int("every-ms", 250)
    let traceMs = options.int("trace-ms", 0)
    let traceStart = Shared(DispatchTime.now().uptimeNanoseconds)
    let ids = try hosts.map { host in try store.resolve(hostID: host.id, series: HostGenerator.series) }
    let clock = Shared(end)
    let largestLog = Shared(Int64(0))
    @Sendable func writer(until stop: Shared<Bool>) async -> (waits: [Double], flushes: [Double]) {
        var generators = hosts.map { HostGenerator(seed: UInt64($0.id) &* 104_729) }
        var values = [Double](repeating: 0, count: HostGenerator.series.count)
        var waits: [Double] = []
        var flushes: [Double] = []
        while !stop.value.withLock({ $0 }) {
            let now = clock.value.withLock { time -> Int64 in
                time += 10_000
                return time
            }
            for index in hosts.indices {
                generators[index].next(into: &values)
                _ = store.append(time: now, series: ids[index], values: values)
            }
            let asked = DispatchTime.now().uptimeNanoseconds
            try? await database.write { _ in }
            let locked = DispatchTime.now().uptimeNanoseconds
            _ = try? store.flush()
            let log = logSize(path)
            largestLog.value.withLock { $0 = max($0, log) }
            waits.append(Double(locked - asked) / 1e6)
            if traceMs > 0, Double(locked - asked) / 1e6 >= Double(traceMs) {
                let at = Double(asked - traceStart.value.withLock { $0 }) / 1e6
                say("  wait from \(format(at, 0)) ms: \(format(Double(locked - asked) / 1e6, 1)) ms")
            }
            flushes.append(Double(DispatchTime.now().uptimeNanoseconds - locked) / 1e6)
            try? await Task.sleep(for: .milliseconds(every))
        }
        return (waits, flushes)
    }
    func describe(_ values: [Double]) -> String {
        "p50 \(format(percentile(values, 0.5), 2)) ms, p99 \(format(percentile(values, 0.99), 2)) ms, worst \(format(values.max() ?? 0, 2)) ms"
    }

    // Reference: the writer alone.
    let referenceStop = Shared(false)
    let reference = Task { await writer(until: referenceStop) }
    try await Task.sleep(for: .seconds(referenceSeconds))
    referenceStop.value.withLock { $0 = true }
    let alone = await reference.value
    say("reference, no enforcement (\(referenceSeconds) s, a flush of the whole fleet every \(every) ms): \(alone.waits.count) writes")
    say("  wait for the write lock: \(describe(alone.waits))")
    say("  flush (2600 series' chunks and rollups): \(describe(alone.flushes))")

    // --trace-ms N: print each statement on the write connection that took N ms or more, and each ingest wait as long,
    // with their times since enforcement began, to see what a long wait sat behind.
    if traceMs > 0 {
        try await database.writeWithoutTransaction { db in
            db.trace(options: .profile) { event in
                guard case .profile(let statement, let duration) = event, duration * 1000 >= Double(traceMs) else { return }
                let at = Double(DispatchTime.now().uptimeNanoseconds - traceStart.value.withLock { $0 }) / 1e6
                say("  trace \(format(at, 0)) ms: \(format(duration * 1000, 1)) ms \(statement.sql.prefix(90))")
            }
        }
    }

    // Enforcement with the writer running.
    let service = RetentionService(
        database: database, databasePath: path, graceMinutes: 0, sessionIdleMinutes: 30, batchSize: batchSize, pause: .milliseconds(2))
    let before = fileSize(path)
    let stop = Shared(false)
    largestLog.value.withLock { $0 = 0 }
    let concurrent = Task { await writer(until: stop) }
    let enforcementStart = DispatchTime.now().uptimeNanoseconds
    traceStart.value.withLock { $0 = enforcementStart }
    let report = try await service.enforce(now: Date(timeIntervalSince1970: Double(end) / 1000)) { line in
        guard traceMs > 0 else { return }
        say("  log \(format(Double(DispatchTime.now().uptimeNanoseconds - enforcementStart) / 1e6, 0)) ms: \(line)")
    }
    let enforcementSeconds = Double(DispatchTime.now().uptimeNanoseconds - enforcementStart) / 1e9
    stop.value.withLock { $0 = true }
    let during = await concurrent.value
    let after = fileSize(path)
    let deleted = report.deleted[.metrics] ?? (0, 0)
    say(
        "enforcement: \(deleted.rows) raw chunk rows (\(deleted.bytes / 1_048_576) MiB of samples) deleted in batches of up to \(batchSize) rows sized to about 25 ms each, space returned, in \(format(enforcementSeconds, 1)) s"
    )
    say("file: \(before / 1_048_576) MiB -> \(after / 1_048_576) MiB (\((before - after) / 1_048_576) MiB freed)")
    say(
        "write-ahead log: at most \(largestLog.value.withLock { $0 } / 1_048_576) MiB seen by the writer; \(logSize(path) / 1_048_576) MiB after"
    )
    let worst = during.waits.max() ?? 0
    say("ingest during enforcement: \(during.waits.count) writes")
    say("  wait for the write lock: \(describe(during.waits)) (goal: worst <= 100 ms)")
    say("  flush: \(describe(during.flushes))")
    say(
        "ratio to the reference: wait p99 \(format(percentile(during.waits, 0.99) / max(percentile(alone.waits, 0.99), 0.001), 2))x, flush p50 \(format(percentile(during.flushes, 0.5) / max(percentile(alone.flushes, 0.5), 0.001), 2))x, flush worst \(format((during.flushes.max() ?? 0) / max(alone.flushes.max() ?? 1, 0.001), 2))x"
    )
    let oldest = try await database.read { db in
        try Int64.fetchOne(db, sql: "SELECT MIN(start_ms) FROM metric_chunks WHERE resolution = 0")
    }
    let rollups = try await database.read { db in
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM metric_chunks WHERE resolution > 0 AND end_ms < ?", arguments: [end - 7 * 86_400_000])
    }
    say(
        "after: the oldest raw sample is \(format(Double(end - (oldest ?? end)) / 86_400_000, 2)) days old; \(rollups ?? 0) rollup chunks older than 7 days remain"
    )
    say(
        worst <= 100
            ? "ok: no ingest write waited more than 100 ms for the lock" : "MISSED: an ingest write waited \(format(worst, 1)) ms for the lock")
}

/// A value shared between the bench and its writer task.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}

/// The size of a database's write-ahead log file.
func logSize(_ path: String) -> Int64 {
    ((try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size]) as? NSNumber)?.int64Value ?? 0
}
