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
        for resolution in [MetricResolution.minute, .hour] {
            rollUp(time: time, value: value, into: buffer, resolution)
        }
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

    private func close(_ bucket: RollupBucket, in buffer: SeriesBuffer, _ resolution: MetricResolution) {
        var bucket = bucket
        bucket.sum = RollupBucket.snapped(bucket.sum)
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
                guard let resolution = MetricResolution(rawValue: row["resolution"]) else { continue }
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
            let rebuildFrom = min(rollupEnds[.minute] ?? .min, rollupEnds[.hour] ?? .min)
            let samples = try raw(entry.id, from: rebuildFrom, to: buffer.lastTime)
            for (time, value) in zip(samples.times, samples.values) {
                for resolution in [MetricResolution.minute, .hour] where time >= rollupEnds[resolution] ?? .min {
                    rollUp(time: time, value: value, into: buffer, resolution)
                }
            }
        }
    }
}
