import Foundation

// The alerts area's API bodies: what each reply holds (Encodable, snake_case keys) and what each request may send
// (APIInput: every field optional, wrong types reported per field). The schemas in APISchemas+Alerts describe these.

/// An alert rule as the API shows it.
struct AlertRuleResource: Codable, Sendable {
    let id: Int64
    let name: String
    let builtin: Nullable<String>
    let enabled: Bool
    let source, metric, matchers, logQuery, expression, severity, aggregation: String
    let windowSeconds, horizonSeconds: Int
    let comparison: String
    let warnThreshold, warnClear, critThreshold, critClear: Nullable<Double>
    let forSeconds, keepFiringSeconds: Int
    let noData: String
    let scopeHosts, scopeGroups, scopeTags: [String]
    let labels, summary, description, runbookUrl, route: String
    let repeatSeconds: Int
    let updatedAt, updatedBy: String
    let links: ResourceLinks

    init(_ rule: AlertRule) {
        id = rule.id
        name = rule.name
        builtin = Nullable(rule.builtin)
        enabled = rule.enabled
        source = rule.source
        metric = rule.metric
        matchers = rule.matchers
        logQuery = rule.logQuery
        expression = rule.expression
        severity = rule.severity.rawValue
        aggregation = rule.aggregation.rawValue
        windowSeconds = rule.windowSeconds
        horizonSeconds = rule.horizonSeconds
        comparison = rule.comparison.rawValue
        warnThreshold = Nullable(rule.warnThreshold)
        warnClear = Nullable(rule.warnClear)
        critThreshold = Nullable(rule.critThreshold)
        critClear = Nullable(rule.critClear)
        forSeconds = rule.forSeconds
        keepFiringSeconds = rule.keepFiringSeconds
        noData = rule.noData.rawValue
        scopeHosts = rule.scopeHosts
        scopeGroups = rule.scopeGroups
        scopeTags = rule.scopeTags
        labels = rule.labels
        summary = rule.summary
        description = rule.description
        runbookUrl = rule.runbookURL
        route = rule.route
        repeatSeconds = rule.repeatSeconds
        updatedAt = RFC3339.string(rule.updatedAt)
        updatedBy = rule.updatedBy
        links = ResourceLinks(self: "/api/v1/alerts/rules/\(rule.id)", page: "/alerts/rules/\(rule.id)")
    }
}

/// `self` (the API address) and `page` (the HTML page) of a resource.
struct ResourceLinks: Codable, Sendable {
    let `self`: String
    let page: String
}

/// The fields a client may send to create or change a rule; fields left out keep their value. `id` and `builtin`
/// are accepted (a rule read from the API can be sent back) and ignored.
struct AlertRuleInput: APIInput {
    var id: Patch<JSONValue> = .absent
    var builtin: Patch<JSONValue> = .absent
    var name: Patch<String> = .absent
    var enabled: Patch<Bool> = .absent
    var source: Patch<String> = .absent
    var metric: Patch<String> = .absent
    var logQuery: Patch<String> = .absent
    var expression: Patch<String> = .absent
    var severity: Patch<AlertState.Severity> = .absent
    var matchers: Patch<String> = .absent
    var aggregation: Patch<AlertRule.Aggregation> = .absent
    var windowSeconds: Patch<Int> = .absent
    var horizonSeconds: Patch<Int> = .absent
    var comparison: Patch<AlertRule.Comparison> = .absent
    var warnThreshold: Patch<Double> = .absent
    var warnClear: Patch<Double> = .absent
    var critThreshold: Patch<Double> = .absent
    var critClear: Patch<Double> = .absent
    var forSeconds: Patch<Int> = .absent
    var keepFiringSeconds: Patch<Int> = .absent
    var noData: Patch<AlertRule.NoData> = .absent
    var scopeHosts: Patch<[String]> = .absent
    var scopeGroups: Patch<[String]> = .absent
    var scopeTags: Patch<[String]> = .absent
    var labels: Patch<String> = .absent
    var summary: Patch<String> = .absent
    var description: Patch<String> = .absent
    var runbookUrl: Patch<String> = .absent
    var route: Patch<String> = .absent
    var repeatSeconds: Patch<Int> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, builtin, name, enabled, source, metric, matchers, aggregation, comparison, labels, summary, description, route, expression
        case severity
        case windowSeconds = "window_seconds"
        case logQuery = "log_query"
        case horizonSeconds = "horizon_seconds"
        case warnThreshold = "warn_threshold"
        case warnClear = "warn_clear"
        case critThreshold = "crit_threshold"
        case critClear = "crit_clear"
        case forSeconds = "for_seconds"
        case keepFiringSeconds = "keep_firing_seconds"
        case noData = "no_data"
        case scopeHosts = "scope_hosts"
        case scopeGroups = "scope_groups"
        case scopeTags = "scope_tags"
        case runbookUrl = "runbook_url"
        case repeatSeconds = "repeat_seconds"
    }

    /// Copy what was sent onto a rule. Null is accepted only for the four levels (null: no such level); a null
    /// anywhere else is a wrong field.
    func apply(to rule: inout AlertRule) throws {
        var errors: [String: String] = [:]
        func level(_ field: Patch<Double>, _ write: (Double?) -> Void) {
            if let value = field.orNil { write(value) }
        }
        name.assign(CodingKeys.name.rawValue, &errors) { rule.name = $0 }
        enabled.assign(CodingKeys.enabled.rawValue, &errors) { rule.enabled = $0 }
        source.assign(CodingKeys.source.rawValue, &errors) { rule.source = $0 }
        metric.assign(CodingKeys.metric.rawValue, &errors) { rule.metric = $0 }
        matchers.assign(CodingKeys.matchers.rawValue, &errors) { rule.matchers = $0 }
        logQuery.assign(CodingKeys.logQuery.rawValue, &errors) { rule.logQuery = $0 }
        expression.assign(CodingKeys.expression.rawValue, &errors) { rule.expression = $0 }
        severity.assign(CodingKeys.severity.rawValue, &errors) { rule.severity = $0 }
        aggregation.assign(CodingKeys.aggregation.rawValue, &errors) { rule.aggregation = $0 }
        windowSeconds.assign(CodingKeys.windowSeconds.rawValue, &errors) { rule.windowSeconds = $0 }
        horizonSeconds.assign(CodingKeys.horizonSeconds.rawValue, &errors) { rule.horizonSeconds = $0 }
        comparison.assign(CodingKeys.comparison.rawValue, &errors) { rule.comparison = $0 }
        level(warnThreshold) { rule.warnThreshold = $0 }
        level(warnClear) { rule.warnClear = $0 }
        level(critThreshold) { rule.critThreshold = $0 }
        level(critClear) { rule.critClear = $0 }
        forSeconds.assign(CodingKeys.forSeconds.rawValue, &errors) { rule.forSeconds = $0 }
        keepFiringSeconds.assign(CodingKeys.keepFiringSeconds.rawValue, &errors) { rule.keepFiringSeconds = $0 }
        noData.assign(CodingKeys.noData.rawValue, &errors) { rule.noData = $0 }
        scopeHosts.assign(CodingKeys.scopeHosts.rawValue, &errors) { rule.scopeHosts = $0 }
        scopeGroups.assign(CodingKeys.scopeGroups.rawValue, &errors) { rule.scopeGroups = $0 }
        scopeTags.assign(CodingKeys.scopeTags.rawValue, &errors) { rule.scopeTags = $0 }
        labels.assign(CodingKeys.labels.rawValue, &errors) { rule.labels = $0 }
        summary.assign(CodingKeys.summary.rawValue, &errors) { rule.summary = $0 }
        description.assign(CodingKeys.description.rawValue, &errors) { rule.description = $0 }
        runbookUrl.assign(CodingKeys.runbookUrl.rawValue, &errors) { rule.runbookURL = $0 }
        route.assign(CodingKeys.route.rawValue, &errors) { rule.route = $0 }
        repeatSeconds.assign(CodingKeys.repeatSeconds.rawValue, &errors) { rule.repeatSeconds = $0 }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }
}

extension AlertRule.Aggregation: APIChoice {}
extension AlertRule.Comparison: APIChoice {}
extension AlertRule.NoData: APIChoice {}
extension AlertState.Severity: APIChoice {}
extension NotificationChannel.Kind: APIChoice {}
extension NotificationChannel.Security: APIChoice {}

/// An alert that is not normal, as `GET /api/v1/alerts` lists it.
struct LiveAlertResource: Codable, Sendable {
    let ruleId: Int64
    let rule: String
    let hostId: Int64
    let host, state: String
    let severity: Nullable<String>
    let value: Nullable<Double>
    let since: String
    let detail: Nullable<String>
    let summary, description, runbookUrl: String
    /// The labels of the series that decided (PromQL rules) or of the window pair that fired (SLO rules).
    let labels: String

    init(rule alertRule: AlertRule, host alertHost: Host, state alertState: AlertState) {
        ruleId = alertRule.id
        rule = alertRule.name
        hostId = alertHost.id
        host = alertHost.name
        state = alertState.phase.rawValue
        severity = Nullable(alertState.severity?.rawValue)
        value = Nullable(alertState.value.flatMap { $0.isFinite ? $0 : nil })
        since = RFC3339.string(milliseconds: alertState.since) ?? ""
        detail = Nullable(alertState.detail)
        summary = AlertText.render(alertRule.summary, rule: alertRule, hostName: alertHost.name, state: alertState)
        description = AlertText.render(alertRule.description, rule: alertRule, hostName: alertHost.name, state: alertState)
        runbookUrl = alertRule.runbookURL
        labels = alertState.labels
    }
}

/// One state change of one rule on one host.
struct AlertHistoryEntry: Codable, Sendable {
    let id, ruleId: Int64
    let rule, host, from, to: String
    let severity: Nullable<String>
    /// The value that made the change; null when it was not a finite number.
    let value: Nullable<Double>
    /// When, as RFC 3339; the page formats `atMilliseconds` instead, which the API does not write.
    let at: String
    let detail: Nullable<String>
    var atMilliseconds: Int64 = 0

    enum CodingKeys: String, CodingKey {
        case id, rule, host, from, to, severity, value, at, detail, ruleId
    }

    init(
        id: Int64, ruleId: Int64, rule: String, host: String, from: String, to: String, severity: String?, value: Double?, atMilliseconds: Int64,
        detail: String?
    ) {
        self.id = id
        self.ruleId = ruleId
        self.rule = rule
        self.host = host
        self.from = from
        self.to = to
        self.severity = Nullable(severity)
        self.value = Nullable(value.flatMap { $0.isFinite ? $0 : nil })
        at = RFC3339.string(milliseconds: atMilliseconds) ?? ""
        self.detail = Nullable(detail)
        self.atMilliseconds = atMilliseconds
    }
}

/// A page of a list with a cursor: `next` is the address of the following page, or null on the last.
struct CursorPage<Item: Encodable & Sendable>: Encodable, Sendable {
    let items: [Item]
    let next: Nullable<String>
}

/// A whole list in one reply.
struct ItemList<Item: Encodable & Sendable>: Encodable, Sendable {
    let items: [Item]
}

extension CursorPage: Decodable where Item: Decodable {}
extension ItemList: Decodable where Item: Decodable {}

/// What importing a Prometheus rule file did: the rules created, and why each other rule was not.
struct AlertImportResult: Codable, Sendable {
    struct Failure: Codable, Sendable {
        let path, alert, message: String
    }
    var created: [AlertRuleResource] = []
    /// Rules in the file that Steward already has exactly as written (an export imported again).
    var unchanged: [String] = []
    /// Imported, but something behaves differently than in Prometheus.
    var warnings: [Failure] = []
    var errors: [Failure] = []
}
