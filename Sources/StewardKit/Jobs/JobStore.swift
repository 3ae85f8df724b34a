import Foundation
import GRDB

/// Reads and writes jobs and their log chunks. All state transitions go through here so they stay consistent.
public struct JobStore: Sendable {
    public let database: any DatabaseWriter

    public init(database: any DatabaseWriter) {
        self.database = database
    }

    public func insert(_ request: JobRequest, now: Date) throws -> Job {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO jobs (kind, title, state, host, params, started_by, reason, schedule_id, created_at)
                    VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    request.kind, request.title, request.host, request.params, request.startedBy, request.reason, request.scheduleID,
                    EpochMilliseconds.from(now),
                ])
            let job = try Job.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [db.lastInsertedRowID])!
            try AuditLog.append(
                db, by: AuditActor(actor: request.startedBy, source: request.source), action: "job.start", target: "job:\(job.id)",
                after: ["kind": job.kind, "title": job.title, "host": job.host as Any? ?? NSNull(), "reason": job.reason], now: now)
            if let audit = request.audit {
                try AuditLog.append(
                    db, by: audit.actor, action: audit.action, target: "job:\(job.id)", after: audit.after.mapValues(\.plain), now: now)
            }
            return job
        }
    }

    public func job(id: Int64) throws -> Job? {
        try database.read { db in try Job.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id]) }
    }

    /// What the job page shows beside the job itself: the config commit it ran, its acknowledgement, log pruning.
    public struct Bookkeeping: Sendable {
        public var configCommit: String?
        public var acknowledgedAt: Int64?
        public var acknowledgedBy: String?
        public var logPrunedAt: Int64?
    }

    public func bookkeeping(id: Int64) throws -> Bookkeeping {
        try database.read { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT config_commit, acknowledged_at, acknowledged_by, log_pruned_at FROM jobs WHERE id = ?", arguments: [id])
            return Bookkeeping(
                configCommit: row?["config_commit"], acknowledgedAt: row?["acknowledged_at"], acknowledgedBy: row?["acknowledged_by"],
                logPrunedAt: row?["log_pruned_at"])
        }
    }

    /// Jobs that named this host or have a result for it, newest first.
    public func recent(forHost name: String, limit: Int = 10) throws -> [Job] {
        try database.read { db in
            try Job.fetchAll(
                db,
                sql: """
                    SELECT * FROM jobs WHERE host = ? OR id IN (SELECT job_id FROM job_host_results WHERE host = ?) ORDER BY id DESC LIMIT ?
                    """, arguments: [name, name, limit])
        }
    }

    /// Jobs whose title, kind or host contains `text` (any case), newest first.
    public func search(_ text: String, limit: Int) throws -> [Job] {
        let pattern =
            "%"
            + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
        return try database.read { db in
            try Job.fetchAll(
                db,
                sql: """
                    SELECT * FROM jobs WHERE title LIKE ? ESCAPE '\\' OR kind LIKE ? ESCAPE '\\' OR host LIKE ? ESCAPE '\\'
                    ORDER BY id DESC LIMIT ?
                    """, arguments: [pattern, pattern, pattern, limit])
        }
    }

    public func list(_ filter: JobFilter) throws -> [Job] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let state = filter.state {
            clauses.append("state = ?")
            arguments += [state.rawValue]
        }
        if let kind = filter.kind {
            clauses.append("kind = ?")
            arguments += [kind]
        }
        if let host = filter.host {
            clauses.append("host = ?")
            arguments += [host]
        }
        if let before = filter.before {
            clauses.append("id < ?")
            arguments += [before]
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        arguments += [filter.limit]
        return try database.read { db in
            try Job.fetchAll(db, sql: "SELECT * FROM jobs \(whereClause) ORDER BY id DESC LIMIT ?", arguments: arguments)
        }
    }

    public func countsByState() throws -> [Job.State: Int] {
        try database.read { db in
            var counts: [Job.State: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state") {
                if let state = Job.State(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    public func distinctKinds() throws -> [String] {
        try database.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT kind FROM jobs ORDER BY kind") }
    }

    /// Move a queued job to running; returns nil if someone else already took or cancelled it.
    public func claim(id: Int64, now: Date) throws -> Job? {
        try database.write { db in
            try db.execute(
                sql: "UPDATE jobs SET state = 'running', started_at = ? WHERE id = ? AND state = 'queued'",
                arguments: [EpochMilliseconds.from(now), id])
            guard db.changesCount == 1 else { return nil }
            return try Job.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id])
        }
    }

    public func nextQueuedIDs(excluding running: Set<Int64>, limit: Int) throws -> [Int64] {
        try database.read { db in
            try Int64.fetchAll(db, sql: "SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT ?", arguments: [limit + running.count])
        }.filter { !running.contains($0) }
    }

    public func setProgress(id: Int64, percent: Double?, message: String) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE jobs SET progress_percent = ?, progress_message = ? WHERE id = ? AND state = 'running'",
                arguments: [percent.map { min(100, max(0, $0)) }, message, id])
        }
    }

    /// Record a final state. Only an unfinished job can finish, so a late writer never overwrites the outcome.
    @discardableResult
    public func finish(id: Int64, state: Job.State, error: String?, now: Date) throws -> Bool {
        precondition(state.isFinished)
        return try database.write { db in
            try db.execute(
                sql: """
                    UPDATE jobs SET state = ?, error = ?, finished_at = ?,
                        progress_percent = CASE WHEN ? = 'succeeded' THEN 100 ELSE progress_percent END
                    WHERE id = ? AND state IN ('queued', 'running')
                    """,
                arguments: [state.rawValue, error, EpochMilliseconds.from(now), state.rawValue, id])
            return db.changesCount == 1
        }
    }

    public func markCancelRequested(id: Int64, by who: AuditActor, now: Date) throws {
        try database.write { db in
            let state = try String.fetchOne(db, sql: "SELECT state FROM jobs WHERE id = ?", arguments: [id])
            try db.execute(
                sql: "UPDATE jobs SET cancel_requested_by = ? WHERE id = ? AND state IN ('queued', 'running')", arguments: [who.actor, id])
            guard db.changesCount == 1 else { return }
            try AuditLog.append(
                db, by: who, action: "job.cancel", target: "job:\(id)", before: ["state": state ?? ""], after: ["cancel_requested_by": who.actor],
                now: now)
        }
    }

    /// At startup: whatever was running belonged to a process that is gone.
    public func interruptLeftovers(reason: String, now: Date) throws -> [Int64] {
        try database.write { db in
            let ids = try Int64.fetchAll(db, sql: "SELECT id FROM jobs WHERE state = 'running'")
            try db.execute(
                sql: "UPDATE jobs SET state = 'interrupted', error = ?, finished_at = ? WHERE state = 'running'",
                arguments: [reason, EpochMilliseconds.from(now)])
            return ids
        }
    }

    public func appendLog(id: Int64, seq: Int64, data: Data, truncated: Bool, now: Date) throws {
        try database.write { db in
            try db.execute(
                sql: "INSERT INTO job_log_chunks (job_id, seq, at, data) VALUES (?, ?, ?, ?)",
                arguments: [id, seq, EpochMilliseconds.from(now), data])
            try db.execute(
                sql: "UPDATE jobs SET log_bytes = log_bytes + ?, log_truncated = log_truncated OR ? WHERE id = ?",
                arguments: [data.count, truncated, id])
        }
    }

    public func logChunks(id: Int64, after seq: Int64 = 0) throws -> [JobLogChunk] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, at, data FROM job_log_chunks WHERE job_id = ? AND seq > ? ORDER BY seq", arguments: [id, seq])
                .map { JobLogChunk(seq: $0["seq"], at: $0["at"], data: $0["data"]) }
        }
    }
}
