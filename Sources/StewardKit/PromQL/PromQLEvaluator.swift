import Foundation

extension PromQL {
    /// A series' labels, sorted by name, the metric name as `__name__`.
    public struct Labels: Hashable, Sendable, CustomStringConvertible {
        public private(set) var pairs: [Pair]

        public struct Pair: Hashable, Sendable {
            public var name: String
            public var value: String
        }

        public init(_ pairs: [(String, String)]) {
            var unique: [String: String] = [:]
            for (name, value) in pairs where !value.isEmpty { unique[name] = value }
            self.pairs = unique.map { Pair(name: $0.key, value: $0.value) }.sorted { $0.name < $1.name }
        }

        public subscript(name: String) -> String? { pairs.first { $0.name == name }?.value }

        public var name: String? { self["__name__"] }

        /// Setting "" removes the label, as in Prometheus.
        mutating func set(_ name: String, _ value: String) {
            pairs.removeAll { $0.name == name }
            if !value.isEmpty {
                pairs.append(Pair(name: name, value: value))
                pairs.sort { $0.name < $1.name }
            }
        }

        func keeping(_ names: [String]) -> Labels {
            var copy = self
            copy.pairs.removeAll { !names.contains($0.name) }
            return copy
        }

        func dropping(_ names: [String]) -> Labels {
            var copy = self
            copy.pairs.removeAll { names.contains($0.name) }
            return copy
        }

        var withoutName: Labels { dropping(["__name__"]) }

        public var description: String {
            let rest = pairs.filter { $0.name != "__name__" }.map { "\($0.name)=\(PromQL.quoted($0.value))" }.joined(separator: ", ")
            return (name ?? "") + "{" + rest + "}"
        }
    }

    public struct Sample: Sendable {
        public var labels: Labels
        public var value: Double
        /// When the sample was taken, for a sample read straight from a series (what timestamp() reports).
        public var time: Int64? = nil
    }

    public struct Point: Sendable, Equatable {
        /// Milliseconds since the epoch.
        public var time: Int64
        public var value: Double
    }

    public struct RangeSeries: Sendable {
        public var labels: Labels
        public var points: [Point]
    }

    public enum Value: Sendable {
        case scalar(Double)
        case vector([Sample])
        case matrix([RangeSeries])
        case string(String)
    }

    public struct EvaluationError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Where the engine reads series: those matching every matcher (the metric name as `__name__`), and their samples.
    public protocol Source {
        func series(matching matchers: [Matcher]) throws -> [(id: Int64, labels: Labels)]
        /// Samples of a series with from <= time <= to, oldest first.
        func points(_ id: Int64, from: Int64, to: Int64) throws -> [Point]
    }

    /// How far back an instant selector looks for a series' latest sample (a sample exactly this old still counts), as
    /// in Prometheus.
    public static let lookback: Int64 = 5 * 60_000

    public struct Evaluator {
        public let source: any Source
        /// The evaluation time, in milliseconds.
        public var time: Int64

        public init(source: any Source, time: Int64) {
            self.source = source
            self.time = time
        }

        public func evaluate(_ expr: Expr) throws -> Value {
            switch expr {
            case .number(let value): return .scalar(value)
            case .string(let text): return .string(text)
            case .paren(let inner): return try evaluate(inner)
            case .negate(let inner):
                switch try evaluate(inner) {
                case .scalar(let value): return .scalar(-value)
                case .vector(let samples): return .vector(try Self.unique(samples.map { Sample(labels: $0.labels.withoutName, value: -$0.value) }))
                default: throw EvaluationError(description: "a sign goes before a number or an instant vector")
                }
            case .selector(let selector):
                return selector.range == nil ? .vector(try instant(selector)) : .matrix(try range(selector))
            case .call(let name, let arguments): return try call(name, arguments)
            case .aggregate(let op, let parameter, let grouping, let inner):
                return .vector(try aggregate(op, parameter: parameter.map(scalar), grouping: grouping, try vector(inner)))
            case .binary(let op, let lhs, let rhs, let returnBool, let matching):
                return try binary(op, try evaluate(lhs), try evaluate(rhs), returnBool: returnBool, matching: matching ?? VectorMatching())
            }
        }

        /// Prometheus refuses a result in which two series have the same labels (after names were dropped).
        static func unique(_ samples: [Sample]) throws -> [Sample] {
            var seen = Set<Labels>()
            for sample in samples where !seen.insert(sample.labels).inserted {
                throw EvaluationError(description: "vector cannot contain metrics with the same labelset \(sample.labels)")
            }
            return samples
        }

        func vector(_ expr: Expr) throws -> [Sample] {
            guard case .vector(let samples) = try evaluate(expr) else { throw EvaluationError(description: "expected an instant vector") }
            return samples
        }

        func scalar(_ expr: Expr) throws -> Double {
            guard case .scalar(let value) = try evaluate(expr) else { throw EvaluationError(description: "expected a number") }
            return value
        }

        func matrix(_ expr: Expr) throws -> [RangeSeries] {
            guard case .matrix(let series) = try evaluate(expr) else { throw EvaluationError(description: "expected a range vector") }
            return series
        }

        /// Each matching series' latest sample in the lookback window before the (offset) time.
        func instant(_ selector: Selector) throws -> [Sample] {
            let at = time - selector.offset
            var samples: [Sample] = []
            for series in try source.series(matching: selector.allMatchers) {
                if let last = try source.points(series.id, from: at - PromQL.lookback, to: at).last {
                    samples.append(Sample(labels: series.labels, value: last.value, time: last.time))
                }
            }
            return samples
        }

        /// Each matching series' samples in [time - range, time] (both ends included, as Prometheus 2.x reads ranges).
        func range(_ selector: Selector) throws -> [RangeSeries] {
            let at = time - selector.offset
            var result: [RangeSeries] = []
            for series in try source.series(matching: selector.allMatchers) {
                let points = try source.points(series.id, from: at - selector.range!, to: at)
                if !points.isEmpty { result.append(RangeSeries(labels: series.labels, points: points)) }
            }
            return result
        }

        // MARK: operators

        func binary(_ op: BinaryOp, _ lhs: Value, _ rhs: Value, returnBool: Bool, matching: VectorMatching) throws -> Value {
            switch (lhs, rhs) {
            case (.scalar(let a), .scalar(let b)):
                let (value, keep) = Self.apply(op, a, b)
                return .scalar(op.isComparison ? (keep ? 1 : 0) : value)
            case (.vector(let samples), .scalar(let b)):
                return .vector(try Self.unique(Self.withScalar(op, samples, b, scalarOnLeft: false, returnBool: returnBool)))
            case (.scalar(let a), .vector(let samples)):
                return .vector(try Self.unique(Self.withScalar(op, samples, a, scalarOnLeft: true, returnBool: returnBool)))
            case (.vector(let left), .vector(let right)):
                if op.isSet { return .vector(Self.setOperation(op, left, right, matching: matching)) }
                return .vector(try Self.vectors(op, left, right, returnBool: returnBool, matching: matching))
            default:
                throw EvaluationError(description: "\(op.rawValue) needs numbers or instant vectors")
            }
        }

        /// The value, and for a comparison whether it holds.
        static func apply(_ op: BinaryOp, _ a: Double, _ b: Double) -> (Double, Bool) {
            switch op {
            case .add: (a + b, true)
            case .sub: (a - b, true)
            case .mul: (a * b, true)
            case .div: (a / b, true)
            case .mod: (fmod(a, b), true)
            case .pow: (pow(a, b), true)
            case .atan2: (Foundation.atan2(a, b), true)
            case .eql: (a, a == b)
            case .neq: (a, a != b)
            case .gtr: (a, a > b)
            case .lss: (a, a < b)
            case .gte: (a, a >= b)
            case .lte: (a, a <= b)
            case .and, .or, .unless: (a, true)
            }
        }

        static func withScalar(_ op: BinaryOp, _ samples: [Sample], _ scalar: Double, scalarOnLeft: Bool, returnBool: Bool) -> [Sample] {
            samples.compactMap { sample in
                let (value, keep) = scalarOnLeft ? apply(op, scalar, sample.value) : apply(op, sample.value, scalar)
                if op.isComparison {
                    if returnBool { return Sample(labels: sample.labels.withoutName, value: keep ? 1 : 0) }
                    // A comparison keeps the vector's own value, whichever side it is on.
                    return keep ? Sample(labels: sample.labels, value: sample.value) : nil
                }
                return Sample(labels: op.dropsName ? sample.labels.withoutName : sample.labels, value: value)
            }
        }

        /// The labels two samples are matched on.
        static func signature(_ labels: Labels, _ matching: VectorMatching) -> Labels {
            matching.on ? labels.keeping(matching.labels) : labels.dropping(matching.labels + ["__name__"])
        }

        static func setOperation(_ op: BinaryOp, _ left: [Sample], _ right: [Sample], matching: VectorMatching) -> [Sample] {
            let rightSignatures = Set(right.map { signature($0.labels, matching) })
            switch op {
            case .and: return left.filter { rightSignatures.contains(signature($0.labels, matching)) }
            case .unless: return left.filter { !rightSignatures.contains(signature($0.labels, matching)) }
            default:
                let leftSignatures = Set(left.map { signature($0.labels, matching) })
                return left + right.filter { !leftSignatures.contains(signature($0.labels, matching)) }
            }
        }

        static func vectors(_ op: BinaryOp, _ left: [Sample], _ right: [Sample], returnBool: Bool, matching: VectorMatching) throws -> [Sample] {
            // Nothing to match against: empty, before any check for duplicates (as Prometheus answers).
            guard !left.isEmpty, !right.isEmpty else { return [] }
            // The "one" side is keyed by signature; with group_right the sides swap roles.
            var include: [String] = []
            var swapped = false
            switch matching.cardinality {
            case .oneToOne: break
            case .manyToOne(let labels): include = labels
            case .oneToMany(let labels):
                include = labels
                swapped = true
            }
            let many = swapped ? right : left
            let one = swapped ? left : right
            var oneBySignature: [Labels: Sample] = [:]
            for sample in one {
                let key = signature(sample.labels, matching)
                if oneBySignature[key] != nil {
                    throw EvaluationError(
                        description:
                            "found duplicate series for the match group \(key) on the \(swapped ? "left" : "right") side of \(op.rawValue); many-to-many matching is not allowed"
                    )
                }
                oneBySignature[key] = sample
            }
            var result: [Sample] = []
            var seen: [Labels: Bool] = [:]
            var matched = Set<Labels>()
            let dropName = op.dropsName || returnBool
            for sample in many {
                guard let other = oneBySignature[signature(sample.labels, matching)] else { continue }
                let (a, b) = swapped ? (other.value, sample.value) : (sample.value, other.value)
                let (value, keep) = apply(op, a, b)
                if op.isComparison, !returnBool, !keep { continue }
                var labels = dropName ? sample.labels.withoutName : sample.labels
                if case .oneToOne = matching.cardinality {
                    labels = matching.on ? labels.keeping(matching.labels) : labels.dropping(matching.labels)
                }
                for name in include { labels.set(name, other.labels[name] ?? "") }
                if case .oneToOne = matching.cardinality {
                    // One-to-one: a match group may be used once.
                    let group = signature(sample.labels, matching)
                    guard matched.insert(group).inserted else {
                        throw EvaluationError(
                            description:
                                "multiple matches for \(group) on the \(swapped ? "right" : "left") side of \(op.rawValue); many-to-one matching needs group_left or group_right"
                        )
                    }
                } else if seen[labels] != nil {
                    throw EvaluationError(description: "multiple matches for labels \(labels): grouping labels must ensure unique matches")
                }
                seen[labels] = true
                // A comparison keeps the left side's value (`apply` returns it), or 0 and 1 with bool.
                let out = op.isComparison && returnBool ? (keep ? 1 : 0) : value
                result.append(Sample(labels: labels, value: out))
            }
            return result
        }

        // MARK: aggregation

        func aggregate(_ op: String, parameter: Double?, grouping: Grouping?, _ samples: [Sample]) throws -> [Sample] {
            func key(_ labels: Labels) -> Labels {
                switch grouping {
                case .none: Labels([])
                case .by(let names): labels.keeping(names)
                case .without(let names): labels.dropping(names + ["__name__"])
                }
            }
            var groups: [Labels: [Sample]] = [:]
            var order: [Labels] = []
            for sample in samples {
                let group = key(sample.labels)
                if groups[group] == nil { order.append(group) }
                groups[group, default: []].append(sample)
            }
            var result: [Sample] = []
            for group in order {
                let members = groups[group]!
                let values = members.map(\.value)
                switch op {
                case "sum": result.append(Sample(labels: group, value: values.reduce(0, +)))
                case "avg": result.append(Sample(labels: group, value: Self.mean(values)))
                case "min": result.append(Sample(labels: group, value: values.filter { !$0.isNaN }.min() ?? .nan))
                case "max": result.append(Sample(labels: group, value: values.filter { !$0.isNaN }.max() ?? .nan))
                case "count": result.append(Sample(labels: group, value: Double(values.count)))
                case "group": result.append(Sample(labels: group, value: 1))
                case "stddev": result.append(Sample(labels: group, value: Self.variance(values).squareRoot()))
                case "stdvar": result.append(Sample(labels: group, value: Self.variance(values)))
                case "quantile": result.append(Sample(labels: group, value: Self.quantile(parameter ?? .nan, values)))
                case "topk", "bottomk":
                    guard let parameter, parameter >= -9.223_372_036_854_775_808e18, parameter <= 9.223_372_036_854_774_784e18 else {
                        throw EvaluationError(description: "the number of \(op) overflows int64")
                    }
                    let k = Int(max(0, min(Double(Int32.max), parameter)))
                    let ordered = members.sorted { a, b in
                        // NaN sorts last either way.
                        if a.value.isNaN { return false }
                        if b.value.isNaN { return true }
                        return op == "topk" ? a.value > b.value : a.value < b.value
                    }
                    result += ordered.prefix(k)
                default: throw EvaluationError(description: "the aggregation \(op) is not supported")
                }
            }
            return result
        }

        /// Welford's method, as Prometheus's stddev and stdvar aggregations (a lone value gives 0, even NaN).
        static func variance(_ values: [Double]) -> Double {
            guard let first = values.first else { return .nan }
            var mean = first
            var sum = 0.0
            var count = 1.0
            for value in values.dropFirst() {
                count += 1
                let delta = value - mean
                mean += delta / count
                sum += delta * (value - mean)
            }
            return sum / count
        }

        /// An incremental mean (no overflow for large values), an infinite mean kept as Prometheus keeps it.
        static func mean(_ values: [Double]) -> Double {
            guard let first = values.first else { return .nan }
            var mean = first
            var count = 1.0
            for value in values.dropFirst() {
                count += 1
                if mean.isInfinite {
                    if value.isInfinite && (mean > 0) == (value > 0) { continue }
                    if !value.isInfinite && !value.isNaN { continue }
                }
                mean += value / count - mean / count
            }
            return mean
        }

        /// Neumaier's compensated addition, as Prometheus's kahanSumInc: the new sum and compensation.
        static func kahan(_ increment: Double, _ sum: Double, _ compensation: Double) -> (Double, Double) {
            let total = sum + increment
            if abs(sum) >= abs(increment) { return (total, compensation + (sum - total) + increment) }
            return (total, compensation + (increment - total) + sum)
        }

        /// The φ-quantile with linear interpolation between ranks, as Prometheus computes it.
        static func quantile(_ q: Double, _ values: [Double]) -> Double {
            guard !values.isEmpty, !q.isNaN else { return .nan }
            if q < 0 { return -.infinity }
            if q > 1 { return .infinity }
            // NaN sorts first, as in Prometheus's quantile.
            let sorted = values.sorted { a, b in a.isNaN ? !b.isNaN : (!b.isNaN && a < b) }
            let rank = q * Double(sorted.count - 1)
            let lower = max(0, Int(rank.rounded(.down)))
            let upper = min(sorted.count - 1, lower + 1)
            let weight = rank - rank.rounded(.down)
            return sorted[lower] * (1 - weight) + sorted[upper] * weight
        }
    }
}

extension PromQL {
    /// The value of an expression at one time (milliseconds).
    public static func query(_ expr: Expr, source: any Source, at time: Int64) throws -> Value {
        try Evaluator(source: source, time: time).evaluate(expr)
    }

    /// An expression evaluated at each step from `from` to `to` (milliseconds), as series: what a chart draws.
    public static func rangeQuery(_ expr: Expr, source: any Source, from: Int64, to: Int64, step: Int64) throws -> [RangeSeries] {
        guard expr.type == .scalar || expr.type == .vector else {
            throw EvaluationError(description: "a range query needs an expression whose value is a number or an instant vector")
        }
        guard step > 0, from <= to, (to - from) / step <= 11_000 else {
            throw EvaluationError(description: "a range query takes at most 11,000 steps; choose a longer step or a shorter range")
        }
        var series: [Labels: [Point]] = [:]
        var order: [Labels] = []
        var time = from
        // Each step reads the same series again, a step further on: read them once.
        let source = CachingSource(source, until: to)
        while time <= to {
            switch try query(expr, source: source, at: time) {
            case .scalar(let value):
                let labels = Labels([])
                if series[labels] == nil { order.append(labels) }
                series[labels, default: []].append(Point(time: time, value: value))
            case .vector(let samples):
                for sample in samples {
                    if series[sample.labels] == nil { order.append(sample.labels) }
                    series[sample.labels, default: []].append(Point(time: time, value: sample.value))
                }
            default: break
            }
            time += step
        }
        return order.map { RangeSeries(labels: $0, points: series[$0]!) }
    }
}
