import Foundation
import GRDB

extension RetentionClassDefinition {
    /// Job logs: a job's row, its output and its per-task events. A tiered policy first reduces a job to its summary,
    /// then deletes it; the newest good backup's job is never removed.
    static let jobLogs = RetentionClassDefinition(
        dataClass: .jobLogs, title: "Job logs", tables: ["jobs", "job_log_chunks", "job_task_events", "job_host_results", "job_reports"],
        counted: ("jobs", "created_at"), kinds: [.full, .time, .tiered, .size], ruleFields: ["kind", "state", "host"],
        tierNames: ["full output", "summary only"], defaults: DataRetention(kind: .tiered, tierDays: [90, 365], failedDays: 365),
        shape: { _ in
            RetentionPlanner.Shape(
                from: "jobs j", keys: ["j.id"], time: "j.finished_at",
                bytes:
                    "(j.log_bytes + 200 + COALESCE((SELECT SUM(length(e.task) + COALESCE(length(e.detail), 0) + 40) FROM job_task_events e WHERE e.job_id = j.id), 0))",
                host: "(SELECT id FROM hosts WHERE name = j.host)",
                eligible: "j.finished_at IS NOT NULL AND j.state IN ('succeeded', 'failed', 'cancelled', 'interrupted')",
                protected:
                    "j.id IN (SELECT MAX(job_id) FROM backup_runs WHERE kind = 'backup' AND snapshot_id IS NOT NULL GROUP BY plan_id)",
                fields: ["kind": "j.kind", "state": "j.state", "host": "COALESCE(j.host, '')"])
        },
        timeStages: { planner, add in planner.addJobStages(add: add, summaryDays: nil, deleteDays: planner.policy.maxAgeDays ?? 0) },
        tieredStages: { planner, tiers, add in
            guard tiers.count == 2 else { return }
            planner.addJobStages(add: add, summaryDays: tiers[0], deleteDays: tiers[1])
        })
}

extension RetentionPlanner {
    /// Job logs: optionally reduce to the summary (the log chunks and task events go, the job row and per-host results
    /// stay), then delete the job. Failed jobs use `failed_days` for their full output and are measured from their
    /// acknowledgement; unacknowledged failures may be kept outright.
    func addJobStages(
        add: (String, String, [(any DatabaseValueConvertible)?], Bool, [String]?) -> Void,
        summaryDays: Double?, deleteDays: Double
    ) {
        let failedDays = policy.failedDays
        let unacknowledged = policy.keepFailedUntilAcknowledged ? " AND NOT (j.state = 'failed' AND j.acknowledged_at IS NULL)" : ""
        let failedTime = "COALESCE(j.acknowledged_at, j.finished_at)"
        func condition(_ days: Double, failed: Double?) -> (String, [(any DatabaseValueConvertible)?]) {
            let (age, arguments) = agePredicate(baseDays: days, rules: policy.rules)
            guard let failed else { return (age + unacknowledged, arguments) }
            return (
                "((j.state <> 'failed' AND \(age)) OR (j.state = 'failed' AND \(failedTime) < ?))" + unacknowledged,
                arguments + [cutoff(failed)]
            )
        }
        // Tiered: a failed job's row lives at least as long as any job's; its full output lives `failed_days`.
        let (deleteSQL, deleteArguments) = condition(deleteDays, failed: failedDays.map { summaryDays == nil ? $0 : max($0, deleteDays) })
        if let summaryDays {
            // Jobs due for deletion are counted (and removed) once, by the last stage.
            let (sql, arguments) = condition(summaryDays, failed: failedDays)
            add(
                "full output older than \(DataRetention.days(summaryDays)) (summary kept)",
                "j.log_pruned_at IS NULL AND (j.log_bytes > 0 OR EXISTS (SELECT 1 FROM job_task_events e WHERE e.job_id = j.id)) AND \(sql) AND NOT (\(deleteSQL))",
                arguments + deleteArguments, false,
                [
                    "DELETE FROM job_log_chunks WHERE job_id = ?", "DELETE FROM job_task_events WHERE job_id = ?",
                    "DELETE FROM job_reports WHERE job_id = ?",
                    "UPDATE jobs SET log_pruned_at = ?2, log_bytes = 0 WHERE id = ?1",
                ])
        }
        add("jobs older than \(DataRetention.days(deleteDays))", deleteSQL, deleteArguments, false, nil)
    }
}
