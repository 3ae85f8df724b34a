import Foundation
import GRDB
import HTTPTypes
import Hummingbird

/// Users and groups as code: definitions in the config repo (users/NAME.yml, users/groups/NAME.yml), a drift report,
/// and converge jobs. Both kinds share every handler through `DesiredDefinition`.
struct DesiredAccountsController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let engine: Engine
    let boundary: RoleBoundary
    let lock: RepositoryLock

    var repository: ConfigRepository { engine.repository }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "accounts")
        routes.get("/accounts/desired", .view, use: page)
        api(
            .get, "/api/v1/accounts/desired", .view, "desiredUsers",
            "User and group definitions from the config repo, each with the hosts that drift from it", schema: "DesiredUsers", use: apiList)
        addRoutes(for: DesiredUser.self, segment: "desired", schema: "DesiredUser", to: routes)
        addRoutes(for: DesiredGroup.self, segment: "desired-groups", schema: "DesiredGroup", to: routes)
    }

    func addRoutes<D: DesiredDefinition>(for type: D.Type, segment: String, schema: String, to routes: Routes) {
        routes.post("/accounts/\(segment)", .operate) { request, context in try await saveFromPage(D.self, request: request, context: context) }
        routes.post("/accounts/\(segment)/:name/converge", .operate) { _, context in try await convergeFromPage(D.self, context: context) }
        let nameParameter = APIOperation.Parameter(name: "name", location: .path, type: "string", description: "\(D.noun) name")
        let noun = D.noun.capitalized
        let api = area.docs.routes(routes, tag: "accounts")
        api(
            .put, "/api/v1/accounts/\(segment)/{name}", .operate, "saveDesired\(noun)",
            "Write \(D.directory)NAME.yml in the config repo, committed by the caller", parameters: [nameParameter], request: schema,
            reply: "The commit", schema: "DefinitionCommit"
        ) { request, context in try await apiSave(D.self, request: request, context: context) }
        api(
            .post, "/api/v1/accounts/\(segment)/{name}/converge", .operate, "convergeDesired\(noun)",
            "Make every drifting host match the \(D.noun) definition, as a job", parameters: [nameParameter], status: 202, reply: "The job",
            schema: "Job"
        ) { _, context in try await apiConverge(D.self, context: context) }
    }

    // MARK: definitions and drift

    func definitions<D: DesiredDefinition>(_ type: D.Type) throws -> [(path: String, result: Result<D, AccountError>)] {
        try repository.files().filter(D.isDefinition).map { path in
            let text = (try? repository.read(path)) ?? nil
            return (path, Result { () throws(AccountError) -> D in try D.parse(text ?? "") })
        }
    }

    /// The enabled hosts a definition applies to, each with how it differs.
    func drift<D: DesiredDefinition>(_ definition: D) throws -> [(host: Host, drift: [String])] {
        let hosts = try engine.hosts.all().filter { host in
            host.enabled && definition.applyTo.contains { $0 == host.name || host.groups.contains($0) }
        }
        return try hosts.map { host in
            guard let facts = try HostFacts.latest(engine.database, hostID: host.id) else { return (host, ["no facts yet"]) }
            return (host, definition.drift(on: facts))
        }
    }

    static func errorText(_ error: AccountError) -> String {
        error.errors.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")
    }

    func pageItems<D: DesiredDefinition>(_ type: D.Type) throws -> [ViewNode] {
        try definitions(D.self).map { path, result in
            switch result {
            case .success(let definition):
                let hosts = try drift(definition)
                let drifting = hosts.filter { !$0.drift.isEmpty }.count
                return ViewNode([
                    "path": path, "name": definition.name, "apply_to": definition.applyTo.joined(separator: ", "),
                    "state": definition.present ? "present" : "absent",
                    "hosts": hosts.map { ViewNode(["host": $0.host.name, "ok": $0.drift.isEmpty, "drift": $0.drift.joined(separator: "; ")]) },
                    "drifting": drifting, "in_sync": drifting == 0,
                ])
            case .failure(let error):
                return ViewNode(["path": path, "invalid": Self.errorText(error)])
            }
        }
    }

    func apiItems<D: DesiredDefinition>(_ type: D.Type) throws -> [DesiredDefinitionResource] {
        try definitions(D.self).map { path, result in
            switch result {
            case .success(let definition):
                let hosts = try drift(definition)
                return DesiredDefinitionResource(
                    kind: D.noun, path: path, name: definition.name, applyTo: definition.applyTo, state: definition.present ? "present" : "absent",
                    hosts: hosts.map { .init(host: $0.host.name, inSync: $0.drift.isEmpty, drift: $0.drift) },
                    drifting: hosts.filter { !$0.drift.isEmpty }.map(\.host.name))
            case .failure(let error):
                return DesiredDefinitionResource(kind: D.noun, path: path, errors: error.errors)
            }
        }
    }

    // MARK: save and converge

    /// Validate for the caller, then commit the definition's file as the caller.
    func save<D: DesiredDefinition>(_ definition: D, message: String, context: Context) async throws -> String {
        let isAdmin = context.identity?.permissions.contains(.admin) ?? false
        var errors = definition.problems(isAdmin: isAdmin)
        if !isAdmin, let problem = try boundaryProblem(definition) { errors["name"] = problem }
        do { _ = try D.parse(definition.yaml) } catch { errors.merge(error.errors) { first, _ in first } }
        guard errors.isEmpty else { throw AccountError(errors: errors) }
        let before = try repository.head()
        let after = try await repository.save(definition.path, content: definition.yaml, message: message, author: context.actor.actor, lock: lock)
        try await engine.database.write { db in
            try AuditLog.append(
                db, by: context.actor, action: "config.commit", target: "config:\(definition.path)", before: ["commit": before],
                after: ["commit": after, "message": message], now: Date())
        }
        return after
    }

    /// Why only an admin may save this definition: it reaches the panel host, names an account that holds a Steward
    /// role, or puts someone into a group that holds one (SECURITY.md class 14).
    func boundaryProblem<D: DesiredDefinition>(_ definition: D) throws -> String? {
        // Disabled hosts count too: enabling one later must not make an operator's definition reach it.
        let reached = try engine.hosts.all().filter { host in
            definition.applyTo.contains(host.name) || host.groups.contains(where: definition.applyTo.contains)
        }
        if let panel = reached.first(where: { $0.transport == .local }) {
            return "this definition applies to \(panel.name), the panel host; only an admin may define accounts there"
        }
        if let user = definition as? DesiredUser {
            if let problem = try boundary.userProblem(user.name, on: nil, facts: nil) { return problem }
            for group in user.groups ?? [] {
                if let problem = try boundary.groupProblem(group, on: nil) { return problem }
            }
        }
        if let group = definition as? DesiredGroup, let problem = try boundary.groupProblem(group.name, on: nil) { return problem }
        return nil
    }

    /// A job that makes the drifting hosts match the definition named in the route.
    func converge<D: DesiredDefinition>(_ type: D.Type, context: Context) async throws -> Job {
        let name = context.parameters.get("name") ?? ""
        let path = D.directory + name + ".yml"
        guard AccountRules.name(name, kind: D.noun) == nil, let text = try repository.read(path) else {
            throw AccountError(errors: ["name": "there is no definition \(path)"])
        }
        let definition = try D.parse(text)
        let targets = try drift(definition).filter { !$0.drift.isEmpty }.map(\.host.name)
        guard !targets.isEmpty else { throw AccountError(errors: ["name": "every host already matches \(path)"]) }
        var run = PlaybookRun(playbook: "playbooks/users.yml", targets: targets)
        run.variables = String(
            decoding: try JSONSerialization.data(withJSONObject: definition.convergeVariables, options: [.sortedKeys]), as: UTF8.self)
        var request = try engine.request(run, startedBy: context.actor.actor, reason: "converge \(path)")
        request.title = "Converge \(D.noun) \(name) on " + targets.joined(separator: ", ")
        request.source = context.clientAddress
        return try await area.runner.enqueue(request)
    }

    // MARK: pages

    @Sendable func page(request: Request, context: Context) async throws -> Response {
        let items = try pageItems(DesiredUser.self)
        let groupItems = try pageItems(DesiredGroup.self)
        return area.pages.page(
            "accounts/desired", title: "Users as code", section: "accounts",
            data: [
                "items": items, "group_items": groupItems, "empty": items.isEmpty && groupItems.isEmpty,
                "operator": context.identity?.permissions.contains(.operate) ?? false,
            ], request: request, context: context)
    }

    func saveFromPage<D: DesiredDefinition>(_ type: D.Type, request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let definition = D.from { form[$0] }
        do {
            _ = try await save(definition, message: form["message"] ?? "", context: context)
            return area.pages.redirect(to: "/accounts/desired", flash: Flash(.success, "\(definition.path) is committed. Converge it to apply it."))
        } catch let error as AccountError {
            return area.pages.redirect(to: "/accounts/desired", flash: Flash(.error, "Not saved: " + Self.errorText(error)))
        } catch let error as AccessError {
            return area.pages.redirect(to: "/accounts/desired", flash: Flash(.error, "Not saved: \(error.message)"))
        }
    }

    func convergeFromPage<D: DesiredDefinition>(_ type: D.Type, context: Context) async throws -> Response {
        do {
            let job = try await converge(D.self, context: context)
            return area.pages.redirect(to: "/jobs/\(job.id)")
        } catch let error as AccountError {
            return area.pages.redirect(to: "/accounts/desired", flash: Flash(.info, error.errors.values.sorted().joined(separator: "; ")))
        }
    }

    // MARK: API

    @Sendable func apiList(request: Request, context: Context) async throws -> Response {
        try APIJSON.response(ItemList(items: try apiItems(DesiredUser.self) + apiItems(DesiredGroup.self)))
    }

    func apiSave<D: DesiredDefinition>(_ type: D.Type, request: Request, context: Context) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 16)
        guard var object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(body.readableBytesView)) else {
            throw Problem.badRequest("the body must be a JSON object of the definition's fields and a commit message")
        }
        object["name"] = .string(context.parameters.get("name") ?? "")
        let definition = D.from { key in
            switch object[key] {
            case .array(let list)?: return list.map(\.text).joined(separator: key == "authorized_keys" ? "\n" : ",")
            case .integer(let number)?: return String(number)
            case .string(let text)?: return text
            default: return nil
            }
        }
        do {
            let message: String
            if case .string(let text)? = object["message"] { message = text } else { message = "" }
            let commit = try await save(definition, message: message, context: context)
            return try APIJSON.response(DesiredSaved(commit: commit, path: definition.path))
        } catch let error as AccountError {
            throw Problem.invalid(error.errors)
        } catch let error as AccessError {
            throw Problem.invalid(["message": error.message])
        }
    }

    func apiConverge<D: DesiredDefinition>(_ type: D.Type, context: Context) async throws -> Response {
        do {
            let job = try await converge(D.self, context: context)
            return try APIJSON.response(JobResource(job), status: .accepted)
        } catch let error as AccountError {
            throw Problem(status: .conflict, detail: error.errors.values.sorted().joined(separator: "; "))
        }
    }
}

/// A desired user or group as the API lists it: its definition and drift per host, or why its file does not parse.
struct DesiredDefinitionResource: Codable, Sendable {
    struct HostDrift: Codable, Sendable {
        let host: String
        let inSync: Bool
        let drift: [String]
    }
    var kind, path: String
    var name: String?
    var applyTo: [String]?
    var state: String?
    var hosts: [HostDrift]?
    var drifting: [String]?
    var errors: [String: String]?

    enum CodingKeys: String, CodingKey {
        case kind, path, name, state, hosts, drifting, errors, applyTo
    }
}

/// A definition committed to the config repository.
struct DesiredSaved: Codable, Sendable {
    let commit, path: String
}
