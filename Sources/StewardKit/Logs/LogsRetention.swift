import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

extension RetentionClassDefinition {
    /// Logs: blocks of a host's lines. A block goes as a whole, when its newest line is past the policy's age. Rules
    /// on unit, program (identifier) and priority match a block whose lines all share that value: when blocks are
    /// merged (minutes after a read), lines that a rule names are kept in blocks of their own (see
    /// `LogsRetention.key`), so "unit ssh.service 365" keeps sshd's lines a year and "priority debug 3" drops debug
    /// lines after three days without taking other lines with them. A priority rule matches a block by its most urgent
    /// line, so it never takes a more urgent line.
    static let logs = RetentionClassDefinition(
        dataClass: .logs, title: "Logs", tables: ["log_blocks", "log_block_names", "log_search_data", "log_search_idx", "log_search_docsize"],
        counted: ("log_blocks", "end_ms"), kinds: [.full, .time, .size], ruleFields: ["group", "host", "priority", "unit", "identifier"],
        defaults: DataRetention(kind: .time, maxAgeDays: 30),
        shape: { _ in
            RetentionPlanner.Shape(
                from: "log_blocks b", keys: ["b.id"], time: "b.end_ms", bytes: "(length(b.data) + 16 * b.line_count + 120)", host: "b.host_id",
                eligible: "1",
                fields: [
                    "host": "(SELECT name FROM hosts WHERE id = b.host_id)",
                    "priority":
                        "(CASE b.min_priority WHEN 0 THEN 'emerg' WHEN 1 THEN 'alert' WHEN 2 THEN 'crit' WHEN 3 THEN 'err' WHEN 4 THEN 'warning' WHEN 5 THEN 'notice' WHEN 6 THEN 'info' ELSE 'debug' END)",
                    "unit": LogsRetention.only("unit"), "identifier": LogsRetention.only("identifier"),
                ])
        })
}

enum LogsRetention {
    /// A block's one unit (or program) when all its lines share it; '' when it holds several or none.
    static func only(_ kind: String) -> String {
        "(SELECT CASE WHEN count(*) = 1 THEN max(n.name) ELSE '' END FROM log_block_names n WHERE n.block_id = b.id AND n.kind = '\(kind)')"
    }

    /// The logs policy's rules on unit, identifier and priority, in force now.
    static func rules(_ db: Database) throws -> [RetentionRule] {
        let text = try String.fetchOne(db, sql: "SELECT policy FROM retention_policies WHERE data_class = 'logs'")
        return (RetentionService.decode(text)?.rules ?? []).filter { ["unit", "identifier", "priority"].contains($0.field) }
    }

    /// Which blocks a line may share when blocks are merged: lines a rule names go with lines of the same unit,
    /// program or priority only; every other line goes with the rest.
    static func key(_ line: LogLine, rules: [RetentionRule]) -> String {
        var key: [String] = []
        for rule in rules {
            let value: String
            switch rule.field {
            case "unit": value = line.unit
            case "identifier": value = line.identifier
            default: value = line.priorityName
            }
            if !value.isEmpty, rule.globs.contains(where: { fnmatch($0, value, 0) == 0 }) { key.append("\(rule.field)=\(value)") }
        }
        return key.joined(separator: "|")
    }
}
