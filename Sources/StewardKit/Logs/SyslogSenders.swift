import Foundation
import GRDB

/// An address or range allowed to send syslog, and the host its lines belong to.
public struct SyslogSender: Sendable, Equatable {
    public var id: Int64 = 0
    /// An address or CIDR range.
    public var network = ""
    /// nil: the host whose address the sender has.
    public var hostID: Int64?
    /// The zone of RFC 3164 timestamps; "" for the host's own zone when known, else the panel's.
    public var timeZone = ""
    public var comment = ""
    public var createdBy = ""
    public var createdAt: Int64 = 0

    public init() {}

    /// Every wrong field, by name, with what to write instead.
    func problems(hosts: [Host]) -> [String: String] {
        var errors: [String: String] = [:]
        if AddressRange(network) == nil {
            errors["network"] = "an IPv4 or IPv6 address or a CIDR range, such as 192.0.2.7 or 10.20.0.0/16"
        }
        if let hostID, !hosts.contains(where: { $0.id == hostID }) { errors["host"] = "no such host" }
        if !timeZone.isEmpty, TimeZone(identifier: timeZone) == nil {
            errors["time_zone"] = "an IANA time zone such as UTC or Europe/Berlin, or empty for the host's own"
        }
        if comment.utf8.count > 500 { errors["comment"] = "at most 500 bytes" }
        return errors
    }
}

public struct SyslogSenderStore: Sendable {
    let database: DatabasePool

    public init(database: DatabasePool) { self.database = database }

    public func all() throws -> [SyslogSender] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM syslog_senders ORDER BY network").map { row in
                var sender = SyslogSender()
                sender.id = row["id"]
                sender.network = row["network"]
                sender.hostID = row["host_id"]
                sender.timeZone = row["time_zone"]
                sender.comment = row["comment"]
                sender.createdBy = row["created_by"]
                sender.createdAt = row["created_at"]
                return sender
            }
        }
    }

    public func create(_ sender: SyslogSender, hosts: [Host], by who: AuditActor, now: Date) throws -> SyslogSender {
        var sender = sender
        sender.network = sender.network.trimmingCharacters(in: .whitespaces).lowercased()
        let errors = sender.problems(hosts: hosts)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return try database.write { db in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM syslog_senders WHERE network = ?)", arguments: [sender.network]) == true {
                throw Problem.invalid(["network": "\(sender.network) is already listed; remove it first to change it"])
            }
            sender.createdBy = who.actor
            sender.createdAt = EpochMilliseconds.from(now)
            try db.execute(
                sql: "INSERT INTO syslog_senders (network, host_id, time_zone, comment, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [sender.network, sender.hostID, sender.timeZone, sender.comment, sender.createdBy, sender.createdAt])
            sender.id = db.lastInsertedRowID
            let host = hosts.first { $0.id == sender.hostID }?.name ?? "by address"
            try AuditLog.append(
                db, by: who, action: "syslog.sender.create", target: "syslog:\(sender.network)",
                after: ["host": host, "time_zone": sender.timeZone, "comment": sender.comment], now: now)
            return sender
        }
    }

    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            guard let network = try String.fetchOne(db, sql: "SELECT network FROM syslog_senders WHERE id = ?", arguments: [id]) else { return false }
            try db.execute(sql: "DELETE FROM syslog_senders WHERE id = ?", arguments: [id])
            try AuditLog.append(db, by: who, action: "syslog.sender.delete", target: "syslog:\(network)", now: now)
            return true
        }
    }
}

/// Who may send and whose lines they are, decided once per sender address from the list and the hosts.
struct SyslogRoutes: Sendable {
    enum Decision: Sendable, Equatable {
        /// Not in the list: the connection is closed, the datagram dropped.
        case refused
        /// Listed, but the entry names no host and no host has the sender's address.
        case unattributed(network: String)
        case host(id: Int64, zone: TimeZone)
    }

    let entries: [(range: AddressRange, sender: SyslogSender)]
    let hosts: [Host]
    let zones: [Int64: String]

    init(senders: [SyslogSender] = [], hosts: [Host] = [], zones: [Int64: String] = [:]) {
        // The most specific range first.
        entries = senders.compactMap { sender in AddressRange(sender.network).map { (range: $0, sender: sender) } }
            .sorted { $0.range.prefixLength > $1.range.prefixLength }
        self.hosts = hosts
        self.zones = zones
    }

    func decide(_ address: String) -> Decision {
        guard let entry = entries.first(where: { $0.range.contains(address) }) else { return .refused }
        let host: Host?
        if let id = entry.sender.hostID {
            host = hosts.first { $0.id == id }
        } else if let bytes = AddressRange.bytes(address) {
            let loopback = AddressRange("127.0.0.0/8")!.contains(address) || address == "::1"
            // Loopback is the panel host itself, whatever other host also names 127.0.0.1 (a tunnel).
            host = loopback ? hosts.first { $0.transport == .local } : hosts.first { AddressRange.bytes($0.address) == bytes }
        } else {
            host = nil
        }
        guard let host else { return .unattributed(network: entry.sender.network) }
        let zoneName = entry.sender.timeZone.isEmpty ? zones[host.id] ?? "" : entry.sender.timeZone
        return .host(id: host.id, zone: TimeZone(identifier: zoneName) ?? .current)
    }
}
