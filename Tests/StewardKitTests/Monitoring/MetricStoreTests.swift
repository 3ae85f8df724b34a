import Foundation
import GRDB
import Testing

@testable import StewardKit

@Suite struct MetricStoreTests {
    let start: Int64 = 1_789_999_200_000  // a whole hour

    func makeStore(_ directory: TemporaryDirectory, limits: MetricStore.Limits = MetricStore.Limits()) throws -> (DatabasePool, MetricStore, Int64) {
        let database = try makeDatabase(directory)
        let hostID = try database.write { db -> Int64 in
            try db.execute(sql: "INSERT INTO hosts (name, address, transport, created_at, updated_at) VALUES ('web-01', 'web-01', 'ssh', 0, 0)")
            return db.lastInsertedRowID
        }
        return (database, try MetricStore(database: database, limits: limits), hostID)
    }

    /// Expected rollups computed straight from the samples.
    func expectedBuckets(_ samples: [(Int64, Double)], _ resolution: MetricResolution) -> [RollupBucket] {
        var result: [RollupBucket] = []
        for (time, value) in samples {
            let start = time / resolution.rawValue * resolution.rawValue
            if result.last?.start == start {
                result[result.count - 1].add(time: time, value: value)
            } else {
                result.append(RollupBucket(start: start, time: time, value: value))
            }
        }
        return result
    }

    func same(_ a: [RollupBucket], _ b: [RollupBucket], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.count == b.count, sourceLocation: sourceLocation)
        for (x, y) in zip(a, b) {
            #expect(x.start == y.start && x.count == y.count && x.min == y.min && x.max == y.max, sourceLocation: sourceLocation)
            #expect(abs(x.sum - y.sum) <= 1e-9 * max(1, abs(y.sum)) && x.last == y.last, sourceLocation: sourceLocation)
        }
    }

    @Test func samplesAndRollupsSurviveReopenAndMatchTheSource() throws {
        let directory = TemporaryDirectory()
        var limits = MetricStore.Limits()
        limits.rawChunk = 50
        limits.minuteChunk = 20
        limits.hourChunk = 3
        let (database, store, host) = try makeStore(directory, limits: limits)
        let id = try store.resolve(hostID: host, series: [("node_load1", "", .gauge)])[0]
        var rng = SplitMix(seed: 42)
        var samples: [(Int64, Double)] = []
        var time = start
        // Five hours, irregular intervals, a gap of 20 minutes, values with two decimals.
        while time < start + 5 * 3_600_000 {
            time += Int64.random(in: 5_000...15_000, using: &rng)
            if samples.count == 400 { time += 20 * 60_000 }
            samples.append((time, Double(Int.random(in: 0...400, using: &rng)) / 100))
        }
        for (index, sample) in samples.enumerated() {
            store.append(time: sample.0, series: [id], values: [sample.1])
            if index % 97 == 0 { try store.flush() }
        }
        try store.flush()
        // Out of order and duplicate samples are refused.
        #expect(store.append(time: samples[10].0, series: [id], values: [1]) == 0)
        #expect(store.outOfOrder == 1)

        let reopened = try MetricStore(database: database, limits: limits)
        let end = samples.last!.0
        let raw = try reopened.raw(id, from: start, to: end)
        #expect(raw.times == samples.map(\.0))
        #expect(raw.values == samples.map(\.1))
        same(try reopened.rollups(id, .minute, from: start, to: end), expectedBuckets(samples, .minute))
        same(try reopened.rollups(id, .hour, from: start, to: end), expectedBuckets(samples, .hour))
        // A sub-range reads only what it asks for.
        let middle = try reopened.raw(id, from: samples[100].0, to: samples[200].0)
        #expect(middle.times == samples[100...200].map(\.0))
        #expect(reopened.latest(id)?.value == samples.last!.1)
        // Appending after reopen continues the same chunks and buckets.
        let later = (end + 10_000, 9.99)
        reopened.append(time: later.0, series: [id], values: [later.1])
        same(try reopened.rollups(id, .hour, from: start, to: later.0), expectedBuckets(samples + [later], .hour))
    }

    @Test func whatWasNotFlushedIsLostButRollupsStayConsistent() throws {
        let directory = TemporaryDirectory()
        let (database, store, host) = try makeStore(directory)
        let id = try store.resolve(hostID: host, series: [("node_memory_MemAvailable_bytes", "", .gauge)])[0]
        let samples = (0..<500).map { (start + Int64($0) * 10_000, Double(1_000_000 + $0 * 4096)) }
        for sample in samples.prefix(400) { store.append(time: sample.0, series: [id], values: [sample.1]) }
        try store.flush()
        for sample in samples.suffix(100) { store.append(time: sample.0, series: [id], values: [sample.1]) }
        // No flush: a crash here loses the last 100 samples, and only those.
        let reopened = try MetricStore(database: database)
        let raw = try reopened.raw(id, from: start, to: start + 86_400_000)
        #expect(raw.times == samples.prefix(400).map(\.0))
        same(try reopened.rollups(id, .minute, from: start, to: start + 86_400_000), expectedBuckets(Array(samples.prefix(400)), .minute))
    }

    static func minuteChunks(_ database: DatabasePool) throws -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM metric_chunks WHERE resolution = 60000") ?? -1 }
    }

    @Test("1-minute rollups are stored only when raw samples age out, and read the same before and after, across chunk edges")
    func minuteRollupsAreWrittenWhenRawAgesOut() throws {
        let directory = TemporaryDirectory()
        var limits = MetricStore.Limits()
        limits.rawChunk = 50
        limits.minuteChunk = 20
        let (database, store, host) = try makeStore(directory, limits: limits)
        let id = try store.resolve(hostID: host, series: [("node_load1", "", .gauge)])[0]
        var rng = SplitMix(seed: 7)
        var samples: [(Int64, Double)] = []
        var time = start + 3_000
        // Three hours every 5 to 9 s: raw chunks of 50 samples end inside minutes, so buckets straddle chunk edges.
        while time < start + 3 * 3_600_000 {
            samples.append((time, Double(Int.random(in: 0...900, using: &rng)) / 100))
            time += Int64.random(in: 5_000...9_000, using: &rng)
        }
        for (index, sample) in samples.enumerated() {
            store.append(time: sample.0, series: [id], values: [sample.1])
            if index % 60 == 0 { try store.flush() }
        }
        try store.flush()
        let end = samples.last!.0
        #expect(try Self.minuteChunks(database) == 0, "nothing is stored twice while the raw samples exist")
        let before = try store.rollups(id, .minute, from: start, to: end)
        same(before, expectedBuckets(samples, .minute))

        // Retention, in two runs an hour apart: roll up what is about to go, then delete it.
        for cutoff in [start + 2 * 3_600_000, start + 2 * 3_600_000 + 3_600_000 / 2] {
            #expect(try MetricStore.rollUpAgingRaw(database, endingBefore: cutoff, chunkSize: limits.minuteChunk) > 0)
            try database.write { db in try db.execute(sql: "DELETE FROM metric_chunks WHERE resolution = 0 AND end_ms < ?", arguments: [cutoff]) }
            #expect(try MetricStore.rollUpAgingRaw(database, endingBefore: cutoff) == 0, "a second run has nothing left to do")
            let reopened = try MetricStore(database: database, limits: limits)
            #expect(try reopened.raw(id, from: start, to: end).times.first ?? 0 > start + 3_600_000)
            let after = try reopened.rollups(id, .minute, from: start, to: end)
            same(after, before)
            #expect(after.map(\.start) == before.map(\.start))
        }
        #expect(try Self.minuteChunks(database) >= 120 / limits.minuteChunk)
        // A range inside the stored part, and one across the edge between stored and computed buckets.
        same(
            try store.rollups(id, .minute, from: start + 600_000, to: start + 1_200_000),
            Array(before.filter { $0.start >= start + 600_000 && $0.start <= start + 1_200_000 }))
        let edge = (start + 2 * 3_600_000 + 3_600_000 / 2 - 300_000, start + 2 * 3_600_000 + 3_600_000 / 2 + 300_000)
        same(try store.rollups(id, .minute, from: edge.0, to: edge.1), Array(before.filter { $0.start >= edge.0 && $0.start <= edge.1 }))
    }

    @Test func resolutionFollowsStepAndRetention() {
        let now = start + 100 * 86_400_000
        #expect(MetricQuery.resolution(from: now - 3_600_000, step: 15_000, now: now) == .raw)
        #expect(MetricQuery.resolution(from: now - 6 * 3_600_000, step: 120_000, now: now) == .minute)
        #expect(MetricQuery.resolution(from: now - 30 * 86_400_000, step: 3_600_000, now: now) == .hour)
        // A fine step over a range older than raw retention is answered from rollups that still exist.
        #expect(MetricQuery.resolution(from: now - 8 * 86_400_000, step: 10_000, now: now) == .minute)
        #expect(MetricQuery.resolution(from: now - 95 * 86_400_000, step: 60_000, now: now) == .hour)
        #expect(MetricQuery.step(for: 3_600_000) == 15_000)
        #expect(MetricQuery.step(for: 30 * 86_400_000) == 3 * 3_600_000)
    }

    @Test func rollupQueriesAgreeWithRawQueriesAndRateSurvivesResets() throws {
        let directory = TemporaryDirectory()
        let (_, store, host) = try makeStore(directory)
        let ids = try store.resolve(hostID: host, series: [("g", "", .gauge), ("c", "", .counter)])
        var counter = 0.0
        for index in 0..<(3 * 360) {
            let time = start + Int64(index) * 10_000
            counter = index == 700 ? 5 : counter + 20  // a reset to 5 at sample 700
            store.append(time: time, series: ids, values: [Double(index % 13), counter])
        }
        let gauge = store.series(id: ids[0])!
        let end = start + 3 * 3_600_000 - 1
        let fromRaw = try MetricQuery.evaluate(store, series: gauge, function: .avg, from: start, to: end, step: 300_000, resolution: .raw)
        let fromMinutes = try MetricQuery.evaluate(store, series: gauge, function: .avg, from: start, to: end, step: 300_000, resolution: .minute)
        #expect(fromRaw.times == fromMinutes.times)
        for (a, b) in zip(fromRaw.values, fromMinutes.values) { #expect(abs((a ?? -1) - (b ?? -2)) < 1e-9) }
        let maxima = try MetricQuery.evaluate(store, series: gauge, function: .max, from: start, to: end, step: 3_600_000, resolution: .hour)
        #expect(maxima.values.compactMap { $0 } == [12, 12, 12])

        // 20 per 10 s is 2/s, before and after the reset, at every resolution.
        let counterSeries = store.series(id: ids[1])!
        for resolution in [MetricResolution.raw, .minute] {
            let rates = try MetricQuery.evaluate(
                store, series: counterSeries, function: .rate, from: start + 600_000, to: end, step: 300_000, resolution: resolution)
            let values = rates.values.compactMap { $0 }
            #expect(values.count >= 30)
            // The window holding the reset counts the 5 after it as increase; every other window is exactly 2/s.
            #expect(values.filter { abs($0 - 2) > 1e-9 }.count <= 1, "\(resolution): \(values)")
            #expect(values.allSatisfy { $0 > 1.5 && $0 <= 2.0 + 1e-9 })
        }
    }
}
