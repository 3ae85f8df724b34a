import Foundation
import Hummingbird

/// A check as the API shows it, with its newest result.
struct CheckResource: Codable, Sendable {
    let id: Int64
    let name, kind, target, method, expectStatus, expectBody, host: String
    let timeoutSeconds: Double
    let intervalSeconds: Int
    let enabled: Bool
    let lastAt: Nullable<String>
    let lastSuccess: Nullable<Bool>
    let lastDurationSeconds: Nullable<Double>
    let lastStatus: Nullable<Int>
    let lastError: String
    let certExpiresAt: Nullable<String>

    init(_ check: Check, hostName: String) {
        id = check.id
        name = check.name
        kind = check.kind.rawValue
        target = check.target
        method = check.method.rawValue
        expectStatus = check.expectStatus
        expectBody = check.expectBody
        host = hostName
        timeoutSeconds = check.timeoutSeconds
        intervalSeconds = check.intervalSeconds
        enabled = check.enabled
        lastAt = Nullable(check.lastAt.flatMap { RFC3339.string(milliseconds: $0) })
        lastSuccess = Nullable(check.lastSuccess)
        lastDurationSeconds = Nullable(check.lastDuration)
        lastStatus = Nullable(check.lastStatus)
        lastError = check.lastError
        certExpiresAt = Nullable(check.certExpiresAt.flatMap { RFC3339.string(milliseconds: $0) })
    }
}

extension Check.Kind: APIChoice {}
extension Check.Method: APIChoice {}

/// The fields of a check a client may send; left out keeps the value (a new check: GET, 200-399, 10 s, every 30 s, on
/// the panel host).
struct CheckInput: APIInput {
    var name: Patch<String> = .absent
    var kind: Patch<Check.Kind> = .absent
    var target: Patch<String> = .absent
    var method: Patch<Check.Method> = .absent
    var expectStatus: Patch<String> = .absent
    var expectBody: Patch<String> = .absent
    var timeoutSeconds: Patch<Double> = .absent
    var intervalSeconds: Patch<Int> = .absent
    var host: Patch<String> = .absent
    var enabled: Patch<Bool> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, kind, target, method, enabled, host
        case expectStatus = "expect_status"
        case expectBody = "expect_body"
        case timeoutSeconds = "timeout_seconds"
        case intervalSeconds = "interval_seconds"
    }

    init() {}

    func apply(to check: inout Check, hosts: HostStore) throws {
        var errors = APIInputDecoding.wrongFields(self)
        name.assign(CodingKeys.name.rawValue, &errors) { check.name = $0 }
        kind.assign(CodingKeys.kind.rawValue, &errors) { check.kind = $0 }
        target.assign(CodingKeys.target.rawValue, &errors) { check.target = $0 }
        method.assign(CodingKeys.method.rawValue, &errors) { check.method = $0 }
        expectStatus.assign(CodingKeys.expectStatus.rawValue, &errors) { check.expectStatus = $0 }
        expectBody.assign(CodingKeys.expectBody.rawValue, &errors) { check.expectBody = $0 }
        timeoutSeconds.assign(CodingKeys.timeoutSeconds.rawValue, &errors) { check.timeoutSeconds = $0 }
        intervalSeconds.assign(CodingKeys.intervalSeconds.rawValue, &errors) { check.intervalSeconds = $0 }
        enabled.assign(CodingKeys.enabled.rawValue, &errors) { check.enabled = $0 }
        // A timeout left out follows a short interval down (the default 10 s does not fit a check every 2 s).
        if case .absent = timeoutSeconds, check.timeoutSeconds > Double(check.intervalSeconds) {
            check.timeoutSeconds = Double(check.intervalSeconds)
        }
        var hostError: String?
        host.assign(CodingKeys.host.rawValue, &errors) { name in
            do {
                if let found = try hosts.host(named: name) { check.hostID = found.id } else { hostError = "there is no host named \"\(name)\"" }
            } catch {
                hostError = "\(error)"
            }
        }
        if let hostError { errors["host"] = hostError }
        if check.hostID == 0, errors["host"] == nil, let panel = try hosts.host(named: HostStore.localhostName) { check.hostID = panel.id }
        var problems = check.problems()
        if errors["host"] != nil { problems["host"] = nil }
        errors.merge(problems) { a, _ in a }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }
}

/// Checks over the API (operators change them, as alert rules) and on the checks pages.
struct ChecksController {
    let area: AreaContext
    let store: CheckStore
    let runner: CheckRunner
    let hosts: HostStore
    let metrics: MetricStore
    /// SLOs that measure a check lock it as they are locked themselves (SLOEngine.lock).
    let slos: SLOEngine

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "slos")
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "check id")
        api(.get, "/api/v1/checks", .view, "listChecks", "Every HTTP(S) and TCP check, with its newest result", schema: "CheckList", use: list)
        api(
            .post, "/api/v1/checks", .operate, "createCheck",
            "Add a check; its results become the series probe_success, probe_duration_seconds, probe_http_status_code and probe_ssl_earliest_cert_expiry of its host",
            request: "CheckInput", status: 201, schema: "Check", use: create)
        api(.get, "/api/v1/checks/{id}", .view, "getCheck", "One check", parameters: [id], schema: "Check", use: get)
        api(
            .put, "/api/v1/checks/{id}", .operate, "updateCheck",
            "Change a check (fields left out keep their value); only an admin may while an SLO measuring it is spent or holds a rollout",
            parameters: [id],
            request: "CheckInput", schema: "Check", use: update)
        api(
            .delete, "/api/v1/checks/{id}", .operate, "deleteCheck", "Remove a check (refused while an SLO measures against it)",
            parameters: [id], status: 204, schema: nil, use: delete)
        api(
            .post, "/api/v1/checks/{id}/run", .operate, "runCheck",
            "Run a check now: its newest result changes; its series (what SLOs count) hold only the scheduled runs", parameters: [id],
            schema: "Check",
            use: runNow)
        routes.get("/checks", .view, use: page)
        routes.post("/checks", .operate, use: createFromForm)
        routes.get("/checks/:id", .view, use: checkPage)
        routes.post("/checks/:id", .operate, use: updateFromForm)
        routes.post("/checks/:id/run", .operate, use: runFromForm)
        routes.post("/checks/:id/delete", .operate, use: deleteFromForm)
    }

    func load(_ context: StewardRequestContext) throws -> Check {
        guard let id = context.parameters.get("id", as: Int64.self), let check = try store.check(id: id) else {
            throw HTTPError(.notFound, message: "there is no such check")
        }
        return check
    }

    func resource(_ check: Check) throws -> CheckResource { CheckResource(check, hostName: try hosts.host(id: check.hostID)?.name ?? "?") }

    // MARK: API

    @Sendable func list(request: Request, context: StewardRequestContext) async throws -> Response {
        let names = Dictionary(uniqueKeysWithValues: try hosts.all().map { ($0.id, $0.name) })
        return try APIJSON.response(ItemList(items: try store.all().map { CheckResource($0, hostName: names[$0.hostID] ?? "?") }))
    }

    @Sendable func get(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(try resource(try load(context)))
    }

    @Sendable func create(request: Request, context: StewardRequestContext) async throws -> Response {
        var check = Check()
        try await APIInputDecoding.decode(CheckInput.self, from: request).apply(to: &check, hosts: hosts)
        return try APIJSON.response(try resource(try store.save(check, by: context.actor, now: Date())), status: .created)
    }

    /// A check that an SLO measures is as locked as that SLO: making it pass (another target, wider expected statuses,
    /// a shorter interval for more good events) or turning it off would change a spent budget away.
    func lockReason(_ check: Check, isAdmin: Bool) throws -> String? {
        guard !isAdmin else { return nil }
        for slo in try slos.store.all() where slo.sli == .probe && slo.checkID == check.id {
            if let lock = try slos.lock(slo) { return SLOController.lockedText(lock, doing: "change check \(check.name), which it measures") }
        }
        return nil
    }

    @Sendable func update(request: Request, context: StewardRequestContext) async throws -> Response {
        var check = try load(context)
        if let reason = try lockReason(check, isAdmin: context.isAdmin) { throw Problem(status: .forbidden, detail: reason) }
        try await APIInputDecoding.decode(CheckInput.self, from: request).apply(to: &check, hosts: hosts)
        return try APIJSON.response(try resource(try store.save(check, by: context.actor, now: Date())))
    }

    @Sendable func delete(request: Request, context: StewardRequestContext) async throws -> Response {
        _ = try store.delete(id: try load(context).id, by: context.actor, now: Date())
        return Response(status: .noContent)
    }

    @Sendable func runNow(request: Request, context: StewardRequestContext) async throws -> Response {
        let check = try load(context)
        await runner.runOnce(check, scheduled: false)
        return try APIJSON.response(try resource(try store.check(id: check.id) ?? check))
    }

    // MARK: pages

    /// A check's row and form; every key a row reads is set, so none resolves to the page's.
    func view(_ check: Check, hostNames: [Int64: String]) -> [String: Any?] {
        var view: [String: Any?] = [
            "id": check.id, "name": check.name, "target": check.target, "kind": check.kind.rawValue, "kind_http": check.kind == .http,
            "kind_tcp": check.kind == .tcp, "method": check.method.rawValue, "method_get": check.method == .get,
            "method_head": check.method == .head, "method_post": check.method == .post, "expect_status": check.expectStatus,
            "expect_body": check.expectBody, "timeout_seconds": PromQL.formatNumber(check.timeoutSeconds),
            "interval_seconds": check.intervalSeconds, "enabled": check.enabled, "host": hostNames[check.hostID] ?? "",
            "host_id": check.hostID,
        ]
        view["never_run"] = check.lastAt == nil
        view["last_ok"] = check.lastSuccess == true
        view["last_failed"] = check.lastSuccess == false
        view["last_at"] = check.lastAt.map { RFC3339.display(EpochMilliseconds.date($0)) } ?? "never"
        view["last_duration"] = check.lastDuration.map { MetricUnit.seconds.format($0) } ?? "–"
        view["last_status"] = check.lastStatus.map(String.init) ?? ""
        view["last_error"] = check.lastError
        if let expiry = check.certExpiresAt {
            let days = Double(expiry - EpochMilliseconds.from(Date())) / 86_400_000
            view["cert"] = RFC3339.display(EpochMilliseconds.date(expiry)) + String(format: " (%.0f days)", days)
            view["cert_soon"] = days < 14
        } else {
            view["cert"] = ""
            view["cert_soon"] = false
        }
        return view
    }

    func render(
        _ template: String, title: String, form: Check, errors: [String: String], request: Request, context: StewardRequestContext,
        status: HTTPResponse.Status = .ok, extra: [String: Any] = [:]
    ) throws -> Response {
        let allHosts = try hosts.all()
        let names = Dictionary(uniqueKeysWithValues: allHosts.map { ($0.id, $0.name) })
        let checks = try store.all()
        var formView = view(form, hostNames: names)
        let chosen = form.hostID == 0 ? allHosts.first { $0.transport == .local }?.id : form.hostID
        formView["host_options"] = allHosts.map { ViewNode(["option": $0.name, "selected": $0.id == chosen]) }
        var data: [String: Any] = [
            "checks": checks.map { ViewNode(view($0, hostNames: names)) }, "has_checks": !checks.isEmpty, "form": ViewNode(formView),
            "errors": ViewNode(errors), "has_errors": !errors.isEmpty, "is_new": form.id == 0,
            "can_change": context.identity?.permissions.contains(.operate) ?? false,
        ]
        data.merge(extra) { _, b in b }
        return area.pages.page(template, title: title, section: "checks", data: data, request: request, context: context, status: status)
    }

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        try render("checks/index", title: "Checks", form: Check(), errors: [:], request: request, context: context)
    }

    @Sendable func checkPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let check = try load(context)
        var extra = try charts(check)
        let locked = try lockReason(check, isAdmin: context.isAdmin)
        extra["locked"] = locked ?? ""
        extra["has_locked"] = locked != nil
        return try render("checks/check", title: check.name, form: check, errors: [:], request: request, context: context, extra: extra)
    }

    /// Success and duration over the last 24 hours, in 5-minute steps.
    func charts(_ check: Check) throws -> [String: Any] {
        let now = EpochMilliseconds.from(Date())
        let step: Int64 = 300_000
        let start = SLOMath.minute(now - 86_400_000)
        let times = stride(from: start, through: now, by: Int(step)).map { Int64($0) }
        func buckets(_ name: String, _ fold: ([Double]) -> Double?) throws -> [Double?] {
            guard let series = metrics.series(hostID: check.hostID, name: name, labels: check.seriesLabels) else {
                return Array(repeating: nil, count: times.count)
            }
            let raw = try metrics.raw(series.id, from: start, to: now)
            var grouped = [[Double]](repeating: [], count: times.count)
            for (time, value) in zip(raw.times, raw.values) {
                let index = Int((time - start) / step)
                if index >= 0 && index < grouped.count { grouped[index].append(value) }
            }
            return grouped.map { $0.isEmpty ? nil : fold($0) }
        }
        let success = try buckets("probe_success") { $0.reduce(0, +) / Double($0.count) * 100 }
        let duration = try buckets("probe_duration_seconds") { $0.max() }
        let successChart = SVGChart(
            title: "Success (share of runs)", unit: .percent, times: times, step: step, lines: [ChartLine(name: "success", values: success)])
        let durationChart = SVGChart(
            title: "Duration (slowest run)", unit: .seconds, times: times, step: step, lines: [ChartLine(name: "duration", values: duration)])
        let runs = success.compactMap { $0 }
        return [
            "success_chart": successChart.render(), "duration_chart": durationChart.render(),
            "success_24h": runs.isEmpty ? "no runs" : MetricUnit.trim(runs.reduce(0, +) / Double(runs.count), digits: 2) + " %",
        ]
    }

    /// The form as the API's input.
    static func input(from form: FormBody) -> CheckInput {
        var input = CheckInput()
        func text(_ key: String) -> String { (form[key] ?? "").trimmingCharacters(in: .whitespaces) }
        input.name = .value(text("name"))
        input.target = .value(text("target"))
        input.kind = Check.Kind(rawValue: text("kind")).map { .value($0) } ?? .invalid(field: "kind", message: Check.Kind.choiceText)
        input.method = Check.Method(rawValue: text("method")).map { .value($0) } ?? .invalid(field: "method", message: Check.Method.choiceText)
        input.expectStatus = .value(text("expect_status"))
        input.expectBody = .value(form["expect_body"] ?? "")
        input.timeoutSeconds =
            Double(text("timeout_seconds")).map { .value($0) } ?? .invalid(field: "timeout_seconds", message: "a number of seconds, e.g. 10")
        input.intervalSeconds =
            Int(text("interval_seconds")).map { .value($0) } ?? .invalid(field: "interval_seconds", message: "a whole number of seconds, e.g. 30")
        input.host = .value(text("host"))
        input.enabled = .value(form["enabled"] == "on")
        return input
    }

    func save(_ request: Request, _ context: StewardRequestContext, base: Check) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var check = base
        do {
            try Self.input(from: form).apply(to: &check, hosts: hosts)
            let saved = try store.save(check, by: context.actor, now: Date())
            return area.pages.redirect(to: "/checks/\(saved.id)", flash: Flash(.success, "Saved check \(saved.name)."))
        } catch let problem as Problem {
            return try render(
                base.id == 0 ? "checks/index" : "checks/check", title: base.id == 0 ? "Checks" : base.name, form: check,
                errors: problem.errors ?? ["name": problem.detail], request: request, context: context, status: .unprocessableContent,
                extra: base.id == 0 ? [:] : try charts(base))
        }
    }

    @Sendable func createFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        try await save(request, context, base: Check())
    }

    @Sendable func updateFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        let check = try load(context)
        if let reason = try lockReason(check, isAdmin: context.isAdmin) {
            return area.pages.redirect(to: "/checks/\(check.id)", flash: Flash(.error, reason))
        }
        return try await save(request, context, base: check)
    }

    @Sendable func runFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        let check = try load(context)
        let result = await runner.runOnce(check, scheduled: false)
        return area.pages.redirect(
            to: "/checks/\(check.id)",
            flash: result.success ? Flash(.success, "Check \(check.name) passed.") : Flash(.error, "Check \(check.name) failed: \(result.error)"))
    }

    @Sendable func deleteFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        let check = try load(context)
        do {
            _ = try store.delete(id: check.id, by: context.actor, now: Date())
        } catch let problem as Problem {
            return area.pages.redirect(to: "/checks/\(check.id)", flash: Flash(.error, problem.detail))
        }
        return area.pages.redirect(to: "/checks", flash: Flash(.success, "Removed check \(check.name)."))
    }
}
