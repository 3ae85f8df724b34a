import Foundation
import GRDB

/// The backup alert sources and each plan's own two rules. A rule with the matcher `plan=N` watches that plan; without
/// one, a source reports the worst plan on the host.
public enum BackupAlerts {
    public static func sources(database: DatabasePool) -> [AlertSource] {
        [
            AlertSource(name: "backup_failed", description: "1 when the newest backup run of the plan (or of any plan on the host) failed") {
                host, rule, _ in
                let plans = try activePlans(database: database, host: host, rule: rule)
                guard !plans.isEmpty else { return .noData }
                var failed = false
                var seen = false
                for plan in plans {
                    let state = try database.read { db in
                        try String.fetchOne(
                            db,
                            sql: """
                                SELECT j.state FROM backup_runs r JOIN jobs j ON j.id = r.job_id
                                WHERE r.plan_id = ? AND r.kind = 'backup' AND j.state NOT IN ('queued', 'running') ORDER BY r.job_id DESC LIMIT 1
                                """, arguments: [plan.id])
                    }
                    guard let state else { continue }
                    seen = true
                    if state == "failed" || state == "interrupted" { failed = true }
                }
                return seen ? .value(failed ? 1 : 0) : .noData
            },
            AlertSource(name: "backup_age_hours", description: "hours since the plan's (or the host's oldest plan's) newest snapshot") {
                host, rule, now in
                let plans = try activePlans(database: database, host: host, rule: rule)
                guard !plans.isEmpty else { return .noData }
                var worst = 0.0
                for plan in plans {
                    let newest = try database.read { db in
                        try Int64.fetchOne(
                            db,
                            sql:
                                "SELECT MAX(COALESCE(finished_at, started_at)) FROM backup_runs WHERE plan_id = ? AND kind = 'backup' AND snapshot_id IS NOT NULL",
                            arguments: [plan.id])
                    }
                    // A plan that never made a snapshot counts from its creation, so a new plan that never runs still alerts.
                    worst = max(worst, Double(now - (newest ?? plan.createdAt)) / 3_600_000)
                }
                return .value((worst * 10).rounded() / 10)
            },
        ]
    }

    static func activePlans(database: DatabasePool, host: Host, rule: AlertRule) throws -> [BackupPlan] {
        let wanted = rule.matcherPairs.first { $0.0 == "plan" }.flatMap { Int64($0.1) }
        return try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM backup_plans WHERE host_id = ? AND paused = 0", arguments: [host.id]).map(BackupPlan.init)
        }.filter { wanted == nil || $0.id == wanted }
    }

    static func planID(ofRule builtin: String?) -> Int64? {
        guard let builtin, builtin.hasPrefix("backup_"), let range = builtin.range(of: ":plan:") else { return nil }
        return Int64(builtin[range.upperBound...])
    }

    /// The plan's rules: its newest run failed (critical), and no snapshot for its alert window (critical, with a
    /// warning at three quarters of it, so someone can look before it pages).
    static func rules(for plan: BackupPlan, hostName: String) -> [AlertRule] {
        var failed = AlertRule()
        failed.name = "Backup failed: \(plan.name)"
        failed.builtin = "backup_failed:plan:\(plan.id)"
        failed.source = "backup_failed"
        failed.matchers = "plan=\(plan.id)"
        failed.critThreshold = 1
        failed.noData = .ok
        failed.scopeHosts = [hostName]
        failed.labels = "plan=\(plan.name.filter { $0 != "," && $0 != "=" })"
        failed.summary = "{{host}}: the newest run of backup plan \(plan.name) failed"
        failed.description = """
            The last run of backup plan \(plan.name) on {{host}} failed or was interrupted. Open the plan's page, read the \
            run's log for the cause (a full or locked repository, a wrong password, a failed hook), fix it and press Run now.
            """
        var missing = AlertRule()
        missing.name = "No backup in \(plan.alertAfterHours) h: \(plan.name)"
        missing.builtin = "backup_missing:plan:\(plan.id)"
        missing.source = "backup_age_hours"
        missing.matchers = "plan=\(plan.id)"
        missing.critThreshold = Double(plan.alertAfterHours)
        missing.warnThreshold = (Double(plan.alertAfterHours) * 0.75).rounded()
        missing.noData = .ok
        missing.scopeHosts = [hostName]
        missing.labels = failed.labels
        missing.summary = "{{host}}: no snapshot from backup plan \(plan.name) for {{value}} hours"
        missing.description = """
            Backup plan \(plan.name) has made no snapshot of {{host}} for {{value}} hours; it should make one at least \
            every \(plan.alertAfterHours) hours. This is the dead man's switch: it fires even when runs silently stop \
            (a paused schedule, Steward down, a job stuck waiting). Check the plan's schedule and last runs, then press Run now.
            """
        return [failed, missing]
    }
}

extension BackupAlerts {
    /// Keep a plan's two alert rules in step with it, inside the plan's own transaction: its newest run failed, and no
    /// snapshot within its alert window (the dead man's switch). Their messages, routes and labels stay editable on the
    /// Alerts page; pausing the plan disables them.
    static func sync(_ db: GRDB.Database, plan: BackupPlan, hostName: String, by who: AuditActor, now: Date) throws {
        let existing = try AlertRuleStore.all(db)
        for wanted in rules(for: plan, hostName: hostName) {
            if var current = existing.first(where: { $0.builtin == wanted.builtin }) {
                current.name = wanted.name
                current.matchers = wanted.matchers
                current.critThreshold = wanted.critThreshold
                current.scopeHosts = wanted.scopeHosts
                current.enabled = !plan.paused
                if current != existing.first(where: { $0.id == current.id }) {
                    _ = try AlertRuleStore.update(db, id: current.id, current, by: who, now: now)
                }
            } else {
                var rule = wanted
                rule.enabled = !plan.paused
                _ = try AlertRuleStore.insert(db, rule, by: who, now: now)
            }
        }
    }

    /// Remove a plan's alert rules, inside the transaction that removes the plan.
    static func remove(_ db: GRDB.Database, planID plan: Int64, by who: AuditActor, now: Date) throws {
        for rule in try AlertRuleStore.all(db) where planID(ofRule: rule.builtin) == plan {
            _ = try AlertRuleStore.delete(db, id: rule.id, by: who, now: now)
        }
    }
}
