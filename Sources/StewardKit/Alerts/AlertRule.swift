import Foundation
import GRDB

/// An alert rule: what to measure per host, when that is a warning or critical (with clear levels, so a value hovering
/// at the threshold does not flap), how long before it fires and after it stops, and what the message says.
public struct AlertRule: Sendable, Equatable {
    public enum Aggregation: String, Sendable, CaseIterable {
        case avg, min, max, last, rate
        /// The value a least-squares line through the window reaches `horizon` from now.
        case predictLinear = "predict_linear"
    }
    /// How a value is compared with the thresholds: above is >=, below is <=; the strict and equality forms are
    /// Prometheus's (an imported `> 0` stays strict).
    public enum Comparison: String, Sendable, CaseIterable {
        case above, below, gt, lt, eq, ne

        public var symbol: String {
            switch self {
            case .above: ">="
            case .below: "<="
            case .gt: ">"
            case .lt: "<"
            case .eq: "=="
            case .ne: "!="
            }
        }

        /// As the pages write it.
        public var display: String {
            switch self {
            case .above: "≥"
            case .below: "≤"
            case .gt: ">"
            case .lt: "<"
            case .eq: "="
            case .ne: "≠"
            }
        }

        public init?(symbol: String) {
            guard let found = Self.allCases.first(where: { $0.symbol == symbol }) else { return nil }
            self = found
        }

        /// A bigger value is worse (above, gt), a smaller one (below, lt), or neither (eq, ne).
        public var upward: Bool? {
            switch self {
            case .above, .gt: true
            case .below, .lt: false
            case .eq, .ne: nil
            }
        }

        public func holds(_ value: Double, _ threshold: Double) -> Bool {
            switch self {
            case .above: value >= threshold
            case .below: value <= threshold
            case .gt: value > threshold
            case .lt: value < threshold
            case .eq: value == threshold
            case .ne: value != threshold
            }
        }
    }
    public enum NoData: String, Sendable, CaseIterable {
        /// Show the host as nodata (the default): someone should know the data stopped.
        case nodata
        /// Treat missing data as normal (hosts that do not have the series at all).
        case ok
        /// Treat missing data as critical (a dead man's switch).
        case alerting
        /// Keep whatever state the host was in.
        case keep
    }

    public var id: Int64 = 0
    public var name = ""
    public var builtin: String?
    public var enabled = true
    /// `metric`, or a state source such as `job_failed` (see `AlertSources`).
    public var source = "metric"
    public var metric = ""
    /// label=value filters on the metric's series, comma-separated.
    public var matchers = ""
    /// With source `log_lines`: the lines counted, as the logs page's address writes its filters (see `LogRuleQuery`).
    public var logQuery = ""
    /// With source `promql`: the PromQL expression (see `PromQLRule`).
    public var expression = ""
    /// A PromQL rule without thresholds: the severity of every series its expression returns.
    public var severity = AlertState.Severity.warning
    public var aggregation = Aggregation.avg
    public var windowSeconds = 300
    public var horizonSeconds = 0
    public var comparison = Comparison.above
    public var warnThreshold: Double?
    public var warnClear: Double?
    public var critThreshold: Double?
    public var critClear: Double?
    public var forSeconds = 0
    public var keepFiringSeconds = 0
    public var noData = NoData.nodata
    public var scopeHosts: [String] = []
    public var scopeGroups: [String] = []
    public var scopeTags: [String] = []
    /// key=value labels carried by the alert (for routing), comma-separated.
    public var labels = ""
    public var summary = ""
    public var description = ""
    public var runbookURL = ""
    /// Channel names, comma-separated; empty sends through every channel that routes on labels and severity.
    public var route = ""
    public var repeatSeconds = 4 * 3600
    public var updatedAt = Date(timeIntervalSince1970: 0)
    public var updatedBy = ""

    public init() {}

    /// The longest `for` and `keep_firing_for`, in seconds (Prometheus takes `1y`).
    public static let longestFor = 366 * 86400

    public var matcherPairs: [(String, String)] { Self.pairs(matchers) }

    /// Of several series' values, the position of the one that decides a host's level: the highest when a bigger value
    /// is worse, the lowest when a smaller one is; for == and != the first that meets the critical level, else the
    /// warning level, else the first.
    public func worstIndex(_ values: [Double]) -> Int? {
        guard !values.isEmpty else { return nil }
        switch comparison.upward {
        case true?: return values.indices.max { values[$0] < values[$1] }
        case false?: return values.indices.min { values[$0] < values[$1] }
        case nil:
            for level in [critThreshold, warnThreshold] {
                if let level, let index = values.firstIndex(where: { comparison.holds($0, level) }) { return index }
            }
            return 0
        }
    }
    public var labelPairs: [(String, String)] { Self.pairs(labels) }

    /// What is wrong with a `label=value,label=value` text, or nil when it is empty or well formed.
    static func pairsProblem(_ text: String) -> String? {
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count != 2 || !PrometheusText.isLabelName(parts[0]) {
                return "write label=value pairs separated by commas, e.g. mountpoint=/,fstype=ext4"
            }
        }
        return nil
    }

    static func pairs(_ text: String) -> [(String, String)] {
        text.split(separator: ",").compactMap { item in
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 ? (parts[0], parts[1]) : nil
        }
    }

    /// The warning level in force: once warning, it holds until the value passes the clear level.
    public var effectiveWarnClear: Double? { warnClear ?? warnThreshold }
    public var effectiveCritClear: Double? { critClear ?? critThreshold }

    /// Field name -> what is wrong and what is accepted; empty when the rule can be saved.
    public func problems(knownSources: Set<String>) -> [String: String] {
        var errors: [String: String] = [:]
        if name.trimmingCharacters(in: .whitespaces).isEmpty || name.count > 120 {
            errors["name"] = "give the rule a name of 1 to 120 characters"
        }
        if source == "metric" {
            if !PrometheusText.isMetricName(metric) { errors["metric"] = "a metric name such as steward_host_cpu_percent or node_load1" }
        } else if source == LogRuleQuery.source {
            if let problem = LogRuleQuery.problem(logQuery) { errors["log_query"] = problem }
        } else if source == PromQLRule.source {
            if let problem = PromQLRule.problem(expression) { errors["expression"] = problem }
        } else if !knownSources.contains(source) {
            errors["source"] = "metric, or one of " + knownSources.sorted().joined(separator: ", ")
        }
        for (key, text) in [("matchers", matchers), ("labels", labels)] {
            if let message = Self.pairsProblem(text) { errors[key] = message }
        }
        if !(10...(31 * 86400)).contains(windowSeconds) { errors["window_seconds"] = "from 10 seconds to 31 days" }
        if aggregation == .predictLinear, !(60...(365 * 86400)).contains(horizonSeconds) {
            errors["horizon_seconds"] = "predict_linear needs a horizon from 60 seconds to 365 days (e.g. 86400 for 24 h)"
        }
        if warnThreshold == nil, critThreshold == nil, source != PromQLRule.source {
            errors["warn_threshold"] = "set a warning threshold, a critical one, or both"
        }
        for (key, value) in [
            ("warn_threshold", warnThreshold), ("warn_clear", warnClear), ("crit_threshold", critThreshold), ("crit_clear", critClear),
        ] where value.map({ !$0.isFinite }) == true {
            errors[key] = "must be a finite number"
        }
        if let above = comparison.upward {
            if let warn = warnThreshold, let crit = critThreshold, above ? crit < warn : crit > warn {
                errors["crit_threshold"] =
                    above ? "must be at least the warning threshold (\(warn))" : "must be at most the warning threshold (\(warn))"
            }
            if let warn = warnThreshold, let clear = warnClear, above ? clear > warn : clear < warn {
                errors["warn_clear"] = above ? "the clear level must be at or below the warning threshold (\(warn))" : "must be at or above \(warn)"
            }
            if let crit = critThreshold, let clear = critClear, above ? clear > crit : clear < crit {
                errors["crit_clear"] = above ? "the clear level must be at or below the critical threshold (\(crit))" : "must be at or above \(crit)"
            }
        } else {
            if warnClear != nil { errors["warn_clear"] = "== and != have no clear level; leave it empty" }
            if critClear != nil { errors["crit_clear"] = "== and != have no clear level; leave it empty" }
        }
        if warnClear != nil, warnThreshold == nil { errors["warn_clear"] = "a clear level needs its warning threshold" }
        if critClear != nil, critThreshold == nil { errors["crit_clear"] = "a clear level needs its critical threshold" }
        if !(0...Self.longestFor).contains(forSeconds) { errors["for_seconds"] = "from 0 to 366 days" }
        if !(0...Self.longestFor).contains(keepFiringSeconds) { errors["keep_firing_seconds"] = "from 0 to 366 days" }
        if !(60...(30 * 86400)).contains(repeatSeconds) { errors["repeat_seconds"] = "from 60 seconds to 30 days" }
        if summary.trimmingCharacters(in: .whitespaces).isEmpty || summary.count > 300 {
            errors["summary"] = "say what is happening in up to 300 characters, e.g. {{host}}: disk {{value}} full"
        }
        if description.count > 4000 { errors["description"] = "at most 4000 characters" }
        if !runbookURL.isEmpty {
            let url = URLComponents(string: runbookURL)
            if url?.scheme != "https" && url?.scheme != "http" || url?.host?.isEmpty != false {
                errors["runbook_url"] = "an http(s) URL, e.g. https://wiki.example.com/runbooks/disk-full"
            }
        }
        for (key, list) in [("scope_hosts", scopeHosts), ("scope_groups", scopeGroups), ("scope_tags", scopeTags)] {
            if let bad = list.first(where: { !$0.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) } || $0.isEmpty }) {
                errors[key] = "\"\(bad)\" is not a host, group or tag name"
            }
        }
        if !route.isEmpty, route.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            errors["route"] = "channel names separated by commas"
        }
        return errors
    }

    /// Whether a host is in the rule's scope: every list that is set must match (hosts by name, groups, tags).
    public func applies(to host: Host) -> Bool {
        (scopeHosts.isEmpty || scopeHosts.contains(host.name)) && (scopeGroups.isEmpty || !Set(scopeGroups).isDisjoint(with: host.groups))
            && (scopeTags.isEmpty || !Set(scopeTags).isDisjoint(with: host.tags))
    }
}

/// Alert rules in SQLite; every change is audited.
public struct AlertRuleStore: Sendable {
    public let database: DatabasePool

    public init(database: DatabasePool) { self.database = database }

    static func list(_ text: String) -> [String] { text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    static func rule(_ row: Row) -> AlertRule {
        var rule = AlertRule()
        rule.id = row["id"]
        rule.name = row["name"]
        rule.builtin = row["builtin"]
        rule.enabled = row["enabled"]
        rule.source = row["source"]
        rule.metric = row["metric"]
        rule.matchers = row["matchers"]
        rule.logQuery = row["log_query"]
        rule.expression = row["expression"]
        rule.severity = AlertState.Severity(rawValue: row["severity"]) ?? .warning
        rule.aggregation = AlertRule.Aggregation(rawValue: row["aggregation"]) ?? .avg
        rule.windowSeconds = row["window_seconds"]
        rule.horizonSeconds = row["horizon_seconds"]
        rule.comparison = AlertRule.Comparison(symbol: row["operator"]) ?? AlertRule.Comparison(rawValue: row["comparison"]) ?? .above
        rule.warnThreshold = row["warn_threshold"]
        rule.warnClear = row["warn_clear"]
        rule.critThreshold = row["crit_threshold"]
        rule.critClear = row["crit_clear"]
        rule.forSeconds = row["for_seconds"]
        rule.keepFiringSeconds = row["keep_firing_seconds"]
        rule.noData = AlertRule.NoData(rawValue: row["no_data"]) ?? .nodata
        rule.scopeHosts = list(row["scope_hosts"])
        rule.scopeGroups = list(row["scope_groups"])
        rule.scopeTags = list(row["scope_tags"])
        rule.labels = row["labels"]
        rule.summary = row["summary"]
        rule.description = row["description"]
        rule.runbookURL = row["runbook_url"]
        rule.route = row["route"]
        rule.repeatSeconds = row["repeat_seconds"]
        rule.updatedAt = EpochMilliseconds.date(row["updated_at"])
        rule.updatedBy = row["updated_by"]
        return rule
    }

    public func all() throws -> [AlertRule] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM alert_rules ORDER BY name").map(Self.rule) }
    }

    public func rule(id: Int64) throws -> AlertRule? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM alert_rules WHERE id = ?", arguments: [id]).map(Self.rule) }
    }

    /// State changes, newest first, before the `before` id (the cursor of the previous page).
    func history(limit: Int, before: Int64?) throws -> [AlertHistoryEntry] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT h.*, r.name AS rule_name FROM alert_history h JOIN alert_rules r ON r.id = h.rule_id
                    WHERE h.id < ? ORDER BY h.id DESC LIMIT ?
                    """, arguments: [before ?? Int64.max, limit]
            ).map { row in
                AlertHistoryEntry(
                    id: row["id"], ruleId: row["rule_id"], rule: row["rule_name"], host: row["host_name"], from: row["from_state"],
                    to: row["to_state"], severity: row["severity"], value: row["value"], atMilliseconds: row["at"], detail: row["detail"])
            }
        }
    }

    /// The (rule, host) pairs whose stored state is not normal.
    func abnormalStates() throws -> [(rule: Int64, host: Int64)] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT rule_id, host_id FROM alert_states WHERE state != 'normal'").map { ($0["rule_id"], $0["host_id"]) }
        }
    }

    /// For the alert-fatigue view: per rule, how often it began firing and how many notifications it queued since `since`.
    func fatigue(since: Int64) throws -> (fired: [Int64: Int], notified: [Int64: Int]) {
        try database.read { db in
            let fired = try Row.fetchAll(
                db,
                sql:
                    "SELECT rule_id, COUNT(*) AS n FROM alert_history WHERE to_state = 'firing' AND from_state != 'recovering' AND at >= ? GROUP BY rule_id",
                arguments: [since]
            ).reduce(into: [Int64: Int]()) { $0[$1["rule_id"]] = $1["n"] }
            let notified = try Row.fetchAll(
                db, sql: "SELECT rule_id, COUNT(*) AS n FROM notification_deliveries WHERE created_at >= ? AND rule_id IS NOT NULL GROUP BY rule_id",
                arguments: [since]
            ).reduce(into: [Int64: Int]()) { $0[$1["rule_id"]] = $1["n"] }
            return (fired, notified)
        }
    }

    static let columns = [
        "name", "builtin", "enabled", "source", "metric", "matchers", "log_query", "aggregation", "window_seconds", "horizon_seconds", "comparison",
        "warn_threshold", "warn_clear", "crit_threshold", "crit_clear", "for_seconds", "keep_firing_seconds", "no_data", "scope_hosts",
        "scope_groups", "scope_tags", "labels", "summary", "description", "runbook_url", "route", "repeat_seconds", "expression", "severity",
        "operator",
    ]

    static func values(_ rule: AlertRule) -> [(any DatabaseValueConvertible)?] {
        [
            rule.name, rule.builtin, rule.enabled, rule.source, rule.metric, rule.matchers, rule.logQuery, rule.aggregation.rawValue,
            rule.windowSeconds,
            // The comparison column keeps the direction its CHECK allows; operator says exactly.
            rule.horizonSeconds, rule.comparison.upward == false ? "below" : "above", rule.warnThreshold, rule.warnClear, rule.critThreshold,
            rule.critClear,
            rule.forSeconds, rule.keepFiringSeconds, rule.noData.rawValue, rule.scopeHosts.joined(separator: ","),
            rule.scopeGroups.joined(separator: ","), rule.scopeTags.joined(separator: ","), rule.labels, rule.summary, rule.description,
            rule.runbookURL, rule.route, rule.repeatSeconds, rule.expression, rule.severity.rawValue, rule.comparison.symbol,
        ]
    }

    public func create(_ rule: AlertRule, by who: AuditActor, now: Date) throws -> AlertRule {
        let id = try database.write { db in try Self.insert(db, rule, by: who, now: now) }
        return try self.rule(id: id)!
    }

    public func update(id: Int64, _ rule: AlertRule, by who: AuditActor, now: Date) throws -> AlertRule? {
        let found = try database.write { db in try Self.update(db, id: id, rule, by: who, now: now) }
        return found ? try self.rule(id: id) : nil
    }

    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in try Self.delete(db, id: id, by: who, now: now) }
    }

    // Inside a caller's transaction, so a change that owns rules (a backup plan) stores them with itself and its audit rows.

    static func all(_ db: GRDB.Database) throws -> [AlertRule] {
        try Row.fetchAll(db, sql: "SELECT * FROM alert_rules ORDER BY name").map(Self.rule)
    }

    static func insert(_ db: GRDB.Database, _ rule: AlertRule, by who: AuditActor, now: Date) throws -> Int64 {
        if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM alert_rules WHERE name = ?)", arguments: [rule.name]) == true {
            throw Problem.invalid(["name": "a rule named \"\(rule.name)\" exists; choose another name"])
        }
        let placeholders = Array(repeating: "?", count: Self.columns.count + 3).joined(separator: ", ")
        try db.execute(
            sql: "INSERT INTO alert_rules (\(Self.columns.joined(separator: ", ")), created_at, updated_at, updated_by) VALUES (\(placeholders))",
            arguments: StatementArguments(Self.values(rule) + [EpochMilliseconds.from(now), EpochMilliseconds.from(now), who.actor]))
        let id = db.lastInsertedRowID
        try AuditLog.append(db, by: who, action: "alert_rule.create", target: "alert_rule:\(rule.name)", after: Self.audit(rule), now: now)
        return id
    }

    /// False when there is no such rule.
    static func update(_ db: GRDB.Database, id: Int64, _ rule: AlertRule, by who: AuditActor, now: Date) throws -> Bool {
        guard let before = try Row.fetchOne(db, sql: "SELECT * FROM alert_rules WHERE id = ?", arguments: [id]).map(Self.rule) else { return false }
        if rule.name != before.name,
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM alert_rules WHERE name = ?)", arguments: [rule.name]) == true
        {
            throw Problem.invalid(["name": "a rule named \"\(rule.name)\" exists; choose another name"])
        }
        var kept = rule
        kept.builtin = before.builtin
        let assignments = Self.columns.map { "\($0) = ?" }.joined(separator: ", ")
        try db.execute(
            sql: "UPDATE alert_rules SET \(assignments), updated_at = ?, updated_by = ? WHERE id = ?",
            arguments: StatementArguments(Self.values(kept) + [EpochMilliseconds.from(now), who.actor, id]))
        try AuditLog.append(
            db, by: who, action: "alert_rule.update", target: "alert_rule:\(rule.name)", before: Self.audit(before), after: Self.audit(kept), now: now
        )
        return true
    }

    /// False when there is no such rule.
    static func delete(_ db: GRDB.Database, id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        guard let before = try Row.fetchOne(db, sql: "SELECT * FROM alert_rules WHERE id = ?", arguments: [id]).map(Self.rule) else { return false }
        try db.execute(sql: "DELETE FROM alert_rules WHERE id = ?", arguments: [id])
        try AuditLog.append(db, by: who, action: "alert_rule.delete", target: "alert_rule:\(before.name)", before: Self.audit(before), now: now)
        return true
    }

    static func audit(_ rule: AlertRule) -> [String: Any] {
        var result: [String: Any] = [:]
        for (column, value) in zip(columns, values(rule)) { result[column] = value.map { "\($0)" } ?? NSNull() }
        return result
    }
}
