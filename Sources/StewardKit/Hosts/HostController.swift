import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore

/// The Hosts pages and `/api/v1/hosts`, `/api/v1/groups`.
struct HostController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let store: HostStore
    let keys: HostKeyStore
    /// The host's newest filesystem figures for the facts section, so the host page and the dashboard agree.
    let dashboard: MetricsDashboard

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "hosts")
        routes.get("/hosts", .view, use: listPage)
        routes.get("/hosts/new", .admin, use: newPage)
        routes.post("/hosts/new", .admin, use: createFromPage)
        routes.get("/hosts/bulk", .admin, use: bulkPage)
        routes.post("/hosts/bulk", .admin, use: bulkFromPage)
        routes.get("/hosts/groups", .view, use: groupsPage)
        routes.get("/hosts/ssh", .view, use: identityPage)
        routes.post("/hosts/check", .operate, use: checkAll)
        routes.post("/hosts/:id/scan-key", .operate, use: scanKey)
        routes.post("/hosts/:id/trust-key", .admin, use: trustKey)
        routes.post("/hosts/groups", .admin, use: saveGroupFromPage)
        routes.get("/hosts/:id", .view, use: showPage)
        routes.get("/hosts/:id/edit", .admin, use: editPage)
        routes.post("/hosts/:id/edit", .admin, use: updateFromPage)
        routes.post("/hosts/:id/delete", .admin, use: deleteFromPage)

        let idParameter = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "host id")
        api(.get, "/api/v1/hosts", .view, "listHosts", "Every host with its groups, tags and state", schema: "HostList", use: apiList)
        api(.post, "/api/v1/hosts", .admin, "createHost", "Add a host", request: "HostCreate", status: 201, schema: "Host", use: apiCreate)
        api(.get, "/api/v1/hosts/{id}", .view, "getHost", "Read one host", parameters: [idParameter], schema: "HostDetail", use: apiShow)
        api(
            .patch, "/api/v1/hosts/{id}", .admin, "updateHost", "Change some of a host's fields", parameters: [idParameter], request: "HostInput",
            schema: "Host", use: apiUpdate)
        api(.delete, "/api/v1/hosts/{id}", .admin, "deleteHost", "Remove a host", parameters: [idParameter], status: 204, schema: nil, use: apiDelete)
        api(.get, "/api/v1/groups", .view, "listGroups", "Host groups with their variables", schema: "GroupList", use: apiGroups)
        let nameParameter = APIOperation.Parameter(name: "name", location: .path, type: "string", description: "group name")
        api(
            .put, "/api/v1/groups/{name}", .admin, "saveGroup", "Create a group or replace its variables and notes", parameters: [nameParameter],
            request: "GroupInput", schema: "Group", use: apiSaveGroup)
        api(
            .delete, "/api/v1/groups/{name}", .admin, "deleteGroup", "Remove a group (its hosts stay)", parameters: [nameParameter], status: 204,
            schema: nil, use: apiDeleteGroup)
        api(
            .get, "/api/v1/ssh-identity", .view, "sshIdentity", "Steward's SSH public key and how to authorize it", schema: "SSHIdentity",
            use: apiIdentity)
        api(
            .post, "/api/v1/hosts/{id}/host-key/scan", .operate, "scanHostKey", "Ask the host for its SSH key and compare it with the trusted one",
            parameters: [idParameter], schema: "HostKeyVerdict", use: apiScanKey)
        api(
            .post, "/api/v1/hosts/{id}/host-key/trust", .admin, "trustHostKey",
            "Trust the key the host presents; the fingerprint must match what was shown", parameters: [idParameter], request: "HostKeyTrust",
            schema: "HostKeyVerdict", use: apiTrustKey)
    }

    // MARK: pages

    @Sendable func listPage(request: Request, context: Context) async throws -> Response {
        let query = request.uri.queryParameters
        let group = query["group"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let tag = query["tag"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let state = query["state"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let all = try store.all()
        let hosts = all.filter { host in
            (group.map { host.groups.contains($0) } ?? true) && (tag.map { host.tags.contains($0) } ?? true)
                && (state.map { host.state.rawValue == $0 } ?? true)
        }
        let counts = Dictionary(grouping: all, by: \.state).mapValues(\.count)
        let data: [String: Any] = [
            "hosts": hosts.map(Self.view), "empty": hosts.isEmpty, "total": all.count,
            "states": Host.State.allCases.map { ViewNode(["state": $0.rawValue, "count": counts[$0] ?? 0, "selected": $0.rawValue == state]) },
            "groups": try store.groups().map { ViewNode(["name": $0.name, "selected": $0.name == group]) },
            "q_tag": tag ?? "", "admin": context.identity?.permissions.contains(.admin) ?? false,
            "operator": context.identity?.permissions.contains(.operate) ?? false,
        ]
        return area.pages.page("hosts/list", title: "Hosts", section: "hosts", data: data, request: request, context: context)
    }

    @Sendable func showPage(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        var view = Self.values(host)
        view["variables_text"] = host.variables
        if let verdict = try keys.verdict(for: host) {
            var key: [String: Any?] = ["message": verdict.message]
            switch verdict {
            case .trusted(let fingerprint): key["trusted"] = fingerprint
            case .unconfirmed(let presented): key["presented"] = presented
            case .changed(let trusted, let presented):
                key["changed"] = true
                key["trusted_before"] = trusted
                key["presented"] = presented
            case .unreachable: break
            }
            view["host_key"] = ViewNode(key)
        }
        view["operator"] = context.identity?.permissions.contains(.operate) ?? false
        if let facts = try HostFacts.latest(store.database, hostID: host.id) {
            let live = dashboard.filesystems(hostID: host.id, now: EpochMilliseconds.from(Date()))
            view["facts"] = facts.view(live: live)
        }
        view["jobs"] = try area.runner.store.recent(forHost: host.name).map(JobController.view)
        view["admin"] = context.identity?.permissions.contains(.admin) ?? false
        return area.pages.page(
            "hosts/show", title: "Host \(host.name)", section: "hosts", data: ["host": ViewNode(view)], request: request, context: context)
    }

    @Sendable func newPage(request: Request, context: Context) async throws -> Response {
        formPage(HostSettings(), errors: [:], action: "/hosts/new", title: "Add a host", request: request, context: context)
    }

    @Sendable func editPage(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        return formPage(
            HostStore.settings(of: host), errors: [:], action: "/hosts/\(host.id)/edit", title: "Edit \(host.name)", request: request,
            context: context)
    }

    @Sendable func createFromPage(request: Request, context: Context) async throws -> Response {
        var settings = HostSettings()
        try HostInput(form: try await FormBody.read(request, context: context)).apply(to: &settings)
        var errors = settings.problems(replacing: nil)
        if errors.isEmpty {
            do {
                let host = try store.create(settings, by: context.actor, now: Date())
                return area.pages.redirect(to: "/hosts/\(host.id)", flash: Flash(.success, "Host \(host.name) is added."))
            } catch let error as HostError {
                errors["name"] = error.description
            }
        }
        return formPage(
            settings, errors: errors, action: "/hosts/new", title: "Add a host", request: request, context: context, status: .unprocessableContent)
    }

    @Sendable func updateFromPage(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        var settings = HostSettings()
        try HostInput(form: try await FormBody.read(request, context: context)).apply(to: &settings)
        var errors = settings.problems(replacing: host)
        if errors.isEmpty {
            do {
                _ = try store.update(id: host.id, settings, by: context.actor, now: Date())
                return area.pages.redirect(to: "/hosts/\(host.id)", flash: Flash(.success, "Host \(settings.name) is saved."))
            } catch let error as HostError {
                errors["name"] = error.description
            }
        }
        return formPage(
            settings, errors: errors, action: "/hosts/\(host.id)/edit", title: "Edit \(host.name)", request: request, context: context,
            status: .unprocessableContent)
    }

    @Sendable func deleteFromPage(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        _ = try store.delete(id: host.id, by: context.actor, now: Date())
        return area.pages.redirect(
            to: "/hosts", flash: Flash(.success, "Host \(host.name) is removed from Steward (nothing on the machine changed)."))
    }

    func formPage(
        _ settings: HostSettings, errors: [String: String], action: String, title: String, request: Request, context: Context,
        status: HTTPResponse.Status = .ok
    ) -> Response {
        let form: [String: Any?] = [
            "name": settings.name, "address": settings.address, "ssh_port": settings.sshPort, "ssh_user": settings.sshUser,
            "become_sudo": settings.become == .sudo, "local": settings.transport == .local, "groups": settings.groups.joined(separator: ", "),
            "tags": settings.tags.joined(separator: ", "), "variables": settings.variables, "metrics_url": settings.metricsURL,
            "metrics_allow": settings.metricsAllow ?? MetricAllowList.defaultPatterns.joined(separator: "\n"), "notes": settings.notes,
            "enabled": settings.enabled,
        ]
        let data: [String: Any] = [
            "form": ViewNode(form), "errors": ViewNode(errors), "has_errors": !errors.isEmpty,
            "error_list": errors.keys.sorted().map { ViewNode(["field": $0, "message": errors[$0]!]) }, "action": action, "title": title,
        ]
        return area.pages.page("hosts/form", title: title, section: "hosts", data: data, request: request, context: context, status: status)
    }

    // MARK: SSH identity and host keys

    @Sendable func identityPage(request: Request, context: Context) async throws -> Response {
        area.pages.page(
            "hosts/ssh", title: "SSH identity", section: "ssh",
            data: ["public_key": try keys.identity.publicKey(), "command": try keys.identity.authorizeCommand()], request: request, context: context)
    }

    @Sendable func checkAll(request: Request, context: Context) async throws -> Response {
        let job = try await area.runner.enqueue(
            JobRequest(
                kind: HostCheck.kind, title: "Check host connectivity and host keys", startedBy: context.actor.actor,
                reason: "run from the Hosts page"))
        return area.pages.redirect(to: "/jobs/\(job.id)")
    }

    @Sendable func scanKey(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let verdict = try await keys.scan(host, now: Date())
        try applyVerdict(verdict, to: host)
        let level: Flash.Level =
            switch verdict {
            case .trusted: .success
            case .unconfirmed: .info
            case .changed, .unreachable: .error
            }
        return area.pages.redirect(to: "/hosts/\(host.id)", flash: Flash(level, verdict.message))
    }

    @Sendable func trustKey(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let form = try await FormBody.read(request, context: context)
        do {
            try keys.trust(host, fingerprint: form["fingerprint"] ?? "", by: context.actor, now: Date())
            return area.pages.redirect(to: "/hosts/\(host.id)", flash: Flash(.success, "\(host.name)'s host key is trusted; jobs can connect to it."))
        } catch let error as AccessError {
            return area.pages.redirect(to: "/hosts/\(host.id)", flash: Flash(.error, error.message))
        }
    }

    /// A changed or unconfirmed key makes the host unreachable for jobs, with the reason shown.
    func applyVerdict(_ verdict: HostKeyVerdict, to host: Host) throws {
        switch verdict {
        case .changed, .unconfirmed: try store.setState(id: host.id, .unreachable, detail: verdict.message, seen: nil)
        case .unreachable(let detail): try store.setState(id: host.id, .down, detail: detail, seen: nil)
        case .trusted: break
        }
    }

    @Sendable func apiIdentity(request: Request, context: Context) async throws -> Response {
        try APIJSON.response(SSHIdentityResource(publicKey: try keys.identity.publicKey(), authorizeCommand: try keys.identity.authorizeCommand()))
    }

    @Sendable func apiScanKey(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let verdict = try await keys.scan(host, now: Date())
        try applyVerdict(verdict, to: host)
        return try APIJSON.response(HostKeyVerdictResource(verdict: verdict))
    }

    @Sendable func apiTrustKey(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        guard let fingerprint = try await APIInputDecoding.decode(HostKeyTrustInput.self, from: request).fingerprint.given else {
            throw Problem.invalid(["fingerprint": "the SHA256:... fingerprint you compared"])
        }
        do {
            try keys.trust(host, fingerprint: fingerprint, by: context.actor, now: Date())
        } catch let error as AccessError {
            throw Problem(status: .conflict, detail: error.message)
        }
        return try APIJSON.response(HostKeyVerdictResource(verdict: try keys.verdict(for: host) ?? .unreachable("not scanned")))
    }

    // MARK: bulk add

    @Sendable func bulkPage(request: Request, context: Context) async throws -> Response {
        area.pages.page("hosts/bulk", title: "Add hosts in bulk", section: "hosts", data: [:], request: request, context: context)
    }

    @Sendable func bulkFromPage(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let text = form["lines"] ?? ""
        let parsed = BulkHostImport.parse(text, existing: Set(try store.all().map(\.name)))
        var data: [String: Any] = [
            "lines_text": text, "rows": parsed.map(\.view), "valid_count": parsed.filter { $0.errors.isEmpty }.count,
            "invalid_count": parsed.filter { !$0.errors.isEmpty }.count, "previewed": true,
        ]
        guard form["commit"] == "1" else {
            return area.pages.page("hosts/bulk", title: "Add hosts in bulk", section: "hosts", data: data, request: request, context: context)
        }
        var added: [String] = []
        for row in parsed where row.errors.isEmpty {
            if let settings = row.settings, (try? store.create(settings, by: context.actor, now: Date())) != nil { added.append(settings.name) }
        }
        let failed = parsed.filter { !$0.errors.isEmpty }
        if failed.isEmpty {
            return area.pages.redirect(to: "/hosts", flash: Flash(.success, "Added \(added.count) host(s)."))
        }
        // Keep the lines that could not be added, so nothing typed is lost.
        data["lines_text"] = failed.map(\.line).joined(separator: "\n")
        data["rows"] = failed.map(\.view)
        data["added"] = added.joined(separator: ", ")
        data["valid_count"] = 0
        data["invalid_count"] = failed.count
        return area.pages.page(
            "hosts/bulk", title: "Add hosts in bulk", section: "hosts", data: data, request: request, context: context, status: .unprocessableContent)
    }

    // MARK: groups

    @Sendable func groupsPage(request: Request, context: Context) async throws -> Response {
        let groups = try store.groups().map { group in
            ViewNode(["name": group.name, "variables": group.variables, "notes": group.notes, "hosts": group.hostCount])
        }
        return area.pages.page(
            "hosts/groups", title: "Host groups", section: "hosts",
            data: ["groups": groups, "admin": context.identity?.permissions.contains(.admin) ?? false], request: request, context: context)
    }

    @Sendable func saveGroupFromPage(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let name = (form["name"] ?? "").trimmingCharacters(in: .whitespaces)
        do {
            if form["delete"] == "1" {
                _ = try store.deleteGroup(name: name, by: context.actor, now: Date())
                return area.pages.redirect(to: "/hosts/groups", flash: Flash(.success, "Group \(name) is removed; its hosts stay."))
            }
            try store.saveGroup(name: name, variables: form["variables"] ?? "", notes: form["notes"] ?? "", by: context.actor, now: Date())
            return area.pages.redirect(to: "/hosts/groups", flash: Flash(.success, "Group \(name) is saved."))
        } catch let error as HostError {
            return area.pages.redirect(to: "/hosts/groups", flash: Flash(.error, "Group \(name) was not saved: \(error.description)"))
        }
    }

    // MARK: API

    @Sendable func apiList(request: Request, context: Context) async throws -> Response {
        try area.responses.json(for: request, tables: ["hosts", "host_groups", "host_group_members"]) {
            ByteBuffer(bytes: try APIJSON.encode(HostListResource(items: try store.all().map(HostResource.init))))
        }
    }

    @Sendable func apiShow(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        let facts = try HostFacts.latest(store.database, hostID: host.id)
        return try APIJSON.response(HostDetailResource(host: HostResource(host), facts: Nullable(facts.map(HostFactsResource.init))))
    }

    @Sendable func apiCreate(request: Request, context: Context) async throws -> Response {
        var settings = HostSettings()
        try await APIInputDecoding.decode(HostInput.self, from: request).apply(to: &settings)
        let errors = settings.problems(replacing: nil)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        do {
            let host = try store.create(settings, by: context.actor, now: Date())
            return try APIJSON.response(HostResource(host), status: .created)
        } catch let error as HostError {
            throw Problem(status: .conflict, detail: error.description)
        }
    }

    @Sendable func apiUpdate(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        var settings = HostStore.settings(of: host)
        try await APIInputDecoding.decode(HostInput.self, from: request).apply(to: &settings)
        let errors = settings.problems(replacing: host)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        do {
            let updated = try store.update(id: host.id, settings, by: context.actor, now: Date())!
            return try APIJSON.response(HostResource(updated))
        } catch let error as HostError {
            throw Problem(status: .conflict, detail: error.description)
        }
    }

    @Sendable func apiDelete(request: Request, context: Context) async throws -> Response {
        let host = try load(context)
        _ = try store.delete(id: host.id, by: context.actor, now: Date())
        return Response(status: .noContent)
    }

    @Sendable func apiGroups(request: Request, context: Context) async throws -> Response {
        try APIJSON.response(ItemList(items: try store.groups().map(GroupResource.init)))
    }

    @Sendable func apiSaveGroup(request: Request, context: Context) async throws -> Response {
        let name = context.parameters.get("name") ?? ""
        let input = try await APIInputDecoding.decode(GroupInput.self, from: request)
        var errors: [String: String] = [:]
        var variables = ""
        var notes = ""
        input.variables.assign(GroupInput.CodingKeys.variables.rawValue, &errors) { variables = $0 }
        input.notes.assign(GroupInput.CodingKeys.notes.rawValue, &errors) { notes = $0 }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        do {
            try store.saveGroup(name: name, variables: variables, notes: notes, by: context.actor, now: Date())
        } catch HostError.invalid(let problems) {
            throw Problem.invalid(problems)
        }
        let group = try store.group(named: name)!
        return try APIJSON.response(GroupResource(group))
    }

    @Sendable func apiDeleteGroup(request: Request, context: Context) async throws -> Response {
        guard try store.deleteGroup(name: context.parameters.get("name") ?? "", by: context.actor, now: Date()) else {
            throw Problem.notFound("that group")
        }
        return Response(status: .noContent)
    }

    // MARK: helpers

    func load(_ context: Context) throws -> Host {
        guard let id = context.parameters.get("id", as: Int64.self), let host = try store.host(id: id) else {
            throw HTTPError(.notFound, message: "there is no such host")
        }
        return host
    }

    static func values(_ host: Host) -> [String: Any?] {
        [
            "id": host.id, "name": host.name, "address": host.address, "transport": host.transport.rawValue, "local": host.transport == .local,
            "ssh_port": host.sshPort, "ssh_user": host.sshUser, "become": host.become.rawValue, "groups": host.groups.joined(separator: ", "),
            "group_list": host.groups.map { ViewNode(["name": $0]) }, "tags": host.tags.map { ViewNode(["name": $0]) },
            "metrics_url": host.metricsURL, "notes": host.notes, "enabled": host.enabled, "state": host.state.rawValue,
            "state_detail": host.stateDetail, "last_seen": host.lastSeenAt.map(RFC3339.display) ?? "never",
            "created": RFC3339.display(host.createdAt), "updated": RFC3339.display(host.updatedAt),
        ]
    }

    static func view(_ host: Host) -> ViewNode { ViewNode(values(host)) }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}

/// Bulk add: one host per line, either "name address" (optionally ":port") or CSV with the columns
/// name,address,port,user,groups,tags (groups and tags separated by ';'). Blank lines and '#' comments are skipped.
enum BulkHostImport {
    struct Row {
        var number: Int
        var line: String
        var settings: HostSettings?
        var errors: [String]

        var view: ViewNode {
            ViewNode([
                "number": number, "line": line, "name": settings?.name, "address": settings?.address, "port": settings?.sshPort,
                "user": settings?.sshUser, "groups": settings?.groups.joined(separator: ", "), "ok": errors.isEmpty,
                "errors": errors.joined(separator: "; "),
            ])
        }
    }

    static let maximumLines = 1000

    static func parse(_ text: String, existing: Set<String>) -> [Row] {
        var rows: [Row] = []
        var seen = existing
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces.union(.init(charactersIn: "\r")))
            guard !line.isEmpty, !line.hasPrefix("#"), !line.lowercased().hasPrefix("name,address") else { continue }
            guard rows.count < maximumLines else {
                rows.append(Row(number: index + 1, line: line, settings: nil, errors: ["only \(maximumLines) lines at a time"]))
                break
            }
            var settings = HostSettings()
            var errors: [String] = []
            if line.contains(",") {
                let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                settings.name = fields[0].lowercased()
                settings.address = fields.count > 1 ? fields[1] : ""
                if fields.count > 2, !fields[2].isEmpty { settings.sshPort = Int(fields[2]) ?? 0 }
                if fields.count > 3, !fields[3].isEmpty { settings.sshUser = fields[3] }
                if fields.count > 4 { settings.groups = HostSettings.list(fields[4]) }
                if fields.count > 5 { settings.tags = HostSettings.list(fields[5]) }
                if fields.count > 6 { errors.append("at most 6 columns: name,address,port,user,groups,tags") }
            } else {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                settings.name = fields[0].lowercased()
                var address = fields.count > 1 ? fields[1] : fields[0]
                if let colon = address.lastIndex(of: ":"), !address.contains("::"), address.filter({ $0 == ":" }).count == 1 {
                    settings.sshPort = Int(address[address.index(after: colon)...]) ?? 0
                    address = String(address[..<colon])
                }
                settings.address = address
                if fields.count > 2 { errors.append("write \"name address[:port]\" or a CSV line") }
            }
            for (field, message) in settings.problems().sorted(by: { $0.key < $1.key }) { errors.append("\(field): \(message)") }
            if errors.isEmpty, !seen.insert(settings.name).inserted { errors.append("a host named \(settings.name) already exists") }
            rows.append(Row(number: index + 1, line: line, settings: settings, errors: errors))
        }
        return rows
    }
}
