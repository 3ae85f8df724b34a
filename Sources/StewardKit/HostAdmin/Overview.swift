import Foundation

/// A host at a glance, read with a handful of quick commands over one connection: OS, kernel, uptime, load, memory,
/// filesystems, addresses, listening sockets with their process, whether a reboot is due, and the last logins. A
/// command that fails leaves its part empty with the host's words for why; the rest still shows.
struct HostOverview: HostReadingBody, Equatable {
    struct Filesystem: Codable, Sendable, Equatable {
        var source, type, mountPoint: String
        var sizeBytes, usedBytes, availableBytes: Int64
        var usedPercent: Double { sizeBytes > 0 ? Double(usedBytes) * 100 / Double(sizeBytes) : 0 }
    }
    struct Interface: Codable, Sendable, Equatable {
        var name, state: String
        var mac: String
        var addresses: [String]
    }
    struct Socket: Codable, Sendable, Equatable {
        var proto, local, process: String
    }

    var os = ""
    var kernel = ""
    var uptimeSeconds: Double?
    var load: [Double] = []
    var cpus: Int?
    var memoryTotalBytes: Int64?
    var memoryAvailableBytes: Int64?
    var swapTotalBytes: Int64?
    var swapFreeBytes: Int64?
    var filesystems: [Filesystem] = []
    var interfaces: [Interface] = []
    var listening: [Socket] = []
    var rebootRequired: Bool?
    var lastLogins: [String] = []
    /// Part -> why it could not be read.
    var errors: [String: String] = [:]

    static let kind = "overview"
    var itemCount: Int { [os, kernel].filter { !$0.isEmpty }.count + (uptimeSeconds == nil ? 0 : 1) + filesystems.count + interfaces.count }

    static let commands: [(part: String, words: [String], needsRoot: Bool)] = [
        ("os", ["cat", "/etc/os-release"], false),
        ("kernel", ["uname", "-srm"], false),
        ("uptime", ["cat", "/proc/uptime", "/proc/loadavg"], false),
        ("cpus", ["nproc"], false),
        ("memory", ["cat", "/proc/meminfo"], false),
        (
            "filesystems",
            [
                "env", "LC_ALL=C", "df", "-B1", "--output=source,fstype,size,used,avail,target", "-x", "tmpfs", "-x", "devtmpfs", "-x",
                "squashfs", "-x", "efivarfs",
            ], false
        ),
        ("interfaces", ["ip", "-j", "address", "show"], false),
        // Process names of other users' sockets need root.
        ("listening", ["ss", "-H", "-t", "-u", "-l", "-n", "-p"], true),
        ("logins", ["env", "LC_ALL=C", "last", "-n", "10", "-F", "-w"], false),
    ]

    mutating func take(_ part: String, _ text: String) {
        switch part {
        case "os":
            let line = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("PRETTY_NAME=") }
            os = HostText.clean(
                line.map { String($0.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) } ?? "", maxBytes: 200
            )
        case "kernel": kernel = HostText.clean(text.trimmingCharacters(in: .whitespacesAndNewlines), maxBytes: 200)
        case "uptime":
            let words = text.split(whereSeparator: \.isWhitespace)
            uptimeSeconds = words.first.flatMap { Double($0) }
            load = words.dropFirst(2).prefix(3).compactMap { Double($0) }
        case "cpus": cpus = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        case "memory":
            var kib: [String: Int64] = [:]
            for line in text.split(whereSeparator: \.isNewline) {
                let words = line.split(whereSeparator: { $0 == ":" || $0.isWhitespace })
                if words.count >= 2, let value = Int64(words[1]) { kib[String(words[0])] = value }
            }
            memoryTotalBytes = kib["MemTotal"].map { $0 * 1024 }
            memoryAvailableBytes = kib["MemAvailable"].map { $0 * 1024 }
            swapTotalBytes = kib["SwapTotal"].map { $0 * 1024 }
            swapFreeBytes = kib["SwapFree"].map { $0 * 1024 }
        case "filesystems": filesystems = Self.parseDF(text)
        case "interfaces": interfaces = Self.parseIP(text)
        case "listening": listening = Self.parseSS(text)
        case "logins":
            lastLogins = text.split(whereSeparator: \.isNewline).map { HostText.clean(String($0), maxBytes: 300) }
                .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.hasPrefix("wtmp begins") }
        default: break
        }
    }

    /// `df -B1 --output=source,fstype,size,used,avail,target`: a header, then six columns (the mount point last,
    /// with any spaces it has).
    static func parseDF(_ text: String) -> [Filesystem] {
        text.split(whereSeparator: \.isNewline).dropFirst().compactMap { line in
            let words = line.split(maxSplits: 5, whereSeparator: \.isWhitespace)
            guard words.count == 6, let size = Int64(words[2]), let used = Int64(words[3]), let available = Int64(words[4]) else { return nil }
            return Filesystem(
                source: HostText.clean(String(words[0]), maxBytes: 300), type: String(words[1]),
                mountPoint: HostText.clean(String(words[5]), maxBytes: 300),
                sizeBytes: size, usedBytes: used, availableBytes: available)
        }
    }

    /// `ip -j address show`: interfaces with their state, MAC and addresses (address/prefix).
    static func parseIP(_ text: String) -> [Interface] {
        struct Link: Decodable {
            struct Address: Decodable {
                let local: String?
                let prefixlen: Int?
            }
            let ifname: String
            let operstate: String?
            let address: String?
            let addr_info: [Address]?
        }
        guard let links = try? JSONDecoder().decode([Link].self, from: Data(text.utf8)) else { return [] }
        return links.map { link in
            Interface(
                name: HostText.clean(link.ifname, maxBytes: 64), state: link.operstate ?? "", mac: link.address ?? "",
                addresses: (link.addr_info ?? []).compactMap { info in info.local.map { "\($0)/\(info.prefixlen ?? 0)" } })
        }
    }

    /// `ss -H -t -u -l -n -p`: Netid State Recv-Q Send-Q Local Peer [Process]; the process column as
    /// `users:(("sshd",pid=34,fd=3))` becomes `sshd (34)`.
    static func parseSS(_ text: String) -> [Socket] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let words = line.split(maxSplits: 6, whereSeparator: \.isWhitespace)
            guard words.count >= 6 else { return nil }
            var process = ""
            if words.count == 7 {
                let field = String(words[6])
                var names: [String] = []
                var rest = Substring(field)
                while let open = rest.range(of: "((\"") ?? rest.range(of: "(\"") {
                    let after = rest[open.upperBound...]
                    guard let close = after.firstIndex(of: "\"") else { break }
                    let name = String(after[..<close])
                    let pid = after[close...].range(of: "pid=").map { after[$0.upperBound...].prefix(while: \.isNumber) } ?? ""
                    names.append(pid.isEmpty ? name : "\(name) (\(pid))")
                    rest = after[close...]
                }
                process = HostText.clean(names.joined(separator: ", "), maxBytes: 300)
            }
            return Socket(proto: String(words[0]), local: String(words[4]), process: process)
        }
    }
}

/// Reads a host's overview now and keeps the reading.
struct OverviewReading: Sendable {
    let readings: HostReadings

    @discardableResult
    func refresh(_ host: Host, by who: AuditActor? = nil, now: Date = Date()) async throws -> HostReading<HostOverview> {
        try await readings.refresh(host, by: who, now: now) { host in
            var overview = HostOverview()
            let (outputs, errors) = try await readings.readParts(host, HostOverview.commands)
            for output in outputs { overview.take(output.part, output.text) }
            overview.errors = errors
            let reboot = try await readings.reader.run(host, ["test", "-e", "/run/reboot-required"], timeout: 10)
            overview.rebootRequired = reboot.status == 0
            let error = overview.itemCount == 0 ? (overview.errors["os"] ?? overview.errors.values.first ?? "nothing could be read") : nil
            return HostReading(hostID: host.id, readAt: now, body: overview, error: error)
        }
    }
}
