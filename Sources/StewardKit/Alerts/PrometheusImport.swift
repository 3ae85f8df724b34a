import Foundation

/// Reads a Prometheus rule file into Steward rules: the subset Steward can evaluate, one series selector with
/// avg/min/max/last_over_time, rate or predict_linear (or a bare selector) compared with a number. Alerts with the
/// same name and different `severity` labels become one rule with both thresholds. Everything else gets an error
/// that names the rule and says why.
public enum PrometheusImport {
    public struct Failure: Sendable, Equatable {
        public var path: String
        public var alert: String
        public var message: String
    }

    public static func parse(_ text: String) -> (rules: [AlertRule], failures: [Failure]) {
        let value: Any?
        do {
            value = try YAMLReader.read(text, limits: .document)
        } catch {
            return ([], [Failure(path: "", alert: "", message: error.message)])
        }
        guard let document = value as? [String: Any], let groups = document["groups"] as? [[String: Any]] else {
            return ([], [Failure(path: "", alert: "", message: "not a Prometheus rule file: expected a mapping with a groups list")])
        }
        var failures: [Failure] = []
        var rules: [String: AlertRule] = [:]
        var order: [String] = []
        for (groupIndex, group) in groups.enumerated() {
            for (ruleIndex, entry) in (group["rules"] as? [[String: Any]] ?? []).enumerated() {
                let path = "groups[\(groupIndex)].rules[\(ruleIndex)]"
                if let record = entry["record"] as? String {
                    failures.append(
                        Failure(path: path, alert: record, message: "recording rules are not imported; Steward records its own host gauges"))
                    continue
                }
                guard let name = entry["alert"] as? String, let expr = entry["expr"] as? String else {
                    failures.append(Failure(path: path, alert: "", message: "an alerting rule needs alert and expr"))
                    continue
                }
                let labels = (entry["labels"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
                let severity = labels["severity"] == "critical" ? AlertState.Severity.critical : .warning
                var rule = rules[name] ?? AlertRule()
                do {
                    try apply(expression: expr, severity: severity, to: &rule)
                } catch {
                    failures.append(Failure(path: path, alert: name, message: "\(error)"))
                    continue
                }
                rule.name = name
                if let text = entry["for"] as? String {
                    guard let seconds = duration(text) else {
                        failures.append(Failure(path: path, alert: name, message: "for: \"\(text)\" is not a duration such as 5m"))
                        continue
                    }
                    rule.forSeconds = seconds
                }
                if let text = entry["keep_firing_for"] as? String, let seconds = duration(text) { rule.keepFiringSeconds = seconds }
                rule.labels = labels.filter { $0.key != "severity" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    .joined(separator: ",")
                let annotations = (entry["annotations"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
                rule.summary = template(annotations["summary"] ?? "{{host}}: \(name) ({{value}})")
                rule.description = template(annotations["description"] ?? "")
                rule.runbookURL = annotations["runbook_url"] ?? ""
                if rules[name] == nil { order.append(name) }
                rules[name] = rule
            }
        }
        return (order.compactMap { rules[$0] }, failures)
    }

    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    /// `func(selector[window]) op number`, `predict_linear(selector[window], horizon) op number`, or `selector op number`.
    static func apply(expression: String, severity: AlertState.Severity, to rule: inout AlertRule) throws {
        let text = expression.trimmingCharacters(in: .whitespacesAndNewlines)
        let pattern =
            #"^(?:(avg|min|max|last)_over_time|(rate)|(predict_linear))?\s*\(?\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(?:\[([0-9]+[smhdw])\])?\s*(?:,\s*([0-9.]+)\s*)?\)?\s*(>=|<=|>|<)\s*(-?[0-9.eE+-]+)$"#
        let regex = try NSRegularExpression(pattern: pattern)
        guard let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else {
            throw Unsupported(
                description:
                    "unsupported expression \"\(text)\": Steward rules take one series selector, optionally in avg/min/max/last_over_time, rate or predict_linear, compared with a number"
            )
        }
        func group(_ index: Int) -> String? {
            guard let range = Range(match.range(at: index), in: text) else { return nil }
            return String(text[range])
        }
        let hasFunction = group(1) != nil || group(2) != nil || group(3) != nil
        if hasFunction != (group(6) != nil) { throw Unsupported(description: "\"\(text)\": a range [window] goes with a function, and only there") }
        if let aggregation = group(1) {
            rule.aggregation = AlertRule.Aggregation(rawValue: aggregation) ?? .avg
        } else if group(2) != nil {
            rule.aggregation = .rate
        } else if group(3) != nil {
            guard let horizon = group(7).flatMap(Double.init) else { throw Unsupported(description: "\"\(text)\": predict_linear needs a horizon") }
            rule.aggregation = .predictLinear
            rule.horizonSeconds = Int(horizon)
        } else {
            rule.aggregation = .last
        }
        rule.windowSeconds = group(6).flatMap(duration) ?? 60
        rule.metric = group(4) ?? ""
        var matchers: [String] = []
        for item in (group(5) ?? "").dropFirst().dropLast().split(separator: ",") {
            let part = item.trimmingCharacters(in: .whitespaces)
            if let range = part.range(of: "=~") {
                let key = part[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
                let value = part[range.upperBound...].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                guard key == "host" else { throw Unsupported(description: "\"\(text)\": regular-expression matchers are supported on host only") }
                rule.scopeHosts = value.replacingOccurrences(of: "\\\\.", with: ".").replacingOccurrences(of: "\\.", with: ".")
                    .split(separator: "|").map(String.init)
            } else if part.contains("!=") || part.contains("!~") {
                throw Unsupported(description: "\"\(text)\": negative matchers (!=, !~) are not supported")
            } else if let equals = part.firstIndex(of: "=") {
                let key = part[..<equals].trimmingCharacters(in: .whitespaces)
                let value = part[part.index(after: equals)...].trimmingCharacters(in: .whitespaces).trimmingCharacters(
                    in: CharacterSet(charactersIn: "\""))
                if key == "host" { rule.scopeHosts = [value] } else { matchers.append("\(key)=\(value)") }
            }
        }
        rule.matchers = matchers.joined(separator: ",")
        let comparison: AlertRule.Comparison = group(8)?.hasPrefix(">") == true ? .above : .below
        guard let threshold = group(9).flatMap(Double.init) else { throw Unsupported(description: "\"\(text)\": the threshold is not a number") }
        if rule.warnThreshold != nil || rule.critThreshold != nil, rule.comparison != comparison {
            throw Unsupported(description: "\"\(text)\": compares the other way than the same alert's other severity")
        }
        rule.comparison = comparison
        if severity == .critical { rule.critThreshold = threshold } else { rule.warnThreshold = threshold }
    }

    static func duration(_ text: String) -> Int? { TimeText.durationMilliseconds(text).map { Int($0 / 1000) } }

    /// Prometheus's `{{ $labels.host }}` and `{{ $value }}` (with any pipeline) in Steward's template words.
    static func template(_ text: String) -> String {
        var result = text
        for (pattern, replacement) in [(#"\{\{\s*\$labels\.host\s*\}\}"#, "{{host}}"), (#"\{\{\s*\$value[^}]*\}\}"#, "{{value}}")] {
            result = result.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
        }
        return result
    }
}
