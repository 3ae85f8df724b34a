import Foundation
import GRDB
import Synchronization
import Testing

@testable import StewardKit

@Suite("Scheduler with a fake clock")
struct SchedulerTests {
    let directory = TemporaryDirectory()
    let database: DatabasePool
    let runner: JobRunner
    let clock = ManualClock(utc("2026-05-01T10:30:00Z"))

    init() throws {
        database = try makeDatabase(directory)
        runner = JobRunner(
            store: JobStore(database: database), events: JobEvents(), handlers: ["test.noop": { _ in }], concurrency: 2, logCap: 1 << 20,
            shutdownGrace: .seconds(1), logger: quietLogger)
    }

    func makeScheduler() -> Scheduler { Scheduler(store: ScheduleStore(database: database), jobs: runner, clock: clock, logger: quietLogger) }

    func hourly(_ catchUp: Schedule.CatchUp = .none, _ concurrency: Schedule.Concurrency = .forbid, jitter: Int = 0) throws -> Schedule {
        try ScheduleStore(database: database).create(
            name: "hourly",
            settings: ScheduleSettings(cron: "0 * * * *", timeZone: "UTC", jitterSeconds: jitter, catchUp: catchUp, concurrency: concurrency),
            jobKind: "test.noop", jobTitle: "Hourly", owner: "test", now: clock.now())
    }

    func jobs() throws -> [Job] { try JobStore(database: database).list(JobFilter(limit: 100)).reversed() }

    @Test("after a wake the loop sleeps again instead of spinning (a cancelled sleeper must not wake it)")
    func aWakeDoesNotMakeTheLoopSpin() async throws {
        _ = try hourly()
        let sleeps = CountingClock(clock)
        let scheduler = Scheduler(store: ScheduleStore(database: database), jobs: runner, clock: sleeps, logger: quietLogger)
        let loop = Task { try await scheduler.run() }
        defer { loop.cancel() }
        // waitUntil's long bound, as in the tree-cancel test: the whole suite starts at once on a loaded 2-core machine.
        #expect(try await waitUntil { sleeps.count >= 1 })
        await scheduler.reload()
        #expect(try await waitUntil { sleeps.count >= 2 })
        // Each wake is one more turn and one more sleep. With the bug, every cancelled sleeper woke the loop again and
        // the count ran into the thousands within the same moment.
        try await Task.sleep(for: .milliseconds(300))
        #expect(sleeps.count <= 3, "the scheduler went to sleep \(sleeps.count) times after one wake")
    }

    @Test("fires on time, once, and persists the next fire time")
    func firesOnTime() async throws {
        let schedule = try hourly()
        #expect(iso(schedule.nextFireAt.map(EpochMilliseconds.date)) == "2026-05-01T11:00:00Z")
        let scheduler = makeScheduler()
        clock.set(utc("2026-05-01T10:59:59Z"))
        #expect(await scheduler.tick().isEmpty)
        clock.set(utc("2026-05-01T11:00:02Z"))
        let firings = await scheduler.tick()
        #expect(firings.count == 1 && firings[0].jobID != nil)
        #expect(await scheduler.tick().isEmpty)
        let stored = try #require(try ScheduleStore(database: database).schedule(id: schedule.id))
        #expect(iso(stored.lastFireAt.map(EpochMilliseconds.date)) == "2026-05-01T11:00:00Z")
        #expect(iso(stored.nextFireAt.map(EpochMilliseconds.date)) == "2026-05-01T12:00:00Z")
        let job = try #require(try jobs().first)
        #expect(job.scheduleID == schedule.id && job.startedBy == "schedule:hourly" && job.reason.contains("2026-05-01T11:00:00"))
    }

    @Test("catch-up none skips every run missed while down")
    func catchUpNone() async throws {
        _ = try hourly(.none)
        clock.set(utc("2026-05-01T14:30:00Z"))
        let firings = await makeScheduler().tick()
        #expect(firings.count == 1 && firings[0].jobID == nil)
        #expect(firings[0].outcome.contains("skipped 4 missed runs"))
        #expect(try jobs().isEmpty)
        #expect(
            try iso(ScheduleStore(database: database).schedule(named: "hourly")?.nextFireAt.map(EpochMilliseconds.date)) == "2026-05-01T15:00:00Z")
    }

    @Test("catch-up one runs once for all the runs missed while down")
    func catchUpOne() async throws {
        _ = try hourly(.one)
        clock.set(utc("2026-05-01T14:30:00Z"))
        let scheduler = makeScheduler()
        let firings = await scheduler.tick()
        #expect(firings.count == 1 && firings[0].jobID != nil)
        #expect(await scheduler.tick().isEmpty)
        let all = try jobs()
        #expect(all.count == 1)
        #expect(all[0].reason.contains("4 runs missed"))
    }

    @Test("concurrency forbid skips a run while the previous one is still active")
    func forbid() async throws {
        _ = try hourly(.none, .forbid)
        let scheduler = makeScheduler()
        clock.set(utc("2026-05-01T11:00:01Z"))
        await scheduler.tick()
        clock.set(utc("2026-05-01T12:00:01Z"))
        let second = await scheduler.tick()
        #expect(second.first?.jobID == nil)
        #expect(second.first?.outcome.contains("still queued (concurrency: forbid)") == true)
        #expect(try jobs().count == 1)
    }

    @Test("concurrency replace cancels the previous run and starts a new one")
    func replace() async throws {
        _ = try hourly(.none, .replace)
        let scheduler = makeScheduler()
        clock.set(utc("2026-05-01T11:00:01Z"))
        await scheduler.tick()
        clock.set(utc("2026-05-01T12:00:01Z"))
        await scheduler.tick()
        let all = try jobs()
        #expect(all.map(\.state) == [.cancelled, .queued])
        #expect(all[0].error?.contains("concurrency: replace") == true)
    }

    @Test("concurrency allow starts a second run beside the first")
    func allow() async throws {
        _ = try hourly(.none, .allow)
        let scheduler = makeScheduler()
        clock.set(utc("2026-05-01T11:00:01Z"))
        await scheduler.tick()
        clock.set(utc("2026-05-01T12:00:01Z"))
        await scheduler.tick()
        #expect(try jobs().map(\.state) == [.queued, .queued])
    }

    @Test("a restarted scheduler continues from the persisted last run")
    func restart() async throws {
        // allow: the first run's job stays queued here (no runner loop), which must not block the catch-up.
        _ = try hourly(.one, .allow)
        clock.set(utc("2026-05-01T11:00:01Z"))
        #expect(await makeScheduler().tick().count == 1)
        // A new scheduler over the same database, as after a restart.
        clock.set(utc("2026-05-01T11:40:00Z"))
        #expect(await makeScheduler().tick().isEmpty)
        clock.set(utc("2026-05-01T13:10:00Z"))
        let resumed = await makeScheduler().tick()
        #expect(resumed.count == 1 && resumed[0].jobID != nil)
        #expect(try jobs().last?.reason.contains("2 runs missed") == true)
    }

    @Test("jitter delays the due time by a stable amount within the bound")
    func jitter() async throws {
        let schedule = try hourly(jitter: 300)
        let nominal = try #require(schedule.nextFireAt)
        let due = try #require(schedule.nextDueAt)
        #expect(due >= nominal && due <= nominal + 300_000)
        let timing = try schedule.timing()
        let date = EpochMilliseconds.date(nominal)
        #expect(timing.jitter(scheduleID: schedule.id, nominal: date) == timing.jitter(scheduleID: schedule.id, nominal: date))
        // Not yet due at the nominal time unless the jitter happens to be zero.
        clock.set(EpochMilliseconds.date(due - 1))
        #expect(await makeScheduler().tick().isEmpty)
        clock.set(EpochMilliseconds.date(due))
        #expect(await makeScheduler().tick().count == 1)
    }

    @Test("a disabled schedule does not fire; editing recomputes the next time without a catch-up")
    func disabledAndEdited() async throws {
        let schedule = try hourly(.one)
        let store = ScheduleStore(database: database)
        var settings = ScheduleSettings(cron: "0 * * * *", timeZone: "UTC", catchUp: .one)
        settings.enabled = false
        _ = try store.update(id: schedule.id, settings: settings, now: clock.now(), by: .system)
        clock.set(utc("2026-05-01T15:00:30Z"))
        #expect(await makeScheduler().tick().isEmpty)
        settings.enabled = true
        settings.cron = "30 * * * *"
        let edited = try #require(try store.update(id: schedule.id, settings: settings, now: clock.now(), by: .system))
        #expect(iso(edited.nextFireAt.map(EpochMilliseconds.date)) == "2026-05-01T15:30:00Z")
        #expect(await makeScheduler().tick().isEmpty)
    }

    @Test("run now respects forbid and leaves the timetable alone")
    func runNow() async throws {
        let schedule = try hourly(.none, .forbid)
        let scheduler = makeScheduler()
        let first = try #require(try await scheduler.runNow(id: schedule.id, by: AuditActor(actor: "tester")))
        #expect(first.jobID != nil)
        let second = try #require(try await scheduler.runNow(id: schedule.id, by: AuditActor(actor: "tester")))
        #expect(second.jobID == nil)
        #expect(try ScheduleStore(database: database).schedule(id: schedule.id)?.nextFireAt == schedule.nextFireAt)
    }
}

/// A clock that counts how often the scheduler goes to sleep (each turn of its loop sleeps once).
final class CountingClock: SchedulerClock {
    let base: ManualClock
    private let sleeps = Mutex(0)
    init(_ base: ManualClock) { self.base = base }
    var count: Int { sleeps.withLock { $0 } }
    func now() -> Date { base.now() }
    func sleep(until deadline: Date) async throws {
        sleeps.withLock { $0 += 1 }
        try await base.sleep(until: deadline)
    }
}
