import Foundation
import GRDB
import Synchronization
import Testing

@testable import StewardKit

@Suite struct AlertStateMachineTests {
    func rule(_ configure: (inout AlertRule) -> Void = { _ in }) -> AlertRule {
        var rule = AlertRule()
        rule.name = "disk"
        rule.metric = "x"
        rule.warnThreshold = 80
        rule.warnClear = 75
        rule.critThreshold = 90
        rule.critClear = 85
        rule.summary = "s"
        configure(&rule)
        return rule
    }

    /// Feed observations one evaluation (15 s) apart; returns the phases and severities seen.
    func run(_ rule: AlertRule, _ observations: [AlertObservation], start: AlertState? = nil) -> [String] {
        var state = start ?? AlertState(since: 0)
        var seen: [String] = []
        for (index, observation) in observations.enumerated() {
            state = AlertStateMachine.next(state, observation, rule: rule, now: Int64(index + 1) * 15_000)
            seen.append(state.phase.rawValue + (state.severity.map { ":" + $0.rawValue } ?? ""))
        }
        return seen
    }

    @Test func forHoldsAnAlertInPendingUntilTheConditionHasLasted() {
        let phases = run(rule { $0.forSeconds = 30 }, [.value(50), .value(82), .value(83), .value(84), .value(70)])
        #expect(phases == ["normal", "pending:warning", "pending:warning", "firing:warning", "normal"])
        // A blip shorter than `for` never fires.
        #expect(
            run(rule { $0.forSeconds = 30 }, [.value(82), .value(50), .value(82), .value(50)]) == [
                "pending:warning", "normal", "pending:warning", "normal",
            ])
    }

    @Test func hysteresisKeepsALevelUntilItsClearLevel() {
        // Enters warning at 80, stays while above 75; critical at 90, stays while above 85.
        let phases = run(rule(), [.value(80), .value(77), .value(76), .value(91), .value(86), .value(84), .value(74)])
        #expect(
            phases == [
                "firing:warning", "firing:warning", "firing:warning", "firing:critical", "firing:critical", "firing:warning", "normal",
            ])
        // Without clear levels the same values flap.
        let flapping = run(
            rule {
                $0.warnClear = nil
                $0.critClear = nil
            }, [.value(80), .value(79), .value(80)])
        #expect(flapping == ["firing:warning", "normal", "firing:warning"])
        // Below-threshold rules mirror it.
        let below = rule {
            $0.comparison = .below
            $0.warnThreshold = 20
            $0.warnClear = 25
            $0.critThreshold = 10
            $0.critClear = 12
        }
        #expect(
            run(below, [.value(30), .value(19), .value(24), .value(9), .value(11), .value(13), .value(26)]) == [
                "normal", "firing:warning", "firing:warning", "firing:critical", "firing:critical", "firing:warning", "normal",
            ])
    }

    @Test func keepFiringForHoldsThroughRecoveringAndRefiresWithoutANewPending() {
        let phases = run(
            rule {
                $0.forSeconds = 15
                $0.keepFiringSeconds = 45
            },
            [.value(95), .value(95), .value(10), .value(10), .value(95), .value(10), .value(10), .value(10)])
        #expect(
            phases == [
                "pending:critical", "firing:critical", "recovering:critical", "recovering:critical", "firing:critical", "recovering:critical",
                "recovering:critical", "normal",
            ])
    }

    @Test func noDataFollowsThePolicyAndErrorsAreTheirOwnState() {
        #expect(run(rule(), [.value(95), .noData, .value(50)]) == ["firing:critical", "nodata", "normal"])
        #expect(run(rule { $0.noData = .ok }, [.value(95), .noData]) == ["firing:critical", "normal"])
        #expect(run(rule { $0.noData = .alerting }, [.noData, .noData]) == ["firing:critical", "firing:critical"])
        #expect(run(rule { $0.noData = .keep }, [.value(95), .noData, .noData]) == ["firing:critical", "firing:critical", "firing:critical"])
        var state = AlertState(since: 0)
        state = AlertStateMachine.next(state, .failure("database is locked"), rule: rule(), now: 15_000)
        #expect(state.phase == .error && state.detail == "database is locked")
        state = AlertStateMachine.next(state, .value(10), rule: rule(), now: 30_000)
        #expect(state.phase == .normal && state.detail == nil)
    }

    @Test func validationExplainsEveryField() {
        var bad = AlertRule()
        bad.metric = "not a metric"
        bad.warnThreshold = 90
        bad.critThreshold = 80
        bad.warnClear = 95
        bad.matchers = "mountpoint"
        bad.runbookURL = "javascript:alert(1)"
        bad.aggregation = .predictLinear
        bad.scopeGroups = ["web servers"]
        let errors = bad.problems(knownSources: ["job_failed"])
        for key in ["name", "metric", "crit_threshold", "warn_clear", "matchers", "runbook_url", "horizon_seconds", "scope_groups", "summary"] {
            #expect(errors[key] != nil, "\(key) not reported: \(errors)")
        }
        #expect(rule().problems(knownSources: []).isEmpty)
    }
}

@Suite struct AlertEvaluatorTests {
    final class Clock: Sendable {
        let now = Mutex(Date(timeIntervalSince1970: 1_790_000_000))
        func advance(_ seconds: Double) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
        var milliseconds: Int64 { EpochMilliseconds.from(now.withLock { $0 }) }
    }

    @Test func metricRulesFireAndStatesSurviveARestartWithoutRepeatingTransitions() async throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        var settings = HostSettings()
        settings.name = "web-01"
        settings.address = "10.0.0.1"
        settings.groups = ["web"]
        let web = try hosts.create(settings, by: AuditActor(actor: "t"), now: Date())
        settings.name = "db-01"
        settings.groups = ["db"]
        let db = try hosts.create(settings, by: AuditActor(actor: "t"), now: Date())
        let metrics = try MetricStore(database: database)
        let clock = Clock()
        let rules = AlertRuleStore(database: database)
        var rule = AlertRule()
        rule.name = "Disk"
        rule.metric = HostSummary.filesystemPercent
        rule.aggregation = .max
        rule.windowSeconds = 60
        rule.warnThreshold = 80
        rule.critThreshold = 90
        rule.forSeconds = 30
        rule.scopeGroups = ["web"]
        rule.summary = "{{host}} disk {{value}}"
        let saved = try rules.create(rule, by: AuditActor(actor: "t"), now: Date())
        func ingest(_ host: StewardKit.Host, _ value: Double) throws {
            let ids = try metrics.resolve(hostID: host.id, series: [(HostSummary.filesystemPercent, "", .gauge)])
            metrics.append(time: clock.milliseconds, series: ids, values: [value])
        }
        let evaluator = try AlertEvaluator(
            database: database, hosts: hosts, metrics: metrics, sources: BuiltinAlerts.sources(database: database), intervalSeconds: 15,
            logger: quietLogger, clock: { clock.now.withLock { $0 } })
        var phases: [String] = []
        for value in [50.0, 95, 95, 95, 95] {
            try ingest(web, value)
            try ingest(db, 99)  // out of scope: never evaluated
            try await evaluator.evaluate()
            phases.append(evaluator.state(rule: saved.id, host: web.id)?.phase.rawValue ?? "-")
            clock.advance(15)
        }
        #expect(phases == ["normal", "pending", "pending", "firing", "firing"])
        #expect(evaluator.state(rule: saved.id, host: db.id) == nil)
        #expect(evaluator.state(rule: saved.id, host: web.id)?.severity == .critical)

        // A restart keeps the firing state and records no new transition for it.
        let restarted = try AlertEvaluator(
            database: database, hosts: hosts, metrics: metrics, sources: [], intervalSeconds: 15, logger: quietLogger,
            clock: { clock.now.withLock { $0 } })
        #expect(restarted.state(rule: saved.id, host: web.id)?.phase == .firing)
        try ingest(web, 95)
        #expect(try await restarted.evaluate().isEmpty)
        let history = try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT from_state, to_state, severity FROM alert_history ORDER BY id").map {
                "\($0["from_state"] as String)>\($0["to_state"] as String):\(($0["severity"] as String?) ?? "")"
            }
        }
        #expect(history == ["normal>pending:critical", "pending>firing:critical"])

        // Pausing the rule resolves what it raised.
        var paused = saved
        paused.enabled = false
        _ = try rules.update(id: saved.id, paused, by: AuditActor(actor: "t"), now: Date())
        let resolved = try await restarted.evaluate()
        #expect(resolved.map(\.to.phase) == [.normal])
    }

    @Test func predictLinearAndTheBuiltinPack() async throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let rules = AlertRuleStore(database: database)
        try BuiltinAlerts.ensure(rules, now: Date())
        try BuiltinAlerts.ensure(rules, now: Date())  // idempotent
        let installed = try rules.all()
        #expect(installed.count == BuiltinAlerts.rules().count)
        let sources = Set(
            (BuiltinAlerts.sources(database: database) + [
                BuiltinAlerts.panelDisk(DiskSpace(path: "/", reserveMB: 1)), LogAlerts.source(store: LogStore(database: database)),
            ]).map(\.name))
        for rule in installed { #expect(rule.problems(knownSources: sources).isEmpty, "\(rule.name): \(rule.problems(knownSources: sources))") }

        // A filesystem growing 1 % per 10 minutes from 70 %: in 24 hours it would be far past 100 %.
        let metrics = try MetricStore(database: database)
        let host = try #require(
            try HostStore(database: database).all().first
                ?? HostStore(database: database).create(
                    {
                        var s = HostSettings()
                        s.name = "fs-01"
                        s.address = "10.0.0.9"
                        return s
                    }(), by: AuditActor(actor: "t"), now: Date()))
        let ids = try metrics.resolve(hostID: host.id, series: [(HostSummary.filesystemPercent, "", .gauge)])
        let now: Int64 = 1_790_000_000_000
        for step in 0..<360 { metrics.append(time: now - 6 * 3_600_000 + Int64(step) * 60_000, series: ids, values: [70 + Double(step) / 10]) }
        let rule = try #require(installed.first { $0.builtin == "filesystem_full_24h" })
        guard case .value(let predicted) = try MetricObservation.observe(rule, host: host, store: metrics, now: now) else {
            Issue.record("no prediction")
            return
        }
        // Slope 0.1 %/min: the line's value 24 h after now is about 105.9 + 144 = 249.9.
        #expect(abs(predicted - 249.9) < 1, "\(predicted)")
    }
}
