import Foundation
import HTTPTypes

/// SLOs in Sloth's (`prometheus/v1`, and the `PrometheusServiceLevel` resource) and OpenSLO's (`openslo/v1` SLO)
/// formats, for the SLI kinds they share with Steward: event ratios of two queries. Steward's own kinds travel as
/// ratios of queries over their series, so an export means the same thing to Prometheus.
public enum SLOFormats {
    public enum Format: String, Sendable, CaseIterable { case sloth, openslo }

    /// One SLO read from a document, or why one could not be.
    public struct Imported: Sendable {
        public var path: String
        public var slo: SLO?
        public var problem: String?
    }

    // MARK: import

    public static func parse(_ text: String) -> [Imported] {
        let documents: [Any]
        do {
            documents = try YAMLReader.readAll(text, limits: .document)
        } catch {
            return [Imported(path: "", problem: error.message)]
        }
        var found: [Imported] = []
        for (index, document) in documents.enumerated() {
            let at = documents.count > 1 ? "document \(index + 1)" : ""
            guard let map = document as? [String: Any] else {
                found.append(Imported(path: at, problem: "expected a mapping (a Sloth or OpenSLO document)"))
                continue
            }
            let version = (map["version"] as? String) ?? (map["apiVersion"] as? String) ?? ""
            if version == "prometheus/v1" {
                found += sloth(map, service: map["service"] as? String ?? "", at: at)
            } else if version.hasPrefix("sloth.slok.dev/"), let spec = map["spec"] as? [String: Any] {
                found += sloth(spec, service: spec["service"] as? String ?? "", at: at)
            } else if version.hasPrefix("openslo/"), (map["kind"] as? String) == "SLO" {
                found.append(openSLO(map, at: at))
            } else if version.hasPrefix("openslo/") {
                found.append(
                    Imported(
                        path: at,
                        problem: "OpenSLO kind \(map["kind"] as? String ?? "?") is not an SLO; only kind SLO (with its indicator inline) is read"))
            } else {
                found.append(
                    Imported(path: at, problem: "not a Sloth (version: prometheus/v1) or OpenSLO (apiVersion: openslo/v1, kind: SLO) document"))
            }
        }
        return found
    }

    static func join(_ a: String, _ b: String) -> String { a.isEmpty ? b : "\(a).\(b)" }

    /// A name Steward accepts, from Sloth's service and SLO names.
    static func name(_ parts: [String]) -> String {
        let joined = parts.filter { !$0.isEmpty }.joined(separator: "-")
        return String(joined.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "-" }.prefix(100))
    }

    static func sloth(_ spec: [String: Any], service: String, at: String) -> [Imported] {
        guard let slos = spec["slos"] as? [Any] else { return [Imported(path: at, problem: "a Sloth spec lists its SLOs under slos")] }
        return slos.enumerated().map { index, item in
            let path = join(at, "slos[\(index)]")
            guard let entry = item as? [String: Any] else { return Imported(path: path, problem: "an SLO is a mapping with name, objective and sli") }
            var slo = SLO()
            slo.name = name([service, entry["name"] as? String ?? ""])
            slo.description = entry["description"] as? String ?? ""
            guard let objective = number(entry["objective"]) else { return Imported(path: path, problem: "objective: a percentage, e.g. 99.9") }
            slo.objective = objective
            slo.window = .days30
            if let period = entry["time_window"] as? String ?? spec["slo_period"] as? String, let window = SLO.Window(rawValue: period) {
                slo.window = window
            }
            let sli = entry["sli"] as? [String: Any] ?? [:]
            if let events = sli["events"] as? [String: Any] {
                guard let errors = events["error_query"] as? String ?? events["errorQuery"] as? String,
                    let total = events["total_query"] as? String ?? events["totalQuery"] as? String
                else { return Imported(path: path, problem: "sli.events needs error_query and total_query") }
                slo.sli = .ratio
                slo.ratioCounts = .bad
                slo.eventsQuery = errors
                slo.totalQuery = total
            } else if let raw = sli["raw"] as? [String: Any], let ratio = raw["error_ratio_query"] as? String ?? raw["errorRatioQuery"] as? String {
                // An error ratio weighs every minute alike: it is a ratio over a constant total.
                slo.sli = .ratio
                slo.ratioCounts = .bad
                slo.eventsQuery = ratio
                slo.totalQuery = "vector(1)"
            } else if sli["plugin"] != nil {
                return Imported(path: path, problem: "Sloth SLI plugins run inside Sloth; write the SLI as events (error_query and total_query)")
            } else {
                return Imported(path: path, problem: "sli: events (error_query, total_query) or raw (error_ratio_query)")
            }
            if let alerting = entry["alerting"] as? [String: Any] {
                let pageOff = ((alerting["page_alert"] ?? alerting["pageAlert"]) as? [String: Any])?["disable"] as? Bool ?? false
                let ticketOff = ((alerting["ticket_alert"] ?? alerting["ticketAlert"]) as? [String: Any])?["disable"] as? Bool ?? false
                slo.alerting = !(pageOff && ticketOff)
            }
            return Imported(path: path, slo: slo)
        }
    }

    static func number(_ value: Any?) -> Double? {
        if let value = value as? Double { return value }
        if let value = value as? Int { return Double(value) }
        if let value = value as? String { return Double(value) }
        return nil
    }

    /// An OpenSLO query as a per-second rate with Steward's `{{.window}}`: a counter's selector (optionally inside
    /// sum) becomes sum(rate(selector[{{.window}}])); a query with its own ranges stays as it is.
    static func openSLOQuery(_ query: String, counter: Bool) -> Result<String, Problem> {
        let text = query.trimmingCharacters(in: .whitespacesAndNewlines)
        guard counter, !text.contains("[") else { return .success(text) }
        guard let expr = try? PromQL.parse(text) else { return .failure(Problem(status: .unprocessableContent, detail: "the query is not PromQL")) }
        var inner = expr
        if case .aggregate("sum", nil, let grouping, let argument) = expr, grouping == nil { inner = argument }
        guard case .selector = inner else {
            return .failure(
                Problem(
                    status: .unprocessableContent,
                    detail: "a counter query must be a series selector (or sum of one), or a rate with its own range: \(text)"))
        }
        return .success("sum(rate(\(PromQL.format(inner))[{{.window}}]))")
    }

    static func openSLO(_ map: [String: Any], at: String) -> Imported {
        let path = join(at, "spec")
        let metadata = map["metadata"] as? [String: Any] ?? [:]
        guard let spec = map["spec"] as? [String: Any] else { return Imported(path: at, problem: "an OpenSLO SLO has a spec") }
        var slo = SLO()
        slo.name = name([metadata["name"] as? String ?? ""])
        slo.description = spec["description"] as? String ?? ""
        if let method = spec["budgetingMethod"] as? String, method != "Occurrences" {
            return Imported(path: join(path, "budgetingMethod"), problem: "Steward budgets by occurrences (events); \(method) is not read")
        }
        guard let indicator = spec["indicator"] as? [String: Any], let indicatorSpec = indicator["spec"] as? [String: Any] else {
            return Imported(path: join(path, "indicator"), problem: "the indicator must be written inline (indicatorRef is not read)")
        }
        guard let ratio = indicatorSpec["ratioMetric"] as? [String: Any] else {
            return Imported(path: join(path, "indicator.spec"), problem: "only ratioMetric indicators are read (thresholdMetric has no events)")
        }
        let counter = ratio["counter"] as? Bool ?? false
        func query(_ key: String) -> String? {
            ((((ratio[key] as? [String: Any])?["metricSource"] as? [String: Any])?["spec"] as? [String: Any])?["query"]) as? String
        }
        guard let total = query("total"), let events = query("good") ?? query("bad") else {
            return Imported(
                path: join(path, "indicator.spec.ratioMetric"), problem: "needs total and good (or bad), each with metricSource.spec.query")
        }
        if let type = (((ratio["total"] as? [String: Any])?["metricSource"] as? [String: Any])?["type"] as? String), type.lowercased() != "prometheus"
        {
            return Imported(
                path: join(path, "indicator.spec.ratioMetric.total.metricSource.type"), problem: "only Prometheus metric sources are read")
        }
        slo.sli = .ratio
        slo.ratioCounts = query("good") != nil ? .good : .bad
        switch (openSLOQuery(events, counter: counter), openSLOQuery(total, counter: counter)) {
        case (.success(let e), .success(let t)):
            slo.eventsQuery = e
            slo.totalQuery = t
        case (.failure(let problem), _), (_, .failure(let problem)):
            return Imported(path: join(path, "indicator.spec.ratioMetric"), problem: problem.detail)
        }
        guard let objective = (spec["objectives"] as? [Any])?.first as? [String: Any] else {
            return Imported(path: join(path, "objectives"), problem: "an objective with target (0 to 1) or targetPercent")
        }
        if let percent = number(objective["targetPercent"]) {
            slo.objective = percent
        } else if let target = number(objective["target"]) {
            slo.objective = target * 100
        } else {
            return Imported(path: join(path, "objectives[0]"), problem: "target (0 to 1) or targetPercent")
        }
        slo.objective = (slo.objective * 1e9).rounded() / 1e9
        let window = (spec["timeWindow"] as? [Any])?.first as? [String: Any] ?? [:]
        let duration = window["duration"] as? String ?? "28d"
        if window["calendar"] != nil || window["isRolling"] as? Bool == false {
            guard duration == "1M" else {
                return Imported(path: join(path, "timeWindow[0]"), problem: "a calendar window must be a month (duration: 1M)")
            }
            slo.window = .month
        } else if let rolling = SLO.Window(rawValue: duration), rolling != .month {
            slo.window = rolling
        } else {
            return Imported(path: join(path, "timeWindow[0].duration"), problem: "a rolling window of 7d, 28d or 30d, or a calendar month (1M)")
        }
        return Imported(path: at, slo: slo)
    }

    // MARK: export

    /// The SLI as good (or bad) and total queries with `{{.window}}`, whatever its kind.
    static func queries(_ slo: SLO, check: Check?, hostNames: [String]) -> (events: String, total: String, countsBad: Bool) {
        let hostMatcher =
            hostNames.isEmpty ? "" : ",instance=~\(PrometheusRules.quote(hostNames.map(NSRegularExpression.escapedPattern).joined(separator: "|")))"
        switch slo.sli {
        case .ratio: return (slo.eventsQuery, slo.totalQuery, slo.ratioCounts == .bad)
        case .latency:
            let (good, total) = slo.latencyQueries
            return (good, total, false)
        case .probe:
            let selector = "probe_success{check=\(PrometheusRules.quote(check?.name ?? ""))}"
            return ("sum(sum_over_time(\(selector)[{{.window}}]))", "sum(count_over_time(\(selector)[{{.window}}]))", false)
        case .availability:
            let selector = "steward_host_up{" + String(hostMatcher.dropFirst()) + "}"
            return ("sum(sum_over_time(\(selector)[{{.window}}]))", "sum(count_over_time(\(selector)[{{.window}}]))", false)
        }
    }

    /// Sloth's error query from good events: total minus good.
    static func errorQuery(_ q: (events: String, total: String, countsBad: Bool)) -> String {
        q.countsBad ? q.events : "(\(q.total)) - (\(q.events))"
    }

    public static func sloth(_ slos: [(SLO, Check?, [String])], service: String) -> String {
        let quote = PrometheusRules.quote
        var lines = ["version: \"prometheus/v1\"", "service: \(quote(service))", "labels:", "  exported_by: steward", "slos:"]
        for (slo, check, hosts) in slos {
            let q = queries(slo, check: check, hostNames: hosts)
            lines += [
                "  - name: \(quote(slo.name))", "    objective: \(PromQL.formatNumber(slo.objective))", "    description: \(quote(slo.description))",
                "    sli:", "      events:", "        error_query: \(quote(errorQuery(q)))", "        total_query: \(quote(q.total))",
                "    alerting:", "      name: \(quote(alertName(slo.name)))", "      page_alert:", "        disable: \(!slo.alerting)",
                "      ticket_alert:", "        disable: \(!slo.alerting)",
            ]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func alertName(_ name: String) -> String {
        let words = name.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map { $0.prefix(1).uppercased() + $0.dropFirst() }
        let joined = words.joined()
        return (joined.first?.isLetter == true ? joined : "SLO" + joined) + "BudgetBurn"
    }

    /// OpenSLO v1 SLO documents, one per SLO, with the indicator inline. `{{.window}}` becomes 5m: OpenSLO queries
    /// give a value per evaluation, not per window.
    public static func openSLO(_ slos: [(SLO, Check?, [String])], service: String) -> String {
        let quote = PrometheusRules.quote
        var documents: [String] = []
        for (slo, check, hosts) in slos {
            let q = queries(slo, check: check, hostNames: hosts)
            let objective = (slo.objective / 100 * 1e9).rounded() / 1e9
            var lines = [
                "apiVersion: openslo/v1", "kind: SLO", "metadata:", "  name: \(quote(kubernetesName(slo.name)))",
                "  displayName: \(quote(slo.name))", "spec:", "  description: \(quote(slo.description))", "  service: \(quote(service))",
                "  indicator:", "    metadata:", "      name: \(quote(kubernetesName(slo.name) + "-sli"))", "    spec:", "      ratioMetric:",
                "        counter: false", "        \(q.countsBad ? "bad" : "good"):", "          metricSource:", "            type: Prometheus",
                "            spec:", "              query: \(quote(SLO.expand(q.events, window: "5m")))", "        total:", "          metricSource:",
                "            type: Prometheus", "            spec:", "              query: \(quote(SLO.expand(q.total, window: "5m")))",
                "  timeWindow:",
            ]
            if slo.window == .month {
                lines += [
                    "    - duration: 1M", "      isRolling: false", "      calendar:", "        startTime: \"2026-01-01 00:00:00\"",
                    "        timeZone: UTC",
                ]
            } else {
                lines += ["    - duration: \(slo.window.rawValue)", "      isRolling: true"]
            }
            lines += [
                "  budgetingMethod: Occurrences", "  objectives:", "    - displayName: \(quote(slo.name))",
                "      target: \(PromQL.formatNumber(objective))",
            ]
            documents.append(lines.joined(separator: "\n"))
        }
        return documents.joined(separator: "\n---\n") + "\n"
    }

    /// OpenSLO names are Kubernetes names: lowercase letters, digits and -, at most 63.
    static func kubernetesName(_ name: String) -> String {
        let mapped = String(name.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" })
        let trimmed = mapped.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        return String((trimmed.isEmpty ? "slo" : trimmed).prefix(63)).trimmingCharacters(in: CharacterSet(charactersIn: "-"))
    }
}
