import Foundation
import GRDB

/// A service level objective: an SLI, the share of good events it must reach over a window, and the hosts it covers.
public struct SLO: Sendable, Equatable {
    /// Where good and total events come from.
    public enum SLIKind: String, Sendable, CaseIterable {
        /// A check's runs: a success is a good event.
        case probe
        /// Two PromQL queries: good (or bad) events over total events.
        case ratio
        /// A Prometheus histogram: requests in the bucket at the threshold over all requests.
        case latency
        /// steward_host_up of the covered hosts: each scrape that found a host up is a good event.
        case availability
    }
    /// What the events query of a ratio SLI counts.
    public enum RatioCounts: String, Sendable, CaseIterable { case good, bad }
    public enum Window: String, Sendable, CaseIterable {
        case days7 = "7d"
        case days28 = "28d"
        case days30 = "30d"
        case month

        /// The length of a rolling window, in ms; nil for the calendar month.
        public var rollingMilliseconds: Int64? {
            switch self {
            case .days7: 7 * 86_400_000
            case .days28: 28 * 86_400_000
            case .days30: 30 * 86_400_000
            case .month: nil
            }
        }
        public var title: String { self == .month ? "calendar month" : "rolling \(rawValue.dropLast()) days" }
    }

    public var id: Int64 = 0
    public var name = ""
    public var description = ""
    public var sli = SLIKind.probe
    public var checkID: Int64?
    public var ratioCounts = RatioCounts.good
    /// ratio: the good (or bad) events, `{{.window}}` standing for the range.
    public var eventsQuery = ""
    /// ratio: all events.
    public var totalQuery = ""
    /// latency: the histogram's name, without `_bucket`.
    public var histogram = ""
    /// latency: PromQL label matchers for the histogram's series, e.g. `job="api",handler="/pay"`.
    public var matchers = ""
    /// latency: requests at or under this many seconds are good; must be one of the histogram's `le` bounds.
    public var thresholdSeconds: Double?
    /// The target share of good events, as a percentage (99.9).
    public var objective = 99.9
    public var window = Window.days30
    public var scopeHosts: [String] = []
    public var scopeGroups: [String] = []
    /// Burn-rate alerts (page and ticket) on or off.
    public var alerting = true
    public var alertRuleID: Int64?
    public var createdAt: Int64 = 0
    public var updatedAt: Int64 = 0
    public var updatedBy = ""

    public init() {}

    init(row: Row) {
        id = row["id"]
        name = row["name"]
        description = row["description"]
        sli = SLIKind(rawValue: row["sli"]) ?? .probe
        checkID = row["check_id"]
        ratioCounts = RatioCounts(rawValue: row["ratio_counts"]) ?? .good
        eventsQuery = row["events_query"]
        totalQuery = row["total_query"]
        histogram = row["histogram"]
        matchers = row["matchers"]
        thresholdSeconds = row["threshold_seconds"]
        objective = row["objective"]
        window = Window(rawValue: row["time_window"]) ?? .days30
        scopeHosts = AlertRuleStore.list(row["scope_hosts"])
        scopeGroups = AlertRuleStore.list(row["scope_groups"])
        alerting = row["alerting"]
        alertRuleID = row["alert_rule_id"]
        createdAt = row["created_at"]
        updatedAt = row["updated_at"]
        updatedBy = row["updated_by"]
    }

    /// The share of events allowed to be bad (0.001 for 99.9 %).
    public var budgetRatio: Double { (100 - objective) / 100 }

    /// Whether the SLO covers a host: named, or in a named group; an SLO naming neither covers every host.
    public func covers(_ host: Host) -> Bool {
        if scopeHosts.isEmpty && scopeGroups.isEmpty { return true }
        return scopeHosts.contains(host.name) || !Set(scopeGroups).isDisjoint(with: host.groups)
    }

    /// A query with `{{.window}}` (Sloth's placeholder) or `$window` put to a range.
    public static func expand(_ query: String, window: String) -> String {
        query.replacingOccurrences(of: "{{.window}}", with: window).replacingOccurrences(of: "{{ .window }}", with: window)
            .replacingOccurrences(of: "$window", with: window)
    }

    /// The latency SLI as a ratio: requests in the threshold's bucket over all requests.
    public var latencyQueries: (good: String, total: String) {
        let extra = matchers.trimmingCharacters(in: .whitespaces)
        let le = thresholdSeconds.map(PromQL.formatNumber) ?? "?"
        let bucketMatchers = (extra.isEmpty ? "" : extra + ",") + "le=\"\(le)\""
        return (
            "sum(rate(\(histogram)_bucket{\(bucketMatchers)}[{{.window}}]))",
            "sum(rate(\(histogram)_count\(extra.isEmpty ? "" : "{\(extra)}")[{{.window}}]))"
        )
    }

    /// Whether an assembled latency query is still one sum of one rate of one selector.
    static func latencyShape(_ query: String) -> Bool {
        guard let expr = try? PromQL.parse(expand(query, window: "5m")),
            case .aggregate("sum", nil, nil, let inner) = expr, case .call("rate", let arguments) = inner, arguments.count == 1,
            case .selector = arguments[0]
        else { return false }
        return true
    }

    static func queryProblem(_ query: String, what: String) -> String? {
        let text = query.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { return "write the PromQL of the \(what), e.g. sum(rate(http_requests_total{job=\"api\"}[{{.window}}]))" }
        guard text.utf8.count <= 4000 else { return "at most 4000 bytes" }
        do {
            let parsed = try PromQL.parse(expand(text, window: "5m"))
            guard parsed.type == .vector || parsed.type == .scalar else {
                return "the query gives a \(parsed.type.rawValue); it must give one number (wrap it in sum(...))"
            }
        } catch {
            return "\(error)"
        }
        return nil
    }

    /// Field errors; empty when the SLO can be saved. `checks` and `hosts`/`groups` are what exists.
    public func problems(checks: Set<Int64>, hosts: Set<String>, groups: Set<String>) -> [String: String] {
        var errors: [String: String] = [:]
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed != name || name.count > 100
            || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_. ".contains($0)) })
        {
            errors["name"] = "1 to 100 letters, digits, spaces and - _ . (e.g. checkout-availability)"
        }
        if description.count > 1000 { errors["description"] = "at most 1000 characters" }
        switch sli {
        case .probe:
            if let checkID, checks.contains(checkID) {
            } else {
                errors["check"] = "choose the check whose runs are the events"
            }
        case .ratio:
            if let problem = Self.queryProblem(eventsQuery, what: ratioCounts == .good ? "good events" : "bad events") {
                errors["events_query"] = problem
            }
            if let problem = Self.queryProblem(totalQuery, what: "total events") { errors["total_query"] = problem }
        case .latency:
            if histogram.isEmpty || !histogram.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") })
                || histogram.first?.isNumber == true
            {
                errors["histogram"] = "the histogram's metric name without _bucket, e.g. http_request_duration_seconds"
            } else if histogram.hasSuffix("_bucket") || histogram.hasSuffix("_count") {
                errors["histogram"] =
                    "leave out the _bucket or _count suffix: \(histogram.replacingOccurrences(of: "_bucket", with: "").replacingOccurrences(of: "_count", with: ""))"
            }
            if !matchers.isEmpty {
                do {
                    _ = try PromQL.parse("x{\(matchers)}")
                } catch {
                    errors["matchers"] = "label matchers as PromQL writes them inside braces, e.g. job=\"api\",code!~\"5..\""
                }
            }
            if let threshold = thresholdSeconds, threshold > 0, threshold.isFinite {
            } else {
                errors["threshold_seconds"] = "a latency in seconds that is one of the histogram's bucket bounds (le), e.g. 0.3"
            }
            // The queries as they will run: matchers that close the braces early do not get past this.
            if errors["histogram"] == nil, errors["matchers"] == nil, errors["threshold_seconds"] == nil {
                let (good, total) = latencyQueries
                if let problem = Self.queryProblem(good, what: "good events") ?? Self.queryProblem(total, what: "total events") {
                    errors["matchers"] = "the matchers do not make a query: \(problem)"
                } else if Self.latencyShape(good) == false || Self.latencyShape(total) == false {
                    errors["matchers"] = "label matchers only, e.g. job=\"api\",handler=\"/pay\""
                }
            }
        case .availability:
            break
        }
        if !(objective > 0 && objective < 100) || !objective.isFinite {
            errors["objective"] = "a percentage above 0 and below 100, e.g. 99.9 (100 % leaves no error budget)"
        } else if objective < 50 {
            errors["objective"] = "an objective under 50 % lets most events fail; write it as the good share, e.g. 99.5"
        }
        if let unknown = scopeHosts.first(where: { !hosts.contains($0) }) { errors["hosts"] = "there is no host named \"\(unknown)\"" }
        if let unknown = scopeGroups.first(where: { !groups.contains($0) }) { errors["groups"] = "there is no group named \"\(unknown)\"" }
        if sli == .availability, scopeHosts.isEmpty, scopeGroups.isEmpty {
            errors["hosts"] = "name the hosts or groups whose availability this is"
        }
        return errors
    }
}
