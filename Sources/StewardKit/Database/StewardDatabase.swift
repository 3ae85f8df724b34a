import Foundation
import GRDB

/// Opens Steward's SQLite file as a GRDB `DatabasePool` in WAL mode with the pragmas every connection needs.
public enum StewardDatabase {
    public static func open(path: String) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        configuration.maximumReaderCount = 8
        configuration.prepareDatabase { db in
            // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the last commits.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // The log search index forgets a block only when given its document again: the trigger that removes a
            // deleted block from it (whoever deletes it: retention, a host's removal) rebuilds the document with this.
            db.add(function: LogStore.searchBodyFunction)
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch let error as DatabaseError where DatabaseDamage.isDamage(error) {
            throw DatabaseDamage(path: path, reason: error.message ?? "\(error.resultCode)")
        }
        // A new file, or one that exists with no schema yet (a zero-byte steward.db): set auto_vacuum before the first
        // table, so later retention work can hand pages back with incremental_vacuum.
        let empty = try pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master") == 0 && Int.fetchOne(db, sql: "PRAGMA auto_vacuum") != 2
        }
        if empty {
            try pool.barrierWriteWithoutTransaction { db in
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL; VACUUM")
            }
        }
        chmod(path, 0o600)
        return pool
    }

    /// PRAGMA quick_check, stopped after `limit`: the pages SQLite will read are sound (or the check ran out of
    /// time, which is logged, not fatal: a large database must not hold the start for minutes).
    public static func quickCheck(_ pool: DatabasePool, path: String, limit: Duration = .seconds(10)) throws -> QuickCheck {
        let timer = DispatchWorkItem { pool.interrupt() }
        let (seconds, attoseconds) = limit.components
        DispatchQueue.global().asyncAfter(deadline: .now() + Double(seconds) + Double(attoseconds) / 1e18, execute: timer)
        defer { timer.cancel() }
        do {
            let result = try pool.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check(5)") }
            guard result == ["ok"] else { throw DatabaseDamage(path: path, reason: result.joined(separator: "; ")) }
            return .passed
        } catch let error as DatabaseError where error.resultCode == .SQLITE_INTERRUPT {
            return .outOfTime
        } catch let error as DatabaseError where DatabaseDamage.isDamage(error) {
            throw DatabaseDamage(path: path, reason: error.message ?? "\(error.resultCode)")
        }
    }

    public enum QuickCheck: Sendable { case passed, outOfTime }

    /// Bytes of the database file plus its WAL, as reported on /metrics and the dashboard.
    public static func sizeOnDisk(path: String) -> Int64 {
        [path, path + "-wal", path + "-shm"].reduce(0) { total, file in
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value ?? 0
            return total + size
        }
    }
}

/// steward.db cannot be trusted: SQLite reports it malformed, or it is not a database at all. Steward stops
/// without writing to it and says how to get the newest self-backup back.
public struct DatabaseDamage: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    /// Filled in by the caller that can ask restic: when the newest self-backup was taken, or why none is known.
    public var newestBackup: String?

    public init(path: String, reason: String, newestBackup: String? = nil) {
        self.path = path
        // quick_check lists every bad page; the first few say enough.
        let lines = reason.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.hasPrefix("***") }
        self.reason = lines.prefix(3).joined(separator: "; ") + (lines.count > 3 ? "; and \(lines.count - 3) more problems" : "")
        self.newestBackup = newestBackup
    }

    static func isDamage(_ error: DatabaseError) -> Bool {
        [ResultCode.SQLITE_CORRUPT, .SQLITE_NOTADB].contains(error.resultCode)
    }

    public var description: String {
        let directory = (path as NSString).deletingLastPathComponent
        var text = "the database \(path) is damaged (SQLite says: \(reason)); Steward stopped without writing to it. "
        text += "Restore Steward's own backup with: steward restore-self --data \(directory)"
        text += " (it moves the damaged files aside, it does not delete them)"
        if let newestBackup { text += "; \(newestBackup)" }
        return text
    }
}

/// Epoch milliseconds, the one time representation stored in the database.
public enum EpochMilliseconds {
    public static func from(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    public static func date(_ milliseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
}

/// RFC 3339 UTC timestamps for the API and pages, formatted by hand: this runs for every row of every list page.
public enum RFC3339 {
    public static func string(_ date: Date) -> String {
        format(date, separator: "T", fraction: true, suffix: "Z")
    }

    public static func string(milliseconds: Int64?) -> String? { milliseconds.map { string(EpochMilliseconds.date($0)) } }

    /// "2026-11-21 14:30:32 UTC": unambiguous and sortable, for pages.
    static func display(_ date: Date) -> String { format(date, separator: " ", fraction: false, suffix: " UTC") }

    private static func format(_ date: Date, separator: Character, fraction: Bool, suffix: String) -> String {
        let totalMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let seconds = floorDiv(totalMilliseconds, 1000)
        let millis = Int(totalMilliseconds - seconds * 1000)
        let civil = CivilDate(daysSinceEpoch: Int(floorDiv(seconds, 86400)))
        let secondOfDay = Int(seconds - Int64(civil.daysSinceEpoch) * 86400)
        var text = ""
        text.reserveCapacity(32)
        append(&text, civil.year, width: 4)
        text.append("-")
        append(&text, civil.month, width: 2)
        text.append("-")
        append(&text, civil.day, width: 2)
        text.append(separator)
        append(&text, secondOfDay / 3600, width: 2)
        text.append(":")
        append(&text, secondOfDay % 3600 / 60, width: 2)
        text.append(":")
        append(&text, secondOfDay % 60, width: 2)
        if fraction {
            text.append(".")
            append(&text, millis, width: 3)
        }
        text.append(suffix)
        return text
    }

    private static func append(_ text: inout String, _ value: Int, width: Int) {
        let digits = String(value)
        if digits.count < width { text.append(String(repeating: "0", count: width - digits.count)) }
        text.append(digits)
    }
}
