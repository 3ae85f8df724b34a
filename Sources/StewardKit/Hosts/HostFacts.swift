import Foundation
import GRDB

/// What the facts job found on a host, as stored in `host_facts`.
public struct HostFacts: @unchecked Sendable {
    public struct Filesystem: Sendable, Equatable {
        public var mount: String
        public var type: String
        public var sizeBytes: Int64
        public var availableBytes: Int64
        public var device = ""
    }
    public struct Account: Sendable, Equatable {
        public var name: String
        public var id: Int
        public var detail: String
    }

    public var gatheredAt: Date
    public var jobID: Int64?
    public var os: String
    public var kernel: String
    public var uptimeSeconds: Int
    public var cpus: Int
    public var memoryMB: Int
    public var filesystems: [Filesystem]
    public var addresses: [String]
    /// Packages with a pending update, and which of them come from a security archive.
    public var updates: [String]
    /// The same updates with their current and new versions and where they come from.
    public var pendingUpdates: [PendingUpdate]
    public var securityUpdates: [String]
    public var rebootRequired: Bool
    public var users: [Account]
    public var groups: [Account]
    /// Login shells from /etc/shells.
    public var shells: [String]
    /// user -> shell, home, gecos; group -> members (from getent).
    public var passwd: [String: (uid: Int, gid: Int, gecos: String, home: String, shell: String)]
    public var groupMembers: [String: (gid: Int, members: [String])]
    /// user -> locked (the hash starts with "!", as `usermod -L` and `passwd -l` leave it) and the expiry day (days
    /// since 1970, nil for never); empty when the facts have no shadow figures (a host without sudo, older facts.yml).
    public var accountStates: [String: (locked: Bool, expiresDay: Int?)]

    /// The newest facts for a host.
    public static func latest(_ reader: any DatabaseReader, hostID: Int64) throws -> HostFacts? {
        try reader.read { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM host_facts WHERE host_id = ? ORDER BY gathered_at DESC LIMIT 1", arguments: [hostID]),
                let object = try? JSONSerialization.jsonObject(with: Data((row["facts"] as String).utf8)) as? [String: Any]
            else { return nil }
            return HostFacts(object, gatheredAt: EpochMilliseconds.date(row["gathered_at"]), jobID: row["job_id"])
        }
    }

    init(_ object: [String: Any], gatheredAt: Date, jobID: Int64?) {
        func int(_ value: Any?) -> Int {
            if let number = value as? Int { return number }
            if let text = value as? String { return Int(text) ?? 0 }
            if let number = value as? Double { return Int(number) }
            return 0
        }
        self.gatheredAt = gatheredAt
        self.jobID = jobID
        os = (object["os"] as? String ?? "").trimmingCharacters(in: .whitespaces)
        kernel = object["kernel"] as? String ?? ""
        uptimeSeconds = int(object["uptime_seconds"])
        cpus = int(object["cpus"])
        memoryMB = int(object["memory_mb"])
        filesystems = (object["filesystems"] as? [[String: Any]] ?? []).map { mount in
            Filesystem(
                mount: mount["mount"] as? String ?? "", type: mount["fstype"] as? String ?? "", sizeBytes: Int64(int(mount["size_total"])),
                availableBytes: Int64(int(mount["size_available"])), device: mount["device"] as? String ?? "")
        }.sorted { $0.mount < $1.mount }
        addresses = object["addresses"] as? [String] ?? []
        pendingUpdates = PendingUpdate.parse(
            apt: object["upgrade_lines"] as? [String] ?? [], dnf: object["dnf_lines"] as? [String] ?? [],
            dnfSecurity: object["dnf_security_lines"] as? [String] ?? [], dnfInstalled: object["dnf_installed_lines"] as? [String] ?? [])
        updates = pendingUpdates.map(\.package)
        securityUpdates = pendingUpdates.filter(\.security).map(\.package)
        rebootRequired = (object["reboot_required"] as? Bool) ?? ((object["reboot_required"] as? String)?.lowercased() == "true")
        users = (object["passwd"] as? [String: [Any]] ?? [:]).map { name, fields in
            Account(
                name: name, id: int(fields.count > 1 ? fields[1] : nil),
                detail: [fields.count > 4 ? fields[4] : "", fields.count > 5 ? fields[5] : ""].compactMap { $0 as? String }.joined(separator: " · "))
        }.sorted { $0.id < $1.id }
        shells = object["shells"] as? [String] ?? []
        var passwd: [String: (uid: Int, gid: Int, gecos: String, home: String, shell: String)] = [:]
        for (name, fields) in object["passwd"] as? [String: [Any]] ?? [:] {
            func text(_ index: Int) -> String { fields.count > index ? (fields[index] as? String ?? "") : "" }
            passwd[name] = (int(fields.count > 1 ? fields[1] : nil), int(fields.count > 2 ? fields[2] : nil), text(3), text(4), text(5))
        }
        self.passwd = passwd
        var members: [String: (gid: Int, members: [String])] = [:]
        for (name, fields) in object["group"] as? [String: [Any]] ?? [:] {
            let list = (fields.count > 2 ? fields[2] as? String ?? "" : "").split(separator: ",").map(String.init)
            members[name] = (int(fields.count > 1 ? fields[1] : nil), list)
        }
        groupMembers = members
        var states: [String: (locked: Bool, expiresDay: Int?)] = [:]
        for (name, fields) in object["account_states"] as? [String: [Any]] ?? [:] {
            let locked = (fields.first as? Bool) ?? ((fields.first as? String)?.lowercased() == "true")
            let expires = fields.count > 1 ? (fields[1] as? Int ?? Int(fields[1] as? String ?? "")) : nil
            states[name] = (locked, expires)
        }
        accountStates = states
        groups = (object["group"] as? [String: [Any]] ?? [:]).map { name, fields in
            Account(name: name, id: int(fields.count > 1 ? fields[1] : nil), detail: fields.count > 2 ? (fields[2] as? String ?? "") : "")
        }.sorted { $0.id < $1.id }
    }

    /// A gathered mount as df shows it, for `HostSummary`'s Use% (the dashboard's figure). Ansible's mount facts carry
    /// size and available bytes but not free ones (f_bfree), so the blocks reserved for root (free − available, fixed
    /// for a filesystem) come from the host's newest metrics for the same filesystem; without those they count as used,
    /// as they do on the dashboard for an exporter that leaves free bytes out.
    static func dfFilesystem(_ mount: Filesystem, live: [HostSummary.Filesystem]) -> HostSummary.Filesystem {
        let size = Double(mount.sizeBytes)
        let available = Double(mount.availableBytes)
        let same =
            live.first(where: { $0.mountpoint == mount.mount && $0.sizeBytes == size })
            ?? live.first(where: { !mount.device.isEmpty && $0.device == mount.device && $0.sizeBytes == size })
        let reserved = same.map { max(0, $0.freeBytes - $0.availableBytes) } ?? 0
        return HostSummary.Filesystem(
            mountpoint: mount.mount, device: mount.device, type: mount.type, sizeBytes: size, freeBytes: min(size, available + reserved),
            availableBytes: available)
    }

    var view: ViewNode { view(live: []) }

    /// The facts for the host page; `live` is the host's filesystems from its newest metrics (empty without them).
    func view(live: [HostSummary.Filesystem]) -> ViewNode {
        // Sizes on pages are binary units throughout (KiB, MiB, GiB), as the charts and the dashboard show them.
        let mounts = filesystems.map { Self.dfFilesystem($0, live: live) }
        // The dashboard's fullest filesystem when the host has metrics (the same figure, now), else the gathered one,
        // leaving out the pseudo and in-memory mounts as the dashboard does.
        let fullest = HostSummary.fullest(
            live.isEmpty ? mounts.filter { !ProcCollector.skipsFilesystem(type: $0.type, mountpoint: $0.mountpoint) } : live)
        var fullestText: String?
        if let fullest, let percent = fullest.usedPercent {
            fullestText = MetricUnit.percent.format(percent) + " · " + MonitoringController.filesystemDetail(fullest)
        }
        return ViewNode([
            "as_of": RFC3339.display(gatheredAt), "job_id": jobID, "os": os, "kernel": kernel,
            "uptime": DisplayTime.duration(from: 0, to: Int64(uptimeSeconds) * 1000) ?? "", "cpus": cpus, "memory_mb": memoryMB,
            "filesystems": mounts.map { fs in
                ViewNode([
                    "mount": fs.mountpoint, "type": fs.type, "size": MetricUnit.bytes.format(fs.sizeBytes),
                    "free": MetricUnit.bytes.format(fs.availableBytes),
                    "used_percent": fs.usedPercent.map { "\(Int($0))%" } ?? "–", "used_sort": fs.usedPercent.map { "\(Int($0))" } ?? "",
                ])
            },
            "fullest_filesystem": fullestText,
            "fullest_source": live.isEmpty ? "when the facts were gathered" : "now, from the host's metrics, as on the dashboard",
            "addresses": addresses.joined(separator: ", "), "update_count": updates.count, "security_count": securityUpdates.count,
            "updates": updates.joined(separator: ", "), "has_updates": !updates.isEmpty, "reboot_required": rebootRequired,
            "update_items": pendingUpdates.map {
                ViewNode(["package": $0.package, "current": $0.current.isEmpty ? "new" : $0.current, "candidate": $0.candidate, "security": $0.security])
            },
            "users": users.map { ViewNode(["name": $0.name, "id": $0.id, "detail": $0.detail]) }, "user_count": users.count,
            "groups": groups.map { ViewNode(["name": $0.name, "id": $0.id, "detail": $0.detail]) }, "group_count": groups.count,
        ])
    }
}
