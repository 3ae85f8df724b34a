import Foundation
import GRDB

/// The resolutions the store keeps: raw samples, and 1-minute and 1-hour rollups.
public enum MetricResolution: Int64, CaseIterable, Sendable, Comparable {
    case raw = 0
    case minute = 60_000
    case hour = 3_600_000

    public static func < (a: MetricResolution, b: MetricResolution) -> Bool { a.rawValue < b.rawValue }

    public var label: String {
        switch self {
        case .raw: "raw"
        case .minute: "1m"
        case .hour: "1h"
        }
    }
}

/// A series as stored: the host, the metric name and its other labels in canonical text.
public struct MetricSeries: Sendable, Hashable {
    public var id: Int64
    public var hostID: Int64
    public var name: String
    public var labels: String
    public var type: PrometheusText.FamilyType

    public var labelPairs: [(String, String)] { PrometheusText.labels(fromCanonical: labels) }

    public func label(_ name: String) -> String? { labelPairs.first { $0.0 == name }?.1 }
}

/// One rollup bucket: the samples of [start, start + resolution).
public struct RollupBucket: Sendable, Equatable {
    public var start: Int64
    public var count: Double
    public var min: Double
    public var max: Double
    public var sum: Double
    public var last: Double
    public var lastTime: Int64

    init(start: Int64, time: Int64, value: Double) {
        self.start = start
        count = value.isNaN ? 0 : 1
        min = value.isNaN ? .infinity : value
        max = value.isNaN ? -.infinity : value
        sum = value.isNaN ? 0 : value
        last = value
        lastTime = time
    }

    public init(start: Int64, count: Double, min: Double, max: Double, sum: Double, last: Double) {
        self.start = start
        self.count = count
        self.min = min
        self.max = max
        self.sum = sum
        self.last = last
        lastTime = start
    }

    mutating func add(time: Int64, value: Double) {
        last = value
        lastTime = time
        guard !value.isNaN else { return }
        count += 1
        min = Swift.min(min, value)
        max = Swift.max(max, value)
        sum += value
    }

    public var average: Double { count > 0 ? sum / count : .nan }

    /// A sum of decimal values carries binary rounding noise (0.1 + 0.2 = 0.30000000000000004). When the nearest
    /// decimal with at most 6 fraction digits is within 4 ulp of the sum, store that instead: it is as exact as the
    /// sum was, and it compresses as a decimal instead of as 64 noisy bits.
    static func snapped(_ sum: Double) -> Double {
        guard sum.isFinite, sum != 0 else { return sum }
        let tolerance = 4 * sum.ulp
        for digits in 0...6 {
            let factor = ChunkCodec.powersOfTen[digits]
            let candidate = (sum * factor).rounded() / factor
            if abs(candidate - sum) <= tolerance { return candidate }
        }
        return sum
    }
}

/// Raw samples of one series, in time order.
public struct RawSamples: Sendable, Equatable {
    public var times: [Int64] = []
    public var values: [Double] = []

    public var count: Int { times.count }

    public init(times: [Int64] = [], values: [Double] = []) {
        self.times = times
        self.values = values
    }

    public static func == (a: RawSamples, b: RawSamples) -> Bool {
        a.times == b.times && a.values.map(\.bitPattern) == b.values.map(\.bitPattern)
    }
}

/// Samples in memory for one series: the raw chunk being filled, the open rollup buckets and the rollup chunks
/// being filled.
final class SeriesBuffer {
    let series: MetricSeries
    var raw = RawSamples()
    var rawDirty = false
    var open: [MetricResolution: RollupBucket] = [:]
    var rollups: [MetricResolution: [RollupBucket]] = [.minute: [], .hour: []]
    var rollupDirty: [MetricResolution: Bool] = [:]
    var lastTime: Int64 = .min
    var lastValue: Double = .nan

    init(series: MetricSeries) { self.series = series }
}

/// A chunk that is full and waits for the next flush.
struct SealedChunk {
    let sequence: Int
    let seriesID: Int64
    let resolution: MetricResolution
    let raw: RawSamples
    let buckets: [RollupBucket]
    var start: Int64 { resolution == .raw ? raw.times.first ?? 0 : buckets.first?.start ?? 0 }
}

/// The metric store: series and compressed chunks in SQLite, with the chunks being filled kept in memory and
/// rewritten on every `flush()`. A `kill -9` loses what was appended after the last flush, nothing more: each flush
/// is one transaction, and on open the open rollup buckets are rebuilt from the raw samples that reached the disk.
public final class MetricStore: @unchecked Sendable {
    public struct Limits: Sendable {
        // Sized so a chunk's row stays on its b-tree page: a WITHOUT ROWID row over about 1000 bytes spills into an
        // overflow page of its own, which would waste most of 4 KiB per chunk.
        public var rawChunk = 240
        public var minuteChunk = 60
        public var hourChunk = 48
        public init() {}

        func size(_ resolution: MetricResolution) -> Int {
            switch resolution {
            case .raw: rawChunk
            case .minute: minuteChunk
            case .hour: hourChunk
            }
        }
    }

    public struct FlushReport: Sendable {
        public var chunks = 0
        public var bytes = 0
    }

    public let database: DatabasePool
    public let limits: Limits
    private let lock = NSLock()
    private var buffers: [Int64: SeriesBuffer] = [:]
    private var index: [String: Int64] = [:]
    /// Series ids by host and metric name: the alert evaluator's lookup.
    private var byHostName: [String: [Int64]] = [:]
    private var sealed: [SealedChunk] = []
    private var sequence = 0
    private var dropped = 0

    public init(database: DatabasePool, limits: Limits = Limits()) throws {
        self.database = database
        self.limits = limits
        try load()
    }

    static func key(hostID: Int64, name: String, labels: String) -> String { "\(hostID)\u{1F}\(name)\u{1F}\(labels)" }

    // MARK: series

    /// The id of each series, created when new.
    public func resolve(hostID: Int64, series: [(name: String, labels: String, type: PrometheusText.FamilyType)], now: Date = Date()) throws
        -> [Int64]
    {
        var result = [Int64](repeating: 0, count: series.count)
        var missing: [Int] = []
        lock.withLock {
            for (position, entry) in series.enumerated() {
                if let id = index[Self.key(hostID: hostID, name: entry.name, labels: entry.labels)] {
                    result[position] = id
                } else {
                    missing.append(position)
                }
            }
        }
        guard !missing.isEmpty else { return result }
        let created = try database.write { db -> [MetricSeries] in
            try missing.map { position in
                let entry = series[position]
                try db.execute(
                    sql: """
                        INSERT INTO metric_series (host_id, name, labels, type, created_at) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (host_id, name, labels) DO UPDATE SET type = excluded.type
                        """,
                    arguments: [hostID, entry.name, entry.labels, entry.type.rawValue, EpochMilliseconds.from(now)])
                let id =
                    try Int64.fetchOne(
                        db, sql: "SELECT id FROM metric_series WHERE host_id = ? AND name = ? AND labels = ?",
                        arguments: [hostID, entry.name, entry.labels]) ?? 0
                return MetricSeries(id: id, hostID: hostID, name: entry.name, labels: entry.labels, type: entry.type)
            }
        }
        lock.withLock {
            for (position, series) in zip(missing, created) {
                result[position] = series.id
                index[Self.key(hostID: hostID, name: series.name, labels: series.labels)] = series.id
                if buffers[series.id] == nil {
                    buffers[series.id] = SeriesBuffer(series: series)
                    byHostName[Self.key(hostID: hostID, name: series.name, labels: ""), default: []].append(series.id)
                }
            }
        }
        return result
    }

    public func series(hostID: Int64? = nil, name: String? = nil) -> [MetricSeries] {
        if let hostID, let name {
            return lock.withLock {
                (byHostName[Self.key(hostID: hostID, name: name, labels: "")] ?? []).compactMap { buffers[$0]?.series }.sorted {
                    $0.labels < $1.labels
                }
            }
        }
        return lock.withLock {
            buffers.values.lazy.map(\.series).filter { (hostID == nil || $0.hostID == hostID) && (name == nil || $0.name == name) }
                .sorted { ($0.hostID, $0.name, $0.labels) < ($1.hostID, $1.name, $1.labels) }
        }
    }

    public func series(id: Int64) -> MetricSeries? { lock.withLock { buffers[id]?.series } }

    /// The series with exactly this host, name and canonical labels, if it exists.
    public func series(hostID: Int64, name: String, labels: String) -> MetricSeries? {
        lock.withLock { index[Self.key(hostID: hostID, name: name, labels: labels)].flatMap { buffers[$0]?.series } }
    }

    /// The newest sample of a series.
    public func latest(_ id: Int64) -> (time: Int64, value: Double)? {
        lock.withLock {
            guard let buffer = buffers[id], buffer.lastTime != .min else { return nil }
            return (buffer.lastTime, buffer.lastValue)
        }
    }

    /// Samples refused because they were not newer than the series' last sample.
    public var outOfOrder: Int { lock.withLock { dropped } }

    /// Forget the series of hosts that no longer exist (their rows went with the host, by cascade).
    public func retainHosts(_ hostIDs: Set<Int64>) {
        lock.withLock {
            for (id, buffer) in buffers where !hostIDs.contains(buffer.series.hostID) {
                let hostID = buffer.series.hostID
                buffers[id] = nil
                index[Self.key(hostID: hostID, name: buffer.series.name, labels: buffer.series.labels)] = nil
                byHostName[Self.key(hostID: hostID, name: buffer.series.name, labels: "")] = nil
            }
            sealed.removeAll { chunk in buffers[chunk.seriesID] == nil }
        }
    }

    // MARK: ingest

    /// Append samples (series id, epoch ms, value). A sample not newer than its series' last one is dropped and
    /// counted (the same time and value again is dropped uncounted); returns how many were kept.
    @discardableResult
    public func append(_ samples: [(series: Int64, time: Int64, value: Double)]) -> Int {
        lock.withLock {
            var kept = 0
            for sample in samples {
                guard let buffer = buffers[sample.series] else { continue }
                if appendLocked(buffer, time: sample.time, value: sample.value) { kept += 1 }
            }
            return kept
        }
    }

    /// Append as above, and say which samples were kept (their positions): what remote write passes on.
    public func appendKeeping(_ samples: [(series: Int64, time: Int64, value: Double)]) -> [Int] {
        lock.withLock {
            var kept: [Int] = []
            kept.reserveCapacity(samples.count)
            for (position, sample) in samples.enumerated() {
                guard let buffer = buffers[sample.series] else { continue }
                if appendLocked(buffer, time: sample.time, value: sample.value) { kept.append(position) }
            }
            return kept
        }
    }

    /// Append one value per series at one time: the shape of a scrape.
    @discardableResult
    public func append(time: Int64, series: [Int64], values: [Double]) -> Int {
        lock.withLock {
            var kept = 0
            for (id, value) in zip(series, values) {
                guard let buffer = buffers[id] else { continue }
                if appendLocked(buffer, time: time, value: value) { kept += 1 }
            }
            return kept
        }
    }

    private func appendLocked(_ buffer: SeriesBuffer, time: Int64, value: Double) -> Bool {
        // The same sample again (a target that exports its own timestamps, scraped twice) is no news.
        if time == buffer.lastTime, value.bitPattern == buffer.lastValue.bitPattern { return false }
        guard time > buffer.lastTime else {
            dropped += 1
            return false
        }
        buffer.lastTime = time
        buffer.lastValue = value
        if buffer.raw.count >= limits.rawChunk {
            seal(buffer, .raw)
        }
        buffer.raw.times.append(time)
        buffer.raw.values.append(value)
        buffer.rawDirty = true
        // 1-minute buckets are not stored while the raw samples are: the last two hours of them stay in memory (the
        // fleet overview reads the last hour), older ones are computed from the raw samples when read, and they are
        // written when retention is about to delete the raw samples (`rollUpAgingRaw`).
        rollUp(time: time, value: value, into: buffer, .minute)
        rollUp(time: time, value: value, into: buffer, .hour)
        return true
    }

    /// Add a sample to the open roll-up bucket of its period, closing the previous bucket when a new period begins.
    private func rollUp(time: Int64, value: Double, into buffer: SeriesBuffer, _ resolution: MetricResolution) {
        let start = time - ((time % resolution.rawValue) + resolution.rawValue) % resolution.rawValue
        if var bucket = buffer.open[resolution], bucket.start == start {
            bucket.add(time: time, value: value)
            buffer.open[resolution] = bucket
        } else {
            if let closed = buffer.open[resolution] { close(closed, in: buffer, resolution) }
            buffer.open[resolution] = RollupBucket(start: start, time: time, value: value)
        }
    }

    /// Closed 1-minute buckets kept in memory per series (two hours).
    static let recentMinutes = 120

    private func close(_ bucket: RollupBucket, in buffer: SeriesBuffer, _ resolution: MetricResolution) {
        var bucket = bucket
        bucket.sum = RollupBucket.snapped(bucket.sum)
        if resolution == .minute {
            // Kept in memory only, never flushed; read back as a stored bucket reads (its time is its start).
            bucket.lastTime = bucket.start
            buffer.rollups[.minute, default: []].append(bucket)
            if buffer.rollups[.minute]!.count > Self.recentMinutes {
                buffer.rollups[.minute]!.removeFirst(buffer.rollups[.minute]!.count - Self.recentMinutes)
            }
            return
        }
        if buffer.rollups[resolution, default: []].count >= limits.size(resolution) { seal(buffer, resolution) }
        buffer.rollups[resolution, default: []].append(bucket)
        buffer.rollupDirty[resolution] = true
    }

    private func seal(_ buffer: SeriesBuffer, _ resolution: MetricResolution) {
        sequence += 1
        if resolution == .raw {
            sealed.append(SealedChunk(sequence: sequence, seriesID: buffer.series.id, resolution: .raw, raw: buffer.raw, buckets: []))
            buffer.raw = RawSamples()
            buffer.raw.times.reserveCapacity(limits.rawChunk)
            buffer.raw.values.reserveCapacity(limits.rawChunk)
            buffer.rawDirty = false
        } else {
            sealed.append(
                SealedChunk(
                    sequence: sequence, seriesID: buffer.series.id, resolution: resolution, raw: RawSamples(),
                    buckets: buffer.rollups[resolution] ?? []))
            buffer.rollups[resolution] = []
            buffer.rollupDirty[resolution] = false
        }
    }

    // MARK: flush

    struct ChunkRow {
        let seriesID: Int64
        let resolution: MetricResolution
        let start: Int64
        let end: Int64
        let samples: Int
        let data: [UInt8]
    }

    static func encode(raw: RawSamples) -> [UInt8] { ChunkCodec.encode(timestamps: raw.times, columns: [raw.values]) }

    static func encode(buckets: [RollupBucket]) -> [UInt8] {
        ChunkCodec.encode(
            timestamps: buckets.map(\.start),
            columns: [buckets.map(\.count), buckets.map(\.min), buckets.map(\.max), buckets.map(\.sum), buckets.map(\.last)])
    }

    static func decodeBuckets(_ data: [UInt8]) throws -> [RollupBucket] {
        let decoded = try ChunkCodec.decode(data, columns: 5)
        return decoded.timestamps.indices.map { index in
            RollupBucket(
                start: decoded.timestamps[index], count: decoded.columns[0][index], min: decoded.columns[1][index],
                max: decoded.columns[2][index], sum: decoded.columns[3][index], last: decoded.columns[4][index])
        }
    }

    static func row(_ chunk: SealedChunk) -> ChunkRow {
        if chunk.resolution == .raw {
            return ChunkRow(
                seriesID: chunk.seriesID, resolution: .raw, start: chunk.raw.times.first ?? 0, end: chunk.raw.times.last ?? 0,
                samples: chunk.raw.count, data: encode(raw: chunk.raw))
        }
        return ChunkRow(
            seriesID: chunk.seriesID, resolution: chunk.resolution, start: chunk.buckets.first?.start ?? 0,
            end: (chunk.buckets.last?.start ?? 0) + chunk.resolution.rawValue - 1, samples: chunk.buckets.count, data: encode(buckets: chunk.buckets))
    }

    /// Write sealed chunks and every chunk being filled that changed, in one transaction.
    @discardableResult
    public func flush() throws -> FlushReport {
        let (chunks, heads, lastSequence) = lock.withLock { () -> ([SealedChunk], [SealedChunk], Int) in
            var heads: [SealedChunk] = []
            for buffer in buffers.values {
                if buffer.rawDirty, !buffer.raw.times.isEmpty {
                    heads.append(SealedChunk(sequence: 0, seriesID: buffer.series.id, resolution: .raw, raw: buffer.raw, buckets: []))
                    buffer.rawDirty = false
                }
                for resolution in [MetricResolution.minute, .hour] where buffer.rollupDirty[resolution] == true {
                    if let buckets = buffer.rollups[resolution], !buckets.isEmpty {
                        heads.append(
                            SealedChunk(sequence: 0, seriesID: buffer.series.id, resolution: resolution, raw: RawSamples(), buckets: buckets))
                    }
                    buffer.rollupDirty[resolution] = false
                }
            }
            return (sealed, heads, sequence)
        }
        guard !chunks.isEmpty || !heads.isEmpty else { return FlushReport() }
        let rows = (chunks + heads).map(Self.row)
        var report = FlushReport()
        do {
            try database.write { db in
                let statement = try db.cachedStatement(
                    sql: """
                        INSERT OR REPLACE INTO metric_chunks (series_id, resolution, start_ms, end_ms, samples, data)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """)
                for row in rows {
                    try statement.execute(arguments: [row.seriesID, row.resolution.rawValue, row.start, row.end, row.samples, Data(row.data)])
                    report.chunks += 1
                    report.bytes += row.data.count
                }
            }
        } catch {
            lock.withLock {
                for head in heads {
                    guard let buffer = buffers[head.seriesID] else { continue }
                    if head.resolution == .raw { buffer.rawDirty = true } else { buffer.rollupDirty[head.resolution] = true }
                }
            }
            throw error
        }
        lock.withLock { sealed.removeAll { $0.sequence <= lastSequence } }
        return report
    }

    // MARK: read

    /// Raw samples with from <= time <= to.
    public func raw(_ id: Int64, from: Int64, to: Int64) throws -> RawSamples {
        let (memory, covered) = lock.withLock { () -> ([RawSamples], Set<Int64>) in
            var parts = sealed.filter { $0.seriesID == id && $0.resolution == .raw }.map(\.raw)
            if let buffer = buffers[id], !buffer.raw.times.isEmpty { parts.append(buffer.raw) }
            return (parts, Set(parts.compactMap(\.times.first)))
        }
        var parts = memory
        // Recent ranges are often wholly in memory: then the database is not asked at all.
        let inMemory = (memory.compactMap(\.times.first).min() ?? .max) <= from
        for row in try inMemory ? [] : chunkRows(id, .raw, from: from, to: to) where !covered.contains(row.start) {
            let decoded = try ChunkCodec.decode(row.data, columns: 1)
            parts.append(RawSamples(times: decoded.timestamps, values: decoded.columns[0]))
        }
        parts.sort { ($0.times.first ?? 0) < ($1.times.first ?? 0) }
        var result = RawSamples()
        for part in parts {
            for (time, value) in zip(part.times, part.values) where time >= from && time <= to && time > (result.times.last ?? .min) {
                result.times.append(time)
                result.values.append(value)
            }
        }
        return result
    }

    /// Rollup buckets starting in [from, to], including the bucket still open.
    public func rollups(_ id: Int64, _ resolution: MetricResolution, from: Int64, to: Int64) throws -> [RollupBucket] {
        precondition(resolution != .raw)
        if resolution == .minute { return try minuteRollups(id, from: from, to: to) }
        let (memory, open) = lock.withLock { () -> ([[RollupBucket]], RollupBucket?) in
            var parts = sealed.filter { $0.seriesID == id && $0.resolution == resolution }.map(\.buckets)
            if let buckets = buffers[id]?.rollups[resolution], !buckets.isEmpty { parts.append(buckets) }
            return (parts, buffers[id]?.open[resolution])
        }
        let covered = Set(memory.compactMap(\.first?.start))
        var parts = memory
        let inMemory = (memory.compactMap(\.first?.start).min() ?? .max) <= from
        for row in try inMemory ? [] : chunkRows(id, resolution, from: from, to: to) where !covered.contains(row.start) {
            parts.append(try Self.decodeBuckets(row.data))
        }
        if let open { parts.append([open]) }
        parts.sort { ($0.first?.start ?? 0) < ($1.first?.start ?? 0) }
        var result: [RollupBucket] = []
        for part in parts {
            for bucket in part where bucket.start >= from && bucket.start <= to && bucket.start > (result.last?.start ?? .min) {
                result.append(bucket)
            }
        }
        return result
    }

    /// 1-minute buckets: those written when raw samples aged out, then, after the last of them, buckets computed from
    /// the raw samples (as they would have been rolled up at ingest), then the last two hours' from memory.
    func minuteRollups(_ id: Int64, from: Int64, to: Int64) throws -> [RollupBucket] {
        let step = MetricResolution.minute.rawValue
        let recent = lock.withLock { () -> [RollupBucket] in
            guard let buffer = buffers[id] else { return [] }
            return (buffer.rollups[.minute] ?? []) + (buffer.open[.minute].map { [$0] } ?? [])
        }
        let recentStart = recent.first?.start ?? .max
        var result: [RollupBucket] = []
        if recentStart <= from {
            return recent.filter { $0.start >= from && $0.start <= to }
        }
        for row in try chunkRows(id, .minute, from: from, to: to) {
            for bucket in try Self.decodeBuckets(row.data)
            where bucket.start >= from && bucket.start <= to && bucket.start > (result.last?.start ?? .min) {
                result.append(bucket)
            }
        }
        let after = Swift.max(from, (result.last?.start).map { $0 + step } ?? .min)
        guard after <= to else { return result }
        let first = Self.bucketStart(after, step) == after ? after : Self.bucketStart(after, step) + step
        if first < recentStart {
            let last = Swift.min(to > Int64.max - step ? Int64.max : to + step - 1, recentStart - 1)
            // Read back as a stored bucket reads: its time is its start.
            for var bucket in Self.buckets(try raw(id, from: first, to: last), step: step) where bucket.start <= to {
                bucket.lastTime = bucket.start
                result.append(bucket)
            }
        }
        for bucket in recent where bucket.start >= first && bucket.start <= to && bucket.start > (result.last?.start ?? .min) {
            result.append(bucket)
        }
        return result
    }

    /// The start of the bucket of `step` milliseconds that holds `time`.
    static func bucketStart(_ time: Int64, _ step: Int64) -> Int64 { time - ((time % step) + step) % step }

    /// Raw samples rolled up into buckets of `step` milliseconds, each sum snapped as a closed bucket's is.
    static func buckets(_ raw: RawSamples, step: Int64) -> [RollupBucket] {
        var result: [RollupBucket] = []
        for (time, value) in zip(raw.times, raw.values) {
            let start = bucketStart(time, step)
            if result.last?.start == start {
                result[result.count - 1].add(time: time, value: value)
            } else {
                result.append(RollupBucket(start: start, time: time, value: value))
            }
        }
        for index in result.indices { result[index].sum = RollupBucket.snapped(result[index].sum) }
        return result
    }

    /// Before retention deletes raw chunks that end before `cutoff`, write their 1-minute buckets as minute chunks,
    /// from where each series' minute chunks end. The last minute takes its samples from the next raw chunk as well,
    /// so no bucket is cut in two at a chunk's edge. Each transaction takes as many series as fill about 25 ms. Returns
    /// the number of minute chunks written.
    public static func rollUpAgingRaw(_ database: DatabasePool, endingBefore cutoff: Int64, chunkSize: Int = Limits().minuteChunk) throws -> Int {
        let step = MetricResolution.minute.rawValue
        let seriesIDs = try database.read { db in
            try Int64.fetchAll(db, sql: "SELECT DISTINCT series_id FROM metric_chunks WHERE resolution = 0 AND end_ms < ?", arguments: [cutoff])
        }
        var written = 0
        var next = 0
        var size = 20
        while next < seriesIDs.count {
            let batch = seriesIDs[next..<min(next + size, seriesIDs.count)]
            next += batch.count
            let started = ContinuousClock.now
            written += try database.write { db -> Int in
                var count = 0
                for id in batch {
                    let covered =
                        try Int64.fetchOne(
                            db, sql: "SELECT MAX(end_ms) FROM metric_chunks WHERE series_id = ? AND resolution = ?", arguments: [id, step])
                        ?? .min
                    let rows = try Row.fetchAll(
                        db,
                        sql: """
                            SELECT end_ms, data FROM metric_chunks WHERE series_id = ?1 AND resolution = 0 AND end_ms > ?2
                            AND start_ms <= COALESCE(
                                (SELECT MIN(start_ms) FROM metric_chunks WHERE series_id = ?1 AND resolution = 0 AND end_ms >= ?3), ?3)
                            ORDER BY start_ms
                            """, arguments: [id, covered, cutoff])
                    var samples = RawSamples()
                    var dueEnd: Int64 = .min
                    for row in rows {
                        let data: Data = row["data"]
                        let decoded = try ChunkCodec.decode([UInt8](data), columns: 1)
                        let end: Int64 = row["end_ms"]
                        if end < cutoff { dueEnd = Swift.max(dueEnd, end) }
                        for (time, value) in zip(decoded.timestamps, decoded.columns[0])
                        where time > covered && time > (samples.times.last ?? .min) {
                            samples.times.append(time)
                            samples.values.append(value)
                        }
                    }
                    guard dueEnd != .min else { continue }
                    // Buckets of the due chunks only: up to the minute of their last sample, completed from the next chunk.
                    let buckets = Self.buckets(samples, step: step).filter { $0.start <= Self.bucketStart(dueEnd, step) }
                    for chunk in stride(from: 0, to: buckets.count, by: chunkSize).map({ Array(buckets[$0..<min($0 + chunkSize, buckets.count)]) }) {
                        try db.execute(
                            sql:
                                "INSERT OR REPLACE INTO metric_chunks (series_id, resolution, start_ms, end_ms, samples, data) VALUES (?, ?, ?, ?, ?, ?)",
                            arguments: [
                                id, step, chunk[0].start, chunk[chunk.count - 1].start + step - 1, chunk.count, Data(Self.encode(buckets: chunk)),
                            ])
                        count += 1
                    }
                }
                return count
            }
            // Sized by time as retention's delete batches are, so a writer waiting behind one never waits long.
            size = RetentionService.resized(size, took: ContinuousClock.now - started, within: 1...500)
        }
        return written
    }

    private func chunkRows(_ id: Int64, _ resolution: MetricResolution, from: Int64, to: Int64) throws -> [ChunkRow] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT start_ms, end_ms, samples, data FROM metric_chunks
                    WHERE series_id = ?1 AND resolution = ?2 AND start_ms <= ?4 AND end_ms >= ?3
                      AND start_ms >= COALESCE((SELECT MAX(start_ms) FROM metric_chunks
                                                WHERE series_id = ?1 AND resolution = ?2 AND start_ms <= ?3), ?3)
                    ORDER BY start_ms
                    """,
                arguments: [id, resolution.rawValue, from, to]
            ).map { row in
                let data: Data = row["data"]
                return ChunkRow(
                    seriesID: id, resolution: resolution, start: row["start_ms"], end: row["end_ms"], samples: row["samples"], data: [UInt8](data))
            }
        }
    }

    // MARK: open

    /// Load series, refill the chunks being filled, and rebuild open rollup buckets from raw samples on disk.
    private func load() throws {
        let series = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, host_id, name, labels, type FROM metric_series").map { row in
                MetricSeries(
                    id: row["id"], hostID: row["host_id"], name: row["name"], labels: row["labels"],
                    type: PrometheusText.FamilyType(rawValue: row["type"]) ?? .untyped)
            }
        }
        for entry in series {
            let buffer = SeriesBuffer(series: entry)
            buffers[entry.id] = buffer
            index[Self.key(hostID: entry.hostID, name: entry.name, labels: entry.labels)] = entry.id
            byHostName[Self.key(hostID: entry.hostID, name: entry.name, labels: ""), default: []].append(entry.id)
            let newest = try database.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT resolution, samples, data FROM metric_chunks c
                        WHERE series_id = ? AND start_ms = (SELECT MAX(start_ms) FROM metric_chunks
                                                           WHERE series_id = c.series_id AND resolution = c.resolution)
                        """, arguments: [entry.id])
            }
            var rollupEnds: [MetricResolution: Int64] = [:]
            for row in newest {
                guard let resolution = MetricResolution(rawValue: row["resolution"]), resolution != .minute else { continue }
                let data: Data = row["data"]
                let samples: Int = row["samples"]
                if resolution == .raw {
                    let decoded = try ChunkCodec.decode([UInt8](data), columns: 1)
                    buffer.lastTime = decoded.timestamps.last ?? .min
                    buffer.lastValue = decoded.columns[0].last ?? .nan
                    if samples < limits.rawChunk { buffer.raw = RawSamples(times: decoded.timestamps, values: decoded.columns[0]) }
                } else {
                    let buckets = try Self.decodeBuckets([UInt8](data))
                    rollupEnds[resolution] = (buckets.last?.start ?? .min) + resolution.rawValue
                    if samples < limits.size(resolution) { buffer.rollups[resolution] = buckets }
                }
            }
            guard buffer.lastTime != .min else { continue }
            // The open hour, and the last two hours of minutes (from a minute's start, so none is cut).
            let minutesFrom = Self.bucketStart(buffer.lastTime - Int64(Self.recentMinutes) * 60_000, 60_000)
            let hourFrom = rollupEnds[.hour] ?? .min
            let samples = try raw(entry.id, from: Swift.min(hourFrom, minutesFrom), to: buffer.lastTime)
            for (time, value) in zip(samples.times, samples.values) {
                if time >= minutesFrom { rollUp(time: time, value: value, into: buffer, .minute) }
                if time >= hourFrom { rollUp(time: time, value: value, into: buffer, .hour) }
            }
        }
    }
}
