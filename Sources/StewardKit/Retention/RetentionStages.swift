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

    /// The rows of the class, as its area describes them.
    var shape: Shape { dataClass.definition.shape(self) }

    /// Arguments the shape's `time` expression takes (sessions' idle timeout), repeated wherever `time` appears.
    var timeArguments: [(any DatabaseValueConvertible)?] { dataClass.definition.timeTakesIdleTimeout ? [sessionIdleMS] : [] }

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
            if let firingGuard = dataClass.definition.firingGuard {
                sql += " AND " + firingGuard
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
            if let gate = dataClass.definition.gate {
                stage.before = gate.before
                stage.after = gate.after
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
            if let custom = dataClass.definition.timeStages {
                custom(self, { add($0, $1, $2, firing: $3, statements: $4) })
            } else {
                let (condition, arguments) = agePredicate(baseDays: policy.maxAgeDays ?? 0, rules: policy.rules)
                add("older than \(DataRetention.days(policy.maxAgeDays ?? 0))", condition, arguments, firing: firing)
            }
        case .tiered:
            dataClass.definition.tieredStages?(self, policy.tierDays ?? [], { add($0, $1, $2, firing: $3, statements: $4) })
        }
        return stages
    }
}
