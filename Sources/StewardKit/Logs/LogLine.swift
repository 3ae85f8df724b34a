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
    public static func journal(_ object: [String: Any]) -> (line: LogLine, cursor: String)? {
        guard let cursor = object["__CURSOR"] as? String, let stamp = (object["__REALTIME_TIMESTAMP"] as? String).flatMap({ Int64($0) })
        else { return nil }
        func text(_ key: String) -> String? {
            switch object[key] {
            case let value as String: return value
            case let bytes as [Int]: return String(decoding: bytes.map { UInt8(clamping: $0) }, as: UTF8.self)
            case let values as [Any]: return values.compactMap { $0 as? String }.joined(separator: "\n")
            default: return nil
            }
        }
        var message = text("MESSAGE") ?? (object["MESSAGE"] is NSNull ? "[the message was too large for the journal's JSON]" : "")
        if message.utf8.count > maxMessageBytes {
            message = String(decoding: message.utf8.prefix(maxMessageBytes), as: UTF8.self).trimmingCharacters(in: ["\u{FFFD}"]) + " [cut]"
        }
        var fields: [String: String] = [:]
        for key in object.keys where !droppedFields.contains(key) {
            if let value = text(key) { fields[key] = value.count > 1024 ? String(value.prefix(1024)) + " [cut]" : value }
        }
        let line = LogLine(
            time: stamp, priority: text("PRIORITY").flatMap { Int($0) }.map { max(0, min(7, $0)) } ?? 6, unit: text("_SYSTEMD_UNIT") ?? "",
            identifier: text("SYSLOG_IDENTIFIER") ?? text("_COMM") ?? "", pid: text("_PID").flatMap { Int($0) }, message: message,
            boot: text("_BOOT_ID") ?? "", fields: fields)
        return (line, cursor)
    }

    /// Complete lines of `journalctl -o json` output, in order, with the cursor of the last one read. A last line cut
    /// short (the read stopped at its byte cap) is left for the next read, which starts after the returned cursor.
    public static func journalLines(_ output: String) -> (lines: [LogLine], cursor: String?, skipped: Int) {
        var lines: [LogLine] = []
        var cursor: String?
        var skipped = 0
        for text in output.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                skipped += 1
                continue
            }
            guard let (line, position) = journal(object) else {
                skipped += 1
                continue
            }
            lines.append(line)
            cursor = position
        }
        return (lines, cursor, skipped)
    }
}
