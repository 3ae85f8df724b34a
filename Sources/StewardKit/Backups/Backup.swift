import Foundation
import GRDB

/// A restic repository: a directory on a host's own disk, or on another host reached over SFTP.
public struct BackupRepository: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case local, sftp }

    public var id: Int64 = 0
    public var name = ""
    public var kind = Kind.local
    public var hostID: Int64 = 0
    public var path = ""
    public var builtin: String?
    public var sizeBytes: Int64?
    public var snapshotCount: Int?
    public var statusAt: Int64?
    public var statusError: String?
    public var checkAt: Int64?
    public var checkOK: Bool?
    public var checkMessage: String?
    public var createdAt: Int64 = 0
    public var updatedAt: Int64 = 0

    public init() {}

    init(row: Row) {
        id = row["id"]
        name = row["name"]
        kind = Kind(rawValue: row["kind"]) ?? .local
        hostID = row["host_id"]
        path = row["path"]
        builtin = row["builtin"]
        sizeBytes = row["size_bytes"]
        snapshotCount = row["snapshot_count"]
        statusAt = row["status_at"]
        statusError = row["status_error"]
        checkAt = row["check_at"]
        checkOK = row["check_ok"]
        checkMessage = row["check_message"]
        createdAt = row["created_at"]
        updatedAt = row["updated_at"]
    }
}

/// restic's `forget --keep-*` policy. Every count is optional; `within` is a restic duration such as 7d or 1y2m.
public struct RetentionPolicy: Sendable, Equatable {
    public var last: Int?
    public var hourly: Int?
    public var daily: Int?
    public var weekly: Int?
    public var monthly: Int?
    public var yearly: Int?
    public var within = ""

    public init(
        last: Int? = nil, hourly: Int? = nil, daily: Int? = nil, weekly: Int? = nil, monthly: Int? = nil, yearly: Int? = nil, within: String = ""
    ) {
        self.last = last
        self.hourly = hourly
        self.daily = daily
        self.weekly = weekly
        self.monthly = monthly
        self.yearly = yearly
        self.within = within
    }

    public static let fields = ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"]

    public var counts: [(String, Int?)] {
        [
            ("keep_last", last), ("keep_hourly", hourly), ("keep_daily", daily), ("keep_weekly", weekly), ("keep_monthly", monthly),
            ("keep_yearly", yearly),
        ]
    }

    /// No rule at all: retention is off and every snapshot is kept.
    public var keepsEverything: Bool { counts.allSatisfy { ($0.1 ?? 0) == 0 } && within.isEmpty }

    /// The restic flags. `--keep-last` is at least 1, so the newest snapshot is never forgotten, whatever the policy.
    public var resticFlags: [String] {
        var flags: [String] = []
        for (field, value) in counts {
            var count = value ?? 0
            if field == "keep_last" { count = max(count, 1) }
            if count > 0 { flags += ["--" + field.replacingOccurrences(of: "_", with: "-"), String(count)] }
        }
        if !within.isEmpty { flags += ["--keep-within", within] }
        return flags
    }

    public func problems() -> [String: String] {
        var errors: [String: String] = [:]
        for (field, value) in counts where value != nil && !(0...100_000).contains(value!) {
            errors[field] = "must be a whole number from 0 to 100000 (empty or 0 for no rule)"
        }
        if !within.isEmpty, !Self.isDuration(within) {
            errors["keep_within"] = "write a duration such as 7d, 12h, 1y6m or 2w3d (y, m, d, h; empty for none)"
        }
        return errors
    }

    /// restic's duration syntax: one or more number+unit pairs, units y, m, d and h.
    static func isDuration(_ text: String) -> Bool {
        var sawDigit = false
        var sawPair = false
        for character in text {
            if character.isASCII && character.isNumber {
                sawDigit = true
            } else if "ymdh".contains(character), sawDigit {
                sawDigit = false
                sawPair = true
            } else {
                return false
            }
        }
        return sawPair && !sawDigit && text.count <= 32
    }
}

/// A backup plan: what to back up on which host, into which repository, when, and for how long to keep it.
public struct BackupPlan: Sendable, Equatable {
    public var id: Int64 = 0
    public var name = ""
    public var hostID: Int64 = 0
    public var repositoryID: Int64 = 0
    public var paths: [String] = []
    public var excludes: [String] = []
    public var retention = RetentionPolicy()
    /// Apply retention (forget + prune) after every successful backup; otherwise only on the prune schedule.
    public var pruneAfterRun = true
    /// Hook scripts by name, from the config repo's hooks/ folder (a one-element list; empty for none).
    public var preHook: [String] = []
    public var postHook: [String] = []
    /// restic's --read-data-subset for verification, such as 5% or 1/10; empty checks structure only.
    public var verifyReadDataSubset = ""
    /// The dead man's switch: alert when no backup has succeeded for this many hours.
    public var alertAfterHours = 26
    public var paused = false
    public var builtin: String?
    public var backupScheduleID: Int64?
    public var verifyScheduleID: Int64?
    public var pruneScheduleID: Int64?
    public var createdAt: Int64 = 0
    public var updatedAt: Int64 = 0

    public init() {}

    /// The restic tag every snapshot of this plan carries; retention and listings select on it.
    public var tag: String { "steward-plan-\(id)" }

    init(row: Row) {
        id = row["id"]
        name = row["name"]
        hostID = row["host_id"]
        repositoryID = row["repository_id"]
        paths = JSONText.strings(row["paths"])
        excludes = JSONText.strings(row["excludes"])
        retention = RetentionPolicy(
            last: row["keep_last"], hourly: row["keep_hourly"], daily: row["keep_daily"], weekly: row["keep_weekly"], monthly: row["keep_monthly"],
            yearly: row["keep_yearly"], within: row["keep_within"])
        pruneAfterRun = row["prune_after_run"]
        preHook = JSONText.strings(row["pre_hook"])
        postHook = JSONText.strings(row["post_hook"])
        verifyReadDataSubset = row["verify_read_data_subset"]
        alertAfterHours = row["alert_after_hours"]
        paused = row["paused"]
        builtin = row["builtin"]
        backupScheduleID = row["backup_schedule_id"]
        verifyScheduleID = row["verify_schedule_id"]
        pruneScheduleID = row["prune_schedule_id"]
        createdAt = row["created_at"]
        updatedAt = row["updated_at"]
    }
}

/// The timing a plan is saved with: its three schedules (verify and prune may be off).
public struct BackupPlanTiming: Sendable, Equatable {
    public var backup = ScheduleSettings(cron: "30 2 * * *", timeZone: "UTC", jitterSeconds: 600, catchUp: .one, concurrency: .forbid)
    public var verify: ScheduleSettings? = ScheduleSettings(
        cron: "0 4 * * 0", timeZone: "UTC", jitterSeconds: 600, catchUp: .one, concurrency: .forbid)
    public var prune: ScheduleSettings?

    public init() {}
}

/// Path rules for backups and restores (SECURITY.md class 7): absolute, normalised, no `..`, no NUL or newline.
public enum BackupPaths {
    /// What is wrong with a host path, or nil when it is acceptable.
    public static func problem(_ path: String, what: String = "path") -> String? {
        if path.isEmpty { return "\(what) is empty" }
        if !path.hasPrefix("/") { return "\(what) \(quoted(path)) must be absolute (start with /)" }
        if path.utf8.count > 4096 { return "\(what) is longer than 4096 bytes" }
        if path.contains(where: { $0 == "\0" || $0 == "\n" || $0 == "\r" }) { return "\(what) contains a NUL or line break" }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if components.contains("..") || components.contains(".") { return "\(what) \(quoted(path)) may not contain . or .. components" }
        if path.count > 1, path.hasSuffix("/") { return "\(what) \(quoted(path)) should not end with /" }
        if path.contains("//") { return "\(what) \(quoted(path)) contains an empty component (//)" }
        return nil
    }

    /// An exclude pattern: restic's glob syntax, one per line; only NUL and line breaks are refused.
    public static func excludeProblem(_ pattern: String) -> String? {
        if pattern.isEmpty { return "an exclude pattern is empty" }
        if pattern.contains(where: { $0 == "\0" || $0 == "\n" || $0 == "\r" }) { return "an exclude pattern contains a NUL or line break" }
        if pattern.utf8.count > 1024 { return "an exclude pattern is longer than 1024 bytes" }
        return nil
    }

    /// True when `inner` is `outer` or lies beneath it.
    public static func contains(_ outer: String, _ inner: String) -> Bool {
        outer == "/" || inner == outer || inner.hasPrefix(outer + "/")
    }

    static func quoted(_ path: String) -> String { "\"\(path)\"" }
}
