import Foundation

extension PromQL {
    /// A source for one round of evaluation (an alert cycle, the steps of a range query) that remembers which series
    /// each selector found and each series' samples from the earliest time asked up to `until`: rules that share a
    /// selector, and the steps of a range query, read the store once. Past `budget` samples it stops remembering
    /// and reads through.
    public final class CachingSource: Source, @unchecked Sendable {
        let base: any Source
        let until: Int64
        let budget: Int
        private var selections: [String: [(id: Int64, labels: Labels)]] = [:]
        private var windows: [Int64: (from: Int64, points: [Point])] = [:]
        private var held = 0
        private let lock = NSLock()

        public init(_ base: any Source, until: Int64, budget: Int = 4_000_000) {
            self.base = base
            self.until = until
            self.budget = budget
        }

        public func series(matching matchers: [Matcher]) throws -> [(id: Int64, labels: Labels)] {
            let key = matchers.map(\.description).joined(separator: "\u{1F}")
            if let known = lock.withLock({ selections[key] }) { return known }
            let found = try base.series(matching: matchers)
            lock.withLock { selections[key] = found }
            return found
        }

        public func points(_ id: Int64, from: Int64, to: Int64) throws -> [Point] {
            guard to <= until else { return try base.points(id, from: from, to: to) }
            if let window = lock.withLock({ windows[id] }), window.from <= from { return Self.slice(window.points, from: from, to: to) }
            let loaded = try base.points(id, from: from, to: until)
            let keep = lock.withLock { () -> Bool in
                let previous = windows[id]?.points.count ?? 0
                guard held - previous + loaded.count <= budget else { return false }
                held += loaded.count - previous
                windows[id] = (from, loaded)
                return true
            }
            return keep || to == until ? Self.slice(loaded, from: from, to: to) : try base.points(id, from: from, to: to)
        }

        /// The points with from <= time <= to, found by binary search.
        static func slice(_ points: [Point], from: Int64, to: Int64) -> [Point] {
            func firstIndex(atLeast time: Int64) -> Int {
                var low = 0
                var high = points.count
                while low < high {
                    let middle = (low + high) / 2
                    if points[middle].time < time { low = middle + 1 } else { high = middle }
                }
                return low
            }
            let start = firstIndex(atLeast: from)
            let end = to == Int64.max ? points.count : firstIndex(atLeast: to + 1)
            return start < end ? Array(points[start..<end]) : []
        }
    }
}

extension PromQL {
    /// A source that refuses to read past a budget: at most `maxSeries` series from one selector and `maxSamples`
    /// samples in all. What a query over the API reads is bounded by it, so a viewer cannot make the panel hold the
    /// whole store in memory; the error says how to narrow the query.
    public final class LimitedSource: Source, @unchecked Sendable {
        let base: any Source
        let maxSeries: Int
        let maxSamples: Int
        private var read = 0
        private let lock = NSLock()

        public init(_ base: any Source, maxSeries: Int, maxSamples: Int) {
            self.base = base
            self.maxSeries = maxSeries
            self.maxSamples = maxSamples
        }

        public func series(matching matchers: [Matcher]) throws -> [(id: Int64, labels: Labels)] {
            let found = try base.series(matching: matchers)
            guard found.count <= maxSeries else {
                throw EvaluationError(
                    description:
                        "the selector {\(matchers.map(\.description).joined(separator: ", "))} matches \(found.count) series, over the \(maxSeries) "
                        + "one query may read at this step count; narrow it (a host=, instance= or name matcher), or use a larger step")
            }
            return found
        }

        public func points(_ id: Int64, from: Int64, to: Int64) throws -> [Point] {
            let loaded = try base.points(id, from: from, to: to)
            let total = lock.withLock { () -> Int in
                read += loaded.count
                return read
            }
            guard total <= maxSamples else {
                throw EvaluationError(
                    description:
                        "the query reads over \(maxSamples) samples; narrow its selectors (a host= or instance= matcher), shorten the range "
                        + "or the [window]s")
            }
            return loaded
        }
    }
}
