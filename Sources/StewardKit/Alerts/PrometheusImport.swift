import Foundation

/// Reads a Prometheus rule file into Steward's PromQL rules.
/// - An alert whose expression is `value OP number` (a comparison with a literal, without `bool` or matching) keeps
///   `value` as its expression and the number as its warning or critical threshold, with the comparison exactly as
///   written; two alerts of one name with the same value, comparison and timing, one warning and one critical, become
///   one rule with both levels. Any other expression is a condition: what it returns is alerting.
/// - `for` and `keep_firing_for` take Prometheus's durations; labels and annotations are kept as written, and their
///   templates are rendered when the alert is shown or sent.
/// - An empty result is "not alerting", as in Prometheus: imported rules treat no data as normal.
/// - Recording rules of the series Steward derives itself (an export's `steward_host_*`) are skipped; others are
///   refused with the reason.
public enum PrometheusImport {
    public struct Failure: Sendable, Equatable {
        public var path: String
        public var alert: String
        public var message: String
    }

    public struct Result: Sendable {
        public var rules: [AlertRule] = []
        public var failures: [Failure] = []
        /// Imported, but something will not behave as it did in Prometheus: alert name -> what and why.
        public var warnings: [Failure] = []
        /// Recording rules of series Steward derives itself.
        public var skipped: [String] = []
    }

    /// The annotation an export writes with the Steward rule's own name, so importing an export finds the rule again.
    public static let ruleNameAnnotation = "steward_rule"

    public static func parse(_ text: String) -> Result {
        var result = Result()
        let value: Any?
        do {
            value = try YAMLReader.read(text, limits: .document)
        } catch {
            result.failures.append(Failure(path: "", alert: "", message: error.message))
            return result
        }
        guard let document = value as? [String: Any], let groups = document["groups"] as? [Any] else {
            result.failures.append(Failure(path: "", alert: "", message: "not a Prometheus rule file: expected a mapping with a groups list"))
            return result
        }
        var byName: [String: Int] = [:]
        for (groupIndex, item) in groups.enumerated() {
            guard let group = item as? [String: Any] else {
                result.failures.append(Failure(path: "groups[\(groupIndex)]", alert: "", message: "a group is a mapping with name and rules"))
                continue
            }
            for (ruleIndex, item) in (group["rules"] as? [Any] ?? []).enumerated() {
                let path = "groups[\(groupIndex)].rules[\(ruleIndex)]"
                guard let entry = item as? [String: Any] else {
                    result.failures.append(Failure(path: path, alert: "", message: "a rule is a mapping with alert (or record) and expr"))
                    continue
                }
                if let record = entry["record"] as? String {
                    if HostSummary.names.contains(record) {
                        result.skipped.append(record)
                    } else {
                        result.failures.append(
                            Failure(
                                path: path, alert: record,
                                message: "recording rules are not imported; write the expression into the alert rules that use \(record)"))
                    }
                    continue
                }
                guard let alert = entry["alert"] as? String, let expr = entry["expr"].map({ "\($0)" }) else {
                    result.failures.append(Failure(path: path, alert: "", message: "an alerting rule needs alert and expr"))
                    continue
                }
                do {
                    let (rule, warnings) = try read(entry, alert: alert, expr: expr)
                    result.warnings += warnings.map { Failure(path: path, alert: rule.name, message: $0) }
                    if let index = byName[rule.name] {
                        if let merged = merge(result.rules[index], rule) {
                            result.rules[index] = merged
                            continue
                        }
                        var renamed = rule
                        renamed.name = uniqueName(rule.name + " (\(severityWord(rule)))", taken: Set(result.rules.map(\.name)))
                        result.warnings.append(
                            Failure(
                                path: path, alert: rule.name,
                                message:
                                    "another alert is named \(rule.name) with a different expression or timing; this one is imported as \(renamed.name)"
                            ))
                        byName[renamed.name] = result.rules.count
                        result.rules.append(renamed)
                    } else {
                        byName[rule.name] = result.rules.count
                        result.rules.append(rule)
                    }
                } catch let failure as Unsupported {
                    result.failures.append(Failure(path: path, alert: alert, message: failure.description))
                } catch {
                    result.failures.append(Failure(path: path, alert: alert, message: "\(error)"))
                }
            }
        }
        return result
    }

    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    static func severityWord(_ rule: AlertRule) -> String {
        rule.critThreshold != nil ? "critical" : rule.warnThreshold != nil ? "warning" : rule.severity.rawValue
    }

    static func uniqueName(_ name: String, taken: Set<String>) -> String {
        var candidate = name
        var number = 2
        while taken.contains(candidate) {
            candidate = "\(name) \(number)"
            number += 1
        }
        return candidate
    }

    /// One alerting rule as a Steward rule, and what will not behave as in Prometheus.
    static func read(_ entry: [String: Any], alert: String, expr: String) throws -> (AlertRule, [String]) {
        var warnings: [String] = []
        var rule = AlertRule()
        rule.source = PromQLRule.source
        rule.noData = .ok
        let annotations = (entry["annotations"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
        rule.name = annotations[ruleNameAnnotation] ?? alert
        let text = expr.trimmingCharacters(in: .whitespacesAndNewlines)
        if let problem = PromQLRule.problem(text) { throw Unsupported(description: "expr: \(problem)") }
        var parsed = try PromQL.parse(text)
        var rewritten = false
        // Steward's series have no job label (every host's series come from its own scrape): a job matcher would
        // match nothing, so it is taken out, and the warning says so.
        var removed: [String] = []
        parsed = parsed.mappingSelectors { selector in
            guard selector.name != nil, selector.matchers.contains(where: { $0.name == "job" && !$0.matches("") }) else { return selector }
            var copy = selector
            removed += copy.matchers.filter { $0.name == "job" }.map(\.description)
            copy.matchers.removeAll { $0.name == "job" }
            rewritten = true
            return copy
        }
        if rewritten {
            warnings.append(
                "\(Set(removed).sorted().joined(separator: ", ")) taken out: Steward's series have no job label (each host's series come from its own scrape), so it would match nothing"
            )
        }
        var labels = (entry["labels"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
        let severity = labels.removeValue(forKey: "severity")
        let level: AlertState.Severity
        switch severity?.lowercased() {
        case "critical"?, "page"?, "error"?: level = .critical
        case "warning"?, "warn"?, nil: level = .warning
        case "info"?, "informational"?, "none"?: level = .info
        case let other?:
            level = .warning
            labels["severity"] = severity
            warnings.append(
                "severity \(other): Steward's levels are info, warning and critical; it raises a warning and keeps the label severity=\(other)")
        }
        // Thresholds are warning and critical levels; an info rule stays a condition at its severity.
        if level != .info, let (value, comparison, threshold) = thresholdForm(parsed) {
            rule.expression = PromQL.format(value)
            rule.comparison = comparison
            if level == .critical { rule.critThreshold = threshold } else { rule.warnThreshold = threshold }
        } else {
            rule.expression = rewritten ? PromQL.format(parsed) : text
            rule.severity = level
        }
        rule.forSeconds = try duration(entry["for"], field: "for")
        rule.keepFiringSeconds = try duration(entry["keep_firing_for"], field: "keep_firing_for")
        var pairs: [String] = []
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            guard PrometheusText.isLabelName(key), !value.contains(","), !value.contains("{{") else {
                warnings.append("label \(key)=\(value) is left out: Steward's rule labels are plain name=value pairs without commas or templates")
                continue
            }
            pairs.append("\(key)=\(value)")
        }
        rule.labels = pairs.joined(separator: ",")
        let summary = annotations["summary"] ?? annotations["message"] ?? "{{ $labels.instance }}: \(alert)"
        rule.summary = String(summary.prefix(300))
        if summary.count > 300 { warnings.append("the summary is longer than 300 characters and was shortened") }
        rule.description = String((annotations["description"] ?? "").prefix(4000))
        rule.runbookURL = annotations["runbook_url"] ?? annotations["runbook"] ?? ""
        for (key, value) in [("summary", rule.summary), ("description", rule.description)] {
            for action in PrometheusTemplate.unsupported(value) {
                warnings.append(
                    "\(key): the template action \(action) is shown as written (Steward renders $labels, $value and the humanize functions)")
            }
        }
        let other = annotations.keys.filter { !["summary", "message", "description", "runbook_url", "runbook", ruleNameAnnotation].contains($0) }
        if !other.isEmpty { warnings.append("annotations not kept: \(other.sorted().joined(separator: ", "))") }
        if rule.runbookURL.isEmpty == false, URLComponents(string: rule.runbookURL)?.host == nil {
            warnings.append("runbook_url \(rule.runbookURL) is not an http(s) address and was left out")
            rule.runbookURL = ""
        }
        return (rule, warnings)
    }

    /// `value OP number` (or `number OP value`, turned around) at the top, without bool or matching.
    static func thresholdForm(_ expr: PromQL.Expr) -> (PromQL.Expr, AlertRule.Comparison, Double)? {
        var top = expr
        while case .paren(let inner) = top { top = inner }
        guard case .binary(let op, let lhs, let rhs, false, let matching) = top, op.isComparison,
            matching == nil || (matching?.labels.isEmpty == true && matching?.on == false)
        else { return nil }
        func literal(_ side: PromQL.Expr) -> Double? {
            switch side {
            case .number(let value): return value
            case .negate(.number(let value)): return -value
            case .paren(let inner): return literal(inner)
            default: return nil
            }
        }
        if let threshold = literal(rhs), lhs.type == .vector, threshold.isFinite, let comparison = AlertRule.Comparison(symbol: op.rawValue) {
            return (lhs, comparison, threshold)
        }
        let flipped: [String: String] = [">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="]
        if let threshold = literal(lhs), rhs.type == .vector, threshold.isFinite, let symbol = flipped[op.rawValue],
            let comparison = AlertRule.Comparison(symbol: symbol)
        {
            return (rhs, comparison, threshold)
        }
        return nil
    }

    /// Two alerts of one name: one rule with both levels when they differ only in level.
    static func merge(_ first: AlertRule, _ second: AlertRule) -> AlertRule? {
        guard first.expression == second.expression, first.comparison == second.comparison, first.forSeconds == second.forSeconds,
            first.keepFiringSeconds == second.keepFiringSeconds, first.labels == second.labels
        else { return nil }
        var merged = first
        if first.critThreshold == nil, first.warnThreshold != nil, let crit = second.critThreshold, second.warnThreshold == nil {
            merged.critThreshold = crit
        } else if first.warnThreshold == nil, first.critThreshold != nil, let warn = second.warnThreshold, second.critThreshold == nil {
            merged.warnThreshold = warn
        } else {
            return nil
        }
        // The texts must say the same, but for each level's own threshold (an export writes Steward's {{threshold}}
        // as the number).
        func same(_ a: String, _ b: String) -> String? {
            if a == b { return a }
            guard let x = first.warnThreshold ?? first.critThreshold, let y = second.warnThreshold ?? second.critThreshold else { return nil }
            let aa = a.replacingOccurrences(of: PromQL.formatNumber(x), with: "{{threshold}}")
            return aa == b.replacingOccurrences(of: PromQL.formatNumber(y), with: "{{threshold}}") ? aa : nil
        }
        guard let summary = same(first.summary, second.summary), let description = same(first.description, second.description),
            first.runbookURL == second.runbookURL
        else { return nil }
        merged.summary = summary
        merged.description = description
        // The levels must be in order for the comparison (a warning before a critical).
        return merged.problems(knownSources: []).keys.contains("crit_threshold") ? nil : merged
    }

    /// A Prometheus duration (`0`, `0s`, `5m`, `1h30m`, `500ms`, `1y`); a bare number of seconds is refused as Prometheus
    /// refuses it.
    static func duration(_ value: Any?, field: String) throws -> Int {
        guard let value else { return 0 }
        let text = "\(value)"
        guard let milliseconds = PromQL.duration(text) else {
            if Int(text) != nil {
                throw Unsupported(description: "\(field): \(text) has no unit; write \(text)s (Prometheus refuses a bare number too)")
            }
            throw Unsupported(description: "\(field): \"\(text)\" is not a duration such as 5m, 1h30m or 0s")
        }
        guard milliseconds <= Int64(AlertRule.longestFor) * 1000 else { throw Unsupported(description: "\(field): Steward takes at most 366 days") }
        if milliseconds % 1000 != 0 { return Int((milliseconds + 999) / 1000) }
        return Int(milliseconds / 1000)
    }

    /// What an imported expression cannot find in Steward: labels its series never have, and metrics no host collects.
    /// - `labelsOf`: the labels stored series of a metric have (nil when none is stored).
    /// - `collected`: whether some host's metrics allow-list keeps a metric.
    public static func reachability(
        _ expression: String, labelsOf: (String) -> Set<String>?, collected: (String) -> Bool
    ) -> [String] {
        guard let parsed = try? PromQL.parse(expression) else { return [] }
        var warnings: [String] = []
        var seen: Set<String> = []
        for selector in PromQLRule.selectors(in: parsed) {
            let name = selector.name ?? selector.matchers.first { $0.name == "__name__" && $0.op == .equal }?.value
            if let name, !name.hasPrefix("steward_"), !collected(name), seen.insert("metric " + name).inserted {
                warnings.append(
                    "\(name) is not collected: no host's metrics allow-list keeps it, so the selector finds nothing until it is added on a host's page"
                )
            }
            for matcher in selector.matchers where matcher.name != "__name__" && !matcher.matches("") {
                guard !["host", "instance"].contains(matcher.name), seen.insert("label " + matcher.name).inserted else { continue }
                if matcher.name == "job" {
                    warnings.append(
                        "Steward's series have no job label, so \(matcher) matches nothing; remove it (Steward's instance and host labels are the host's name)"
                    )
                } else if let name, let labels = labelsOf(name), !labels.contains(matcher.name) {
                    warnings.append("no stored \(name) series has a \(matcher.name) label, so \(matcher) matches nothing")
                }
            }
        }
        return warnings
    }
}
