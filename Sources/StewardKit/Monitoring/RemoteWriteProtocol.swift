import Foundation

/// The wire format of Prometheus remote write 1.0: a `WriteRequest` protobuf message, compressed with snappy's block
/// format, POSTed with `Content-Encoding: snappy` and `Content-Type: application/x-protobuf`.
///
/// Only the fields 1.0 requires are written: `WriteRequest.timeseries` (1), `TimeSeries.labels` (1) and `samples`
/// (2), `Label.name` (1) and `value` (2), `Sample.value` (1, a double) and `timestamp` (2, int64 milliseconds).
/// Repeated fields concatenate, so two encoded requests written one after the other are one request holding both.
public enum RemoteWriteProtocol {
    /// One series' labels (the metric name as `__name__`) and its samples, oldest first.
    public struct Series: Sendable, Equatable {
        public var labels: [(String, String)]
        public var samples: [(time: Int64, value: Double)]

        public init(labels: [(String, String)], samples: [(time: Int64, value: Double)]) {
            self.labels = labels
            self.samples = samples
        }

        public static func == (a: Series, b: Series) -> Bool {
            a.labels.elementsEqual(b.labels, by: ==)
                && a.samples.elementsEqual(b.samples) { $0.time == $1.time && $0.value.bitPattern == $1.value.bitPattern }
        }
    }

    /// Labels as the specification wants them: sorted by name, none empty, each name once.
    public static func sortedLabels(_ labels: [(String, String)]) -> [(String, String)] {
        var seen: Set<String> = []
        return labels.filter { !$0.1.isEmpty && seen.insert($0.0).inserted }.sorted { Array($0.0.utf8).lexicographicallyPrecedes($1.0.utf8) }
    }

    // MARK: protobuf

    static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    static func lengthDelimited(_ field: UInt64, _ body: [UInt8], into out: inout [UInt8]) {
        varint(field << 3 | 2, into: &out)
        varint(UInt64(body.count), into: &out)
        out.append(contentsOf: body)
    }

    /// The protobuf encoding of a WriteRequest holding these series.
    public static func encode(_ series: [Series]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(series.count * 96)
        var body: [UInt8] = []
        var part: [UInt8] = []
        for entry in series {
            body.removeAll(keepingCapacity: true)
            for (name, value) in entry.labels {
                part.removeAll(keepingCapacity: true)
                lengthDelimited(1, Array(name.utf8), into: &part)
                lengthDelimited(2, Array(value.utf8), into: &part)
                lengthDelimited(1, part, into: &body)
            }
            for sample in entry.samples {
                part.removeAll(keepingCapacity: true)
                part.append(1 << 3 | 1)
                withUnsafeBytes(of: sample.value.bitPattern.littleEndian) { part.append(contentsOf: $0) }
                part.append(2 << 3 | 0)
                varint(UInt64(bitPattern: sample.time), into: &part)
                lengthDelimited(2, part, into: &body)
            }
            lengthDelimited(1, body, into: &out)
        }
        return out
    }

    public struct DecodeError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads a WriteRequest back (the fields above; others are skipped), for tests and for merging.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [Series] {
        var reader = Reader(rest: bytes[...])
        var result: [Series] = []
        while let (field, wire) = try reader.key() {
            guard field == 1, wire == 2 else {
                try reader.skip(wire)
                continue
            }
            var inner = Reader(rest: try reader.bytes())
            var series = Series(labels: [], samples: [])
            while let (field, wire) = try inner.key() {
                switch (field, wire) {
                case (1, 2):
                    var label = Reader(rest: try inner.bytes())
                    var name = ""
                    var value = ""
                    while let (field, wire) = try label.key() {
                        if field == 1, wire == 2 {
                            name = String(decoding: try label.bytes(), as: UTF8.self)
                        } else if field == 2, wire == 2 {
                            value = String(decoding: try label.bytes(), as: UTF8.self)
                        } else {
                            try label.skip(wire)
                        }
                    }
                    series.labels.append((name, value))
                case (2, 2):
                    var sample = Reader(rest: try inner.bytes())
                    var time: Int64 = 0
                    var value = 0.0
                    while let (field, wire) = try sample.key() {
                        if field == 1, wire == 1 {
                            value = Double(bitPattern: try sample.fixed64())
                        } else if field == 2, wire == 0 {
                            time = Int64(bitPattern: try sample.varint())
                        } else {
                            try sample.skip(wire)
                        }
                    }
                    series.samples.append((time, value))
                default: try inner.skip(wire)
                }
            }
            result.append(series)
        }
        return result
    }

    struct Reader {
        var rest: ArraySlice<UInt8>

        mutating func varint() throws(DecodeError) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while let byte = rest.popFirst() {
                guard shift < 64 else { break }
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
            throw DecodeError(description: "a varint runs past the end of the message")
        }

        mutating func key() throws(DecodeError) -> (UInt64, UInt64)? {
            guard !rest.isEmpty else { return nil }
            let key = try varint()
            return (key >> 3, key & 7)
        }

        mutating func bytes() throws(DecodeError) -> ArraySlice<UInt8> {
            let count = try varint()
            guard count <= UInt64(rest.count) else { throw DecodeError(description: "a field's length runs past the end of the message") }
            let body = rest.prefix(Int(count))
            rest = rest.dropFirst(Int(count))
            return body
        }

        mutating func fixed64() throws(DecodeError) -> UInt64 {
            guard rest.count >= 8 else { throw DecodeError(description: "a 64-bit field runs past the end of the message") }
            var value: UInt64 = 0
            for (shift, byte) in rest.prefix(8).enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
            rest = rest.dropFirst(8)
            return value
        }

        mutating func skip(_ wire: UInt64) throws(DecodeError) {
            switch wire {
            case 0: _ = try varint()
            case 1: _ = try fixed64()
            case 2: _ = try bytes()
            case 5:
                guard rest.count >= 4 else { throw DecodeError(description: "a 32-bit field runs past the end of the message") }
                rest = rest.dropFirst(4)
            default: throw DecodeError(description: "wire type \(wire) is not one protobuf has")
            }
        }
    }
}

/// Snappy's block format (no framing), which remote write names: the uncompressed length as a varint, then literals
/// and back-references of up to 64 bytes at most 64 KiB back. A greedy match finder over a hash of the next four
/// bytes; labels repeat in every series of a request, so this takes most of a request's bytes away.
public enum Snappy {
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 3 + 16)
        RemoteWriteProtocol.varint(UInt64(input.count), into: &out)
        let count = input.count
        guard count >= 8 else {
            literal(input[...], into: &out)
            return out
        }
        let bits = 14
        var table = [Int](repeating: -1, count: 1 << bits)
        input.withUnsafeBufferPointer { bytes in
            func load(_ index: Int) -> UInt32 {
                UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24
            }
            var position = 0
            var pending = 0
            while position + 4 <= count {
                let word = load(position)
                let slot = Int((word &* 0x1E35_A7BD) >> UInt32(32 - bits))
                let candidate = table[slot]
                table[slot] = position
                guard candidate >= 0, position - candidate <= 0xFFFF, load(candidate) == word else {
                    position += 1
                    continue
                }
                if pending < position { literal(input[pending..<position], into: &out) }
                var length = 4
                while position + length < count, bytes[candidate + length] == bytes[position + length] { length += 1 }
                let offset = position - candidate
                var left = length
                while left > 0 {
                    let piece = min(left, 64)
                    out.append(UInt8(piece - 1) << 2 | 2)
                    out.append(UInt8(offset & 0xFF))
                    out.append(UInt8(offset >> 8))
                    left -= piece
                }
                position += length
                pending = position
            }
            if pending < count { literal(input[pending...], into: &out) }
        }
        return out
    }

    static func literal(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        let n = bytes.count - 1
        if n < 60 {
            out.append(UInt8(n) << 2)
        } else {
            let width = n < 1 << 8 ? 1 : n < 1 << 16 ? 2 : n < 1 << 24 ? 3 : 4
            out.append(UInt8(59 + width) << 2)
            for index in 0..<width { out.append(UInt8((n >> (8 * index)) & 0xFF)) }
        }
        out.append(contentsOf: bytes)
    }

    public struct Corrupt: Error, CustomStringConvertible {
        public var description: String
    }

    /// Every element kind of the format (literals, and copies with 1-, 2- and 4-byte offsets).
    public static func decompress(_ input: [UInt8]) throws(Corrupt) -> [UInt8] {
        var reader = RemoteWriteProtocol.Reader(rest: input[...])
        guard let length = try? reader.varint(), length <= 1 << 30 else { throw Corrupt(description: "no valid length at the start") }
        var out: [UInt8] = []
        out.reserveCapacity(Int(length))
        var bytes = reader.rest
        func take(_ n: Int) throws(Corrupt) -> Int {
            guard bytes.count >= n else { throw Corrupt(description: "an element runs past the end") }
            var value = 0
            for (index, byte) in bytes.prefix(n).enumerated() { value |= Int(byte) << (8 * index) }
            bytes = bytes.dropFirst(n)
            return value
        }
        while let tag = bytes.popFirst() {
            var copyLength = 0
            var offset = 0
            switch tag & 3 {
            case 0:
                var n = Int(tag >> 2)
                if n >= 60 { n = try take(n - 59) }
                n += 1
                guard bytes.count >= n else { throw Corrupt(description: "a literal runs past the end") }
                out.append(contentsOf: bytes.prefix(n))
                bytes = bytes.dropFirst(n)
                continue
            case 1:
                copyLength = Int((tag >> 2) & 7) + 4
                offset = Int(tag >> 5) << 8 | (try take(1))
            case 2:
                copyLength = Int(tag >> 2) + 1
                offset = try take(2)
            default:
                copyLength = Int(tag >> 2) + 1
                offset = try take(4)
            }
            guard offset > 0, offset <= out.count else { throw Corrupt(description: "a copy reaches before the start") }
            let start = out.count - offset
            for index in 0..<copyLength { out.append(out[start + index]) }
        }
        guard out.count == Int(length) else { throw Corrupt(description: "\(out.count) bytes, not the \(length) announced") }
        return out
    }
}
