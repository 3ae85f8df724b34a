import Foundation

/// How a range query turns samples into one value per step.
public enum MetricFunction: String, CaseIterable, Sendable {
    case avg, min, max, last
    /// Per-second increase of a counter, counting a drop as a reset to zero.
    case rate
}

/// One series evaluated on a step grid: `values[i]` covers [times[i] - step, times[i]); nil where nothing was seen.
public struct MetricRange: Sendable {
    public var series: MetricSeries
    public var resolution: MetricResolution
    public var step: Int64
    public var times: [Int64]
    public var values: [Double?]

    public var lastValue: Double? { values.last { $0 != nil } ?? nil }
}

/// How long each resolution is kept, which bounds which one can answer a range.
public struct MetricRetention: Sendable {
    public var raw: Int64 = 7 * 86_400_000
    public var minute: Int64 = 90 * 86_400_000
    public var hour: Int64 = 2 * 365 * 86_400_000
    public init() {}
}

public enum MetricQuery {
    /// The coarsest resolution no coarser than the step, and coarse enough that the range's start is still kept.
    public static func resolution(from: Int64, step: Int64, now: Int64, retention: MetricRetention = MetricRetention()) -> MetricResolution {
        var choice: MetricResolution =
            step >= MetricResolution.hour.rawValue ? .hour : step >= MetricResolution.minute.rawValue ? .minute : .raw
        if choice == .raw, from < now - retention.raw { choice = .minute }
        if choice == .minute, from < now - retention.minute { choice = .hour }
        return choice
    }

    /// Steps for a range: about `points` of them, rounded to a whole number of seconds, minutes or hours.
    public static func step(for range: Int64, points: Int = 240, minimum: Int64 = 10_000) -> Int64 {
        let raw = max(minimum, range / Int64(max(points, 1)))
        let nice: [Int64] = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map { $0 * 1000 }
        return nice.first { $0 >= raw } ?? raw
    }

    /// The grid's end times: multiples of `step` after `from` and no later than `to` (plus one for the partial step).
    static func grid(from: Int64, to: Int64, step: Int64) -> [Int64] {
        guard step > 0, to >= from else { return [] }
        var times: [Int64] = []
        var time = (from / step + 1) * step
        while time <= to + step - 1 {
            times.append(time)
            time += step
            if times.count > 20_000 { break }
        }
        return times
    }

    public static func evaluate(
        _ store: MetricStore, series: MetricSeries, function: MetricFunction, from: Int64, to: Int64, step: Int64,
        resolution: MetricResolution
    ) throws -> MetricRange {
        let times = grid(from: from, to: to, step: step)
        let lookback = function == .rate ? max(step, resolution.rawValue) * 2 : 0
        var values = [Double?](repeating: nil, count: times.count)
        guard let firstTime = times.first else {
            return MetricRange(series: series, resolution: resolution, step: step, times: times, values: values)
        }
        let windowStart = firstTime - step
        if resolution == .raw {
            let samples = try store.raw(series.id, from: windowStart - lookback, to: to)
            values = evaluateRaw(samples, function: function, times: times, step: step)
        } else {
            let buckets = try store.rollups(series.id, resolution, from: windowStart - lookback, to: to)
            values = evaluateBuckets(buckets, function: function, times: times, step: step)
        }
        return MetricRange(series: series, resolution: resolution, step: step, times: times, values: values)
    }

    static func evaluateRaw(_ samples: RawSamples, function: MetricFunction, times: [Int64], step: Int64) -> [Double?] {
        var values = [Double?](repeating: nil, count: times.count)
        var cursor = 0
        // For rate: the last sample before the current window, and the counter's increase since it.
        var previous: (time: Int64, value: Double)?
        for (slot, end) in times.enumerated() {
            let start = end - step
            while cursor < samples.count, samples.times[cursor] < start {
                if function == .rate { previous = (samples.times[cursor], samples.values[cursor]) }
                cursor += 1
            }
            var window = WindowSummary()
            var base = previous
            var lastTime: Int64 = 0
            while cursor < samples.count, samples.times[cursor] < end {
                let value = samples.values[cursor]
                if function == .rate, let before = base {
                    window.increase += value >= before.value ? value - before.value : value
                }
                if !value.isNaN { window.add(count: 1, sum: value, min: value, max: value) }
                window.last = value
                lastTime = samples.times[cursor]
                if base == nil { previous = (samples.times[cursor], value) }
                base = (samples.times[cursor], value)
                cursor += 1
            }
            if function == .rate {
                if let first = previous, window.last != nil, lastTime > first.time {
                    values[slot] = window.increase / (Double(lastTime - first.time) / 1000)
                }
                if let base { previous = base }
            } else {
                values[slot] = window.value(function)
            }
        }
        return values
    }

    static func evaluateBuckets(_ buckets: [RollupBucket], function: MetricFunction, times: [Int64], step: Int64) -> [Double?] {
        var values = [Double?](repeating: nil, count: times.count)
        var cursor = 0
        var previous: RollupBucket?
        for (slot, end) in times.enumerated() {
            let start = end - step
            while cursor < buckets.count, buckets[cursor].start < start {
                previous = buckets[cursor]
                cursor += 1
            }
            var window = WindowSummary()
            let first = previous
            var base = previous
            var lastBucket: RollupBucket?
            while cursor < buckets.count, buckets[cursor].start < end {
                let bucket = buckets[cursor]
                if let before = base { window.increase += bucket.last >= before.last ? bucket.last - before.last : bucket.last }
                window.add(count: bucket.count, sum: bucket.sum, min: bucket.min, max: bucket.max)
                window.last = bucket.last
                base = bucket
                lastBucket = bucket
                cursor += 1
            }
            if function == .rate {
                // Bucket starts are a whole number of buckets apart, so their difference is the time the increase took.
                if let first, let lastBucket, lastBucket.start > first.start {
                    values[slot] = window.increase / (Double(lastBucket.start - first.start) / 1000)
                }
            } else {
                values[slot] = window.value(function)
            }
            if let lastBucket { previous = lastBucket }
        }
        return values
    }
}

/// What one step of a range query has gathered from its samples or buckets: how many values, their sum, the lowest
/// and highest, the last one, and (for rate) a counter's increase with resets counted from zero.
struct WindowSummary {
    var count = 0.0
    var sum = 0.0
    var low = Double.infinity
    var high = -Double.infinity
    var last: Double?
    var increase = 0.0

    mutating func add(count: Double, sum: Double, min: Double, max: Double) {
        self.count += count
        self.sum += sum
        low = Swift.min(low, min)
        high = Swift.max(high, max)
    }

    /// avg, min, max or last over the step; nil when the step had no value (rate is worked out by the caller).
    func value(_ function: MetricFunction) -> Double? {
        switch function {
        case .avg: count > 0 ? sum / count : nil
        case .min: count > 0 ? low : nil
        case .max: count > 0 ? high : nil
        case .last, .rate: last
        }
    }
}
