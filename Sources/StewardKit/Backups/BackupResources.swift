import Foundation

// The backups API's replies as Encodable types (snake_case keys, explicit nulls); the schemas in
// APISchemas+Areas.swift describe them.

/// A repository and what Steward last saw of it.
struct BackupRepositoryResource: Codable, Sendable {
    let id: Int64
    let name, kind: String
    let hostId: Int64
    let path: String
    let builtin: Nullable<String>
    let sizeBytes: Nullable<Int64>
    let snapshotCount: Nullable<Int>
    let statusAt, statusError, checkAt: Nullable<String>
    let checkOk: Nullable<Bool>
    let checkMessage: Nullable<String>

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
struct BackupSnapshotResource: Codable, Sendable {
    let id, shortId, time, hostname: String
    let paths, tags: [String]
    let planId: Nullable<Int64>
    var repositoryId: Int64?

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
struct BackupPlanSnapshotList: Codable, Sendable {
    let items: [BackupSnapshotResource]
    let repositoryId: Int64
    var next = Nullable<String>(nil)
}

/// One backup, verify or prune run of a plan.
struct BackupRunResource: Codable, Sendable {
    let jobId: Int64
    let kind, state: String
    let planId, repositoryId: Nullable<Int64>
    let startedAt, finishedAt, snapshotId: Nullable<String>
    let filesNew, filesChanged, filesUnmodified, bytesAdded, bytesProcessed, durationMs, removedSnapshots: Nullable<Int64>
    let detail: Nullable<String>

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
struct BackupPlanResource: Codable, Sendable {
    struct Timing: Codable, Sendable {
        let cron, timeZone: String
        let jitterSeconds: Int
        let catchUp: String

        static func of(_ settings: ScheduleSettings?) -> Nullable<Timing> {
            Nullable(
                settings.map {
                    Timing(cron: $0.cron, timeZone: $0.timeZone, jitterSeconds: $0.jitterSeconds, catchUp: $0.catchUp.rawValue)
                })
        }
    }
    let id: Int64
    let name: String
    let hostId, repositoryId: Int64
    let paths, excludes: [String]
    let keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly: Nullable<Int>
    let keepWithin: String
    let pruneAfterRun: Bool
    let preHook, postHook: [String]
    let verifyReadDataSubset: String
    let alertAfterHours: Int
    let paused: Bool
    let builtin: Nullable<String>
    let backupSchedule, verifySchedule, pruneSchedule: Nullable<Timing>
    let backupScheduleId, verifyScheduleId, pruneScheduleId: Nullable<Int64>
    let lastRun, lastSuccess: Nullable<BackupRunResource>

    enum CodingKeys: String, CodingKey {
        case id, name, paths, excludes, paused, builtin, hostId, repositoryId, keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly,
            keepWithin, pruneAfterRun, preHook, postHook, verifyReadDataSubset, alertAfterHours, backupSchedule, verifySchedule, pruneSchedule,
            backupScheduleId, verifyScheduleId, pruneScheduleId, lastRun, lastSuccess
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
struct BackupTreeResource: Codable, Sendable {
    struct Entry: Codable, Sendable {
        let name, path, type: String
        let size: Nullable<Int64>
        let mtime, permissions: String
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
struct BackupRetentionPreviewResource: Codable, Sendable {
    struct Item: Codable, Sendable {
        let id, shortId, time: String
        let keep: Bool
        let reasons: [String]
    }
    let keep, remove: Int
    let flags: [String]
    let items: [Item]
}
