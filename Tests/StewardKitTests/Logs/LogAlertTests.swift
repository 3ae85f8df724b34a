import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@testable import StewardKit

@Suite("Alerts from logs: a rule counts each host's matching lines in its window, with the states of metric rules")
struct LogAlertTests {
    @Test("the log filter: the logs page's own fields, each wrong one named")
    func filterProblems() {
        #expect(LogRuleQuery.problem("identifier=sshd&q=invalid user&priority=6") == nil)
        #expect(LogRuleQuery.problem("") == nil, "every line at error and worse")
        #expect(LogRuleQuery.problem("host=web1")?.contains("host is not a filter here") == true)
        #expect(LogRuleQuery.problem("q=a&q=b")?.contains("given twice") == true)
        #expect(LogRuleQuery.problem("priority=9")?.hasPrefix("priority:") == true)
        #expect(LogRuleQuery.problem("regex=(a+)+")?.hasPrefix("regex:") == true)
        #expect(LogRuleQuery.problem("justtext")?.contains("name=value") == true)
        // Percent escapes as in an address; a plus stays a plus (regexes need it).
        let query = LogRuleQuery.query("q=failed%20password&regex=a+b%26c", from: 0, to: 1)
        #expect(query?.text == "failed password" && query?.regex?.pattern == "a+b&c")
        var rule = AlertRule()
        rule.name = "x"
        rule.source = LogRuleQuery.source
        rule.logQuery = "unit=ssh.service&range=1h"
        rule.warnThreshold = 1
        rule.summary = "s"
        #expect(rule.problems(knownSources: [LogRuleQuery.source])["log_query"]?.contains("range is not a filter here") == true)
    }

    @Test("the built-in pack: SSH failures warn then page per host; OOM kills, I/O errors and failed units match what real hosts write")
    func pack() async throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        let store = LogStore(database: database)
        var made: [StewardKit.Host] = []
        for name in ["web1", "web2", "quiet", "unread"] {
            var settings = HostSettings()
            settings.name = name
            settings.address = "10.0.0.\(made.count + 1)"
            made.append(try hosts.create(settings, by: AuditActor(actor: "t"), now: Date()))
        }
        let (web1, web2, quiet, unread) = (made[0], made[1], made[2], made[3])
        let rules = AlertRuleStore(database: database)
        try BuiltinAlerts.ensure(rules, now: Date())
        let clock = Mutex(Date())
        let evaluator = try AlertEvaluator(
            database: database, hosts: hosts, metrics: try MetricStore(database: database), sources: [LogAlerts.source(store: store)],
            intervalSeconds: 15, logger: quietLogger, clock: { clock.withLock { $0 } })
        // Lines up to a second before the evaluator's clock (a line stamped after it would be in its future).
        let now = Int64(clock.withLock { $0 }.timeIntervalSince1970 * 1_000_000) - 1_000_000
        func line(_ seconds: Int64, _ priority: Int, _ identifier: String, _ message: String, unit: String = "") -> LogLine {
            LogLine(time: now - seconds * 1_000_000, priority: priority, unit: unit, identifier: identifier, message: message)
        }
        // web1: a password-guessing run (250 failures in the last 10 minutes, more from an hour ago that no longer count),
        // an OOM kill, a disk error and a failing unit, as the kernel, sshd and systemd write them.
        var web1Lines = (0..<250).map {
            line(Int64($0 * 2), 6, "sshd", "Failed password for invalid user admin from 203.0.113.\($0 % 50) port 4\($0) ssh2")
        }
        web1Lines += (0..<100).map { line(3600 + Int64($0), 6, "sshd", "Failed password for root from 203.0.113.9 port 22 ssh2") }
        web1Lines += [
            line(
                30, 3, "kernel",
                "Out of memory: Killed process 4242 (java) total-vm:8123456kB, anon-rss:4012345kB, file-rss:0kB, shmem-rss:0kB, UID:999"),
            line(40, 3, "kernel", "blk_update_request: I/O error, dev sda, sector 123456 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0"),
            line(50, 4, "systemd", "nginx.service: Failed with result 'exit-code'.", unit: "init.scope"),
            line(55, 3, "systemd", "Failed to start nginx.service - A high performance web server.", unit: "init.scope"),
            line(60, 6, "sshd", "Accepted publickey for deploy from 10.0.0.5 port 51234 ssh2"),
        ]
        try store.append(hostID: web1.id, source: "journal", lines: web1Lines, position: "c1")
        // web2: a typo or two; quiet: nothing matching; unread: its journal was never read.
        try store.append(
            hostID: web2.id, source: "journal",
            lines: (0..<3).map {
                line(Int64($0 * 10), 5, "sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.7")
            },
            position: "c1")
        try store.append(hostID: quiet.id, source: "journal", lines: [line(5, 6, "cron", "session opened for user root")], position: "c1")

        try await evaluator.evaluate()
        let byKey = Dictionary(try rules.all().compactMap { rule in rule.builtin.map { ($0, rule) } }, uniquingKeysWith: { a, _ in a })
        func state(_ key: String, _ host: StewardKit.Host) -> (String, String?, Double?) {
            let state = evaluator.state(rule: byKey[key]!.id, host: host.id)
            return (state?.phase.rawValue ?? "-", state?.severity?.rawValue, state?.value)
        }
        #expect(state("log_ssh_auth_failures", web1) == ("firing", "critical", 250), "the hour-old failures are outside the window")
        #expect(state("log_ssh_auth_failures", web2) == ("normal", nil, 3))
        #expect(state("log_ssh_auth_failures", quiet) == ("normal", nil, 0))
        #expect(state("log_ssh_auth_failures", unread).0 == "normal", "no log read: no data, which this pack treats as normal")
        #expect(state("log_oom_kill", web1) == ("firing", "warning", 1))
        #expect(state("log_kernel_io_errors", web1) == ("firing", "warning", 1))
        #expect(state("log_failed_units", web1) == ("firing", "warning", 2))
        #expect(state("log_oom_kill", web2) == ("normal", nil, 0))

        // Eleven minutes on, the run is outside the window: the alert resolves.
        clock.withLock { $0 = $0.addingTimeInterval(660) }
        try await evaluator.evaluate()
        #expect(state("log_ssh_auth_failures", web1).0 == "normal")
        // A rule's logs link shows its lines on that host around the moment.
        let link = LogRuleQuery.link(byKey["log_oom_kill"]!, host: "web1", at: EpochMilliseconds.from(Date()))
        #expect(link.contains("host=web1") && link.contains("regex=Out%20of%20memory") && link.contains("range=custom"))
    }

    @Test("from the logs page to a rule: the filter carried over intact, the new-rule form filled in, the API naming a wrong filter")
    func fromThePage() async throws {
        let filter = LogFilter(query: ["q": "disk 100% full", "regex": "a&b+c", "unit": "ssh.service", "priority": "4"], now: Date())
        let text = LogRuleQuery.text(filter)
        let fields = try LogRuleQuery.fields(text).get()
        #expect(fields == ["q": "disk 100% full", "regex": "a&b+c", "unit": "ssh.service", "priority": "4"], "\(text)")
        let harness = try await ServerHarness()
        let json: HTTPFields = [.contentType: "application/json"]
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/logs?priority=4&q=timeout&host=localhost", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("/alerts/rules/new?source=log_lines&amp;log_query=priority%3D4%26q%3Dtimeout"), "host stays out of the rule")
            }
            try await client.execute(uri: "/alerts/rules/new?source=log_lines&log_query=priority%3D4%26q%3Dtimeout", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("value=\"priority=4&amp;q=timeout\"") && page.contains("<option selected>log_lines</option>"))
            }
            let bad = #"{"name":"log rule","source":"log_lines","log_query":"host=web1&q=x","warn_threshold":1,"summary":"s"}"#
            try await client.execute(uri: "/api/v1/alerts/rules", method: .post, headers: json, body: ByteBuffer(string: bad)) { response in
                let errors = (try? JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any])?["errors"]
                #expect(response.status == .unprocessableContent && (errors as? [String: String])?.keys.sorted() == ["log_query"])
            }
            let good = #"{"name":"log rule","source":"log_lines","log_query":"q=timeout","warn_threshold":1,"summary":"s"}"#
            try await client.execute(uri: "/api/v1/alerts/rules", method: .post, headers: json, body: ByteBuffer(string: good)) { response in
                let rule = try? JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
                #expect(response.status == .created && rule?["log_query"] as? String == "q=timeout")
            }
        }
    }

    @Test("query strings as forms write them: a plus is a space, %2B a plus; links Steward writes read back the same")
    func formQuery() {
        let pairs = FormQuery.decode("regex=Failed+password%2B&q=a%20b&flag&=x&bad=%ZZ")
        #expect(pairs.map(\.name) == ["regex", "q", "flag", "", "bad"])
        #expect(pairs.map(\.value) == ["Failed password+", "a b", "", "x", "%ZZ"])
        let items = [URLQueryItem(name: "regex", value: "a+b c&d=e/é"), URLQueryItem(name: "host", value: "web 1")]
        let link = FormQuery.link("/logs", items)
        #expect(link.hasPrefix("/logs?") && !link.dropFirst(6).contains("+"))
        let back = FormQuery.decode(String(link.split(separator: "?", maxSplits: 1)[1]))
        #expect(back.map(\.value) == ["a+b c&d=e/é", "web 1"])
        #expect(FormQuery.link("/logs", []) == "/logs")
    }

    @Test("the panel host's logs are an admin's: a rule someone wrote reads no data there (its value could probe them); built-in rules count")
    func panelHost() async throws {
        let harness = try await ServerHarness()
        let server = harness.server
        let panel = try #require(try server.hosts.all().first { $0.transport == .local })
        let now = EpochMilliseconds.from(Date())
        try server.logs.append(
            hostID: panel.id, source: "journal",
            lines: [
                LogLine(time: (now - 5000) * 1000, priority: 6, identifier: "sshd", message: "Failed password for root from 203.0.113.9 port 22 ssh2")
            ],
            position: "p")
        let source = LogAlerts.source(store: server.logs)
        var probe = AlertRule()
        probe.source = LogRuleQuery.source
        probe.logQuery = "priority=6&regex=Failed password for r"
        probe.windowSeconds = 600
        guard case .noData = try source.observe(panel, probe, now) else {
            Issue.record("a rule someone wrote counted the panel host's lines")
            return
        }
        // A built-in rule whose filter someone changed is a rule someone wrote.
        var edited = try #require(LogAlerts.rules().first { $0.builtin == "log_ssh_auth_failures" })
        edited.logQuery = "priority=6&regex=Failed password for r"
        guard case .noData = try source.observe(panel, edited, now) else {
            Issue.record("an edited built-in rule counted the panel host's lines")
            return
        }
        var builtin = try #require(LogAlerts.rules().first { $0.builtin == "log_ssh_auth_failures" })
        builtin.id = 99
        guard case .value(let count) = try source.observe(panel, builtin, now + 1) else {
            Issue.record("the built-in rule did not count the panel host's lines")
            return
        }
        #expect(count == 1)
    }
}
