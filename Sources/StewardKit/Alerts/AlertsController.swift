import Foundation
import GRDB
import Hummingbird

/// `{{host}}`, `{{value}}`, `{{threshold}}`, `{{severity}}` and `{{rule}}` in a rule's summary and description, and
/// Prometheus's template actions (`{{ $labels.mountpoint }}`, `{{ $value | humanize }}`, see `PrometheusTemplate`).
public enum AlertText {
    public static func render(_ template: String, rule: AlertRule, hostName: String, state: AlertState?) -> String {
        let threshold = state?.severity == .critical ? rule.critThreshold : rule.warnThreshold ?? rule.critThreshold
        let value = state?.value.map { MetricUnit.trim($0, digits: abs($0) < 10 ? 2 : 1) } ?? "no data"
        var labels = Dictionary(PrometheusText.labels(fromCanonical: state?.labels ?? ""), uniquingKeysWith: { a, _ in a })
        labels["host"] = labels["host"] ?? hostName
        labels["instance"] = labels["instance"] ?? hostName
        let prometheus = PrometheusTemplate.render(template, PrometheusTemplate.Data(labels: labels, value: state?.value))
        return prometheus.replacingOccurrences(of: "{{host}}", with: hostName).replacingOccurrences(of: "{{value}}", with: value)
            .replacingOccurrences(of: "{{threshold}}", with: threshold.map { MetricUnit.trim($0, digits: 2) } ?? "")
            .replacingOccurrences(of: "{{severity}}", with: state?.severity?.rawValue ?? "")
            .replacingOccurrences(of: "{{rule}}", with: rule.name)
    }
}

/// The alerts page, the rule editor, and the alerts API.
struct AlertsController {
    let area: AreaContext
    let evaluator: AlertEvaluator

    var rules: AlertRuleStore { evaluator.rules }
    var knownSources: Set<String> { Set(evaluator.sources.keys) }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "alerts")
        routes.get("/alerts", .view, use: alertsPage)
        routes.get("/alerts/rules/new", .operate, use: newRulePage)
        routes.post("/alerts/rules/new", .operate, use: createFromPage)
        routes.get("/alerts/rules/:id", .view, use: editRulePage)
        routes.post("/alerts/rules/:id", .operate, use: updateFromPage)
        routes.post("/alerts/rules/:id/delete", .operate, use: deleteFromPage)
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "rule id")
        api(
            .get, "/api/v1/alerts", .view, "listAlerts", "Alerts that are pending, firing, recovering, nodata or error", schema: "AlertList",
            use: apiAlerts)
        api(
            .get, "/api/v1/alerts/history", .view, "alertHistory", "State changes, newest first",
            parameters: [.limit(default: 100, maximum: 1000), .cursor], schema: "AlertHistory", use: apiHistory)
        api(.get, "/api/v1/alerts/rules", .view, "listAlertRules", "Every alert rule", schema: "AlertRuleList", use: apiRules)
        api(
            .post, "/api/v1/alerts/rules", .operate, "createAlertRule", "Create a rule", request: "AlertRuleInput", status: 201, schema: "AlertRule",
            use: apiCreate)
        api(
            .get, "/api/v1/alerts/rules/export", .view, "exportAlertRules",
            "Metric rules as a Prometheus rule file (promtool check rules accepts it)", schema: "PrometheusRuleFileText",
            contentType: "application/yaml; charset=utf-8", use: apiExport)
        api(
            .post, "/api/v1/alerts/rules/import", .operate, "importAlertRules",
            "Create rules from a Prometheus rule file (YAML body): the supported subset, and an error for each other rule",
            request: "PrometheusRuleFileUpload", requestContentType: "application/yaml", schema: "AlertImport", use: apiImport)
        api(.get, "/api/v1/alerts/rules/{id}", .view, "getAlertRule", "One rule", parameters: [id], schema: "AlertRule", use: apiRule)
        api(
            .put, "/api/v1/alerts/rules/{id}", .operate, "updateAlertRule", "Change a rule (fields left out keep their value)", parameters: [id],
            request: "AlertRuleInput", schema: "AlertRule", use: apiUpdate)
        api(
            .delete, "/api/v1/alerts/rules/{id}", .operate, "deleteAlertRule", "Delete a rule (built-in rules can only be paused)", parameters: [id],
            status: 204, schema: nil, use: apiDelete)
    }

    // MARK: API

    func loadRule(_ context: StewardRequestContext) throws -> AlertRule {
        guard let id = context.parameters.get("id", as: Int64.self), let rule = try rules.rule(id: id) else {
            throw HTTPError(.notFound, message: "there is no such alert rule")
        }
        return rule
    }

    @Sendable func apiRules(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(ItemList(items: try rules.all().map(AlertRuleResource.init)))
    }

    @Sendable func apiRule(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(AlertRuleResource(try loadRule(context)))
    }

    @Sendable func apiCreate(request: Request, context: StewardRequestContext) async throws -> Response {
        var rule = AlertRule()
        try await APIInputDecoding.decode(AlertRuleInput.self, from: request).apply(to: &rule)
        let problems = rule.problems(knownSources: knownSources)
        guard problems.isEmpty else { throw Problem.invalid(problems) }
        let saved = try rules.create(rule, by: context.actor, now: Date())
        return try APIJSON.response(AlertRuleResource(saved), status: .created)
    }

    @Sendable func apiUpdate(request: Request, context: StewardRequestContext) async throws -> Response {
        var rule = try loadRule(context)
        try await APIInputDecoding.decode(AlertRuleInput.self, from: request).apply(to: &rule)
        let problems = rule.problems(knownSources: knownSources)
        guard problems.isEmpty else { throw Problem.invalid(problems) }
        let saved = try rules.update(id: rule.id, rule, by: context.actor, now: Date())
        return try APIJSON.response(AlertRuleResource(saved ?? rule))
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
        let parsed = PrometheusImport.parse(String(buffer: buffer))
        if parsed.rules.isEmpty, parsed.failures.count == 1, parsed.failures[0].path.isEmpty {
            throw Problem.invalid(["body": parsed.failures[0].message])
        }
        var result = AlertImportResult(errors: parsed.failures.map { .init(path: $0.path, alert: $0.alert, message: $0.message) })
        result.warnings = parsed.warnings.map { .init(path: $0.path, alert: $0.alert, message: $0.message) }
        let existing = Dictionary(try rules.all().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let reach = try importReach()
        for rule in parsed.rules {
            if let known = existing[rule.name] {
                if PrometheusRules.alertEntries(known) == PrometheusRules.alertEntries(rule) {
                    result.unchanged.append(rule.name)
                } else {
                    result.errors.append(
                        .init(
                            path: "", alert: rule.name,
                            message: "a rule named \(rule.name) exists with a different definition; rename one of them or delete the old rule first"))
                }
                continue
            }
            let problems = rule.problems(knownSources: knownSources)
            guard problems.isEmpty else {
                let message = problems.keys.sorted().map { "\($0): \(problems[$0]!)" }.joined(separator: "; ")
                result.errors.append(.init(path: "", alert: rule.name, message: message))
                continue
            }
            for warning in PrometheusImport.reachability(rule.expression, labelsOf: reach.labelsOf, collected: reach.collected) {
                result.warnings.append(.init(path: "", alert: rule.name, message: warning))
            }
            do {
                result.created.append(AlertRuleResource(try rules.create(rule, by: context.actor, now: Date())))
            } catch let problem as Problem {
                result.errors.append(.init(path: "", alert: rule.name, message: problem.errors?.values.joined(separator: "; ") ?? problem.detail))
            }
        }
        return try APIJSON.response(result)
    }

    /// For the importer's warnings: the labels stored series of a metric have, and whether some host collects it.
    func importReach() throws -> (labelsOf: (String) -> Set<String>?, collected: (String) -> Bool) {
        let store = evaluator.metrics
        let lists = try evaluator.hosts.all().map { MetricAllowList(text: $0.metricsAllow) }
        let allowLists = lists.isEmpty ? [MetricAllowList.standard] : lists
        return (
            { name in
                let series = store.series(name: name)
                return series.isEmpty ? nil : Set(series.flatMap { $0.labelPairs.map(\.0) })
            },
            { name in allowLists.contains { $0.allows(PrometheusText.Sample(name: name, labels: [], value: 0)) } }
        )
    }

    /// Live alerts: every state that is not normal, worst first.
    func live() throws -> [(rule: AlertRule, host: Host, state: AlertState)] {
        let allRules = Dictionary(uniqueKeysWithValues: try rules.all().map { ($0.id, $0) })
        let allHosts = Dictionary(uniqueKeysWithValues: try evaluator.hosts.all().map { ($0.id, $0) })
        let rows = try rules.abnormalStates()
        let order: [AlertState.Phase: Int] = [.firing: 0, .recovering: 1, .pending: 2, .error: 3, .nodata: 4]
        return rows.compactMap { row -> (AlertRule, Host, AlertState)? in
            guard let rule = allRules[row.rule], let host = allHosts[row.host],
                let state = evaluator.state(rule: rule.id, host: host.id), state.phase != .normal
            else { return nil }
            return (rule, host, state)
        }.sorted { a, b in
            let x = (order[a.2.phase] ?? 9, -(a.2.severity?.rank ?? 0), a.2.since)
            let y = (order[b.2.phase] ?? 9, -(b.2.severity?.rank ?? 0), b.2.since)
            return x < y
        }
    }

    @Sendable func apiAlerts(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(ItemList(items: try live().map(LiveAlertResource.init)))
    }

    @Sendable func apiHistory(request: Request, context: StewardRequestContext) async throws -> Response {
        var query = QueryInput(request)
        let limit = query.integer("limit", in: 1...1000, default: 100)
        let cursor = query.cursor()
        try query.check()
        let items = try rules.history(limit: limit, before: cursor)
        let next = items.count == limit ? items.last.map { "/api/v1/alerts/history?limit=\(limit)&cursor=\($0.id)" } : nil
        return try APIJSON.response(CursorPage(items: items, next: Nullable(next)))
    }

    // MARK: pages

    /// The host's log lines around an alert's change; for a rule on logs, the lines it counted.
    static func logsLink(host: String, at: Int64, rule: AlertRule? = nil) -> String {
        if let rule, rule.source == LogRuleQuery.source { return LogRuleQuery.link(rule, host: host, at: at) }
        return FormQuery.link("/logs/around", [URLQueryItem(name: "host", value: host), URLQueryItem(name: "at", value: String(at))])
    }

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
                "logs_link": Self.logsLink(host: host.name, at: rule.source == LogRuleQuery.source ? state.evaluatedAt : state.since, rule: rule),
            ])
        }
        let byID = Dictionary(try rules.all().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let history = try rules.history(limit: 50, before: nil).map { change in
            ViewNode([
                "rule_id": change.ruleId, "rule": change.rule, "host": change.host, "from": change.from, "to": change.to,
                "severity": change.severity.value ?? "", "has_severity": change.severity.value != nil,
                "value": change.value.value.map { MetricUnit.trim($0, digits: 2) } ?? "",
                "at": RFC3339.display(EpochMilliseconds.date(change.atMilliseconds)),
                "logs_link": Self.logsLink(host: change.host, at: change.atMilliseconds, rule: byID[change.ruleId]),
            ])
        }
        // The alert-fatigue view: how often each rule fired and notified in the last 7 days.
        let weekAgo = EpochMilliseconds.from(Date()) - 7 * 86_400_000
        let (fired, notified) = try rules.fatigue(since: weekAgo)
        let noisiest = notified.values.max() ?? 0
        let ruleRows = try rules.all().map { rule in
            ViewNode([
                "fired": fired[rule.id] ?? 0, "notified": notified[rule.id] ?? 0,
                "noisy": noisiest >= 10 && (notified[rule.id] ?? 0) == noisiest,
                "id": rule.id, "name": rule.name, "enabled": rule.enabled, "builtin": rule.builtin != nil,
                "what": Self.what(rule), "levels": Self.levels(rule),
                "for": rule.forSeconds > 0 ? "for \(rule.forSeconds) s" : "at once",
            ])
        }
        let data: [String: Any] = [
            "live": live, "no_live": live.isEmpty, "history": history, "no_history": history.isEmpty, "rules": ruleRows, "operator": operate,
            "nobody_told": try AlertSummary.nobodyIsTold(evaluator.database),
        ]
        return area.pages.page("alerts/index", title: "Alerts", section: "alerts", data: data, request: request, context: context)
    }

    /// What a rule measures, for the rule list.
    static func what(_ rule: AlertRule) -> String {
        switch rule.source {
        case "metric": "\(rule.aggregation.rawValue)(\(rule.metric)) over \(rule.windowSeconds) s"
        case LogRuleQuery.source: "log lines matching \(rule.logQuery) in \(rule.windowSeconds) s"
        case PromQLRule.source: rule.expression
        default: rule.source
        }
    }

    /// Its levels, for the rule list.
    static func levels(_ rule: AlertRule) -> String {
        if rule.source == PromQLRule.source, rule.warnThreshold == nil, rule.critThreshold == nil {
            return "\(rule.severity.rawValue) when it returns a series"
        }
        let levels: [String?] = [
            rule.warnThreshold.map { "warning \(rule.comparison.display) \(MetricUnit.trim($0, digits: 2))" },
            rule.critThreshold.map { "critical \(rule.comparison.display) \(MetricUnit.trim($0, digits: 2))" },
        ]
        return levels.compactMap { $0 }.joined(separator: ", ")
    }

    static func form(_ rule: AlertRule) -> [String: Any?] {
        var values: [String: Any?] = [
            "name": rule.name, "enabled": rule.enabled, "source": rule.source, "metric": rule.metric, "matchers": rule.matchers,
            "log_query": rule.logQuery, "expression": rule.expression,
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
        values["comparisons"] = AlertRule.Comparison.allCases.map {
            ViewNode(["value": $0.rawValue, "label": "\($0.rawValue) (\($0.symbol))", "selected": $0 == rule.comparison])
        }
        values["severities"] = AlertState.Severity.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == rule.severity]) }
        values["no_data_options"] = AlertRule.NoData.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == rule.noData]) }
        return values
    }

    /// The preview: each host in scope with its value now and the level it would be at (ignoring `for`), and for
    /// metric rules a chart of the last 6 hours per host with the thresholds drawn.
    func preview(_ rule: AlertRule) -> [String: Any] {
        guard
            rule.problems(knownSources: knownSources).filter({
                ["metric", "source", "matchers", "log_query", "expression", "window_seconds", "horizon_seconds"].contains($0.key)
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
        // A PromQL rule: one evaluation now, and one range query for the chart, shared by every host.
        var promNow: Result<[String: [PromQL.Sample]], any Error>?
        var promChart: [String: [Double?]] = [:]
        if rule.source == PromQLRule.source {
            let everyHost = (try? evaluator.hosts.all()) ?? []
            let source = MetricStoreSource(store: evaluator.metrics, hostNames: Dictionary(uniqueKeysWithValues: everyHost.map { ($0.id, $0.name) }))
            let names = Set(hosts.map(\.name))
            promNow = Result { try PromQLRule.evaluate(rule, source: source, hosts: names, at: now) }
            if let expr = try? PromQL.parse(rule.expression),
                let series = try? PromQL.rangeQuery(expr, source: source, from: times.first ?? now, to: times.last ?? now, step: step)
            {
                for entry in series {
                    guard let host = PromQLRule.hostName(entry.labels, known: names) else { continue }
                    var values = promChart[host] ?? [Double?](repeating: nil, count: times.count)
                    for point in entry.points {
                        guard let index = times.firstIndex(of: point.time), point.value.isFinite else { continue }
                        values[index] =
                            values[index].map { rule.comparison.upward == false ? min($0, point.value) : max($0, point.value) } ?? point.value
                    }
                    promChart[host] = values
                }
            }
        }
        for host in hosts.prefix(50) {
            var observation: AlertObservation
            do {
                if let promNow {
                    observation = PromQLRule.observe(rule, samples: try promNow.get()[host.name] ?? []).0
                } else if rule.source == "metric" {
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
            case .clear:
                verdict = "normal (nothing returned)"
            case .level(let level, let number):
                value = MetricUnit.trim(number, digits: 2)
                verdict = level.map { "firing (\($0.rawValue))" } ?? "normal"
            case .noData:
                verdict = rule.noData == .alerting ? "firing (critical: no data)" : rule.noData == .ok ? "normal (no data)" : "nodata"
            case .failure(let message):
                verdict = "error: \(message)"
            }
            if verdict.hasPrefix("firing") { firingCount += 1 }
            rows.append(ViewNode(["host": host.name, "value": value, "verdict": verdict, "firing": verdict.hasPrefix("firing")]))
            if let values = promChart[host.name], lines.count < 8 { lines.append(ChartLine(name: host.name, values: values)) }
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
                    worst[index] = worst[index].map { rule.comparison.upward == false ? min($0, value) : max($0, value) } ?? value
                }
            }
            if worst.contains(where: { $0 != nil }) { lines.append(ChartLine(name: host.name, values: worst)) }
        }
        var result: [String: Any] = ["preview_rows": rows, "preview_empty": rows.isEmpty, "preview_firing": firingCount]
        if !lines.isEmpty {
            var chart = SVGChart(
                title: "\(rule.source == PromQLRule.source ? "the expression" : rule.metric), last 6 hours", unit: .plain, times: times, step: step,
                lines: lines)
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
        form["sources"] = (["metric", PromQLRule.source] + knownSources.sorted()).map { ViewNode(["value": $0, "selected": $0 == rule.source]) }
        let data: [String: Any] = preview(rule).merging([
            "form": ViewNode(form), "errors": ViewNode(errors), "has_errors": !errors.isEmpty, "is_new": rule.id == 0,
            "operator": context.identity?.permissions.contains(.operate) ?? false,
            "action": rule.id == 0 ? "/alerts/rules/new" : "/alerts/rules/\(rule.id)",
        ]) { _, b in b }
        return area.pages.page(
            "alerts/rule", title: rule.id == 0 ? "New alert rule" : rule.name, section: "alerts", data: data, request: request, context: context,
            status: status)
    }

    @Sendable func newRulePage(request: Request, context: StewardRequestContext) async throws -> Response {
        var rule = AlertRule()
        rule.metric = HostSummary.cpuPercent
        rule.summary = "{{host}}: {{value}}"
        // From the logs page's "Alert on these lines": a log rule with its filter filled in (nothing is saved yet).
        let query = QueryInput(request).query
        if query["source"] == LogRuleQuery.source, let filter = query["log_query"], filter.utf8.count <= 2000 {
            rule.source = LogRuleQuery.source
            rule.logQuery = filter
            rule.metric = ""
            rule.aggregation = .last
            rule.windowSeconds = 600
            rule.warnThreshold = 1
            rule.noData = .ok
            rule.summary = "{{host}}: {{value}} matching log lines in 10 minutes"
        }
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
        rule.logQuery = text("log_query")
        rule.expression = text("expression")
        rule.severity = AlertState.Severity(rawValue: text("severity")) ?? .warning
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
            return area.pages.redirect(to: "/alerts/rules/\(saved?.id ?? base.id)", flash: Flash(.success, "Saved \(rule.name)."))
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
            return area.pages.redirect(to: "/alerts/rules/\(rule.id)", flash: Flash(.error, "Built-in rules cannot be deleted; pause them instead."))
        }
        _ = try rules.delete(id: rule.id, by: context.actor, now: Date())
        return area.pages.redirect(to: "/alerts", flash: Flash(.success, "Deleted \(rule.name)."))
    }
}
