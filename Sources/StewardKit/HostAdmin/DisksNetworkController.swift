import Foundation
import Hummingbird

/// A host's disks and network, read-only: its newest reading, with each filesystem's free-space trend from the metric
/// store when node_exporter is scraped.
struct DisksNetworkController: HostScopedController {
    let area: AreaContext
    let hosts: HostStore
    let reading: DisksNetworkReading
    let metrics: MetricStore
    var store: HostReadingStore { reading.readings.store }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "disks")
        routes.get("/hosts/:id/system", .view, use: page)
        routes.post("/hosts/:id/system/refresh", .operate, use: refreshFromPage)
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "host id")
        api(
            .get, "/api/v1/hosts/{id}/disks-network", .view, "hostDisksNetwork",
            "A host's block devices, mounts with options, usage with its trend, interfaces, routes, DNS servers, listening sockets and nftables ruleset",
            parameters: [id], schema: "HostDisksNetwork", use: apiShow)
        api(
            .post, "/api/v1/hosts/{id}/disks-network/refresh", .operate, "refreshHostDisksNetwork", "Read the host's disks and network now",
            parameters: [id], schema: "HostDisksNetwork", use: apiRefresh)
    }

    func refresh(_ host: Host, by who: AuditActor) async throws -> HostReading<DisksNetwork> {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to read it") }
        return try await reading.refresh(host, by: who)
    }

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let stored = try store.latest(DisksNetwork.self, kind: DisksNetwork.kind, hostID: host.id)
        let trends = Dictionary(FilesystemTrend.trends(metrics, hostID: host.id).map { ($0.mountPoint, $0) }, uniquingKeysWith: { a, _ in a })
        var data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "read": stored != nil, "tab_system": true,
            "operator": context.identity?.permissions.contains(.operate) ?? false, "disabled": !host.enabled,
        ]
        if let stored {
            let body = stored.body
            data["read_at"] = RFC3339.display(stored.readAt)
            if let error = stored.error { data["reading_error"] = error }
            data["devices"] = body.blockDevices.map { device in
                ViewNode([
                    "dev_name": String(repeating: "\u{2003}", count: device.depth) + device.name, "dev_type": device.type,
                    "dev_size": OverviewController.bytes(device.sizeBytes), "dev_fstype": device.fstype, "dev_mount": device.mountPoint,
                    "dev_model": device.model,
                ])
            }
            data["usage"] = body.filesystems.map { fs in
                var node: [String: Any] = [
                    "fs_mount": fs.mountPoint, "fs_type": fs.type, "fs_size": OverviewController.bytes(fs.sizeBytes),
                    "fs_available": OverviewController.bytes(fs.availableBytes), "fs_percent": String(format: "%.0f", fs.usedPercent),
                ]
                if let trend = trends[fs.mountPoint] {
                    let change = OverviewController.bytes(Int64(abs(trend.freeBytesPerDay)))
                    node["fs_trend"] =
                        trend.freeBytesPerDay < 0
                        ? "free space falls \(change)/day" + (trend.daysUntilFull.map { String(format: "; full in %.0f days", $0) } ?? "")
                        : "free space grows \(change)/day"
                }
                return ViewNode(node)
            }
            data["mounts"] = body.mounts.map {
                ViewNode(["mnt_target": $0.target, "mnt_source": $0.source, "mnt_type": $0.fstype, "mnt_options": $0.options])
            }
            data["interfaces"] = body.interfaces.map {
                ViewNode(["if_name": $0.name, "if_state": $0.state, "if_mac": $0.mac, "if_addresses": $0.addresses.joined(separator: ", ")])
            }
            data["routes"] = body.routes.map {
                ViewNode(["rt_dst": $0.destination, "rt_gateway": $0.gateway, "rt_dev": $0.device, "rt_proto": $0.proto])
            }
            data["dns"] = body.dnsServers.joined(separator: ", ")
            data["dns_search"] = body.dnsSearch.joined(separator: " ")
            data["listening"] = body.listening.map {
                ViewNode(["sock_proto": $0.proto, "sock_local": $0.local, "sock_process": $0.process.isEmpty ? "-" : $0.process])
            }
            data["nftables"] = body.nftables
            data["has_nftables"] = !body.nftables.isEmpty
            data["part_errors"] = body.errors.sorted { $0.key < $1.key }.map { ViewNode(["part": $0.key, "part_error": $0.value]) }
        }
        return area.pages.page(
            "system/host", title: "Disks and network on \(host.name)", section: "hosts", data: data, request: request, context: context)
    }

    @Sendable func refreshFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        return try await refreshAndReturn(
            host, to: "/hosts/\(host.id)/system", pages: area.pages, success: { _ in "Read \(host.name)'s disks and network." }
        ) {
            try await refresh(host, by: context.actor)
        }
    }

    @Sendable func apiShow(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let stored = try store.latest(DisksNetwork.self, kind: DisksNetwork.kind, hostID: host.id)
        return try APIJSON.response(HostDisksNetworkResource(host: host, reading: stored, trends: FilesystemTrend.trends(metrics, hostID: host.id)))
    }

    @Sendable func apiRefresh(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let stored = try await refresh(host, by: context.actor)
        return try APIJSON.response(HostDisksNetworkResource(host: host, reading: stored, trends: FilesystemTrend.trends(metrics, hostID: host.id)))
    }
}

/// A host's disks and network (the `HostDisksNetwork` schema).
struct HostDisksNetworkResource: Codable, Sendable {
    struct Trend: Codable, Sendable {
        let mountPoint: String
        let freeBytesPerDay: Double
        let daysUntilFull: Nullable<Double>
        let since: String
    }
    let hostId: Int64
    let host: String
    let readAt: Nullable<String>
    let error: Nullable<String>
    let blockDevices: [DisksNetwork.BlockDevice]
    let mounts: [DisksNetwork.Mount]
    let filesystems: [HostOverviewResource.Filesystem]
    let trends: [Trend]
    let interfaces: [HostOverview.Interface]
    let routes: [DisksNetwork.Route]
    let dnsServers: [String]
    let dnsSearch: [String]
    let listening: [HostOverview.Socket]
    let nftables: String
    let errors: [String: String]

    init(host: Host, reading: HostReading<DisksNetwork>?, trends: [FilesystemTrend]) {
        let body = reading?.body ?? DisksNetwork()
        hostId = host.id
        self.host = host.name
        readAt = Nullable(reading.map { RFC3339.string($0.readAt) })
        error = Nullable(reading?.error)
        blockDevices = body.blockDevices
        mounts = body.mounts
        filesystems = body.filesystems.map {
            HostOverviewResource.Filesystem(
                source: $0.source, type: $0.type, mountPoint: $0.mountPoint, sizeBytes: $0.sizeBytes, usedBytes: $0.usedBytes,
                availableBytes: $0.availableBytes)
        }
        self.trends = trends.map {
            Trend(
                mountPoint: $0.mountPoint, freeBytesPerDay: $0.freeBytesPerDay, daysUntilFull: Nullable($0.daysUntilFull),
                since: RFC3339.string($0.since))
        }
        interfaces = body.interfaces
        routes = body.routes
        dnsServers = body.dnsServers
        dnsSearch = body.dnsSearch
        listening = body.listening
        nftables = body.nftables
        errors = body.errors
    }
}
