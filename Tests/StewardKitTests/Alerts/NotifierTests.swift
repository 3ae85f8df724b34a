import Crypto
import Foundation
import GRDB
import Synchronization
import Testing

@testable import StewardKit

/// Records what would be sent; the real webhook and SMTP senders are exercised against real servers in e2e.
final class RecordingSender: NotificationSending {
    let sent = Mutex<[(channel: String, subject: String, reason: String, firing: [String], resolved: [String])]>([])
    let failuresLeft = Mutex(0)

    func send(_ message: NotificationMessage, to channel: NotificationChannel) async throws {
        if failuresLeft.withLock({ left in
            defer { left = max(0, left - 1) }
            return left > 0
        }) {
            throw NotificationSender.Failure(description: "receiver down")
        }
        sent.withLock { $0.append((channel.name, message.subject, message.reason, message.firing.map(\.host), message.resolved.map(\.host))) }
    }
}

@Suite struct NotifierTests {
    final class Clock: Sendable {
        let now = Mutex(Date(timeIntervalSince1970: 1_790_000_000))
        func advance(_ seconds: Double) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
        var date: Date { now.withLock { $0 } }
    }

    struct World {
        let directory: TemporaryDirectory
        let database: DatabasePool
        let metrics: MetricStore
        let evaluator: AlertEvaluator
        let notifier: Notifier
        let sender: RecordingSender
        let clock: Clock
        let hosts: [StewardKit.Host]
        let rule: AlertRule

        func set(_ values: [Double]) throws {
            for (host, value) in zip(hosts, values) {
                let ids = try metrics.resolve(hostID: host.id, series: [(HostSummary.memoryPercent, "", .gauge)])
                metrics.append(time: EpochMilliseconds.from(clock.date), series: ids, values: [value])
            }
        }

        /// One evaluation and one notifier round, then `seconds` later.
        func step(_ values: [Double], wait seconds: Double = 15) async throws {
            try set(values)
            try await evaluator.evaluate()
            try await notifier.tick()
            clock.advance(seconds)
        }

        var sent: [(channel: String, subject: String, reason: String, firing: [String], resolved: [String])] { sender.sent.withLock { $0 } }
    }

    func world(groupWait: Int = 30, groupInterval: Int = 60, repeatSeconds: Int = 600) throws -> World {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let hostStore = HostStore(database: database)
        let hosts = try ["web-01", "web-02"].map { name in
            var settings = HostSettings()
            settings.name = name
            settings.address = "10.0.0.\(name.last!)"
            settings.groups = name == "web-01" ? ["web", "patch_tuesday"] : ["web"]
            return try hostStore.create(settings, by: AuditActor(actor: "t"), now: Date())
        }
        let clock = Clock()
        let metrics = try MetricStore(database: database)
        var rule = AlertRule()
        rule.name = "Memory"
        rule.metric = HostSummary.memoryPercent
        rule.aggregation = .last
        rule.windowSeconds = 30
        rule.warnThreshold = 90
        rule.labels = "team=ops"
        rule.repeatSeconds = repeatSeconds
        rule.summary = "{{host}} memory {{value}} %"
        let saved = try AlertRuleStore(database: database).create(rule, by: AuditActor(actor: "t"), now: Date())
        let evaluator = try AlertEvaluator(
            database: database, hosts: hostStore, metrics: metrics, sources: [], intervalSeconds: 15, logger: quietLogger, clock: { clock.date })
        let channels = NotificationChannelStore(database: database, masterKey: SymmetricKey(size: .bits256))
        var channel = NotificationChannel()
        channel.name = "ops"
        channel.url = "http://127.0.0.1:9/hook"
        channel.matchLabels = "team=ops"
        channel.groupWaitSeconds = groupWait
        channel.groupIntervalSeconds = groupInterval
        channel.secret = "hmac"
        _ = try channels.save(channel, by: AuditActor(actor: "t"), now: Date())
        var other = channel
        other.name = "dba"
        other.matchLabels = "team=dba"
        _ = try channels.save(other, by: AuditActor(actor: "t"), now: Date())
        let sender = RecordingSender()
        let notifier = Notifier(
            database: database, evaluator: evaluator, channels: channels, sender: sender, baseURL: "https://panel.example.com", logger: quietLogger,
            clock: { clock.date })
        return World(
            directory: directory, database: database, metrics: metrics, evaluator: evaluator, notifier: notifier, sender: sender, clock: clock,
            hosts: hosts, rule: saved)
    }

    @Test func groupsWaitThenSpaceOutThenRepeatThenResolve() async throws {
        let world = try world()
        try await world.step([95, 50])  // web-01 fires; group wait starts
        #expect(world.sent.isEmpty)
        try await world.step([95, 95])  // web-02 joins within the wait
        try await world.step([95, 95])  // 30 s after the first change: one message for both
        #expect(world.sent.count == 1)
        #expect(world.sent[0].firing.sorted() == ["web-01", "web-02"] && world.sent[0].reason == "new" && world.sent[0].channel == "ops")
        try await world.step([50, 95])  // web-01 resolves; group interval (60 s) not over yet
        #expect(world.sent.count == 1)
        for _ in 0..<4 { try await world.step([50, 95]) }
        #expect(world.sent.count == 2)
        #expect(world.sent[1].reason == "changed" && world.sent[1].firing == ["web-02"] && world.sent[1].resolved == ["web-01"])
        // Still firing: repeated after repeat_seconds (600 s), not before.
        let before = world.sent.count
        for _ in 0..<30 { try await world.step([50, 95]) }
        #expect(world.sent.count == before)
        for _ in 0..<12 { try await world.step([50, 95]) }
        #expect(world.sent.count == before + 1 && world.sent.last?.reason == "repeat")
        // Everything clears: a resolved message.
        for _ in 0..<6 { try await world.step([50, 50]) }
        #expect(world.sent.last?.reason == "resolved" && world.sent.last?.firing.isEmpty == true && world.sent.last?.resolved == ["web-02"])
        #expect(world.sent.allSatisfy { $0.channel == "ops" }, "the dba channel does not match team=ops")
    }

    @Test func aRestartDoesNotResendAndFailedDeliveriesAreRetried() async throws {
        let world = try world(groupWait: 0)
        world.sender.failuresLeft.withLock { $0 = 2 }
        try await world.step([95, 50], wait: 1)
        #expect(world.sent.isEmpty)  // first attempt failed
        world.clock.advance(10)
        try await world.notifier.tick()  // second attempt fails too
        world.clock.advance(25)
        try await world.notifier.tick()  // third succeeds
        #expect(world.sent.count == 1)
        let attempts = try await world.database.read { db in try Int.fetchOne(db, sql: "SELECT attempts FROM notification_deliveries") }
        #expect(attempts == 3)
        // A new notifier over the same database (a restart) sends nothing new for the same firing alert.
        let restarted = Notifier(
            database: world.database, evaluator: world.evaluator, channels: world.notifier.channels, sender: world.sender,
            baseURL: "https://panel.example.com", logger: quietLogger, clock: { world.clock.date })
        try await restarted.tick()
        #expect(world.sent.count == 1)
    }

    @Test func silencesMuteNotificationsButNotEvaluation() async throws {
        let world = try world(groupWait: 0)
        var silence = Silence()
        silence.matchers = "host=web-*,rule=Memory"
        silence.comment = "resizing"
        silence.startsAt = EpochMilliseconds.from(world.clock.date)
        silence.endsAt = silence.startsAt + 3_600_000
        _ = try SilenceStore(database: world.database).create(silence, by: AuditActor(actor: "t"), now: Date())
        try await world.step([95, 95])
        #expect(world.sent.isEmpty)
        #expect(world.evaluator.state(rule: world.rule.id, host: world.hosts[0].id)?.phase == .firing)
        world.clock.advance(3600)
        try await world.step([95, 95])
        #expect(world.sent.count == 1)
    }

    @Test func maintenanceWindowsMuteTheirGroupWhileOpen() async throws {
        let world = try world(groupWait: 0)
        // 1_790_000_000 is 2026-09-21 14:13:20 UTC: a window opening daily at 14:00 for 30 minutes is open.
        var window = MaintenanceWindow()
        window.name = "Patching"
        window.hostGroup = "patch_tuesday"
        window.cron = "0 14 * * *"
        window.durationMinutes = 30
        #expect(window.problems().isEmpty)
        #expect(window.isOpen(at: world.clock.date))
        #expect(!window.isOpen(at: world.clock.date.addingTimeInterval(20 * 60)))
        _ = try MaintenanceWindowStore(database: world.database).create(window, by: AuditActor(actor: "t"), now: Date())
        try await world.step([95, 95], wait: 1)
        #expect(world.sent.count == 1 && world.sent[0].firing == ["web-02"], "web-01 is in maintenance")
        world.clock.advance(20 * 60)  // the window closed: web-01 joins the group
        try await world.step([95, 95])
        #expect(world.sent.count == 2 && world.sent[1].firing.sorted() == ["web-01", "web-02"])
        var bad = MaintenanceWindow()
        bad.cron = "61 * * * *"
        bad.timeZone = "Mars/Olympus"
        bad.durationMinutes = 0
        #expect(Set(bad.problems().keys) == ["name", "host_group", "cron", "duration_minutes", "time_zone"])
    }

    @Test func hostDownInhibitsTheHostsOtherAlerts() async throws {
        let world = try world(groupWait: 0)
        var down = try #require(BuiltinAlerts.rules().first { $0.builtin == "host_down" })
        down.forSeconds = 0
        down.labels = "team=ops"
        _ = try AlertRuleStore(database: world.database).create(down, by: AuditActor(actor: "t"), now: Date())
        for (host, up) in zip(world.hosts, [0.0, 1.0]) {
            let ids = try world.metrics.resolve(hostID: host.id, series: [(HostSummary.up, "", .gauge)])
            world.metrics.append(time: EpochMilliseconds.from(world.clock.date) - 1000, series: ids, values: [up])
        }
        // Both hosts are over the memory threshold, but web-01 is down: only its host-down alert goes out.
        try await world.step([95, 95])
        let memory = world.sent.filter { $0.subject.contains("Memory") }
        let hostDown = world.sent.filter { $0.subject.contains("Host down") }
        #expect(memory.count == 1 && memory[0].firing == ["web-02"], "\(world.sent)")
        #expect(hostDown.count == 1 && hostDown[0].firing == ["web-01"])
        #expect(
            world.evaluator.state(rule: world.rule.id, host: world.hosts[0].id)?.phase == .firing, "inhibition mutes, it does not stop evaluation")
    }
}
