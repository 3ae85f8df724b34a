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

    /// A journal field's value as `journalctl -o json` writes it.
    enum JournalValue {
        case text(String)
        /// Bytes that are not UTF-8 (or binary), as an array of numbers.
        case bytes([UInt8])
        /// A field given more than once.
        case many([JournalValue])
        /// Too large for journalctl to print.
        case null

        init?(_ any: Any) {
            switch any {
            case let value as String: self = .text(value)
            case let bytes as [Int]: self = .bytes(bytes.map { UInt8(clamping: $0) })
            case let values as [Any]: self = .many(values.compactMap(JournalValue.init))
            case is NSNull: self = .null
            default: return nil
            }
        }

        var text: String? {
            switch self {
            case .text(let value): value
            case .bytes(let bytes): String(decoding: bytes, as: UTF8.self)
            case .many(let values): values.compactMap { if case .text(let value) = $0 { value } else { nil } }.joined(separator: "\n")
            case .null: nil
            }
        }
    }

    public static func journal(_ object: [String: Any], now: Int64 = Int64(Date().timeIntervalSince1970 * 1_000_000)) -> (
        line: LogLine, cursor: String
    )? {
        journal(object.compactMapValues(JournalValue.init), now: now)
    }

    static func journal(_ object: [String: JournalValue], now: Int64) -> (line: LogLine, cursor: String)? {
        guard case .text(let cursor) = object["__CURSOR"], cursor.utf8.count <= 512,
            case .text(let stampText) = object["__REALTIME_TIMESTAMP"], let claimed = Int64(stampText)
        else { return nil }
        let stamp = plausible(claimed, now: now) ? claimed : now
        func text(_ key: String) -> String? { object[key]?.text }
        var message =
            text("MESSAGE")
            ?? (object["MESSAGE"].map { if case .null = $0 { true } else { false } } == true
                ? "[the message was too large for the journal's JSON]" : "")
        message = cut(message, bytes: maxMessageBytes)
        var fields: [String: String] = [:]
        for key in object.keys.sorted() where !droppedFields.contains(key) && fieldName(key) && fields.count < maxFields {
            if let value = text(key) { fields[key] = cut(value, bytes: maxFieldBytes) }
        }
        if stamp != claimed { fields["STEWARD_CLAIMED_TIMESTAMP"] = String(claimed) }
        var line = LogLine(
            time: stamp, priority: text("PRIORITY").flatMap { Int($0) }.map { max(0, min(7, $0)) } ?? 6,
            unit: cut(text("_SYSTEMD_UNIT") ?? "", bytes: 256), identifier: cut(text("SYSLOG_IDENTIFIER") ?? text("_COMM") ?? "", bytes: 256),
            pid: text("_PID").flatMap { Int($0) }, message: message, boot: cut(text("_BOOT_ID") ?? "", bytes: 64), fields: fields)
        if let monotonic = text("__MONOTONIC_TIMESTAMP").flatMap({ Int64($0) }), monotonic >= 0, monotonic <= claimed, stamp == claimed {
            line.bootStarted = claimed - monotonic
        }
        return (line, cursor)
    }

    /// Complete lines of `journalctl -o json` output, in order, with the cursor of the last one read. A last line cut
    /// short (the read stopped at its byte cap) is left for the next read, which starts after the returned cursor.
    public static func journalLines(_ output: String) -> (lines: [LogLine], cursor: String?, skipped: Int) {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var lines: [LogLine] = []
        var cursor: String?
        var skipped = 0
        for text in output.utf8.split(separator: 0x0A, omittingEmptySubsequences: true) {
            // journalctl's JSON is flat and simple: read by hand; anything the quick reader does not expect goes to
            // Foundation's parser instead.
            let object =
                JournalJSON.object(text)
                ?? (try? JSONSerialization.jsonObject(with: Data(text)) as? [String: Any]).map { $0.compactMapValues(JournalValue.init) }
            guard let object else {
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

/// A reader for the one shape of JSON `journalctl -o json` prints: an object whose values are strings, arrays of byte
/// numbers, arrays of those two, or null. Returns nil for anything else (the caller falls back to Foundation).
enum JournalJSON {
    static func object(_ text: Substring.UTF8View) -> [String: LogLine.JournalValue]? {
        var text = text
        return text.withContiguousStorageIfAvailable { buffer -> [String: LogLine.JournalValue]? in
            var reader = Reader(bytes: buffer)
            return reader.object()
        }
            ?? {
                let bytes = Array(text)
                return bytes.withUnsafeBufferPointer { buffer in
                    var reader = Reader(bytes: buffer)
                    return reader.object()
                }
            }()
    }

    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func space() {
            while position < bytes.count, [0x20, 0x09, 0x0D, 0x0A].contains(bytes[position]) { position += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            space()
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        mutating func object() -> [String: LogLine.JournalValue]? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var object: [String: LogLine.JournalValue] = [:]
            object.reserveCapacity(32)
            if take(UInt8(ascii: "}")) { return finished() ? object : nil }
            repeat {
                space()
                guard let key = string(), take(UInt8(ascii: ":")), let value = value() else { return nil }
                object[key] = value
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "}")), finished() else { return nil }
            return object
        }

        mutating func finished() -> Bool {
            space()
            return position == bytes.count
        }

        mutating func value() -> LogLine.JournalValue? {
            space()
            guard position < bytes.count else { return nil }
            switch bytes[position] {
            case UInt8(ascii: "\""): return string().map { .text($0) }
            case UInt8(ascii: "n"):
                guard bytes.count - position >= 4, bytes[position + 1] == UInt8(ascii: "u"), bytes[position + 2] == UInt8(ascii: "l"),
                    bytes[position + 3] == UInt8(ascii: "l")
                else { return nil }
                position += 4
                return .null
            case UInt8(ascii: "["):
                position += 1
                var numbers: [UInt8] = []
                var values: [LogLine.JournalValue] = []
                if take(UInt8(ascii: "]")) { return .bytes([]) }
                repeat {
                    space()
                    guard position < bytes.count else { return nil }
                    if bytes[position] >= 0x30 && bytes[position] <= 0x39 {
                        guard values.isEmpty, let number = number() else { return nil }
                        numbers.append(number)
                    } else {
                        guard numbers.isEmpty, let value = value() else { return nil }
                        values.append(value)
                    }
                } while take(UInt8(ascii: ","))
                guard take(UInt8(ascii: "]")) else { return nil }
                return values.isEmpty ? .bytes(numbers) : .many(values)
            default: return nil
            }
        }

        mutating func number() -> UInt8? {
            var value = 0
            let start = position
            while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39, position - start < 3 {
                value = value * 10 + Int(bytes[position] - 0x30)
                position += 1
            }
            return value <= 255 && position > start ? UInt8(value) : nil
        }

        /// A JSON string (after its opening quote is next); plain runs are copied as they are.
        mutating func string() -> String? {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
            position += 1
            let start = position
            // The common case: no escapes.
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                    position += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
                position += 1
            }
            var out = Array(bytes[start..<position])
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard position < bytes.count else { return nil }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex() else { return nil }
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                                return nil
                            }
                            position += 2
                            guard let low = hex(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let character = Unicode.Scalar(scalar) else { return nil }
                        out.append(contentsOf: String(Character(character)).utf8)
                    default: return nil
                    }
                default:
                    guard byte >= 0x20 else { return nil }
                    out.append(byte)
                }
            }
            return nil
        }

        mutating func hex() -> UInt32? {
            guard bytes.count - position >= 4 else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                position += 1
                let digit: UInt32
                switch byte {
                case 0x30...0x39: digit = UInt32(byte - 0x30)
                case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
                default: return nil
                }
                value = value * 16 + digit
            }
            return value
        }
    }
}
