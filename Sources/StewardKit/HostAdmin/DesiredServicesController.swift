import Foundation
import GRDB
import Hummingbird

/// Services as code: definitions in the config repo (services/NAME.yml), drift from each host's newest services
/// reading, and converge jobs. Operators keep regular units on fleet hosts; sshd, Steward's own units and definitions
/// that reach the panel host are an admin's.
struct DesiredServicesController {
    let area: AreaContext
    let engine: Engine
    let lock: RepositoryLock
    let store: HostReadingStore

    var repository: ConfigRepository { engine.repository }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "services")
        routes.get("/services/desired", .view, use: page)
        routes.post("/services/desired", .operate, use: saveFromPage)
        routes.post("/services/desired/:name/converge", .operate, use: convergeFromPage)
        let name = APIOperation.Parameter(name: "name", location: .path, type: "string", description: "the definition's name (services/NAME.yml)")
        api(
            .get, "/api/v1/services/desired", .view, "desiredServices",
            "Unit definitions from the config repo (services/NAME.yml), each with the hosts that drift from it", schema: "DesiredServices",
            use: apiList)
        api(
            .put, "/api/v1/services/desired/{name}", .operate, "saveDesiredService",
            "Write services/NAME.yml in the config repo, committed by the caller (NAME is the unit without .service)", parameters: [name],
            request: "DesiredServiceInput", reply: "The commit", schema: "DefinitionCommit", use: apiSave)
        api(
            .post, "/api/v1/services/desired/{name}/converge", .operate, "convergeDesiredService",
            "Make every drifting host match the definition, as a job (ansible.builtin.systemd_service)", parameters: [name], status: 202,
            reply: "The job", schema: "Job", use: apiConverge)
    }

    // MARK: definitions and drift

    func definitions() throws -> [(path: String, result: Result<DesiredService, AccountError>)] {
        try repository.files().filter(DesiredService.isDefinition).map { path in
            let text = (try? repository.read(path)) ?? nil
            return (path, Result { () throws(AccountError) -> DesiredService in try DesiredService.parse(text ?? "") })
        }
    }

    /// Every host a definition reaches, disabled ones too (enabling one later must not widen an operator's reach).
    func reached(_ definition: DesiredService) throws -> [Host] {
        try engine.hosts.all().filter { host in definition.applyTo.contains { $0 == host.name || host.groups.contains($0) } }
    }

    func drift(_ definition: DesiredService) throws -> [(host: Host, drift: [String])] {
        try reached(definition).filter(\.enabled).map { host in
            (host, definition.drift(in: try store.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: host.id)))
        }
    }

    /// Why only an admin may keep this definition: sshd or Steward's units, or a host where Steward itself runs.
    func adminReason(_ definition: DesiredService) throws -> String? {
        for host in try reached(definition) {
            if let reason = UnitGuard.adminReason(definition.unit, on: host) { return reason }
        }
        return nil
    }

    func save(_ definition: DesiredService, message: String, context: StewardRequestContext) async throws -> String {
        var errors = definition.problems()
        if errors.isEmpty, !context.isAdmin, let reason = try adminReason(definition) {
            errors["unit"] = "only an admin may define it: \(reason)"
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let before = try repository.head()
        let after: String
        do {
            after = try await repository.save(definition.path, content: definition.yaml, message: message, author: context.actor.actor, lock: lock)
        } catch let error as AccessError {
            throw Problem.invalid(["message": error.message])
        }
        try await engine.database.write { db in
            try AuditLog.append(
                db, by: context.actor, action: "config.commit", target: "config:\(definition.path)", before: ["commit": before],
                after: ["commit": after, "message": message], now: Date())
        }
        return after
    }

    func converge(_ context: StewardRequestContext) async throws -> Job {
        let name = context.parameters.get("name") ?? ""
        let path = DesiredService.directory + name + ".yml"
        guard !name.isEmpty, !name.contains("/"), !name.contains(".."), let text = try repository.read(path) else {
            throw Problem(status: .notFound, detail: "there is no definition \(path)")
        }
        let definition: DesiredService
        do { definition = try DesiredService.parse(text) } catch { throw Problem.invalid(error.errors) }
        if !context.isAdmin, let reason = try adminReason(definition) {
            throw Problem(status: .forbidden, detail: "Only an admin may converge \(path): \(reason).")
        }
        let targets = try drift(definition).filter {
            !$0.drift.isEmpty && $0.drift != ["services not read yet"] && !$0.drift[0].hasSuffix("is not on the host")
        }
        guard !targets.isEmpty else {
            throw Problem(status: .conflict, detail: "no host can be converged: every host matches \(path), has not been read, or lacks the unit")
        }
        let convergence = ServiceConvergence(
            path: path, unit: definition.unit, state: definition.state, enabled: definition.enabled, hostIds: targets.map(\.host.id))
        var request = JobRequest(
            kind: ServiceConvergence.kind, title: "Converge \(path) on " + targets.map(\.host.name).joined(separator: ", "),
            params: String(decoding: try JSONEncoder().encode(convergence), as: UTF8.self),
            host: targets.count == 1 ? targets[0].host.name : nil, startedBy: context.actor.actor, reason: convergence.moduleCall,
            source: context.clientAddress)
        request.audit = JobAudit(
            by: context.actor, action: "service.converge",
            after: [
                "definition": .string(path), "module_call": .string(convergence.moduleCall),
                "hosts": .array(targets.map { .string($0.host.name) }),
            ])
        return try await area.runner.enqueue(request)
    }

    // MARK: pages

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        let items = try definitions().map { path, result -> ViewNode in
            switch result {
            case .success(let definition):
                let hosts = try drift(definition)
                let drifting = hosts.filter { !$0.drift.isEmpty }.count
                return ViewNode([
                    "def_path": path, "def_name": String(path.dropFirst(DesiredService.directory.count).dropLast(4)), "def_unit": definition.unit,
                    "def_state": definition.state, "def_enabled": definition.enabled ? "enabled" : "disabled",
                    "def_apply_to": definition.applyTo.joined(separator: ", "), "drifting": drifting, "in_sync": drifting == 0,
                    "def_hosts": hosts.map {
                        ViewNode(["def_host": $0.host.name, "def_ok": $0.drift.isEmpty, "def_drift": $0.drift.joined(separator: "; ")])
                    },
                ])
            case .failure(let error):
                return ViewNode(["def_path": path, "def_invalid": error.errors.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")])
            }
        }
        return area.pages.page(
            "services/desired", title: "Services as code", section: "services",
            data: ["items": items, "empty": items.isEmpty, "operator": context.identity?.permissions.contains(.operate) ?? false], request: request,
            context: context)
    }

    @Sendable func saveFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let definition = DesiredService.from { form[$0] }
        do {
            _ = try await save(definition, message: form["message"] ?? "", context: context)
            return area.pages.redirect(to: "/services/desired", flash: Flash(.success, "\(definition.path) is committed. Converge it to apply it."))
        } catch let problem as Problem {
            return area.pages.redirect(
                to: "/services/desired", flash: Flash(.error, "Not saved: " + (problem.errors.map(ServicesController.describe) ?? problem.detail)))
        }
    }

    @Sendable func convergeFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        do {
            let job = try await converge(context)
            return area.pages.redirect(to: "/jobs/\(job.id)", flash: Flash(.success, "Started \"\(job.title)\" as job \(job.id)."))
        } catch let problem as Problem {
            return area.pages.redirect(
                to: "/services/desired", flash: Flash(.info, problem.errors.map(ServicesController.describe) ?? problem.detail))
        }
    }

    // MARK: API

    @Sendable func apiList(request: Request, context: StewardRequestContext) async throws -> Response {
        let items = try definitions().map { path, result -> DesiredServiceResource in
            switch result {
            case .success(let definition):
                let hosts = try drift(definition)
                return DesiredServiceResource(
                    path: path, unit: definition.unit, state: definition.state, enabled: definition.enabled, applyTo: definition.applyTo,
                    hosts: hosts.map { .init(host: $0.host.name, inSync: $0.drift.isEmpty, drift: $0.drift) },
                    drifting: hosts.filter { !$0.drift.isEmpty }.map(\.host.name), errors: nil)
            case .failure(let error):
                return DesiredServiceResource(
                    path: path, unit: nil, state: nil, enabled: nil, applyTo: nil, hosts: nil, drifting: nil, errors: error.errors)
            }
        }
        return try APIJSON.response(ItemList(items: items))
    }

    @Sendable func apiSave(request: Request, context: StewardRequestContext) async throws -> Response {
        let input = try await APIInputDecoding.decode(DesiredServiceInput.self, from: request, limit: 1 << 14)
        var errors = APIInputDecoding.wrongFields(input)
        if input.unit.given == nil, errors["unit"] == nil { errors["unit"] = "required: the unit's full name, such as nginx.service" }
        if input.applyTo.given == nil, errors["apply_to"] == nil { errors["apply_to"] = "required: the host groups (or hosts), like [\"web\"]" }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let definition = DesiredService(
            unit: input.unit.given ?? "", state: input.state.given ?? "started", enabled: input.enabled.given ?? true,
            applyTo: input.applyTo.given ?? [])
        if definition.name != context.parameters.get("name") {
            throw Problem.invalid(["unit": "\(definition.unit) is kept in \(definition.path); put it at /api/v1/services/desired/\(definition.name)"])
        }
        let commit = try await save(definition, message: input.message.given ?? "", context: context)
        return try APIJSON.response(DesiredSaved(commit: commit, path: definition.path))
    }

    @Sendable func apiConverge(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(JobResource(try await converge(context)), status: .accepted)
    }
}

struct DesiredServiceInput: APIInput {
    var unit: Patch<String> = .absent
    var state: Patch<String> = .absent
    var enabled: Patch<Bool> = .absent
    var applyTo: Patch<[String]> = .absent
    var message: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case unit, state, enabled, message
        case applyTo = "apply_to"
    }
}

/// A unit definition as the API lists it, with drift per host, or why its file does not parse.
struct DesiredServiceResource: Codable, Sendable {
    struct HostDrift: Codable, Sendable {
        let host: String
        let inSync: Bool
        let drift: [String]
    }
    let path: String
    let unit: String?
    let state: String?
    let enabled: Bool?
    let applyTo: [String]?
    let hosts: [HostDrift]?
    let drifting: [String]?
    let errors: [String: String]?
}
