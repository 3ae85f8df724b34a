import Foundation
import GRDB
import HTTPTypes

/// Repositories, plans (with their schedules) and runs in SQLite. Every change is audited in the same transaction.
public struct BackupStore: Sendable {
    public let database: DatabasePool
    let sealer: SecretSealer

    public static let backupKind = "backup.run"
    public static let checkKind = "backup.check"
    public static let forgetKind = "backup.forget"
    public static let restoreKind = "backup.restore"

    public init(database: DatabasePool, sealer: SecretSealer) {
        self.database = database
        self.sealer = sealer
    }

    // MARK: repositories

    public func repositories() throws -> [BackupRepository] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM backup_repositories ORDER BY name").map(BackupRepository.init) }
    }

    public func repository(id: Int64) throws -> BackupRepository? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM backup_repositories WHERE id = ?", arguments: [id]).map(BackupRepository.init)
        }
    }

    public func repository(builtin: String) throws -> BackupRepository? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM backup_repositories WHERE builtin = ?", arguments: [builtin]).map(BackupRepository.init)
        }
    }

    public func password(of repository: BackupRepository) throws -> String {
        let sealed = try database.read { db in
            try Data.fetchOne(db, sql: "SELECT password_sealed FROM backup_repositories WHERE id = ?", arguments: [repository.id])
        }
        guard let password = sealer.open(sealed) else {
            throw JobFailure(
                "the stored password of repository \(repository.name) cannot be opened with this data directory's secret.key; enter it again")
        }
        return password
    }

    public func createRepository(_ repository: BackupRepository, password: String, by who: AuditActor, now: Date) throws -> BackupRepository {
        let id = try database.write { db -> Int64 in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM backup_repositories WHERE name = ?)", arguments: [repository.name]) == true {
                throw Problem.invalid(["name": "a repository named \"\(repository.name)\" exists; choose another name"])
            }
            try db.execute(
                sql: """
                    INSERT INTO backup_repositories (name, kind, host_id, path, password_sealed, builtin, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    repository.name, repository.kind.rawValue, repository.hostID, repository.path, try sealer.seal(password), repository.builtin,
                    EpochMilliseconds.from(now), EpochMilliseconds.from(now),
                ])
            let id = db.lastInsertedRowID
            try AuditLog.append(
                db, by: who, action: "backup_repository.create", target: "backup_repository:\(repository.name)", after: Self.audit(repository),
                now: now)
            return id
        }
        return try self.repository(id: id)!
    }

    /// Replace the stored password (after restic accepted it).
    public func setPassword(_ repository: BackupRepository, password: String, by who: AuditActor, now: Date) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE backup_repositories SET password_sealed = ?, updated_at = ?, status_error = NULL WHERE id = ?",
                arguments: [try sealer.seal(password), EpochMilliseconds.from(now), repository.id])
            try AuditLog.append(db, by: who, action: "backup_repository.password", target: "backup_repository:\(repository.name)", now: now)
        }
    }

    /// Forget a repository in Steward; its data stays where it is. Refused while plans use it.
    public func deleteRepository(_ repository: BackupRepository, by who: AuditActor, now: Date) throws {
        try database.write { db in
            let users = try String.fetchAll(
                db, sql: "SELECT name FROM backup_plans WHERE repository_id = ? ORDER BY name", arguments: [repository.id])
            guard users.isEmpty else {
                throw Problem(
                    status: .conflict,
                    detail:
                        "repository \(repository.name) is used by plan\(users.count == 1 ? "" : "s") \(users.joined(separator: ", ")); delete or move them first"
                )
            }
            try db.execute(sql: "DELETE FROM backup_repositories WHERE id = ?", arguments: [repository.id])
            try AuditLog.append(
                db, by: who, action: "backup_repository.delete", target: "backup_repository:\(repository.name)", before: Self.audit(repository),
                now: now)
        }
    }

    public func recordStatus(repositoryID: Int64, size: Int64?, snapshots: Int?, error: String?, now: Date) throws {
        try database.write { db in
            if let error {
                try db.execute(
                    sql: "UPDATE backup_repositories SET status_error = ?, status_at = ? WHERE id = ?",
                    arguments: [error, EpochMilliseconds.from(now), repositoryID])
            } else {
                try db.execute(
                    sql: "UPDATE backup_repositories SET size_bytes = ?, snapshot_count = ?, status_error = NULL, status_at = ? WHERE id = ?",
                    arguments: [size, snapshots, EpochMilliseconds.from(now), repositoryID])
            }
        }
    }

    public func recordCheck(repositoryID: Int64, ok: Bool, message: String, now: Date) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE backup_repositories SET check_at = ?, check_ok = ?, check_message = ? WHERE id = ?",
                arguments: [EpochMilliseconds.from(now), ok, message, repositoryID])
        }
    }

    static func audit(_ repository: BackupRepository) -> [String: Any] {
        ["name": repository.name, "kind": repository.kind.rawValue, "host_id": repository.hostID, "path": repository.path]
    }

    // MARK: plans

    /// Every plan's id and name, for search (which has no secrets to open).
    static func planNames(_ reader: any DatabaseReader) throws -> [(id: Int64, name: String)] {
        try reader.read { db in try Row.fetchAll(db, sql: "SELECT id, name FROM backup_plans ORDER BY name").map { ($0["id"], $0["name"]) } }
    }

    public func plans() throws -> [BackupPlan] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM backup_plans ORDER BY name").map(BackupPlan.init) }
    }

    public func plan(id: Int64) throws -> BackupPlan? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM backup_plans WHERE id = ?", arguments: [id]).map(BackupPlan.init) }
    }

    public func plan(builtin: String) throws -> BackupPlan? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM backup_plans WHERE builtin = ?", arguments: [builtin]).map(BackupPlan.init)
        }
    }

    public func plans(hostID: Int64) throws -> [BackupPlan] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM backup_plans WHERE host_id = ? ORDER BY name", arguments: [hostID]).map(BackupPlan.init)
        }
    }

    /// The plan's schedules as its form shows them; verify and prune are nil when off.
    public func timing(of plan: BackupPlan) throws -> BackupPlanTiming {
        let schedules = ScheduleStore(database: database)
        var timing = BackupPlanTiming()
        if let id = plan.backupScheduleID, let schedule = try schedules.schedule(id: id) { timing.backup = ScheduleController.settings(of: schedule) }
        timing.verify = try plan.verifyScheduleID.flatMap { try schedules.schedule(id: $0) }.map(ScheduleController.settings(of:))
        timing.prune = try plan.pruneScheduleID.flatMap { try schedules.schedule(id: $0) }.map(ScheduleController.settings(of:))
        timing.backup.enabled = !plan.paused
        return timing
    }

    static let planColumns = [
        "name", "host_id", "repository_id", "paths", "excludes", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
        "keep_yearly", "keep_within", "prune_after_run", "pre_hook", "post_hook", "verify_read_data_subset", "alert_after_hours", "paused",
    ]

    static func planValues(_ plan: BackupPlan) -> [(any DatabaseValueConvertible)?] {
        let r = plan.retention
        return [
            plan.name, plan.hostID, plan.repositoryID, JSONText.encode(plan.paths), JSONText.encode(plan.excludes), r.last, r.hourly, r.daily,
            r.weekly,
            r.monthly, r.yearly, r.within, plan.pruneAfterRun, JSONText.encode(plan.preHook), JSONText.encode(plan.postHook),
            plan.verifyReadDataSubset, plan.alertAfterHours, plan.paused,
        ]
    }

    static func audit(_ plan: BackupPlan) -> [String: Any] {
        var result: [String: Any] = [:]
        for (column, value) in zip(planColumns, planValues(plan)) { result[column] = value.map { "\($0)" } ?? NSNull() }
        return result
    }

    public func createPlan(_ plan: BackupPlan, timing: BackupPlanTiming, hostName: String, by who: AuditActor, now: Date) throws -> BackupPlan {
        let id = try database.write { db -> Int64 in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM backup_plans WHERE name = ?)", arguments: [plan.name]) == true {
                throw Problem.invalid(["name": "a plan named \"\(plan.name)\" exists; choose another name"])
            }
            let placeholders = Array(repeating: "?", count: Self.planColumns.count + 3).joined(separator: ", ")
            try db.execute(
                sql:
                    "INSERT INTO backup_plans (\(Self.planColumns.joined(separator: ", ")), builtin, created_at, updated_at) VALUES (\(placeholders))",
                arguments: StatementArguments(Self.planValues(plan) + [plan.builtin, EpochMilliseconds.from(now), EpochMilliseconds.from(now)]))
            let id = db.lastInsertedRowID
            var saved = plan
            saved.id = id
            try syncSchedules(db, plan: saved, timing: timing, hostName: hostName, owner: who.actor, now: now)
            try BackupAlerts.sync(db, plan: saved, hostName: hostName, by: who, now: now)
            try AuditLog.append(db, by: who, action: "backup_plan.create", target: "backup_plan:\(plan.name)", after: Self.audit(plan), now: now)
            return id
        }
        return try self.plan(id: id)!
    }

    public func updatePlan(_ plan: BackupPlan, timing: BackupPlanTiming, hostName: String, by who: AuditActor, now: Date) throws -> BackupPlan? {
        guard let before = try self.plan(id: plan.id) else { return nil }
        try database.write { db in
            if plan.name != before.name,
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM backup_plans WHERE name = ?)", arguments: [plan.name]) == true
            {
                throw Problem.invalid(["name": "a plan named \"\(plan.name)\" exists; choose another name"])
            }
            let assignments = Self.planColumns.map { "\($0) = ?" }.joined(separator: ", ")
            try db.execute(
                sql: "UPDATE backup_plans SET \(assignments), updated_at = ? WHERE id = ?",
                arguments: StatementArguments(Self.planValues(plan) + [EpochMilliseconds.from(now), plan.id]))
            var saved = plan
            saved.backupScheduleID = before.backupScheduleID
            saved.verifyScheduleID = before.verifyScheduleID
            saved.pruneScheduleID = before.pruneScheduleID
            try syncSchedules(db, plan: saved, timing: timing, hostName: hostName, owner: who.actor, now: now)
            try BackupAlerts.sync(db, plan: saved, hostName: hostName, by: who, now: now)
            try AuditLog.append(
                db, by: who, action: plan.paused != before.paused ? (plan.paused ? "backup_plan.pause" : "backup_plan.resume") : "backup_plan.update",
                target: "backup_plan:\(plan.name)", before: Self.audit(before), after: Self.audit(plan), now: now)
        }
        return try self.plan(id: plan.id)
    }

    /// Remove the plan, its schedules and its alert rules; snapshots stay in the repository, and past runs stay as jobs.
    public func deletePlan(_ plan: BackupPlan, by who: AuditActor, now: Date) throws {
        try database.write { db in
            for id in [plan.backupScheduleID, plan.verifyScheduleID, plan.pruneScheduleID].compactMap({ $0 }) {
                try db.execute(sql: "DELETE FROM schedules WHERE id = ?", arguments: [id])
            }
            try db.execute(sql: "DELETE FROM backup_plans WHERE id = ?", arguments: [plan.id])
            try BackupAlerts.remove(db, planID: plan.id, by: who, now: now)
            try AuditLog.append(db, by: who, action: "backup_plan.delete", target: "backup_plan:\(plan.name)", before: Self.audit(plan), now: now)
        }
    }

    /// Create, update or remove the plan's three schedules to match `timing`; pausing disables all of them.
    func syncSchedules(_ db: GRDB.Database, plan: BackupPlan, timing: BackupPlanTiming, hostName: String, owner: String, now: Date) throws {
        let params = BackupPlanJob(planID: plan.id).json
        let entries: [(column: String, current: Int64?, settings: ScheduleSettings?, kind: String, label: String)] = [
            ("backup_schedule_id", plan.backupScheduleID, timing.backup, Self.backupKind, "Backup"),
            ("verify_schedule_id", plan.verifyScheduleID, timing.verify, Self.checkKind, "Verify backups"),
            ("prune_schedule_id", plan.pruneScheduleID, timing.prune, Self.forgetKind, "Apply retention"),
        ]
        for entry in entries {
            if var settings = entry.settings {
                settings.enabled = !plan.paused
                let title = "\(entry.label): \(plan.name)"
                if let id = entry.current, try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM schedules WHERE id = ?)", arguments: [id]) == true
                {
                    try ScheduleStore.apply(db, id: id, settings: settings, now: now)
                    try db.execute(
                        sql: "UPDATE schedules SET name = ?, job_title = ?, job_host = ? WHERE id = ?", arguments: [title, title, hostName, id])
                } else {
                    let id = try ScheduleStore.insert(
                        db, name: title, settings: settings, jobKind: entry.kind, jobTitle: title, jobParams: params, jobHost: hostName, owner: owner,
                        now: now)
                    try db.execute(sql: "UPDATE backup_plans SET \(entry.column) = ? WHERE id = ?", arguments: [id, plan.id])
                }
            } else if let id = entry.current {
                try db.execute(sql: "DELETE FROM schedules WHERE id = ?", arguments: [id])
                try db.execute(sql: "UPDATE backup_plans SET \(entry.column) = NULL WHERE id = ?", arguments: [plan.id])
            }
        }
    }

    // MARK: runs

    public struct Run: Sendable, Equatable {
        public var jobID: Int64
        public var kind: String
        public var planID: Int64?
        public var repositoryID: Int64?
        public var startedAt: Int64
        public var finishedAt: Int64?
        public var snapshotID: String?
        public var filesNew: Int64?
        public var filesChanged: Int64?
        public var filesUnmodified: Int64?
        public var bytesAdded: Int64?
        public var bytesProcessed: Int64?
        public var durationMS: Int64?
        public var removedSnapshots: Int64?
        public var detail: String?
        public var jobState: Job.State

        init(row: Row) {
            jobID = row["job_id"]
            kind = row["kind"]
            planID = row["plan_id"]
            repositoryID = row["repository_id"]
            startedAt = row["started_at"]
            finishedAt = row["finished_at"]
            snapshotID = row["snapshot_id"]
            filesNew = row["files_new"]
            filesChanged = row["files_changed"]
            filesUnmodified = row["files_unmodified"]
            bytesAdded = row["bytes_added"]
            bytesProcessed = row["bytes_processed"]
            durationMS = row["duration_ms"]
            removedSnapshots = row["removed_snapshots"]
            detail = row["detail"]
            jobState = Job.State(rawValue: row["state"]) ?? .failed
        }
    }

    public func startRun(jobID: Int64, kind: String, planID: Int64?, repositoryID: Int64, hostID: Int64, now: Date) throws {
        try database.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO backup_runs (job_id, kind, plan_id, repository_id, host_id, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [jobID, kind, planID, repositoryID, hostID, EpochMilliseconds.from(now)])
        }
    }

    public func recordSummary(jobID: Int64, summary: ResticMessage.Summary) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    UPDATE backup_runs SET snapshot_id = ?, files_new = ?, files_changed = ?, files_unmodified = ?, bytes_added = ?,
                        bytes_processed = ?, duration_ms = ? WHERE job_id = ?
                    """,
                arguments: [
                    summary.snapshotID, summary.filesNew, summary.filesChanged, summary.filesUnmodified, summary.bytesAdded, summary.bytesProcessed,
                    Int64(summary.duration * 1000), jobID,
                ])
        }
    }

    public func finishRun(jobID: Int64, removed: Int? = nil, detail: String? = nil, now: Date) throws {
        try database.write { db in
            try db.execute(
                sql:
                    "UPDATE backup_runs SET finished_at = ?, removed_snapshots = COALESCE(?, removed_snapshots), detail = COALESCE(?, detail) WHERE job_id = ?",
                arguments: [EpochMilliseconds.from(now), removed, detail, jobID])
        }
    }

    /// Whether the newest other operation on the repository ended on its own (succeeded or failed). One that was
    /// interrupted or cancelled may have left a restic lock behind.
    public func previousRunEndedCleanly(repositoryID: Int64, excluding jobID: Int64) throws -> Bool {
        let state = try database.read { db in
            try String.fetchOne(
                db,
                sql:
                    "SELECT j.state FROM backup_runs r JOIN jobs j ON j.id = r.job_id WHERE r.repository_id = ? AND r.job_id != ? ORDER BY r.job_id DESC LIMIT 1",
                arguments: [repositoryID, jobID])
        }
        return state == nil || state == "succeeded" || state == "failed"
    }

    static let runSelect = "SELECT r.*, j.state FROM backup_runs r JOIN jobs j ON j.id = r.job_id"

    public func runs(planID: Int64, limit: Int = 20) throws -> [Run] {
        try database.read { db in
            try Row.fetchAll(db, sql: "\(Self.runSelect) WHERE r.plan_id = ? ORDER BY r.job_id DESC LIMIT ?", arguments: [planID, limit]).map(
                Run.init)
        }
    }

    public func run(jobID: Int64) throws -> Run? {
        try database.read { db in try Row.fetchOne(db, sql: "\(Self.runSelect) WHERE r.job_id = ?", arguments: [jobID]).map(Run.init) }
    }

    public func runs(repositoryID: Int64, limit: Int = 20) throws -> [Run] {
        try database.read { db in
            try Row.fetchAll(db, sql: "\(Self.runSelect) WHERE r.repository_id = ? ORDER BY r.job_id DESC LIMIT ?", arguments: [repositoryID, limit])
                .map(Run.init)
        }
    }

    /// The newest finished backup run of the plan, and the newest one that made a snapshot.
    public func lastBackups(planID: Int64) throws -> (last: Run?, lastSuccess: Run?) {
        try database.read { db in
            let last = try Row.fetchOne(
                db,
                sql:
                    "\(Self.runSelect) WHERE r.plan_id = ? AND r.kind = 'backup' AND j.state NOT IN ('queued', 'running') ORDER BY r.job_id DESC LIMIT 1",
                arguments: [planID]
            ).map(Run.init)
            let success = try Row.fetchOne(
                db,
                sql: "\(Self.runSelect) WHERE r.plan_id = ? AND r.kind = 'backup' AND r.snapshot_id IS NOT NULL ORDER BY r.job_id DESC LIMIT 1",
                arguments: [planID]
            ).map(Run.init)
            return (last, success)
        }
    }
}
