import Foundation

/// Alert rules written in PromQL (source `promql`). The expression is evaluated once a cycle for the whole fleet, and
/// each series it returns belongs to the host its `host` (else `instance`) label names.
/// - With a warning or critical threshold, the expression gives values: a host's value is the worst of its series,
///   compared as a metric rule's is (levels, clear levels, `for`, keep firing, no data).
/// - Without thresholds it is a condition, as a Prometheus alerting rule is: a host with any series is alerting at the
///   rule's severity, and a host without any is normal.
public enum PromQLRule {
    public static let source = "promql"
    static let maximumLength = 4000

    /// What is wrong with an expression, or nil when a rule can use it.
    public static func problem(_ expression: String) -> String? {
        let text = expression.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else {
            return "write a PromQL expression, e.g. 100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
        }
        guard text.utf8.count <= maximumLength else { return "at most \(maximumLength) bytes" }
        let parsed: PromQL.Expr
        do {
            parsed = try PromQL.parse(text)
        } catch {
            return "\(error)"
        }
        guard parsed.type == .vector else {
            return "the expression gives a \(parsed.type.rawValue); an alert needs an instant vector (one value per series), e.g. node_load1 > 4"
        }
        for selector in selectors(in: parsed) {
            for matcher in selector.matchers where matcher.op == .regex || matcher.op == .notRegex {
                if let problem = LogFilter.backtrackingProblem(matcher.value) { return "the regex of \(matcher.name): \(problem)" }
            }
        }
        return nil
    }

    /// Every selector of an expression.
    static func selectors(in expr: PromQL.Expr) -> [PromQL.Selector] {
        switch expr {
        case .number, .string: return []
        case .selector(let selector): return [selector]
        case .call(_, let arguments): return arguments.flatMap(selectors)
        case .aggregate(_, let parameter, _, let inner): return (parameter.map(selectors) ?? []) + selectors(in: inner)
        case .binary(_, let lhs, let rhs, _, _): return selectors(in: lhs) + selectors(in: rhs)
        case .negate(let inner), .paren(let inner): return selectors(in: inner)
        }
    }

    /// The host a result series belongs to: its `host` label, else its `instance` label (without a port when the
    /// name with it is not a host).
    static func hostName(_ labels: PromQL.Labels, known: Set<String>) -> String? {
        if let host = labels["host"], known.contains(host) { return host }
        guard let instance = labels["instance"] else { return nil }
        if known.contains(instance) { return instance }
        if let colon = instance.lastIndex(of: ":"), known.contains(String(instance[..<colon])) { return String(instance[..<colon]) }
        return nil
    }

    /// One evaluation at `time`: each host's series, in label order.
    public static func evaluate(_ rule: AlertRule, source: any PromQL.Source, hosts: Set<String>, at time: Int64) throws -> [String: [PromQL.Sample]]
    {
        let expr = try PromQL.parse(rule.expression)
        guard case .vector(let samples) = try PromQL.query(expr, source: source, at: time) else {
            throw PromQL.EvaluationError(description: "the expression does not give an instant vector")
        }
        var byHost: [String: [PromQL.Sample]] = [:]
        for sample in samples {
            guard let host = hostName(sample.labels, known: hosts) else { continue }
            byHost[host, default: []].append(sample)
        }
        for host in byHost.keys { byHost[host]!.sort { $0.labels.description < $1.labels.description } }
        return byHost
    }

    /// What a rule sees for one host, given the host's series, and the labels of the one that decided.
    public static func observe(_ rule: AlertRule, samples: [PromQL.Sample]) -> (AlertObservation, labels: String) {
        let conditionOnly = rule.warnThreshold == nil && rule.critThreshold == nil
        guard !samples.isEmpty else { return (conditionOnly ? .clear : .noData, "") }
        if conditionOnly { return (.value(samples[0].value), canonical(samples[0].labels)) }
        // NaN meets no level (as in Prometheus, where a comparison drops it).
        let numbers = samples.filter { !$0.value.isNaN }
        guard let worst = rule.worstIndex(numbers.map(\.value)) else { return (.value(.nan), canonical(samples[0].labels)) }
        return (.value(numbers[worst].value), canonical(numbers[worst].labels))
    }

    static func canonical(_ labels: PromQL.Labels) -> String {
        PrometheusText.canonicalLabels(labels.pairs.filter { $0.name != "__name__" }.map { ($0.name, $0.value) })
    }
}
