import Foundation
import Testing

@testable import StewardKit

/// A small deterministic generator so a failing case can be replayed from its seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ChunkCodecTests {
    func roundTrip(_ times: [Int64], _ values: [Double], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = ChunkCodec.encode(timestamps: times, columns: [values])
        let decoded = try ChunkCodec.decode(bytes, columns: 1)
        #expect(decoded.timestamps == times, sourceLocation: sourceLocation)
        #expect(decoded.columns[0].map(\.bitPattern) == values.map(\.bitPattern), sourceLocation: sourceLocation)
    }

    /// One random series of one of several shapes, with irregular intervals and occasional special values.
    func randomSeries(_ rng: inout SplitMix) -> ([Int64], [Double]) {
        let count = Int.random(in: 1...300, using: &rng)
        var time = Int64.random(in: -1_000_000_000_000...2_000_000_000_000, using: &rng)
        let shape = Int.random(in: 0..<7, using: &rng)
        var value = Double.random(in: -1e6...1e6, using: &rng)
        var times: [Int64] = []
        var values: [Double] = []
        for _ in 0..<count {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: time += Int64.random(in: 1...10_000_000_000, using: &rng)  // a large gap
            case 1: time += Int64.random(in: -5_000...5_000, using: &rng)  // jitter, even backwards
            default: time += 10_000
            }
            switch shape {
            case 0: value += Double(Int.random(in: 0...500, using: &rng)) / 100  // a centisecond counter
            case 1: value = Double(Int.random(in: 0...1_000_000, using: &rng) * 4096)  // page-sized bytes
            case 2: value = Double.random(in: -1...1, using: &rng)  // arbitrary floats
            case 3: break  // constant
            case 4:
                value =
                    [Double.nan, .infinity, -.infinity, -0.0, 0, .greatestFiniteMagnitude, -.leastNonzeroMagnitude][
                        Int.random(in: 0..<7, using: &rng)]
            case 5: value = Double(bitPattern: rng.next())  // any bit pattern, NaN payloads included
            default: value = Int.random(in: 0..<5, using: &rng) == 0 ? Double.random(in: -1e300...1e300, using: &rng) : value * 1.5
            }
            times.append(time)
            values.append(value)
        }
        return (times, values)
    }

    @Test func randomSeriesRoundTripBitForBit() throws {
        var rng = SplitMix(seed: 20_261_121)
        for _ in 0..<3000 {
            let (times, values) = randomSeries(&rng)
            try roundTrip(times, values)
        }
    }

    @Test func specialValuesAndEdgesRoundTrip() throws {
        try roundTrip([], [])
        try roundTrip([0], [.nan])
        try roundTrip([Int64.min, 0, Int64.max], [.infinity, -.infinity, .nan])
        try roundTrip([1, 2, 3, 4], [-0.0, 0.0, -0.0, 0.0])
        try roundTrip([10, 20, 30], [9.0e15, -9.0e15, 0.1 + 0.2])
        try roundTrip([10, 20, 30, 40], [1e-300, 1e300, .leastNonzeroMagnitude, .ulpOfOne])
    }

    @Test func regularNodeExporterLikeDataCompressesWell() throws {
        // A CPU-seconds counter at 10 s steps with 2 decimals: decimal delta-of-delta, well under 2 bytes per sample.
        var rng = SplitMix(seed: 7)
        var value = 123_456.78
        let times = (0..<120).map { Int64(1_700_000_000_000) + Int64($0) * 10_000 }
        let values = times.map { _ in
            value += Double(Int.random(in: 950...1000, using: &rng)) / 100
            return (value * 100).rounded() / 100
        }
        let bytes = ChunkCodec.encode(timestamps: times, columns: [values])
        #expect(bytes.count < 120 * 2)
        try roundTrip(times, values)
        // A constant series costs about a bit per value and a bit per timestamp.
        let constant = ChunkCodec.encode(timestamps: times, columns: [Array(repeating: 8_000_000_000, count: 120)])
        #expect(constant.count < 60)
    }

    @Test func rollupChunksKeepEveryColumn() throws {
        let buckets = (0..<50).map { index in
            RollupBucket(start: Int64(index) * 60_000, count: 6, min: Double(index), max: Double(index) + 0.5, sum: Double(index) * 6.1, last: .nan)
        }
        let decoded = try MetricStore.decodeBuckets(MetricStore.encode(buckets: buckets))
        #expect(decoded.count == 50)
        for (a, b) in zip(decoded, buckets) {
            #expect(a.start == b.start && a.count == b.count && a.min == b.min && a.max == b.max && a.sum == b.sum && a.last.isNaN)
        }
    }

    @Test func truncatedChunksAreRefusedNotMisread() throws {
        let bytes = ChunkCodec.encode(timestamps: [1, 2, 3], columns: [[1.5, 2.5, 3.25]])
        #expect(throws: ChunkCodec.Failure.truncated) { try ChunkCodec.decode(Array(bytes.prefix(bytes.count / 2)), columns: 1) }
        #expect(throws: ChunkCodec.Failure.unknownFormat(9)) { try ChunkCodec.decode([9] + bytes.dropFirst(), columns: 1) }
    }
}
