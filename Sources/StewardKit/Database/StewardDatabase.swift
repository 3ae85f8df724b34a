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
        }
        let isNew = !FileManager.default.fileExists(atPath: path)
        let pool = try DatabasePool(path: path, configuration: configuration)
        if isNew {
            // Must precede the first table so later retention work can hand pages back with incremental_vacuum.
            try pool.barrierWriteWithoutTransaction { db in
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL; VACUUM")
            }
        }
        chmod(path, 0o600)
        return pool
    }

    /// Bytes of the database file plus its WAL, as reported on /metrics and the dashboard.
    public static func sizeOnDisk(path: String) -> Int64 {
        [path, path + "-wal", path + "-shm"].reduce(0) { total, file in
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value ?? 0
            return total + size
        }
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
