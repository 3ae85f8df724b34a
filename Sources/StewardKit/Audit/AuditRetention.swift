import Foundation

extension RetentionClassDefinition {
    /// The audit log: append-only, so retention opens its deletion gate for each batch and closes it again.
    static let audit = RetentionClassDefinition(
        dataClass: .audit, title: "Audit log", tables: ["audit_events"], counted: ("audit_events", "at"), kinds: [.full, .time, .size],
        ruleFields: ["action", "actor"],
        defaults: DataRetention(
            kind: .time, maxAgeDays: 365, rules: [RetentionRule(field: "action", pattern: DataRetention.securityActions, days: 1095)]),
        shape: { _ in
            RetentionPlanner.Shape(
                from: "audit_events a", keys: ["a.id"], time: "a.at",
                bytes:
                    "(length(a.actor) + length(a.action) + length(a.target) + COALESCE(length(a.source), 0) + COALESCE(length(a.before), 0) + COALESCE(length(a.after), 0) + 40)",
                host: "(SELECT id FROM hosts WHERE 'host:' || name = a.target)", eligible: "1",
                fields: ["action": "a.action", "actor": "a.actor"])
        },
        gate: (["INSERT OR IGNORE INTO retention_gate (data_class) VALUES ('audit')"], ["DELETE FROM retention_gate WHERE data_class = 'audit'"]))
}
