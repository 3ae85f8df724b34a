import Foundation
import GRDB

/// A token as listed: never the token itself, which exists only in the response that created it.
public struct APIToken: Sendable, Equatable {
    public var id: Int64
    public var prefix: String
    public var user: String
    public var name: String
    public var role: Role
    public var createdAt: Date
    public var createdBy: String
    public var expiresAt: Date
    public var lastUsedAt: Date?
    public var lastUsedFrom: String?
    public var revokedAt: Date?
    public var revokedBy: String?

    public func isLive(at now: Date) -> Bool { revokedAt == nil && expiresAt > now }
}

/// API tokens for scripts: `stw_` + 256 random bits, shown once, stored as SHA-256, scoped to one role no higher
/// than the owner's, always expiring. A token acts only while its owner still holds its role.
public struct APITokenStore: Sendable {
    public static let marker = "stw_"
    public static let maximumLifetimeDays = 366
    public let database: any DatabaseWriter

    public init(database: any DatabaseWriter) { self.database = database }

    /// Parse "90d", "12h", "2w" or a bare number of days.
    public static func parseLifetime(_ text: String) throws(AccessError) -> TimeInterval {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let unit = trimmed.last.flatMap { $0.isLetter ? $0 : nil }
        let number = unit == nil ? trimmed : String(trimmed.dropLast())
        let seconds: TimeInterval? =
            switch unit {
            case nil, "d": 86_400
            case "h": 3_600
            case "w": 7 * 86_400
            default: nil
            }
        guard let seconds, let count = Int(number), count > 0, Double(count) * seconds <= Double(maximumLifetimeDays) * 86_400 else {
            throw AccessError("expiry \"\(text)\" is not valid; give a number with h, d or w, e.g. 90d, up to \(maximumLifetimeDays) days")
        }
        return Double(count) * seconds
    }

    /// Create a token. `ownerRoles` are the roles the owner holds now; the token's role must be covered by one.
    public func create(
        user: String, name: String, role: Role, lifetime: TimeInterval, ownerRoles: Set<Role>, by who: AuditActor, now: Date
    ) throws -> (token: String, record: APIToken) {
        let trimmedName = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmedName.isEmpty, trimmedName.count <= 100 else {
            throw AccessError("give the token a name of 1 to 100 characters that says what uses it, e.g. \"backup script on ops1\"")
        }
        guard ownerRoles.contains(where: { $0.covers(role) }) else {
            let held = ownerRoles.isEmpty ? "no role" : ownerRoles.map(\.rawValue).sorted().joined(separator: ", ")
            throw AccessError("\(user) holds \(held); a token cannot have the \(role.rawValue) role, which is higher than its owner's")
        }
        let secret = SessionStore.randomToken()
        let token = Self.marker + secret
        let prefix = String(token.prefix(Self.marker.count + 6))
        let expires = now.addingTimeInterval(lifetime)
        let id = try database.write { db -> Int64 in
            try db.execute(
                sql: """
                    INSERT INTO api_tokens (token_hash, prefix, user_name, name, role, created_at, created_by, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    SessionStore.hash(token), prefix, user, trimmedName, role.rawValue, EpochMilliseconds.from(now), who.actor,
                    EpochMilliseconds.from(expires),
                ])
            let id = db.lastInsertedRowID
            try AuditLog.append(
                db, by: who, action: "token.create", target: "token:\(id)",
                after: ["user": user, "name": trimmedName, "role": role.rawValue, "expires": RFC3339.string(expires)], now: now)
            return id
        }
        return (token, try self.token(id: id)!)
    }

    public func token(id: Int64) throws -> APIToken? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM api_tokens WHERE id = ?", arguments: [id]).map(Self.record) }
    }

    /// Tokens newest first; one user's, or everyone's when `user` is nil.
    public func list(user: String? = nil) throws -> [APIToken] {
        try database.read { db in
            if let user {
                return try Row.fetchAll(db, sql: "SELECT * FROM api_tokens WHERE user_name = ? ORDER BY id DESC", arguments: [user]).map(Self.record)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM api_tokens ORDER BY id DESC").map(Self.record)
        }
    }

    public func revoke(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            try db.execute(
                sql: "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
                arguments: [EpochMilliseconds.from(now), who.actor, id])
            guard db.changesCount == 1 else { return false }
            try AuditLog.append(db, by: who, action: "token.revoke", target: "token:\(id)", now: now)
            return true
        }
    }

    /// The live token for a presented value; records last use at most once a minute so reads stay reads.
    public func authenticate(_ presented: String, from address: String?, now: Date) throws -> APIToken? {
        guard presented.hasPrefix(Self.marker), presented.utf8.count == Self.marker.utf8.count + 43 else { return nil }
        let hash = SessionStore.hash(presented)
        guard
            let token = try database.read({ db in
                try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM api_tokens WHERE token_hash = ?"), arguments: [hash]).map(Self.record)
            }), token.isLive(at: now)
        else { return nil }
        if token.lastUsedAt.map({ now.timeIntervalSince($0) > 60 }) ?? true || token.lastUsedFrom != address {
            try database.write { db in
                try db.execute(
                    sql: "UPDATE api_tokens SET last_used_at = ?, last_used_from = ? WHERE id = ?",
                    arguments: [EpochMilliseconds.from(now), address, token.id])
            }
        }
        return token
    }

    static func record(_ row: Row) -> APIToken {
        APIToken(
            id: row["id"], prefix: row["prefix"], user: row["user_name"], name: row["name"], role: Role(rawValue: row["role"]) ?? .viewer,
            createdAt: EpochMilliseconds.date(row["created_at"]), createdBy: row["created_by"], expiresAt: EpochMilliseconds.date(row["expires_at"]),
            lastUsedAt: (row["last_used_at"] as Int64?).map(EpochMilliseconds.date), lastUsedFrom: row["last_used_from"],
            revokedAt: (row["revoked_at"] as Int64?).map(EpochMilliseconds.date), revokedBy: row["revoked_by"])
    }
}
