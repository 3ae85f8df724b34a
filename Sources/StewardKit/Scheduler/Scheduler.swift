import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Time as the scheduler sees it; tests substitute a clock they move by hand.
public protocol SchedulerClock: Sendable {
    func now() -> Date
    func sleep(until deadline: Date) async throws
}

public struct SystemClock: SchedulerClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSinceNow
        if seconds > 0 { try await Task.sleep(for: .milliseconds(Int64(seconds * 1000))) }
    }
}

/// Fires due schedules as jobs, applying catch-up and concurrency policies. State lives in SQLite, so a restart
/// resumes from the persisted last and next fire times.
public actor Scheduler: Service {
    /// A due time later than this by more than the grace is treated as missed (the server was down or stalled).
    public static let misfireGrace: TimeInterval = 60

    public nonisolated let store: ScheduleStore
    let jobs: JobRunner
    let clock: any SchedulerClock
    let logger: Logger
    private var wake: AsyncStream<Void>.Continuation?

    public init(store: ScheduleStore, jobs: JobRunner, clock: any SchedulerClock = SystemClock(), logger: Logger) {
        self.store = store
        self.jobs = jobs
        self.clock = clock
        self.logger = logger
    }

    /// What one tick did with one schedule; returned for tests and logged.
    public struct Firing: Sendable, Equatable {
        public var scheduleID: Int64
        public var jobID: Int64?
        public var outcome: String
    }

    /// Handle every schedule that is due at the clock's current time.
    @discardableResult
    public func tick() async -> [Firing] {
        let now = clock.now()
        let nowMS = EpochMilliseconds.from(now)
        let schedules: [Schedule]
        do {
            schedules = try store.all()
        } catch {
            logger.error("scheduler cannot read schedules", metadata: ["error": "\(error)"])
            return []
        }
        var firings: [Firing] = []
        for schedule in schedules where schedule.enabled {
            guard let due = schedule.nextDueAt, let nominal = schedule.nextFireAt, due <= nowMS else { continue }
            do {
                firings.append(try await handleDue(schedule, nominal: EpochMilliseconds.date(nominal), due: EpochMilliseconds.date(due), now: now))
            } catch {
                logger.error("schedule failed to fire", metadata: ["schedule": "\(schedule.name)", "error": "\(error)"])
                firings.append(Firing(scheduleID: schedule.id, jobID: nil, outcome: "error: \(error)"))
            }
        }
        return firings
    }

    private func handleDue(_ schedule: Schedule, nominal: Date, due: Date, now: Date) async throws -> Firing {
        let timing = try schedule.timing()
        // All nominal fire times up to now: the first is `nominal`; the rest were also missed.
        var lastMissed = nominal
        var missedCount = 1
        while missedCount < 10_000, let following = timing.nextFire(after: lastMissed), following <= now {
            lastMissed = following
            missedCount += 1
        }
        let late = now.timeIntervalSince(due) > Self.misfireGrace || missedCount > 1
        var firing = Firing(scheduleID: schedule.id, jobID: nil, outcome: "")
        if late && schedule.catchUp == .none {
            firing.outcome =
                "skipped \(missedCount) missed run\(missedCount == 1 ? "" : "s") (catch-up: none; last missed \(RFC3339.string(lastMissed)))"
        } else {
            let reason =
                late
                ? "catch-up: \(missedCount) run\(missedCount == 1 ? "" : "s") missed while Steward was down (last due \(RFC3339.string(lastMissed))); running once now"
                : "scheduled for \(RFC3339.string(nominal)) (\(schedule.cron), \(schedule.timeZone))"
            firing = try await fire(schedule, reason: reason, startedBy: "schedule:\(schedule.name)")
        }
        let next = timing.nextFire(after: max(lastMissed, now))
        let nextDue = next.map { $0.addingTimeInterval(timing.jitter(scheduleID: schedule.id, nominal: $0)) }
        try store.recordOutcome(
            id: schedule.id, lastFire: lastMissed, next: next, due: nextDue, jobID: firing.jobID, outcome: firing.outcome, now: now)
        logger.info("schedule handled", metadata: ["schedule": "\(schedule.name)", "outcome": "\(firing.outcome)"])
        return firing
    }

    /// Start the schedule's job now, honouring its concurrency policy against the previous run.
    private func fire(_ schedule: Schedule, reason: String, startedBy: String, source: String? = nil) async throws -> Firing {
        if let previousID = schedule.lastJobID, let previous = try jobs.store.job(id: previousID), !previous.state.isFinished {
            switch schedule.concurrency {
            case .forbid:
                return Firing(
                    scheduleID: schedule.id, jobID: nil,
                    outcome: "skipped: previous run (job \(previousID)) is still \(previous.state.rawValue) (concurrency: forbid)")
            case .replace:
                try await jobs.cancel(id: previousID, by: AuditActor(actor: "schedule \(schedule.name) (concurrency: replace)"))
            case .allow:
                break
            }
        }
        let job = try await jobs.enqueue(
            JobRequest(
                kind: schedule.jobKind, title: schedule.jobTitle, params: schedule.jobParams, host: schedule.jobHost, startedBy: startedBy,
                reason: reason, scheduleID: schedule.id, source: source))
        return Firing(scheduleID: schedule.id, jobID: job.id, outcome: "started job \(job.id)")
    }

    /// "Run now" from the UI or API: same concurrency rules, and the regular timetable is left as it was.
    public func runNow(id: Int64, by who: AuditActor) async throws -> Firing? {
        guard let schedule = try store.schedule(id: id) else { return nil }
        let actor = who.actor
        let firing = try await fire(schedule, reason: "run now by \(actor)", startedBy: actor, source: who.source)
        if let jobID = firing.jobID {
            try store.recordOutcome(
                id: id, lastFire: schedule.lastFireAt.map(EpochMilliseconds.date) ?? clock.now(),
                next: schedule.nextFireAt.map(EpochMilliseconds.date),
                due: schedule.nextDueAt.map(EpochMilliseconds.date), jobID: jobID, outcome: "run now by \(actor): started job \(jobID)",
                now: clock.now())
        }
        return firing
    }

    /// Re-read schedules at once (after an edit) instead of at the next planned wake-up.
    public func reload() { wake?.yield() }

    /// Change a schedule's timing and re-plan at once: the one way the pages and the API edit a schedule.
    public func update(id: Int64, settings: ScheduleSettings, now: Date, by who: AuditActor) throws -> Schedule? {
        let updated = try store.update(id: id, settings: settings, now: now, by: who)
        reload()
        return updated
    }

    public func run() async throws {
        let (signals, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        await withGracefulShutdownHandler {
            var iterator = signals.makeAsyncIterator()
            while !Task.isCancelled {
                await tick()
                let nextDue = (try? store.all().filter(\.enabled).compactMap(\.nextDueAt).min()).map(EpochMilliseconds.date)
                let deadline = min(nextDue ?? clock.now().addingTimeInterval(60), clock.now().addingTimeInterval(60))
                let clock = self.clock
                // A sleeper cancelled because something else woke the loop must not wake it again: if it did, each
                // turn would cancel the next sleeper and be woken by it, and the loop would spin.
                let sleeper = Task {
                    try? await clock.sleep(until: deadline)
                    if !Task.isCancelled { continuation.yield() }
                }
                let next: Void? = await iterator.next()
                sleeper.cancel()
                if next == nil { break }
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }
}

/// Wakes the scheduler after an area changed schedules in its own transaction. Areas are built before the scheduler
/// (it needs their job handlers), so the server attaches the scheduler once it exists.
public final class ScheduleWake: Sendable {
    private let scheduler = Mutex<Scheduler?>(nil)

    public init() {}

    public func attach(_ scheduler: Scheduler) { self.scheduler.withLock { $0 = scheduler } }

    public func changed() async { await scheduler.withLock { $0 }?.reload() }
}
