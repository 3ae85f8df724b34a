import Foundation

/// A host's disks and network, read-only: block devices, mounts with their options, usage, interfaces, routes, DNS
/// servers, listening sockets and the nftables ruleset as text. Each part's failure is kept in the host's words.
struct DisksNetwork: HostReadingBody, Equatable {
    struct BlockDevice: Codable, Sendable, Equatable {
        var name, type, fstype, mountPoint, model: String
        var sizeBytes: Int64
        /// Nesting depth (a partition under its disk, a volume under its partition).
        var depth: Int
    }
    struct Mount: Codable, Sendable, Equatable {
        var target, source, fstype, options: String
    }
    struct Route: Codable, Sendable, Equatable {
        var destination, gateway, device, proto: String
    }

    var blockDevices: [BlockDevice] = []
    var mounts: [Mount] = []
    var filesystems: [HostOverview.Filesystem] = []
    var interfaces: [HostOverview.Interface] = []
    var routes: [Route] = []
    var dnsServers: [String] = []
    var dnsSearch: [String] = []
    var listening: [HostOverview.Socket] = []
    var nftables = ""
    var errors: [String: String] = [:]

    static let kind = "disks-network"
    var itemCount: Int { blockDevices.count + mounts.count + filesystems.count + interfaces.count + routes.count }

    static let commands: [(part: String, words: [String], needsRoot: Bool)] = [
        ("block devices", ["lsblk", "-J", "-b", "-o", "NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT,MODEL"], false),
        ("mounts", ["findmnt", "-J", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS"], false),
        ("usage", HostOverview.commands.first { $0.part == "filesystems" }!.words, false),
        ("interfaces", ["ip", "-j", "address", "show"], false),
        ("routes", ["ip", "-j", "route", "show"], false),
        ("dns", ["cat", "/etc/resolv.conf"], false),
        ("listening", ["ss", "-H", "-t", "-u", "-l", "-n", "-p"], true),
        ("nftables", ["nft", "list", "ruleset"], true),
    ]

    mutating func take(_ part: String, _ text: String) {
        switch part {
        case "block devices": blockDevices = Self.parseLsblk(text)
        case "mounts": mounts = Self.parseFindmnt(text)
        case "usage": filesystems = HostOverview.parseDF(text)
        case "interfaces": interfaces = HostOverview.parseIP(text)
        case "routes": routes = Self.parseRoutes(text)
        case "dns":
            for line in text.split(whereSeparator: \.isNewline) {
                let words = line.split(whereSeparator: \.isWhitespace).map { HostText.clean(String($0), maxBytes: 255) }
                if words.first == "nameserver", words.count > 1 { dnsServers.append(words[1]) }
                if words.first == "search" || words.first == "domain" { dnsSearch += words.dropFirst() }
            }
        case "listening": listening = HostOverview.parseSS(text)
        case "nftables":
            // Line by line, so the ruleset keeps its layout; at most 256 KiB of it.
            nftables = HostText.clean(text, maxBytes: 256 << 10, keepingLines: true)
        default: break
        }
    }

    /// `lsblk -J`: {"blockdevices": [{name, type, size, fstype, mountpoint, model, children: [...]}]}, flattened with
    /// each device's depth.
    static func parseLsblk(_ text: String) -> [BlockDevice] {
        final class Node: Decodable {
            let name: String
            let type: String?
            let size: Int64?
            let fstype: String?
            let mountpoint: String?
            let model: String?
            let children: [Node]?
        }
        struct Top: Decodable { let blockdevices: [Node] }
        guard let top = try? JSONDecoder().decode(Top.self, from: Data(text.utf8)) else { return [] }
        var result: [BlockDevice] = []
        func walk(_ nodes: [Node], depth: Int) {
            for node in nodes {
                result.append(
                    BlockDevice(
                        name: HostText.clean(node.name, maxBytes: 128), type: node.type ?? "", fstype: node.fstype ?? "",
                        mountPoint: HostText.clean(node.mountpoint ?? "", maxBytes: 300), model: HostText.clean(node.model ?? "", maxBytes: 128),
                        sizeBytes: node.size ?? 0, depth: depth))
                walk(node.children ?? [], depth: depth + 1)
            }
        }
        walk(top.blockdevices, depth: 0)
        return result
    }

    /// `findmnt -J`: {"filesystems": [{target, source, fstype, options, children: [...]}]}, flattened.
    static func parseFindmnt(_ text: String) -> [Mount] {
        final class Node: Decodable {
            let target: String
            let source: String?
            let fstype: String?
            let options: String?
            let children: [Node]?
        }
        struct Top: Decodable { let filesystems: [Node] }
        guard let top = try? JSONDecoder().decode(Top.self, from: Data(text.utf8)) else { return [] }
        var result: [Mount] = []
        func walk(_ nodes: [Node]) {
            for node in nodes {
                result.append(
                    Mount(
                        target: HostText.clean(node.target, maxBytes: 300), source: HostText.clean(node.source ?? "", maxBytes: 300),
                        fstype: node.fstype ?? "",
                        options: HostText.clean(node.options ?? "", maxBytes: 1000)))
                walk(node.children ?? [])
            }
        }
        walk(top.filesystems)
        return result
    }

    /// `ip -j route show`: [{dst, gateway, dev, protocol}].
    static func parseRoutes(_ text: String) -> [Route] {
        struct Entry: Decodable {
            let dst: String?
            let gateway: String?
            let dev: String?
            let `protocol`: String?
        }
        guard let entries = try? JSONDecoder().decode([Entry].self, from: Data(text.utf8)) else { return [] }
        return entries.map {
            Route(destination: $0.dst ?? "", gateway: $0.gateway ?? "", device: $0.dev ?? "", proto: $0.protocol ?? "")
        }
    }
}

/// Reads a host's disks and network now and keeps the reading.
struct DisksNetworkReading: Sendable {
    let readings: HostReadings

    @discardableResult
    func refresh(_ host: Host, by who: AuditActor? = nil, now: Date = Date()) async throws -> HostReading<DisksNetwork> {
        try await readings.refresh(host, by: who, now: now) { host in
            var body = DisksNetwork()
            let (outputs, errors) = try await readings.readParts(host, DisksNetwork.commands)
            for output in outputs { body.take(output.part, output.text) }
            body.errors = errors
            let error = body.itemCount == 0 ? (body.errors.values.sorted().first ?? "nothing could be read") : nil
            return HostReading(hostID: host.id, readAt: now, body: body, error: error)
        }
    }
}

/// How a filesystem's free space moved over the last week, from the metric store's node_exporter series.
struct FilesystemTrend: Codable, Sendable, Equatable {
    var mountPoint: String
    /// Free bytes a day, negative when it fills (from the first and last hourly buckets of the window).
    var freeBytesPerDay: Double
    /// At this rate, days until it is full; nil when it is not filling.
    var daysUntilFull: Double?
    var since: Date

    static func trends(_ metrics: MetricStore, hostID: Int64, now: Date = Date()) -> [FilesystemTrend] {
        let to = EpochMilliseconds.from(now)
        let from = to - 7 * 86_400_000
        return metrics.series(hostID: hostID, name: "node_filesystem_avail_bytes").compactMap { series in
            guard let mount = series.label("mountpoint"), let buckets = try? metrics.rollups(series.id, .hour, from: from, to: to),
                let first = buckets.first, let last = buckets.last, last.lastTime - first.lastTime >= 3_600_000
            else { return nil }
            let days = Double(last.lastTime - first.lastTime) / 86_400_000
            let perDay = (last.last - first.last) / days
            return FilesystemTrend(
                mountPoint: mount, freeBytesPerDay: perDay, daysUntilFull: perDay < 0 ? last.last / -perDay : nil,
                since: EpochMilliseconds.date(first.lastTime))
        }.sorted { $0.mountPoint < $1.mountPoint }
    }
}
