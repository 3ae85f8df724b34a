import Foundation
import GRDB

/// How hard failed logins are slowed and when they are stopped.
public struct LoginThrottlePolicy: Sendable, Equatable {
    /// Failures of one user from one address before that pair is blocked.
    public var pairBlockAfter = 10
    /// Failures from one address, over all user names, before the address is blocked.
    public var addressBlockAfter = 30
    /// Counters start again this long after a scope's first failure.
    public var window: TimeInterval = 15 * 60
    public var blockFor: TimeInterval = 15 * 60
    /// The delay before answering a failure doubles from this, up to `maximumDelay`.
    public var baseDelay: TimeInterval = 0.5
    public var maximumDelay: TimeInterval = 10

    public init() {}
}

/// Slows and stops password guessing without locking the real user out: blocks apply to a user at one address or
/// to an address; a user's failures across all addresses only lengthen delays. Counters live in SQLite so a restart
/// does not reset them and Settings can show and clear blocks.
public struct LoginThrottle: Sendable {
    public enum Scope: String, Sendable {
        case address
        case userAddress = "user_address"
        case user
    }

    public struct Block: Sendable, Equatable {
        public var scope: Scope
        public var user: String
        public var address: String
        public var failures: Int
        public var until: Date
    }

    public enum Verdict: Sendable, Equatable {
        case allowed
        case blocked(Block)
    }

    public let database: any DatabaseWriter
    public let policy: LoginThrottlePolicy

    public init(database: any DatabaseWriter, policy: LoginThrottlePolicy = LoginThrottlePolicy()) {
        self.database = database
        self.policy = policy
    }

    /// Before asking PAM: is this attempt blocked? A block on the address wins over one on the pair.
    public func check(user: String, address: String, now: Date) throws -> Verdict {
        let nowMS = EpochMilliseconds.from(now)
        return try database.read { db in
            for (scope, userKey) in [(Scope.address, ""), (Scope.userAddress, user)] {
                if let row = try Row.fetchOne(
                    db,
                    sql: "SELECT failures, blocked_until FROM login_throttle WHERE scope = ? AND user_name = ? AND address = ? AND blocked_until > ?",
                    arguments: [scope.rawValue, userKey, address, nowMS])
                {
                    return .blocked(
                        Block(
                            scope: scope, user: userKey, address: address, failures: row["failures"],
                            until: EpochMilliseconds.date(row["blocked_until"])))
                }
            }
            return .allowed
        }
    }

    /// After PAM refused: count the failure in every scope and return how long to wait before answering.
    @discardableResult
    public func recordFailure(user: String, address: String, audit: AuditEntry? = nil, now: Date) throws -> TimeInterval {
        let nowMS = EpochMilliseconds.from(now)
        let windowMS = Int64(policy.window * 1000)
        let blockUntil = nowMS + Int64(policy.blockFor * 1000)
        return try database.write { db in
            var worst = 0
            for (scope, userKey, addressKey, blockAfter) in [
                (Scope.address, "", address, policy.addressBlockAfter), (Scope.userAddress, user, address, policy.pairBlockAfter),
                (Scope.user, user, "", Int.max),
            ] {
                let existing = try Row.fetchOne(
                    db, sql: "SELECT failures, window_start FROM login_throttle WHERE scope = ? AND user_name = ? AND address = ?",
                    arguments: [scope.rawValue, userKey, addressKey])
                var failures = 1
                var windowStart = nowMS
                if let existing, nowMS - (existing["window_start"] as Int64) < windowMS {
                    failures = (existing["failures"] as Int) + 1
                    windowStart = existing["window_start"]
                }
                let blocked: Int64? = failures >= blockAfter ? blockUntil : nil
                try db.execute(
                    sql: """
                        INSERT INTO login_throttle (scope, user_name, address, failures, window_start, last_failure, blocked_until)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (scope, user_name, address) DO UPDATE SET
                            failures = excluded.failures, window_start = excluded.window_start, last_failure = excluded.last_failure,
                            blocked_until = COALESCE(excluded.blocked_until, login_throttle.blocked_until)
                        """,
                    arguments: [scope.rawValue, userKey, addressKey, failures, windowStart, nowMS, blocked])
                if scope != .address { worst = max(worst, failures) }
            }
            try audit?.append(db, now: now)
            return min(policy.baseDelay * pow(2, Double(worst - 1)), policy.maximumDelay)
        }
    }

    /// A successful login clears the user's counters (at this address and overall), not the address's.
    public func recordSuccess(user: String, address: String) throws {
        try database.write { db in
            try db.execute(
                sql:
                    "DELETE FROM login_throttle WHERE (scope = 'user_address' AND user_name = ? AND address = ?) OR (scope = 'user' AND user_name = ?)",
                arguments: [user, address, user])
        }
    }

    /// Blocks in force, for Settings.
    public func blocks(now: Date) throws -> [Block] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM login_throttle WHERE blocked_until > ? ORDER BY blocked_until DESC",
                arguments: [EpochMilliseconds.from(now)]
            ).map { row in
                Block(
                    scope: Scope(rawValue: row["scope"]) ?? .address, user: row["user_name"], address: row["address"], failures: row["failures"],
                    until: EpochMilliseconds.date(row["blocked_until"]))
            }
        }
    }

    /// Lift a block (from Settings): the scope's counter starts again from zero.
    public func clear(scope: Scope, user: String, address: String, audit: AuditEntry? = nil, now: Date = Date()) throws {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM login_throttle WHERE scope = ? AND user_name = ? AND address = ?", arguments: [scope.rawValue, user, address])
            try audit?.append(db, now: now)
        }
    }
}
