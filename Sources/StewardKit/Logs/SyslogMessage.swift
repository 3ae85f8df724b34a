import Foundation

/// Reads one syslog message, as a device sent it, into a log line: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID
/// [SD] MSG`) or the older BSD form of RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`). Nothing a sender writes is
/// refused: a part that does not parse stays in the message, and the line says which form was read.
enum SyslogMessage {
    /// Where a message came from and what Steward assumes about it.
    struct Origin {
        /// The sender's address, as the socket saw it.
        var sender: String
        /// tcp, udp or tls.
        var transport: String
        /// The zone RFC 3164 timestamps (which have none) are read in: the sender's, as an admin set it or the host reported it.
        var zone: TimeZone
        var now: Date
    }

    /// RFC 3164 says a message without PRI is user.notice.
    static let defaultPriority = 13
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func line(_ bytes: ArraySlice<UInt8>, origin: Origin) -> LogLine {
        var reader = Reader(bytes: trimmed(bytes))
        let nowMicroseconds = Int64(origin.now.timeIntervalSince1970 * 1_000_000)
        let pri = reader.priority() ?? defaultPriority
        var fields: [String: String] = [
            "_TRANSPORT": "syslog", "SYSLOG_FACILITY": String(pri / 8), "STEWARD_SENDER": origin.sender, "STEWARD_SYSLOG_TRANSPORT": origin.transport,
        ]
        var line = LogLine(time: nowMicroseconds, priority: pri % 8, message: "")
        var claimed: Int64?
        let start = reader.position
        if let parsed = rfc5424(&reader) {
            fields["STEWARD_SYSLOG_FORMAT"] = "rfc5424"
            claimed = parsed.time
            for (key, value) in [("SYSLOG_HOSTNAME", parsed.host), ("SYSLOG_MSGID", parsed.messageID), ("SYSLOG_STRUCTURED_DATA", parsed.data)]
            where value != "-" && !value.isEmpty {
                fields[key] = LogLine.cut(value, bytes: LogLine.maxFieldBytes)
            }
            line.identifier = parsed.app == "-" ? "" : parsed.app
            line.pid = Int(parsed.process)
            if parsed.process != "-", line.pid == nil { fields["SYSLOG_PROCID"] = LogLine.cut(parsed.process, bytes: 128) }
            line.message = parsed.message
        } else {
            reader.position = start
            fields["STEWARD_SYSLOG_FORMAT"] = "rfc3164"
            claimed = reader.bsdTimestamp(zone: origin.zone, now: origin.now) ?? reader.rfc3339Timestamp()
            if claimed != nil, let host = reader.bsdHostName() { fields["SYSLOG_HOSTNAME"] = LogLine.cut(host, bytes: 256) }
            if let (tag, pid) = reader.bsdTag() {
                line.identifier = tag
                line.pid = pid
            }
            line.message = reader.rest()
        }
        if let claimed {
            if LogLine.plausible(claimed, now: nowMicroseconds) {
                line.time = claimed
            } else {
                fields["STEWARD_CLAIMED_TIMESTAMP"] = String(claimed)
            }
        } else {
            fields["STEWARD_SYSLOG_TIME"] = "received"
        }
        line.identifier = LogLine.cut(line.identifier, bytes: 256)
        // Senders pad the message (rsyslog's templates put a space before %msg%, which already starts with one).
        line.message = LogLine.cut(String(line.message.drop { $0 == " " }), bytes: LogLine.maxMessageBytes)
        line.fields = fields
        return line
    }

    /// A frame without its trailing line ends and NULs (senders end frames in all of these).
    static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var end = bytes.endIndex
        while end > bytes.startIndex, [0x0A, 0x0D, 0x00].contains(bytes[end - 1]) { end -= 1 }
        return bytes[bytes.startIndex..<end]
    }

    struct Parsed5424 {
        var time: Int64?
        var host, app, process, messageID, data, message: String
    }

    /// The RFC 5424 header after PRI, or nil when the message is not in that form (the caller reads it as RFC 3164).
    static func rfc5424(_ reader: inout Reader) -> Parsed5424? {
        guard reader.take("1 ") else { return nil }
        guard let stamp = reader.word() else { return nil }
        var time: Int64?
        if stamp != "-" {
            var stampReader = Reader(bytes: ArraySlice(stamp.utf8))
            guard let parsed = stampReader.rfc3339Timestamp(), stampReader.atEnd else { return nil }
            time = parsed
        }
        guard reader.take(" "), let host = reader.word(), reader.take(" "), let app = reader.word(), reader.take(" "), let process = reader.word(),
            reader.take(" "), let messageID = reader.word(), reader.take(" "), let data = reader.structuredData()
        else { return nil }
        var message = ""
        if reader.take(" ") {
            _ = reader.take("\u{FEFF}")
            message = reader.rest()
        } else if !reader.atEnd {
            return nil
        }
        return Parsed5424(time: time, host: host, app: app, process: process, messageID: messageID, data: data, message: message)
    }

    /// A cursor over a message's bytes.
    struct Reader {
        let bytes: ArraySlice<UInt8>
        var position: Int

        init(bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            position = bytes.startIndex
        }

        var atEnd: Bool { position >= bytes.endIndex }
        func peek(_ offset: Int = 0) -> UInt8? { position + offset < bytes.endIndex ? bytes[position + offset] : nil }

        mutating func take(_ text: String) -> Bool {
            let expected = Array(text.utf8)
            guard bytes.endIndex - position >= expected.count, bytes[position..<position + expected.count].elementsEqual(expected) else {
                return false
            }
            position += expected.count
            return true
        }

        /// `<N>` with N from 0 to 191 (facility 0-23 and severity 0-7).
        mutating func priority() -> Int? {
            let start = position
            guard take("<") else { return nil }
            var value = 0
            var digits = 0
            while let byte = peek(), byte >= 0x30, byte <= 0x39, digits < 3 {
                value = value * 10 + Int(byte - 0x30)
                digits += 1
                position += 1
            }
            guard digits > 0, take(">"), value <= 191 else {
                position = start
                return nil
            }
            return value
        }

        /// Printable ASCII up to the next space (an RFC 5424 header field).
        mutating func word(maximum: Int = 255) -> String? {
            let start = position
            while let byte = peek(), byte > 0x20, byte < 0x7F { position += 1 }
            guard position > start, position - start <= maximum else {
                position = start
                return nil
            }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        mutating func number(digits: Int) -> Int? {
            var value = 0
            for offset in 0..<digits {
                guard let byte = peek(offset), byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            position += digits
            return value
        }

        /// `-`, or one or more `[ID PARAM="VALUE" ...]` elements; inside a value, `\"`, `\\` and `\]` are escapes.
        mutating func structuredData() -> String? {
            let start = position
            if take("-") { return "-" }
            guard peek() == UInt8(ascii: "[") else { return nil }
            while peek() == UInt8(ascii: "[") {
                position += 1
                var quoted = false
                while true {
                    guard let byte = peek() else {
                        position = start
                        return nil
                    }
                    position += 1
                    if quoted {
                        if byte == UInt8(ascii: "\\") {
                            position += 1
                        } else if byte == UInt8(ascii: "\"") {
                            quoted = false
                        }
                    } else if byte == UInt8(ascii: "\"") {
                        quoted = true
                    } else if byte == UInt8(ascii: "]") {
                        break
                    }
                }
            }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` in microseconds since the epoch.
        mutating func rfc3339Timestamp() -> Int64? {
            let start = position
            func fail() -> Int64? {
                position = start
                return nil
            }
            guard let year = number(digits: 4), take("-"), let month = number(digits: 2), take("-"), let day = number(digits: 2),
                take("T") || take("t"), let hour = number(digits: 2), take(":"), let minute = number(digits: 2), take(":"),
                let second = number(digits: 2), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
            else { return fail() }
            var micros = 0
            if take(".") {
                var digits = 0
                while let byte = peek(), byte >= 0x30, byte <= 0x39 {
                    if digits < 6 { micros = micros * 10 + Int(byte - 0x30) }
                    digits += 1
                    position += 1
                }
                guard digits > 0 else { return fail() }
                for _ in digits..<max(digits, 6) { micros *= 10 }
            }
            var offset = 0
            if take("Z") || take("z") {
                offset = 0
            } else if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
                position += 1
                guard let hours = number(digits: 2), take(":"), let minutes = number(digits: 2), hours < 24, minutes < 60 else { return fail() }
                offset = (hours * 60 + minutes) * 60 * (sign == UInt8(ascii: "-") ? -1 : 1)
            } else {
                return fail()
            }
            let days = CivilDate.days(year: year, month: month, day: day)
            let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offset)
            return seconds * 1_000_000 + Int64(micros)
        }

        /// `Mmm dd hh:mm:ss ` (the day padded with a space or a zero): the year is the one that puts the time nearest to
        /// now (a December line read in January is last year's), in the sender's zone.
        mutating func bsdTimestamp(zone: TimeZone, now: Date) -> Int64? {
            let start = position
            guard bytes.endIndex - position >= 15 else { return nil }
            let name = String(decoding: bytes[position..<position + 3], as: UTF8.self)
            guard let monthIndex = SyslogMessage.months.firstIndex(of: name), peek(3) == 0x20 else { return nil }
            position += 4
            if peek() == 0x20 { position += 1 }
            var day = 0
            var digits = 0
            while let byte = peek(), byte >= 0x30, byte <= 0x39, digits < 2 {
                day = day * 10 + Int(byte - 0x30)
                digits += 1
                position += 1
            }
            guard digits > 0, (1...31).contains(day), take(" "), let hour = number(digits: 2), take(":"), let minute = number(digits: 2),
                take(":"), let second = number(digits: 2), hour < 24, minute < 60, second < 61
            else {
                position = start
                return nil
            }
            // Some senders add fractions of a second; they are read, but RFC 3164 has none.
            var micros = 0
            if peek() == UInt8(ascii: "."), let first = peek(1), first >= 0x30, first <= 0x39 {
                position += 1
                var places = 0
                while let byte = peek(), byte >= 0x30, byte <= 0x39 {
                    if places < 6 { micros = micros * 10 + Int(byte - 0x30) }
                    places += 1
                    position += 1
                }
                for _ in places..<max(places, 6) { micros *= 10 }
            }
            guard take(" ") || atEnd else {
                position = start
                return nil
            }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            let thisYear = calendar.component(.year, from: now)
            var best: Date?
            for year in [thisYear - 1, thisYear, thisYear + 1] {
                let parts = DateComponents(year: year, month: monthIndex + 1, day: day, hour: hour, minute: minute, second: min(second, 59))
                // A date that does not exist that year (29 February) rolls over; it is not that year.
                guard let date = calendar.date(from: parts), calendar.component(.day, from: date) == day else { continue }
                if best == nil || abs(date.timeIntervalSince(now)) < abs(best!.timeIntervalSince(now)) { best = date }
            }
            guard let best else {
                position = start
                return nil
            }
            return Int64(best.timeIntervalSince1970) * 1_000_000 + Int64(micros)
        }

        /// The host name after an RFC 3164 timestamp: a word followed by a space that is not itself the tag (`sshd[12]:`).
        mutating func bsdHostName() -> String? {
            _ = take(" ")
            let start = position
            guard let word = word(), peek() == 0x20, !word.hasSuffix(":"), !word.contains("[") else {
                position = start
                return nil
            }
            position += 1
            return word
        }

        /// `TAG:` or `TAG[PID]:` (a tag of letters, digits and `._-/@`), and the space after it.
        mutating func bsdTag() -> (String, Int?)? {
            let start = position
            while let byte = peek(), Self.tagByte(byte), position - start < 48 { position += 1 }
            let tag = String(decoding: bytes[start..<position], as: UTF8.self)
            var pid: Int?
            if take("[") {
                let pidStart = position
                while let byte = peek(), byte != UInt8(ascii: "]"), position - pidStart < 32 { position += 1 }
                pid = Int(String(decoding: bytes[pidStart..<position], as: UTF8.self))
                guard take("]") else {
                    position = start
                    return nil
                }
            }
            guard !tag.isEmpty, take(":") else {
                position = start
                return nil
            }
            _ = take(" ")
            return (tag, pid)
        }

        static func tagByte(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || "._-/@".utf8.contains(byte)
        }

        mutating func rest() -> String {
            defer { position = bytes.endIndex }
            return String(decoding: bytes[min(position, bytes.endIndex)...], as: UTF8.self)
        }
    }
}

/// Splits a TCP stream into syslog messages as RFC 6587 frames them: octet counting (`LEN SP MSG`, recognised by its
/// leading digit, so a message may span lines) or, otherwise, one message per line. A message longer than
/// `maxFrame` is cut at that length when line-framed; a count above it ends the connection (the stream cannot be
/// followed past a count Steward will not read).
struct SyslogFramer {
    static let maxFrame = 64 << 10

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private var buffer: [UInt8] = []
    private var start = 0
    /// After a line longer than `maxFrame`: the rest of it is skipped up to its end.
    private var skippingLine = false
    /// Frames that were cut or could not be read.
    private(set) var damaged = 0

    mutating func push(_ bytes: some Collection<UInt8>) throws -> [ArraySlice<UInt8>] {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
        var frames: [ArraySlice<UInt8>] = []
        while start < buffer.count {
            if skippingLine {
                guard let end = buffer[start...].firstIndex(of: 0x0A) else {
                    start = buffer.count
                    break
                }
                start = end + 1
                skippingLine = false
                continue
            }
            let first = buffer[start]
            if first >= 0x31, first <= 0x39 {
                var length = 0
                var index = start
                while index < buffer.count, buffer[index] >= 0x30, buffer[index] <= 0x39, index - start < 7 {
                    length = length * 10 + Int(buffer[index] - 0x30)
                    index += 1
                }
                guard index < buffer.count else { break }
                guard buffer[index] == 0x20, length <= Self.maxFrame else {
                    throw Failure(description: "an octet-counted frame is malformed or longer than \(Self.maxFrame) bytes")
                }
                guard buffer.count - (index + 1) >= length else { break }
                frames.append(buffer[(index + 1)..<(index + 1 + length)])
                start = index + 1 + length
            } else if first == 0x0A || first == 0x0D || first == 0x00 {
                // Stray separators between frames.
                start += 1
            } else if let end = buffer[start...].prefix(Self.maxFrame + 1).firstIndex(of: 0x0A) {
                frames.append(buffer[start..<end])
                start = end + 1
            } else if buffer.count - start > Self.maxFrame {
                frames.append(buffer[start..<(start + Self.maxFrame)])
                damaged += 1
                start += Self.maxFrame
                skippingLine = true
            } else {
                break
            }
        }
        return frames
    }

    /// The sender closed the connection: a last line without its line end is still a message; a partial
    /// octet-counted frame is not.
    mutating func finish() -> ArraySlice<UInt8>? {
        defer {
            buffer = []
            start = 0
        }
        guard start < buffer.count, !skippingLine else { return nil }
        let first = buffer[start]
        if first >= 0x31, first <= 0x39 {
            damaged += 1
            return nil
        }
        return buffer[start...]
    }
}
