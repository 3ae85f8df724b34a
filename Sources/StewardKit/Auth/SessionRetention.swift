import Foundation

extension RetentionClassDefinition {
    /// Sessions: a session's row can go once it has ended (revoked, expired, or idle past the timeout).
    static let sessions = RetentionClassDefinition(
        dataClass: .sessions, title: "Sessions", tables: ["sessions"], counted: ("sessions", "created_at"), kinds: [.time], ruleFields: [],
        defaults: DataRetention(kind: .time, maxAgeDays: 0),
        shape: { planner in
            RetentionPlanner.Shape(
                from: "sessions x", keys: ["x.id_hash"],
                time: "(CASE WHEN x.revoked_at IS NOT NULL THEN x.revoked_at ELSE MIN(x.expires_at, x.last_seen_at + ?) END)",
                bytes: "(length(x.id_hash) + length(x.user_name) + COALESCE(length(x.user_agent), 0) + COALESCE(length(x.source), 0) + 100)",
                host: nil, eligible: "(x.revoked_at IS NOT NULL OR x.expires_at <= ? OR x.last_seen_at <= ?)",
                eligibleArguments: [planner.now, planner.now - planner.sessionIdleMS], fields: [:])
        }, timeTakesIdleTimeout: true)
}
