import Foundation
import GRDB
import HTTPTypes
import Hummingbird

/// Users as code: definitions in the config repo (users/NAME.yml), a drift report, and converge jobs.
struct DesiredAccountsController {
    typealias Context = StewardRequestContext
    let engine: Engine
    let jobs: JobRunner
    let lock: RepositoryLock
    let pages: PageRenderer
    let docs: APIDocumentation

    var repository: ConfigRepository { engine.repository }

    func addRoutes(to routes: Routes) {
        routes.get("/accounts/desired", .view, use: page)
        routes.post("/accounts/desired", .operate, use: saveFromPage)
        routes.post("/accounts/desired/:name/converge", .operate, use: convergeFromPage)
        routes.post("/accounts/desired-groups", .operate, use: saveGroupFromPage)
        routes.post("/accounts/desired-groups/:name/converge", .operate, use: convergeGroupFromPage)
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/accounts/desired", operationID: "desiredUsers",
                summary: "User definitions from the config repo, each with the hosts that drift from it", tag: "accounts",
                replies: [.init(status: 200, description: "Definitions and drift", schema: "DesiredUsers")]))
        routes.get("/api/v1/accounts/desired", .view, use: apiList)
        let nameParameter = APIOperation.Parameter(name: "name", location: .path, type: "string", description: "user name")
        docs.add(
            APIOperation(
                method: .put, path: "/api/v1/accounts/desired/{name}", operationID: "saveDesiredUser",
                summary: "Write users/NAME.yml in the config repo, committed by the caller", tag: "accounts", parameters: [nameParameter],
                requestSchema: "DesiredUser", replies: [.init(status: 200, description: "The commit", schema: "Commit")]))
        routes.put("/api/v1/accounts/desired/:name", .operate, use: apiSave)
        docs.add(
            APIOperation(
                method: .post, path: "/api/v1/accounts/desired/{name}/converge", operationID: "convergeDesiredUser",
                summary: "Make every drifting host match the definition, as a job", tag: "accounts", parameters: [nameParameter],
                replies: [.init(status: 202, description: "The job", schema: "Job")]))
        routes.post("/api/v1/accounts/desired/:name/converge", .operate, use: apiConverge)
        docs.add(
            APIOperation(
                method: .put, path: "/api/v1/accounts/desired-groups/{name}", operationID: "saveDesiredGroup",
                summary: "Write users/groups/NAME.yml in the config repo, committed by the caller", tag: "accounts", parameters: [nameParameter],
                requestSchema: "DesiredGroup", replies: [.init(status: 200, description: "The commit", schema: "Commit")]))
        routes.put("/api/v1/accounts/desired-groups/:name", .operate, use: apiSaveGroup)
        docs.add(
            APIOperation(
                method: .post, path: "/api/v1/accounts/desired-groups/{name}/converge", operationID: "convergeDesiredGroup",
                summary: "Make every drifting host match the group definition, as a job", tag: "accounts", parameters: [nameParameter],
                replies: [.init(status: 202, description: "The job", schema: "Job")]))
        routes.post("/api/v1/accounts/desired-groups/:name/converge", .operate, use: apiConvergeGroup)
    }

    struct Report {
        var user: DesiredUser
        var hosts: [(host: Host, drift: [String])]
        var drifting: [Host] { hosts.filter { !$0.drift.isEmpty }.map(\.host) }
    }

    func definitions() throws -> [(path: String, result: Result<DesiredUser, AccountError>)] {
        try repository.files().filter { $0.hasPrefix("users/") && !$0.hasPrefix("users/groups/") && $0.hasSuffix(".yml") }.map { path in
            let text = (try? repository.read(path)) ?? nil
            return (path, Result { () throws(AccountError) -> DesiredUser in try DesiredUser.parse(text ?? "") })
        }
    }

    func groupDefinitions() throws -> [(path: String, result: Result<DesiredGroup, AccountError>)] {
        try repository.files().filter { $0.hasPrefix("users/groups/") && $0.hasSuffix(".yml") }.map { path in
            let text = (try? repository.read(path)) ?? nil
            return (path, Result { () throws(AccountError) -> DesiredGroup in try DesiredGroup.parse(text ?? "") })
        }
    }

    /// Hosts a definition applies to, each with how it differs.
    func drift(applyTo: [String], _ compare: (HostFacts) -> [String]) throws -> [(host: Host, drift: [String])] {
        let hosts = try engine.hosts.all().filter { host in host.enabled && applyTo.contains { $0 == host.name || host.groups.contains($0) } }
        return try hosts.map { host in
            guard let facts = try HostFacts.latest(engine.database, hostID: host.id) else { return (host, ["no facts yet"]) }
            return (host, compare(facts))
        }
    }

    func report(_ user: DesiredUser) throws -> Report {
        let hosts = try engine.hosts.all().filter { host in host.enabled && user.applyTo.contains { $0 == host.name || host.groups.contains($0) } }
        return Report(
            user: user,
            hosts: try hosts.map { host in
                guard let facts = try HostFacts.latest(engine.database, hostID: host.id) else { return (host, ["no facts yet"]) }
                return (host, user.drift(on: facts))
            })
    }

    @Sendable func page(request: Request, context: Context) async throws -> Response {
        var items: [ViewNode] = []
        for (path, result) in try definitions() {
            switch result {
            case .success(let user):
                let report = try report(user)
                items.append(
                    ViewNode([
                        "path": path, "name": user.name, "apply_to": user.applyTo.joined(separator: ", "),
                        "state": user.present ? "present" : "absent",
                        "hosts": report.hosts.map {
                            ViewNode(["host": $0.host.name, "ok": $0.drift.isEmpty, "drift": $0.drift.joined(separator: "; ")])
                        },
                        "drifting": report.drifting.count, "in_sync": report.drifting.isEmpty,
                    ]))
            case .failure(let error):
                items.append(ViewNode(["path": path, "invalid": error.errors.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")]))
            }
        }
        var groupItems: [ViewNode] = []
        for (path, result) in try groupDefinitions() {
            switch result {
            case .success(let group):
                let hosts = try drift(applyTo: group.applyTo) { group.drift(on: $0) }
                let drifting = hosts.filter { !$0.drift.isEmpty }.count
                groupItems.append(
                    ViewNode([
                        "path": path, "name": group.name, "apply_to": group.applyTo.joined(separator: ", "),
                        "state": group.present ? "present" : "absent",
                        "hosts": hosts.map { ViewNode(["host": $0.host.name, "ok": $0.drift.isEmpty, "drift": $0.drift.joined(separator: "; ")]) },
                        "drifting": drifting, "in_sync": drifting == 0,
                    ]))
            case .failure(let error):
                groupItems.append(
                    ViewNode(["path": path, "invalid": error.errors.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")]))
            }
        }
        return pages.page(
            "accounts/desired", title: "Users as code", section: "accounts",
            data: [
                "items": items, "group_items": groupItems, "empty": items.isEmpty && groupItems.isEmpty,
                "operator": context.identity?.permissions.contains(.operate) ?? false,
            ], request: request,
            context: context)
    }

    /// Validate, then commit users/NAME.yml as the caller.
    func save(_ user: DesiredUser, message: String, context: Context) async throws -> String {
        var change = UserChange(action: .create, name: user.name)
        change.uid = user.uid
        change.groups = user.groups
        change.gecos = user.gecos
        change.authorizedKeys = user.authorizedKeys
        var errors = AccountRules.problems(change, shells: [], isAdmin: context.identity?.permissions.contains(.admin) ?? false)
        do { _ = try DesiredUser.parse(user.yaml) } catch { errors.merge(error.errors) { first, _ in first } }
        guard errors.isEmpty else { throw AccountError(errors: errors) }
        let before = try repository.head()
        let path = "users/\(user.name).yml"
        let after = try await repository.save(path, content: user.yaml, message: message, author: context.actor.actor, lock: lock)
        try await engine.database.write { db in
            try AuditLog.append(
                db, by: context.actor, action: "config.commit", target: "config:\(path)", before: ["commit": before],
                after: ["commit": after, "message": message],
                now: Date())
        }
        return after
    }

    func saveGroup(_ group: DesiredGroup, message: String, context: Context) async throws -> String {
        var change = GroupChange(action: .create, name: group.name)
        change.gid = group.gid
        change.members = group.members
        var errors = AccountRules.problems(change, isAdmin: context.identity?.permissions.contains(.admin) ?? false)
        do { _ = try DesiredGroup.parse(group.yaml) } catch { errors.merge(error.errors) { first, _ in first } }
        guard errors.isEmpty else { throw AccountError(errors: errors) }
        let before = try repository.head()
        let after = try await repository.save(group.path, content: group.yaml, message: message, author: context.actor.actor, lock: lock)
        try await engine.database.write { db in
            try AuditLog.append(
                db, by: context.actor, action: "config.commit", target: "config:\(group.path)", before: ["commit": before],
                after: ["commit": after, "message": message], now: Date())
        }
        return after
    }

    func convergeGroup(_ name: String, context: Context) async throws -> Job {
        guard AccountRules.name(name, kind: "group") == nil, let text = try repository.read("users/groups/\(name).yml") else {
            throw AccountError(errors: ["name": "there is no definition users/groups/\(name).yml"])
        }
        let group = try DesiredGroup.parse(text)
        let targets = try drift(applyTo: group.applyTo) { group.drift(on: $0) }.filter { !$0.drift.isEmpty }.map(\.host.name)
        guard !targets.isEmpty else { throw AccountError(errors: ["name": "every host already matches users/groups/\(name).yml"]) }
        var run = PlaybookRun(playbook: "playbooks/users.yml", targets: targets)
        run.variables = String(decoding: try JSONSerialization.data(withJSONObject: group.convergeVariables, options: [.sortedKeys]), as: UTF8.self)
        var request = try engine.request(run, startedBy: context.actor.actor, reason: "converge users/groups/\(name).yml")
        request.title = "Converge group \(name) on " + targets.joined(separator: ", ")
        request.source = context.clientAddress
        return try await jobs.enqueue(request)
    }

    static func group(from fields: (String) -> String?) -> DesiredGroup {
        var group = DesiredGroup(
            name: (fields("name") ?? "").trimmingCharacters(in: .whitespaces), applyTo: HostSettings.list(fields("apply_to") ?? ""))
        group.present = fields("state") != "absent"
        if let gid = fields("gid"), !gid.isEmpty { group.gid = Int(gid) ?? -1 }
        if let members = fields("members") { group.members = HostSettings.list(members) }
        return group
    }

    @Sendable func saveGroupFromPage(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let group = Self.group { form[$0] }
        do {
            _ = try await saveGroup(group, message: form["message"] ?? "", context: context)
            return pages.redirect(to: "/accounts/desired", flash: Flash(.success, "\(group.path) is committed. Converge it to apply it."))
        } catch let error as AccountError {
            return pages.redirect(
                to: "/accounts/desired",
                flash: Flash(.error, "Not saved: " + error.errors.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")))
        } catch let error as AccessError {
            return pages.redirect(to: "/accounts/desired", flash: Flash(.error, "Not saved: \(error.message)"))
        }
    }

    @Sendable func convergeGroupFromPage(request: Request, context: Context) async throws -> Response {
        do {
            let job = try await convergeGroup(context.parameters.get("name") ?? "", context: context)
            return pages.redirect(to: "/jobs/\(job.id)")
        } catch let error as AccountError {
            return pages.redirect(to: "/accounts/desired", flash: Flash(.info, error.errors.values.sorted().joined(separator: "; ")))
        }
    }

    @Sendable func apiSaveGroup(request: Request, context: Context) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 16)
        guard var object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            throw Problem.badRequest("the body must be a JSON object of the definition's fields and a commit message")
        }
        object["name"] = context.parameters.get("name") ?? ""
        let group = Self.group { key in
            switch object[key] {
            case let list as [Any]: return list.map { "\($0)" }.joined(separator: ",")
            case let number as Int: return String(number)
            case let text as String: return text
            default: return nil
            }
        }
        do {
            let commit = try await saveGroup(group, message: object["message"] as? String ?? "", context: context)
            return try JSONResponse.make(object: ["commit": commit, "path": group.path])
        } catch let error as AccountError {
            throw Problem.invalid(error.errors)
        } catch let error as AccessError {
            throw Problem.invalid(["message": error.message])
        }
    }

    @Sendable func apiConvergeGroup(request: Request, context: Context) async throws -> Response {
        do {
            let job = try await convergeGroup(context.parameters.get("name") ?? "", context: context)
            return try JSONResponse.make(object: JobController.resource(job), status: .accepted)
        } catch let error as AccountError {
            throw Problem(status: .conflict, detail: error.errors.values.sorted().joined(separator: "; "))
        }
    }

    func converge(_ name: String, context: Context) async throws -> Job {
        guard AccountRules.name(name) == nil, let text = try repository.read("users/\(name).yml") else {
            throw AccountError(errors: ["name": "there is no definition users/\(name).yml"])
        }
        let user = try DesiredUser.parse(text)
        let targets = try report(user).drifting.map(\.name)
        guard !targets.isEmpty else { throw AccountError(errors: ["name": "every host already matches users/\(name).yml"]) }
        var run = PlaybookRun(playbook: "playbooks/users.yml", targets: targets)
        run.variables = String(
            decoding: try JSONSerialization.data(withJSONObject: ["steward_users": [user.convergeItem]], options: [.sortedKeys]), as: UTF8.self)
        var request = try engine.request(run, startedBy: context.actor.actor, reason: "converge users/\(name).yml")
        request.title = "Converge user \(name) on " + targets.joined(separator: ", ")
        request.source = context.clientAddress
        return try await jobs.enqueue(request)
    }

    static func user(from fields: (String) -> String?) -> DesiredUser {
        var user = DesiredUser(
            name: (fields("name") ?? "").trimmingCharacters(in: .whitespaces), applyTo: HostSettings.list(fields("apply_to") ?? ""))
        user.present = fields("state") != "absent"
        if let uid = fields("uid"), !uid.isEmpty { user.uid = Int(uid) ?? -1 }
        if let groups = fields("groups"), !groups.isEmpty { user.groups = HostSettings.list(groups) }
        if let shell = fields("shell"), !shell.isEmpty { user.shell = shell }
        if let gecos = fields("gecos"), !gecos.isEmpty { user.gecos = gecos }
        if let keys = fields("authorized_keys"), !keys.isEmpty {
            user.authorizedKeys = keys.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        }
        return user
    }

    @Sendable func saveFromPage(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let user = Self.user { form[$0] }
        do {
            _ = try await save(user, message: form["message"] ?? "", context: context)
            return pages.redirect(to: "/accounts/desired", flash: Flash(.success, "users/\(user.name).yml is committed. Converge it to apply it."))
        } catch let error as AccountError {
            return pages.redirect(
                to: "/accounts/desired",
                flash: Flash(.error, "Not saved: " + error.errors.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")))
        } catch let error as AccessError {
            return pages.redirect(to: "/accounts/desired", flash: Flash(.error, "Not saved: \(error.message)"))
        }
    }

    @Sendable func convergeFromPage(request: Request, context: Context) async throws -> Response {
        do {
            let job = try await converge(context.parameters.get("name") ?? "", context: context)
            return pages.redirect(to: "/jobs/\(job.id)")
        } catch let error as AccountError {
            return pages.redirect(to: "/accounts/desired", flash: Flash(.info, error.errors.values.sorted().joined(separator: "; ")))
        }
    }

    @Sendable func apiList(request: Request, context: Context) async throws -> Response {
        var items: [[String: Any]] = []
        for (path, result) in try definitions() {
            switch result {
            case .success(let user):
                let report = try report(user)
                items.append([
                    "kind": "user", "path": path, "name": user.name, "apply_to": user.applyTo, "state": user.present ? "present" : "absent",
                    "hosts": report.hosts.map { ["host": $0.host.name, "in_sync": $0.drift.isEmpty, "drift": $0.drift] as [String: Any] },
                    "drifting": report.drifting.map(\.name),
                ])
            case .failure(let error):
                items.append(["path": path, "errors": error.errors])
            }
        }
        for (path, result) in try groupDefinitions() {
            switch result {
            case .success(let group):
                let hosts = try drift(applyTo: group.applyTo) { group.drift(on: $0) }
                items.append([
                    "kind": "group", "path": path, "name": group.name, "apply_to": group.applyTo, "state": group.present ? "present" : "absent",
                    "hosts": hosts.map { ["host": $0.host.name, "in_sync": $0.drift.isEmpty, "drift": $0.drift] as [String: Any] },
                    "drifting": hosts.filter { !$0.drift.isEmpty }.map(\.host.name),
                ])
            case .failure(let error):
                items.append(["kind": "group", "path": path, "errors": error.errors])
            }
        }
        return try JSONResponse.make(object: ["items": items])
    }

    @Sendable func apiSave(request: Request, context: Context) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 16)
        guard var object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            throw Problem.badRequest("the body must be a JSON object of the definition's fields and a commit message")
        }
        object["name"] = context.parameters.get("name") ?? ""
        let user = Self.user { key in
            switch object[key] {
            case let list as [Any]: return list.map { "\($0)" }.joined(separator: key == "authorized_keys" ? "\n" : ",")
            case let number as Int: return String(number)
            case let text as String: return text
            default: return nil
            }
        }
        do {
            let commit = try await save(user, message: object["message"] as? String ?? "", context: context)
            return try JSONResponse.make(object: ["commit": commit, "path": "users/\(user.name).yml"])
        } catch let error as AccountError {
            throw Problem.invalid(error.errors)
        } catch let error as AccessError {
            throw Problem.invalid(["message": error.message])
        }
    }

    @Sendable func apiConverge(request: Request, context: Context) async throws -> Response {
        do {
            let job = try await converge(context.parameters.get("name") ?? "", context: context)
            return try JSONResponse.make(object: JobController.resource(job), status: .accepted)
        } catch let error as AccountError {
            throw Problem(status: .conflict, detail: error.errors.values.sorted().joined(separator: "; "))
        }
    }
}
