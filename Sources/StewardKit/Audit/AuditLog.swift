import Foundation
import GRDB

/// Who is acting and from where, carried from a request (or the scheduler) down to the store that makes the change.
public struct AuditActor: Sendable, Equatable {
    public var actor: String
    public var source: String?
    /// The HTTP request that made the change, when there was one.
    public var requestID: String?

    public init(actor: String, source: String? = nil, requestID: String? = nil) {
        self.actor = actor
        self.source = source
        self.requestID = requestID
    }

    public static let system = AuditActor(actor: "system")
}

/// One recorded change.
public struct AuditEvent: Sendable, Equatable, FetchableRecord {
    public var id: Int64
    public var at: Int64
    public var actor: String
    public var source: String?
    public var action: String
    public var target: String
    public var before: String?
    public var after: String?
    public var requestID: String?

    public init(row: Row) throws {
        id = row["id"]
        at = row["at"]
        actor = row["actor"]
        source = row["source"]
        action = row["action"]
        target = row["target"]
        before = row["before"]
        after = row["after"]
        requestID = row["request_id"]
    }
}

/// What the audit page and `/api/v1/audit` narrow by.
public struct AuditFilter: Sendable, Equatable {
    public var actor: String?
    public var action: String?
    public var target: String?
    public var since: Date?
    public var until: Date?
    /// Keyset cursor: only events older than this id.
    public var beforeID: Int64?
    public var limit = 100

    public init() {}
}

/// An audit row that a store writes inside the transaction of the change it records (a session started or ended, a
/// sign-in block lifted), so the change and its record are kept, or lost, together.
public struct AuditEntry: Sendable {
    public var who: AuditActor
    public var action: String
    public var target: String
    public var before: [String: String]?
    public var after: [String: String]?

    public init(by who: AuditActor, action: String, target: String, before: [String: String]? = nil, after: [String: String]? = nil) {
        self.who = who
        self.action = action
        self.target = target
        self.before = before
        self.after = after
    }

    func append(_ db: GRDB.Database, now: Date) throws {
        try AuditLog.append(db, by: who, action: action, target: target, before: before, after: after, now: now)
    }
}

/// The append-only audit trail. Stores call `append` inside the transaction that makes the change, so a crash
/// leaves both the change and its record, or neither.
public enum AuditLog {
    public static func append(
        _ db: GRDB.Database, by who: AuditActor, action: String, target: String, before: [String: Any]? = nil, after: [String: Any]? = nil,
        now: Date
    ) throws {
        try db.execute(
            sql: "INSERT INTO audit_events (at, actor, source, action, target, before, after, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            arguments: [EpochMilliseconds.from(now), who.actor, who.source, action, target, before.map(json), after.map(json), who.requestID])
    }

    /// Newest first, optionally narrowed to one actor, action or target.
    public static func events(
        _ reader: any DatabaseReader, actor: String? = nil, action: String? = nil, target: String? = nil, limit: Int = 100
    ) throws -> [AuditEvent] {
        var filter = AuditFilter()
        filter.actor = actor
        filter.action = action
        filter.target = target
        filter.limit = limit
        return try events(reader, filter)
    }

    /// Newest first through `filter`; an action or target ending in "*" matches as a prefix ("login.*").
    public static func events(_ reader: any DatabaseReader, _ filter: AuditFilter) throws -> [AuditEvent] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        for (column, value) in [("actor", filter.actor), ("action", filter.action), ("target", filter.target)] {
            guard let value, !value.isEmpty else { continue }
            if value.hasSuffix("*") {
                clauses.append("substr(\(column), 1, ?) = ?")
                let prefix = String(value.dropLast())
                arguments += [prefix.count, prefix]
            } else {
                clauses.append("\(column) = ?")
                arguments += [value]
            }
        }
        if let since = filter.since {
            clauses.append("at >= ?")
            arguments += [EpochMilliseconds.from(since)]
        }
        if let until = filter.until {
            clauses.append("at < ?")
            arguments += [EpochMilliseconds.from(until)]
        }
        if let before = filter.beforeID {
            clauses.append("id < ?")
            arguments += [before]
        }
        arguments += [filter.limit]
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        return try reader.read { db in
            try AuditEvent.fetchAll(db, sql: "SELECT * FROM audit_events \(whereClause) ORDER BY id DESC LIMIT ?", arguments: arguments)
        }
    }

    /// Whether the request with this id wrote any audit row (the catch-all recorder checks this).
    static func hasEvent(_ db: GRDB.Database, requestID: String) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM audit_events WHERE request_id = ?)", arguments: [requestID]) ?? false
    }

    static func json(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
