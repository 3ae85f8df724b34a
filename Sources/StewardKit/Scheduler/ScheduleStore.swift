import Foundation
import GRDB

/// Reads and writes schedules.
public struct ScheduleStore: Sendable {
    public let database: any DatabaseWriter

    public init(database: any DatabaseWriter) {
        self.database = database
    }

    public func all() throws -> [Schedule] {
        try database.read { db in try Schedule.fetchAll(db, sql: "SELECT * FROM schedules ORDER BY name") }
    }

    public func schedule(id: Int64) throws -> Schedule? {
        try database.read { db in try Schedule.fetchOne(db, sql: "SELECT * FROM schedules WHERE id = ?", arguments: [id]) }
    }

    public func schedule(named name: String) throws -> Schedule? {
        try database.read { db in try Schedule.fetchOne(db, sql: "SELECT * FROM schedules WHERE name = ?", arguments: [name]) }
    }

    /// Create a schedule; its first fire time is computed from `now`.
    public func create(
        name: String, settings: ScheduleSettings, jobKind: String, jobTitle: String, jobParams: String = "{}", jobHost: String? = nil,
        owner: String, now: Date
    ) throws -> Schedule {
        try database.write { db in
            let id = try Self.insert(
                db, name: name, settings: settings, jobKind: jobKind, jobTitle: jobTitle, jobParams: jobParams, jobHost: jobHost, owner: owner,
                now: now)
            return try Schedule.fetchOne(db, sql: "SELECT * FROM schedules WHERE id = ?", arguments: [id])!
        }
    }

    /// Insert a schedule inside a caller's transaction (a backup plan and its schedules are saved together).
    static func insert(
        _ db: GRDB.Database, name: String, settings: ScheduleSettings, jobKind: String, jobTitle: String, jobParams: String, jobHost: String?,
        owner: String, now: Date
    ) throws -> Int64 {
        let timing = try ScheduleTiming(cron: settings.cron, timeZone: settings.timeZone, jitterSeconds: settings.jitterSeconds)
        let nowMS = EpochMilliseconds.from(now)
        try db.execute(
            sql: """
                INSERT INTO schedules (name, cron, time_zone, jitter_seconds, catch_up, concurrency, job_kind, job_title, job_params,
                    job_host, owner, enabled, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                name, settings.cron, settings.timeZone, settings.jitterSeconds, settings.catchUp.rawValue, settings.concurrency.rawValue,
                jobKind, jobTitle, jobParams, jobHost, owner, settings.enabled, nowMS, nowMS,
            ])
        let id = db.lastInsertedRowID
        try setNext(db, id: id, timing: timing, after: now)
        return id
    }

    /// Change a schedule's timing and switch inside a caller's transaction; the next fire time is recomputed.
    static func apply(_ db: GRDB.Database, id: Int64, settings: ScheduleSettings, now: Date) throws {
        let timing = try ScheduleTiming(cron: settings.cron, timeZone: settings.timeZone, jitterSeconds: settings.jitterSeconds)
        try db.execute(
            sql: """
                UPDATE schedules SET cron = ?, time_zone = ?, jitter_seconds = ?, catch_up = ?, concurrency = ?, enabled = ?, updated_at = ?
                WHERE id = ?
                """,
            arguments: [
                settings.cron, settings.timeZone, settings.jitterSeconds, settings.catchUp.rawValue, settings.concurrency.rawValue,
                settings.enabled, EpochMilliseconds.from(now), id,
            ])
        try setNext(db, id: id, timing: timing, after: now)
    }

    /// Change timing and policies; the next fire time is recomputed from `now`, so an edit never causes a catch-up.
    public func update(id: Int64, settings: ScheduleSettings, now: Date, by who: AuditActor) throws -> Schedule? {
        _ = try ScheduleTiming(cron: settings.cron, timeZone: settings.timeZone, jitterSeconds: settings.jitterSeconds)
        return try database.write { db in
            guard let before = try Schedule.fetchOne(db, sql: "SELECT * FROM schedules WHERE id = ?", arguments: [id]) else { return nil }
            try Self.apply(db, id: id, settings: settings, now: now)
            let after = try Schedule.fetchOne(db, sql: "SELECT * FROM schedules WHERE id = ?", arguments: [id])!
            try AuditLog.append(
                db, by: who, action: "schedule.update", target: "schedule:\(id)", before: Self.auditFields(before), after: Self.auditFields(after),
                now: now)
            return after
        }
    }

    static func auditFields(_ schedule: Schedule) -> [String: Any] {
        [
            "cron": schedule.cron, "time_zone": schedule.timeZone, "jitter_seconds": schedule.jitterSeconds, "catch_up": schedule.catchUp.rawValue,
            "concurrency": schedule.concurrency.rawValue, "enabled": schedule.enabled,
        ]
    }

    static func setNext(_ db: GRDB.Database, id: Int64, timing: ScheduleTiming, after: Date) throws {
        let next = timing.nextFire(after: after)
        let due = next.map { $0.addingTimeInterval(timing.jitter(scheduleID: id, nominal: $0)) }
        try db.execute(
            sql: "UPDATE schedules SET next_fire_at = ?, next_due_at = ? WHERE id = ?",
            arguments: [next.map(EpochMilliseconds.from), due.map(EpochMilliseconds.from), id])
    }

    /// Record what the scheduler did with one due time, and when it is due next.
    public func recordOutcome(id: Int64, lastFire: Date, next: Date?, due: Date?, jobID: Int64?, outcome: String, now: Date) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    UPDATE schedules SET last_fire_at = ?, next_fire_at = ?, next_due_at = ?, last_job_id = COALESCE(?, last_job_id),
                        last_outcome = ?, last_outcome_at = ?
                    WHERE id = ?
                    """,
                arguments: [
                    EpochMilliseconds.from(lastFire), next.map(EpochMilliseconds.from), due.map(EpochMilliseconds.from), jobID, outcome,
                    EpochMilliseconds.from(now), id,
                ])
        }
    }
}
