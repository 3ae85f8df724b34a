import Foundation
import GRDB

/// Who is acting and from where, carried from a request (or the scheduler) down to the store that makes the change.
public struct AuditActor: Sendable, Equatable {
    public var actor: String
    public var source: String?

    public init(actor: String, source: String? = nil) {
        self.actor = actor
        self.source = source
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

    public init(row: Row) throws {
        id = row["id"]
        at = row["at"]
        actor = row["actor"]
        source = row["source"]
        action = row["action"]
        target = row["target"]
        before = row["before"]
        after = row["after"]
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
            sql: "INSERT INTO audit_events (at, actor, source, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [EpochMilliseconds.from(now), who.actor, who.source, action, target, before.map(json), after.map(json)])
    }

    /// Newest first, optionally narrowed to one actor, action or target.
    public static func events(
        _ reader: any DatabaseReader, actor: String? = nil, action: String? = nil, target: String? = nil, limit: Int = 100
    ) throws -> [AuditEvent] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        for (column, value) in [("actor", actor), ("action", action), ("target", target)] {
            guard let value else { continue }
            clauses.append("\(column) = ?")
            arguments += [value]
        }
        arguments += [limit]
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        return try reader.read { db in
            try AuditEvent.fetchAll(db, sql: "SELECT * FROM audit_events \(whereClause) ORDER BY id DESC LIMIT ?", arguments: arguments)
        }
    }

    static func json(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
