import Foundation
import GRDB
import Logging
import StewardKit

// MARK: slo

/// 200 probe SLOs (30-day windows) over 30 days of their checks' runs, one a minute each: the engine's steady cycle
/// (counting the minute under way, storing each minute that ends, eight window lookups per SLO), beside a recount of
/// every window from the raw samples in the same run, which is what evaluating the SLOs without stored minutes costs.
func benchSLO(_ options: Options) throws {
    let sloCount = options.int("slos", 200)
    let days = options.int("days", 30)
    let cycles = options.int("cycles", 20)
    let work = try freshWorkDirectory(options, "slo")
    say(
        "steward-bench slo: \(sloCount) SLOs over \(days) days, \(cycles) cycles 15 s apart; machine: \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
    let database = try makeDatabase(work + "/slo.db")
    let hosts = try addHosts(database, count: 20)
    let metrics = try MetricStore(database: database)
    let who = AuditActor(actor: "bench")
    let end = Int64(1_790_000_000_000) - Int64(1_790_000_000_000) % 60_000
    let start = end - Int64(days) * 86_400_000
    let checks = CheckStore(database: database)
    var series: [Int64] = []
    var made: [Check] = []
    for index in 0..<sloCount {
        var check = Check()
        check.name = "service-\(index)"
        check.target = "https://service-\(index).example.com/health"
        check.intervalSeconds = 60
        check.hostID = hosts[index % hosts.count].id
        let saved = try checks.save(check, by: who, now: EpochMilliseconds.date(start))
        made.append(saved)
        series.append(try metrics.resolve(hostID: saved.hostID, series: [("probe_success", saved.seriesLabels, .gauge)])[0])
    }
    // Each check fails about 1 run in 1,500, and check i is down for i minutes on day 20 (an incident to count).
    var random = Random(state: 7)
    var truth: [[(Int64, Bool)]] = Array(repeating: [], count: sloCount)
    let (_, ingestSeconds) = try time {
        var time = start
        var step = 0
        while time < end {
            var batch: [(series: Int64, time: Int64, value: Double)] = []
            for index in 0..<sloCount {
                let offset: Int64 = Int64((index * 97) % 60_000)
                let at: Int64 = time + offset
                let incidentStart: Int64 = start + 20 * 86_400_000
                let incident: Bool = at >= incidentStart && at < incidentStart + Int64(index) * 60_000
                let lucky: Bool = random.next() % 1500 != 0
                let good: Bool = !incident && lucky
                batch.append((series[index], at, good ? 1 : 0))
                truth[index].append((at, good))
            }
            _ = metrics.append(batch)
            time += 60_000
            step += 1
            if step % 1440 == 0 { _ = try metrics.flush() }
        }
        _ = try metrics.flush()
    }
    say("data: \(sloCount * days * 1440) runs of \(sloCount) checks stored in \(format(ingestSeconds, 1)) s")

    // The SLOs, and the minutes Steward would hold after running the whole time: every minute for 3 days, the hour's
    // last minute before that, with running sums.
    let store = SLOStore(database: database)
    var slos: [SLO] = []
    for (index, check) in made.enumerated() {
        var slo = SLO()
        slo.name = "slo-\(index)"
        slo.checkID = check.id
        slo.objective = 99.9
        slo.window = .days30
        slo.scopeHosts = [hosts[index % hosts.count].name]
        slos.append(try store.save(slo, by: who, now: EpochMilliseconds.date(start)))
    }
    let fine = end - SLOEngine.fineMilliseconds
    let (rows, prefillSeconds) = try time { () -> Int in
        var rows = 0
        try database.write { db in
            let insert = try db.makeStatement(
                sql: "INSERT INTO slo_minutes (slo_id, minute, good, total, cum_good, cum_total) VALUES (?, ?, ?, ?, ?, ?)")
            for (index, slo) in slos.enumerated() {
                var good = 0.0
                var total = 0.0
                for (at, ok) in truth[index] where at < end {
                    good += ok ? 1 : 0
                    total += 1
                    let minute = at - at % 60_000
                    guard minute >= fine || minute % 3_600_000 == 3_540_000 else { continue }
                    try insert.execute(arguments: [slo.id, minute, ok ? 1 : 0, 1, good, total])
                    rows += 1
                }
            }
        }
        return rows
    }
    say("stored minutes: \(rows) rows for \(sloCount) SLOs, written in \(format(prefillSeconds, 1)) s")

    // Steady cycles: each adds the runs since the previous one, as the checks would.
    var logger = Logger(label: "bench")
    logger.logLevel = .critical
    let engine = SLOEngine(database: database, metrics: metrics, hosts: HostStore(database: database), logger: logger)
    var durations: [Double] = []
    var now = end
    var last: [SLOStatus] = []
    for cycle in 0..<cycles {
        now = end + Int64(cycle + 1) * 15_000
        var batch: [(series: Int64, time: Int64, value: Double)] = []
        for index in 0..<sloCount {
            let at = now - 1000 - Int64(index)
            if at > (truth[index].last?.0 ?? 0) + 59_000 {
                batch.append((series[index], at, 1))
                truth[index].append((at, true))
            }
        }
        _ = metrics.append(batch)
        let (statuses, seconds) = try time { try engine.evaluate(at: EpochMilliseconds.date(now)) }
        durations.append(seconds * 1000)
        last = statuses
    }
    let warm = Array(durations.dropFirst())
    say(
        "engine cycle: p50 \(format(percentile(warm, 0.5), 1)) ms, max \(format(warm.max() ?? 0, 1)) ms (first cycle \(format(durations[0], 1)) ms) for \(sloCount) SLOs; goal < 1000 ms"
    )

    // The reference: every window recounted from the raw samples at the last cycle's time.
    let windows: [(String, Int64)] = [("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000), ("3d", 259_200_000), ("30d", 30 * 86_400_000)]
    let current = now - now % 60_000
    let (recount, recountSeconds) = try time { () -> [[String: SLOEvents]] in
        try slos.enumerated().map { index, _ in
            let raw = try metrics.raw(series[index], from: current - 30 * 86_400_000, to: now)
            var result: [String: SLOEvents] = [:]
            for (name, length) in windows {
                var events = SLOEvents()
                for (time, value) in zip(raw.times, raw.values) where time >= current - length {
                    events.total += 1
                    events.good += value >= 0.5 ? 1 : 0
                }
                result[name] = events
            }
            return result
        }
    }
    say(
        "reference, every window recounted from raw samples: \(format(recountSeconds * 1000, 1)) ms a cycle; the engine's cycle is \(format(recountSeconds * 1000 / max(percentile(warm, 0.5), 0.001), 1))x faster"
    )
    // Agreement: windows up to 3 days exactly; the 30-day window's old edge falls on an hour's last stored minute.
    let byName = Dictionary(uniqueKeysWithValues: last.map { ($0.slo.name, $0) })
    var exact = 0
    var worst30 = 0.0
    for (index, slo) in slos.enumerated() {
        guard let status = byName[slo.name] else { continue }
        for (name, _) in windows.dropLast() where status.windows[name] == recount[index][name] { exact += 1 }
        let reference = recount[index]["30d"]!
        worst30 = max(worst30, abs(status.events.total - reference.total) / reference.total)
    }
    say(
        "agreement: \(exact) of \(sloCount * (windows.count - 1)) short windows equal the recount; 30-day totals within \(format(worst30 * 100, 3)) %"
    )
    let spent = last.filter(\.spent).count
    say(
        "budgets: \(spent) of \(sloCount) SLOs spent (a 99.9 % month allows 43 bad runs; check i also fails i runs on day 20 and about 29 at random)"
    )
}
