import Foundation
import GRDB

/// One run of a long operation, as stored in the `jobs` table.
public struct Job: Sendable, Equatable, Codable, FetchableRecord {
    public enum State: String, Sendable, Codable, CaseIterable, DatabaseValueConvertible {
        case queued, running, succeeded, failed, cancelled, interrupted
        public var isFinished: Bool { self != .queued && self != .running }
    }

    public var id: Int64
    public var kind: String
    public var title: String
    public var state: State
    public var host: String?
    public var params: String
    public var startedBy: String
    public var reason: String
    public var scheduleID: Int64?
    public var progressPercent: Double?
    public var progressMessage: String
    public var error: String?
    public var cancelRequestedBy: String?
    public var logBytes: Int64
    public var logTruncated: Bool
    public var createdAt: Int64
    public var startedAt: Int64?
    public var finishedAt: Int64?

    public init(row: Row) throws {
        id = row["id"]
        kind = row["kind"]
        title = row["title"]
        state = row["state"]
        host = row["host"]
        params = row["params"]
        startedBy = row["started_by"]
        reason = row["reason"]
        scheduleID = row["schedule_id"]
        progressPercent = row["progress_percent"]
        progressMessage = row["progress_message"]
        error = row["error"]
        cancelRequestedBy = row["cancel_requested_by"]
        logBytes = row["log_bytes"]
        logTruncated = row["log_truncated"]
        createdAt = row["created_at"]
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
    }
}

/// What a caller asks the runner to do: a registered kind plus its parameters and provenance.
public struct JobRequest: Sendable {
    public var kind: String
    public var title: String
    public var params: String
    public var host: String?
    public var startedBy: String
    public var reason: String
    public var scheduleID: Int64?
    /// The address the request came from, for the audit trail; nil for the scheduler and the system.
    public var source: String?
    /// What the request means beyond starting a job ("adhoc.run" with its command, "backup.restore" with its target):
    /// written as an audit row on the job, in the transaction that inserts the job.
    public var audit: JobAudit?

    public init(
        kind: String, title: String, params: String = "{}", host: String? = nil, startedBy: String, reason: String = "", scheduleID: Int64? = nil,
        source: String? = nil
    ) {
        self.kind = kind
        self.title = title
        self.params = params
        self.host = host
        self.startedBy = startedBy
        self.reason = reason
        self.scheduleID = scheduleID
        self.source = source
    }
}

/// A filter for job lists, shared by the Jobs page and the API.
public struct JobFilter: Sendable, Equatable {
    public var state: Job.State?
    public var kind: String?
    public var host: String?
    /// Return jobs with an id below this one (keyset pagination, newest first).
    public var before: Int64?
    public var limit = 50

    public init(state: Job.State? = nil, kind: String? = nil, host: String? = nil, before: Int64? = nil, limit: Int = 50) {
        self.state = state
        self.kind = kind
        self.host = host
        self.before = before
        self.limit = limit
    }
}

/// One stored piece of a job's output.
public struct JobLogChunk: Sendable, Equatable {
    public var seq: Int64
    public var at: Int64
    public var data: Data
    public var text: String { String(decoding: data, as: UTF8.self) }
}

/// An audit row that belongs to a job's request; its target is the new job.
public struct JobAudit: Sendable {
    public let actor: AuditActor
    public let action: String
    public let after: [String: JSONValue]

    public init(by actor: AuditActor, action: String, after: [String: JSONValue]) {
        self.actor = actor
        self.action = action
        self.after = after
    }
}
