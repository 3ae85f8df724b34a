import Foundation
import GRDB

/// A recurring maintenance window for a host group: it opens at each time its cron expression gives (in its time
/// zone) and stays open for `durationMinutes`.
public struct MaintenanceWindow: Sendable, Equatable {
    public var id: Int64 = 0
    public var name = ""
    public var hostGroup = ""
    public var cron = ""
    public var durationMinutes = 60
    public var timeZone = "UTC"
    public var enabled = true
    public var comment = ""

    public init() {}

    public func problems() -> [String: String] {
        var errors: [String: String] = [:]
        if name.trimmingCharacters(in: .whitespaces).isEmpty || name.count > 120 { errors["name"] = "1 to 120 characters" }
        if let message = HostValidation.groupName(hostGroup) { errors["host_group"] = message }
        do { _ = try CronExpression(cron) } catch { errors["cron"] = error.description }
        if !(1...10080).contains(durationMinutes) { errors["duration_minutes"] = "from 1 minute to 7 days (10080)" }
        if TimeZone(identifier: timeZone) == nil { errors["time_zone"] = "an IANA time zone such as UTC or Europe/Berlin" }
        return errors
    }

    /// Whether the window is open at `date`: some opening lies in (date - duration, date].
    public func isOpen(at date: Date) -> Bool {
        guard enabled, let expression = try? CronExpression(cron), let zone = TimeZone(identifier: timeZone) else { return false }
        let duration = TimeInterval(durationMinutes * 60)
        guard let opening = expression.nextFire(after: date.addingTimeInterval(-duration), in: zone) else { return false }
        return opening <= date
    }
}

public struct MaintenanceWindowStore: Sendable {
    let database: DatabasePool

    public init(database: DatabasePool) { self.database = database }

    public func all() throws -> [MaintenanceWindow] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM maintenance_windows ORDER BY name").map { row in
                var window = MaintenanceWindow()
                window.id = row["id"]
                window.name = row["name"]
                window.hostGroup = row["host_group"]
                window.cron = row["cron"]
                window.durationMinutes = row["duration_minutes"]
                window.timeZone = row["time_zone"]
                window.enabled = row["enabled"]
                window.comment = row["comment"]
                return window
            }
        }
    }

    public func create(_ window: MaintenanceWindow, by who: AuditActor, now: Date) throws -> Int64 {
        try database.write { db in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM maintenance_windows WHERE name = ?)", arguments: [window.name]) == true {
                throw Problem.invalid(["name": "a window named \"\(window.name)\" exists"])
            }
            try db.execute(
                sql: """
                    INSERT INTO maintenance_windows (name, host_group, cron, duration_minutes, time_zone, enabled, comment, created_by, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    window.name, window.hostGroup, window.cron, window.durationMinutes, window.timeZone, window.enabled, window.comment, who.actor,
                    EpochMilliseconds.from(now),
                ])
            let id = db.lastInsertedRowID
            try AuditLog.append(
                db, by: who, action: "maintenance.create", target: "maintenance:\(window.name)",
                after: [
                    "host_group": window.hostGroup, "cron": window.cron, "duration_minutes": window.durationMinutes, "time_zone": window.timeZone,
                ],
                now: now)
            return id
        }
    }

    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            guard let name = try String.fetchOne(db, sql: "SELECT name FROM maintenance_windows WHERE id = ?", arguments: [id]) else { return false }
            try db.execute(sql: "DELETE FROM maintenance_windows WHERE id = ?", arguments: [id])
            try AuditLog.append(db, by: who, action: "maintenance.delete", target: "maintenance:\(name)", now: now)
            return true
        }
    }
}
