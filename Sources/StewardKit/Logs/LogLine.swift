import Foundation

/// One log line as Steward keeps it: when, how urgent, from which unit and program, the message, and the rest of
/// the journal's fields for the line's detail view.
public struct LogLine: Sendable, Equatable, Codable {
    /// Microseconds since the epoch (the journal's `__REALTIME_TIMESTAMP`).
    public var time: Int64
    /// syslog priority, 0 (emerg) to 7 (debug).
    public var priority: Int
    public var unit: String
    public var identifier: String
    public var pid: Int?
    public var message: String
    public var boot: String
    /// Other fields, by the journal's names (`_COMM`, `_EXE`, `UNIT`, `_TRANSPORT`, ...).
    public var fields: [String: String]
    /// In a merged block: the block a read first stored the line in, and its place there (see `LogStore`).
    var seq: Int64?
    var seqIndex: Int?
    /// When the line's boot began, in microseconds (wall-clock time less time since boot), as read; not stored.
    var bootStarted: Int64? = nil

    public init(
        time: Int64, priority: Int, unit: String = "", identifier: String = "", pid: Int? = nil, message: String, boot: String = "",
        fields: [String: String] = [:]
    ) {
        self.time = time
        self.priority = priority
        self.unit = unit
        self.identifier = identifier
        self.pid = pid
        self.message = message
        self.boot = boot
        self.fields = fields
    }

    enum CodingKeys: String, CodingKey {
        case time = "t"
        case priority = "p"
        case unit = "u"
        case identifier = "i"
        case pid = "n"
        case message = "m"
        case boot = "b"
        case fields = "f"
        case seq = "q"
        case seqIndex = "k"
    }

    /// The unit a line belongs to as `journalctl -u` sees it: the unit that logged it, or the unit systemd logged about.
    public func belongs(to unit: String) -> Bool { self.unit == unit || fields["UNIT"] == unit || fields["USER_UNIT"] == unit }

    public static let priorityNames = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
    public var priorityName: String { Self.priorityNames[max(0, min(7, priority))] }

    /// A message longer than this is cut (at a character boundary) and says so; the journal's own limit is larger.
    static let maxMessageBytes = 16 << 10
    /// Fields left out: positions and sequence numbers that differ on every line and say nothing to a reader.
    static let droppedFields: Set<String> = [
        "__CURSOR", "__MONOTONIC_TIMESTAMP", "__SEQNUM", "__SEQNUM_ID", "_SOURCE_MONOTONIC_TIMESTAMP", "__REALTIME_TIMESTAMP", "MESSAGE",
        "PRIORITY", "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "_PID", "_BOOT_ID",
    ]

    /// One line of `journalctl -o json`: every value is a string, an array of byte values (binary or invalid UTF-8),
    /// an array of those (a field given more than once) or null (too large). Returns the line and its cursor.
    /// A host decides what its journal says: a line keeps at most `maxFields` fields with journald's names, each value
    /// at most `maxFieldBytes`, and a unit or identifier of at most 256 bytes.
    static let maxFields = 64
    static let maxFieldBytes = 1024
    /// Times a host may claim: from the epoch to a day ahead of Steward's clock. Others are stored at the read's time,
    /// with the claimed value kept in the fields.
    static func plausible(_ microseconds: Int64, now: Int64) -> Bool { microseconds >= 0 && microseconds <= now + 86_400_000_000 }

    static func cut(_ text: String, bytes: Int) -> String {
        text.utf8.count <= bytes ? text : String(decoding: text.utf8.prefix(bytes), as: UTF8.self).trimmingCharacters(in: ["\u{FFFD}"]) + " [cut]"
    }

    static func fieldName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }

    public static func journal(_ object: [String: Any], now: Int64 = Int64(Date().timeIntervalSince1970 * 1_000_000)) -> (
        line: LogLine, cursor: String
    )? {
        guard let cursor = object["__CURSOR"] as? String, cursor.utf8.count <= 512,
            let claimed = (object["__REALTIME_TIMESTAMP"] as? String).flatMap({ Int64($0) })
        else { return nil }
        let stamp = plausible(claimed, now: now) ? claimed : now
        func text(_ key: String) -> String? {
            switch object[key] {
            case let value as String: return value
            case let bytes as [Int]: return String(decoding: bytes.map { UInt8(clamping: $0) }, as: UTF8.self)
            case let values as [Any]: return values.compactMap { $0 as? String }.joined(separator: "\n")
            default: return nil
            }
        }
        var message = text("MESSAGE") ?? (object["MESSAGE"] is NSNull ? "[the message was too large for the journal's JSON]" : "")
        message = cut(message, bytes: maxMessageBytes)
        var fields: [String: String] = [:]
        for key in object.keys.sorted() where !droppedFields.contains(key) && fieldName(key) && fields.count < maxFields {
            if let value = text(key) { fields[key] = cut(value, bytes: maxFieldBytes) }
        }
        if stamp != claimed { fields["STEWARD_CLAIMED_TIMESTAMP"] = String(claimed) }
        let line = LogLine(
            time: stamp, priority: text("PRIORITY").flatMap { Int($0) }.map { max(0, min(7, $0)) } ?? 6,
            unit: cut(text("_SYSTEMD_UNIT") ?? "", bytes: 256), identifier: cut(text("SYSLOG_IDENTIFIER") ?? text("_COMM") ?? "", bytes: 256),
            pid: text("_PID").flatMap { Int($0) }, message: message, boot: cut(text("_BOOT_ID") ?? "", bytes: 64), fields: fields)
        var read = line
        if let monotonic = (object["__MONOTONIC_TIMESTAMP"] as? String).flatMap({ Int64($0) }), monotonic >= 0, monotonic <= claimed,
            stamp == claimed
        {
            read.bootStarted = claimed - monotonic
        }
        return (read, cursor)
    }

    /// Complete lines of `journalctl -o json` output, in order, with the cursor of the last one read. A last line cut
    /// short (the read stopped at its byte cap) is left for the next read, which starts after the returned cursor.
    public static func journalLines(_ output: String) -> (lines: [LogLine], cursor: String?, skipped: Int) {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var lines: [LogLine] = []
        var cursor: String?
        var skipped = 0
        for text in output.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                skipped += 1
                continue
            }
            guard let (line, position) = journal(object, now: now) else {
                skipped += 1
                continue
            }
            lines.append(line)
            cursor = position
        }
        return (lines, cursor, skipped)
    }
}
