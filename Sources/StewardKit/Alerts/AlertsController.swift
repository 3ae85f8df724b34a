import Foundation
import GRDB
import Hummingbird

/// `{{host}}`, `{{value}}`, `{{threshold}}`, `{{severity}}` and `{{rule}}` in a rule's summary and description.
public enum AlertText {
    public static func render(_ template: String, rule: AlertRule, hostName: String, state: AlertState?) -> String {
        let threshold = state?.severity == .critical ? rule.critThreshold : rule.warnThreshold ?? rule.critThreshold
        let value = state?.value.map { MetricUnit.trim($0, digits: abs($0) < 10 ? 2 : 1) } ?? "no data"
        return template.replacingOccurrences(of: "{{host}}", with: hostName).replacingOccurrences(of: "{{value}}", with: value)
            .replacingOccurrences(of: "{{threshold}}", with: threshold.map { MetricUnit.trim($0, digits: 2) } ?? "")
            .replacingOccurrences(of: "{{severity}}", with: state?.severity?.rawValue ?? "")
            .replacingOccurrences(of: "{{rule}}", with: rule.name)
    }
}

/// The alerts page, the rule editor, and the alerts API.
struct AlertsController {
    let evaluator: AlertEvaluator
    let pages: PageRenderer
    let docs: APIDocumentation

    var rules: AlertRuleStore { evaluator.rules }
    var knownSources: Set<String> { Set(evaluator.sources.keys) }

    func addRoutes(to routes: Routes) {
        routes.get("/alerts", .view, use: alertsPage)
        routes.get("/alerts/rules/new", .operate, use: newRulePage)
        routes.post("/alerts/rules/new", .operate, use: createFromPage)
        routes.get("/alerts/rules/:id", .view, use: editRulePage)
        routes.post("/alerts/rules/:id", .operate, use: updateFromPage)
        routes.post("/alerts/rules/:id/delete", .operate, use: deleteFromPage)
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "rule id")
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts", operationID: "listAlerts",
                summary: "Alerts that are pending, firing, recovering, nodata or error",
                tag: "alerts", replies: [.init(status: 200, description: "Live alerts", schema: "AlertList")]))
        routes.get("/api/v1/alerts", .view, use: apiAlerts)
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts/history", operationID: "alertHistory", summary: "State changes, newest first", tag: "alerts",
                parameters: [
                    .init(name: "limit", location: .query, type: "integer", description: "at most this many (default 100)"),
                    .init(name: "cursor", location: .query, type: "integer", description: "the next link's cursor"),
                ],
                replies: [.init(status: 200, description: "History", schema: "AlertHistory")]))
        routes.get("/api/v1/alerts/history", .view, use: apiHistory)
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts/rules", operationID: "listAlertRules", summary: "Every alert rule", tag: "alerts",
                replies: [.init(status: 200, description: "Rules", schema: "AlertRuleList")]))
        routes.get("/api/v1/alerts/rules", .view, use: apiRules)
        docs.add(
            APIOperation(
                method: .post, path: "/api/v1/alerts/rules", operationID: "createAlertRule", summary: "Create a rule", tag: "alerts",
                requestSchema: "AlertRule", replies: [.init(status: 201, description: "The rule", schema: "AlertRule")]))
        routes.post("/api/v1/alerts/rules", .operate, use: apiCreate)
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts/rules/export", operationID: "exportAlertRules",
                summary: "Metric rules as a Prometheus rule file (promtool check rules accepts it)", tag: "alerts",
                replies: [.init(status: 200, description: "YAML", schema: "text", contentType: "application/yaml")]))
        routes.get("/api/v1/alerts/rules/export", .view, use: apiExport)
        docs.add(
            APIOperation(
                method: .post, path: "/api/v1/alerts/rules/import", operationID: "importAlertRules",
                summary: "Create rules from a Prometheus rule file (YAML body): the supported subset, and an error for each other rule",
                tag: "alerts", replies: [.init(status: 200, description: "Created rules and per-rule errors", schema: "AlertImport")]))
        routes.post("/api/v1/alerts/rules/import", .operate, use: apiImport)
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts/rules/{id}", operationID: "getAlertRule", summary: "One rule", tag: "alerts", parameters: [id],
                replies: [.init(status: 200, description: "The rule", schema: "AlertRule")]))
        routes.get("/api/v1/alerts/rules/:id", .view, use: apiRule)
        docs.add(
            APIOperation(
                method: .put, path: "/api/v1/alerts/rules/{id}", operationID: "updateAlertRule",
                summary: "Change a rule (fields left out keep their value)", tag: "alerts", parameters: [id], requestSchema: "AlertRule",
                replies: [.init(status: 200, description: "The rule", schema: "AlertRule")]))
        routes.put("/api/v1/alerts/rules/:id", .operate, use: apiUpdate)
        docs.add(
            APIOperation(
                method: .delete, path: "/api/v1/alerts/rules/{id}", operationID: "deleteAlertRule",
                summary: "Delete a rule (built-in rules can only be paused)", tag: "alerts", parameters: [id],
                replies: [.init(status: 204, description: "Deleted", schema: nil)]))
        routes.delete("/api/v1/alerts/rules/:id", .operate, use: apiDelete)
    }

    static var schemas: [String: Any] {
        [
            "AlertRule": ["type": "object", "properties": Dictionary(uniqueKeysWithValues: fields.map { ($0, ["description": $0]) })],
            "AlertRuleList": ["type": "object", "properties": ["items": ["type": "array", "items": ["$ref": "#/components/schemas/AlertRule"]]]],
            "AlertList": ["type": "object", "properties": ["items": ["type": "array", "items": ["type": "object"]]]],
            "AlertImport": [
                "type": "object",
                "properties": [
                    "created": ["type": "array", "items": ["$ref": "#/components/schemas/AlertRule"]],
                    "errors": ["type": "array", "items": ["type": "object"]],
                ],
            ],
            "AlertHistory": [
                "type": "object", "properties": ["items": ["type": "array", "items": ["type": "object"]], "next": ["type": ["string", "null"]]],
            ],
        ]
    }

    static let fields = [
        "name", "enabled", "source", "metric", "matchers", "aggregation", "window_seconds", "horizon_seconds", "comparison", "warn_threshold",
        "warn_clear", "crit_threshold", "crit_clear", "for_seconds", "keep_firing_seconds", "no_data", "scope_hosts", "scope_groups",
        "scope_tags", "labels", "summary", "description", "runbook_url", "route", "repeat_seconds",
    ]

    // MARK: representation

    static func resource(_ rule: AlertRule) -> [String: Any] {
        [
            "id": rule.id, "name": rule.name, "builtin": orNull(rule.builtin), "enabled": rule.enabled, "source": rule.source,
            "metric": rule.metric, "matchers": rule.matchers, "aggregation": rule.aggregation.rawValue, "window_seconds": rule.windowSeconds,
            "horizon_seconds": rule.horizonSeconds, "comparison": rule.comparison.rawValue, "warn_threshold": orNull(rule.warnThreshold),
            "warn_clear": orNull(rule.warnClear), "crit_threshold": orNull(rule.critThreshold), "crit_clear": orNull(rule.critClear),
            "for_seconds": rule.forSeconds, "keep_firing_seconds": rule.keepFiringSeconds, "no_data": rule.noData.rawValue,
            "scope_hosts": rule.scopeHosts, "scope_groups": rule.scopeGroups, "scope_tags": rule.scopeTags, "labels": rule.labels,
            "summary": rule.summary, "description": rule.description, "runbook_url": rule.runbookURL, "route": rule.route,
            "repeat_seconds": rule.repeatSeconds, "updated_at": RFC3339.string(rule.updatedAt), "updated_by": rule.updatedBy,
            "links": ["self": "/api/v1/alerts/rules/\(rule.id)", "page": "/alerts/rules/\(rule.id)"],
        ]
    }

    /// Copy the fields present in a JSON object onto a rule; wrong types are reported per field.
    static func apply(_ object: [String: Any], to rule: inout AlertRule) throws {
        var errors: [String: String] = [:]
        for key in object.keys where !fields.contains(key) && key != "id" && key != "builtin" {
            errors[key] = "unknown field; accepted: " + fields.joined(separator: ", ")
        }
        func string(_ key: String, _ set: (String) -> Void) {
            guard let value = object[key] else { return }
            if let text = value as? String { set(text) } else { errors[key] = "must be a string" }
        }
        func integer(_ key: String, _ set: (Int) -> Void) {
            guard let value = object[key] else { return }
            if !HostController.isBoolean(value), let number = value as? Int { set(number) } else { errors[key] = "must be an integer" }
        }
        func number(_ key: String, _ set: (Double?) -> Void) {
            guard let value = object[key] else { return }
            if value is NSNull {
                set(nil)
            } else if !HostController.isBoolean(value), let number = value as? Double {
                set(number)
            } else {
                errors[key] = "must be a number or null"
            }
        }
        func list(_ key: String, _ set: ([String]) -> Void) {
            guard let value = object[key] else { return }
            if let items = value as? [String] { set(items) } else { errors[key] = "must be a list of names" }
        }
        func choice<T: RawRepresentable>(_ key: String, _ type: T.Type, _ all: [T], _ set: (T) -> Void) where T.RawValue == String {
            guard let value = object[key] else { return }
            if let text = value as? String, let parsed = T(rawValue: text) {
                set(parsed)
            } else {
                errors[key] = "one of " + all.map(\.rawValue).joined(separator: ", ")
            }
        }
        string("name") { rule.name = $0 }
        if let value = object["enabled"] {
            if HostController.isBoolean(value), let flag = value as? Bool { rule.enabled = flag } else { errors["enabled"] = "must be true or false" }
        }
        string("source") { rule.source = $0 }
        string("metric") { rule.metric = $0 }
        string("matchers") { rule.matchers = $0 }
        choice("aggregation", AlertRule.Aggregation.self, AlertRule.Aggregation.allCases) { rule.aggregation = $0 }
        integer("window_seconds") { rule.windowSeconds = $0 }
        integer("horizon_seconds") { rule.horizonSeconds = $0 }
        choice("comparison", AlertRule.Comparison.self, AlertRule.Comparison.allCases) { rule.comparison = $0 }
        number("warn_threshold") { rule.warnThreshold = $0 }
        number("warn_clear") { rule.warnClear = $0 }
        number("crit_threshold") { rule.critThreshold = $0 }
        number("crit_clear") { rule.critClear = $0 }
        integer("for_seconds") { rule.forSeconds = $0 }
        integer("keep_firing_seconds") { rule.keepFiringSeconds = $0 }
        choice("no_data", AlertRule.NoData.self, AlertRule.NoData.allCases) { rule.noData = $0 }
        list("scope_hosts") { rule.scopeHosts = $0 }
        list("scope_groups") { rule.scopeGroups = $0 }
        list("scope_tags") { rule.scopeTags = $0 }
        string("labels") { rule.labels = $0 }
        string("summary") { rule.summary = $0 }
        string("description") { rule.description = $0 }
        string("runbook_url") { rule.runbookURL = $0 }
        string("route") { rule.route = $0 }
        integer("repeat_seconds") { rule.repeatSeconds = $0 }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }

    // MARK: API

    func loadRule(_ context: StewardRequestContext) throws -> AlertRule {
        guard let id = context.parameters.get("id", as: Int64.self), let rule = try rules.rule(id: id) else {
            throw HTTPError(.notFound, message: "there is no such alert rule")
        }
        return rule
    }

    @Sendable func apiRules(request: Request, context: StewardRequestContext) async throws -> Response {
        try JSONResponse.make(object: ["items": try rules.all().map(Self.resource)])
    }

    @Sendable func apiRule(request: Request, context: StewardRequestContext) async throws -> Response {
        try JSONResponse.make(object: Self.resource(try loadRule(context)))
    }

    @Sendable func apiCreate(request: Request, context: StewardRequestContext) async throws -> Response {
        var rule = AlertRule()
        try Self.apply(try await JSONResponse.object(from: request, what: "rule fields"), to: &rule)
        let problems = rule.problems(knownSources: knownSources)
        guard problems.isEmpty else { throw Problem.invalid(problems) }
        let saved = try rules.create(rule, by: context.actor, now: Date())
        return try JSONResponse.make(object: Self.resource(saved), status: .created)
    }

    @Sendable func apiUpdate(request: Request, context: StewardRequestContext) async throws -> Response {
        var rule = try loadRule(context)
        try Self.apply(try await JSONResponse.object(from: request, what: "rule fields"), to: &rule)
        let problems = rule.problems(knownSources: knownSources)
        guard problems.isEmpty else { throw Problem.invalid(problems) }
        let saved = try rules.update(id: rule.id, rule, by: context.actor, now: Date())
        return try JSONResponse.make(object: Self.resource(saved ?? rule))
    }

    @Sendable func apiDelete(request: Request, context: StewardRequestContext) async throws -> Response {
        let rule = try loadRule(context)
        guard rule.builtin == nil else {
            throw Problem(status: .conflict, detail: "\"\(rule.name)\" is built in; pause it (enabled: false) instead of deleting it")
        }
        _ = try rules.delete(id: rule.id, by: context.actor, now: Date())
        return Response(status: .noContent)
    }

    @Sendable func apiExport(request: Request, context: StewardRequestContext) async throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/yaml; charset=utf-8", .contentDisposition: "attachment; filename=\"steward-rules.yml\""],
            body: .init(byteBuffer: ByteBuffer(string: PrometheusRules.export(try rules.all()))))
    }

    @Sendable func apiImport(request: Request, context: StewardRequestContext) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 4 << 20)
        let (parsed, failures) = PrometheusImport.parse(String(buffer: buffer))
        if parsed.isEmpty, failures.count == 1, failures[0].path.isEmpty { throw Problem.invalid(["body": failures[0].message]) }
        var created: [[String: Any]] = []
        var errors = failures.map { ["path": $0.path, "alert": $0.alert, "message": $0.message] }
        for rule in parsed {
            let problems = rule.problems(knownSources: knownSources)
            guard problems.isEmpty else {
                errors.append([
                    "path": "", "alert": rule.name,
                    "message": problems.keys.sorted().map { "\($0): \(problems[$0]!)" }.joined(separator: "; "),
                ])
                continue
            }
            do {
                created.append(Self.resource(try rules.create(rule, by: context.actor, now: Date())))
            } catch let problem as Problem {
                errors.append(["path": "", "alert": rule.name, "message": problem.errors?.values.joined(separator: "; ") ?? problem.detail])
            }
        }
        return try JSONResponse.make(object: ["created": created, "errors": errors])
    }

    /// Live alerts: every state that is not normal, worst first.
    func live() throws -> [(rule: AlertRule, host: Host, state: AlertState)] {
        let allRules = Dictionary(uniqueKeysWithValues: try rules.all().map { ($0.id, $0) })
        let allHosts = Dictionary(uniqueKeysWithValues: try evaluator.hosts.all().map { ($0.id, $0) })
        let rows = try evaluator.database.read { db in try Row.fetchAll(db, sql: "SELECT rule_id, host_id FROM alert_states WHERE state != 'normal'")
        }
        let order: [AlertState.Phase: Int] = [.firing: 0, .recovering: 1, .pending: 2, .error: 3, .nodata: 4]
        return rows.compactMap { row -> (AlertRule, Host, AlertState)? in
            guard let rule = allRules[row["rule_id"]], let host = allHosts[row["host_id"]],
                let state = evaluator.state(rule: rule.id, host: host.id), state.phase != .normal
            else { return nil }
            return (rule, host, state)
        }.sorted { a, b in
            let x = (order[a.2.phase] ?? 9, a.2.severity == .critical ? 0 : 1, a.2.since)
            let y = (order[b.2.phase] ?? 9, b.2.severity == .critical ? 0 : 1, b.2.since)
            return x < y
        }
    }

    @Sendable func apiAlerts(request: Request, context: StewardRequestContext) async throws -> Response {
        let items = try live().map { rule, host, state -> [String: Any] in
            [
                "rule_id": rule.id, "rule": rule.name, "host_id": host.id, "host": host.name, "state": state.phase.rawValue,
                "severity": orNull(state.severity?.rawValue), "value": orNull(state.value.flatMap { $0.isFinite ? $0 : nil }),
                "since": RFC3339.string(milliseconds: state.since) ?? "", "detail": orNull(state.detail),
                "summary": AlertText.render(rule.summary, rule: rule, hostName: host.name, state: state),
                "description": AlertText.render(rule.description, rule: rule, hostName: host.name, state: state),
                "runbook_url": rule.runbookURL,
            ]
        }
        return try JSONResponse.make(object: ["items": items])
    }

    func history(limit: Int, before: Int64?) throws -> [Row] {
        try evaluator.database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT h.*, r.name AS rule_name FROM alert_history h JOIN alert_rules r ON r.id = h.rule_id
                    WHERE h.id < ? ORDER BY h.id DESC LIMIT ?
                    """, arguments: [before ?? Int64.max, limit])
        }
    }

    @Sendable func apiHistory(request: Request, context: StewardRequestContext) async throws -> Response {
        let limit = min(max(request.uri.queryParameters["limit"].flatMap { Int($0) } ?? 100, 1), 1000)
        let rows = try history(limit: limit, before: request.uri.queryParameters["cursor"].flatMap { Int64($0) })
        let items = rows.map { row -> [String: Any] in
            [
                "id": row["id"] as Int64, "rule_id": row["rule_id"] as Int64, "rule": row["rule_name"] as String, "host": row["host_name"] as String,
                "from": row["from_state"] as String, "to": row["to_state"] as String, "severity": orNull(row["severity"] as String?),
                "value": orNull(row["value"] as Double?), "at": RFC3339.string(milliseconds: row["at"]) ?? "",
                "detail": orNull(row["detail"] as String?),
            ]
        }
        let next: Any = rows.count == limit ? "/api/v1/alerts/history?limit=\(limit)&cursor=\(rows.last?["id"] as Int64? ?? 0)" : NSNull()
        return try JSONResponse.make(object: ["items": items, "next": next])
    }

    // MARK: pages

    @Sendable func alertsPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let operate = context.identity?.permissions.contains(.operate) ?? false
        let live = try self.live().map { rule, host, state in
            ViewNode([
                "rule_id": rule.id, "rule": rule.name, "host_id": host.id, "host": host.name, "phase": state.phase.rawValue,
                "severity": state.severity?.rawValue ?? "", "value": state.value.map { MetricUnit.trim($0, digits: 2) } ?? "–",
                "since": RFC3339.display(EpochMilliseconds.date(state.since)), "detail": state.detail ?? "",
                "has_detail": state.detail?.isEmpty == false,
                "summary": AlertText.render(rule.summary, rule: rule, hostName: host.name, state: state), "runbook": rule.runbookURL,
                "has_runbook": !rule.runbookURL.isEmpty, "has_severity": state.severity != nil,
            ])
        }
        let history = try self.history(limit: 50, before: nil).map { row in
            ViewNode([
                "rule_id": row["rule_id"] as Int64, "rule": row["rule_name"] as String, "host": row["host_name"] as String,
                "from": row["from_state"] as String, "to": row["to_state"] as String, "severity": (row["severity"] as String?) ?? "",
                "has_severity": (row["severity"] as String?) != nil,
                "value": (row["value"] as Double?).map { MetricUnit.trim($0, digits: 2) } ?? "",
                "at": RFC3339.display(EpochMilliseconds.date(row["at"])),
            ])
        }
        // The alert-fatigue view: how often each rule fired and notified in the last 7 days.
        let weekAgo = EpochMilliseconds.from(Date()) - 7 * 86_400_000
        let (fired, notified) = try await evaluator.database.read { db -> ([Int64: Int], [Int64: Int]) in
            let fired = try Row.fetchAll(
                db,
                sql:
                    "SELECT rule_id, COUNT(*) AS n FROM alert_history WHERE to_state = 'firing' AND from_state != 'recovering' AND at >= ? GROUP BY rule_id",
                arguments: [weekAgo]
            ).reduce(into: [Int64: Int]()) { $0[$1["rule_id"]] = $1["n"] }
            let notified = try Row.fetchAll(
                db, sql: "SELECT rule_id, COUNT(*) AS n FROM notification_deliveries WHERE created_at >= ? AND rule_id IS NOT NULL GROUP BY rule_id",
                arguments: [weekAgo]
            ).reduce(into: [Int64: Int]()) { $0[$1["rule_id"]] = $1["n"] }
            return (fired, notified)
        }
        let noisiest = notified.values.max() ?? 0
        let ruleRows = try rules.all().map { rule in
            ViewNode([
                "fired": fired[rule.id] ?? 0, "notified": notified[rule.id] ?? 0,
                "noisy": noisiest >= 10 && (notified[rule.id] ?? 0) == noisiest,
                "id": rule.id, "name": rule.name, "enabled": rule.enabled, "builtin": rule.builtin != nil,
                "what": rule.source == "metric" ? "\(rule.aggregation.rawValue)(\(rule.metric)) over \(rule.windowSeconds) s" : rule.source,
                "levels": [
                    rule.warnThreshold.map { "warning \(rule.comparison == .above ? "≥" : "≤") \(MetricUnit.trim($0, digits: 2))" },
                    rule.critThreshold.map { "critical \(rule.comparison == .above ? "≥" : "≤") \(MetricUnit.trim($0, digits: 2))" },
                ].compactMap { $0 }.joined(separator: ", "),
                "for": rule.forSeconds > 0 ? "for \(rule.forSeconds) s" : "at once",
            ])
        }
        let data: [String: Any] = [
            "live": live, "no_live": live.isEmpty, "history": history, "no_history": history.isEmpty, "rules": ruleRows, "operator": operate,
            "nobody_told": try AlertSummary.nobodyIsTold(evaluator.database),
        ]
        return pages.page("alerts/index", title: "Alerts", section: "alerts", data: data, request: request, context: context)
    }

    static func form(_ rule: AlertRule) -> [String: Any?] {
        var values: [String: Any?] = [
            "name": rule.name, "enabled": rule.enabled, "source": rule.source, "metric": rule.metric, "matchers": rule.matchers,
            "window_seconds": rule.windowSeconds, "horizon_seconds": rule.horizonSeconds,
            "warn_threshold": rule.warnThreshold.map { MetricUnit.trim($0, digits: 6) },
            "warn_clear": rule.warnClear.map { MetricUnit.trim($0, digits: 6) },
            "crit_threshold": rule.critThreshold.map { MetricUnit.trim($0, digits: 6) },
            "crit_clear": rule.critClear.map { MetricUnit.trim($0, digits: 6) },
            "for_seconds": rule.forSeconds, "keep_firing_seconds": rule.keepFiringSeconds, "scope_hosts": rule.scopeHosts.joined(separator: ", "),
            "scope_groups": rule.scopeGroups.joined(separator: ", "), "scope_tags": rule.scopeTags.joined(separator: ", "), "labels": rule.labels,
            "summary": rule.summary, "description": rule.description, "runbook_url": rule.runbookURL, "route": rule.route,
            "repeat_seconds": rule.repeatSeconds, "builtin": rule.builtin != nil, "id": rule.id,
        ]
        values["aggregations"] = AlertRule.Aggregation.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == rule.aggregation]) }
        values["comparisons"] = AlertRule.Comparison.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == rule.comparison]) }
        values["no_data_options"] = AlertRule.NoData.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == rule.noData]) }
        return values
    }

    /// The preview: each host in scope with its value now and the level it would be at (ignoring `for`), and for
    /// metric rules a chart of the last 6 hours per host with the thresholds drawn.
    func preview(_ rule: AlertRule) -> [String: Any] {
        guard
            rule.problems(knownSources: knownSources).filter({
                ["metric", "source", "matchers", "window_seconds", "horizon_seconds"].contains($0.key)
            })
            .isEmpty
        else { return ["preview_unavailable": "Fix the fields marked below to see a preview."] }
        let now = EpochMilliseconds.from(Date())
        let hosts = ((try? evaluator.hosts.all()) ?? []).filter { $0.enabled && rule.applies(to: $0) }
        var rows: [ViewNode] = []
        var firingCount = 0
        var lines: [ChartLine] = []
        let range: Int64 = 6 * 3_600_000
        let step = MetricQuery.step(for: range, points: 120)
        let times = MetricQuery.grid(from: now - range, to: now, step: step)
        for host in hosts.prefix(50) {
            let observation: AlertObservation
            do {
                if rule.source == "metric" {
                    observation = try MetricObservation.observe(rule, host: host, store: evaluator.metrics, now: now)
                } else if let source = evaluator.sources[rule.source] {
                    observation = try source.observe(host, rule, now)
                } else {
                    observation = .failure("unknown source")
                }
            } catch {
                observation = .failure("\(error)")
            }
            var verdict = "normal"
            var value = "–"
            switch observation {
            case .value(let number):
                value = MetricUnit.trim(number, digits: 2)
                verdict = AlertStateMachine.severity(of: number, rule: rule, current: nil).map { "firing (\($0.rawValue))" } ?? "normal"
            case .noData:
                verdict = rule.noData == .alerting ? "firing (critical: no data)" : rule.noData == .ok ? "normal (no data)" : "nodata"
            case .failure(let message):
                verdict = "error: \(message)"
            }
            if verdict.hasPrefix("firing") { firingCount += 1 }
            rows.append(ViewNode(["host": host.name, "value": value, "verdict": verdict, "firing": verdict.hasPrefix("firing")]))
            guard rule.source == "metric", lines.count < 8 else { continue }
            let matchers = rule.matcherPairs
            var worst = [Double?](repeating: nil, count: times.count)
            for series in evaluator.metrics.series(hostID: host.id, name: rule.metric) where matchers.allSatisfy({ series.label($0.0) == $0.1 }) {
                let function: MetricFunction = rule.aggregation == .rate ? .rate : .avg
                guard
                    let range = try? MetricQuery.evaluate(
                        evaluator.metrics, series: series, function: function, from: now - range, to: now, step: step,
                        resolution: MetricQuery.resolution(from: now - range, step: step, now: now))
                else { continue }
                for (index, value) in range.values.enumerated() {
                    guard let value else { continue }
                    worst[index] = worst[index].map { rule.comparison == .above ? max($0, value) : min($0, value) } ?? value
                }
            }
            if worst.contains(where: { $0 != nil }) { lines.append(ChartLine(name: host.name, values: worst)) }
        }
        var result: [String: Any] = ["preview_rows": rows, "preview_empty": rows.isEmpty, "preview_firing": firingCount]
        if !lines.isEmpty {
            var chart = SVGChart(title: "\(rule.metric), last 6 hours", unit: .plain, times: times, step: step, lines: lines)
            chart.fixedMinimum = nil
            chart.thresholds = [
                rule.warnThreshold.map { ChartThreshold(value: $0, label: "warning", level: "warning") },
                rule.critThreshold.map { ChartThreshold(value: $0, label: "critical", level: "critical") },
            ].compactMap { $0 }
            result["preview_chart"] = chart.render()
        }
        return result
    }

    func rulePage(_ rule: AlertRule, errors: [String: String], request: Request, context: StewardRequestContext, status: HTTPResponse.Status = .ok)
        -> Response
    {
        var form = Self.form(rule)
        form["sources"] = (["metric"] + knownSources.sorted()).map { ViewNode(["value": $0, "selected": $0 == rule.source]) }
        let data: [String: Any] = preview(rule).merging([
            "form": ViewNode(form), "errors": ViewNode(errors), "has_errors": !errors.isEmpty, "is_new": rule.id == 0,
            "operator": context.identity?.permissions.contains(.operate) ?? false,
            "action": rule.id == 0 ? "/alerts/rules/new" : "/alerts/rules/\(rule.id)",
        ]) { _, b in b }
        return pages.page(
            "alerts/rule", title: rule.id == 0 ? "New alert rule" : rule.name, section: "alerts", data: data, request: request, context: context,
            status: status)
    }

    @Sendable func newRulePage(request: Request, context: StewardRequestContext) async throws -> Response {
        var rule = AlertRule()
        rule.metric = HostSummary.cpuPercent
        rule.summary = "{{host}}: {{value}}"
        return rulePage(rule, errors: [:], request: request, context: context)
    }

    @Sendable func editRulePage(request: Request, context: StewardRequestContext) async throws -> Response {
        rulePage(try loadRule(context), errors: [:], request: request, context: context)
    }

    static func rule(from form: FormBody, base: AlertRule) -> (AlertRule, [String: String]) {
        var rule = base
        var errors: [String: String] = [:]
        func text(_ key: String) -> String { (form[key] ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
        func integer(_ key: String, _ set: (Int) -> Void) {
            if let value = Int(text(key)) { set(value) } else { errors[key] = "a whole number of seconds" }
        }
        func number(_ key: String, _ set: (Double?) -> Void) {
            let value = text(key)
            if value.isEmpty { set(nil) } else if let parsed = Double(value) { set(parsed) } else { errors[key] = "a number, or empty for none" }
        }
        func list(_ key: String) -> [String] {
            text(key).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        rule.name = text("name")
        rule.enabled = form["enabled"] == "on"
        rule.source = text("source").isEmpty ? "metric" : text("source")
        rule.metric = text("metric")
        rule.matchers = text("matchers")
        rule.aggregation = AlertRule.Aggregation(rawValue: text("aggregation")) ?? .avg
        integer("window_seconds") { rule.windowSeconds = $0 }
        integer("horizon_seconds") { rule.horizonSeconds = $0 }
        rule.comparison = AlertRule.Comparison(rawValue: text("comparison")) ?? .above
        number("warn_threshold") { rule.warnThreshold = $0 }
        number("warn_clear") { rule.warnClear = $0 }
        number("crit_threshold") { rule.critThreshold = $0 }
        number("crit_clear") { rule.critClear = $0 }
        integer("for_seconds") { rule.forSeconds = $0 }
        integer("keep_firing_seconds") { rule.keepFiringSeconds = $0 }
        rule.noData = AlertRule.NoData(rawValue: text("no_data")) ?? .nodata
        rule.scopeHosts = list("scope_hosts")
        rule.scopeGroups = list("scope_groups")
        rule.scopeTags = list("scope_tags")
        rule.labels = text("labels")
        rule.summary = text("summary")
        rule.description = form["description"] ?? ""
        rule.runbookURL = text("runbook_url")
        rule.route = text("route")
        integer("repeat_seconds") { rule.repeatSeconds = $0 }
        return (rule, errors)
    }

    func save(_ request: Request, _ context: StewardRequestContext, base: AlertRule) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var (rule, errors) = Self.rule(from: form, base: base)
        errors.merge(rule.problems(knownSources: knownSources)) { a, _ in a }
        // "Preview" shows what the edited rule would do now, without saving it.
        if form["intent"] == "preview" { return rulePage(rule, errors: errors, request: request, context: context) }
        guard errors.isEmpty else { return rulePage(rule, errors: errors, request: request, context: context, status: .unprocessableContent) }
        do {
            let saved =
                base.id == 0
                ? try rules.create(rule, by: context.actor, now: Date()) : try rules.update(id: base.id, rule, by: context.actor, now: Date())
            return pages.redirect(to: "/alerts/rules/\(saved?.id ?? base.id)", flash: Flash(.success, "Saved \(rule.name)."))
        } catch let problem as Problem {
            return rulePage(
                rule, errors: problem.errors ?? ["name": problem.detail], request: request, context: context, status: .unprocessableContent)
        }
    }

    @Sendable func createFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        try await save(request, context, base: AlertRule())
    }

    @Sendable func updateFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        try await save(request, context, base: try loadRule(context))
    }

    @Sendable func deleteFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let rule = try loadRule(context)
        guard rule.builtin == nil else {
            return pages.redirect(to: "/alerts/rules/\(rule.id)", flash: Flash(.error, "Built-in rules cannot be deleted; pause them instead."))
        }
        _ = try rules.delete(id: rule.id, by: context.actor, now: Date())
        return pages.redirect(to: "/alerts", flash: Flash(.success, "Deleted \(rule.name)."))
    }
}
