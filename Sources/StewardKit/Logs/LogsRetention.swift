import Foundation

extension RetentionClassDefinition {
    /// Logs: blocks of a host's lines. A block goes as a whole, when its newest line is past the policy's age; a rule on
    /// priority matches a block by its most urgent line (so "debug 3 days" takes blocks of debug lines only and never a
    /// more urgent line with them).
    static let logs = RetentionClassDefinition(
        dataClass: .logs, title: "Logs", tables: ["log_blocks", "log_block_names", "log_search_data", "log_search_idx", "log_search_docsize"],
        counted: ("log_blocks", "end_ms"), kinds: [.full, .time, .size], ruleFields: ["group", "host", "priority"],
        defaults: DataRetention(kind: .time, maxAgeDays: 30),
        shape: { _ in
            RetentionPlanner.Shape(
                from: "log_blocks b", keys: ["b.id"], time: "b.end_ms", bytes: "(length(b.data) + 16 * b.line_count + 120)", host: "b.host_id",
                eligible: "1",
                fields: [
                    "host": "(SELECT name FROM hosts WHERE id = b.host_id)",
                    "priority":
                        "(CASE b.min_priority WHEN 0 THEN 'emerg' WHEN 1 THEN 'alert' WHEN 2 THEN 'crit' WHEN 3 THEN 'err' WHEN 4 THEN 'warning' WHEN 5 THEN 'notice' WHEN 6 THEN 'info' ELSE 'debug' END)",
                ])
        })
}
