import Foundation
import GRDB
import Logging
import ServiceLifecycle

/// Where state rules get their value for a host: Steward's own records rather than the metric store.
public struct AlertSource: Sendable {
    public var name: String
    public var description: String
    public var observe: @Sendable (Host, AlertRule, Int64) throws -> AlertObservation
    /// For a source whose alerts carry labels (which window pair fired): the observation and its canonical labels.
    public var observeLabeled: (@Sendable (Host, AlertRule, Int64) throws -> (AlertObservation, String))?

    public init(name: String, description: String, observe: @escaping @Sendable (Host, AlertRule, Int64) throws -> AlertObservation) {
        self.name = name
        self.description = description
        self.observe = observe
    }
}

/// Computes a metric rule's value for one host from the metric store.
public enum MetricObservation {
    /// Values already computed in this cycle, by series and query: rules that differ only in thresholds, scope or
    /// messages read each series once.
    public final class Memo {
        var values: [String: Double?] = [:]
        public init() {}
    }

    public static func observe(_ rule: AlertRule, host: Host, store: MetricStore, now: Int64, memo: Memo? = nil) throws -> AlertObservation {
        let matchers = rule.matcherPairs
        let series = store.series(hostID: host.id, name: rule.metric).filter { series in matchers.allSatisfy { series.label($0.0) == $0.1 } }
        let from = now - Int64(rule.windowSeconds) * 1000
        var values: [Double] = []
        for entry in series {
            let key = "\(entry.id):\(rule.aggregation.rawValue):\(rule.windowSeconds):\(rule.horizonSeconds)"
            let value: Double?
            if let memo, let known = memo.values[key] {
                value = known
            } else {
                value = try aggregate(rule, series: entry, store: store, from: from, now: now)
                memo?.values[key] = value
            }
            if let value, value.isFinite { values.append(value) }
        }
        guard let worst = rule.worstIndex(values) else { return .noData }
        return .value(values[worst])
    }

    /// One value for the window: raw samples for windows up to 1 h, 1-minute rollups beyond.
    static func aggregate(_ rule: AlertRule, series: MetricSeries, store: MetricStore, from: Int64, now: Int64) throws -> Double? {
        var times: [Int64] = []
        var values: [Double] = []
        var low = Double.infinity
        var high = -Double.infinity
        var sum = 0.0
        var count = 0.0
        if rule.windowSeconds <= 3600 {
            let raw = try store.raw(series.id, from: from, to: now)
            times = raw.times
            values = raw.values
            for value in raw.values where !value.isNaN {
                low = min(low, value)
                high = max(high, value)
                sum += value
                count += 1
            }
        } else {
            for bucket in try store.rollups(series.id, .minute, from: from, to: now) where bucket.count > 0 {
                times.append(bucket.start + 30_000)
                values.append(rule.aggregation == .rate ? bucket.last : bucket.average)
                low = min(low, bucket.min)
                high = max(high, bucket.max)
                sum += bucket.sum
                count += bucket.count
            }
        }
        guard count > 0 || (rule.aggregation == .last && !values.isEmpty) else { return nil }
        switch rule.aggregation {
        case .avg: return sum / count
        case .min: return low
        case .max: return high
        case .last: return values.last
        case .rate:
            guard times.count >= 2, let first = times.first, let last = times.last, last > first else { return nil }
            var increase = 0.0
            for index in 1..<values.count {
                let delta = values[index] - values[index - 1]
                increase += delta >= 0 ? delta : values[index]
            }
            return increase / (Double(last - first) / 1000)
        case .predictLinear:
            // Least squares through (seconds from now, value); the value at `horizon` seconds from now.
            let points = zip(times, values).filter { $0.1.isFinite }
            guard points.count >= 3 else { return nil }
            let xs = points.map { Double($0.0 - now) / 1000 }
            let ys = points.map(\.1)
            let meanX = xs.reduce(0, +) / Double(xs.count)
            let meanY = ys.reduce(0, +) / Double(ys.count)
            var numerator = 0.0
            var denominator = 0.0
            for (x, y) in zip(xs, ys) {
                numerator += (x - meanX) * (y - meanY)
                denominator += (x - meanX) * (x - meanX)
            }
            guard denominator > 0 else { return meanY }
            let slope = numerator / denominator
            return meanY + slope * (Double(rule.horizonSeconds) - meanX)
        }
    }
}

/// A state change, as recorded in alert_history and handed to notification.
public struct AlertTransition: Sendable {
    public var rule: AlertRule
    public var host: Host
    public var from: AlertState
    public var to: AlertState
}

/// Evaluates every enabled rule for every host in its scope, keeps one state per rule and host in memory and in
/// alert_states (written only when it changes, so a restart neither forgets nor repeats), and records transitions.
public final class AlertEvaluator: Service, @unchecked Sendable {
    let database: DatabasePool
    let rules: AlertRuleStore
    let hosts: HostStore
    let metrics: MetricStore
    let sources: [String: AlertSource]
    let interval: Duration
    let logger: Logger
    let clock: @Sendable () -> Date
    private let lock = NSLock()
    private var states: [String: AlertState] = [:]
    private var listeners: [@Sendable ([AlertTransition]) async -> Void] = []

    public init(
        database: DatabasePool, hosts: HostStore, metrics: MetricStore, sources: [AlertSource], intervalSeconds: Int, logger: Logger,
        clock: @escaping @Sendable () -> Date = Date.init
    ) throws {
        self.database = database
        rules = AlertRuleStore(database: database)
        self.hosts = hosts
        self.metrics = metrics
        self.sources = Dictionary(uniqueKeysWithValues: sources.map { ($0.name, $0) })
        interval = .seconds(intervalSeconds)
        self.logger = logger
        self.clock = clock
        try load()
    }

    static func key(_ rule: Int64, _ host: Int64) -> String { "\(rule):\(host)" }

    /// Called with each cycle's transitions (notification hooks in here).
    public func onTransitions(_ listener: @escaping @Sendable ([AlertTransition]) async -> Void) { lock.withLock { listeners.append(listener) } }

    private func load() throws {
        let rows = try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM alert_states") }
        lock.withLock {
            for row in rows {
                var state = AlertState(since: row["since"])
                state.phase = AlertState.Phase(rawValue: row["state"]) ?? .normal
                state.severity = (row["severity"] as String?).flatMap(AlertState.Severity.init)
                state.value = row["value"]
                state.activeSince = row["active_since"]
                state.lastConditionAt = row["last_condition_at"]
                state.evaluatedAt = row["evaluated_at"]
                state.detail = row["detail"]
                state.labels = row["labels"]
                states[Self.key(row["rule_id"], row["host_id"])] = state
            }
        }
    }

    public func state(rule: Int64, host: Int64) -> AlertState? { lock.withLock { states[Self.key(rule, host)] } }

    /// Every state in memory, for the notifier.
    public func allStates() -> [(rule: Int64, host: Int64, state: AlertState)] {
        lock.withLock {
            states.compactMap { key, state in
                let parts = key.split(separator: ":")
                guard parts.count == 2, let rule = Int64(parts[0]), let host = Int64(parts[1]) else { return nil }
                return (rule, host, state)
            }
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch { break }
                do {
                    try await evaluate()
                } catch {
                    logger.error("alert evaluation failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// One cycle. Returns the transitions it recorded.
    @discardableResult
    public func evaluate() async throws -> [AlertTransition] {
        let transitions = try evaluateNow()
        if !transitions.isEmpty {
            for listener in lock.withLock({ listeners }) { await listener(transitions) }
        }
        return transitions
    }

    /// The synchronous part of a cycle: observe, step every state machine, persist the changes in one transaction.
    public func evaluateNow() throws -> [AlertTransition] {
        let now = EpochMilliseconds.from(clock())
        let allRules = try rules.all()
        let allHosts = try hosts.all().filter(\.enabled)
        var transitions: [AlertTransition] = []
        var changed: [(Int64, Int64, AlertState)] = []
        let memo = MetricObservation.Memo()
        // One cache for the cycle: rules that share a selector read its series once.
        let promSource = PromQL.CachingSource(
            MetricStoreSource(store: metrics, hostNames: Dictionary(uniqueKeysWithValues: allHosts.map { ($0.id, $0.name) })), until: now)
        let hostNames = Set(allHosts.map(\.name))
        for rule in allRules {
            // A PromQL rule is evaluated once for the fleet; each host takes its own series.
            var promResults: Result<[String: [PromQL.Sample]], any Error>?
            if rule.enabled, rule.source == PromQLRule.source {
                promResults = Result { try PromQLRule.evaluate(rule, source: promSource, hosts: hostNames, at: now) }
            }
            for host in allHosts where rule.applies(to: host) {
                let key = Self.key(rule.id, host.id)
                let old = lock.withLock { states[key] } ?? AlertState(since: now)
                var new: AlertState
                if rule.enabled {
                    var observation: AlertObservation
                    var labels = ""
                    do {
                        if let promResults {
                            (observation, labels) = PromQLRule.observe(rule, samples: try promResults.get()[host.name] ?? [])
                        } else if rule.source == "metric" {
                            observation = try MetricObservation.observe(rule, host: host, store: metrics, now: now, memo: memo)
                        } else if let source = sources[rule.source] {
                            if let labeled = source.observeLabeled {
                                (observation, labels) = try labeled(host, rule, now)
                            } else {
                                observation = try source.observe(host, rule, now)
                            }
                        } else {
                            observation = .failure("unknown source \(rule.source)")
                        }
                    } catch {
                        observation = .failure("\(error)")
                    }
                    new = AlertStateMachine.next(old, observation, rule: rule, now: now)
                    new.labels = labels
                } else {
                    // A paused rule resolves what it had raised and stays quiet.
                    guard old.phase != .normal else { continue }
                    new = AlertState(since: now)
                    new.detail = "rule paused"
                }
                let isNew = lock.withLock { states[key] == nil }
                lock.withLock { states[key] = new }
                if new.differs(from: old) || (isNew && new.phase != .normal) {
                    transitions.append(AlertTransition(rule: rule, host: host, from: old, to: new))
                }
                if new.differs(from: old) || isNew || new.detail != old.detail || new.labels != old.labels { changed.append((rule.id, host.id, new)) }
            }
        }
        guard !changed.isEmpty || !transitions.isEmpty else { return [] }
        try database.write { db in
            let upsert = try db.cachedStatement(
                sql: """
                    INSERT INTO alert_states (rule_id, host_id, state, severity, value, since, active_since, last_condition_at, evaluated_at, detail,
                        labels)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (rule_id, host_id) DO UPDATE SET state = excluded.state, severity = excluded.severity, value = excluded.value,
                        since = excluded.since, active_since = excluded.active_since, last_condition_at = excluded.last_condition_at,
                        evaluated_at = excluded.evaluated_at, detail = excluded.detail, labels = excluded.labels
                    """)
            for (rule, host, state) in changed {
                try upsert.execute(arguments: [
                    rule, host, state.phase.rawValue, state.severity?.rawValue, state.value.flatMap { $0.isFinite ? $0 : nil }, state.since,
                    state.activeSince, state.lastConditionAt, state.evaluatedAt, state.detail, state.labels,
                ])
            }
            for transition in transitions {
                try db.execute(
                    sql: """
                        INSERT INTO alert_history (rule_id, host_id, host_name, from_state, to_state, severity, value, at, detail)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        transition.rule.id, transition.host.id, transition.host.name, transition.from.phase.rawValue, transition.to.phase.rawValue,
                        (transition.to.severity ?? transition.from.severity)?.rawValue, transition.to.value.flatMap { $0.isFinite ? $0 : nil },
                        now, transition.to.detail,
                    ])
            }
        }
        return transitions
    }
}
