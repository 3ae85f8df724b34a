import Foundation

extension RetentionClassDefinition {
    /// Alert history: each state change of a rule on a host; while a rule fires on a host, its history there is kept.
    static let alertHistory = RetentionClassDefinition(
        dataClass: .alertHistory, title: "Alert history", tables: ["alert_history"], counted: ("alert_history", "at"), kinds: [.full, .time, .size],
        ruleFields: ["severity", "rule", "host"], defaults: DataRetention(kind: .time, maxAgeDays: 365, keepWhileFiring: true),
        shape: { _ in
            RetentionPlanner.Shape(
                from: "alert_history h", keys: ["h.id"], time: "h.at",
                bytes: "(length(h.host_name) + length(h.from_state) + length(h.to_state) + COALESCE(length(h.detail), 0) + 60)", host: "h.host_id",
                eligible: "1",
                fields: [
                    "severity": "COALESCE(h.severity, '')", "rule": "COALESCE((SELECT name FROM alert_rules WHERE id = h.rule_id), '')",
                    "host": "h.host_name",
                ])
        },
        firingGuard:
            "NOT EXISTS (SELECT 1 FROM alert_states st WHERE st.rule_id = h.rule_id AND st.host_id = h.host_id AND st.state = 'firing')")

    /// Notification deliveries: what was sent where, and what failed; pending ones are never removed.
    static let notifications = RetentionClassDefinition(
        dataClass: .notifications, title: "Notification deliveries", tables: ["notification_deliveries"],
        counted: ("notification_deliveries", "created_at"), kinds: [.full, .time, .size], ruleFields: ["status", "channel"],
        defaults: DataRetention(kind: .time, maxAgeDays: 90),
        shape: { _ in
            RetentionPlanner.Shape(
                from: "notification_deliveries n", keys: ["n.id"], time: "n.created_at",
                bytes: "(length(n.payload) + length(n.subject) + length(n.reason) + COALESCE(length(n.error), 0) + 60)", host: nil,
                eligible: "n.status <> 'pending'", fields: ["status": "n.status", "channel": "n.channel_name"])
        })
}
