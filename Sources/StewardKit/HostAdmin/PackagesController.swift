import Foundation
import Hummingbird

/// Installed packages per host and across the fleet, a search of a host's repositories, and install, remove, hold and
/// unhold for admins as audited jobs.
struct PackagesController: HostScopedController {
    let area: AreaContext
    let hosts: HostStore
    let packages: PackageReading
    var store: HostReadingStore { packages.readings.store }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "packages")
        routes.get("/packages", .view, use: fleetPage)
        routes.get("/hosts/:id/packages", .view, use: hostPage)
        routes.post("/hosts/:id/packages/refresh", .operate, use: refreshFromPage)
        routes.post("/hosts/:id/packages/actions", .admin, use: actionFromPage)
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "host id")
        let text = APIOperation.Parameter(name: "q", location: .query, type: "string", description: "part of a package name")
        let held = APIOperation.Parameter(name: "held", location: .query, type: "boolean", description: "only held packages")
        api(
            .get, "/api/v1/hosts/{id}/packages", .view, "hostPackages", "A host's installed packages from its newest reading",
            parameters: [id, text, held], schema: "HostPackages", use: apiHost)
        api(
            .post, "/api/v1/hosts/{id}/packages/refresh", .operate, "refreshHostPackages", "Read the host's installed packages now",
            parameters: [id], schema: "HostPackages", use: apiRefresh)
        let term = APIOperation.Parameter(
            name: "q", location: .query, type: "string", description: "part of a package name", pattern: "^[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}$",
            required: true)
        api(
            .get, "/api/v1/hosts/{id}/packages/search", .view, "searchHostPackages", "Search the host's repositories by name, now (at most 200)",
            parameters: [id, term], schema: "PackageSearch", use: apiSearch)
        api(
            .post, "/api/v1/hosts/{id}/packages/actions", .admin, "changeHostPackage",
            "Install (from the host's repositories), remove, hold or unhold a package, as an audited job; admins only", parameters: [id],
            request: "PackageActionInput", status: 202, schema: "Job", use: apiAction)
        let name = APIOperation.Parameter(
            name: "name", location: .query, type: "string", description: "a package name", pattern: "^[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}$",
            required: true)
        api(
            .get, "/api/v1/packages", .view, "fleetPackage",
            "Which hosts have a package at which version, from their newest readings, and which lack it",
            parameters: [name], schema: "FleetPackage", use: apiFleet)
    }

    func refresh(_ host: Host, by who: AuditActor) async throws -> HostReading<PackageListing> {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to read its packages") }
        return try await packages.refresh(host, by: who)
    }

    static func filtered(_ listing: PackageListing?, text: String, heldOnly: Bool) -> [InstalledPackage] {
        (listing?.packages ?? []).filter { (text.isEmpty || $0.name.localizedCaseInsensitiveContains(text)) && (!heldOnly || $0.held) }
    }

    // MARK: pages

    @Sendable func hostPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let query = QueryInput(request).query
        let text = query["q"] ?? ""
        let heldOnly = query["held"] == "true"
        let reading = try store.latest(PackageListing.self, kind: PackageListing.kind, hostID: host.id)
        let shown = Self.filtered(reading?.body, text: text, heldOnly: heldOnly)
        var data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "read": reading != nil, "read_at": reading.map { RFC3339.display($0.readAt) } ?? "",
            "total": reading?.body.packages.count ?? 0, "shown": min(shown.count, 1000), "more": shown.count > 1000, "filter_text": text,
            "held_only": heldOnly, "manager": reading?.body.manager.rawValue ?? "", "tab_packages": true,
            "operator": context.identity?.permissions.contains(.operate) ?? false, "admin": context.isAdmin, "disabled": !host.enabled,
            "rows": shown.prefix(1000).map { package in
                ViewNode([
                    "pkg_name": package.name, "pkg_link": FormQuery.link("/packages", [URLQueryItem(name: "name", value: package.name)]),
                    "pkg_version": package.version, "pkg_arch": package.arch, "pkg_held": package.held,
                ])
            },
        ]
        if let error = reading?.error { data["reading_error"] = error }
        if let term = query["search"], !term.isEmpty {
            data["search_term"] = term
            if !PackageListing.isPackageName(term) {
                data["search_error"] = "Search for part of a package name: letters, digits and .+_- only."
            } else if host.enabled {
                do {
                    let installed = Set(reading?.body.packages.map(\.name) ?? [])
                    let (_, found) = try await packages.search(term, on: host)
                    data["found"] = found.map { item in
                        ViewNode([
                            "found_name": item.name, "found_version": item.version, "found_summary": item.summary,
                            "found_installed": installed.contains(item.name),
                        ])
                    }
                    data["found_none"] = found.isEmpty
                    data["has_found"] = !found.isEmpty
                } catch let problem as Problem {
                    data["search_error"] = problem.detail
                }
            }
        }
        return area.pages.page("packages/host", title: "Packages on \(host.name)", section: "hosts", data: data, request: request, context: context)
    }

    @Sendable func refreshFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        return try await refreshAndReturn(
            host, to: "/hosts/\(host.id)/packages", pages: area.pages, success: { "Read \($0.body.packages.count) packages from \(host.name)." }
        ) { try await refresh(host, by: context.actor) }
    }

    @Sendable func actionFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let form = try await FormBody.read(request, context: context)
        return try await queueAndShow("/hosts/\(host.id)/packages", pages: area.pages, failure: "Not done") {
            try await area.runner.enqueue(
                PackageChanges(packages: packages).prepare(
                    name: form["name"] ?? "", action: form["action"] ?? "", confirm: form["confirm"], on: host, by: context.actor))
        }
    }

    struct FleetRows {
        var rows: [(host: Host, readAt: Date, package: InstalledPackage)] = []
        var lacking: [Host] = []
        var unread: [Host] = []
    }

    func fleet(name: String) throws -> FleetRows {
        let all = try hosts.all().filter(\.enabled)
        let stored = Dictionary(
            try store.all(PackageListing.self, kind: PackageListing.kind).filter { $0.body.itemCount > 0 }.map { ($0.hostID, $0) },
            uniquingKeysWith: { first, _ in first })
        var result = FleetRows()
        for host in all.sorted(by: { $0.name < $1.name }) {
            guard let reading = stored[host.id] else {
                result.unread.append(host)
                continue
            }
            if let package = reading.body.packages.first(where: { $0.name == name }) {
                result.rows.append((host, reading.readAt, package))
            } else {
                result.lacking.append(host)
            }
        }
        return result
    }

    @Sendable func fleetPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let name = QueryInput(request).query["name"] ?? ""
        var data: [String: Any] = [
            "package_query": name, "package_query_escaped": FormQuery.escaped(name), "asked": !name.isEmpty,
        ]
        if !name.isEmpty {
            let fleet = try self.fleet(name: name)
            data["rows"] = fleet.rows.map { row in
                ViewNode([
                    "row_host_id": row.host.id, "row_host": row.host.name, "row_version": row.package.version, "row_held": row.package.held,
                    "row_read_at": RFC3339.display(row.readAt),
                ])
            }
            data["versions"] = Set(fleet.rows.map(\.package.version)).count
            data["has_rows"] = !fleet.rows.isEmpty
            data["lacking"] = fleet.lacking.map { ViewNode(["lacking_id": $0.id, "lacking_name": $0.name]) }
            data["unread"] = fleet.unread.map { ViewNode(["unread_id": $0.id, "unread_name": $0.name]) }
            data["has_lacking"] = !fleet.lacking.isEmpty
            data["has_unread"] = !fleet.unread.isEmpty
            // Across hosts an install or removal is a rollout (plan, approvals, canary and waves); admins start one here.
            if context.isAdmin, Rollout.packageProblem(name) == nil, !name.contains("=") {
                func proposal(_ what: Rollout.What, _ hosts: [Host], _ title: String) -> String {
                    FormQuery.link(
                        "/rollouts/new",
                        [
                            URLQueryItem(name: "what", value: what.rawValue), URLQueryItem(name: "packages", value: name),
                            URLQueryItem(name: "targets", value: hosts.map(\.name).joined(separator: ", ")),
                            URLQueryItem(name: "title", value: title),
                        ])
                }
                if !fleet.lacking.isEmpty {
                    data["install_link"] = proposal(.install, fleet.lacking, "Install \(name)")
                }
                if !fleet.rows.isEmpty, !Rollout.reachNeeds.contains(name) {
                    data["remove_link"] = proposal(.remove, fleet.rows.map(\.host), "Remove \(name)")
                }
            }
        }
        return area.pages.page("packages/fleet", title: "Packages", section: "packages", data: data, request: request, context: context)
    }

    // MARK: API

    @Sendable func apiHost(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let query = QueryInput(request).query
        if let held = query["held"], !["true", "false"].contains(held) { throw Problem.invalid(["held": "true or false"]) }
        let reading = try store.latest(PackageListing.self, kind: PackageListing.kind, hostID: host.id)
        return try APIJSON.response(HostPackagesResource(host: host, reading: reading, text: query["q"] ?? "", heldOnly: query["held"] == "true"))
    }

    @Sendable func apiRefresh(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        return try APIJSON.response(HostPackagesResource(host: host, reading: try await refresh(host, by: context.actor), text: "", heldOnly: false))
    }

    @Sendable func apiSearch(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let term = QueryInput(request).query["q"] ?? ""
        guard PackageListing.isPackageName(term) else {
            throw Problem.invalid(["q": "part of a package name: a letter or digit, then letters, digits and .+_-"])
        }
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to search its repositories") }
        let (manager, found) = try await packages.search(term, on: host)
        return try APIJSON.response(PackageSearchResource(hostId: host.id, host: host.name, manager: manager.rawValue, items: found))
    }

    @Sendable func apiAction(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let input = try await APIInputDecoding.decode(PackageActionInput.self, from: request, limit: 1 << 12)
        var errors = APIInputDecoding.wrongFields(input)
        if input.name.given == nil, errors["name"] == nil { errors["name"] = "required: the package's name" }
        if input.action.given == nil, errors["action"] == nil { errors["action"] = "required: install, remove, hold or unhold" }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let job = try await area.runner.enqueue(
            PackageChanges(packages: packages).prepare(
                name: input.name.given ?? "", action: input.action.given ?? "", confirm: input.confirm.given, on: host, by: context.actor))
        return try APIJSON.response(JobResource(job), status: .accepted)
    }

    @Sendable func apiFleet(request: Request, context: StewardRequestContext) async throws -> Response {
        let name = QueryInput(request).query["name"] ?? ""
        guard PackageListing.isPackageName(name) else {
            throw Problem.invalid(["name": "required: a package's name (a letter or digit, then letters, digits and .+_-)"])
        }
        let fleet = try self.fleet(name: name)
        return try APIJSON.response(
            FleetPackageResource(
                name: name,
                items: fleet.rows.map {
                    FleetPackageResource.Item(
                        hostId: $0.host.id, host: $0.host.name, readAt: RFC3339.string($0.readAt), version: $0.package.version, held: $0.package.held)
                }, lacking: fleet.lacking.map(\.name), unread: fleet.unread.map(\.name)))
    }
}

struct PackageActionInput: APIInput {
    var name: Patch<String> = .absent
    var action: Patch<String> = .absent
    var confirm: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case name, action, confirm }
}

/// A host's installed packages (the `HostPackages` schema).
struct HostPackagesResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    let readAt: Nullable<String>
    let error: Nullable<String>
    let manager: Nullable<String>
    let total: Int
    let packages: [InstalledPackage]

    init(host: Host, reading: HostReading<PackageListing>?, text: String, heldOnly: Bool) {
        hostId = host.id
        self.host = host.name
        readAt = Nullable(reading.map { RFC3339.string($0.readAt) })
        error = Nullable(reading?.error)
        manager = Nullable(reading?.body.manager.rawValue)
        total = reading?.body.packages.count ?? 0
        packages = PackagesController.filtered(reading?.body, text: text, heldOnly: heldOnly)
    }
}

/// What a search of a host's repositories found (the `PackageSearch` schema).
struct PackageSearchResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    let manager: String
    let items: [PackageListing.Found]
}

/// One package across the fleet (the `FleetPackage` schema).
struct FleetPackageResource: Codable, Sendable {
    struct Item: Codable, Sendable {
        let hostId: Int64
        let host: String
        let readAt: String
        let version: String
        let held: Bool
    }
    let name: String
    let items: [Item]
    let lacking: [String]
    let unread: [String]
}
