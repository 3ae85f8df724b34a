import CZlib
import Foundation

/// A block of log lines on disk, deflated with zlib. Since format 2 the block is binary: every string once in a table
/// (units, programs, boot ids, field names and the values that repeat on every line, such as _HOSTNAME, _EXE or
/// _CMDLINE), each line's set of field names once as a shape, times as differences from the line before, and field
/// values that are whole numbers as numbers (a pid, or a time as its difference from the line's). Format 1 blocks
/// (JSON lines with LogLine's short keys, written before) are still read.
enum LogBlockCodec {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let format: UInt8 = 2

    static func encode(_ lines: [LogLine], level: Int32 = 6) throws -> (data: Data, rawBytes: Int) { try encode(lines[...], level: level) }

    /// The lines are read in place (a copy of each line would cost a retain and release of each of its strings).
    static func encode(_ lines: ArraySlice<LogLine>, level: Int32 = 6) throws -> (data: Data, rawBytes: Int) {
        var table = StringTable()
        var shapes: [[Int]] = []
        var shapeIndex: [[Int]: Int] = [:]
        var body = ByteWriter()
        var fields: [(name: Int, kind: UInt8, payload: UInt64)] = []
        var shape: [Int] = []
        var previousShape = -1
        var previous: Int64 = 0
        for index in lines.indices {
            let time = lines[index].time
            let pid = lines[index].pid
            body.signed(time - previous)
            previous = time
            body.byte(UInt8(clamping: lines[index].priority))
            body.unsigned(UInt64(table.number(lines[index].unit)))
            body.unsigned(UInt64(table.number(lines[index].identifier)))
            body.unsigned(pid.map { UInt64(max(0, $0)) + 1 } ?? 0)
            body.unsigned(UInt64(table.number(lines[index].message)))
            body.unsigned(UInt64(table.number(lines[index].boot)))
            body.unsigned(lines[index].seq.map { UInt64(max(0, $0)) + 1 } ?? 0)
            body.unsigned(lines[index].seqIndex.map { UInt64(max(0, $0)) + 1 } ?? 0)
            // The fields ordered by their names' numbers in this block (the same names give the same shape, cheaper than
            // sorting the names), each value as a string, a number, a time near the line's, or the line's pid.
            fields.removeAll(keepingCapacity: true)
            for (name, value) in lines[index].fields {
                let number = table.number(name)
                if let integer = canonicalInteger(value) {
                    let distance = integer.subtractingReportingOverflow(time)
                    if let pid, pid >= 0, integer == Int64(pid) {
                        // SYSLOG_PID and the like: the line's own pid again.
                        fields.append((number, 3, 0))
                    } else if !distance.overflow, abs(distance.partialValue) < 1 << 40, abs(integer) >= 1 << 40 {
                        fields.append((number, 2, ByteWriter.zigzag(distance.partialValue)))
                    } else {
                        fields.append((number, 1, ByteWriter.zigzag(integer)))
                    }
                } else {
                    fields.append((number, 0, UInt64(table.number(value))))
                }
            }
            fields.sort { $0.name < $1.name }
            shape.removeAll(keepingCapacity: true)
            for field in fields { shape.append(field.name) }
            let shapeNumber: Int
            if previousShape >= 0, shapes[previousShape] == shape {
                shapeNumber = previousShape
            } else if let known = shapeIndex[shape] {
                shapeNumber = known
            } else {
                shapes.append(shape)
                shapeIndex[shape] = shapes.count - 1
                shapeNumber = shapes.count - 1
            }
            previousShape = shapeNumber
            body.unsigned(UInt64(shapeNumber))
            for field in fields {
                body.byte(field.kind)
                if field.kind != 3 { body.unsigned(field.payload) }
            }
        }
        let strings = table.strings
        var head = ByteWriter()
        head.byte(format)
        head.unsigned(UInt64(lines.count))
        head.unsigned(UInt64(strings.count))
        for text in strings {
            head.unsigned(UInt64(text.utf8.count))
            head.bytes.append(contentsOf: text.utf8)
        }
        head.unsigned(UInt64(shapes.count))
        for shape in shapes {
            head.unsigned(UInt64(shape.count))
            for name in shape { head.unsigned(UInt64(name)) }
        }
        let raw = head.bytes + body.bytes
        return (try deflate(Data(raw), level: level), raw.count)
    }

    /// A decimal that reads back exactly as written (no sign on zero, no leading zeros, no plus).
    static func canonicalInteger(_ text: String) -> Int64? {
        let utf8 = text.utf8
        guard let first = utf8.first, utf8.count <= 19 else { return nil }
        if first == UInt8(ascii: "0") { return utf8.count == 1 ? 0 : nil }
        let digits = first == UInt8(ascii: "-") ? utf8.dropFirst() : utf8[...]
        guard let lead = digits.first, lead != UInt8(ascii: "0"), digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(text)
    }

    static func decode(_ data: Data) throws -> [LogLine] { try decodeWithFormat(data).lines }

    /// The lines and the block's format (1 for JSON lines).
    static func decodeWithFormat(_ data: Data) throws -> (lines: [LogLine], format: UInt8) {
        let raw = try inflate(data)
        guard raw.first == format else { return (try decodeJSONLines(raw), 1) }
        return (try decodeBinary(raw), format)
    }

    static func decodeBinary(_ raw: Data) throws -> [LogLine] {
        return try raw.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) -> [LogLine] in
            var reader = ByteReader(bytes: buffer.bindMemory(to: UInt8.self))
            reader.position = 1
            let count = try reader.count()
            // A line takes at least ten bytes: a count beyond that is a damaged block, not an allocation to attempt.
            guard count <= buffer.count / 10 + 1 else { throw Failure(description: "a log block claims more lines than it holds") }
            var strings: [String] = []
            strings.reserveCapacity(min(try reader.peekCount(), buffer.count / 2 + 1, 1 << 20))
            for _ in 0..<(try reader.count()) { strings.append(try reader.string()) }
            func text(_ index: Int) throws -> String {
                guard index < strings.count else { throw Failure(description: "a log block names a string it does not hold") }
                return strings[index]
            }
            var shapes: [[String]] = []
            for _ in 0..<(try reader.count()) {
                var shape: [String] = []
                for _ in 0..<(try reader.count()) { shape.append(try text(try reader.count())) }
                shapes.append(shape)
            }
            var lines: [LogLine] = []
            lines.reserveCapacity(count)
            var time: Int64 = 0
            for _ in 0..<count {
                time = time &+ (try reader.signed())
                let priority = Int(try reader.byte())
                let unit = try text(try reader.count())
                let identifier = try text(try reader.count())
                let pid = try reader.unsigned()
                let message = try text(try reader.count())
                let boot = try text(try reader.count())
                let seq = try reader.unsigned()
                let seqIndex = try reader.unsigned()
                let shapeNumber = try reader.count()
                guard shapeNumber < shapes.count else { throw Failure(description: "a log block names a shape it does not hold") }
                var fields: [String: String] = [:]
                fields.reserveCapacity(shapes[shapeNumber].count)
                for name in shapes[shapeNumber] {
                    switch try reader.byte() {
                    case 0: fields[name] = try text(try reader.count())
                    case 1: fields[name] = String(try reader.signed())
                    case 2: fields[name] = String(time &+ (try reader.signed()))
                    case 3: fields[name] = String(pid &- 1)
                    default: throw Failure(description: "a log block holds a field of an unknown kind")
                    }
                }
                var line = LogLine(
                    time: time, priority: priority, unit: unit, identifier: identifier, pid: pid == 0 ? nil : Int(clamping: pid - 1),
                    message: message,
                    boot: boot, fields: fields)
                if seq > 0 { line.seq = Int64(clamping: seq - 1) }
                if seqIndex > 0 { line.seqIndex = Int(clamping: seqIndex - 1) }
                lines.append(line)
            }
            return lines
        }
    }

    /// Format 1: one JSON object per line.
    static func decodeJSONLines(_ raw: Data) throws -> [LogLine] {
        let decoder = JSONDecoder()
        var lines: [LogLine] = []
        var start = raw.startIndex
        while start < raw.endIndex {
            let end = raw[start...].firstIndex(of: 0x0A) ?? raw.endIndex
            if end > start { lines.append(try decoder.decode(LogLine.self, from: raw[start..<end])) }
            start = end < raw.endIndex ? raw.index(after: end) : end
        }
        return lines
    }

    static func deflate(_ input: Data, level: Int32 = 6) throws -> Data {
        var bound = compressBound(uLong(input.count))
        var output = Data(count: Int(bound))
        let status = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in
                compress2(
                    out.bindMemory(to: Bytef.self).baseAddress, &bound, source.bindMemory(to: Bytef.self).baseAddress, uLong(input.count), level)
            }
        }
        guard status == Z_OK else { throw Failure(description: "zlib could not compress a log block (status \(status))") }
        output.count = Int(bound)
        return output
    }

    /// Inflates a zlib stream of any size (the raw size is not stored), refusing more than `limit` bytes.
    static func inflate(_ input: Data, limit: Int = 64 << 20) throws -> Data {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        var status: Int32 = Z_OK
        try input.withUnsafeBytes { (source: UnsafeRawBufferPointer) in
            stream.next_in = UnsafeMutablePointer(mutating: source.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { buffer -> Int in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = uInt(buffer.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    return buffer.count - Int(stream.avail_out)
                }
                guard status == Z_OK || status == Z_STREAM_END else {
                    throw Failure(description: "a log block is damaged (zlib status \(status))")
                }
                output.append(contentsOf: chunk[0..<produced])
                if output.count > limit { throw Failure(description: "a log block inflates past \(limit) bytes") }
                if status == Z_OK, produced == 0, stream.avail_in == 0 {
                    throw Failure(description: "a log block ends early")
                }
            } while status != Z_STREAM_END
        }
        return output
    }
}

/// A block's strings, each numbered in the order first seen. Strings are told apart by their bytes (Swift's `==` takes
/// "é" and "e" with a combining accent for the same string, and a block must give back exactly what it was given),
/// hashed eight bytes at a time in an open-addressed table.
struct StringTable {
    private(set) var strings: [String] = []
    private var hashes: [UInt64] = []
    /// A string's number plus one; 0 is an empty slot. Always a power of two, at most half full.
    private var slots = [Int32](repeating: 0, count: 256)

    /// Eight bytes at a time: multiply, then fold the high half in.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(bytes.count)
        let raw = UnsafeRawBufferPointer(bytes)
        var offset = 0
        while offset + 8 <= raw.count {
            hash = (hash ^ raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            hash ^= hash >> 29
            offset += 8
        }
        while offset < raw.count {
            hash = (hash ^ UInt64(raw[offset])) &* 0x100_0000_01b3
            offset += 1
        }
        return hash ^ (hash >> 32)
    }

    mutating func number(_ text: String) -> Int {
        var text = text
        return text.withUTF8 { number(bytes: $0) }
    }

    /// The number of the string with these bytes (UTF-8; anything else is repaired when the string is made).
    mutating func number(bytes: UnsafeBufferPointer<UInt8>) -> Int {
        let hash = Self.hash(bytes)
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        while slots[slot] != 0 {
            let number = Int(slots[slot]) - 1
            if hashes[number] == hash, Self.same(strings[number], bytes) { return number }
            slot = (slot + 1) & mask
        }
        strings.append(String(decoding: bytes, as: UTF8.self))
        hashes.append(hash)
        slots[slot] = Int32(strings.count)
        if strings.count * 2 > slots.count { grow() }
        return strings.count - 1
    }

    /// One string for each distinct run of bytes (a journal's field names repeat on every line).
    mutating func string(bytes: UnsafeBufferPointer<UInt8>) -> String { strings[number(bytes: bytes)] }

    static func same(_ text: String, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var text = text
        return text.withUTF8 { own in own.count == bytes.count && (own.isEmpty || memcmp(own.baseAddress!, bytes.baseAddress!, own.count) == 0) }
    }

    private mutating func grow() {
        slots = [Int32](repeating: 0, count: slots.count * 2)
        let mask = slots.count - 1
        for (number, hash) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(number + 1)
        }
    }
}

/// Variable-length integers (LEB128, signed ones zigzag-coded) into a byte array.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func unsigned(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func signed(_ value: Int64) { unsigned(Self.zigzag(value)) }

    static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
}

/// Reads what `ByteWriter` wrote; running past the end, or a number too long, is a damaged block.
struct ByteReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw LogBlockCodec.Failure(description: "a log block ends early") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func unsigned() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try byte()
            guard shift < 64 else { throw LogBlockCodec.Failure(description: "a log block holds a number too long") }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    mutating func signed() throws -> Int64 {
        let value = try unsigned()
        return Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    /// A count or an index: at most the block's size, so a damaged one cannot ask for more memory than the block has.
    mutating func count() throws -> Int {
        let value = try unsigned()
        guard value <= UInt64(bytes.count) * 8 + 1024 else { throw LogBlockCodec.Failure(description: "a log block holds an impossible count") }
        return Int(value)
    }

    func peekCount() throws -> Int {
        var copy = self
        return try copy.count()
    }

    mutating func string() throws -> String {
        let length = try count()
        guard position + length <= bytes.count else { throw LogBlockCodec.Failure(description: "a log block ends early") }
        defer { position += length }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[position..<(position + length)]), as: UTF8.self)
    }
}
