import Foundation
import GRDB

/// The `maintenance.database` job: checkpoint the WAL, refresh planner statistics, hand free pages back to the
/// filesystem, and check integrity. Scheduled daily by default.
public enum DatabaseMaintenance {
    public static let kind = "maintenance.database"

    public static func handler(database: DatabasePool, path: String) -> JobHandler {
        { context in
            let before = StewardDatabase.sizeOnDisk(path: path)
            try await context.progress(5, "checking integrity")
            let check = try await database.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            guard check == ["ok"] else {
                throw JobFailure(
                    "PRAGMA quick_check reported problems: \(check.prefix(5).joined(separator: "; ")); restore the database from a backup")
            }
            await context.log("integrity: ok")
            try Task.checkCancellation()
            try await context.progress(35, "optimizing")
            try await database.write { db in try db.execute(sql: "PRAGMA optimize") }
            await context.log("PRAGMA optimize: done")
            try await context.progress(60, "returning free pages")
            let freePages = try await database.writeWithoutTransaction { db in
                let free = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
                try db.execute(sql: "PRAGMA incremental_vacuum")
                return free
            }
            await context.log("incremental vacuum: released \(freePages) free page(s)")
            try await context.progress(85, "checkpointing the WAL")
            let checkpoint = try await database.writeWithoutTransaction { db in
                try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
            await context.log(
                "WAL checkpoint: busy=\(checkpoint?[0] as Int? ?? -1) log=\(checkpoint?[1] as Int? ?? -1) checkpointed=\(checkpoint?[2] as Int? ?? -1)"
            )
            let after = StewardDatabase.sizeOnDisk(path: path)
            await context.log("database size: \(before) -> \(after) bytes (\(before - after) freed)")
            try await context.progress(100, "done: \(max(0, before - after)) bytes freed")
        }
    }

    /// The built-in daily schedule, created once; operators may retime or pause it but it is never duplicated.
    public static func ensureSchedule(_ store: ScheduleStore, now: Date) throws {
        guard try store.schedule(named: "Database maintenance") == nil else { return }
        _ = try store.create(
            name: "Database maintenance",
            settings: ScheduleSettings(
                cron: "17 3 * * *", timeZone: TimeZone.current.identifier, jitterSeconds: 600, catchUp: .one, concurrency: .forbid),
            jobKind: kind, jobTitle: "Database maintenance", owner: "system", now: now)
    }
}
