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
        var name = name
        return name.withUTF8 { bytes in
            (1...64).contains(bytes.count) && bytes.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
        }
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
        journal(pairs: object.map { (key: $0.key, value: $0.value) }, now: now)
    }

    /// The lengths of the names `journal(pairs:)` treats apart (_PID, _COMM, MESSAGE, __CURSOR, ...).
    static func specialLength(_ count: Int) -> Bool {
        switch count {
        case 4, 5, 7, 8, 11, 13, 17, 20, 21, 27: true
        default: false
        }
    }

    /// The line from a journal entry's fields in the order read (a name given twice: the last one counts, as in a
    /// dictionary). One pass: the fields Steward keeps in the line's own places, and the others.
    static func journal(pairs: [(key: String, value: JournalValue)], now: Int64) -> (line: LogLine, cursor: String)? {
        var cursor: JournalValue?
        var stamp: JournalValue?
        var message: JournalValue?
        var priority: JournalValue?
        var unit: JournalValue?
        var identifier: JournalValue?
        var comm: JournalValue?
        var pid: JournalValue?
        var boot: JournalValue?
        var monotonic: JournalValue?
        var others: [(key: String, value: String)] = []
        others.reserveCapacity(pairs.count)
        for (key, value) in pairs {
            // Most names are none of these: their length rules them out before any comparison.
            guard Self.specialLength(key.utf8.count) else {
                if fieldName(key), let text = value.text { others.append((key, text)) }
                continue
            }
            switch key {
            case "__CURSOR": cursor = value
            case "__REALTIME_TIMESTAMP": stamp = value
            case "MESSAGE": message = value
            case "PRIORITY": priority = value
            case "_SYSTEMD_UNIT": unit = value
            case "SYSLOG_IDENTIFIER": identifier = value
            case "_PID": pid = value
            case "_BOOT_ID": boot = value
            case "__MONOTONIC_TIMESTAMP": monotonic = value
            // Positions and sequence numbers that differ on every line and say nothing to a reader.
            case "__SEQNUM", "__SEQNUM_ID", "_SOURCE_MONOTONIC_TIMESTAMP": continue
            default:
                if key == "_COMM" { comm = value }
                if fieldName(key), let text = value.text { others.append((key, text)) }
            }
        }
        guard case .text(let cursorText) = cursor, cursorText.utf8.count <= 512, case .text(let stampText) = stamp, let claimed = Int64(stampText)
        else { return nil }
        let time = plausible(claimed, now: now) ? claimed : now
        var text =
            message?.text
            ?? (message.map { if case .null = $0 { true } else { false } } == true ? "[the message was too large for the journal's JSON]" : "")
        text = cut(text, bytes: maxMessageBytes)
        // At most `maxFields`, the first by name when there are more.
        var fields: [String: String] = [:]
        fields.reserveCapacity(min(others.count, maxFields) + 1)
        if others.count > maxFields {
            let last = Dictionary(others, uniquingKeysWith: { $1 })
            for key in last.keys.sorted().prefix(maxFields) { fields[key] = cut(last[key]!, bytes: maxFieldBytes) }
        } else {
            for (key, value) in others { fields[key] = cut(value, bytes: maxFieldBytes) }
        }
        if time != claimed { fields["STEWARD_CLAIMED_TIMESTAMP"] = String(claimed) }
        var line = LogLine(
            time: time, priority: priority?.text.flatMap { Int($0) }.map { max(0, min(7, $0)) } ?? 6,
            unit: cut(unit?.text ?? "", bytes: 256), identifier: cut(identifier?.text ?? comm?.text ?? "", bytes: 256),
            pid: pid?.text.flatMap { Int($0) }, message: text, boot: cut(boot?.text ?? "", bytes: 64), fields: fields)
        if let monotonic = monotonic?.text.flatMap({ Int64($0) }), monotonic >= 0, monotonic <= claimed, time == claimed {
            line.bootStarted = claimed - monotonic
        }
        return (line, cursorText)
    }

    /// Complete lines of `journalctl -o json` output, in order, with the cursor of the last one read. A last line cut
    /// short (the read stopped at its byte cap) is left for the next read, which starts after the returned cursor.
    public static func journalLines(_ output: String) -> (lines: [LogLine], cursor: String?, skipped: Int) {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var lines: [LogLine] = []
        var cursor: String?
        var skipped = 0
        var output = output
        var names = StringTable()
        output.withUTF8 { bytes in
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != 0x0A { end += 1 }
                defer { start = end + 1 }
                guard end > start else { continue }
                let text = UnsafeBufferPointer(rebasing: bytes[start..<end])
                // journalctl's JSON is flat and simple: read by hand; anything the quick reader does not expect goes to
                // Foundation's parser instead.
                var reader = JournalJSON.Reader(bytes: text)
                let pairs =
                    reader.object(names: &names)
                    ?? (try? JSONSerialization.jsonObject(with: Data(text)) as? [String: Any]).map {
                        $0.compactMapValues(JournalValue.init).map { (key: $0.key, value: $0.value) }
                    }
                guard let pairs, let (line, position) = journal(pairs: pairs, now: now) else {
                    skipped += 1
                    continue
                }
                lines.append(line)
                cursor = position
            }
        }
        return (lines, cursor, skipped)
    }
}

/// A reader for the one shape of JSON `journalctl -o json` prints: an object whose values are strings, arrays of byte
/// numbers, arrays of those two, or null. Returns nil for anything else (the caller falls back to Foundation).
enum JournalJSON {
    static func object(_ text: Substring.UTF8View) -> [(key: String, value: LogLine.JournalValue)]? {
        var text = text
        return text.withContiguousStorageIfAvailable { buffer -> [(key: String, value: LogLine.JournalValue)]? in
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
            while position < bytes.count, bytes[position] == 0x20 || bytes[position] == 0x09 || bytes[position] == 0x0D || bytes[position] == 0x0A {
                position += 1
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            space()
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        mutating func object() -> [(key: String, value: LogLine.JournalValue)]? {
            var names = StringTable()
            return object(names: &names)
        }

        /// The object's fields in the order written; names without escapes are made once, in `names`.
        mutating func object(names: inout StringTable) -> [(key: String, value: LogLine.JournalValue)]? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var object: [(key: String, value: LogLine.JournalValue)] = []
            object.reserveCapacity(32)
            if take(UInt8(ascii: "}")) { return finished() ? object : nil }
            repeat {
                space()
                guard let key = name(&names) ?? string(), take(UInt8(ascii: ":")), let value = value() else { return nil }
                object.append((key, value))
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

        /// A string without escapes or control characters, from `names`; nil (and nothing read) otherwise.
        mutating func name(_ names: inout StringTable) -> String? {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
            var end = position + 1
            while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
            guard end < bytes.count, bytes[end] == UInt8(ascii: "\"") else { return nil }
            defer { position = end + 1 }
            return names.string(bytes: UnsafeBufferPointer(rebasing: bytes[(position + 1)..<end]))
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
