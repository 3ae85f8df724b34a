import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Users and groups: per host (from facts, changed through the engine) and across the fleet.
struct AccountsController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let service: AccountService
    let hosts: HostStore

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "accounts")
        routes.get("/accounts", .view, use: matrixPage)
        routes.get("/hosts/:id/accounts", .view, use: hostPage)
        routes.get("/hosts/:id/accounts/users/:name/edit", .operate, use: editUserPage)
        routes.get("/accounts/batch", .operate, use: batchPage)
        routes.post("/accounts/batch", .operate, use: batchFromPage)
        routes.get("/accounts/export.csv", .view, use: export)
        routes.post("/hosts/:id/accounts/users", .operate, use: userFromPage)
        routes.post("/hosts/:id/accounts/groups", .operate, use: groupFromPage)
        let idParameter = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "host id")
        api(
            .get, "/api/v1/accounts", .view, "accountMatrix", "Which hosts have which users (uid, gid, shell), with uid and name conflicts",
            schema: "AccountMatrix", use: apiMatrix)
        api(
            .get, "/api/v1/hosts/{id}/accounts", .view, "hostAccounts", "A host's users and groups from its facts", parameters: [idParameter],
            schema: "HostAccounts", use: apiHost)
        api(
            .post, "/api/v1/hosts/{id}/users", .operate, "changeUser", "Create, update, lock, unlock or delete a user on a host, as a job",
            parameters: [idParameter], request: "UserChange", status: 202, reply: "The job (and a generated password, once)", schema: "UserChangeJob",
            use: apiUser)
        api(
            .post, "/api/v1/hosts/{id}/groups", .operate, "changeGroup", "Create, update or delete a group on a host, as a job",
            parameters: [idParameter], request: "GroupChange", status: 202, schema: "Job", use: apiGroup)
    }

    // MARK: fleet matrix

    struct Matrix {
        var hosts: [String]
        /// user -> host -> (uid, gid, shell)
        var cells: [String: [String: (uid: Int, gid: Int, shell: String)]]
        var uidConflicts: [String: [Int]]
        var nameConflicts: [Int: [String]]
    }

    func matrix(includeSystem: Bool) throws -> Matrix {
        var cells: [String: [String: (uid: Int, gid: Int, shell: String)]] = [:]
        var hostNames: [String] = []
        for host in try hosts.all() {
            guard let facts = try HostFacts.latest(hosts.database, hostID: host.id) else { continue }
            hostNames.append(host.name)
            for (name, entry) in facts.passwd where includeSystem || AccountRules.regularIDs.contains(entry.uid) {
                cells[name, default: [:]][host.name] = (entry.uid, entry.gid, entry.shell)
            }
        }
        var uidConflicts: [String: [Int]] = [:]
        var byUID: [Int: Set<String>] = [:]
        for (name, row) in cells {
            let uids = Set(row.values.map(\.uid))
            if uids.count > 1 { uidConflicts[name] = uids.sorted() }
            for uid in uids { byUID[uid, default: []].insert(name) }
        }
        let nameConflicts = byUID.filter { $0.value.count > 1 }.mapValues { $0.sorted() }
        return Matrix(hosts: hostNames.sorted(), cells: cells, uidConflicts: uidConflicts, nameConflicts: nameConflicts)
    }

    @Sendable func matrixPage(request: Request, context: Context) async throws -> Response {
        let includeSystem = request.uri.queryParameters["system"] == "1"
        let matrix = try matrix(includeSystem: includeSystem)
        let rows = matrix.cells.keys.sorted().map { name -> ViewNode in
            let row = matrix.cells[name]!
            return ViewNode([
                "name": name, "conflict": matrix.uidConflicts[name] != nil || row.values.contains { matrix.nameConflicts[$0.uid] != nil },
                "cells": matrix.hosts.map { host -> ViewNode in
                    guard let cell = row[host] else { return ViewNode(["present": false]) }
                    return ViewNode(["present": true, "uid": cell.uid, "gid": cell.gid, "shell": cell.shell])
                },
            ])
        }
        var conflicts: [ViewNode] = matrix.uidConflicts.keys.sorted().map {
            ViewNode(["text": "\($0) has different uids: " + matrix.uidConflicts[$0]!.map(String.init).joined(separator: ", ")])
        }
        conflicts += matrix.nameConflicts.keys.sorted().map {
            ViewNode(["text": "uid \($0) belongs to different names: " + matrix.nameConflicts[$0]!.joined(separator: ", ")])
        }
        return area.pages.page(
            "accounts/matrix", title: "Users across the fleet", section: "accounts",
            data: [
                "hosts": matrix.hosts.map { ViewNode(["name": $0]) }, "rows": rows, "conflicts": conflicts, "include_system": includeSystem,
                "empty": rows.isEmpty,
            ], request: request, context: context)
    }

    @Sendable func apiMatrix(request: Request, context: Context) async throws -> Response {
        let matrix = try matrix(includeSystem: request.uri.queryParameters["system"] == "1")
        return try APIJSON.response(AccountMatrixResource(matrix))
    }

    // MARK: batch

    struct BatchLine {
        var number: Int
        var text: String
        var host: Host?
        var change: UserChange?
        var errors: [String]
        var prepared: AccountService.Prepared?
    }

    static let batchColumns = "action,host,name,uid,groups,shell,home,gecos"

    /// One user change per line: action,host,name,uid,groups,shell,home,gecos (groups separated by ';').
    /// `removeHome`: delete lines also remove the user's home directory and mail spool (the batch form's checkbox).
    func parseBatch(_ text: String, removeHome: Bool = false, context: Context) throws -> [BatchLine] {
        let all = try hosts.all()
        let isAdmin = context.identity?.permissions.contains(.admin) ?? false
        var lines: [BatchLine] = []
        for (index, raw) in text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#"), line != Self.batchColumns else { continue }
            guard lines.count < 500 else {
                lines.append(BatchLine(number: index + 1, text: line, errors: ["at most 500 lines at a time"]))
                break
            }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            var entry = BatchLine(number: index + 1, text: line, errors: [])
            guard fields.count >= 3, fields.count <= 8 else {
                entry.errors = ["write \(Self.batchColumns) (the first three are required)"]
                lines.append(entry)
                continue
            }
            guard let action = UserChange.Action(rawValue: fields[0]) else {
                entry.errors = ["action must be create, update, lock, unlock or delete"]
                lines.append(entry)
                continue
            }
            guard let host = all.first(where: { $0.name == fields[1] }) else {
                entry.errors = ["there is no host \(fields[1])"]
                lines.append(entry)
                continue
            }
            func field(_ index: Int) -> String? { fields.count > index && !fields[index].isEmpty ? fields[index] : nil }
            var change = UserChange(action: action, name: fields[2])
            change.uid = field(3).map { Int($0) ?? -1 }
            change.groups = field(4).map { $0.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) } }
            change.shell = field(5)
            change.home = field(6)
            change.gecos = field(7)
            change.removeHome = action == .delete && removeHome
            entry.host = host
            entry.change = change
            do {
                entry.prepared = try service.prepare(change, on: host, by: context.actor, isAdmin: isAdmin)
            } catch let error as AccountError {
                entry.errors = error.errors.keys.sorted().map { "\($0): \(error.errors[$0]!)" }
            } catch let error as AccessError {
                entry.errors = [error.message]
            }
            lines.append(entry)
        }
        return lines
    }

    @Sendable func batchPage(request: Request, context: Context) async throws -> Response {
        area.pages.page(
            "accounts/batch", title: "Batch users", section: "accounts", data: ["columns": Self.batchColumns], request: request, context: context)
    }

    @Sendable func batchFromPage(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let text = form["lines"] ?? ""
        let removeHome = form["remove_home"] != nil
        let lines = try parseBatch(text, removeHome: removeHome, context: context)
        let bad = lines.filter { !$0.errors.isEmpty }
        var data: [String: Any] = [
            "columns": Self.batchColumns, "lines_text": text, "previewed": true, "valid_count": lines.count - bad.count, "invalid_count": bad.count,
            "can_apply": bad.isEmpty && !lines.isEmpty, "remove_home": removeHome,
            "rows": lines.map { line in
                ViewNode([
                    "number": line.number, "text": line.text, "ok": line.errors.isEmpty, "errors": line.errors.joined(separator: "; "),
                    "summary": line.change.map {
                        "\($0.action.rawValue) \($0.name) on \(line.host?.name ?? "")" + ($0.removeHome ? ", removing the home directory" : "")
                    },
                ])
            },
        ]
        guard form["apply"] == "1" else {
            return area.pages.page("accounts/batch", title: "Batch users", section: "accounts", data: data, request: request, context: context)
        }
        guard bad.isEmpty, !lines.isEmpty else {
            data["error"] = "Nothing was applied: fix the lines marked below (or remove them) and preview again."
            return area.pages.page(
                "accounts/batch", title: "Batch users", section: "accounts", data: data, request: request, context: context,
                status: .unprocessableContent)
        }
        var started: [Int64] = []
        for line in lines {
            if let prepared = line.prepared { started.append(try await area.runner.enqueue(prepared.request).id) }
        }
        return area.pages.redirect(
            to: "/jobs", flash: Flash(.success, "Started \(started.count) job(s): " + started.map { "#\($0)" }.joined(separator: ", ")))
    }

    /// Every host's accounts from facts as CSV, in the batch file's columns (action "update").
    @Sendable func export(request: Request, context: Context) async throws -> Response {
        var rows = [Self.batchColumns]
        for host in try hosts.all() {
            guard let facts = try HostFacts.latest(hosts.database, hostID: host.id) else { continue }
            for (name, entry) in facts.passwd.sorted(by: { $0.value.uid < $1.value.uid }) {
                let groups = facts.groupMembers.filter { $0.value.members.contains(name) }.map(\.key).sorted().joined(separator: ";")
                let gecos = entry.gecos.replacingOccurrences(of: ",", with: " ")
                rows.append(["update", host.name, name, String(entry.uid), groups, entry.shell, entry.home, gecos].joined(separator: ","))
            }
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"steward-users.csv\"", .cacheControl: "no-store",
            ],
            body: .init(byteBuffer: ByteBuffer(string: rows.joined(separator: "\n") + "\n")))
    }

    // MARK: one host

    func load(_ context: Context) throws -> Host {
        guard let id = context.parameters.get("id", as: Int64.self), let host = try hosts.host(id: id) else {
            throw HTTPError(.notFound, message: "there is no such host")
        }
        return host
    }

    /// GECOS as people read it: the full name, then any other non-empty fields (room, phones, other), without the
    /// bare commas that adduser leaves ("Ann Example,,," reads "Ann Example").
    static func gecosText(_ gecos: String) -> String {
        let fields = gecos.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let name = fields.first else { return "" }
        let rest = fields.dropFirst().filter { !$0.isEmpty }
        return rest.isEmpty ? name : "\(name) (\(rest.joined(separator: ", ")))"
    }

    /// The shadow file's expiry day as a date, or "never".
    static func expiryText(_ day: Int?) -> String {
        guard let day, day >= 0 else { return "never" }
        let date = Date(timeIntervalSince1970: TimeInterval(day) * 86400)
        return String(RFC3339.string(date).prefix(10))
    }

    static func pathComponent(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? name
    }

    /// A user's own edit page, its fields filled with what the host has now; saving changes only what was changed.
    @Sendable func editUserPage(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let name = context.parameters.get("name") ?? ""
        guard let facts = try HostFacts.latest(hosts.database, hostID: host.id), let entry = facts.passwd[name] else {
            throw HTTPError(.notFound, message: "\(host.name) has no user \(name) in its newest facts; gather facts first")
        }
        let sudo = AccountService.sudoGroup(facts)
        let primary = facts.groupMembers.first { $0.value.gid == entry.gid }?.key ?? String(entry.gid)
        let supplementary = facts.groupMembers.filter { $0.value.members.contains(name) }.map(\.key).sorted()
        let state = facts.accountStates[name]
        let data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "user_name": name, "uid": entry.uid, "primary_group": primary,
            "user_groups": supplementary.filter { $0 != sudo }.joined(separator: ", "), "home": entry.home, "gecos": entry.gecos,
            "expires": state.map { Self.expiryText($0.expiresDay) } ?? "",
            "shells": (facts.shells.contains(entry.shell) ? facts.shells : [entry.shell] + facts.shells).map {
                ViewNode(["shell": $0, "selected": $0 == entry.shell])
            },
            "is_admin": sudo.map { supplementary.contains($0) } ?? false, "sudo_group": sudo ?? "", "as_of": RFC3339.display(facts.gatheredAt),
            "viewer_admin": context.identity?.permissions.contains(.admin) ?? false,
        ]
        return area.pages.page(
            "accounts/user_edit", title: "User \(name) on \(host.name)", section: "accounts", data: data, request: request, context: context)
    }

    @Sendable func hostPage(request: Request, context: Context) async throws -> Response {
        try hostView(try load(context), request: request, context: context)
    }

    func hostView(
        _ host: Host, request: Request, context: Context, errors: [String: String] = [:], status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let facts = try HostFacts.latest(hosts.database, hostID: host.id)
        let sudo = AccountService.sudoGroup(facts)
        // System accounts (daemons, uids below 1000) are hidden unless asked for: they are most of a host's list.
        let showSystem = FormBody(query: request)["system"] == "1"
        let everyone = (facts?.passwd ?? [:]).sorted { $0.value.uid < $1.value.uid }
        let hiddenSystem = showSystem ? 0 : everyone.filter { !AccountRules.regularIDs.contains($0.value.uid) }.count
        let users = everyone.filter { showSystem || AccountRules.regularIDs.contains($0.value.uid) }.map { name, entry -> ViewNode in
            let state = facts?.accountStates[name]
            // Row fields are named so that no enclosing object has them: a name a row lacks resolves up the context
            // stack (a row's `name` once became the host's, and each row's Delete posted the host's name).
            return ViewNode([
                "user_name": name, "uid": entry.uid, "gid": entry.gid, "gecos": Self.gecosText(entry.gecos),
                "user_locked": state?.locked ?? false, "user_active": state.map { !$0.locked } ?? false, "state_unknown": state == nil,
                "user_expires": state.map { Self.expiryText($0.expiresDay) } ?? "unknown",
                "edit_href": "/hosts/\(host.id)/accounts/users/\(Self.pathComponent(name))/edit", "home": entry.home, "shell": entry.shell,
                "system": !AccountRules.regularIDs.contains(entry.uid),
                "admin": sudo.map { facts?.groupMembers[$0]?.members.contains(name) ?? false } ?? false,
                "groups": (facts?.groupMembers ?? [:]).filter { $0.value.members.contains(name) }.map(\.key).sorted().joined(separator: ", "),
            ])
        }
        let everyGroup = (facts?.groupMembers ?? [:]).sorted { $0.value.gid < $1.value.gid }
        let hiddenSystemGroups = showSystem ? 0 : everyGroup.filter { !AccountRules.regularIDs.contains($0.value.gid) }.count
        let groups = everyGroup.filter { showSystem || AccountRules.regularIDs.contains($0.value.gid) }.map { name, entry in
            ViewNode([
                "group_name": name, "gid": entry.gid, "members": entry.members.joined(separator: ", "),
                "system": !AccountRules.regularIDs.contains(entry.gid),
                "group_edit_href": "/hosts/\(host.id)/accounts?edit_group=\(Self.pathComponent(name))#group-form",
            ])
        }
        // "Edit" on a group's row fills the group form with its current values.
        let editing = FormBody(query: request)["edit_group"].flatMap { name in facts?.groupMembers[name].map { (name, $0) } }
        let data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "has_facts": facts != nil, "show_system": showSystem,
            "hidden_system": hiddenSystem, "has_hidden_system": hiddenSystem > 0, "no_users": users.isEmpty,
            "hidden_system_groups": hiddenSystemGroups, "has_hidden_system_groups": hiddenSystemGroups > 0, "no_groups": groups.isEmpty,
            "form_group_name": editing?.0 ?? "", "form_gid": editing.map { "\($0.1.gid)" } ?? "",
            "form_members": editing?.1.members.joined(separator: ", ") ?? "", "form_group_update": editing != nil,
            "as_of": facts.map { RFC3339.display($0.gatheredAt) } ?? "",
            "users": users, "groups": groups, "shells": (facts?.shells ?? []).map { ViewNode(["shell": $0]) },
            "operator": context.identity?.permissions.contains(.operate) ?? false, "sudo_group": sudo ?? "",
            "errors": errors.keys.sorted().map { ViewNode(["field": $0, "message": errors[$0]!]) }, "has_errors": !errors.isEmpty,
        ]
        return area.pages.page(
            "accounts/host", title: "Users and groups on \(host.name)", section: "accounts", data: data, request: request, context: context,
            status: status)
    }

    static func userChange(_ form: FormBody) -> UserChange {
        var change = UserChange(
            action: UserChange.Action(rawValue: form["action"] ?? "") ?? .create, name: (form["name"] ?? "").trimmingCharacters(in: .whitespaces))
        func text(_ key: String) -> String? { form[key].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 } }
        change.uid = text("uid").map { Int($0) ?? -1 }
        change.primaryGroup = text("primary_group")
        change.groups = text("groups").map(HostSettings.list)
        change.shell = text("shell")
        change.home = text("home")
        change.createHome = form["create_home"] != nil || change.action != .create
        change.gecos = form["gecos"].flatMap { $0.isEmpty ? nil : $0 }
        switch form["password_mode"] {
        case "hash": change.password = .hash(form["password_hash"] ?? "")
        case "generate": change.password = .generate
        case "locked": change.password = .locked
        default: change.password = .unchanged
        }
        change.expiresOn = text("expires")
        if let keys = form["authorized_keys"], form["set_keys"] != nil {
            change.authorizedKeys = keys.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n").map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            .filter { !$0.isEmpty }
        }
        if form["admin_set"] != nil { change.admin = form["admin"] != nil }
        change.removeHome = form["remove_home"] != nil
        return change
    }

    @Sendable func userFromPage(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let change = Self.userChange(try await FormBody.read(request, context: context))
        do {
            let prepared = try service.prepare(change, on: host, by: context.actor, isAdmin: context.identity?.permissions.contains(.admin) ?? false)
            let job = try await area.runner.enqueue(prepared.request)
            if let password = prepared.generatedPassword {
                return area.pages.page(
                    "accounts/password", title: "Generated password", section: "accounts",
                    data: ["password": password, "user": change.name, "host": host.name, "job": job.id], request: request, context: context)
            }
            return area.pages.redirect(to: "/jobs/\(job.id)")
        } catch let error as AccountError {
            return try hostView(host, request: request, context: context, errors: error.errors, status: .unprocessableContent)
        } catch let error as AccessError {
            return try hostView(host, request: request, context: context, errors: ["targets": error.message], status: .unprocessableContent)
        }
    }

    @Sendable func groupFromPage(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let form = try await FormBody.read(request, context: context)
        var change = GroupChange(
            action: GroupChange.Action(rawValue: form["action"] ?? "") ?? .create, name: (form["name"] ?? "").trimmingCharacters(in: .whitespaces))
        if let gid = form["gid"], !gid.isEmpty { change.gid = Int(gid) ?? -1 }
        if form["set_members"] != nil { change.members = HostSettings.list(form["members"] ?? "") }
        do {
            let prepared = try service.prepare(change, on: host, by: context.actor, isAdmin: context.identity?.permissions.contains(.admin) ?? false)
            let job = try await area.runner.enqueue(prepared.request)
            return area.pages.redirect(to: "/jobs/\(job.id)")
        } catch let error as AccountError {
            return try hostView(host, request: request, context: context, errors: error.errors, status: .unprocessableContent)
        }
    }

    // MARK: API

    @Sendable func apiHost(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        guard let facts = try HostFacts.latest(hosts.database, hostID: host.id) else {
            throw Problem(status: .conflict, detail: "\(host.name) has no facts yet; run Gather facts first")
        }
        return try APIJSON.response(HostAccountsResource(facts))
    }

    @Sendable func apiUser(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let body = try await request.body.collect(upTo: 1 << 18)
        let change: UserChange
        do {
            change = try JSONDecoder().decode(UserChangeInput.self, from: Data(body.readableBytesView)).change
        } catch let error as DecodingError {
            throw JSONResponse.problem(error, prefix: "the body must be a user change: {\"action\": \"create\", \"name\": \"ann\", ...}; ")
        }
        do {
            let prepared = try service.prepare(change, on: host, by: context.actor, isAdmin: context.identity?.permissions.contains(.admin) ?? false)
            let job = try await area.runner.enqueue(prepared.request)
            return try APIJSON.response(UserChangeAccepted(job: JobResource(job), generatedPassword: prepared.generatedPassword), status: .accepted)
        } catch let error as AccountError {
            throw Problem.invalid(error.errors)
        }
    }

    @Sendable func apiGroup(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let body = try await request.body.collect(upTo: 1 << 16)
        let change: GroupChange
        do {
            change = try JSONDecoder().decode(GroupChange.self, from: Data(body.readableBytesView))
        } catch {
            throw Problem.badRequest(
                "the body must be a group change: {\"action\": \"create\", \"name\": \"developers\", \"gid\": 2000, \"members\": [...]}")
        }
        do {
            let prepared = try service.prepare(change, on: host, by: context.actor, isAdmin: context.identity?.permissions.contains(.admin) ?? false)
            let job = try await area.runner.enqueue(prepared.request)
            return try APIJSON.response(JobResource(job), status: .accepted)
        } catch let error as AccountError {
            throw Problem.invalid(error.errors)
        }
    }
}

/// The API's user change: snake_case fields, the password as {"mode": "hash|generate|locked", "hash": ...}.
struct UserChangeInput: Decodable {
    let change: UserChange

    enum Keys: String, CodingKey {
        case action, name, uid, groups, shell, home, gecos, password, admin
        case primaryGroup = "primary_group"
        case createHome = "create_home"
        case expires
        case authorizedKeys = "authorized_keys"
        case removeHome = "remove_home"
    }
    struct PasswordInput: Decodable {
        let mode: String
        let hash: String?
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        var change = UserChange(
            action: try container.decode(UserChange.Action.self, forKey: .action), name: try container.decode(String.self, forKey: .name))
        change.uid = try container.decodeIfPresent(Int.self, forKey: .uid)
        change.primaryGroup = try container.decodeIfPresent(String.self, forKey: .primaryGroup)
        change.groups = try container.decodeIfPresent([String].self, forKey: .groups)
        change.shell = try container.decodeIfPresent(String.self, forKey: .shell)
        change.home = try container.decodeIfPresent(String.self, forKey: .home)
        change.createHome = try container.decodeIfPresent(Bool.self, forKey: .createHome) ?? true
        change.gecos = try container.decodeIfPresent(String.self, forKey: .gecos)
        if let password = try container.decodeIfPresent(PasswordInput.self, forKey: .password) {
            switch password.mode {
            case "hash": change.password = .hash(password.hash ?? "")
            case "generate": change.password = .generate
            case "locked": change.password = .locked
            default: change.password = .unchanged
            }
        }
        change.expiresOn = try container.decodeIfPresent(String.self, forKey: .expires)
        change.authorizedKeys = try container.decodeIfPresent([String].self, forKey: .authorizedKeys)
        change.admin = try container.decodeIfPresent(Bool.self, forKey: .admin)
        change.removeHome = try container.decodeIfPresent(Bool.self, forKey: .removeHome) ?? false
        self.change = change
    }
}
