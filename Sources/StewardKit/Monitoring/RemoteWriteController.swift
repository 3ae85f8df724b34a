import Foundation
import Hummingbird

/// An endpoint as the API shows it, with how far behind it is; the secret is never shown, only whether one is set.
struct RemoteWriteResource: Codable, Sendable {
    let id: Int64
    let name, url, auth, username: String
    let hasSecret, enabled: Bool
    let pendingSamples, pendingBatches: Int64
    let lagSeconds: Double
    let samplesSent, samplesRejected, samplesDropped, requestsRetried: Int64
    let lastSuccessAt: Nullable<String>
    let lastError: String
    let lastErrorAt, retryAt: Nullable<String>

    init(_ status: RemoteWriteStatus) {
        let endpoint = status.endpoint
        id = endpoint.id
        name = endpoint.name
        url = endpoint.url
        auth = endpoint.auth.rawValue
        username = endpoint.username
        hasSecret = endpoint.secret != nil
        enabled = endpoint.enabled
        pendingSamples = status.pendingSamples
        pendingBatches = status.pendingBatches
        lagSeconds = (status.lagSeconds * 1000).rounded() / 1000
        samplesSent = endpoint.samplesSent
        samplesRejected = endpoint.samplesRejected
        samplesDropped = endpoint.samplesDropped
        requestsRetried = endpoint.requestsRetried
        lastSuccessAt = Nullable(endpoint.lastSuccessAt.flatMap { RFC3339.string(milliseconds: $0) })
        lastError = endpoint.lastError
        lastErrorAt = Nullable(endpoint.lastErrorAt.flatMap { RFC3339.string(milliseconds: $0) })
        retryAt = Nullable(status.retryAt.flatMap { RFC3339.string(milliseconds: $0) })
    }
}

extension RemoteWriteEndpoint.Auth: APIChoice {}

/// The fields of an endpoint a client may send; left out keeps the value, `secret` null removes it.
struct RemoteWriteInput: APIInput {
    var name: Patch<String> = .absent
    var url: Patch<String> = .absent
    var auth: Patch<RemoteWriteEndpoint.Auth> = .absent
    var username: Patch<String> = .absent
    var secret: Patch<String> = .absent
    var enabled: Patch<Bool> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case name, url, auth, username, secret, enabled }

    init() {}

    func apply(to endpoint: inout RemoteWriteEndpoint) throws {
        var errors = APIInputDecoding.wrongFields(self)
        name.assign(CodingKeys.name.rawValue, &errors) { endpoint.name = $0 }
        url.assign(CodingKeys.url.rawValue, &errors) { endpoint.url = $0 }
        auth.assign(CodingKeys.auth.rawValue, &errors) { endpoint.auth = $0 }
        username.assign(CodingKeys.username.rawValue, &errors) { endpoint.username = $0 }
        enabled.assign(CodingKeys.enabled.rawValue, &errors) { endpoint.enabled = $0 }
        if let value = secret.orNil { endpoint.secret = value?.isEmpty == false ? value : nil }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let problems = endpoint.problems()
        guard problems.isEmpty else { throw Problem.invalid(problems) }
    }
}

/// Remote-write endpoints over the API (admins change them; viewers see their state) and on Settings.
struct RemoteWriteController {
    let area: AreaContext
    let remoteWrite: RemoteWrite

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "metrics")
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "id")
        api(
            .get, "/api/v1/remote-write", .view, "listRemoteWrite",
            "Remote-write endpoints, each with its queue: samples pending, lag, sent, rejected (4xx) and dropped (aged out)",
            schema: "RemoteWriteList", use: list)
        api(
            .post, "/api/v1/remote-write", .admin, "createRemoteWrite",
            "Add a Prometheus remote-write endpoint (bearer or basic credentials are stored encrypted); it receives samples from now on",
            request: "RemoteWriteInput", status: 201, schema: "RemoteWrite", use: create)
        api(
            .put, "/api/v1/remote-write/{id}", .admin, "updateRemoteWrite",
            "Change an endpoint (fields left out keep their value; secret null removes it)",
            parameters: [id], request: "RemoteWriteInput", schema: "RemoteWrite", use: update)
        api(
            .delete, "/api/v1/remote-write/{id}", .admin, "deleteRemoteWrite", "Remove an endpoint and its place in the queue", parameters: [id],
            status: 204, schema: nil, use: delete)
        routes.get("/settings/remote-write", .view, use: page)
        routes.post("/settings/remote-write", .admin, use: createFromForm)
        routes.get("/settings/remote-write/:id", .admin, use: endpointPage)
        routes.post("/settings/remote-write/:id", .admin, use: updateFromForm)
        routes.post("/settings/remote-write/:id/delete", .admin, use: deleteFromForm)
    }

    func status(_ id: Int64) throws -> RemoteWriteStatus {
        guard let status = try remoteWrite.statuses().first(where: { $0.endpoint.id == id }) else {
            throw HTTPError(.notFound, message: "there is no such remote-write endpoint")
        }
        return status
    }

    func load(_ context: StewardRequestContext) throws -> RemoteWriteEndpoint {
        guard let id = context.parameters.get("id", as: Int64.self), let endpoint = try remoteWrite.endpoint(id: id) else {
            throw HTTPError(.notFound, message: "there is no such remote-write endpoint")
        }
        return endpoint
    }

    // MARK: API

    @Sendable func list(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(ItemList(items: try remoteWrite.statuses().map(RemoteWriteResource.init)))
    }

    @Sendable func create(request: Request, context: StewardRequestContext) async throws -> Response {
        var endpoint = RemoteWriteEndpoint()
        try await APIInputDecoding.decode(RemoteWriteInput.self, from: request).apply(to: &endpoint)
        let saved = try remoteWrite.save(endpoint, by: context.actor, now: Date())
        return try APIJSON.response(RemoteWriteResource(try status(saved.id)), status: .created)
    }

    @Sendable func update(request: Request, context: StewardRequestContext) async throws -> Response {
        var endpoint = try load(context)
        try await APIInputDecoding.decode(RemoteWriteInput.self, from: request).apply(to: &endpoint)
        let saved = try remoteWrite.save(endpoint, by: context.actor, now: Date())
        return try APIJSON.response(RemoteWriteResource(try status(saved.id)))
    }

    @Sendable func delete(request: Request, context: StewardRequestContext) async throws -> Response {
        _ = try remoteWrite.delete(id: try load(context).id, by: context.actor, now: Date())
        return Response(status: .noContent)
    }

    // MARK: pages

    /// An endpoint's row and form: every key a row's template reads is set, so none resolves to the page's.
    static func view(_ status: RemoteWriteStatus?, form endpoint: RemoteWriteEndpoint) -> [String: Any?] {
        var view: [String: Any?] = [
            "id": endpoint.id, "name": endpoint.name, "url": endpoint.url, "username": endpoint.username, "enabled": endpoint.enabled,
            "has_secret": endpoint.secret != nil, "auth_none": endpoint.auth == .none, "auth_bearer": endpoint.auth == .bearer,
            "auth_basic": endpoint.auth == .basic, "auth": endpoint.auth == .none ? "none" : endpoint.auth.rawValue,
        ]
        let lag = status?.lagSeconds ?? 0
        view["lag"] = lag < 1 ? "none" : lag < 120 ? "\(Int(lag)) s" : lag < 7200 ? "\(Int(lag / 60)) min" : String(format: "%.1f h", lag / 3600)
        view["behind"] = lag >= 60
        view["pending"] = status?.pendingSamples ?? 0
        view["sent"] = endpoint.samplesSent
        view["rejected"] = endpoint.samplesRejected
        view["dropped"] = endpoint.samplesDropped
        view["retried"] = endpoint.requestsRetried
        view["last_success"] = endpoint.lastSuccessAt.map { RFC3339.display(EpochMilliseconds.date($0)) } ?? "never"
        view["last_error"] = endpoint.lastError
        view["last_error_at"] = endpoint.lastErrorAt.map { RFC3339.display(EpochMilliseconds.date($0)) } ?? ""
        view["has_error"] = !endpoint.lastError.isEmpty
        view["retry_at"] = status?.retryAt.map { RFC3339.display(EpochMilliseconds.date($0)) } ?? ""
        view["waiting"] = status?.retryAt != nil
        return view
    }

    func render(
        _ template: String, title: String, form: RemoteWriteEndpoint, errors: [String: String], request: Request,
        context: StewardRequestContext, status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let statuses = try remoteWrite.statuses()
        let data: [String: Any] = [
            "endpoints": statuses.map { ViewNode(Self.view($0, form: $0.endpoint)) }, "has_endpoints": !statuses.isEmpty,
            "form": ViewNode(Self.view(statuses.first { $0.endpoint.id == form.id && form.id != 0 }, form: form)), "errors": ViewNode(errors),
            "has_errors": !errors.isEmpty, "is_new": form.id == 0, "admin": context.identity?.permissions.contains(.admin) ?? false,
        ]
        return area.pages.page(template, title: title, section: "settings", data: data, request: request, context: context, status: status)
    }

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        try render("settings/remote_write", title: "Remote write", form: RemoteWriteEndpoint(), errors: [:], request: request, context: context)
    }

    @Sendable func endpointPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let endpoint = try load(context)
        return try render("settings/remote_write_endpoint", title: endpoint.name, form: endpoint, errors: [:], request: request, context: context)
    }

    /// The form as the API's input: empty secret keeps the stored one, a ticked box removes it.
    static func input(from form: FormBody) -> RemoteWriteInput {
        var input = RemoteWriteInput()
        func text(_ key: String) -> Patch<String> { .value((form[key] ?? "").trimmingCharacters(in: .whitespaces)) }
        input.name = text("name")
        input.url = text("url")
        input.username = text("username")
        if let value = form["auth"], !value.isEmpty {
            input.auth =
                RemoteWriteEndpoint.Auth(rawValue: value).map { .value($0) } ?? .invalid(field: "auth", message: RemoteWriteEndpoint.Auth.choiceText)
        }
        input.enabled = .value(form["enabled"] == "on")
        if let secret = form["secret"], !secret.isEmpty { input.secret = .value(secret) }
        if form["clear_secret"] == "on" { input.secret = .null }
        return input
    }

    func save(_ request: Request, _ context: StewardRequestContext, base: RemoteWriteEndpoint) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var endpoint = base
        do {
            try Self.input(from: form).apply(to: &endpoint)
            let saved = try remoteWrite.save(endpoint, by: context.actor, now: Date())
            return area.pages.redirect(to: "/settings/remote-write", flash: Flash(.success, "Saved remote-write endpoint \(saved.name)."))
        } catch let problem as Problem {
            return try render(
                base.id == 0 ? "settings/remote_write" : "settings/remote_write_endpoint", title: base.id == 0 ? "Remote write" : base.name,
                form: endpoint, errors: problem.errors ?? ["name": problem.detail], request: request, context: context,
                status: .unprocessableContent)
        }
    }

    @Sendable func createFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        try await save(request, context, base: RemoteWriteEndpoint())
    }

    @Sendable func updateFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        try await save(request, context, base: try load(context))
    }

    @Sendable func deleteFromForm(request: Request, context: StewardRequestContext) async throws -> Response {
        let endpoint = try load(context)
        _ = try remoteWrite.delete(id: endpoint.id, by: context.actor, now: Date())
        return area.pages.redirect(to: "/settings/remote-write", flash: Flash(.success, "Removed remote-write endpoint \(endpoint.name)."))
    }
}
