import Foundation
import GRDB
import Logging
import ServiceLifecycle

/// A PromQL source that sees only the series of some hosts (an SLO's coverage).
struct ScopedSource: PromQL.Source {
    let base: any PromQL.Source
    let hosts: Set<String>?

    func series(matching matchers: [PromQL.Matcher]) throws -> [(id: Int64, labels: PromQL.Labels)] {
        let found = try base.series(matching: matchers)
        guard let hosts else { return found }
        return found.filter { hosts.contains($0.labels["host"] ?? "") }
    }

    func points(_ id: Int64, from: Int64, to: Int64) throws -> [PromQL.Point] { try base.points(id, from: from, to: to) }
}

/// Evaluates every SLO once a cycle: counts good and total events for each minute that ended since the last cycle
/// (stored with running sums, so any window is two lookups), adds the minute under way, and keeps each SLO's status
/// for the pages, the burn-rate alerts and the rollout gate. A new SLO counts the day before it from stored samples.
public final class SLOEngine: Service, @unchecked Sendable {
    public static let backfillMinutes: Int64 = 1440
    /// Minute rows kept: two of the longest windows, so the budget over time can be drawn for a whole window.
    public static let keptMilliseconds: Int64 = 62 * 86_400_000
    /// Minute rows older than this keep one row an hour.
    public static let fineMilliseconds: Int64 = 3 * 86_400_000

    let database: DatabasePool
    let metrics: MetricStore
    let hosts: HostStore
    let checks: CheckStore
    let store: SLOStore
    let interval: Duration
    /// The range a ratio or latency query's `{{.window}}` becomes for one minute's rate: twice the collection interval,
    /// at least a minute, so a rate always has two samples.
    let rateWindowSeconds: Int
    let logger: Logger
    let clock: @Sendable () -> Date
    private let lock = NSLock()
    private var statuses: [Int64: SLOStatus] = [:]
    private var lastRow: [Int64: (minute: Int64, cum: SLOEvents)] = [:]
    private var lastThinning: Int64 = 0
    /// One cycle at a time: the service's and one a saved SLO asks for.
    private let cycle = NSLock()

    public init(
        database: DatabasePool, metrics: MetricStore, hosts: HostStore, intervalSeconds: Int = 15, collectionIntervalSeconds: Int = 15,
        logger: Logger, clock: @escaping @Sendable () -> Date = Date.init
    ) {
        self.database = database
        self.metrics = metrics
        self.hosts = hosts
        checks = CheckStore(database: database)
        store = SLOStore(database: database)
        interval = .seconds(intervalSeconds)
        rateWindowSeconds = max(60, 2 * collectionIntervalSeconds)
        self.logger = logger
        self.clock = clock
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                do {
                    try evaluate()
                } catch {
                    logger.error("SLO evaluation failed", metadata: ["error": "\(error)"])
                }
                do {
                    try await Task.sleep(for: interval)
                } catch { break }
            }
        }
    }

    /// The hosts whose rollouts respect an SLO: a probe SLO that names no hosts covers its check's host; any other
    /// covers the hosts it names (every host when it names none).
    public static func coveredHostIDs(_ slo: SLO, hosts: [Host], checks: [Check]) -> Set<Int64> {
        if slo.sli == .probe, slo.scopeHosts.isEmpty, slo.scopeGroups.isEmpty {
            return Set(checks.filter { $0.id == slo.checkID }.map(\.hostID))
        }
        return Set(hosts.filter(slo.covers).map(\.id))
    }

    /// Forget what is cached of an SLO (it changed or went): the next cycle reads its rows afresh.
    public func forget(_ id: Int64) { lock.withLock { _ = lastRow.removeValue(forKey: id) } }

    /// The newest status of an SLO.
    public func status(_ id: Int64) -> SLOStatus? { lock.withLock { statuses[id] } }

    /// Why only an admin may change or remove `slo` now: it holds a rollout that has not finished, or its budget is
    /// spent. Loosening it then (a lower objective, a fresh SLI, other hosts, its check made to pass) would let
    /// changes go out without the second person an urgent approval takes. Nil when anyone who operates may.
    public func lock(_ slo: SLO) throws -> String? {
        if let hold = try store.holds(slo).first {
            return "SLO \(slo.name) holds rollout \(hold.rollout) (wave \(hold.wave) did not start)"
        }
        if let status = status(slo.id), status.spent {
            return "SLO \(slo.name) has spent its error budget (\(SLOController.percent(status.remaining * 100)) left)"
        }
        return nil
    }

    /// Every SLO's newest status, the least budget left first.
    public func allStatuses() -> [SLOStatus] {
        lock.withLock { Array(statuses.values) }.sorted { ($0.remaining, $0.slo.name) < ($1.remaining, $1.slo.name) }
    }

    // MARK: counting events

    /// Good and total events of one SLO in each minute from `first` through `last` (minute starts), and over
    /// [partialFrom, to] when asked.
    struct Counter {
        let metrics: MetricStore
        let source: any PromQL.Source
        let hostsByName: [String: Host]
        let checks: [Int64: Check]
        let rateWindowSeconds: Int

        func seriesIDs(_ slo: SLO, covered: [Host]) -> [Int64] {
            switch slo.sli {
            case .probe:
                guard let check = slo.checkID.flatMap({ checks[$0] }) else { return [] }
                return metrics.series(hostID: check.hostID, name: "probe_success", labels: check.seriesLabels).map { [$0.id] } ?? []
            case .availability:
                return covered.compactMap { metrics.series(hostID: $0.id, name: HostSummary.up, labels: "")?.id }
            case .ratio, .latency:
                return []
            }
        }

        /// Samples of 0/1 series put into minute buckets: a value of 1 is a good event.
        func sampleBuckets(_ ids: [Int64], from: Int64, to: Int64) throws -> [Int64: SLOEvents] {
            var buckets: [Int64: SLOEvents] = [:]
            for id in ids {
                let raw = try metrics.raw(id, from: from, to: to - 1)
                for (time, value) in zip(raw.times, raw.values) where !value.isNaN {
                    buckets[SLOMath.minute(time), default: SLOEvents()].total += 1
                    if value >= 0.5 { buckets[SLOMath.minute(time), default: SLOEvents()].good += 1 }
                }
            }
            return buckets
        }

        func number(_ query: String, at time: Int64) throws -> Double {
            let expr = try PromQL.parse(SLO.expand(query, window: "\(rateWindowSeconds)s"))
            switch try PromQL.query(expr, source: source, at: time) {
            case .scalar(let value): return value.isFinite ? value : 0
            case .vector(let samples): return samples.map(\.value).filter(\.isFinite).reduce(0, +)
            case .matrix, .string: return 0
            }
        }

        /// A ratio or latency SLI's events in the `seconds` before `time`: each query's per-second rate times the span.
        func queried(_ slo: SLO, at time: Int64, seconds: Double) throws -> SLOEvents {
            let (events, total) = slo.sli == .latency ? slo.latencyQueries : (slo.eventsQuery, slo.totalQuery)
            let totalRate = max(0, try number(total, at: time))
            var counted = max(0, try number(events, at: time))
            if slo.sli == .ratio, slo.ratioCounts == .bad { counted = max(0, totalRate - counted) }
            return SLOEvents(good: min(counted, totalRate) * seconds, total: totalRate * seconds)
        }

        /// Each whole minute's events, oldest first, and the events of the minute under way.
        func count(_ slo: SLO, covered: [Host], minutes: [Int64], now: Int64) throws -> (minutes: [SLOEvents], partial: SLOEvents) {
            switch slo.sli {
            case .probe, .availability:
                let ids = seriesIDs(slo, covered: covered)
                let from = minutes.first ?? SLOMath.minute(now)
                let buckets = try sampleBuckets(ids, from: from, to: now + 1)
                return (minutes.map { buckets[$0] ?? SLOEvents() }, buckets[SLOMath.minute(now)] ?? SLOEvents())
            case .ratio, .latency:
                let whole = try minutes.map { try queried(slo, at: $0 + 60_000, seconds: 60) }
                let sofar = Double(now - SLOMath.minute(now)) / 1000
                return (whole, sofar > 0 ? try queried(slo, at: now, seconds: sofar) : SLOEvents())
            }
        }
    }

    // MARK: a cycle

    /// One cycle at the clock's time (tests pass their own). Returns every SLO's status.
    @discardableResult
    public func evaluate(at time: Date? = nil) throws -> [SLOStatus] {
        try cycle.withLock { try evaluateLocked(at: time) }
    }

    private func evaluateLocked(at time: Date?) throws -> [SLOStatus] {
        let now = EpochMilliseconds.from(time ?? clock())
        let slos = try store.all()
        let allHosts = try hosts.all()
        let enabled = allHosts.filter(\.enabled)
        let checkList = try checks.all()
        let base = PromQL.CachingSource(
            MetricStoreSource(store: metrics, hostNames: Dictionary(uniqueKeysWithValues: enabled.map { ($0.id, $0.name) })), until: now)
        var results: [SLOStatus] = []
        var inserts: [(Int64, Int64, SLOEvents, SLOEvents)] = []
        for slo in slos {
            let covered = enabled.filter(slo.covers)
            // An operator's query must not take the panel down: the PromQL API's read limits, per SLO and cycle.
            let scoped = PromQL.LimitedSource(
                ScopedSource(base: base, hosts: slo.scopeHosts.isEmpty && slo.scopeGroups.isEmpty ? nil : Set(covered.map(\.name))),
                maxSeries: 10_000, maxSamples: 20_000_000)
            let counter = Counter(
                metrics: metrics, source: scoped, hostsByName: Dictionary(uniqueKeysWithValues: enabled.map { ($0.name, $0) }),
                checks: Dictionary(uniqueKeysWithValues: checkList.map { ($0.id, $0) }), rateWindowSeconds: rateWindowSeconds)
            var last = try lastStored(slo.id)
            let current = SLOMath.minute(now)
            let firstDue =
                last.map { $0.minute + 60_000 }
                ?? max(current - Self.backfillMinutes * 60_000, SLOMath.minute(slo.createdAt) - Self.backfillMinutes * 60_000)
            var minutes: [Int64] = []
            var minute = max(firstDue, current - Self.backfillMinutes * 60_000)
            while minute < current && minutes.count < Int(Self.backfillMinutes) {
                minutes.append(minute)
                minute += 60_000
            }
            var status = SLOStatus(slo: slo, at: now, events: SLOEvents(), windowStart: 0, windowLength: 0, windows: [:])
            status.coveredHostIDs = Self.coveredHostIDs(slo, hosts: allHosts, checks: checkList)
            do {
                let counted = try counter.count(slo, covered: covered, minutes: minutes, now: now)
                var cum = last?.cum ?? SLOEvents()
                for (minute, events) in zip(minutes, counted.minutes) {
                    cum = cum + events
                    inserts.append((slo.id, minute, events, cum))
                    last = (minute, cum)
                }
                if let last { lock.withLock { lastRow[slo.id] = last } }
                let newest = last?.cum ?? SLOEvents()
                // The minute under way counts too, once its first minute has passed the window's start.
                func events(since start: Int64) throws -> SLOEvents {
                    newest - (try cumulative(slo.id, before: start, pending: inserts)) + counted.partial
                }
                let window = SLOMath.window(slo.window, at: now)
                status.windowStart = window.start
                status.windowLength = window.length
                status.events = try events(since: window.start)
                for (name, length) in SLOMath.windows { status.windows[name] = try events(since: current - length) }
            } catch {
                status.problem = "\(error)"
            }
            results.append(status)
        }
        try database.write { db in
            let insert = try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO slo_minutes (slo_id, minute, good, total, cum_good, cum_total) VALUES (?, ?, ?, ?, ?, ?)")
            for (id, minute, events, cum) in inserts {
                try insert.execute(arguments: [id, minute, events.good, events.total, cum.good, cum.total])
            }
            if now - lastThinning >= 3_600_000 {
                try db.execute(sql: "DELETE FROM slo_minutes WHERE minute < ?", arguments: [now - Self.keptMilliseconds])
                let fine = now - Self.fineMilliseconds
                try db.execute(
                    sql: """
                        DELETE FROM slo_minutes WHERE minute < ? AND (slo_id, minute) NOT IN
                            (SELECT slo_id, MAX(minute) FROM slo_minutes WHERE minute < ? GROUP BY slo_id, minute / 3600000)
                        """, arguments: [fine, fine])
            }
        }
        if now - lastThinning >= 3_600_000 { lastThinning = now }
        try syncAlertScopes(slos, hosts: allHosts, checks: checkList)
        let known = Set(slos.map(\.id))
        lock.withLock {
            statuses = Dictionary(uniqueKeysWithValues: results.map { ($0.slo.id, $0) })
            lastRow = lastRow.filter { known.contains($0.key) }
        }
        return results.sorted { ($0.remaining, $0.slo.name) < ($1.remaining, $1.slo.name) }
    }

    /// The SLO's newest stored minute and running sums.
    func lastStored(_ id: Int64) throws -> (minute: Int64, cum: SLOEvents)? {
        if let known = lock.withLock({ lastRow[id] }) { return known }
        return try database.read { db in
            try Row.fetchOne(
                db, sql: "SELECT minute, cum_good, cum_total FROM slo_minutes WHERE slo_id = ? ORDER BY minute DESC LIMIT 1", arguments: [id]
            )
            .map { ($0["minute"], SLOEvents(good: $0["cum_good"], total: $0["cum_total"])) }
        }
    }

    /// The running sums just before `start`: the last row of a minute before it, counting rows not yet written.
    func cumulative(_ id: Int64, before start: Int64, pending: [(Int64, Int64, SLOEvents, SLOEvents)]) throws -> SLOEvents {
        if let row = pending.last(where: { $0.0 == id && $0.1 < start }) { return row.3 }
        return try database.read { db in
            try Row.fetchOne(
                db, sql: "SELECT cum_good, cum_total FROM slo_minutes WHERE slo_id = ? AND minute < ? ORDER BY minute DESC LIMIT 1",
                arguments: [id, start]
            ).map { SLOEvents(good: $0["cum_good"], total: $0["cum_total"]) } ?? SLOEvents()
        }
    }

    /// A group's membership or a host's name changes which host an SLO's alerts are filed under.
    func syncAlertScopes(_ slos: [SLO], hosts: [Host], checks: [Check]) throws {
        let rules = try AlertRuleStore(database: database).all().filter { $0.source == SLOAlerts.source }
        for slo in slos {
            let wanted = [SLOStore.anchor(slo, hosts: hosts, checks: checks)?.name ?? "-"]
            for rule in rules where rule.builtin?.hasPrefix("slo:\(slo.id):") == true && rule.scopeHosts != wanted {
                var changed = rule
                changed.scopeHosts = wanted
                try database.write { db in _ = try AlertRuleStore.update(db, id: rule.id, changed, by: AuditActor(actor: "steward"), now: clock()) }
            }
        }
    }

    // MARK: the budget over time

    /// The remaining budget (a share, 1 = untouched) at `points` moments from `from` to `to`, from the stored minutes.
    public func budgetHistory(_ slo: SLO, from: Int64, to: Int64, points: Int) throws -> [(time: Int64, remaining: Double?)] {
        let longest = slo.window.rollingMilliseconds ?? 31 * 86_400_000
        let rows = try database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT minute, cum_good, cum_total FROM slo_minutes WHERE slo_id = ? AND minute >= ? AND minute <= ? ORDER BY minute",
                arguments: [slo.id, from - longest - 3_600_000, to]
            ).map { (minute: $0["minute"] as Int64, cum: SLOEvents(good: $0["cum_good"], total: $0["cum_total"])) }
        }
        guard points > 1, !rows.isEmpty else { return [] }
        /// Running sums at the end of the last minute that ends by `time`.
        func cum(through time: Int64) -> SLOEvents? {
            var low = 0
            var high = rows.count
            while low < high {
                let middle = (low + high) / 2
                if rows[middle].minute + 60_000 <= time { low = middle + 1 } else { high = middle }
            }
            return low == 0 ? nil : rows[low - 1].cum
        }
        let step = (to - from) / Int64(points - 1)
        return (0..<points).map { index in
            let time = from + Int64(index) * step
            guard let end = cum(through: time), time >= rows[0].minute + 60_000 else { return (time, nil) }
            let start = SLOMath.window(slo.window, at: time).start
            let events = end - (cum(through: start) ?? SLOEvents())
            return (time, SLOMath.remaining(events, budgetRatio: slo.budgetRatio))
        }
    }
}

/// The burn-rate alerts of SLOs, as an alert source: each SLO's two rules (built in as `slo:<id>:page` and
/// `slo:<id>:ticket`) are filed under one host and read the engine's newest status.
public enum SLOAlerts {
    public static let source = "slo"

    public enum Kind: String, Sendable, CaseIterable {
        case page, ticket
        var severity: AlertState.Severity { self == .page ? .critical : .warning }
    }

    static func builtin(_ id: Int64, _ kind: Kind) -> String { "slo:\(id):\(kind.rawValue)" }

    /// The SLO and kind a built-in rule key names.
    static func parse(_ builtin: String?) -> (id: Int64, kind: Kind)? {
        let parts = builtin?.split(separator: ":") ?? []
        guard parts.count == 3, parts[0] == "slo", let id = Int64(parts[1]), let kind = Kind(rawValue: String(parts[2])) else { return nil }
        return (id, kind)
    }

    public static func source(engine: SLOEngine) -> AlertSource {
        var source = AlertSource(
            name: Self.source, description: "an SLO's error budget burn (multi-window, multi-burn-rate)",
            observe: { host, rule, now in observe(engine: engine, rule: rule, now: now).0 })
        source.observeLabeled = { host, rule, now in observe(engine: engine, rule: rule, now: now) }
        return source
    }

    static func observe(engine: SLOEngine, rule: AlertRule, now: Int64) -> (AlertObservation, String) {
        guard let (id, kind) = parse(rule.builtin) else { return (.failure("this rule belongs to no SLO"), "") }
        guard let status = engine.status(id) else { return (.noData, "") }
        if let problem = status.problem { return (.failure(problem), "") }
        if now - status.at > 5 * 60_000 { return (.failure("the SLO was last evaluated at \(RFC3339.string(milliseconds: status.at) ?? "?")"), "") }
        let burn = status.burnRates
        let pairs = SLOMath.pairs.filter { $0.severity == kind.severity }
        guard let pair = pairs.first(where: { (burn[$0.long] ?? 0) > $0.factor && (burn[$0.short] ?? 0) > $0.factor }) else {
            return (.level(nil, ((burn[pairs[0].long] ?? 0) * 10).rounded() / 10), "")
        }
        let long = burn[pair.long] ?? 0
        let short = burn[pair.short] ?? 0
        let labels = PrometheusText.canonicalLabels([
            ("factor", PromQL.formatNumber(pair.factor)), ("long_window", pair.long), ("short_window", pair.short),
            ("short_burn_rate", MetricUnit.trim(short, digits: 1)), ("slo", status.slo.name),
        ])
        return (.level(pair.severity, (long * 10).rounded() / 10), labels)
    }
}
