import Foundation

extension PromQL.Evaluator {
    typealias Sample = PromQL.Sample
    typealias Point = PromQL.Point

    func call(_ name: String, _ arguments: [PromQL.Expr]) throws -> PromQL.Value {
        switch name {
        case "time": return .scalar(Double(time) / 1000)
        case "vector": return .vector([Sample(labels: PromQL.Labels([]), value: try scalar(arguments[0]))])
        case "scalar":
            let samples = try vector(arguments[0])
            return .scalar(samples.count == 1 ? samples[0].value : .nan)
        case "absent":
            return .vector(try vector(arguments[0]).isEmpty ? [Sample(labels: Self.absentLabels(arguments[0]), value: 1)] : [])
        case "absent_over_time":
            return .vector(try matrix(arguments[0]).isEmpty ? [Sample(labels: Self.absentLabels(arguments[0]), value: 1)] : [])
        case "label_replace": return .vector(try labelReplace(arguments))
        case "sort", "sort_desc":
            // NaN sorts last either way.
            let samples = try vector(arguments[0]).sorted { a, b in
                if a.value.isNaN || b.value.isNaN { return !a.value.isNaN }
                return name == "sort" ? a.value < b.value : a.value > b.value
            }
            return .vector(samples)
        default: break
        }
        if PromQL.functions[name]?.arguments.first == .matrix {
            let series = try matrix(arguments[0])
            let selector: PromQL.Selector? = {
                if case .selector(let selector) = Self.unwrapped(arguments[0]) { return selector }
                return nil
            }()
            let rangeEnd = time - (selector?.offset ?? 0)
            let rangeStart = rangeEnd - (selector?.range ?? 0)
            let parameter = arguments.count > 1 ? try scalar(arguments[1]) : nil
            return .vector(
                try Self.unique(
                    series.compactMap { series in
                        guard
                            let value = Self.overRange(
                                name, series.points, rangeStart: rangeStart, rangeEnd: rangeEnd, at: time, parameter: parameter)
                        else { return nil }
                        return Sample(labels: name == "last_over_time" ? series.labels : series.labels.withoutName, value: value)
                    }))
        }
        if name == "quantile_over_time" {
            let q = try scalar(arguments[0])
            return .vector(
                try Self.unique(
                    try matrix(arguments[1]).map { Sample(labels: $0.labels.withoutName, value: Self.quantile(q, $0.points.map(\.value))) }))
        }
        // Functions of each sample's value.
        let samples = arguments.isEmpty ? [Sample(labels: PromQL.Labels([]), value: Double(time) / 1000)] : try vector(arguments[0])
        let extra = try arguments.dropFirst().map { try scalar($0) }
        if name == "clamp", extra[1] < extra[0] { return .vector([]) }
        // timestamp() reports a sample's own time only for a bare selector; of anything computed, the evaluation time.
        let ownTimes = name == "timestamp" && { if case .selector = Self.unwrapped(arguments[0]) { true } else { false } }()
        return .vector(
            try Self.unique(
                samples.map { sample in
                    var sample = sample
                    if !ownTimes { sample.time = nil }
                    return Sample(labels: sample.labels.withoutName, value: Self.valueFunction(name, sample, extra, at: time))
                }))
    }

    static func unwrapped(_ expr: PromQL.Expr) -> PromQL.Expr {
        if case .paren(let inner) = expr { return unwrapped(inner) }
        return expr
    }

    /// What absent() reports: the equality matchers of a selector as labels.
    static func absentLabels(_ expr: PromQL.Expr) -> PromQL.Labels {
        guard case .selector(let selector) = unwrapped(expr) else { return PromQL.Labels([]) }
        // In the matchers' order: an equality sets its label the first time; anything else about the label removes it.
        var labels = PromQL.Labels([])
        for matcher in selector.matchers where matcher.name != "__name__" {
            labels.set(matcher.name, matcher.op == .equal && labels[matcher.name] == nil ? matcher.value : "")
        }
        return labels
    }

    static func valueFunction(_ name: String, _ sample: Sample, _ extra: [Double], at time: Int64) -> Double {
        let value = sample.value
        switch name {
        case "abs": return abs(value)
        case "ceil": return value.rounded(.up)
        case "floor": return value.rounded(.down)
        case "exp": return Foundation.exp(value)
        case "ln": return Foundation.log(value)
        case "log2": return Foundation.log2(value)
        case "log10": return Foundation.log10(value)
        case "sqrt": return value.squareRoot()
        case "sgn": return value > 0 ? 1 : value < 0 ? -1 : value
        case "timestamp": return Double(sample.time ?? time) / 1000
        case "round":
            let inverse = 1 / (extra.first ?? 1)
            return (value * inverse + 0.5).rounded(.down) / inverse
        // Go's math.Max and math.Min give NaN for NaN.
        case "clamp": return value.isNaN ? .nan : Swift.max(extra[0], Swift.min(extra[1], value))
        case "clamp_min": return value.isNaN || extra[0].isNaN ? .nan : Swift.max(extra[0], value)
        case "clamp_max": return value.isNaN || extra[0].isNaN ? .nan : Swift.min(extra[0], value)
        default:
            // Calendar functions, in UTC as Prometheus computes them.
            guard !value.isNaN, !value.isInfinite else { return .nan }
            // Go converts the seconds to an integer toward zero.
            let value = value.rounded(.towardZero)
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let date = Date(timeIntervalSince1970: value)
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: date)
            switch name {
            case "day_of_month": return Double(parts.day!)
            case "day_of_week": return Double(parts.weekday! - 1)
            case "day_of_year": return Double(calendar.ordinality(of: .day, in: .year, for: date)!)
            case "days_in_month": return Double(calendar.range(of: .day, in: .month, for: date)!.count)
            case "hour": return Double(parts.hour!)
            case "minute": return Double(parts.minute!)
            case "month": return Double(parts.month!)
            default: return Double(parts.year!)
            }
        }
    }

    /// A function of one series' samples in a range; nil when it has no value there (rate of fewer than two samples).
    static func overRange(_ name: String, _ points: [Point], rangeStart: Int64, rangeEnd: Int64, at time: Int64, parameter: Double?) -> Double? {
        let values = points.map(\.value)
        switch name {
        case "rate", "increase", "delta":
            return extrapolatedRate(points, rangeStart: rangeStart, rangeEnd: rangeEnd, counter: name != "delta", rate: name == "rate")
        case "irate", "idelta":
            guard points.count >= 2 else { return nil }
            let last = points[points.count - 1]
            let previous = points[points.count - 2]
            let interval = last.time - previous.time
            guard interval > 0 else { return nil }
            if name == "idelta" { return last.value - previous.value }
            return (last.value < previous.value ? last.value : last.value - previous.value) / (Double(interval) / 1000)
        case "deriv":
            guard points.count >= 2 else { return nil }
            return linearRegression(points, interceptTime: points[0].time).slope
        case "predict_linear":
            guard points.count >= 2 else { return nil }
            let (slope, intercept) = linearRegression(points, interceptTime: time)
            return slope * (parameter ?? 0) + intercept
        case "changes":
            var count = 0
            for index in points.indices.dropFirst() {
                let (a, b) = (values[index - 1], values[index])
                if !(a == b || (a.isNaN && b.isNaN)) { count += 1 }
            }
            return Double(count)
        case "resets":
            return Double(points.indices.dropFirst().filter { values[$0] < values[$0 - 1] }.count)
        case "avg_over_time":
            var mean = 0.0
            var compensation = 0.0
            for (index, value) in values.enumerated() {
                let count = Double(index + 1)
                if mean.isInfinite {
                    if value.isInfinite && (mean > 0) == (value > 0) { continue }
                    if !value.isInfinite && !value.isNaN { continue }
                }
                (mean, compensation) = kahan(value / count - mean / count, mean, compensation)
            }
            return mean.isInfinite ? mean : mean + compensation
        case "sum_over_time":
            var sum = 0.0
            var compensation = 0.0
            for value in values { (sum, compensation) = kahan(value, sum, compensation) }
            return sum.isInfinite ? sum : sum + compensation
        case "count_over_time": return Double(values.count)
        case "min_over_time": return values.dropFirst().reduce(values[0]) { $1 < $0 || $0.isNaN ? $1 : $0 }
        case "max_over_time": return values.dropFirst().reduce(values[0]) { $1 > $0 || $0.isNaN ? $1 : $0 }
        case "last_over_time": return values.last
        case "stddev_over_time", "stdvar_over_time":
            var count = 0.0
            var mean = 0.0
            var meanCompensation = 0.0
            var aux = 0.0
            var auxCompensation = 0.0
            for value in values {
                count += 1
                let delta = value - (mean + meanCompensation)
                (mean, meanCompensation) = kahan(delta / count, mean, meanCompensation)
                (aux, auxCompensation) = kahan(delta * (value - (mean + meanCompensation)), aux, auxCompensation)
            }
            let variance = (aux + auxCompensation) / count
            return name == "stdvar_over_time" ? variance : variance.squareRoot()
        case "present_over_time": return 1
        default: return nil
        }
    }

    /// rate, increase and delta as Prometheus 2.x computes them: the change between the first and last sample (with
    /// counter resets added back), extrapolated towards the range's ends by at most half a sample interval unless a
    /// sample is that close to the end, and never below zero for a counter.
    static func extrapolatedRate(_ points: [Point], rangeStart: Int64, rangeEnd: Int64, counter: Bool, rate: Bool) -> Double? {
        guard points.count >= 2 else { return nil }
        let first = points[0]
        let last = points[points.count - 1]
        var result = last.value - first.value
        if counter {
            var previous = 0.0
            for point in points {
                if point.value < previous { result += previous }
                previous = point.value
            }
        }
        var toStart = Double(first.time - rangeStart) / 1000
        let toEnd = Double(rangeEnd - last.time) / 1000
        let sampled = Double(last.time - first.time) / 1000
        guard sampled > 0 else { return nil }
        let average = sampled / Double(points.count - 1)
        if counter, result > 0, first.value >= 0 {
            toStart = min(toStart, sampled * (first.value / result))
        }
        let threshold = average * 1.1
        var interval = sampled
        interval += toStart < threshold ? toStart : average / 2
        interval += toEnd < threshold ? toEnd : average / 2
        result *= interval / sampled
        if rate { result /= Double(rangeEnd - rangeStart) / 1000 }
        return result
    }

    /// Least squares over the samples, times in seconds from `interceptTime`: the slope, and the value at that time.
    static func linearRegression(_ points: [Point], interceptTime: Int64) -> (slope: Double, intercept: Double) {
        let first = points[0].value
        if points.allSatisfy({ $0.value == first }) { return first.isInfinite ? (.nan, .nan) : (0, first) }
        // Compensated sums, as Prometheus adds them.
        var n = 0.0
        var (sumX, cX, sumY, cY, sumXY, cXY, sumX2, cX2) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for point in points {
            let x = Double(point.time - interceptTime) / 1000
            n += 1
            (sumX, cX) = kahan(x, sumX, cX)
            (sumY, cY) = kahan(point.value, sumY, cY)
            (sumXY, cXY) = kahan(x * point.value, sumXY, cXY)
            (sumX2, cX2) = kahan(x * x, sumX2, cX2)
        }
        sumX += cX
        sumY += cY
        sumXY += cXY
        sumX2 += cX2
        let covariance = sumXY - sumX * sumY / n
        let variance = sumX2 - sumX * sumX / n
        let slope = covariance / variance
        return (slope, sumY / n - slope * sumX / n)
    }

    func labelReplace(_ arguments: [PromQL.Expr]) throws -> [Sample] {
        let samples = try vector(arguments[0])
        var texts: [String] = []
        for argument in arguments.dropFirst() {
            guard case .string(let text) = try evaluate(argument) else { throw PromQL.EvaluationError(description: "label_replace takes strings") }
            texts.append(text)
        }
        let (destination, replacement, sourceLabel, pattern) = (texts[0], texts[1], texts[2], texts[3])
        guard destination.first.map({ $0 == "_" || ($0.isASCII && $0.isLetter) }) == true,
            destination.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) })
        else { throw PromQL.EvaluationError(description: "\(PromQL.quoted(destination)) is not a valid label name") }
        let regex: NSRegularExpression
        do {
            regex = try NSRegularExpression(pattern: PromQL.anchored(pattern))
        } catch {
            throw PromQL.EvaluationError(description: "\(PromQL.quoted(pattern)) is not a valid regular expression")
        }
        var seen = Set<PromQL.Labels>()
        var result: [Sample] = []
        for var sample in samples {
            let value = sample.labels[sourceLabel] ?? ""
            if let match = regex.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) {
                sample.labels.set(destination, Self.expand(replacement, match: match, in: value))
            }
            guard seen.insert(sample.labels).inserted else {
                throw PromQL.EvaluationError(description: "label_replace made two series with the same labels \(sample.labels)")
            }
            result.append(sample)
        }
        return result
    }

    /// `$1`, `${1}` and `${name}` in a replacement, as Go's regexp expands them (an unknown group is empty).
    static func expand(_ template: String, match: NSTextCheckingResult, in text: String) -> String {
        func group(_ reference: String) -> String {
            let range: NSRange
            if let number = Int(reference) {
                guard number < match.numberOfRanges else { return "" }
                range = match.range(at: number)
            } else {
                range = match.range(withName: reference)
            }
            guard range.location != NSNotFound, let swiftRange = Range(range, in: text) else { return "" }
            return String(text[swiftRange])
        }
        var out = ""
        var rest = Substring(template)
        while let dollar = rest.firstIndex(of: "$") {
            out += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            if rest.first == "$" {
                out += "$"
                rest = rest.dropFirst()
            } else if rest.first == "{", let close = rest.firstIndex(of: "}") {
                out += group(String(rest[rest.index(after: rest.startIndex)..<close]))
                rest = rest[rest.index(after: close)...]
            } else {
                let name = rest.prefix { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
                if name.isEmpty {
                    out += "$"
                } else {
                    out += group(String(name))
                    rest = rest.dropFirst(name.count)
                }
            }
        }
        return out + rest
    }
}
