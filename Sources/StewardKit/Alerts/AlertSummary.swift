import Foundation
import GRDB

/// What the dashboard and the navigation say about alerts without opening the Alerts page: what fires now, and
/// whether anyone would be told.
enum AlertSummary {
    /// Alerts firing now, critical first, then the oldest: rule, host, severity and since when.
    static func firingNow(_ database: any DatabaseReader, limit: Int = 10) throws -> [ViewNode] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT r.id AS rule_id, r.name AS rule_name, h.id AS host_id, h.name AS host_name, s.severity, s.value, s.since
                    FROM alert_states s JOIN alert_rules r ON r.id = s.rule_id JOIN hosts h ON h.id = s.host_id
                    WHERE s.state = 'firing' ORDER BY CASE s.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, s.since LIMIT ?
                    """,
                arguments: [limit])
        }.map { row in
            ViewNode([
                "alert_rule_id": row["rule_id"] as Int64, "alert_rule": row["rule_name"] as String, "alert_host_id": row["host_id"] as Int64,
                "alert_host": row["host_name"] as String, "alert_severity": (row["severity"] as String?) ?? "warning",
                "alert_value": (row["value"] as Double?).flatMap { $0.isFinite ? MetricUnit.trim($0, digits: 2) : nil },
                "alert_since": DisplayTime.text(row["since"] as Int64),
            ])
        }
    }

    static func firingCount(_ database: any DatabaseReader) throws -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alert_states WHERE state = 'firing'") ?? 0 }
    }

    /// True when no notification channel is enabled: alerts then show on pages only.
    static func nobodyIsTold(_ database: any DatabaseReader) throws -> Bool {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM notification_channels WHERE enabled = 1") ?? 0 } == 0
    }
}
