import Foundation

/// A job as the API shows it (the `Job` schema). Absent values are written as null (`Nullable`), never left out.
public struct JobResource: Codable, Sendable {
    struct Progress: Codable, Sendable {
        var percent: Nullable<Double>
        var message: String
    }
    var id: Int64
    var kind, title, state: String
    var host: Nullable<String>
    var params: JSONValue
    var startedBy, reason: String
    var scheduleID: Nullable<Int64>
    var progress: Progress
    var error, cancelRequestedBy: Nullable<String>
    var logBytes: Int64
    var logTruncated: Bool
    var createdAt, startedAt, finishedAt: Nullable<String>
    var links: [String: String]

    public init(_ job: Job) {
        id = job.id
        kind = job.kind
        title = job.title
        state = job.state.rawValue
        host = Nullable(job.host)
        params = JSONValue(text: job.params)
        startedBy = job.startedBy
        reason = job.reason
        scheduleID = Nullable(job.scheduleID)
        progress = Progress(percent: Nullable(job.progressPercent), message: job.progressMessage)
        error = Nullable(job.error)
        cancelRequestedBy = Nullable(job.cancelRequestedBy)
        logBytes = Int64(job.logBytes)
        logTruncated = job.logTruncated
        createdAt = Nullable(RFC3339.string(milliseconds: job.createdAt))
        startedAt = Nullable(RFC3339.string(milliseconds: job.startedAt))
        finishedAt = Nullable(RFC3339.string(milliseconds: job.finishedAt))
        links = [
            "self": "/api/v1/jobs/\(job.id)", "log": "/api/v1/jobs/\(job.id)/log", "cancel": "/api/v1/jobs/\(job.id)/cancel",
            "page": "/jobs/\(job.id)",
        ]
    }
}

/// A page of jobs (the `JobList` schema).
struct JobListResource: Codable {
    var items: [JobResource]
    var next: Nullable<String>
}
