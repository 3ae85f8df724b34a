import Foundation
import GRDB
import Hummingbird

/// Pending updates across the fleet (from each host's newest facts): the Updates page, the per-package view, refresh
/// on demand, and `/api/v1/updates`.
struct UpdatesController {
    let area: AreaContext
    let database: DatabasePool
    let hosts: HostStore

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "updates")
        routes.get("/updates", .view, use: fleetPage)
        routes.get("/updates/packages", .view, use: packagesPage)
        routes.post("/updates/refresh", .operate, use: refreshFromPage)
        api(
            .get, "/api/v1/updates", .view, "listPendingUpdates",
            "Each host's pending updates with versions, the security count, reboot-required and how long security updates have waited",
            schema: "PendingUpdatesList", use: apiFleet)
        api(
            .get, "/api/v1/updates/packages", .view, "listPendingPackages", "Each package with a pending update and the hosts that would take it",
            schema: "PendingPackageList", use: apiPackages)
        api(
            .post, "/api/v1/updates/refresh", .operate, "refreshPendingUpdates", "Gather facts from every host now (the Gather facts schedule's job)",
            status: 202, schema: "Job", use: apiRefresh)
    }

    func report() throws -> PendingUpdatesReport { try PendingUpdatesReport.build(database: database, hosts: try hosts.all()) }

    // MARK: pages

    @Sendable func fleetPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let rows = try report().hosts.sorted { ($0.securityCount, $0.updates.count) > ($1.securityCount, $1.updates.count) }
        let view = rows.map { row in
            ViewNode([
                "id": row.host.id, "name": row.host.name, "count": row.updates.count, "security": row.securityCount,
                "has_security": row.securityCount > 0, "reboot": row.rebootRequired,
                "age": row.securityAgeDays.map { MetricUnit.trim($0, digits: 1) + " d" } ?? "", "stale": row.gatheredAt == nil,
                "gathered": row.gatheredAt.map { RFC3339.display($0) } ?? "never", "old": (row.securityAgeDays ?? 0) >= 7,
                "packages": row.updates.prefix(8).map(\.package).joined(separator: ", ") + (row.updates.count > 8 ? ", …" : ""),
            ])
        }
        return area.pages.page(
            "updates/fleet", title: "Updates", section: "updates",
            data: [
                "hosts": view, "empty": view.isEmpty, "total": rows.reduce(0) { $0 + $1.updates.count },
                "total_security": rows.reduce(0) { $0 + $1.securityCount }, "reboots": rows.filter(\.rebootRequired).count,
                "operator": context.identity?.permissions.contains(.operate) ?? false,
            ], request: request, context: context)
    }

    @Sendable func packagesPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let packages = try report().packages.map { entry in
            ViewNode([
                "package": entry.package, "security": entry.security, "count": entry.hosts.count,
                "hosts": entry.hosts.map {
                    ViewNode(["host": $0.host, "current": $0.current.isEmpty ? "new" : $0.current, "candidate": $0.candidate, "origin": $0.origin])
                },
            ])
        }
        return area.pages.page(
            "updates/packages", title: "Updates by package", section: "updates", data: ["packages": packages, "empty": packages.isEmpty],
            request: request, context: context)
    }

    @Sendable func refreshFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        do {
            let job = try await refresh(context.actor)
            return area.pages.redirect(to: "/jobs/\(job.id)", flash: Flash(.success, "Gathering facts from every host as job \(job.id)."))
        } catch let problem as Problem {
            return area.pages.redirect(to: "/updates", flash: Flash(.warning, problem.detail))
        }
    }

    func refresh(_ actor: AuditActor) async throws -> Job {
        guard let schedule = try area.scheduler.store.schedule(named: "Gather facts") else { throw Problem.notFound("the Gather facts schedule") }
        guard let firing = try await area.scheduler.runNow(id: schedule.id, by: actor), let id = firing.jobID,
            let job = try area.scheduler.jobs.store.job(id: id)
        else {
            throw Problem(status: .conflict, detail: "facts are already being gathered; the page shows the new ones when that job ends")
        }
        return job
    }

    // MARK: API

    @Sendable func apiFleet(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(CursorPage(items: try report().hosts.map(PendingUpdatesResource.init), next: Nullable(nil)))
    }

    @Sendable func apiPackages(request: Request, context: StewardRequestContext) async throws -> Response {
        let items = try report().packages.map { entry in
            PendingPackageResource(
                package: entry.package, security: entry.security,
                hosts: entry.hosts.map { .init(host: $0.host, current: $0.current, candidate: $0.candidate, origin: $0.origin) })
        }
        return try APIJSON.response(CursorPage(items: items, next: Nullable(nil)))
    }

    @Sendable func apiRefresh(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(JobResource(try await refresh(context.actor)), status: .accepted)
    }
}

/// One host's pending updates.
struct PendingUpdatesResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    let gatheredAt: Nullable<String>
    let count, securityCount: Int
    let rebootRequired: Bool
    let securityPendingDays: Nullable<Double>
    let updates: [PendingUpdate]

    init(_ row: PendingUpdatesReport.HostRow) {
        hostId = row.host.id
        host = row.host.name
        gatheredAt = Nullable(row.gatheredAt.map(RFC3339.string))
        count = row.updates.count
        securityCount = row.securityCount
        rebootRequired = row.rebootRequired
        securityPendingDays = Nullable(row.securityAgeDays.map { ($0 * 10).rounded() / 10 })
        updates = row.updates
    }
}

/// One package with a pending update and the hosts that would take it.
struct PendingPackageResource: Codable, Sendable {
    struct HostVersion: Codable, Sendable {
        let host, current, candidate, origin: String
    }
    let package: String
    let security: Bool
    let hosts: [HostVersion]
}
