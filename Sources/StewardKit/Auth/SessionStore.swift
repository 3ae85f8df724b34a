import Crypto
import Foundation
import GRDB

/// A signed-in browser: who, since when, from where, and until when.
public struct Session: Sendable, Equatable {
    public var idHash: String
    public var user: String
    public var createdAt: Date
    public var lastSeenAt: Date
    public var expiresAt: Date
    public var source: String?
    public var userAgent: String?
    /// The synchronizer token every form of this session must carry.
    public var csrfToken: String
    /// Unix groups found at sign-in.
    public var groups: [String] = []
    /// The roles the session last acted with; when the grants say otherwise, the session gets a new ID.
    public var roles: Set<Role> = []
    /// The password was accepted but the second factor is still owed.
    public var secondFactorPending = false
}

/// Server-side sessions in SQLite with an idle timeout and an absolute lifetime. IDs are 256 random bits, handed
/// to the browser once and stored only as their SHA-256.
public struct SessionStore: Sendable {
    public let database: any DatabaseWriter
    public var idleTimeout: TimeInterval
    public var absoluteLifetime: TimeInterval

    public init(database: any DatabaseWriter, idleTimeout: TimeInterval = 30 * 60, absoluteLifetime: TimeInterval = 12 * 3600) {
        self.database = database
        self.idleTimeout = idleTimeout
        self.absoluteLifetime = absoluteLifetime
    }

    /// A new session; returns the raw ID for the cookie (never stored) and the session.
    public func create(
        user: String, source: String?, userAgent: String?, groups: [String] = [], roles: Set<Role> = [], secondFactorPending: Bool = false,
        audit: AuditEntry? = nil, now: Date
    ) throws -> (id: String, session: Session) {
        let id = Self.randomToken()
        let session = Session(
            idHash: Self.hash(id), user: user, createdAt: now, lastSeenAt: now, expiresAt: now.addingTimeInterval(absoluteLifetime), source: source,
            userAgent: userAgent.map { String($0.prefix(256)) }, csrfToken: Self.randomToken(), groups: groups, roles: roles,
            secondFactorPending: secondFactorPending)
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO sessions (id_hash, user_name, created_at, last_seen_at, expires_at, source, user_agent, csrf_token,
                                          unix_groups, roles, second_factor_pending)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    session.idHash, user, EpochMilliseconds.from(now), EpochMilliseconds.from(now), EpochMilliseconds.from(session.expiresAt), source,
                    session.userAgent, session.csrfToken, groups.joined(separator: ","), RoleStore.encode(roles), secondFactorPending,
                ])
            try audit?.append(db, now: now)
        }
        return (id, session)
    }

    /// The live session for a cookie value, touched as seen now; nil when unknown, revoked, idle too long or too old.
    /// The last-seen time is written at most every `touchInterval`, so most requests only read.
    public func validate(id: String, now: Date) throws -> Session? {
        guard id.utf8.count == 43 else { return nil }
        let nowMS = EpochMilliseconds.from(now)
        let found = try database.read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM sessions WHERE id_hash = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at > ?"),
                arguments: [Self.hash(id), nowMS, nowMS - Int64(idleTimeout * 1000)]
            ).map(Self.session)
        }
        guard var session = found else { return nil }
        if now.timeIntervalSince(session.lastSeenAt) >= touchInterval {
            try database.write { db in
                try db.execute(sql: "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", arguments: [nowMS, session.idHash])
            }
            session.lastSeenAt = now
        }
        return session
    }

    /// How stale last-seen may get before a request writes it: a small fraction of the idle timeout.
    var touchInterval: TimeInterval { min(60, idleTimeout / 30) }

    /// A new ID because the session's privileges changed (second factor given, roles changed); returns the new ID.
    public func elevate(id: String, roles: Set<Role>, secondFactorDone: Bool, audit: AuditEntry? = nil, now: Date) throws -> String? {
        let newID = Self.randomToken()
        let changed = try database.write { db -> Bool in
            try db.execute(
                sql: """
                    UPDATE sessions SET id_hash = ?, csrf_token = ?, last_seen_at = ?, roles = ?,
                        second_factor_pending = CASE WHEN ? THEN 0 ELSE second_factor_pending END
                    WHERE id_hash = ? AND revoked_at IS NULL
                    """,
                arguments: [
                    Self.hash(newID), Self.randomToken(), EpochMilliseconds.from(now), RoleStore.encode(roles), secondFactorDone, Self.hash(id),
                ])
            guard db.changesCount == 1 else { return false }
            try audit?.append(db, now: now)
            return true
        }
        return changed ? newID : nil
    }

    /// The live session with this stored hash (for the revoke pages).
    public func session(idHash: String) throws -> Session? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id_hash = ? AND revoked_at IS NULL", arguments: [idHash]).map(Self.session)
        }
    }

    /// A new ID for the same sign-in (at login and on privilege change); the old ID stops working at once.
    public func rotate(id: String, now: Date) throws -> String? {
        let newID = Self.randomToken()
        let changed = try database.write { db -> Bool in
            try db.execute(
                sql: "UPDATE sessions SET id_hash = ?, csrf_token = ?, last_seen_at = ? WHERE id_hash = ? AND revoked_at IS NULL",
                arguments: [Self.hash(newID), Self.randomToken(), EpochMilliseconds.from(now), Self.hash(id)])
            return db.changesCount == 1
        }
        return changed ? newID : nil
    }

    /// End a session (logout, or revocation by its owner or an admin); effective on the next request.
    /// `audit` is written with the change, when there was one to make.
    public func revoke(idHash: String, by actor: String, audit: AuditEntry? = nil, now: Date) throws -> Bool {
        try database.write { db in
            try db.execute(
                sql: "UPDATE sessions SET revoked_at = ?, revoked_by = ? WHERE id_hash = ? AND revoked_at IS NULL",
                arguments: [EpochMilliseconds.from(now), actor, idHash])
            guard db.changesCount == 1 else { return false }
            try audit?.append(db, now: now)
            return true
        }
    }

    /// Live sessions, newest activity first; all users when `user` is nil (the admin view).
    public func active(user: String? = nil, now: Date) throws -> [Session] {
        let nowMS = EpochMilliseconds.from(now)
        var sql = "SELECT * FROM sessions WHERE revoked_at IS NULL AND expires_at > ? AND last_seen_at > ?"
        var arguments: StatementArguments = [nowMS, nowMS - Int64(idleTimeout * 1000)]
        if let user {
            sql += " AND user_name = ?"
            arguments += [user]
        }
        return try database.read { db in try Row.fetchAll(db, sql: sql + " ORDER BY last_seen_at DESC", arguments: arguments).map(Self.session) }
    }

    /// Delete sessions that can no longer be used (the default retention for sessions: as soon as they end).
    @discardableResult
    public func purgeEnded(now: Date) throws -> Int {
        let nowMS = EpochMilliseconds.from(now)
        return try database.write { db in
            try db.execute(
                sql: "DELETE FROM sessions WHERE revoked_at IS NOT NULL OR expires_at <= ? OR last_seen_at <= ?",
                arguments: [nowMS, nowMS - Int64(idleTimeout * 1000)])
            return db.changesCount
        }
    }

    /// 256 random bits as unpadded base64url (43 characters).
    static func randomToken() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64URLEncoded()
    }

    static func hash(_ id: String) -> String { sha256Hex(Array(id.utf8)) }

    static func session(_ row: Row) -> Session {
        Session(
            idHash: row["id_hash"], user: row["user_name"], createdAt: EpochMilliseconds.date(row["created_at"]),
            lastSeenAt: EpochMilliseconds.date(row["last_seen_at"]), expiresAt: EpochMilliseconds.date(row["expires_at"]), source: row["source"],
            userAgent: row["user_agent"], csrfToken: row["csrf_token"],
            groups: (row["unix_groups"] as String).split(separator: ",").map(String.init), roles: RoleStore.decode(row["roles"]),
            secondFactorPending: row["second_factor_pending"])
    }
}
