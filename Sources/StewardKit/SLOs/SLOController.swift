import Foundation
import GRDB
import Hummingbird

/// An SLO as the API shows it, with where its budget stands.
struct SLOResource: Codable, Sendable {
    struct Firing: Codable, Sendable {
        let severity: String
        let factor: Double
        let longWindow, shortWindow: String
        let longBurnRate, shortBurnRate: Double
    }
    let id: Int64
    let name, description, sli: String
    let check: Nullable<String>
    let ratioCounts, eventsQuery, totalQuery, histogram, matchers: String
    let thresholdSeconds: Nullable<Double>
    let objective: Double
    let window: String
    let hosts, groups: [String]
    let alerting: Bool
    let windowStart: Nullable<String>
    let goodEvents, totalEvents: Double
    let achievedPercent: Nullable<Double>
    let remainingBudgetPercent: Double
    let budgetSpent: Bool
    let burnRates: [String: Double]
    let timeLeftSeconds: Nullable<Double>
    let alert: Nullable<Firing>
    let problem: Nullable<String>

    init(_ slo: SLO, status: SLOStatus?, checkName: String?) {
        id = slo.id
        name = slo.name
        description = slo.description
        sli = slo.sli.rawValue
        check = Nullable(checkName)
        ratioCounts = slo.ratioCounts.rawValue
        eventsQuery = slo.eventsQuery
        totalQuery = slo.totalQuery
        histogram = slo.histogram
        matchers = slo.matchers
        thresholdSeconds = Nullable(slo.thresholdSeconds)
        objective = slo.objective
        window = slo.window.rawValue
        hosts = slo.scopeHosts
        groups = slo.scopeGroups
        alerting = slo.alerting
        windowStart = Nullable(status.flatMap { RFC3339.string(milliseconds: $0.windowStart) })
        goodEvents = SLOResource.round(status?.events.good ?? 0)
        totalEvents = SLOResource.round(status?.events.total ?? 0)
        achievedPercent = Nullable(status?.achieved.map { SLOResource.round($0, 6) })
        remainingBudgetPercent = SLOResource.round((status?.remaining ?? 1) * 100, 4)
        budgetSpent = status?.spent ?? false
        burnRates = (status?.burnRates ?? [:]).mapValues { SLOResource.round($0, 4) }
        timeLeftSeconds = Nullable(status?.timeLeftSeconds.map { $0.rounded() })
        alert = Nullable(
            status?.firing.map { pair in
                Firing(
                    severity: pair.severity == .critical ? "page" : "ticket", factor: pair.factor, longWindow: pair.long, shortWindow: pair.short,
                    longBurnRate: SLOResource.round(status?.burnRates[pair.long] ?? 0, 4),
                    shortBurnRate: SLOResource.round(status?.burnRates[pair.short] ?? 0, 4))
            })
        problem = Nullable(status?.problem)
    }

    static func round(_ value: Double, _ digits: Double = 3) -> Double {
        let scale = pow(10, digits)
        return (value * scale).rounded() / scale
    }
}

struct SLOBudgetPoint: Codable, Sendable {
    let at: String
    let remainingBudgetPercent: Nullable<Double>
}

struct SLOBudgetHistory: Codable, Sendable {
    let slo: String
    let points: [SLOBudgetPoint]
}

struct SLOImportResult: Codable, Sendable {
    struct Failure: Codable, Sendable {
        let path, name, message: String
    }
    let created: [String]
    let updated: [String]
    let failures: [Failure]
}

extension SLO.SLIKind: APIChoice {}
extension SLO.RatioCounts: APIChoice {}
extension SLO.Window: APIChoice {}

/// The fields of an SLO a client may send; left out keeps the value.
struct SLOInput: APIInput {
    var name: Patch<String> = .absent
    var description: Patch<String> = .absent
    var sli: Patch<SLO.SLIKind> = .absent
    var check: Patch<String> = .absent
    var ratioCounts: Patch<SLO.RatioCounts> = .absent
    var eventsQuery: Patch<String> = .absent
    var totalQuery: Patch<String> = .absent
    var histogram: Patch<String> = .absent
    var matchers: Patch<String> = .absent
    var thresholdSeconds: Patch<Double> = .absent
    var objective: Patch<Double> = .absent
    var window: Patch<SLO.Window> = .absent
    var hosts: Patch<[String]> = .absent
    var groups: Patch<[String]> = .absent
    var alerting: Patch<Bool> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, description, sli, check, histogram, matchers, objective, window, hosts, groups, alerting
        case ratioCounts = "ratio_counts"
        case eventsQuery = "events_query"
        case totalQuery = "total_query"
        case thresholdSeconds = "threshold_seconds"
    }

    init() {}

    func apply(to slo: inout SLO, checks: CheckStore) throws {
        var errors = APIInputDecoding.wrongFields(self)
        name.assign(CodingKeys.name.rawValue, &errors) { slo.name = $0 }
        description.assign(CodingKeys.description.rawValue, &errors) { slo.description = $0 }
        sli.assign(CodingKeys.sli.rawValue, &errors) { slo.sli = $0 }
        ratioCounts.assign(CodingKeys.ratioCounts.rawValue, &errors) { slo.ratioCounts = $0 }
        eventsQuery.assign(CodingKeys.eventsQuery.rawValue, &errors) { slo.eventsQuery = $0 }
        totalQuery.assign(CodingKeys.totalQuery.rawValue, &errors) { slo.totalQuery = $0 }
        histogram.assign(CodingKeys.histogram.rawValue, &errors) { slo.histogram = $0 }
        matchers.assign(CodingKeys.matchers.rawValue, &errors) { slo.matchers = $0 }
        if let value = thresholdSeconds.orNil { slo.thresholdSeconds = value }
        objective.assign(CodingKeys.objective.rawValue, &errors) { slo.objective = $0 }
        window.assign(CodingKeys.window.rawValue, &errors) { slo.window = $0 }
        hosts.assign(CodingKeys.hosts.rawValue, &errors) { slo.scopeHosts = $0 }
        groups.assign(CodingKeys.groups.rawValue, &errors) { slo.scopeGroups = $0 }
        alerting.assign(CodingKeys.alerting.rawValue, &errors) { slo.alerting = $0 }
        if let value = check.orNil {
            if let name = value, !name.isEmpty {
                if let found = try checks.check(named: name) {
                    slo.checkID = found.id
                } else {
                    errors["check"] = "there is no check named \"\(name)\""
                }
            } else {
                slo.checkID = nil
            }
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }
}

/// SLOs over the API (operators change them, as alert rules) and on the SLO pages.
struct SLOController {
    let area: AreaContext
    let store: SLOStore
    let engine: SLOEngine
    let checks: CheckStore
    let hosts: HostStore

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "slos")
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "SLO id")
        let format = APIOperation.Parameter(name: "format", location: .query, type: "string", description: "sloth (default) or openslo")
        let hours = APIOperation.Parameter(
            name: "hours", location: .query, type: "integer", description: "how far back, in hours (default: the SLO's window, at most 744)")
        api(
            .get, "/api/v1/slos", .view, "listSlos", "Every SLO with its error budget and burn rates, the least budget left first", schema: "SLOList",
            use: list)
        api(
            .post, "/api/v1/slos", .operate, "createSlo", "Add an SLO; its burn-rate alert rule is created with it", request: "SLOInput", status: 201,
            schema: "SLO", use: create)
        api(
            .get, "/api/v1/slos/export", .view, "exportSlos", "Every SLO as a Sloth (prometheus/v1) or OpenSLO (openslo/v1) document",
            parameters: [format], schema: "SLOExportText", contentType: "application/yaml; charset=utf-8", use: export)
        api(
            .post, "/api/v1/slos/import", .operate, "importSlos",
            "Create or update SLOs from Sloth or OpenSLO YAML (event-ratio SLIs); an error for each SLO that cannot be read",
            request: "SLOImportUpload", requestContentType: "application/yaml", schema: "SLOImport", use: importDocument)
        api(.get, "/api/v1/slos/{id}", .view, "getSlo", "One SLO with its error budget", parameters: [id], schema: "SLO", use: get)
        api(
            .get, "/api/v1/slos/{id}/budget", .view, "sloBudgetHistory", "The remaining error budget over time (up to 200 points)",
            parameters: [id, hours], schema: "SLOBudgetHistory", use: budget)
        api(
            .put, "/api/v1/slos/{id}", .operate, "updateSlo",
            "Change an SLO (fields left out keep their value; a new SLI starts counting afresh); only an admin may while its budget is spent or it holds a rollout",
            parameters: [id], request: "SLOInput", schema: "SLO", use: update)
        api(
            .delete, "/api/v1/slos/{id}", .operate, "deleteSlo",
            "Remove an SLO with its alert rule and counted events; only an admin may while its budget is spent or it holds a rollout",
            parameters: [id],
            status: 204, schema: nil, use: delete)
        routes.get("/slos", .view, use: page)
        routes.post("/slos", .operate, use: createFromForm)
        routes.get("/slos/export", .view, use: export)
        routes.post("/slos/import", .operate, use: importFromForm)
        routes.get("/slos/:id", .view, use: sloPage)
        routes.post("/slos/:id", .operate, use: updateFromForm)
        routes.post("/slos/:id/delete", .operate, use: deleteFromForm)
    }

    func load(_ context: StewardRequestContext) throws -> SLO {
        guard let id = context.parameters.get("id", as: Int64.self), let slo = try store.slo(id: id) else {
            throw HTTPError(.notFound, message: "there is no such SLO")
        }
        return slo
    }

    /// An SLO that holds a rollout or has spent its budget is an admin's to change or remove (SLOEngine.lock).
    func refuseWhileLocked(_ slo: SLO, _ context: StewardRequestContext, doing: String) throws {
        guard let reason = try lockReason(slo, isAdmin: context.isAdmin, doing: doing) else { return }
        throw Problem(status: .forbidden, detail: reason)
    }

    func lockReason(_ slo: SLO, isAdmin: Bool, doing: String) throws -> String? {
        guard slo.id != 0, !isAdmin, let lock = try engine.lock(slo) else { return nil }
        return Self.lockedText(lock, doing: "\(doing) it")
    }

    static func lockedText(_ lock: String, doing: String) -> String {
        "\(lock): until it recovers, only an admin may \(doing), so a spent budget is not changed away."
            + " To go on with a held rollout anyway, another approver approves it as urgent with a reason."
    }

    func checkNames() throws -> [Int64: String] { Dictionary(uniqueKeysWithValues: try checks.all().map { ($0.id, $0.name) }) }

    func resource(_ slo: SLO) throws -> SLOResource {
        SLOResource(slo, status: engine.status(slo.id), checkName: slo.checkID.flatMap { try? checks.check(id: $0)?.name })
    }

    /// Save and count at once, so the answer (and the page after it) has a budget.
    func saved(_ slo: SLO, by who: AuditActor) async throws -> SLO {
        let saved = try store.save(slo, by: who, now: Date())
        engine.forget(saved.id)
        try await countNow()
        return saved
    }

    // MARK: API

    /// A cycle now (a new SLO's first day may take seconds of PromQL): on a thread of its own, off the request's pool.
    func countNow() async throws { _ = try await offload { [engine] in try engine.evaluate() } }

    @Sendable func list(request: Request, context: StewardRequestContext) async throws -> Response {
        let names = try checkNames()
        let statuses = Dictionary(uniqueKeysWithValues: engine.allStatuses().map { ($0.slo.id, $0) })
        let slos = try store.all().sorted { ((statuses[$0.id]?.remaining ?? 1), $0.name) < ((statuses[$1.id]?.remaining ?? 1), $1.name) }
        return try APIJSON.response(
            ItemList(items: slos.map { SLOResource($0, status: statuses[$0.id], checkName: $0.checkID.flatMap { names[$0] }) }))
    }

    @Sendable func get(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(try resource(try load(context)))
    }

    @Sendable func create(request: Request, context: StewardRequestContext) async throws -> Response {
        var slo = SLO()
        try await APIInputDecoding.decode(SLOInput.self, from: request).apply(to: &slo, checks: checks)
        return try APIJSON.response(try resource(try await saved(slo, by: context.actor)), status: .created)
    }

    @Sendable func update(request: Request, context: StewardRequestContext) async throws -> Response {
        var slo = try load(context)
        try refuseWhileLocked(slo, context, doing: "change")
        try await APIInputDecoding.decode(SLOInput.self, from: request).apply(to: &slo, checks: checks)
        return try APIJSON.response(try resource(try await saved(slo, by: context.actor)))
    }

    @Sendable func delete(request: Request, context: StewardRequestContext) async throws -> Response {
        let slo = try load(context)
        try refuseWhileLocked(slo, context, doing: "remove")
        _ = try store.delete(id: slo.id, by: context.actor, now: Date())
        engine.forget(slo.id)
        return Response(status: .noContent)
    }

    func history(_ slo: SLO, hours: Int?) throws -> [(time: Int64, remaining: Double?)] {
        let now = EpochMilliseconds.from(Date())
        let span = hours.map { Int64(min(max($0, 1), 744)) * 3_600_000 } ?? SLOMath.window(slo.window, at: now).length
        return try engine.budgetHistory(slo, from: now - span, to: now, points: 200)
    }

    @Sendable func budget(request: Request, context: StewardRequestContext) async throws -> Response {
        let slo = try load(context)
        var hours: Int?
        if let text = request.uri.queryParameters.get("hours") {
            // Minutes are kept 62 days: a 31-day history of a 31-day window is what they can answer exactly.
            guard let value = Int(text), (1...744).contains(value) else { throw Problem.invalid(["hours": "a whole number of hours from 1 to 744"]) }
            hours = value
        }
        let points = try history(slo, hours: hours).map {
            SLOBudgetPoint(
                at: RFC3339.string(milliseconds: $0.time) ?? "", remainingBudgetPercent: Nullable($0.remaining.map { SLOResource.round($0 * 100, 4) })
            )
        }
        return try APIJSON.response(SLOBudgetHistory(slo: slo.name, points: points))
    }

    func exportText(_ format: SLOFormats.Format) throws -> String {
        let allChecks = try checks.all()
        let allHosts = try hosts.all()
        let entries = try store.all().map { slo -> (SLO, Check?, [String]) in
            let covered = slo.scopeHosts.isEmpty && slo.scopeGroups.isEmpty ? [] : allHosts.filter(slo.covers).map(\.name)
            return (slo, allChecks.first { $0.id == slo.checkID }, covered)
        }
        return format == .sloth ? SLOFormats.sloth(entries, service: "steward") : SLOFormats.openSLO(entries, service: "steward")
    }

    @Sendable func export(request: Request, context: StewardRequestContext) async throws -> Response {
        let text = request.uri.queryParameters.get("format") ?? "sloth"
        guard let format = SLOFormats.Format(rawValue: text) else { throw Problem.invalid(["format": "sloth or openslo"]) }
        var headers = HTTPFields()
        headers[.contentType] = "application/yaml; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"steward-slos-\(format.rawValue).yaml\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: try exportText(format))))
    }

    /// Create or update (by name) every SLO the document holds that can be read and saved.
    func importText(_ text: String, by who: AuditActor, isAdmin: Bool) async throws -> SLOImportResult {
        var created: [String] = []
        var updated: [String] = []
        var failures: [SLOImportResult.Failure] = []
        for entry in SLOFormats.parse(text) {
            guard var slo = entry.slo else {
                failures.append(.init(path: entry.path, name: "", message: entry.problem ?? "not read"))
                continue
            }
            let existing = try store.slo(named: slo.name)
            if let existing {
                if let reason = try lockReason(existing, isAdmin: isAdmin, doing: "change") {
                    failures.append(.init(path: entry.path, name: slo.name, message: reason))
                    continue
                }
                slo.id = existing.id
                slo.scopeHosts = existing.scopeHosts
                slo.scopeGroups = existing.scopeGroups
            }
            do {
                let saved = try store.save(slo, by: who, now: Date())
                engine.forget(saved.id)
                if existing == nil { created.append(slo.name) } else { updated.append(slo.name) }
            } catch let problem as Problem {
                let fields = problem.errors.map { $0.keys.sorted().map { "\($0): \(problem.errors![$0]!)" }.joined(separator: "; ") }
                failures.append(.init(path: entry.path, name: slo.name, message: fields ?? problem.detail))
            }
        }
        if !created.isEmpty || !updated.isEmpty { try await countNow() }
        return SLOImportResult(created: created, updated: updated, failures: failures)
    }

    @Sendable func importDocument(request: Request, context: StewardRequestContext) async throws -> Response {
        let body = try await request.body.collect(upTo: 4 << 20)
        let text = String(buffer: body)
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw Problem.invalid(["body": "send a Sloth (version: prometheus/v1) or OpenSLO (apiVersion: openslo/v1, kind: SLO) YAML document"])
        }
        return try APIJSON.response(try await importText(text, by: context.actor, isAdmin: context.isAdmin))
    }

    // MARK: pages

    static func percent(_ value: Double?) -> String {
        guard let value else { return "–" }
        return MetricUnit.trim(value, digits: abs(value) >= 99 && abs(value) < 100 ? 3 : 1) + " %"
    }

    static func duration(_ seconds: Double?) -> String {
        guard let seconds else { return "not burning" }
        if seconds <= 0 { return "spent" }
        if seconds < 3600 { return "\(Int(seconds / 60)) min" }
        if seconds < 172_800 { return String(format: "%.1f h", seconds / 3600) }
        return String(format: "%.0f days", seconds / 86400)
    }

    /// An SLO's row and form; every key a row reads is set, so none resolves to the page's.
    func view(_ slo: SLO, status: SLOStatus?, checkNames: [Int64: String]) -> [String: Any?] {
        var view: [String: Any?] = [
            "id": slo.id, "name": slo.name, "description": slo.description, "sli": slo.sli.rawValue,
            "check": slo.checkID.flatMap { checkNames[$0] } ?? "", "events_query": slo.eventsQuery, "total_query": slo.totalQuery,
            "histogram": slo.histogram, "matchers": slo.matchers, "threshold_seconds": slo.thresholdSeconds.map(PromQL.formatNumber) ?? "",
            "objective": PromQL.formatNumber(slo.objective), "window": slo.window.title, "hosts": slo.scopeHosts.joined(separator: ", "),
            "groups": slo.scopeGroups.joined(separator: ", "), "alerting": slo.alerting,
            "counts_bad": slo.ratioCounts == .bad, "has_description": !slo.description.isEmpty,
        ]
        for kind in SLO.SLIKind.allCases { view["sli_\(kind.rawValue)"] = slo.sli == kind }
        for window in SLO.Window.allCases { view["window_\(window == .month ? "month" : window.rawValue)"] = slo.window == window }
        if slo.scopeHosts.isEmpty && slo.scopeGroups.isEmpty {
            view["scope"] = slo.sli == .probe ? "the check's host" : "all hosts"
        } else {
            view["scope"] = (slo.scopeHosts + slo.scopeGroups.map { "group \($0)" }).joined(separator: ", ")
        }
        view["achieved"] = Self.percent(status?.achieved)
        let remaining = (status?.remaining ?? 1) * 100
        view["remaining"] = Self.percent(remaining)
        view["spent"] = status?.spent ?? false
        view["low"] = remaining < 25
        view["burn_1h"] = status?.burnRates["1h"].map { MetricUnit.trim($0, digits: 2) + "×" } ?? "–"
        view["time_left"] = Self.duration(status?.timeLeftSeconds)
        view["events"] = status.map { "\(MetricUnit.trim($0.events.good, digits: 0)) good of \(MetricUnit.trim($0.events.total, digits: 0))" } ?? "–"
        if let pair = status?.firing {
            view["firing"] =
                "\(pair.severity == .critical ? "page" : "ticket"): \(MetricUnit.trim(status?.burnRates[pair.long] ?? 0, digits: 1))× over \(pair.long) and \(MetricUnit.trim(status?.burnRates[pair.short] ?? 0, digits: 1))× over \(pair.short) (above \(PromQL.formatNumber(pair.factor))×)"
            view["paging"] = pair.severity == .critical
            view["has_firing"] = true
        } else {
            view["firing"] = ""
            view["paging"] = false
            view["has_firing"] = false
        }
        view["problem"] = status?.problem ?? ""
        view["has_problem"] = status?.problem != nil
        return view
    }

    func render(
        _ template: String, title: String, form: SLO, errors: [String: String], request: Request, context: StewardRequestContext,
        status: HTTPResponse.Status = .ok, extra: [String: Any] = [:]
    ) throws -> Response {
        let names = try checkNames()
        let statuses = Dictionary(uniqueKeysWithValues: engine.allStatuses().map { ($0.slo.id, $0) })
        let slos = try store.all().sorted { ((statuses[$0.id]?.remaining ?? 1), $0.name) < ((statuses[$1.id]?.remaining ?? 1), $1.name) }
        var formView = view(form, status: form.id == 0 ? nil : statuses[form.id], checkNames: names)
        let chosenCheck = form.checkID.flatMap { names[$0] }
        formView["check_options"] = try checks.all().map { ViewNode(["option": $0.name, "selected": $0.name == chosenCheck]) }
        formView["hosts_text"] = form.scopeHosts.joined(separator: ", ")
        formView["groups_text"] = form.scopeGroups.joined(separator: ", ")
        var data: [String: Any] = [
            "slos": slos.map { ViewNode(view($0, status: statuses[$0.id], checkNames: names)) }, "has_slos": !slos.isEmpty,
            "form": ViewNode(formView), "errors": ViewNode(errors), "has_errors": !errors.isEmpty, "is_new": form.id == 0,
            "can_change": context.identity?.permissions.contains(.operate) ?? false,
        ]
        data.merge(extra) { _, b in b }
        return area.pages.page(template, title: title, section: "slos", data: data, request: request, context: context, status: status)
    }

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        try render("slos/index", title: "SLOs", form: SLO(), errors: [:], request: request, context: context)
    }

    /// The SLO page's chart and tables: the budget over the window with job and rollout markers, and burn by window.
    func details(_ slo: SLO) throws -> [String: Any] {
        let now = EpochMilliseconds.from(Date())
        let span = SLOMath.window(slo.window, at: now).length
        let points = try engine.budgetHistory(slo, from: now - span, to: now, points: 200)
        let times = points.map(\.time)
        var chart = SVGChart(
            title: "Error budget left", unit: .percent, times: times, step: times.count > 1 ? times[1] - times[0] : 60_000,
            lines: [ChartLine(name: "budget left", values: points.map { $0.remaining.map { $0 * 100 } })])
        chart.fixedMinimum = min(0, (points.compactMap(\.remaining).min() ?? 0) * 100)
        chart.thresholds = [ChartThreshold(value: 0, label: "spent", level: "critical")]
        chart.annotations = try markers(slo, from: now - span, to: now)
        let status = engine.status(slo.id)
        let burn = status?.burnRates ?? [:]
        let windows = SLOMath.windows.map { window -> ViewNode in
            let events = status?.windows[window.name]
            return ViewNode([
                "window": window.name, "burn": burn[window.name].map { MetricUnit.trim($0, digits: 2) + "×" } ?? "no events",
                "error_ratio": events?.errorRatio.map { Self.percent($0 * 100) } ?? "–",
                "events": events.map { MetricUnit.trim($0.total, digits: 0) } ?? "0",
            ])
        }
        let pairs = SLOMath.pairs.map { pair -> ViewNode in
            let fires = (burn[pair.long] ?? 0) > pair.factor && (burn[pair.short] ?? 0) > pair.factor
            return ViewNode([
                "kind": pair.severity == .critical ? "page" : "ticket", "pair": "\(pair.long) and \(pair.short)",
                "factor": PromQL.formatNumber(pair.factor) + "×", "meaning": pair.budgetShare, "fires": fires,
            ])
        }
        let held = try store.holds(slo)
        let holds = held.enumerated().map { index, hold in
            ViewNode(["rollout": hold.rollout, "wave": hold.wave, "last": index == held.count - 1])
        }
        return [
            "budget_chart": chart.render(), "windows": windows, "pairs": pairs, "alert_rule": slo.alertRuleID ?? 0,
            "has_alert_rule": slo.alertRuleID != nil, "marker_count": chart.annotations.count, "holds": holds, "has_holds": !holds.isEmpty,
        ]
    }

    /// Jobs on the covered hosts and rollout waves, as chart markers (at most 60, the newest).
    func markers(_ slo: SLO, from: Int64, to: Int64) throws -> [ChartAnnotation] {
        let allHosts = try hosts.all()
        var covered = Set(allHosts.filter(slo.covers).map(\.name))
        if slo.sli == .probe, let check = try slo.checkID.flatMap({ try checks.check(id: $0) }),
            let host = allHosts.first(where: { $0.id == check.hostID })
        {
            covered = [host.name]
        }
        return try store.database.read { db in
            var markers: [ChartAnnotation] = []
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT w.rollout_id, w.number, w.started_at, w.hosts, w.state, r.title FROM rollout_waves w JOIN rollouts r ON r.id = w.rollout_id
                    WHERE w.started_at BETWEEN ? AND ? ORDER BY w.started_at DESC LIMIT 60
                    """, arguments: [from, to])
            where !covered.isDisjoint(with: JSONText.strings(row["hosts"])) {
                markers.append(
                    ChartAnnotation(
                        time: row["started_at"],
                        label: "rollout #\(row["rollout_id"] as Int64) wave \(row["number"] as Int): \(row["title"] as String)",
                        href: "/rollouts/\(row["rollout_id"] as Int64)", failed: (row["state"] as String) == "failed"))
            }
            for row in try Row.fetchAll(
                db,
                sql:
                    "SELECT id, title, host, started_at, state FROM jobs WHERE started_at BETWEEN ? AND ? AND host IS NOT NULL ORDER BY started_at DESC LIMIT 200",
                arguments: [from, to])
            where covered.contains(row["host"] as String) && markers.count < 60 {
                markers.append(
                    ChartAnnotation(
                        time: row["started_at"], label: "job \(row["id"] as Int64): \(row["title"] as String)", href: "/jobs/\(row["id"] as Int64)",
                        failed: (row["state"] as String) == "failed"))
            }
            return markers
        }
    }

    @Sendable func sloPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let slo = try load(context)
        var extra = try details(slo)
        let locked = try lockReason(slo, isAdmin: context.isAdmin, doing: "change or remove")
        extra["locked"] = locked ?? ""
        extra["has_locked"] = locked != nil
        return try render("slos/slo", title: slo.name, form: slo, errors: [:], request: request, context: context, extra: extra)
    }

    static func list(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "," || $0.isNewline }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The form as the API's input.
    static func input(from form: FormBody) -> SLOInput {
        var input = SLOInput()
        func text(_ key: String) -> String { (form[key] ?? "").trimmingCharacters(in: .whitespaces) }
        input.name = .value(text("name"))
        input.description = .value(text("description"))
        input.sli = SLO.SLIKind(rawValue: text("sli")).map { .value($0) } ?? .invalid(field: "sli", message: SLO.SLIKind.choiceText)
        input.check = .value(text("check"))
        input.ratioCounts = .value(text("ratio_counts") == "bad" ? .bad : .good)
        input.eventsQuery = .value(text("events_query"))
        input.totalQuery = .value(text("total_query"))
        input.histogram = .value(text("histogram"))
        input.matchers = .value(text("matchers"))
        let threshold = text("threshold_seconds")
        input.thresholdSeconds =
            threshold.isEmpty
            ? .null : Double(threshold).map { .value($0) } ?? .invalid(field: "threshold_seconds", message: "a number of seconds, e.g. 0.3")
        input.objective =
            Double(text("objective").replacingOccurrences(of: "%", with: "").trimmingCharacters(in: .whitespaces)).map { .value($0) }
            ?? .invalid(field: "objective", message: "a percentage, e.g. 99.9")
        input.window = SLO.Window(rawValue: text("window")).map { .value($0) } ?? .invalid(field: "window", message: SLO.Window.choiceText)
        input.hosts = .value(list(form["hosts"] ?? ""))
        input.groups = .value(list(form["groups"] ?? ""))
        input.alerting = .value(form["alerting"] == "on")
        return input
    }

    func save(_ request: Request, _ context: StewardRequestContext, base: SLO) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var slo = base
        do {
            try Self.input(from: form).apply(to: &slo, checks: checks)
            let saved = try await saved(slo, by: context.actor)
            return area.pages.redirect(to: "/slos/\(saved.id)", flash: Flash(.success, "Saved SLO \(saved.name)."))
        } catch let problem as Problem {
            return try render(
                base.id == 0 ? "slos/index" : "slos/slo", title: base.id == 0 ? "SLOs" : base.name, form: slo,
                errors: problem.errors ?? ["name": problem.detail], request: request, context: context, status: .unprocessableContent,
                extra: base.id == 0 ? [:] : try details(base))
        }
    }

    @Sendable func createFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        try await save(request, context, base: SLO())
    }

    @Sendable func updateFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        let slo = try load(context)
        if let reason = try lockReason(slo, isAdmin: context.isAdmin, doing: "change") {
            return area.pages.redirect(to: "/slos/\(slo.id)", flash: Flash(.error, reason))
        }
        return try await save(request, context, base: slo)
    }

    @Sendable func deleteFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        let slo = try load(context)
        if let reason = try lockReason(slo, isAdmin: context.isAdmin, doing: "remove") {
            return area.pages.redirect(to: "/slos/\(slo.id)", flash: Flash(.error, reason))
        }
        _ = try store.delete(id: slo.id, by: context.actor, now: Date())
        engine.forget(slo.id)
        return area.pages.redirect(to: "/slos", flash: Flash(.success, "Removed SLO \(slo.name) and its alert rule."))
    }

    @Sendable func importFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let result = try await importText(form["document"] ?? "", by: context.actor, isAdmin: context.isAdmin)
        let done = result.created.count + result.updated.count
        var message = "Imported \(done) SLO\(done == 1 ? "" : "s")"
        if !result.failures.isEmpty {
            message += "; not imported: " + result.failures.map { "\($0.path.isEmpty ? $0.name : $0.path) (\($0.message))" }.joined(separator: "; ")
        }
        return area.pages.redirect(to: "/slos", flash: Flash(result.failures.isEmpty ? .success : .error, message + "."))
    }
}
