import Foundation

/// Appends bits most-significant first into a byte array.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var pending: UInt64 = 0
    private var pendingCount = 0
    private(set) var bitCount = 0

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func write(_ value: UInt64, bits: Int) {
        if bits > 32 {
            write(value >> 32, bits: bits - 32)
            write(value & 0xFFFF_FFFF, bits: 32)
            return
        }
        let masked = bits == 64 ? value : value & ((1 << UInt64(bits)) &- 1)
        pending = (pending << UInt64(bits)) | masked
        pendingCount += bits
        bitCount += bits
        while pendingCount >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: pending >> UInt64(pendingCount - 8)))
            pendingCount -= 8
        }
        pending &= (1 << UInt64(pendingCount)) &- 1
    }

    mutating func writeBit(_ bit: Bool) { write(bit ? 1 : 0, bits: 1) }

    /// 7 bits at a time, low group first, each with a continuation bit: small numbers take a byte.
    mutating func writeVarint(_ value: UInt64) {
        var rest = value
        repeat {
            let group = rest & 0x7F
            rest >>= 7
            write(rest == 0 ? group : group | 0x80, bits: 8)
        } while rest != 0
    }

    mutating func writeZigzag(_ value: Int64) { writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }

    /// The bytes with the last partial byte padded with zero bits.
    func finished() -> [UInt8] {
        guard pendingCount > 0 else { return bytes }
        return bytes + [UInt8(truncatingIfNeeded: pending << UInt64(8 - pendingCount))]
    }
}

/// Reads what `BitWriter` wrote.
struct BitReader {
    let bytes: [UInt8]
    private(set) var position: Int

    init(_ bytes: [UInt8], byteOffset: Int = 0) {
        self.bytes = bytes
        position = byteOffset * 8
    }

    mutating func read(_ bits: Int) throws(ChunkCodec.Failure) -> UInt64 {
        if bits > 56 {
            let high = try read(bits - 32)
            return high << 32 | (try read(32))
        }
        guard position + bits <= bytes.count * 8 else { throw .truncated }
        let first = position >> 3
        var word: UInt64 = 0
        for index in first..<(first + 8) {
            word = word << 8 | (index < bytes.count ? UInt64(bytes[index]) : 0)
        }
        let shift = 64 - (position & 7) - bits
        position += bits
        return (word >> UInt64(shift)) & ((1 << UInt64(bits)) &- 1)
    }

    mutating func readBit() throws(ChunkCodec.Failure) -> Bool { try read(1) == 1 }

    mutating func readVarint() throws(ChunkCodec.Failure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try read(8)
            guard shift < 64 else { throw .truncated }
            result |= (byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func readZigzag() throws(ChunkCodec.Failure) -> Int64 {
        let value = try readVarint()
        return Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }
}

/// Steward's chunk format: delta-of-delta timestamps and, per value column, the smallest of Gorilla's XOR float
/// encoding and two exact decimal integer encodings (delta and delta-of-delta of the values scaled by 10^k and divided
/// by their common step). A decimal encoding is used only when every value decodes back bit-for-bit; NaN, ±Inf, -0
/// and values with more digits fall back to XOR, which is always exact.
public enum ChunkCodec {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case truncated
        case unknownFormat(UInt8)
        case unknownMode(UInt64)

        public var description: String {
            switch self {
            case .truncated: "the chunk ends before all of its samples were read"
            case .unknownFormat(let byte): "unknown chunk format \(byte)"
            case .unknownMode(let mode): "unknown value encoding \(mode)"
            }
        }
    }

    static let formatVersion: UInt8 = 1

    /// One chunk: timestamps in epoch milliseconds and one or more value columns of the same length.
    public static func encode(timestamps: [Int64], columns: [[Double]]) -> [UInt8] {
        precondition(columns.allSatisfy { $0.count == timestamps.count })
        var writer = BitWriter(capacity: 16 + timestamps.count * 2 * columns.count)
        writer.write(UInt64(formatVersion), bits: 8)
        writer.writeVarint(UInt64(timestamps.count))
        writeTimestamps(timestamps, into: &writer)
        for column in columns { writeColumn(column, into: &writer) }
        return writer.finished()
    }

    public static func decode(_ bytes: [UInt8], columns: Int) throws(Failure) -> (timestamps: [Int64], columns: [[Double]]) {
        var reader = BitReader(bytes)
        let format = UInt8(try reader.read(8))
        guard format == formatVersion else { throw .unknownFormat(format) }
        let count = Int(try reader.readVarint())
        guard count <= bytes.count * 8 else { throw .truncated }
        let timestamps = try readTimestamps(count: count, from: &reader)
        var values: [[Double]] = []
        for _ in 0..<columns { values.append(try readColumn(count: count, from: &reader)) }
        return (timestamps, values)
    }

    // MARK: timestamps

    static func writeTimestamps(_ timestamps: [Int64], into writer: inout BitWriter) {
        guard let first = timestamps.first else { return }
        writer.writeZigzag(first)
        var previous = first
        var previousDelta: Int64 = 0
        for (index, timestamp) in timestamps.enumerated().dropFirst() {
            let delta = timestamp &- previous
            writeSigned(index == 1 ? delta : delta &- previousDelta, into: &writer)
            previousDelta = delta
            previous = timestamp
        }
    }

    static func readTimestamps(count: Int, from reader: inout BitReader) throws(Failure) -> [Int64] {
        guard count > 0 else { return [] }
        var result = [Int64]()
        result.reserveCapacity(count)
        var previous = try reader.readZigzag()
        result.append(previous)
        var delta: Int64 = 0
        for index in 1..<count {
            let read = try readSigned(from: &reader)
            delta = index == 1 ? read : delta &+ read
            previous = previous &+ delta
            result.append(previous)
        }
        return result
    }

    // Variable-width signed integers: '0' for zero, then prefixes for 6, 12, 20, 32 and 64 zigzag bits.
    private static let widths: [Int] = [6, 12, 20, 32, 64]

    static func writeSigned(_ value: Int64, into writer: inout BitWriter) {
        if value == 0 {
            writer.write(0, bits: 1)
            return
        }
        let zigzag = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        for (index, width) in widths.enumerated() where width == 64 || zigzag < (1 << UInt64(width)) {
            // index 0 → "10", 1 → "110", 2 → "1110", 3 → "11110", 4 → "11111"
            let ones = index + 1
            if index < widths.count - 1 {
                writer.write(((1 << UInt64(ones)) - 1) << 1, bits: ones + 1)
            } else {
                writer.write((1 << UInt64(ones)) - 1, bits: ones)
            }
            writer.write(zigzag, bits: width)
            return
        }
    }

    static func readSigned(from reader: inout BitReader) throws(Failure) -> Int64 {
        var ones = 0
        while ones < widths.count, try reader.readBit() { ones += 1 }
        if ones == 0 { return 0 }
        let zigzag = try reader.read(widths[ones - 1])
        return Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1)
    }

    static func signedBits(_ value: Int64) -> Int {
        if value == 0 { return 1 }
        let zigzag = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        for (index, width) in widths.enumerated() where width == 64 || zigzag < (1 << UInt64(width)) {
            return width + min(index + 2, widths.count)
        }
        return 69
    }

    // MARK: value columns

    enum Mode: UInt64 {
        case xor = 0
        case decimalDelta = 1
        case decimalDeltaOfDelta = 2
    }

    static let powersOfTen: [Double] = (0...9).map { pow(10, Double($0)) }

    /// The scaled integers, when every value is an exact decimal with at most 9 fraction digits.
    static func decimal(_ values: [Double]) -> (scale: Int, integers: [Int64])? {
        scales: for scale in 0..<powersOfTen.count {
            let factor = powersOfTen[scale]
            var integers = [Int64]()
            integers.reserveCapacity(values.count)
            for value in values {
                let scaled = (value * factor).rounded()
                guard scaled.isFinite, abs(scaled) < 9.0e15 else { return nil }
                let integer = Int64(scaled)
                guard (Double(integer) / factor).bitPattern == value.bitPattern else { continue scales }
                integers.append(integer)
            }
            return (scale, integers)
        }
        return nil
    }

    static func varintBytes(_ value: UInt64) -> Int { max(1, (64 - value.leadingZeroBitCount + 6) / 7) }

    static func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    static func writeColumn(_ values: [Double], into writer: inout BitWriter) {
        guard !values.isEmpty else { return }
        var xor = BitWriter(capacity: values.count * 2)
        writeXOR(values, into: &xor)
        var best: (mode: Mode, bits: Int) = (.xor, xor.bitCount)
        var scale = 0
        var step: UInt64 = 1
        var integers: [Int64] = []
        if let decimal = decimal(values) {
            scale = decimal.scale
            integers = decimal.integers
            var deltas = [Int64](repeating: 0, count: integers.count)
            var common: UInt64 = 0
            for index in 1..<max(1, integers.count) {
                let (delta, overflow) = integers[index].subtractingReportingOverflow(integers[index - 1])
                guard !overflow else {
                    common = 0
                    deltas = []
                    break
                }
                deltas[index] = delta
                common = gcd(common, delta.magnitude)
            }
            if !deltas.isEmpty || integers.count == 1 {
                step = max(common, 1)
                let divisor = Int64(bitPattern: step)
                var deltaBits = 4 + 8 * (varintBytes(step) + varintBytes(UInt64(bitPattern: (integers[0] << 1) ^ (integers[0] >> 63))))
                var dodBits = deltaBits
                var previous: Int64 = 0
                for index in 1..<max(1, integers.count) {
                    let reduced = deltas[index] / divisor
                    deltaBits += signedBits(reduced)
                    dodBits += signedBits(index == 1 ? reduced : reduced &- previous)
                    previous = reduced
                }
                if deltaBits < best.bits { best = (.decimalDelta, deltaBits) }
                if dodBits < best.bits { best = (.decimalDeltaOfDelta, dodBits) }
            }
        }
        writer.write(best.mode.rawValue, bits: 2)
        switch best.mode {
        case .xor:
            writeXOR(values, into: &writer)
        case .decimalDelta, .decimalDeltaOfDelta:
            writer.write(UInt64(scale), bits: 4)
            writer.writeVarint(step)
            writer.writeZigzag(integers[0])
            let divisor = Int64(bitPattern: step)
            var previous: Int64 = 0
            for index in 1..<integers.count {
                let reduced = (integers[index] &- integers[index - 1]) / divisor
                writeSigned(best.mode == .decimalDeltaOfDelta && index > 1 ? reduced &- previous : reduced, into: &writer)
                previous = reduced
            }
        }
    }

    static func readColumn(count: Int, from reader: inout BitReader) throws(Failure) -> [Double] {
        guard count > 0 else { return [] }
        let modeBits = try reader.read(2)
        guard let mode = Mode(rawValue: modeBits) else { throw .unknownMode(modeBits) }
        switch mode {
        case .xor:
            return try readXOR(count: count, from: &reader)
        case .decimalDelta, .decimalDeltaOfDelta:
            let scale = Int(try reader.read(4))
            guard scale < powersOfTen.count else { throw .unknownMode(UInt64(scale)) }
            let factor = powersOfTen[scale]
            let step = Int64(bitPattern: try reader.readVarint())
            var integer = try reader.readZigzag()
            var values = [Double]()
            values.reserveCapacity(count)
            values.append(Double(integer) / factor)
            var delta: Int64 = 0
            for index in 1..<count {
                let read = try readSigned(from: &reader)
                delta = mode == .decimalDeltaOfDelta && index > 1 ? delta &+ read : read
                integer = integer &+ delta &* step
                values.append(Double(integer) / factor)
            }
            return values
        }
    }

    /// Gorilla's XOR encoding: '0' for a repeat, '10' + bits inside the previous window, '11' + a new window.
    static func writeXOR(_ values: [Double], into writer: inout BitWriter) {
        var previous = values[0].bitPattern
        writer.write(previous, bits: 64)
        var leading = -1
        var trailing = 0
        for value in values.dropFirst() {
            let bits = value.bitPattern
            let xor = bits ^ previous
            previous = bits
            if xor == 0 {
                writer.write(0, bits: 1)
                continue
            }
            let newLeading = min(xor.leadingZeroBitCount, 31)
            let newTrailing = xor.trailingZeroBitCount
            if leading >= 0, newLeading >= leading, newTrailing >= trailing {
                writer.write(0b10, bits: 2)
                writer.write(xor >> UInt64(trailing), bits: 64 - leading - trailing)
            } else {
                leading = newLeading
                trailing = newTrailing
                let significant = 64 - leading - trailing
                writer.write(0b11, bits: 2)
                writer.write(UInt64(leading), bits: 5)
                writer.write(UInt64(significant - 1), bits: 6)
                writer.write(xor >> UInt64(trailing), bits: significant)
            }
        }
    }

    static func readXOR(count: Int, from reader: inout BitReader) throws(Failure) -> [Double] {
        var values = [Double]()
        values.reserveCapacity(count)
        var previous = try reader.read(64)
        values.append(Double(bitPattern: previous))
        var leading = 0
        var trailing = 0
        for _ in 1..<count {
            if try reader.readBit() {
                if try reader.readBit() {
                    leading = Int(try reader.read(5))
                    let significant = Int(try reader.read(6)) + 1
                    trailing = 64 - leading - significant
                }
                let significant = 64 - leading - trailing
                previous ^= try reader.read(significant) << UInt64(trailing)
            }
            values.append(Double(bitPattern: previous))
        }
        return values
    }
}
