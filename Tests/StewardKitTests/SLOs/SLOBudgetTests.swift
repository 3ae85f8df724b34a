import Foundation
import GRDB
import Testing

@testable import StewardKit

/// A database with one host and a check whose probe_success samples the test writes, every 10 s.
private struct Fixture {
    let directory = TemporaryDirectory()
    let database: DatabasePool
    let metrics: MetricStore
    let hosts: HostStore
    let host: StewardKit.Host
    let check: Check
    let series: Int64
    let who = AuditActor(actor: "tester")

    init(start: Date) throws {
        database = try makeDatabase(directory)
        metrics = try MetricStore(database: database)
        hosts = HostStore(database: database)
        var settings = HostSettings()
        settings.name = "shop1"
        settings.address = "192.0.2.10"
        host = try hosts.create(settings, by: who, now: start)
        var check = Check()
        check.name = "shop"
        check.target = "http://192.0.2.10/health"
        check.hostID = host.id
        self.check = try CheckStore(database: database).save(check, by: who, now: start)
        series = try metrics.resolve(hostID: host.id, series: [("probe_success", self.check.seriesLabels, .gauge)])[0]
    }

    /// Runs every 10 s from `from` (inclusive) to `to` (exclusive); `bad` says which fail.
    func probe(from: Date, to: Date, bad: (Int64) -> Bool) {
        var time = EpochMilliseconds.from(from)
        var samples: [(series: Int64, time: Int64, value: Double)] = []
        while time < EpochMilliseconds.from(to) {
            samples.append((series, time, bad(time) ? 0 : 1))
            time += 10_000
        }
        _ = metrics.append(samples)
    }

    func engine() -> SLOEngine { SLOEngine(database: database, metrics: metrics, hosts: hosts, logger: quietLogger) }

    func slo(_ window: SLO.Window = .days7, objective: Double = 99, now: Date) throws -> SLO {
        var slo = SLO()
        slo.name = "shop-\(window.rawValue)"
        slo.sli = .probe
        slo.checkID = check.id
        slo.objective = objective
        slo.window = window
        slo.scopeHosts = ["shop1"]
        return try SLOStore(database: database).save(slo, by: who, now: now)
    }
}

@Suite("SLOs: error budgets and burn rates on a fake clock")
struct SLOBudgetTests {
    static let start = utc("2026-11-20T10:00:00Z")
    static func minute(_ n: Int, _ seconds: Int = 0) -> Date { start.addingTimeInterval(Double(n * 60 + seconds)) }

    @Test("windows count whole minutes before the current one and the minute so far; a minute at the edge is out, the one after it in")
    func windowsAndBudget() throws {
        let fixture = try Fixture(start: Self.start)
        let startMS = EpochMilliseconds.from(Self.start)
        // Minutes 100-109 fail entirely (60 runs), and minute 114, just before the 5-minute window at 120:25.
        fixture.probe(from: Self.start, to: Self.minute(120, 25)) { time in
            let minute = (time - startMS) / 60_000
            return (100...109).contains(minute) || minute == 114
        }
        let slo = try fixture.slo(now: Self.start)
        let engine = fixture.engine()
        let status = try #require(try engine.evaluate(at: Self.minute(120, 25)).first)
        // 120 whole minutes of 6 runs and 3 runs of the minute under way (at :00, :10, :20).
        #expect(status.events == SLOEvents(good: 723 - 66, total: 723))
        #expect(status.windows["5m"] == SLOEvents(good: 33, total: 33))
        #expect(status.windows["30m"] == SLOEvents(good: 183 - 66, total: 183))
        #expect(status.windows["1h"] == SLOEvents(good: 363 - 66, total: 363))
        #expect(status.windows["6h"] == SLOEvents(good: 723 - 66, total: 723))
        let burn = status.burnRates
        #expect(abs(burn["1h"]! - (66.0 / 363) / 0.01) < 1e-9)
        #expect(abs(burn["30m"]! - (66.0 / 183) / 0.01) < 1e-9)
        #expect(burn["5m"] == 0)
        // 1 - 66 / (1 % of 723): the budget is overspent about 8 times.
        #expect(abs(status.remaining - (1 - 66.0 / 7.23)) < 1e-9)
        #expect(status.spent)
        #expect(status.timeLeftSeconds == 0)
        #expect(abs(status.achieved! - 657.0 / 723 * 100) < 1e-9)
        // 1h/5m does not page (the last 5 minutes are clean); 6h/30m does (36× and 9.1×, both above 6).
        #expect(status.firing?.long == "6h")
        #expect(status.firing?.factor == 6)
        #expect(status.firing?.severity == .critical)
        #expect(slo.budgetRatio == 0.01)

        // A minute later, the minute that ended is stored and the windows move by one.
        fixture.probe(from: Self.minute(120, 30), to: Self.minute(121, 25)) { _ in false }
        let later = try #require(try engine.evaluate(at: Self.minute(121, 25)).first)
        #expect(later.windows["5m"] == SLOEvents(good: 33, total: 33))
        #expect(later.windows["1h"] == SLOEvents(good: 363 - 66, total: 363))
        #expect(later.events == SLOEvents(good: 729 - 66, total: 729))
        let rows = try fixture.database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM slo_minutes WHERE slo_id = ?", arguments: [slo.id])
        }
        // The first cycle counts the day before it from the stored samples; the second adds the minute that ended.
        #expect(rows == 1441)
        // A fresh engine (a restart) reads the running sums back and gives the same answer.
        let again = try #require(try fixture.engine().evaluate(at: Self.minute(121, 25)).first)
        #expect(again.events == later.events)
        #expect(again.windows == later.windows)
    }

    @Test("a calendar month starts at 00:00 UTC on the 1st: failures the evening before do not count against it")
    func calendarMonth() throws {
        let monthStart = utc("2026-12-01T00:00:00Z")
        let fixture = try Fixture(start: monthStart.addingTimeInterval(-3600))
        let boundary = EpochMilliseconds.from(monthStart)
        fixture.probe(from: monthStart.addingTimeInterval(-3600), to: monthStart.addingTimeInterval(1805)) { $0 < boundary }
        _ = try fixture.slo(.month, now: monthStart.addingTimeInterval(-3600))
        let status = try #require(try fixture.engine().evaluate(at: monthStart.addingTimeInterval(1805)).first)
        #expect(status.windowStart == boundary)
        #expect(status.windowLength == 31 * 86_400_000)
        #expect(status.events == SLOEvents(good: 181, total: 181))
        #expect(status.remaining == 1)
        // The burn windows reach back over the boundary: the hour holds 30 failed minutes.
        #expect(status.windows["1h"] == SLOEvents(good: 181, total: 361))
        let november = SLOMath.month(containing: boundary - 1)
        #expect(november.start == EpochMilliseconds.from(utc("2026-11-01T00:00:00Z")))
        #expect(november.end == boundary)
    }

    @Test("ratio, latency and availability SLIs count the events their series hold")
    func otherKinds() throws {
        let fixture = try Fixture(start: Self.start)
        let startMS = EpochMilliseconds.from(Self.start)
        let names: [(String, String)] = [
            ("http_requests_total", "code=\"200\""), ("http_requests_total", "code=\"500\""), ("api_latency_seconds_bucket", "le=\"0.3\""),
            ("api_latency_seconds_bucket", "le=\"+Inf\""), ("api_latency_seconds_count", ""), (HostSummary.up, ""),
        ]
        let ids = try fixture.metrics.resolve(hostID: fixture.host.id, series: names.map { ($0.0, $0.1, .counter) })
        // Every 15 s for two hours: 9.9 good and 0.1 failed requests a second, 9 of every 10 under 0.3 s; the host
        // is down from minute 30 to 39.
        for step in 0...480 {
            let time = startMS + Int64(step) * 15_000
            let seconds = Double(step) * 15
            let minute = step / 4
            let values = [9.9 * seconds, 0.1 * seconds, 9 * seconds, 10 * seconds, 10 * seconds, (30...39).contains(minute) ? 0 : 1]
            _ = fixture.metrics.append(zip(ids, values).map { ($0, time, $1) })
        }
        let store = SLOStore(database: fixture.database)
        var ratio = SLO()
        ratio.name = "requests"
        ratio.sli = .ratio
        ratio.ratioCounts = .bad
        ratio.eventsQuery = "sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))"
        ratio.totalQuery = "sum(rate(http_requests_total[{{.window}}]))"
        ratio.objective = 99.5
        _ = try store.save(ratio, by: fixture.who, now: Self.start)
        var latency = SLO()
        latency.name = "latency"
        latency.sli = .latency
        latency.histogram = "api_latency_seconds"
        latency.thresholdSeconds = 0.3
        latency.objective = 95
        latency.scopeHosts = ["shop1"]
        _ = try store.save(latency, by: fixture.who, now: Self.start)
        var availability = SLO()
        availability.name = "up"
        availability.sli = .availability
        availability.scopeHosts = ["shop1"]
        availability.objective = 99
        _ = try store.save(availability, by: fixture.who, now: Self.start)
        let statuses = Dictionary(
            uniqueKeysWithValues: try fixture.engine().evaluate(at: Self.minute(120, 1)).map { ($0.slo.name, $0) })

        // 600 requests a minute, 6 of them failed: over the hour, 1 % against a 0.5 % budget, a burn rate of 2.
        let requests = try #require(statuses["requests"]?.windows["1h"])
        #expect(abs(requests.total - 36_010) < 1, "\(requests)")
        #expect(abs(requests.errorRatio! - 0.01) < 1e-9)
        #expect(abs(statuses["requests"]!.burnRates["1h"]! - 2) < 1e-6)
        // One request in ten is slower than 0.3 s: 10 % bad against a 5 % budget.
        #expect(abs(statuses["latency"]!.windows["1h"]!.errorRatio! - 0.1) < 1e-9)
        #expect(abs(statuses["latency"]!.burnRates["1h"]! - 2) < 1e-6)
        // Scrapes: 4 a minute for 120 minutes and the one at 120:00; 40 found the host down.
        #expect(statuses["up"]?.events == SLOEvents(good: 441, total: 481))
        #expect(statuses["up"]?.windows["1h"] == SLOEvents(good: 241, total: 241))
        #expect(statuses.values.allSatisfy { $0.problem == nil })
    }

    @Test("budget arithmetic: remaining share, burn rate and time left as the SRE workbook computes them")
    func arithmetic() {
        let events = SLOEvents(good: 99_950, total: 100_000)
        // 99.9 %: 100 of 100,000 may fail; 50 did.
        #expect(abs(SLOMath.remaining(events, budgetRatio: 0.001) - 0.5) < 1e-12)
        #expect(abs(SLOMath.burnRate(events, budgetRatio: 0.001)! - 0.5) < 1e-12)
        // Half the budget left, burning at 2× over 30 days: 7.5 days.
        #expect(SLOMath.timeLeft(remaining: 0.5, burnRate: 2, windowMilliseconds: 30 * 86_400_000) == 7.5 * 86400)
        #expect(SLOMath.timeLeft(remaining: 0.5, burnRate: 0, windowMilliseconds: 30 * 86_400_000) == nil)
        #expect(SLOMath.remaining(SLOEvents(), budgetRatio: 0.001) == 1)
        #expect(SLOMath.burnRate(SLOEvents(), budgetRatio: 0.001) == nil)
        // Both windows of a pair must exceed the factor.
        #expect(SLOMath.firing(["1h": 20, "5m": 10]) == nil)
        #expect(SLOMath.firing(["1h": 20, "5m": 15])?.factor == 14.4)
        #expect(SLOMath.firing(["1d": 3.5, "2h": 4])?.severity == .warning)
        #expect(SLOMath.firing(["3d": 1.01, "6h": 1.2])?.factor == 1)
        #expect(SLOMath.firing(["3d": 1, "6h": 1.2]) == nil)
    }

    @Test("the page rule fires through the alert states with the factor and windows and resolves; the ticket rule stays")
    func burnRateAlert() throws {
        let fixture = try Fixture(start: Self.start)
        let startMS = EpochMilliseconds.from(Self.start)
        // 5 % of runs fail from minute 60 to 90: 50× a 99.9 % objective's budget.
        fixture.probe(from: Self.start, to: Self.minute(90)) { time in
            let index = (time - startMS) / 10_000
            return time >= startMS + 3_600_000 && index % 20 == 0
        }
        let slo = try fixture.slo(objective: 99.9, now: Self.start)
        let engine = fixture.engine()
        let clock = ManualClock(Self.minute(90))
        let evaluator = try AlertEvaluator(
            database: fixture.database, hosts: fixture.hosts, metrics: fixture.metrics, sources: [SLOAlerts.source(engine: engine)],
            intervalSeconds: 60, logger: quietLogger, clock: { clock.now() })
        try engine.evaluate(at: Self.minute(90))
        let page = try #require(try SLOStore(database: fixture.database).slo(id: slo.id)?.alertRuleID)
        let ticket = try #require(try AlertRuleStore(database: fixture.database).all().first { $0.builtin == "slo:\(slo.id):ticket" }?.id)
        let fired = try evaluator.evaluateNow()
        #expect(fired.count == 2)
        let state = try #require(evaluator.state(rule: page, host: fixture.host.id))
        #expect(state.phase == .firing)
        #expect(state.severity == .critical)
        #expect(state.labels.contains("factor=\"14.4\""))
        #expect(state.labels.contains("long_window=\"1h\""))
        // The 1 h window's burn: 1/20 of the runs failed over the last 30 minutes of it → 0.05 × 30/60 / 0.001 = 25.
        #expect(abs((state.value ?? 0) - 25) < 0.2)
        #expect(evaluator.state(rule: ticket, host: fixture.host.id)?.severity == .warning)

        // Then 40 clean minutes: no page pair holds (the page resolves), the day-long pairs still do (the ticket stays).
        fixture.probe(from: Self.minute(90), to: Self.minute(130)) { _ in false }
        clock.set(Self.minute(130))
        try engine.evaluate(at: Self.minute(130))
        _ = try evaluator.evaluateNow()
        #expect(evaluator.state(rule: page, host: fixture.host.id)?.phase == .normal)
        let stays = try #require(evaluator.state(rule: ticket, host: fixture.host.id))
        #expect(stays.phase == .firing)
        #expect(stays.labels.contains("long_window=\"1d\""))

        // Turning the SLO's alerts off resolves the ticket too.
        var quiet = try #require(try SLOStore(database: fixture.database).slo(id: slo.id))
        quiet.alerting = false
        _ = try SLOStore(database: fixture.database).save(quiet, by: fixture.who, now: Self.minute(130))
        _ = try evaluator.evaluateNow()
        #expect(evaluator.state(rule: ticket, host: fixture.host.id)?.phase == .normal)
        func history(_ rule: Int64) throws -> [String] {
            try fixture.database.read { db in
                try String.fetchAll(
                    db, sql: "SELECT to_state || ':' || COALESCE(severity, '') FROM alert_history WHERE rule_id = ? ORDER BY id", arguments: [rule])
            }
        }
        #expect(try history(page) == ["firing:critical", "normal:critical"])
        #expect(try history(ticket) == ["firing:warning", "normal:warning"])
    }

    @Test("validation names each wrong field, and the rule follows the SLO")
    func validation() throws {
        let fixture = try Fixture(start: Self.start)
        var slo = SLO()
        slo.name = " bad name!"
        slo.sli = .ratio
        slo.eventsQuery = "sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}])"
        slo.totalQuery = ""
        slo.objective = 100
        slo.scopeHosts = ["nope"]
        slo.scopeGroups = ["ghosts"]
        let errors = try SLOStore(database: fixture.database).problems(slo)
        #expect(Set(errors.keys) == ["name", "events_query", "total_query", "objective", "hosts", "groups"])
        #expect(errors["objective"]?.contains("100 % leaves no error budget") == true)
        slo = SLO()
        slo.name = "api-latency"
        slo.sli = .latency
        slo.histogram = "http_request_duration_seconds_bucket"
        slo.matchers = "job=api"
        let latency = try SLOStore(database: fixture.database).problems(slo)
        #expect(Set(latency.keys) == ["histogram", "matchers", "threshold_seconds"])
        #expect(latency["histogram"]?.contains("http_request_duration_seconds") == true)
        slo = SLO()
        slo.name = "fleet-up"
        slo.sli = .availability
        #expect(try SLOStore(database: fixture.database).problems(slo)["hosts"] != nil)
        slo.scopeHosts = ["shop1"]
        let saved = try SLOStore(database: fixture.database).save(slo, by: fixture.who, now: Self.start)
        let ruleID = try #require(saved.alertRuleID)
        let rule = try #require(try AlertRuleStore(database: fixture.database).rule(id: ruleID))
        #expect(rule.builtin == "slo:\(saved.id):page")
        #expect(rule.severity == .critical)
        #expect(rule.scopeHosts == ["shop1"])
        #expect(rule.source == "slo")
        #expect(try SLOStore(database: fixture.database).delete(id: saved.id, by: fixture.who, now: Self.start))
        #expect(try AlertRuleStore(database: fixture.database).rule(id: rule.id) == nil)
    }

    @Test("the check is refused while an SLO measures against it, and check fields are validated")
    func checks() throws {
        let fixture = try Fixture(start: Self.start)
        let slo = try fixture.slo(now: Self.start)
        #expect(throws: Problem.self) { try CheckStore(database: fixture.database).delete(id: fixture.check.id, by: fixture.who, now: Self.start) }
        _ = try SLOStore(database: fixture.database).delete(id: slo.id, by: fixture.who, now: Self.start)
        #expect(try CheckStore(database: fixture.database).delete(id: fixture.check.id, by: fixture.who, now: Self.start))
        var check = Check()
        check.name = "x"
        check.kind = .tcp
        check.target = "db1.example.com"
        check.expectBody = "hello"
        check.timeoutSeconds = 40
        check.intervalSeconds = 30
        let errors = check.problems()
        #expect(Set(errors.keys) == ["target", "expect_body", "timeout_seconds", "host"])
        check.kind = .http
        check.target = "https://user:pw@shop.example.com/"
        check.expectStatus = "200-1000"
        #expect(check.problems()["target"]?.contains("credentials") == true)
        #expect(check.problems()["expect_status"] != nil)
        #expect(Check.statusRanges("200-299, 301") == [200...299, 301...301])
        #expect(Check.hostPort("[2001:db8::1]:22")?.port == 22)
    }
}
