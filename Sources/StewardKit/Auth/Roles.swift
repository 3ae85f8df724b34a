import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// What a route needs. Every route declares one; the router refuses a request to a route that declares none.
public enum Permission: String, Sendable, CaseIterable, Comparable {
    /// Anyone, signed in or not: the login and setup pages, health probes.
    case anonymous
    /// Any session, even one whose password was accepted but whose second factor is still owed (that page, logout).
    case session
    /// Any signed-in user with a role: their own sessions, tokens and second factor, logout.
    case signedIn = "signed_in"
    /// Read pages and the read API.
    case view
    /// Start and cancel jobs, change schedules and other day-to-day changes.
    case operate
    /// Approve or reject what someone else requested.
    case approve
    /// Read the audit log.
    case audit
    /// Grant roles, manage everyone's sessions and tokens, change settings.
    case admin

    public static func < (a: Permission, b: Permission) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The five roles. Admin holds every permission; the others add one area to viewing.
public enum Role: String, Sendable, CaseIterable, Codable {
    case admin, `operator`, approver, viewer, auditor

    public var permissions: Set<Permission> {
        switch self {
        case .admin: Set(Permission.allCases)
        case .`operator`: [.signedIn, .view, .operate]
        case .approver: [.signedIn, .view, .approve]
        case .auditor: [.signedIn, .view, .audit]
        case .viewer: [.signedIn, .view]
        }
    }

    /// Whether holding `self` allows handing out `other` (for tokens): admin covers all, any role covers viewer.
    public func covers(_ other: Role) -> Bool {
        self == .admin || self == other || other == .viewer
    }

    public var summary: String {
        switch self {
        case .admin: "everything, including roles, sessions, tokens and settings"
        case .`operator`: "view, run and cancel jobs, change schedules"
        case .approver: "view, and approve changes requested by someone else"
        case .viewer: "read-only access to pages and the API"
        case .auditor: "read-only access plus the audit log"
        }
    }

    /// Parse a role name with an error that lists the accepted names.
    public static func parse(_ text: String) throws(AccessError) -> Role {
        guard let role = Role(rawValue: text.lowercased()) else {
            throw AccessError("unknown role \"\(text)\"; roles are " + allCases.map(\.rawValue).joined(separator: ", "))
        }
        return role
    }
}

/// The union of permissions of a set of roles.
public func permissions(of roles: Set<Role>) -> Set<Permission> {
    roles.reduce(into: Set<Permission>()) { $0.formUnion($1.permissions) }
}

/// A refusal with a message that says what to fix.
public struct AccessError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One grant: a role given to a Unix user or a Unix group.
public struct RoleGrant: Sendable, Equatable {
    public enum Kind: String, Sendable { case user, group }
    public var role: Role
    public var kind: Kind
    public var principal: String
    public var grantedAt: Date
    public var grantedBy: String
}

/// Role grants in SQLite; every change is audited in the same transaction.
public struct RoleStore: Sendable {
    public let database: any DatabaseWriter

    public init(database: any DatabaseWriter) { self.database = database }

    public func grant(_ role: Role, to kind: RoleGrant.Kind, _ principal: String, by who: AuditActor, now: Date) throws -> Bool {
        try UnixAccounts.validateName(principal, kind: kind)
        return try database.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO role_grants (role, principal_kind, principal, granted_at, granted_by) VALUES (?, ?, ?, ?, ?)",
                arguments: [role.rawValue, kind.rawValue, principal, EpochMilliseconds.from(now), who.actor])
            guard db.changesCount == 1 else { return false }
            try AuditLog.append(
                db, by: who, action: "role.grant", target: "\(kind.rawValue):\(principal)", after: ["role": role.rawValue], now: now)
            return true
        }
    }

    public func revoke(_ role: Role, from kind: RoleGrant.Kind, _ principal: String, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM role_grants WHERE role = ? AND principal_kind = ? AND principal = ?",
                arguments: [role.rawValue, kind.rawValue, principal])
            guard db.changesCount == 1 else { return false }
            try AuditLog.append(
                db, by: who, action: "role.revoke", target: "\(kind.rawValue):\(principal)", before: ["role": role.rawValue], now: now)
            return true
        }
    }

    public func list() throws -> [RoleGrant] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM role_grants ORDER BY role, principal_kind DESC, principal").compactMap { row in
                guard let role = Role(rawValue: row["role"]), let kind = RoleGrant.Kind(rawValue: row["principal_kind"]) else { return nil }
                return RoleGrant(
                    role: role, kind: kind, principal: row["principal"], grantedAt: EpochMilliseconds.date(row["granted_at"]),
                    grantedBy: row["granted_by"])
            }
        }
    }

    public func hasAdmin() throws -> Bool {
        try database.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM role_grants WHERE role = 'admin')") ?? false }
    }

    /// The roles a user holds directly or through any of `groups`.
    public func roles(user: String, groups: [String]) throws -> Set<Role> {
        try database.read { db in try Self.roles(db, user: user, groups: groups) }
    }

    static func roles(_ db: GRDB.Database, user: String, groups: [String]) throws -> Set<Role> {
        var sql = "SELECT role FROM role_grants WHERE (principal_kind = 'user' AND principal = ?)"
        var arguments: StatementArguments = [user]
        if !groups.isEmpty {
            sql += " OR (principal_kind = 'group' AND principal IN (" + Array(repeating: "?", count: groups.count).joined(separator: ",") + "))"
            arguments += StatementArguments(groups)
        }
        // Prepared once per connection and group count: this runs on every request.
        return Set(try String.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).compactMap(Role.init(rawValue:)))
    }

    static func encode(_ roles: Set<Role>) -> String { roles.map(\.rawValue).sorted().joined(separator: ",") }
    static func decode(_ text: String) -> Set<Role> { Set(text.split(separator: ",").compactMap { Role(rawValue: String($0)) }) }
}

/// Unix user and group lookups through NSS (getpwnam, getgrnam, getgrouplist), so LDAP/SSSD users work too.
public enum UnixAccounts {
    /// The names of every group `user` belongs to (primary and supplementary); empty when the user is unknown.
    public static func groups(of user: String) -> [String] {
        guard let passwd = getpwnam(user) else { return [] }
        let primary = passwd.pointee.pw_gid
        var count: Int32 = 64
        var ids = [gid_t](repeating: 0, count: Int(count))
        while getgrouplist(user, primary, &ids, &count) == -1 {
            ids = [gid_t](repeating: 0, count: Int(count) + 16)
            count = Int32(ids.count)
        }
        var names: [String] = []
        for id in ids.prefix(Int(count)) {
            if let group = getgrgid(id), let name = group.pointee.gr_name { names.append(String(cString: name)) }
        }
        return Array(Set(names)).sorted()
    }

    public static func userExists(_ name: String) -> Bool { getpwnam(name) != nil }
    public static func groupExists(_ name: String) -> Bool { getgrnam(name) != nil }

    /// A user or group name as POSIX and shadow-utils accept it; anything else cannot be a Unix account.
    public static func validateName(_ name: String, kind: RoleGrant.Kind) throws(AccessError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2E || byte == 0x5F
                || byte == 0x2D || byte == 0x24 || byte == 0x40
        }
        guard !name.isEmpty, name.utf8.count <= 256, allowed, !name.hasPrefix("-") else {
            throw AccessError(
                "\"\(name)\" is not a valid Unix \(kind.rawValue) name; use letters, digits, '.', '_', '-' (not first) or '@'")
        }
    }
}
