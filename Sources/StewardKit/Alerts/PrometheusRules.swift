import Foundation

/// Metric rules as a Prometheus rule file, for teams that also run Prometheus on the same node_exporters. Each
/// threshold becomes its own alerting rule with a `severity` label. Clear levels (hysteresis), no-data policies and
/// group or tag scopes have no Prometheus equivalent; the file says so in comments. State rules are left out.
public enum PrometheusRules {
    public static func export(_ rules: [AlertRule]) -> String {
        var text = """
            # Exported from Steward. Check with: promtool check rules FILE
            # Clear levels, no-data policies and group/tag scopes do not exist in Prometheus and are not exported;
            # host scopes become a host=~"..." matcher, so the scrape config must set a `host` label.
            groups:
              - name: steward
                rules:

            """
        let metricRules = rules.filter { $0.source == "metric" && $0.enabled }
        if metricRules.isEmpty { text = text.replacingOccurrences(of: "    rules:\n", with: "    rules: []\n") }
        for rule in metricRules {
            for (severity, threshold) in [("warning", rule.warnThreshold), ("critical", rule.critThreshold)] {
                guard let threshold else { continue }
                text += "      - alert: \(quote(alertName(rule.name)))\n"
                text += "        expr: \(quote(expression(rule, threshold: threshold)))\n"
                if rule.forSeconds > 0 { text += "        for: \(rule.forSeconds)s\n" }
                if rule.keepFiringSeconds > 0 { text += "        keep_firing_for: \(rule.keepFiringSeconds)s\n" }
                text += "        labels:\n          severity: \(quote(severity))\n"
                for (key, value) in rule.labelPairs where key != "severity" { text += "          \(key): \(quote(value))\n" }
                text += "        annotations:\n"
                text += "          summary: \(quote(template(rule.summary, threshold: threshold)))\n"
                if !rule.description.isEmpty { text += "          description: \(quote(template(rule.description, threshold: threshold)))\n" }
                if !rule.runbookURL.isEmpty { text += "          runbook_url: \(quote(rule.runbookURL))\n" }
            }
        }
        return text
    }

    /// "Filesystem almost full" → "FilesystemAlmostFull" (alert names must be identifiers).
    static func alertName(_ name: String) -> String {
        let words = name.split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }
        var result = words.map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        if result.isEmpty || result.first!.isNumber { result = "Steward" + result }
        return result
    }

    static func expression(_ rule: AlertRule, threshold: Double) -> String {
        var matchers = rule.matcherPairs.map { "\($0.0)=\"\(PrometheusText.escapeLabelValue($0.1))\"" }
        if !rule.scopeHosts.isEmpty {
            let names = rule.scopeHosts.map { NSRegularExpression.escapedPattern(for: $0) }.joined(separator: "|")
            matchers.append("host=~\"\(PrometheusText.escapeLabelValue(names))\"")
        }
        let selector = rule.metric + (matchers.isEmpty ? "" : "{" + matchers.joined(separator: ",") + "}") + "[\(rule.windowSeconds)s]"
        let value: String
        switch rule.aggregation {
        case .avg: value = "avg_over_time(\(selector))"
        case .min: value = "min_over_time(\(selector))"
        case .max: value = "max_over_time(\(selector))"
        case .last: value = "last_over_time(\(selector))"
        case .rate: value = "rate(\(selector))"
        case .predictLinear: value = "predict_linear(\(selector), \(rule.horizonSeconds))"
        }
        return value + (rule.comparison == .above ? " >= " : " <= ") + number(threshold)
    }

    static func number(_ value: Double) -> String { value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value) }

    /// Steward's `{{host}}` and `{{value}}` in Prometheus's template language.
    static func template(_ text: String, threshold: Double) -> String {
        text.replacingOccurrences(of: "{{host}}", with: "{{ $labels.host }}").replacingOccurrences(of: "{{value}}", with: "{{ $value | humanize }}")
            .replacingOccurrences(of: "{{threshold}}", with: number(threshold))
    }

    /// A double-quoted YAML scalar (JSON string syntax is valid YAML).
    static func quote(_ text: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
        let array = data.map { String(decoding: $0, as: UTF8.self) } ?? "[\"\"]"
        return String(array.dropFirst().dropLast())
    }
}
