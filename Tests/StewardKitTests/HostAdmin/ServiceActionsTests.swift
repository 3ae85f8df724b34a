import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Services: unit actions, unit details, timers and safe reading of hosts")
struct ServiceActionsTests {
    static let jsonHeaders: HTTPFields = [.contentType: "application/json"]

    /// An SSH host with a stored services reading of 262 units (the realistic listing, sshd and Steward), not
    /// reachable: jobs queue, and reads fail the way an unreachable host fails.
    static func readHost(_ harness: ServerHarness, name: String, trusted: Bool = false) throws -> StewardKit.Host {
        var settings = HostSettings()
        settings.name = name
        settings.address = "127.0.0.1"
        settings.sshPort = 1  // nothing listens on port 1: a connection is refused at once
        settings.sshUser = "steward"
        let host = try harness.server.hosts.create(settings, by: .system, now: Date())
        let units = ServiceListing.parseUnits(
            ServiceUnitsTests.listing().text + "ssh.service loaded active running OpenBSD Secure Shell server\n"
                + "steward.service loaded active running Steward\n")
        try HostReadingStore(database: harness.server.database).save(
            HostReading(hostID: host.id, readAt: Date(timeIntervalSince1970: 1_790_000_000), body: ServiceListing(units: units), error: nil),
            kind: ServiceListing.kind)
        if trusted {
            try harness.server.database.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO host_keys (host_id, key_type, public_key, fingerprint, status, seen_at) VALUES (?, 'ssh-ed25519', 'AAAA', 'SHA256:x', 'trusted', 0)
                        """, arguments: [host.id])
            }
        }
        return host
    }

    @Test("list-timers JSON gives each timer its next and last run; other text gives none")
    func timers() throws {
        let text = """
            [{"next":1796573452727788,"left":1796573452727788,"last":1796400000000000,"passed":0,"unit":"job7.timer","activates":"job7.service"},
             {"next":null,"left":null,"last":0,"passed":0,"unit":"fstrim.timer","activates":"fstrim.service"}]
            """
        var listing = ServiceListing(units: ServiceListing.parseUnits(ServiceUnitsTests.listing().text))
        listing.attach(timers: ServiceListing.parseTimers(text))
        let job = try #require(listing.units.first { $0.unit == "job7.timer" })
        #expect(job.nextRun == Date(timeIntervalSince1970: 1_796_573_452.727788))
        #expect(job.lastRun == Date(timeIntervalSince1970: 1_796_400_000))
        #expect(listing.units.filter { $0.nextRun != nil }.count == 1)
        #expect(ServiceListing.parseTimers("NEXT LEFT LAST PASSED UNIT ACTIVATES").isEmpty)
        // An old stored reading without the timer fields still decodes.
        let old = #"{"units":[{"unit":"a.service","load":"loaded","active":"active","sub":"running","description":"A","enabled":"enabled"}]}"#
        #expect(try JSONDecoder().decode(ServiceListing.self, from: Data(old.utf8)).units.first?.nextRun == nil)
    }

    @Test("words sent over SSH reach the remote shell as the same words, whatever they hold")
    func remoteQuoting() throws {
        let words = ["-.mount", "dev-disk-by\\x2duuid-1.swap", "getty@tty1.service", "a b", "it's", "$(id)", "`id`", "x;y|z&", "*", "", "--unit=a"]
        // The real POSIX shell splits the line the way the remote one would.
        let line = "printf '%s\\n' " + words.map(HostReader.quoteForRemoteShell).joined(separator: " ")
        let result = try ShortCommand.run(["sh", "-c", line])
        #expect(result.status == 0)
        #expect(result.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) == words)
        #expect(HostReader.quoteForRemoteShell("ssh.service") == "ssh.service")
    }

    @Test("host text loses control characters and is cut to bytes at a character boundary")
    func hostText() {
        #expect(HostText.clean("ok\u{1B}[31mred\u{7}\u{0}", maxBytes: 100) == "ok [31mred  ")
        #expect(HostText.clean("ééé", maxBytes: 5) == "éé")
        #expect(HostText.clean(String(repeating: "x", count: 10_000), maxBytes: 500).utf8.count == 500)
    }

    @Test("unit names follow systemd's alphabet; sshd, Steward and the panel host's units are guarded")
    func guards() async throws {
        let harness = try await ServerHarness()
        for name in ["ssh.service", "-.mount", "getty@tty1.service", "dev-disk-by\\x2duuid-1.swap", "a:b_c.timer"] {
            #expect(UnitGuard.isUnitName(name), "\(name)")
        }
        for name in [
            "", "nodot", ".service", "x.", "{{ lookup('pipe','id') }}.service", "a b.service", "a;b.service", "é.service",
            String(repeating: "a", count: 256) + ".service",
        ] {
            #expect(!UnitGuard.isUnitName(name), "\(name)")
        }
        var remote = try Self.readHost(harness, name: "web1")
        #expect(UnitGuard.adminReason("nginx.service", on: remote) == nil)
        #expect(UnitGuard.adminReason("sshd.service", on: remote) != nil)
        #expect(UnitGuard.adminReason("steward.service", on: remote) != nil)
        for unit in ["debug-shell.service", "rescue.target", "srv-data.mount", "dbus.service", "user.slice", "dev-vda.device"] {
            #expect(UnitGuard.adminReason(unit, on: remote) != nil, "\(unit)")
        }
        for unit in ["nginx.service", "backup.timer", "cups.socket", "getty@tty1.service"] {
            #expect(UnitGuard.adminReason(unit, on: remote) == nil, "\(unit)")
        }
        remote.transport = .local
        #expect(UnitGuard.adminReason("nginx.service", on: remote)?.contains("panel host") == true)
        #expect(UnitGuard.needsConfirmation(.stop, "steward.service", on: remote))
        #expect(UnitGuard.needsConfirmation(.restart, "steward.service", on: remote))
        #expect(!UnitGuard.needsConfirmation(.start, "steward.service", on: remote))
        remote.transport = .ssh
        #expect(!UnitGuard.needsConfirmation(.stop, "steward.service", on: remote))
        for action in UnitAction.allCases {
            #expect(UnitGuard.needsConfirmation(action, "ssh.service", on: remote) == [.stop, .disable, .mask].contains(action))
        }
        let change = ServiceChange(hostId: 1, host: "web1", unit: "nginx.service", action: .disable)
        #expect(change.moduleCall == "ansible.builtin.systemd_service: name=nginx.service enabled=false")
        #expect(change.variables == ["steward_service": ["name": "nginx.service", "enabled": false]])
    }

    @Test("a unit action is checked against the host's reading and the role, then queued as an audited job")
    func actionsThroughTheAPI() async throws {
        let harness = try await ServerHarness()
        let web = try Self.readHost(harness, name: "web1")
        let unread = try harness.server.hosts.create(
            {
                var settings = HostSettings()
                settings.name = "web2"
                settings.address = "192.0.2.2"
                return settings
            }(), by: .system, now: Date())
        let path = "/api/v1/hosts/\(web.id)/services"
        let webID = web.id
        @Sendable func post(_ client: any TestClientProtocol, _ unit: String, _ body: String, host: Int64? = nil) async throws -> (
            HTTPResponse.Status, [String: Any]
        ) {
            try await client.execute(
                uri: "/api/v1/hosts/\(host ?? webID)/services/\(unit)/actions", method: .post, headers: Self.jsonHeaders,
                body: ByteBuffer(string: body)
            ) { response in (response.status, (try? json(response)) ?? [:]) }
        }
        try await harness.test(as: [.operator]) { client in
            // The right unit, of 260, on the right host.
            let (status, job) = try await post(client, "app1.service", #"{"action":"restart"}"#)
            #expect(status == .accepted, "\(job)")
            let id = try #require(job["id"] as? Int)
            let stored = try #require(try harness.server.jobs.store.job(id: Int64(id)))
            #expect(stored.kind == ServiceChange.kind && stored.title == "Restart app1.service on web1" && stored.host == "web1")
            let change = try JSONDecoder().decode(ServiceChange.self, from: Data(stored.params.utf8))
            #expect(change == ServiceChange(hostId: web.id, host: "web1", unit: "app1.service", action: .restart))
            #expect(stored.reason == "ansible.builtin.systemd_service: name=app1.service state=restarted")
            var filter = AuditFilter()
            filter.action = "service.restart"
            let audit = try #require(try AuditLog.events(harness.server.database, filter).first)
            #expect(audit.actor == "tester-operator" && audit.after?.contains("\"unit\":\"app1.service\"") == true)
            #expect(audit.after?.contains("ansible.builtin.systemd_service") == true)

            // Each wrong field is named.
            var (code, problem) = try await post(client, "nosuch.service", #"{"action":"start"}"#)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["unit"]?.contains("not a unit on web1") == true)
            (code, problem) = try await post(client, "app1.service", #"{"action":"explode"}"#)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["action"] != nil)
            (code, problem) = try await post(client, "app1.service", #"{"action":"start","extra":1}"#)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["extra"] != nil)
            (code, problem) = try await post(client, "%7B%7Bx%7D%7D.service", #"{"action":"start"}"#)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["unit"]?.contains("not a systemd unit name") == true)
            (code, problem) = try await post(client, "app1.service", #"{"action":"start"}"#, host: unread.id)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["unit"]?.contains("have not been read") == true)
            // sshd and the panel host are an admin's.
            (code, problem) = try await post(client, "ssh.service", #"{"action":"restart"}"#)
            #expect(code == .forbidden && (problem["detail"] as? String)?.contains("how Steward reaches web1") == true)
            let panel = try #require(try harness.server.hosts.all().first { $0.transport == .local })
            (code, _) = try await post(client, "ssh.service", #"{"action":"start"}"#, host: panel.id)
            #expect(code == .unprocessableContent || code == .forbidden)
            try await client.execute(uri: path + "/nosuch.service", method: .get) { response in #expect(response.status == .notFound) }
        }
        try await harness.test(as: [.admin]) { client in
            var (code, problem) = try await post(client, "ssh.service", #"{"action":"stop"}"#)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["confirm"]?.contains("ssh.service") == true)
            (code, problem) = try await post(client, "ssh.service", #"{"action":"stop","confirm":"ssh"}"#)
            #expect(code == .unprocessableContent)
            (code, problem) = try await post(client, "ssh.service", #"{"action":"stop","confirm":"ssh.service"}"#)
            #expect(code == .accepted, "\(problem)")
            (code, _) = try await post(client, "ssh.service", #"{"action":"restart"}"#)
            #expect(code == .accepted)
        }
        try await harness.test(as: [.viewer]) { client in
            let (code, _) = try await post(client, "app1.service", #"{"action":"start"}"#)
            #expect(code == .forbidden)
        }
    }

    @Test("the unit page offers the actions a role may take, and a page action queues the job for that unit")
    func unitPage() async throws {
        let harness = try await ServerHarness()
        let web = try Self.readHost(harness, name: "web1")
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/hosts/\(web.id)/services?type=all&state=all", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("href=\"/hosts/\(web.id)/services/app1.service\""))
                #expect(page.contains("href=\"/hosts/\(web.id)/services/dev-disk-by%5Cx2duuid-00000.device\""))
            }
            // The host cannot be reached (its key was never confirmed): the page says so, and still offers the actions.
            try await client.execute(uri: "/hosts/\(web.id)/services/app1.service", method: .get) { response in
                #expect(response.status == .ok)
                let page = String(buffer: response.body)
                #expect(page.contains("id=\"unit-error\"") && page.contains("never been scanned"))
                #expect(page.contains("id=\"unit-action-restart\"") && page.contains("id=\"unit-action-unmask\""))
            }
            try await client.execute(uri: "/hosts/\(web.id)/services/dev-disk-by%5Cx2duuid-00000.device", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("dev-disk-by\\x2duuid-00000.device</code> on web1"))
            }
            try await client.execute(uri: "/hosts/\(web.id)/services/ssh.service", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("id=\"unit-guarded\"") && !page.contains("id=\"unit-action-stop\""))
            }
            try await client.execute(
                uri: "/hosts/\(web.id)/services/app1.service/actions", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "action=stop")
            ) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location]?.hasPrefix("/jobs/") == true)
            }
            let job = try #require(try harness.server.jobs.store.recent(forHost: "web1", limit: 5).first)
            #expect(job.title == "Stop app1.service on web1")
        }
    }

    @Test("a failed reading keeps the last good units with their time, and says so")
    func failedReadingKeepsUnits() async throws {
        let harness = try await ServerHarness()
        let web = try Self.readHost(harness, name: "web1", trusted: true)
        let store = HostReadingStore(database: harness.server.database)
        let reading = ServiceReading(reader: HostReader(keys: harness.server.engine.keys), store: store)
        let result = try await reading.refresh(web, by: AuditActor(actor: "alice"))
        #expect(result.body.units.count == 262 && result.readAt == Date(timeIntervalSince1970: 1_790_000_000))
        #expect(result.error?.contains("failed, showing the one of") == true)
        var filter = AuditFilter()
        filter.action = "services.read"
        #expect(try AuditLog.events(harness.server.database, filter).first?.actor == "alice")
        // A row written by another version that no longer decodes is left out, not an error.
        try await harness.server.database.write { db in
            try db.execute(sql: "UPDATE host_readings SET body = '{\"rows\":1}' WHERE host_id = ?", arguments: [web.id])
        }
        #expect(try store.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: web.id) == nil)
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/services", method: .get) { response in #expect(response.status == .ok) }
        }
        // An unconfirmed host is not connected to at all.
        let stranger = try Self.readHost(harness, name: "web3")
        await #expect(throws: Problem.self) { try await reading.refresh(stranger) }
    }

    @Test("a second read of the same host waits for the first; reads across hosts are capped")
    func readingGate() async throws {
        let gate = ReadingGate(limit: 2)
        let counter = Counter()
        async let first = gate.read(key: "1/services") { await counter.run() }
        async let second = gate.read(key: "1/services") { await counter.run() }
        let answers = try await [first, second]
        #expect(answers[0] == answers[1])
        let spread = ReadingGate(limit: 2)
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<8 { group.addTask { try await spread.read(key: "\(index)/services") { await counter.run() } } }
            for try await _ in group {}
        }
        #expect(await counter.mostAtOnce <= 2)
    }

    actor Counter {
        var runs = 0
        var now = 0
        var mostAtOnce = 0
        func run() async -> Int {
            runs += 1
            now += 1
            mostAtOnce = max(mostAtOnce, now)
            let mine = runs
            try? await Task.sleep(for: .milliseconds(50))
            now -= 1
            return mine
        }
    }
}
