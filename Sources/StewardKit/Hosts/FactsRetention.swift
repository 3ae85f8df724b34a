import Foundation

extension RetentionClassDefinition {
    /// The facts history: each gathering of each host; a host's newest facts are never removed.
    static let facts = RetentionClassDefinition(
        dataClass: .facts, title: "Host facts history", tables: ["host_facts"], counted: ("host_facts", "gathered_at"), kinds: [.full, .time, .size],
        ruleFields: ["group", "host"], defaults: DataRetention(kind: .time, maxAgeDays: 90),
        shape: { _ in
            RetentionPlanner.Shape(
                from: "host_facts f", keys: ["f.host_id", "f.gathered_at"], time: "f.gathered_at", bytes: "(length(f.facts) + 30)",
                host: "f.host_id", eligible: "1",
                protected: "f.gathered_at >= (SELECT MAX(gathered_at) FROM host_facts WHERE host_id = f.host_id)",
                fields: ["host": "(SELECT name FROM hosts WHERE id = f.host_id)"])
        })
}
