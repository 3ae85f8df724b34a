import Foundation
import GRDB
import HTTPTypes

/// A managed machine.
public struct Host: Sendable, Equatable {
    public enum Transport: String, Sendable, CaseIterable { case ssh, local }
    public enum Become: String, Sendable, CaseIterable { case none, sudo }
    public enum State: String, Sendable, CaseIterable { case up, down, unreachable, unknown }

    public var id: Int64
    public var name: String
    public var address: String
    public var transport: Transport
    public var sshPort: Int
    public var sshUser: String
    public var become: Become
    public var groups: [String]
    public var tags: [String]
    public var variables: String
    public var metricsURL: String?
    /// The series kept from the metrics URL, one name or glob per line; nil keeps MetricAllowList's defaults.
    public var metricsAllow: String?
    public var notes: String
    public var enabled: Bool
    public var state: State
    public var stateDetail: String?
    public var lastSeenAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
}

/// What a form or an API call submits for a host; validated as a whole so every field's problem is reported at once.
public struct HostSettings: Sendable, Equatable {
    public var name = ""
    public var address = ""
    public var transport = Host.Transport.ssh
    public var sshPort = 22
    public var sshUser = "root"
    public var become = Host.Become.none
    public var groups: [String] = []
    public var tags: [String] = []
    public var variables = ""
    public var metricsURL: String?
    public var metricsAllow: String?
    public var notes = ""
    public var enabled = true

    public init() {}

    /// Field name -> what is wrong and what is accepted; empty when the settings can be saved.
    public func problems() -> [String: String] {
        var errors: [String: String] = [:]
        if let message = HostValidation.name(name) { errors["name"] = message }
        if let message = HostValidation.address(address) { errors["address"] = message }
        if let message = HostValidation.port(sshPort) { errors["ssh_port"] = message }
        if let message = HostValidation.sshUser(sshUser) { errors["ssh_user"] = message }
        if let message = groups.lazy.compactMap(HostValidation.groupName).first { errors["groups"] = message }
        if let message = tags.lazy.compactMap(HostValidation.tag).first { errors["tags"] = message }
        if case .failure(let error) = HostVariables.parse(variables) { errors["variables"] = error.message }
        if let url = metricsURL, let message = HostValidation.metricsURL(url) { errors["metrics_url"] = message }
        if let allow = metricsAllow, let message = MetricAllowList.problem(allow) { errors["metrics_allow"] = message }
        if notes.utf8.count > 4096 { errors["notes"] = "notes are limited to 4096 bytes" }
        // The local transport runs on the panel itself; only the panel's own entry may use it.
        if transport == .local, name != HostStore.localhostName {
            errors["transport"] = "only localhost (the panel host) uses the local transport; reach other hosts over SSH"
        }
        return errors
    }

    /// Split a "a, b c" list the way the form and CSV import write it.
    public static func list(_ text: String) -> [String] {
        var seen = Set<String>()
        return text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == ";" }).map { $0.lowercased() }.filter { seen.insert($0).inserted }
    }
}

/// A group of hosts with its own variables.
public struct HostGroup: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var variables: String
    public var notes: String
    public var hostCount: Int
}

/// Hosts and groups in SQLite; every change is audited in its own transaction.
public struct HostStore: Sendable {
    public let database: any DatabaseWriter

    public init(database: any DatabaseWriter) { self.database = database }

    public func all() throws -> [Host] {
        try database.read { db in try Self.fetch(db, where: "1", arguments: []) }
    }

    public func host(id: Int64) throws -> Host? {
        try database.read { db in try Self.fetch(db, where: "h.id = ?", arguments: [id]).first }
    }

    public func host(named name: String) throws -> Host? {
        try database.read { db in try Self.fetch(db, where: "h.name = ?", arguments: [name]).first }
    }

    /// Create a host; the settings must already be valid. Missing groups are created empty.
    public func create(_ settings: HostSettings, by who: AuditActor, now: Date) throws -> Host {
        let id = try database.write { db -> Int64 in
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM hosts WHERE name = ?)", arguments: [settings.name]) == false else {
                throw HostError.duplicate(settings.name)
            }
            try db.execute(
                sql: """
                    INSERT INTO hosts (name, address, transport, ssh_port, ssh_user, become, tags, variables, metrics_url, metrics_allow,
                                       notes, enabled, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    settings.name, settings.address, settings.transport.rawValue, settings.sshPort, settings.sshUser, settings.become.rawValue,
                    settings.tags.joined(separator: ","), settings.variables, settings.metricsURL, settings.metricsAllow, settings.notes,
                    settings.enabled, EpochMilliseconds.from(now), EpochMilliseconds.from(now),
                ])
            let id = db.lastInsertedRowID
            try Self.setGroups(db, hostID: id, groups: settings.groups, now: now)
            try AuditLog.append(db, by: who, action: "host.create", target: "host:\(settings.name)", after: Self.audit(settings), now: now)
            return id
        }
        return try host(id: id)!
    }

    public func update(id: Int64, _ settings: HostSettings, by who: AuditActor, now: Date) throws -> Host? {
        guard let before = try host(id: id) else { return nil }
        try database.write { db in
            if settings.name != before.name,
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM hosts WHERE name = ?)", arguments: [settings.name]) == true
            {
                throw HostError.duplicate(settings.name)
            }
            try db.execute(
                sql: """
                    UPDATE hosts SET name = ?, address = ?, transport = ?, ssh_port = ?, ssh_user = ?, become = ?, tags = ?, variables = ?,
                        metrics_url = ?, metrics_allow = ?, notes = ?, enabled = ?, updated_at = ? WHERE id = ?
                    """,
                arguments: [
                    settings.name, settings.address, settings.transport.rawValue, settings.sshPort, settings.sshUser, settings.become.rawValue,
                    settings.tags.joined(separator: ","), settings.variables, settings.metricsURL, settings.metricsAllow, settings.notes,
                    settings.enabled, EpochMilliseconds.from(now), id,
                ])
            try Self.setGroups(db, hostID: id, groups: settings.groups, now: now)
            try AuditLog.append(
                db, by: who, action: "host.update", target: "host:\(settings.name)", before: Self.audit(Self.settings(of: before)),
                after: Self.audit(settings), now: now)
        }
        return try host(id: id)
    }

    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        guard let before = try host(id: id) else { return false }
        if before.transport == .local {
            throw Problem(
                status: .conflict, detail: "\(before.name) is the panel host itself and cannot be removed; disable it to stop jobs running on it")
        }
        let users = try database.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT 'backup plan "' || name || '"' FROM backup_plans WHERE host_id = ?
                    UNION ALL SELECT 'backup repository "' || name || '"' FROM backup_repositories WHERE host_id = ?
                    UNION ALL SELECT 'SLO "' || s.name || '" (through check "' || c.name || '")' FROM slos s JOIN checks c ON c.id = s.check_id
                        WHERE c.host_id = ?
                    """, arguments: [id, id, id])
        }
        if !users.isEmpty {
            throw Problem(
                status: .conflict,
                detail: "\(before.name) is still used by \(users.joined(separator: ", ")); delete those or move them to another host first")
        }
        return try database.write { db in
            try db.execute(sql: "DELETE FROM hosts WHERE id = ?", arguments: [id])
            try AuditLog.append(
                db, by: who, action: "host.delete", target: "host:\(before.name)", before: Self.audit(Self.settings(of: before)), now: now)
            return db.changesCount > 0
        }
    }

    /// Record what a connectivity check or a job found.
    public func setState(id: Int64, _ state: Host.State, detail: String?, seen: Date?) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE hosts SET state = ?, state_detail = ?, last_seen_at = COALESCE(?, last_seen_at) WHERE id = ?",
                arguments: [state.rawValue, detail, seen.map(EpochMilliseconds.from), id])
        }
    }

    /// The panel host's own entry; the only host with the local transport.
    public static let localhostName = "localhost"

    /// Enrol `localhost` with the local transport, once (first run).
    public func ensureLocalhost(now: Date) throws {
        guard try host(named: Self.localhostName) == nil else { return }
        var settings = HostSettings()
        settings.name = Self.localhostName
        settings.address = "127.0.0.1"
        settings.transport = .local
        settings.notes = "The panel's own machine, enrolled at first run; jobs run here without SSH."
        _ = try create(settings, by: .system, now: now)
    }

    // MARK: groups

    public func groups() throws -> [HostGroup] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT g.*, (SELECT count(*) FROM host_group_members m WHERE m.group_id = g.id) AS host_count
                    FROM host_groups g ORDER BY g.name
                    """
            ).map { row in
                HostGroup(id: row["id"], name: row["name"], variables: row["variables"], notes: row["notes"], hostCount: row["host_count"])
            }
        }
    }

    public func group(named name: String) throws -> HostGroup? { try groups().first { $0.name == name } }

    /// Create or change a group's variables and notes.
    public func saveGroup(name: String, variables: String, notes: String, by who: AuditActor, now: Date) throws {
        if let message = HostValidation.groupName(name) { throw HostError.invalid(["name": message]) }
        if case .failure(let error) = HostVariables.parse(variables) { throw HostError.invalid(["variables": error.message]) }
        try database.write { db in
            let before = try Row.fetchOne(db, sql: "SELECT variables, notes FROM host_groups WHERE name = ?", arguments: [name])
            try db.execute(
                sql: """
                    INSERT INTO host_groups (name, variables, notes, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET variables = excluded.variables, notes = excluded.notes, updated_at = excluded.updated_at
                    """,
                arguments: [name, variables, notes, EpochMilliseconds.from(now), EpochMilliseconds.from(now)])
            try AuditLog.append(
                db, by: who, action: before == nil ? "group.create" : "group.update", target: "group:\(name)",
                before: before.map { ["variables": $0["variables"] as String, "notes": $0["notes"] as String] },
                after: ["variables": variables, "notes": notes], now: now)
        }
    }

    public func deleteGroup(name: String, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "DELETE FROM host_groups WHERE name = ?", arguments: [name])
            guard db.changesCount > 0 else { return false }
            try AuditLog.append(db, by: who, action: "group.delete", target: "group:\(name)", now: now)
            return true
        }
    }

    // MARK: helpers

    static func setGroups(_ db: GRDB.Database, hostID: Int64, groups: [String], now: Date) throws {
        try db.execute(sql: "DELETE FROM host_group_members WHERE host_id = ?", arguments: [hostID])
        for name in groups {
            try db.execute(
                sql: "INSERT OR IGNORE INTO host_groups (name, created_at, updated_at) VALUES (?, ?, ?)",
                arguments: [name, EpochMilliseconds.from(now), EpochMilliseconds.from(now)])
            try db.execute(
                sql: "INSERT INTO host_group_members (host_id, group_id) SELECT ?, id FROM host_groups WHERE name = ?", arguments: [hostID, name])
        }
    }

    static func fetch(_ db: GRDB.Database, where clause: String, arguments: StatementArguments) throws -> [Host] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT h.*, (SELECT group_concat(g.name, ',') FROM host_group_members m JOIN host_groups g ON g.id = m.group_id
                             WHERE m.host_id = h.id) AS group_names
                FROM hosts h WHERE \(clause) ORDER BY h.name
                """, arguments: arguments
        ).map { row in
            Host(
                id: row["id"], name: row["name"], address: row["address"], transport: Host.Transport(rawValue: row["transport"]) ?? .ssh,
                sshPort: row["ssh_port"], sshUser: row["ssh_user"], become: Host.Become(rawValue: row["become"]) ?? .none,
                groups: ((row["group_names"] as String?) ?? "").split(separator: ",").map(String.init).sorted(),
                tags: (row["tags"] as String).split(separator: ",").map(String.init), variables: row["variables"], metricsURL: row["metrics_url"],
                metricsAllow: row["metrics_allow"], notes: row["notes"], enabled: row["enabled"],
                state: Host.State(rawValue: row["state"]) ?? .unknown, stateDetail: row["state_detail"],
                lastSeenAt: (row["last_seen_at"] as Int64?).map(EpochMilliseconds.date), createdAt: EpochMilliseconds.date(row["created_at"]),
                updatedAt: EpochMilliseconds.date(row["updated_at"]))
        }
    }

    public static func settings(of host: Host) -> HostSettings {
        var settings = HostSettings()
        settings.name = host.name
        settings.address = host.address
        settings.transport = host.transport
        settings.sshPort = host.sshPort
        settings.sshUser = host.sshUser
        settings.become = host.become
        settings.groups = host.groups
        settings.tags = host.tags
        settings.variables = host.variables
        settings.metricsURL = host.metricsURL
        settings.metricsAllow = host.metricsAllow
        settings.notes = host.notes
        settings.enabled = host.enabled
        return settings
    }

    static func audit(_ settings: HostSettings) -> [String: Any] {
        [
            "name": settings.name, "address": settings.address, "transport": settings.transport.rawValue, "ssh_port": settings.sshPort,
            "ssh_user": settings.sshUser, "become": settings.become.rawValue, "groups": settings.groups, "tags": settings.tags,
            "variables": settings.variables, "metrics_url": settings.metricsURL ?? NSNull(),
            "metrics_allow": settings.metricsAllow ?? NSNull(), "enabled": settings.enabled,
        ]
    }
}

public enum HostError: Error, Equatable, CustomStringConvertible {
    case duplicate(String)
    case invalid([String: String])

    public var description: String {
        switch self {
        case .duplicate(let name): "a host named \(name) already exists; choose another name or edit that host"
        case .invalid(let errors): errors.keys.sorted().map { "\($0): \(errors[$0]!)" }.joined(separator: "; ")
        }
    }
}
