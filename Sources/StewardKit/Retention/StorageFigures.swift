import Foundation
import GRDB
import HTTPTypes
import Synchronization

/// What each data class costs on disk, how fast it grows, and when the disk fills at that rate.
public struct StorageFigures: Sendable {
    public struct Entry: Sendable {
        public var dataClass: DataClass
        public var rows: Int
        /// Pages of the class's tables and their indexes (SQLite's dbstat).
        public var bytes: Int64
        /// Rows added in the last 7 days, and the bytes that is per day at the class's average row size.
        public var rowsLastWeek: Int
        public var bytesPerDay: Double
        public var oldest: Int64?
    }

    public var entries: [Entry] = []
    /// When the figures were read.
    public var readAt = Date()
    public var databaseBytes: Int64 = 0
    public var freeBytes: Int64 = 0
    public var filesystemBytes: Int64 = 0
    public var bytesPerDay: Double { entries.reduce(0) { $0 + $1.bytesPerDay } }
    /// Days until the filesystem holding the database is full at this week's rate; nil when nothing grows.
    public var daysUntilFull: Double? { bytesPerDay > 0 ? Double(freeBytes) / bytesPerDay : nil }
}

extension RetentionService {
    /// The figures, read again when older than `storageCacheSeconds` or when `fresh` is asked for.
    public func storage(now: Date, fresh: Bool = false) throws -> StorageFigures {
        if !fresh, let cached = storageCache.withLock({ $0 }), now.timeIntervalSince(cached.readAt) < Self.storageCacheSeconds,
            now >= cached.readAt
        {
            return cached
        }
        let figures = try readStorage(now: now)
        storageCache.withLock { $0 = figures }
        return figures
    }

    func readStorage(now: Date) throws -> StorageFigures {
        let weekAgo = EpochMilliseconds.from(now) - 7 * 86_400_000
        var figures = try database.read { db -> StorageFigures in
            var figures = StorageFigures()
            figures.readAt = now
            // Every table's and index's pages, attributed to the table they belong to.
            var pages: [String: Int64] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT COALESCE(m.tbl_name, d.name) AS owner, SUM(d.pgsize) AS bytes FROM dbstat d
                    LEFT JOIN sqlite_schema m ON m.name = d.name GROUP BY owner
                    """)
            {
                pages[row["owner"], default: 0] += row["bytes"] as Int64? ?? 0
            }
            for dataClass in DataClass.allCases {
                let (table, time) = dataClass.countedTable
                let counts = try Row.fetchOne(
                    db, sql: "SELECT COUNT(*), COALESCE(SUM(\(time) >= ?), 0), MIN(\(time)) FROM \(table)", arguments: [weekAgo])
                let rows: Int = counts?[0] ?? 0
                let recent: Int = counts?[1] ?? 0
                let bytes = dataClass.tables.reduce(Int64(0)) { $0 + (pages[$1] ?? 0) }
                figures.entries.append(
                    StorageFigures.Entry(
                        dataClass: dataClass, rows: rows, bytes: bytes, rowsLastWeek: recent,
                        bytesPerDay: rows > 0 ? Double(bytes) * Double(recent) / Double(rows) / 7 : 0, oldest: counts?[2]))
            }
            figures.databaseBytes =
                (try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0) * (try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0)
            return figures
        }
        var stats = statvfs()
        if statvfs((databasePath as NSString).deletingLastPathComponent, &stats) == 0 {
            figures.freeBytes = Int64(stats.f_bavail) * Int64(stats.f_frsize)
            figures.filesystemBytes = Int64(stats.f_blocks) * Int64(stats.f_frsize)
        }
        return figures
    }

    /// The newest enforcement runs, newest first.
    public func runs(limit: Int = 30) throws -> [Row] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM retention_runs ORDER BY id DESC LIMIT ?", arguments: [limit])
        }
    }

    /// Backup snapshots are kept by each backup plan's own retention; the storage page lists them beside the rest.
    public func backupRetention() throws -> [(plan: String, repository: String, keep: String, bytes: Int64?, snapshots: Int?)] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT p.name, r.name AS repository, r.size_bytes, r.snapshot_count, p.keep_last, p.keep_hourly, p.keep_daily,
                        p.keep_weekly, p.keep_monthly, p.keep_yearly, p.keep_within
                    FROM backup_plans p LEFT JOIN backup_repositories r ON r.id = p.repository_id ORDER BY p.name
                    """
            ).map { row in
                var keep: [String] = []
                for name in ["last", "hourly", "daily", "weekly", "monthly", "yearly"] {
                    if let count = row["keep_\(name)"] as Int? { keep.append("\(name) \(count)") }
                }
                if let within = row["keep_within"] as String?, !within.isEmpty { keep.append("within \(within)") }
                return (
                    row["name"], row["repository"] ?? "",
                    "keep " + (keep.isEmpty ? "last 1" : keep.joined(separator: ", ")) + "; the newest snapshot always stays",
                    row["size_bytes"], row["snapshot_count"]
                )
            }
        }
    }
}

extension RetentionService {
    /// Place a hold described as text (a host name, YYYY-MM-DD or RFC 3339 times, a reason), as the form and the API
    /// send it; a 422 names each field that is wrong.
    func addHold(host: String?, from: String?, to: String?, reason: String, by who: AuditActor, now: Date) throws -> Int64 {
        var hold = RetentionHold()
        var errors: [String: String] = [:]
        if let host = host?.trimmingCharacters(in: .whitespaces), !host.isEmpty {
            if let found = try hostID(named: host) {
                hold.hostID = found
                hold.hostName = host
            } else {
                errors["host"] = "no host is named \(host)"
            }
        }
        for (key, text, path) in [("from", from, \RetentionHold.fromMS), ("to", to, \RetentionHold.toMS)] {
            guard let text = text?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { continue }
            if let date = AuditController.parseTime(text) {
                hold[keyPath: path] = EpochMilliseconds.from(date)
            } else {
                errors[key] = "YYYY-MM-DD or an RFC 3339 time"
            }
        }
        hold.reason = reason
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return try addHold(hold, by: who, now: now)
    }

    func hostID(named name: String) throws -> Int64? {
        try database.read { db in try Int64.fetchOne(db, sql: "SELECT id FROM hosts WHERE name = ?", arguments: [name]) }
    }
}
