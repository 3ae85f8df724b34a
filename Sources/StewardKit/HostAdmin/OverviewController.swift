import Foundation
import GRDB
import Hummingbird

/// A host's overview page and `/api/v1/hosts/{id}/overview`: its newest overview reading, with the failed units of its
/// services reading, the pending updates of its facts, and its latest alerts and jobs, each with its own time.
struct OverviewController: HostScopedController {
    let area: AreaContext
    let hosts: HostStore
    let overview: OverviewReading
    let database: DatabasePool
    var store: HostReadingStore { overview.readings.store }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "overview")
        routes.get("/hosts/:id/overview", .view, use: page)
        routes.post("/hosts/:id/overview/refresh", .operate, use: refreshFromPage)
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "host id")
        api(
            .get, "/api/v1/hosts/{id}/overview", .view, "hostOverview",
            "A host at a glance from its newest readings and facts, each part with when it was read", parameters: [id], schema: "HostOverview",
            use: apiShow)
        api(
            .post, "/api/v1/hosts/{id}/overview/refresh", .operate, "refreshHostOverview",
            "Read the host's overview now (a few quick commands over one connection, seconds; not a facts run)", parameters: [id],
            schema: "HostOverview", use: apiRefresh)
    }

    struct Context {
        var reading: HostReading<HostOverview>?
        var services: HostReading<ServiceListing>?
        var facts: HostFacts?
        var alerts: [(rule: String, state: String, severity: String?, at: Date)]
        var jobs: [Job]
    }

    func gather(_ host: Host) throws -> Context {
        let alerts = try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT r.name AS rule_name, h.to_state, h.severity, h.at FROM alert_history h JOIN alert_rules r ON r.id = h.rule_id
                    WHERE h.host_id = ? ORDER BY h.at DESC, h.id DESC LIMIT 10
                    """, arguments: [host.id])
        }.map { row in
            (
                rule: row["rule_name"] as String, state: row["to_state"] as String, severity: row["severity"] as String?,
                at: EpochMilliseconds.date(row["at"])
            )
        }
        return Context(
            reading: try store.latest(HostOverview.self, kind: HostOverview.kind, hostID: host.id),
            services: try store.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: host.id),
            facts: try HostFacts.latest(database, hostID: host.id), alerts: alerts, jobs: try area.runner.store.recent(forHost: host.name, limit: 10))
    }

    // MARK: pages

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let gathered = try gather(host)
        var data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "read": gathered.reading != nil,
            "operator": context.identity?.permissions.contains(.operate) ?? false, "disabled": !host.enabled, "tab_overview": true,
        ]
        if let reading = gathered.reading {
            let body = reading.body
            data["read_at"] = RFC3339.display(reading.readAt)
            if let error = reading.error { data["reading_error"] = error }
            var facts: [ViewNode] = []
            func fact(_ label: String, _ value: String?) {
                if let value, !value.isEmpty { facts.append(ViewNode(["fact_label": label, "fact_value": value])) }
            }
            fact("Operating system", body.os)
            fact("Kernel", body.kernel)
            fact("Up", body.uptimeSeconds.map { Self.duration($0) })
            fact("Load (1, 5, 15 min)", body.load.isEmpty ? nil : body.load.map { String(format: "%.2f", $0) }.joined(separator: ", "))
            fact("CPUs", body.cpus.map(String.init))
            if let total = body.memoryTotalBytes, let available = body.memoryAvailableBytes {
                fact("Memory", "\(Self.bytes(total - available)) used of \(Self.bytes(total)) (\(Self.bytes(available)) available)")
            }
            if let total = body.swapTotalBytes, let free = body.swapFreeBytes {
                fact("Swap", total == 0 ? "none" : "\(Self.bytes(total - free)) used of \(Self.bytes(total))")
            }
            fact("Reboot required", body.rebootRequired.map { $0 ? "yes (/run/reboot-required)" : "no" })
            data["facts"] = facts
            data["filesystems"] = body.filesystems.map { fs in
                ViewNode([
                    "fs_mount": fs.mountPoint, "fs_source": fs.source, "fs_type": fs.type, "fs_size": Self.bytes(fs.sizeBytes),
                    "fs_used": Self.bytes(fs.usedBytes),
                    "fs_available": Self.bytes(fs.availableBytes), "fs_percent": String(format: "%.0f", fs.usedPercent),
                    "fs_full": fs.usedPercent >= 90,
                ])
            }
            data["interfaces"] = body.interfaces.map {
                ViewNode(["if_name": $0.name, "if_state": $0.state, "if_mac": $0.mac, "if_addresses": $0.addresses.joined(separator: ", ")])
            }
            data["listening"] = body.listening.map {
                ViewNode(["sock_proto": $0.proto, "sock_local": $0.local, "sock_process": $0.process.isEmpty ? "-" : $0.process])
            }
            data["logins"] = body.lastLogins.joined(separator: "\n")
            data["has_logins"] = !body.lastLogins.isEmpty
            data["part_errors"] = body.errors.sorted { $0.key < $1.key }.map { ViewNode(["part": $0.key, "part_error": $0.value]) }
        }
        if let services = gathered.services {
            let failed = services.body.units.filter { $0.active == "failed" }
            data["services_read_at"] = RFC3339.display(services.readAt)
            data["failed_units"] = failed.map { ViewNode(["failed_unit": $0.unit, "failed_path": ServicesController.pathComponent($0.unit)]) }
            data["no_failed_units"] = failed.isEmpty
        }
        if let facts = gathered.facts {
            data["facts_read_at"] = RFC3339.display(facts.gatheredAt)
            data["pending_count"] = facts.pendingUpdates.count
            data["security_count"] = facts.pendingUpdates.filter(\.security).count
            data["facts_reboot"] = facts.rebootRequired
        }
        data["alerts"] = gathered.alerts.map { alert in
            ViewNode([
                "alert_rule": alert.rule, "alert_state": alert.state, "alert_severity": alert.severity ?? "", "alert_at": RFC3339.display(alert.at),
            ])
        }
        data["jobs"] = gathered.jobs.map { job in
            ViewNode([
                "job_id": job.id, "job_title": job.title, "job_state": job.state.rawValue,
                "job_at": RFC3339.display(EpochMilliseconds.date(job.createdAt)),
            ])
        }
        return area.pages.page("overview/host", title: "\(host.name): overview", section: "hosts", data: data, request: request, context: context)
    }

    @Sendable func refreshFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        return try await refreshAndReturn(
            host, to: "/hosts/\(host.id)/overview", pages: area.pages, success: { _ in "Read \(host.name)'s overview." }
        ) {
            try await refresh(host, by: context.actor)
        }
    }

    func refresh(_ host: Host, by who: AuditActor) async throws -> HostReading<HostOverview> {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to read it") }
        return try await overview.refresh(host, by: who)
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        let days = total / 86_400
        let hours = total % 86_400 / 3600
        let minutes = total % 3600 / 60
        return days > 0 ? "\(days) d \(hours) h" : hours > 0 ? "\(hours) h \(minutes) min" : "\(minutes) min"
    }

    static func bytes(_ value: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var amount = Double(value)
        var index = 0
        while amount >= 1024, index < units.count - 1 {
            amount /= 1024
            index += 1
        }
        return index == 0 ? "\(value) B" : String(format: "%.1f %@", amount, units[index])
    }

    // MARK: API

    @Sendable func apiShow(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        return try APIJSON.response(HostOverviewResource(host: host, gathered: try gather(host)))
    }

    @Sendable func apiRefresh(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        _ = try await refresh(host, by: context.actor)
        return try APIJSON.response(HostOverviewResource(host: host, gathered: try gather(host)))
    }
}

/// A host at a glance (the `HostOverview` schema): the overview reading's parts, and what other readings and the
/// facts say, each with its own time.
struct HostOverviewResource: Codable, Sendable {
    struct Filesystem: Codable, Sendable {
        let source, type, mountPoint: String
        let sizeBytes, usedBytes, availableBytes: Int64
    }
    struct Updates: Codable, Sendable {
        let gatheredAt: String
        let pending, security: Int
        let rebootRequired: Bool
    }
    struct Alert: Codable, Sendable {
        let rule, state: String
        let severity: Nullable<String>
        let at: String
    }
    let hostId: Int64
    let host: String
    let readAt: Nullable<String>
    let error: Nullable<String>
    let os, kernel: String
    let uptimeSeconds: Nullable<Double>
    let load: [Double]
    let cpus: Nullable<Int>
    let memoryTotalBytes, memoryAvailableBytes, swapTotalBytes, swapFreeBytes: Nullable<Int64>
    let filesystems: [Filesystem]
    let interfaces: [HostOverview.Interface]
    let listening: [HostOverview.Socket]
    let rebootRequired: Nullable<Bool>
    let lastLogins: [String]
    /// Part -> why it could not be read.
    let errors: [String: String]
    let failedUnits: [String]
    let servicesReadAt: Nullable<String>
    let updates: Nullable<Updates>
    let alerts: [Alert]
    let jobs: [JobResource]

    init(host: Host, gathered: OverviewController.Context) {
        let body = gathered.reading?.body ?? HostOverview()
        hostId = host.id
        self.host = host.name
        readAt = Nullable(gathered.reading.map { RFC3339.string($0.readAt) })
        error = Nullable(gathered.reading?.error)
        os = body.os
        kernel = body.kernel
        uptimeSeconds = Nullable(body.uptimeSeconds)
        load = body.load
        cpus = Nullable(body.cpus)
        memoryTotalBytes = Nullable(body.memoryTotalBytes)
        memoryAvailableBytes = Nullable(body.memoryAvailableBytes)
        swapTotalBytes = Nullable(body.swapTotalBytes)
        swapFreeBytes = Nullable(body.swapFreeBytes)
        filesystems = body.filesystems.map {
            Filesystem(
                source: $0.source, type: $0.type, mountPoint: $0.mountPoint, sizeBytes: $0.sizeBytes, usedBytes: $0.usedBytes,
                availableBytes: $0.availableBytes)
        }
        interfaces = body.interfaces
        listening = body.listening
        rebootRequired = Nullable(body.rebootRequired)
        lastLogins = body.lastLogins
        errors = body.errors
        failedUnits = gathered.services?.body.units.filter { $0.active == "failed" }.map(\.unit) ?? []
        servicesReadAt = Nullable(gathered.services.map { RFC3339.string($0.readAt) })
        updates = Nullable(
            gathered.facts.map { facts in
                Updates(
                    gatheredAt: RFC3339.string(facts.gatheredAt), pending: facts.pendingUpdates.count,
                    security: facts.pendingUpdates.filter(\.security).count,
                    rebootRequired: facts.rebootRequired)
            })
        alerts = gathered.alerts.map { Alert(rule: $0.rule, state: $0.state, severity: Nullable($0.severity), at: RFC3339.string($0.at)) }
        jobs = gathered.jobs.map(JobResource.init)
    }
}
