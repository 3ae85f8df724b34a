import Foundation
import GRDB

/// One pass of a policy over one table: which rows are due (a SELECT of key columns, `t` and `bytes`) and the
/// statements that remove one of them. The preview counts the same SELECT the enforcer deletes from.
struct RetentionStage: Sendable {
    var label: String
    var select: String
    var arguments: [DatabaseValue]
    var keyCount: Int
    /// Run for each key, with the key values as arguments (and `now` appended where a statement has one more `?`).
    var statements: [String]
    /// Run once before and once after a batch, in the same transaction (the audit log's deletion gate).
    var before: [String] = []
    var after: [String] = []
}

/// Builds the stages of one data class's policy at one moment.
struct RetentionPlanner {
    let dataClass: DataClass
    let policy: DataRetention
    let now: Int64
    /// Sessions end when idle this long.
    let sessionIdleMS: Int64

    static let day: Double = 86_400_000

    func cutoff(_ days: Double) -> Int64 { now - Int64((days * Self.day).rounded()) }

    /// The SQL pieces each class is made of.
    struct Shape {
        var from: String
        var keys: [String]
        var time: String
        var bytes: String
        /// Host id of the row, if rows belong to hosts.
        var host: String?
        /// Only these rows may ever go (finished jobs, ended sessions, sent deliveries...).
        var eligible: String
        var eligibleArguments: [(any DatabaseValueConvertible)?] = []
        /// Rows never removed whatever the policy (the newest facts of a host, the newest good backup's job).
        var protected: String?
        /// Rule field → SQL expression of the row.
        var fields: [String: String]
    }

    var shape: Shape {
        switch dataClass {
        case .metrics:
            return Shape(
                from: "metric_chunks c JOIN metric_series s ON s.id = c.series_id", keys: ["c.series_id", "c.resolution", "c.start_ms"],
                time: "c.end_ms", bytes: "(length(c.data) + 40)", host: "s.host_id", eligible: "1",
                fields: ["host": "(SELECT name FROM hosts WHERE id = s.host_id)"])
        case .jobLogs:
            return Shape(
                from: "jobs j", keys: ["j.id"], time: "j.finished_at",
                bytes:
                    "(j.log_bytes + 200 + COALESCE((SELECT SUM(length(e.task) + COALESCE(length(e.detail), 0) + 40) FROM job_task_events e WHERE e.job_id = j.id), 0))",
                host: "(SELECT id FROM hosts WHERE name = j.host)",
                eligible: "j.finished_at IS NOT NULL AND j.state IN ('succeeded', 'failed', 'cancelled', 'interrupted')",
                protected:
                    "j.id IN (SELECT MAX(job_id) FROM backup_runs WHERE kind = 'backup' AND snapshot_id IS NOT NULL GROUP BY plan_id)",
                fields: ["kind": "j.kind", "state": "j.state", "host": "COALESCE(j.host, '')"])
        case .audit:
            return Shape(
                from: "audit_events a", keys: ["a.id"], time: "a.at",
                bytes:
                    "(length(a.actor) + length(a.action) + length(a.target) + COALESCE(length(a.source), 0) + COALESCE(length(a.before), 0) + COALESCE(length(a.after), 0) + 40)",
                host: "(SELECT id FROM hosts WHERE 'host:' || name = a.target)", eligible: "1",
                fields: ["action": "a.action", "actor": "a.actor"])
        case .alertHistory:
            return Shape(
                from: "alert_history h", keys: ["h.id"], time: "h.at",
                bytes: "(length(h.host_name) + length(h.from_state) + length(h.to_state) + COALESCE(length(h.detail), 0) + 60)", host: "h.host_id",
                eligible: "1",
                fields: [
                    "severity": "COALESCE(h.severity, '')", "rule": "COALESCE((SELECT name FROM alert_rules WHERE id = h.rule_id), '')",
                    "host": "h.host_name",
                ])
        case .notifications:
            return Shape(
                from: "notification_deliveries n", keys: ["n.id"], time: "n.created_at",
                bytes: "(length(n.payload) + length(n.subject) + length(n.reason) + COALESCE(length(n.error), 0) + 60)", host: nil,
                eligible: "n.status <> 'pending'", fields: ["status": "n.status", "channel": "n.channel_name"])
        case .sessions:
            return Shape(
                from: "sessions x", keys: ["x.id_hash"],
                time: "(CASE WHEN x.revoked_at IS NOT NULL THEN x.revoked_at ELSE MIN(x.expires_at, x.last_seen_at + ?) END)",
                bytes: "(length(x.id_hash) + length(x.user_name) + COALESCE(length(x.user_agent), 0) + COALESCE(length(x.source), 0) + 100)",
                host: nil, eligible: "(x.revoked_at IS NOT NULL OR x.expires_at <= ? OR x.last_seen_at <= ?)",
                eligibleArguments: [now, now - sessionIdleMS], fields: [:])
        case .facts:
            return Shape(
                from: "host_facts f", keys: ["f.host_id", "f.gathered_at"], time: "f.gathered_at", bytes: "(length(f.facts) + 30)",
                host: "f.host_id", eligible: "1",
                protected: "f.gathered_at >= (SELECT MAX(gathered_at) FROM host_facts WHERE host_id = f.host_id)",
                fields: ["host": "(SELECT name FROM hosts WHERE id = f.host_id)"])
        }
    }

    /// Arguments the shape's `time` expression takes (sessions' idle timeout), repeated wherever `time` appears.
    var timeArguments: [(any DatabaseValueConvertible)?] { dataClass == .sessions ? [sessionIdleMS] : [] }

    func ruleCondition(_ rule: RetentionRule) -> (String, [(any DatabaseValueConvertible)?]) {
        let globs = rule.globs
        if rule.field == "group", let host = shape.host {
            let any = globs.map { _ in "g.name GLOB ?" }.joined(separator: " OR ")
            return (
                "EXISTS (SELECT 1 FROM host_group_members gm JOIN host_groups g ON g.id = gm.group_id WHERE gm.host_id = \(host) AND (\(any)))",
                globs
            )
        }
        let expression = shape.fields[rule.field] ?? "''"
        return ("(" + globs.map { _ in "\(expression) GLOB ?" }.joined(separator: " OR ") + ")", globs)
    }

    /// `t < cutoff`, where selective rules give some rows their own cutoff; the first matching rule wins.
    func agePredicate(baseDays: Double, rules: [RetentionRule]) -> (String, [(any DatabaseValueConvertible)?]) {
        let time = shape.time
        guard !rules.isEmpty else { return ("\(time) < ?", timeArguments + [cutoff(baseDays)]) }
        var sql = "CASE"
        var arguments: [(any DatabaseValueConvertible)?] = []
        for rule in rules {
            let (condition, conditionArguments) = ruleCondition(rule)
            sql += " WHEN \(condition) THEN ?"
            arguments += conditionArguments + [cutoff(rule.days)]
        }
        sql += " ELSE ? END"
        arguments.append(cutoff(baseDays))
        // The loosest cutoff bounds the scan, so an index on the time column still narrows it.
        let loosest = ([baseDays] + rules.map(\.days)).min() ?? baseDays
        return ("(\(time) < ? AND \(time) < \(sql))", timeArguments + [cutoff(loosest)] + timeArguments + arguments)
    }

    /// Rows no policy may remove now: legal holds, and (where asked) rows tied to a firing alert.
    func guards(firing: Bool) -> (String, [(any DatabaseValueConvertible)?]) {
        let time = shape.time
        let hostMatch = shape.host.map { "(rh.host_id IS NULL OR rh.host_id = \($0))" } ?? "rh.host_id IS NULL"
        var sql =
            "NOT EXISTS (SELECT 1 FROM retention_holds rh WHERE rh.released_at IS NULL AND \(hostMatch) AND (rh.from_ms IS NULL OR \(time) >= rh.from_ms) AND (rh.to_ms IS NULL OR \(time) <= rh.to_ms))"
        let arguments = timeArguments + timeArguments
        if let protected = shape.protected { sql += " AND NOT (\(protected))" }
        if firing {
            if dataClass == .alertHistory {
                sql +=
                    " AND NOT EXISTS (SELECT 1 FROM alert_states st WHERE st.rule_id = h.rule_id AND st.host_id = h.host_id AND st.state = 'firing')"
            } else if let host = shape.host {
                sql += " AND NOT EXISTS (SELECT 1 FROM alert_states st WHERE st.host_id = \(host) AND st.state = 'firing')"
            }
        }
        return (sql, arguments)
    }

    /// The SELECT of due rows: `where` on top of eligibility and the guards.
    func select(_ condition: String, _ arguments: [(any DatabaseValueConvertible)?], firing: Bool) -> (
        String, [(any DatabaseValueConvertible)?]
    ) {
        let shape = self.shape
        let (guardSQL, guardArguments) = guards(firing: firing)
        let sql =
            "SELECT \(shape.keys.joined(separator: ", ")), \(shape.time) AS t, \(shape.bytes) AS bytes FROM \(shape.from) WHERE \(shape.eligible) AND \(condition) AND \(guardSQL)"
        return (sql, timeArguments + shape.eligibleArguments + arguments + guardArguments)
    }

    var deleteStatements: [String] {
        let keys = shape.keys.map { $0.split(separator: ".").last.map(String.init) ?? $0 }
        let table = String(shape.from.split(separator: " ").first ?? "")
        return ["DELETE FROM \(table) WHERE " + keys.map { "\($0) = ?" }.joined(separator: " AND ")]
    }

    /// For a size policy: the newest time whose rows, with everything newer, exceed the budget; rows at or before it go.
    func sizeThreshold(_ db: Database, maxBytes: Int64) throws -> Int64? {
        let shape = self.shape
        return try Int64.fetchOne(
            db,
            sql: """
                SELECT t FROM (SELECT \(shape.time) AS t, SUM(\(shape.bytes)) OVER (ORDER BY \(shape.time) DESC ROWS UNBOUNDED PRECEDING) AS running
                FROM \(shape.from) WHERE \(shape.eligible)) WHERE running > ? ORDER BY t DESC LIMIT 1
                """,
            arguments: StatementArguments(timeArguments + timeArguments + shape.eligibleArguments + [maxBytes]) ?? [])
    }

    func stages(_ db: Database) throws -> [RetentionStage] {
        let shape = self.shape
        var stages: [RetentionStage] = []
        func add(_ label: String, _ condition: String, _ arguments: [(any DatabaseValueConvertible)?], firing: Bool, statements: [String]? = nil) {
            let (sql, all) = select(condition, arguments, firing: firing)
            var stage = RetentionStage(
                label: label, select: sql, arguments: all.map { $0?.databaseValue ?? .null }, keyCount: shape.keys.count,
                statements: statements ?? deleteStatements)
            if dataClass == .audit {
                stage.before = ["INSERT OR IGNORE INTO retention_gate (data_class) VALUES ('audit')"]
                stage.after = ["DELETE FROM retention_gate WHERE data_class = 'audit'"]
            }
            stages.append(stage)
        }
        let firing = policy.keepWhileFiring
        switch policy.kind {
        case .full:
            break
        case .size:
            if let threshold = try sizeThreshold(db, maxBytes: policy.maxBytes ?? .max) {
                add("oldest beyond \(ByteCount.text(policy.maxBytes ?? 0))", "\(shape.time) <= ?", timeArguments + [threshold], firing: firing)
            }
        case .time:
            if dataClass == .jobLogs {
                addJobStages(add: add, summaryDays: nil, deleteDays: policy.maxAgeDays ?? 0)
            } else {
                let (condition, arguments) = agePredicate(baseDays: policy.maxAgeDays ?? 0, rules: policy.rules)
                add("older than \(DataRetention.days(policy.maxAgeDays ?? 0))", condition, arguments, firing: firing)
            }
        case .tiered:
            let tiers = policy.tierDays ?? []
            if dataClass == .metrics, tiers.count == 3 {
                for (index, resolution) in [MetricResolution.raw, .minute, .hour].enumerated() {
                    let (condition, arguments) = agePredicate(baseDays: tiers[index], rules: index == 0 ? policy.rules : [])
                    add(
                        "\(dataClass.tierNames[index]) older than \(DataRetention.days(tiers[index]))",
                        "c.resolution = ? AND \(condition)", [resolution.rawValue] + arguments, firing: firing && index == 0)
                }
            } else if dataClass == .jobLogs, tiers.count == 2 {
                addJobStages(add: add, summaryDays: tiers[0], deleteDays: tiers[1])
            }
        }
        return stages
    }

    /// Job logs: optionally reduce to the summary (the log chunks and task events go, the job row and per-host results
    /// stay), then delete the job. Failed jobs use `failed_days` for their full output and are measured from their
    /// acknowledgement; unacknowledged failures may be kept outright.
    func addJobStages(
        add: (String, String, [(any DatabaseValueConvertible)?], Bool, [String]?) -> Void,
        summaryDays: Double?, deleteDays: Double
    ) {
        let failedDays = policy.failedDays
        let unacknowledged = policy.keepFailedUntilAcknowledged ? " AND NOT (j.state = 'failed' AND j.acknowledged_at IS NULL)" : ""
        let failedTime = "COALESCE(j.acknowledged_at, j.finished_at)"
        func condition(_ days: Double, failed: Double?) -> (String, [(any DatabaseValueConvertible)?]) {
            let (age, arguments) = agePredicate(baseDays: days, rules: policy.rules)
            guard let failed else { return (age + unacknowledged, arguments) }
            return (
                "((j.state <> 'failed' AND \(age)) OR (j.state = 'failed' AND \(failedTime) < ?))" + unacknowledged,
                arguments + [cutoff(failed)]
            )
        }
        // Tiered: a failed job's row lives at least as long as any job's; its full output lives `failed_days`.
        let (deleteSQL, deleteArguments) = condition(deleteDays, failed: failedDays.map { summaryDays == nil ? $0 : max($0, deleteDays) })
        if let summaryDays {
            // Jobs due for deletion are counted (and removed) once, by the last stage.
            let (sql, arguments) = condition(summaryDays, failed: failedDays)
            add(
                "full output older than \(DataRetention.days(summaryDays)) (summary kept)",
                "j.log_pruned_at IS NULL AND (j.log_bytes > 0 OR EXISTS (SELECT 1 FROM job_task_events e WHERE e.job_id = j.id)) AND \(sql) AND NOT (\(deleteSQL))",
                arguments + deleteArguments, false,
                [
                    "DELETE FROM job_log_chunks WHERE job_id = ?", "DELETE FROM job_task_events WHERE job_id = ?",
                    "DELETE FROM job_reports WHERE job_id = ?",
                    "UPDATE jobs SET log_pruned_at = ?2, log_bytes = 0 WHERE id = ?1",
                ])
        }
        add("jobs older than \(DataRetention.days(deleteDays))", deleteSQL, deleteArguments, false, nil)
    }
}
