import Foundation
import GRDB
import HTTPTypes

/// SLOs in SQLite. Saving an SLO saves its burn-rate alert rule (source `slo`, built in as `slo:<id>`) in the same
/// transaction, and every change is audited.
public struct SLOStore: Sendable {
    public let database: DatabasePool
    /// Every SLO is evaluated every cycle: past this many, imports and forms are refused.
    public static let maximumCount = 1000

    public init(database: DatabasePool) { self.database = database }

    public func all() throws -> [SLO] { try database.read { db in try Self.all(db) } }

    static func all(_ db: GRDB.Database) throws -> [SLO] { try Row.fetchAll(db, sql: "SELECT * FROM slos ORDER BY name").map(SLO.init) }

    public func slo(id: Int64) throws -> SLO? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM slos WHERE id = ?", arguments: [id]).map(SLO.init) }
    }

    public func slo(named name: String) throws -> SLO? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM slos WHERE name = ?", arguments: [name]).map(SLO.init) }
    }

    /// The host an SLO's alerts are filed under: a probe's own host, else the first covered host by name.
    static func anchor(_ slo: SLO, hosts: [Host], checks: [Check]) -> Host? {
        if slo.sli == .probe, let check = checks.first(where: { $0.id == slo.checkID }) { return hosts.first { $0.id == check.hostID } }
        return hosts.filter { $0.enabled && slo.covers($0) }.min { $0.name < $1.name }
    }

    /// The two burn-rate alert rules of an SLO, as Sloth writes them: a page (critical) on the fast pairs and a ticket
    /// (warning) on the slow ones, each with its own state, so a page resolves while a ticket may stay.
    static func alertRule(for slo: SLO, kind: SLOAlerts.Kind, anchor: Host?, existing: AlertRule?) -> AlertRule {
        var rule = existing ?? AlertRule()
        rule.name = "SLO \(slo.name): \(kind == .page ? "fast burn (page)" : "slow burn (ticket)")"
        rule.builtin = SLOAlerts.builtin(slo.id, kind)
        rule.severity = kind.severity
        rule.source = SLOAlerts.source
        rule.enabled = slo.alerting
        rule.noData = .ok
        rule.forSeconds = 0
        rule.scopeHosts = [anchor?.name ?? "-"]
        rule.scopeGroups = []
        rule.scopeTags = []
        rule.summary = "SLO \(slo.name) is spending its error budget too fast ({{value}}× the sustainable rate)"
        rule.description =
            "The SLI of \(slo.name) (objective \(PromQL.formatNumber(slo.objective)) % over a \(slo.window.title)) is failing faster than the "
            + (kind == .page
                ? "budget allows: 14.4× over 1 h and 5 min, or 6× over 6 h and 30 min, spends a month's budget in days. Act now: "
                : "budget allows: 3× over 1 d and 2 h, or 1× over 3 d and 6 h. Look into it during working hours: ")
            + "open the SLO's page for the burn by window and what changed (jobs, rollouts), and hold risky changes until it recovers."
        if rule.runbookURL.isEmpty { rule.runbookURL = "/slos/\(slo.id)" }
        return rule
    }

    static func values(_ slo: SLO) -> [(any DatabaseValueConvertible)?] {
        [
            slo.name, slo.description, slo.sli.rawValue, slo.sli == .probe ? slo.checkID : nil, slo.ratioCounts.rawValue,
            slo.sli == .ratio ? slo.eventsQuery : "", slo.sli == .ratio ? slo.totalQuery : "", slo.sli == .latency ? slo.histogram : "",
            slo.sli == .latency ? slo.matchers : "", slo.sli == .latency ? slo.thresholdSeconds : nil, slo.objective, slo.window.rawValue,
            slo.scopeHosts.joined(separator: ","), slo.scopeGroups.joined(separator: ","), slo.alerting,
        ]
    }

    static func audit(_ slo: SLO) -> [String: Any] {
        [
            "name": slo.name, "sli": slo.sli.rawValue, "objective": slo.objective, "window": slo.window.rawValue, "check_id": slo.checkID as Any,
            "events_query": slo.eventsQuery, "total_query": slo.totalQuery, "ratio_counts": slo.ratioCounts.rawValue,
            "histogram": slo.histogram, "matchers": slo.matchers, "threshold_seconds": slo.thresholdSeconds as Any,
            "hosts": slo.scopeHosts, "groups": slo.scopeGroups, "alerting": slo.alerting,
        ]
    }

    /// Check the SLO against what exists; the field errors, empty when it can be saved.
    public func problems(_ slo: SLO) throws -> [String: String] {
        try database.read { db in try Self.problems(db, slo) }
    }

    static func problems(_ db: GRDB.Database, _ slo: SLO) throws -> [String: String] {
        let checks = Set(try Int64.fetchAll(db, sql: "SELECT id FROM checks"))
        let hosts = Set(try String.fetchAll(db, sql: "SELECT name FROM hosts"))
        let groups = Set(try String.fetchAll(db, sql: "SELECT name FROM host_groups"))
        var errors = slo.problems(checks: checks, hosts: hosts, groups: groups)
        if errors["name"] == nil,
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM slos WHERE name = ? AND id != ?)", arguments: [slo.name, slo.id]) == true
        {
            errors["name"] = "an SLO named \"\(slo.name)\" exists"
        }
        return errors
    }

    public func save(_ slo: SLO, by who: AuditActor, now: Date) throws -> SLO {
        let hosts = try HostStore(database: database).all()
        let checks = try CheckStore(database: database).all()
        let time = EpochMilliseconds.from(now)
        let id = try database.write { db -> Int64 in try Self.save(db, slo, hosts: hosts, checks: checks, by: who, time: time, now: now) }
        return try self.slo(id: id)!
    }

    static func save(_ db: GRDB.Database, _ slo: SLO, hosts: [Host], checks: [Check], by who: AuditActor, time: Int64, now: Date) throws -> Int64 {
        let problems = try Self.problems(db, slo)
        guard problems.isEmpty else { throw Problem.invalid(problems) }
        if slo.id == 0, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM slos") ?? 0 >= Self.maximumCount {
            throw Problem(status: .conflict, detail: "Steward keeps at most \(Self.maximumCount) SLOs; remove one first")
        }
        var saved = slo
        if slo.id == 0 {
            try db.execute(
                sql: """
                    INSERT INTO slos (name, description, sli, check_id, ratio_counts, events_query, total_query, histogram, matchers, threshold_seconds,
                        objective, time_window, scope_hosts, scope_groups, alerting, created_at, updated_at, updated_by)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: StatementArguments(values(slo) + [time, time, who.actor]))
            saved.id = db.lastInsertedRowID
            try AuditLog.append(db, by: who, action: "slo.create", target: "slo:\(slo.name)", after: audit(slo), now: now)
        } else {
            guard let old = try Row.fetchOne(db, sql: "SELECT * FROM slos WHERE id = ?", arguments: [slo.id]).map(SLO.init) else {
                throw Problem(status: .notFound, detail: "there is no SLO with id \(slo.id)")
            }
            try db.execute(
                sql: """
                    UPDATE slos SET name = ?, description = ?, sli = ?, check_id = ?, ratio_counts = ?, events_query = ?, total_query = ?,
                        histogram = ?, matchers = ?, threshold_seconds = ?, objective = ?, time_window = ?, scope_hosts = ?, scope_groups = ?,
                        alerting = ?, updated_at = ?, updated_by = ? WHERE id = ?
                    """, arguments: StatementArguments(values(slo) + [time, who.actor, slo.id]))
            // Other events mean other minutes: what was counted under the old SLI no longer describes this one.
            if old.sli != slo.sli || old.checkID != slo.checkID || old.eventsQuery != slo.eventsQuery || old.totalQuery != slo.totalQuery
                || old.ratioCounts != slo.ratioCounts || old.histogram != slo.histogram || old.matchers != slo.matchers
                || old.thresholdSeconds != slo.thresholdSeconds || old.scopeHosts != slo.scopeHosts || old.scopeGroups != slo.scopeGroups
            {
                try db.execute(sql: "DELETE FROM slo_minutes WHERE slo_id = ?", arguments: [slo.id])
            }
            saved.alertRuleID = old.alertRuleID
            try AuditLog.append(db, by: who, action: "slo.update", target: "slo:\(slo.name)", before: audit(old), after: audit(slo), now: now)
        }
        try syncRule(db, saved, hosts: hosts, checks: checks, by: who, now: now)
        return saved.id
    }

    /// Create or change the SLO's alert rule to match it.
    static func syncRule(_ db: GRDB.Database, _ slo: SLO, hosts: [Host], checks: [Check], by who: AuditActor, now: Date) throws {
        for kind in SLOAlerts.Kind.allCases {
            let existing = try Row.fetchOne(db, sql: "SELECT * FROM alert_rules WHERE builtin = ?", arguments: [SLOAlerts.builtin(slo.id, kind)])
                .map(AlertRuleStore.rule)
            let rule = alertRule(for: slo, kind: kind, anchor: anchor(slo, hosts: hosts, checks: checks), existing: existing)
            var id = existing?.id ?? 0
            if let existing {
                if rule != existing { _ = try AlertRuleStore.update(db, id: existing.id, rule, by: who, now: now) }
            } else {
                id = try AlertRuleStore.insert(db, rule, by: who, now: now)
            }
            // The SLO keeps its page rule's id; the ticket rule is found by its key.
            if kind == .page, slo.alertRuleID != id {
                try db.execute(sql: "UPDATE slos SET alert_rule_id = ? WHERE id = ?", arguments: [id, slo.id])
            }
        }
    }

    /// The rollouts this SLO holds: not finished, with a wave its spent or unknown budget kept from starting (paused,
    /// or resumed and waiting for the gate's next answer).
    public func holds(_ slo: SLO) throws -> [(rollout: Int64, wave: Int)] {
        let prefix = RolloutService.budgetHoldPrefix
        return try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT w.rollout_id, w.number FROM rollout_waves w JOIN rollouts r ON r.id = w.rollout_id
                    WHERE r.state IN ('approved', 'running', 'paused') AND w.state = 'pending' AND substr(w.gate, 1, ?) = ? AND instr(w.gate, ?) > 0
                    ORDER BY w.rollout_id, w.number
                    """, arguments: [prefix.count, prefix, RolloutService.budgetHoldMention(slo.name)]
            ).map { (rollout: $0[0], wave: $0[1]) }
        }
    }

    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            guard let slo = try Row.fetchOne(db, sql: "SELECT * FROM slos WHERE id = ?", arguments: [id]).map(SLO.init) else { return false }
            try db.execute(sql: "DELETE FROM slos WHERE id = ?", arguments: [id])
            try db.execute(
                sql: "DELETE FROM alert_rules WHERE builtin IN (?, ?)", arguments: [SLOAlerts.builtin(id, .page), SLOAlerts.builtin(id, .ticket)])
            try AuditLog.append(db, by: who, action: "slo.delete", target: "slo:\(slo.name)", before: Self.audit(slo), now: now)
            return true
        }
    }
}
