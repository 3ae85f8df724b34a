import Foundation
import GRDB

/// A recurring trigger for one kind of job, as stored in the `schedules` table.
public struct Schedule: Sendable, Equatable, FetchableRecord {
    public enum CatchUp: String, Sendable, CaseIterable, DatabaseValueConvertible { case none, one }
    public enum Concurrency: String, Sendable, CaseIterable, DatabaseValueConvertible { case forbid, replace, allow }

    public var id: Int64
    public var name: String
    public var cron: String
    public var timeZone: String
    public var jitterSeconds: Int
    public var catchUp: CatchUp
    public var concurrency: Concurrency
    public var jobKind: String
    public var jobTitle: String
    public var jobParams: String
    public var jobHost: String?
    public var owner: String
    public var enabled: Bool
    public var lastFireAt: Int64?
    public var nextFireAt: Int64?
    public var nextDueAt: Int64?
    public var lastJobID: Int64?
    public var lastOutcome: String?
    public var lastOutcomeAt: Int64?
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(row: Row) throws {
        id = row["id"]
        name = row["name"]
        cron = row["cron"]
        timeZone = row["time_zone"]
        jitterSeconds = row["jitter_seconds"]
        catchUp = row["catch_up"]
        concurrency = row["concurrency"]
        jobKind = row["job_kind"]
        jobTitle = row["job_title"]
        jobParams = row["job_params"]
        jobHost = row["job_host"]
        owner = row["owner"]
        enabled = row["enabled"]
        lastFireAt = row["last_fire_at"]
        nextFireAt = row["next_fire_at"]
        nextDueAt = row["next_due_at"]
        lastJobID = row["last_job_id"]
        lastOutcome = row["last_outcome"]
        lastOutcomeAt = row["last_outcome_at"]
        createdAt = row["created_at"]
        updatedAt = row["updated_at"]
    }

    /// Parsed timing; stored schedules were validated on save, so this only fails if the tz database changed.
    public func timing() throws -> ScheduleTiming {
        try ScheduleTiming(cron: cron, timeZone: timeZone, jitterSeconds: jitterSeconds)
    }
}

/// The validated "when" of a schedule: expression, zone and jitter.
public struct ScheduleTiming: Sendable {
    public let expression: CronExpression
    public let zone: TimeZone
    public let jitterSeconds: Int

    /// Field errors keyed by form/API field name, each saying what is allowed.
    public struct Invalid: Error, Equatable {
        public var fields: [String: String]
    }

    public init(cron: String, timeZone: String, jitterSeconds: Int) throws(Invalid) {
        var errors: [String: String] = [:]
        var parsed: CronExpression?
        do {
            parsed = try CronExpression(cron)
        } catch {
            errors["cron"] = error.description
        }
        let zone = TimeZone(identifier: timeZone)
        if zone == nil || timeZone.isEmpty {
            errors["time_zone"] = "unknown time zone \"\(timeZone)\"; use an IANA name such as UTC, Europe/Berlin or America/New_York"
        }
        if !(0...86400).contains(jitterSeconds) { errors["jitter_seconds"] = "jitter must be between 0 and 86400 seconds" }
        if let parsed, let zone, parsed.nextFire(after: Date(), in: zone) == nil {
            errors["cron"] = "expression never fires (for example day 31 in a month that has 30 days)"
        }
        guard errors.isEmpty, let parsed, let zone else { throw Invalid(fields: errors) }
        expression = parsed
        self.zone = zone
        self.jitterSeconds = jitterSeconds
    }

    public func nextFire(after instant: Date) -> Date? { expression.nextFire(after: instant, in: zone) }

    /// A stable per-schedule delay in [0, jitter], so restarts do not reshuffle the due time.
    public func jitter(scheduleID: Int64, nominal: Date) -> TimeInterval {
        guard jitterSeconds > 0 else { return 0 }
        var hasher = StableHasher()
        hasher.combine(scheduleID)
        hasher.combine(Int64(nominal.timeIntervalSince1970))
        return TimeInterval(hasher.value % UInt64(jitterSeconds + 1))
    }
}

/// FNV-1a; Swift's Hasher is seeded per process and would move jitter on every restart.
struct StableHasher {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func combine(_ number: Int64) {
        withUnsafeBytes(of: number.littleEndian) { bytes in
            for byte in bytes {
                value ^= UInt64(byte)
                value = value &* 0x100_0000_01b3
            }
        }
    }
}

/// A schedule's editable settings, as submitted by the form or the API.
public struct ScheduleSettings: Sendable, Equatable {
    public var cron: String
    public var timeZone: String
    public var jitterSeconds: Int
    public var catchUp: Schedule.CatchUp
    public var concurrency: Schedule.Concurrency
    public var enabled: Bool

    public init(
        cron: String, timeZone: String, jitterSeconds: Int = 0, catchUp: Schedule.CatchUp = .none, concurrency: Schedule.Concurrency = .forbid,
        enabled: Bool = true
    ) {
        self.cron = cron
        self.timeZone = timeZone
        self.jitterSeconds = jitterSeconds
        self.catchUp = catchUp
        self.concurrency = concurrency
        self.enabled = enabled
    }
}
