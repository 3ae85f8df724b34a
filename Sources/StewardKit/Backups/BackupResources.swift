import Foundation

// The backups API's replies as Encodable types (snake_case keys, explicit nulls); the schemas in
// APISchemas+Areas.swift describe them.

/// A repository and what Steward last saw of it.
struct BackupRepositoryResource: Encodable, Sendable {
    let id: Int64
    let name: String
    let kind: String
    let hostId: Int64
    let path: String
    let builtin: Nullable<String>
    let sizeBytes: Nullable<Int64>
    let snapshotCount: Nullable<Int>
    let statusAt: Nullable<String>
    let statusError: Nullable<String>
    let checkAt: Nullable<String>
    let checkOk: Nullable<Bool>
    let checkMessage: Nullable<String>

    enum CodingKeys: String, CodingKey {
        case id, name, kind, path, builtin
        case hostId = "host_id"
        case sizeBytes = "size_bytes"
        case snapshotCount = "snapshot_count"
        case statusAt = "status_at"
        case statusError = "status_error"
        case checkAt = "check_at"
        case checkOk = "check_ok"
        case checkMessage = "check_message"
    }

    init(_ repository: BackupRepository) {
        id = repository.id
        name = repository.name
        kind = repository.kind.rawValue
        hostId = repository.hostID
        path = repository.path
        builtin = Nullable(repository.builtin)
        sizeBytes = Nullable(repository.sizeBytes)
        snapshotCount = Nullable(repository.snapshotCount)
        statusAt = Nullable(RFC3339.string(milliseconds: repository.statusAt))
        statusError = Nullable(repository.statusError)
        checkAt = Nullable(RFC3339.string(milliseconds: repository.checkAt))
        checkOk = Nullable(repository.checkOK)
        checkMessage = Nullable(repository.checkMessage)
    }
}

/// A snapshot; `repository_id` only where a list spans repositories (a host's snapshots).
struct BackupSnapshotResource: Encodable, Sendable {
    let id: String
    let shortId: String
    let time: String
    let hostname: String
    let paths: [String]
    let tags: [String]
    let planId: Nullable<Int64>
    var repositoryId: Int64?

    enum CodingKeys: String, CodingKey {
        case id, time, hostname, paths, tags
        case shortId = "short_id"
        case planId = "plan_id"
        case repositoryId = "repository_id"
    }

    init(_ snapshot: BackupSnapshot, repositoryID: Int64? = nil) {
        id = snapshot.id
        shortId = snapshot.shortID
        time = snapshot.time
        hostname = snapshot.hostname
        paths = snapshot.paths
        tags = snapshot.tags
        planId = Nullable(snapshot.planID)
        repositoryId = repositoryID
    }
}

/// A plan's snapshots, with the repository they are in.
struct BackupPlanSnapshotList: Encodable, Sendable {
    let items: [BackupSnapshotResource]
    let repositoryId: Int64
    let next = Nullable<String>(nil)

    enum CodingKeys: String, CodingKey {
        case items, next
        case repositoryId = "repository_id"
    }
}

/// One backup, verify or prune run of a plan.
struct BackupRunResource: Encodable, Sendable {
    let jobId: Int64
    let kind: String
    let state: String
    let planId: Nullable<Int64>
    let repositoryId: Nullable<Int64>
    let startedAt: Nullable<String>
    let finishedAt: Nullable<String>
    let snapshotId: Nullable<String>
    let filesNew: Nullable<Int64>
    let filesChanged: Nullable<Int64>
    let filesUnmodified: Nullable<Int64>
    let bytesAdded: Nullable<Int64>
    let bytesProcessed: Nullable<Int64>
    let durationMs: Nullable<Int64>
    let removedSnapshots: Nullable<Int64>
    let detail: Nullable<String>

    enum CodingKeys: String, CodingKey {
        case kind, state, detail
        case jobId = "job_id"
        case planId = "plan_id"
        case repositoryId = "repository_id"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case snapshotId = "snapshot_id"
        case filesNew = "files_new"
        case filesChanged = "files_changed"
        case filesUnmodified = "files_unmodified"
        case bytesAdded = "bytes_added"
        case bytesProcessed = "bytes_processed"
        case durationMs = "duration_ms"
        case removedSnapshots = "removed_snapshots"
    }

    init(_ run: BackupStore.Run) {
        jobId = run.jobID
        kind = run.kind
        state = run.jobState.rawValue
        planId = Nullable(run.planID)
        repositoryId = Nullable(run.repositoryID)
        startedAt = Nullable(RFC3339.string(milliseconds: run.startedAt))
        finishedAt = Nullable(RFC3339.string(milliseconds: run.finishedAt))
        snapshotId = Nullable(run.snapshotID)
        filesNew = Nullable(run.filesNew)
        filesChanged = Nullable(run.filesChanged)
        filesUnmodified = Nullable(run.filesUnmodified)
        bytesAdded = Nullable(run.bytesAdded)
        bytesProcessed = Nullable(run.bytesProcessed)
        durationMs = Nullable(run.durationMS)
        removedSnapshots = Nullable(run.removedSnapshots)
        detail = Nullable(run.detail)
    }
}

/// A plan with its retention, hooks, three schedules and its newest runs.
struct BackupPlanResource: Encodable, Sendable {
    struct Timing: Encodable, Sendable {
        let cron: String
        let timeZone: String
        let jitterSeconds: Int
        let catchUp: String

        enum CodingKeys: String, CodingKey {
            case cron
            case timeZone = "time_zone"
            case jitterSeconds = "jitter_seconds"
            case catchUp = "catch_up"
        }

        static func of(_ settings: ScheduleSettings?) -> Nullable<Timing> {
            Nullable(
                settings.map {
                    Timing(cron: $0.cron, timeZone: $0.timeZone, jitterSeconds: $0.jitterSeconds, catchUp: $0.catchUp.rawValue)
                })
        }
    }
    let id: Int64
    let name: String
    let hostId: Int64
    let repositoryId: Int64
    let paths: [String]
    let excludes: [String]
    let keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly: Nullable<Int>
    let keepWithin: String
    let pruneAfterRun: Bool
    let preHook: [String]
    let postHook: [String]
    let verifyReadDataSubset: String
    let alertAfterHours: Int
    let paused: Bool
    let builtin: Nullable<String>
    let backupSchedule, verifySchedule, pruneSchedule: Nullable<Timing>
    let backupScheduleId, verifyScheduleId, pruneScheduleId: Nullable<Int64>
    let lastRun, lastSuccess: Nullable<BackupRunResource>

    enum CodingKeys: String, CodingKey {
        case id, name, paths, excludes, paused, builtin
        case hostId = "host_id"
        case repositoryId = "repository_id"
        case keepLast = "keep_last"
        case keepHourly = "keep_hourly"
        case keepDaily = "keep_daily"
        case keepWeekly = "keep_weekly"
        case keepMonthly = "keep_monthly"
        case keepYearly = "keep_yearly"
        case keepWithin = "keep_within"
        case pruneAfterRun = "prune_after_run"
        case preHook = "pre_hook"
        case postHook = "post_hook"
        case verifyReadDataSubset = "verify_read_data_subset"
        case alertAfterHours = "alert_after_hours"
        case backupSchedule = "backup_schedule"
        case verifySchedule = "verify_schedule"
        case pruneSchedule = "prune_schedule"
        case backupScheduleId = "backup_schedule_id"
        case verifyScheduleId = "verify_schedule_id"
        case pruneScheduleId = "prune_schedule_id"
        case lastRun = "last_run"
        case lastSuccess = "last_success"
    }

    init(_ plan: BackupPlan, timing: BackupPlanTiming, last: BackupStore.Run?, success: BackupStore.Run?) {
        id = plan.id
        name = plan.name
        hostId = plan.hostID
        repositoryId = plan.repositoryID
        paths = plan.paths
        excludes = plan.excludes
        let r = plan.retention
        keepLast = Nullable(r.last)
        keepHourly = Nullable(r.hourly)
        keepDaily = Nullable(r.daily)
        keepWeekly = Nullable(r.weekly)
        keepMonthly = Nullable(r.monthly)
        keepYearly = Nullable(r.yearly)
        keepWithin = r.within
        pruneAfterRun = plan.pruneAfterRun
        preHook = plan.preHook
        postHook = plan.postHook
        verifyReadDataSubset = plan.verifyReadDataSubset
        alertAfterHours = plan.alertAfterHours
        paused = plan.paused
        builtin = Nullable(plan.builtin)
        backupSchedule = Timing.of(timing.backup)
        verifySchedule = Timing.of(timing.verify)
        pruneSchedule = Timing.of(timing.prune)
        backupScheduleId = Nullable(plan.backupScheduleID)
        verifyScheduleId = Nullable(plan.verifyScheduleID)
        pruneScheduleId = Nullable(plan.pruneScheduleID)
        lastRun = Nullable(last.map(BackupRunResource.init))
        lastSuccess = Nullable(success.map(BackupRunResource.init))
    }
}

/// The entries directly inside one directory of a snapshot.
struct BackupTreeResource: Encodable, Sendable {
    struct Entry: Encodable, Sendable {
        let name: String
        let path: String
        let type: String
        let size: Nullable<Int64>
        let mtime: String
        let permissions: String
    }
    let path: String
    let items: [Entry]

    init(path: String, entries: [BackupTreeEntry]) {
        self.path = path
        items = entries.map {
            Entry(name: $0.name, path: $0.path, type: $0.type, size: Nullable($0.size), mtime: $0.mtime, permissions: $0.permissions)
        }
    }
}

/// Which snapshots a retention policy would keep, and why, and which it would remove.
struct BackupRetentionPreviewResource: Encodable, Sendable {
    struct Item: Encodable, Sendable {
        let id: String
        let shortId: String
        let time: String
        let keep: Bool
        let reasons: [String]

        enum CodingKeys: String, CodingKey {
            case id, time, keep, reasons
            case shortId = "short_id"
        }
    }
    let keep: Int
    let remove: Int
    let flags: [String]
    let items: [Item]
}
