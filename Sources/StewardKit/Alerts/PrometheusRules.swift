import Foundation

/// Steward's metric and PromQL rules as a Prometheus rule file, for teams that also run Prometheus on the same
/// node_exporters.
/// - The series Steward derives (`steward_host_*`) come first as recording rules over node_exporter's series, so every
///   exported alert can fire in Prometheus.
/// - Each level becomes its own alerting rule with a `severity` label, with the comparison exactly; a PromQL condition
///   rule is one alert at its severity.
/// - Each alert carries the Steward rule's name as the `steward_rule` annotation, so importing the file again finds
///   the rules it came from instead of adding copies.
/// - Clear levels (hysteresis), no-data policies and group or tag scopes have no Prometheus form; the file says so in
///   comments. Rules on Steward's own records (jobs, backups, logs) are left out.
public enum PrometheusRules {
    /// The derived series as PromQL over node_exporter's series (the same figures the collector computes).
    public static let recordingRules: [(record: String, expr: String)] = [
        (HostSummary.up, "up"),
        (HostSummary.scrapeSeconds, "scrape_duration_seconds"),
        (
            HostSummary.cpuPercent,
            #"100 * (1 - sum without (cpu, mode) (rate(node_cpu_seconds_total{mode="idle"}[1m])) / sum without (cpu, mode) (rate(node_cpu_seconds_total{mode!~"guest|guest_nice"}[1m])))"#
        ),
        (HostSummary.memoryPercent, "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"),
        (HostSummary.swapPercent, "100 * (node_memory_SwapTotal_bytes - node_memory_SwapFree_bytes) / clamp_min(node_memory_SwapTotal_bytes, 1)"),
        (
            HostSummary.filesystemPercent,
            #"max without (device, fstype, mountpoint) (ceil(100 * (node_filesystem_size_bytes{fstype!~"\#(pseudoTypes)"} - node_filesystem_free_bytes) / (node_filesystem_size_bytes - node_filesystem_free_bytes + node_filesystem_avail_bytes)))"#
        ),
        (HostSummary.loadPerCore, #"node_load1 / count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})"#),
        (
            HostSummary.networkBytes,
            #"sum without (device) (rate(node_network_receive_bytes_total{device!="lo"}[1m])) + sum without (device) (rate(node_network_transmit_bytes_total{device!="lo"}[1m]))"#
        ),
        (
            HostSummary.diskBytes,
            "sum without (device) (rate(node_disk_read_bytes_total[1m])) + sum without (device) (rate(node_disk_written_bytes_total[1m]))"
        ),
    ]

    static var pseudoTypes: String { ProcCollector.pseudoFilesystems.sorted().joined(separator: "|") }

    public static func export(_ rules: [AlertRule]) -> String {
        var text = """
            # Exported from Steward. Check with: promtool check rules FILE
            # Clear levels, no-data policies and group/tag scopes do not exist in Prometheus and are not exported;
            # host scopes become a host=~"..." matcher, so the scrape config must set a `host` label (the host's name).
            # The steward_host_* series Steward derives are recorded from node_exporter's series first.
            groups:
              - name: steward-derived
                rules:

            """
        for (record, expr) in recordingRules {
            text += "      - record: \(record)\n        expr: \(quote(expr))\n"
        }
        text += "  - name: steward\n    rules:\n"
        var alerts = ""
        for rule in rules where rule.enabled { alerts += alertEntries(rule) }
        return text + (alerts.isEmpty ? "      []\n" : alerts)
    }

    /// A rule's alerting rules, or "" for a rule Prometheus cannot evaluate.
    /// Each level's alert expression: `value OP threshold`, or a condition rule's expression as it is.
    public static func alertExpressions(_ rule: AlertRule) -> [(severity: String, threshold: Double?, expr: String)] {
        guard let value = valueExpression(rule) else { return [] }
        var levels: [(String, Double?)] = [("warning", rule.warnThreshold), ("critical", rule.critThreshold)].filter { $0.1 != nil }
        if levels.isEmpty, rule.source == PromQLRule.source { levels = [(rule.severity.rawValue, nil)] }
        return levels.map { severity, threshold in
            guard let threshold else { return (severity, nil, PromQL.format(value)) }
            var lhs = value
            if case .binary(let op, _, _, _, _) = value, op.precedence <= PromQL.BinaryOp.gtr.precedence { lhs = .paren(value) }
            return (severity, threshold, PromQL.format(.binary(binaryOp(rule.comparison), lhs, .number(threshold), returnBool: false, matching: nil)))
        }
    }

    static func alertEntries(_ rule: AlertRule) -> String {
        var text = ""
        for (severity, threshold, expr) in alertExpressions(rule) {
            text += "      - alert: \(quote(alertName(rule.name)))\n"
            text += "        expr: \(quote(expr))\n"
            if rule.forSeconds > 0 { text += "        for: \(PromQL.formatDuration(Int64(rule.forSeconds) * 1000))\n" }
            if rule.keepFiringSeconds > 0 { text += "        keep_firing_for: \(PromQL.formatDuration(Int64(rule.keepFiringSeconds) * 1000))\n" }
            text += "        labels:\n          severity: \(quote(severity))\n"
            for (key, value) in rule.labelPairs where key != "severity" { text += "          \(key): \(quote(value))\n" }
            text += "        annotations:\n"
            text += "          summary: \(quote(template(rule, rule.summary, severity: severity, threshold: threshold)))\n"
            if !rule.description.isEmpty {
                text += "          description: \(quote(template(rule, rule.description, severity: severity, threshold: threshold)))\n"
            }
            if !rule.runbookURL.isEmpty { text += "          runbook_url: \(quote(rule.runbookURL))\n" }
            text += "          \(PrometheusImport.ruleNameAnnotation): \(quote(rule.name))\n"
        }
        return text
    }

    static func binaryOp(_ comparison: AlertRule.Comparison) -> PromQL.BinaryOp {
        PromQL.BinaryOp(rawValue: comparison.symbol) ?? .gte
    }

    /// What the rule compares, as PromQL; nil for rules on Steward's own records.
    static func valueExpression(_ rule: AlertRule) -> PromQL.Expr? {
        if rule.source == PromQLRule.source { return try? PromQL.parse(rule.expression) }
        guard rule.source == "metric" else { return nil }
        var matchers = rule.matcherPairs.map { "\($0.0)=\(PromQL.quoted($0.1))" }
        if !rule.scopeHosts.isEmpty {
            let names = rule.scopeHosts.map { NSRegularExpression.escapedPattern(for: $0) }.joined(separator: "|")
            matchers.append("host=~\(PromQL.quoted(names))")
        }
        let selector = rule.metric + (matchers.isEmpty ? "" : "{" + matchers.joined(separator: ", ") + "}")
        let window = "[" + PromQL.formatDuration(Int64(rule.windowSeconds) * 1000) + "]"
        let text: String
        switch rule.aggregation {
        case .avg: text = "avg_over_time(\(selector)\(window))"
        case .min: text = "min_over_time(\(selector)\(window))"
        case .max: text = "max_over_time(\(selector)\(window))"
        case .last: text = "last_over_time(\(selector)\(window))"
        case .rate: text = "rate(\(selector)\(window))"
        case .predictLinear: text = "predict_linear(\(selector)\(window), \(rule.horizonSeconds))"
        }
        return try? PromQL.parse(text)
    }

    /// "Filesystem almost full" → "FilesystemAlmostFull" (alert names must be identifiers).
    static func alertName(_ name: String) -> String {
        let words = name.split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }
        var result = words.map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        if result.isEmpty || result.first!.isNumber { result = "Steward" + result }
        return result
    }

    /// Steward's `{{host}}`, `{{value}}`, `{{threshold}}`, `{{severity}}` and `{{rule}}` in Prometheus's template
    /// language; Prometheus's own actions stay as they are.
    static func template(_ rule: AlertRule, _ text: String, severity: String, threshold: Double?) -> String {
        text.replacingOccurrences(of: "{{host}}", with: "{{ $labels.host }}").replacingOccurrences(of: "{{value}}", with: "{{ $value | humanize }}")
            .replacingOccurrences(of: "{{threshold}}", with: threshold.map(PromQL.formatNumber) ?? "")
            .replacingOccurrences(of: "{{severity}}", with: severity).replacingOccurrences(of: "{{rule}}", with: rule.name)
    }

    /// A double-quoted YAML scalar (JSON string syntax is valid YAML).
    static func quote(_ text: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
        let array = data.map { String(decoding: $0, as: UTF8.self) } ?? "[\"\"]"
        return String(array.dropFirst().dropLast())
    }
}
