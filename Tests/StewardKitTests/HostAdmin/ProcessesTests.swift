import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Processes: ps readings, the busiest first, what may be signalled, and signals as audited jobs")
struct ProcessesTests {
    /// `ps -e -ww -o pid=,ppid=,user:64=,pcpu=,pmem=,rss=,etimes=,args=` of a busy host (320 processes): init, kernel
    /// threads in brackets, sshd's listener and sessions (Steward's and a person's), long user names, command lines with
    /// many spaces, and workers with the same command.
    static func listing() -> String {
        var lines = [
            "      1       0 root                                                               0.0  0.1 12345 864000 /sbin/init",
            "      2       0 root                                                               0.0  0.0     0 864000 [kthreadd]",
            "    400       1 root                                                               0.0  0.1  7000 863000 sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
            "   5000     400 root                                                               0.0  0.1  9000     30 sshd: steward [priv]",
            "   5001    5000 steward                                                            0.0  0.0  6000     30 sshd: steward@notty",
            "   5002    5001 root                                                               0.3  0.2 20000     29 /usr/bin/python3 /tmp/ansible/module.py",
            "   6000     400 root                                                               0.0  0.1  9000   3000 sshd: alice [priv]",
            "   6001    6000 alice                                                              0.0  0.0  6000   3000 sshd: alice@pts/0",
            "   6002    6001 alice                                                              0.0  0.0  5000   3000 -bash",
            "   6003    6002 alice                                                             97.5  1.0 80000   2000 /usr/bin/stress --cpu 1 --timeout 3600",
            "   7000       1 a-very-long-user-name-for-a-service-account                        2.5 12.5 2048000 86000 /usr/lib/jvm/bin/java -Xmx2g -jar /srv/app/app.jar --spring.profiles.active=prod",
        ]
        for index in 0..<100 { lines.append("  \(100 + index)       2 root  0.0  0.0     0 864000 [kworker/\(index):1-events]") }
        for index in 0..<209 {
            lines.append(
                "  \(10_000 + index)    7000 www-data  \(Double(index % 7) / 10)  0.\(index % 9)  \(10_000 + index) \(5000 + index) nginx: worker process"
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test("a ps listing of 320 processes parses column by column, command lines with their spaces")
    func parses() throws {
        let processes = ProcessListing.parse(Self.listing())
        #expect(processes.count == 320)
        let java = try #require(processes.first { $0.pid == 7000 })
        #expect(java.user == "a-very-long-user-name-for-a-service-account" && java.rssKiB == 2_048_000 && java.memory == 12.5)
        #expect(java.command == "/usr/lib/jvm/bin/java -Xmx2g -jar /srv/app/app.jar --spring.profiles.active=prod")
        #expect(processes.first { $0.pid == 400 }?.command == "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups")
        let listing = ProcessListing(processes: processes)
        #expect(listing.top(.cpu, limit: 3).map(\.pid) == [6003, 7000, 10_062])
        #expect(listing.top(.memory, limit: 1).map(\.pid) == [7000])
        #expect(listing.top(.cpu, limit: 500, text: "nginx").count == 209)
        #expect(ProcessListing.parse("PID PPID USER\nnot a process line\n").isEmpty)
    }

    @Test("init, Steward's own SSH sessions and what runs in them, and Steward on the panel host are protected")
    func protection() {
        let listing = ProcessListing(processes: ProcessListing.parse(Self.listing()))
        #expect(listing.protection(of: 1, sshUser: "steward", panelPID: nil) != nil)
        for pid in [5000, 5001, 5002] { #expect(listing.protection(of: pid, sshUser: "steward", panelPID: nil)?.contains("steward") == true) }
        // A person's session, and the listener itself (sshd is guarded as a unit), are not Steward's sessions.
        for pid in [400, 6000, 6001, 6003, 7000] { #expect(listing.protection(of: pid, sshUser: "steward", panelPID: nil) == nil, "\(pid)") }
        #expect(listing.protection(of: 6003, sshUser: "alice", panelPID: nil) != nil)
        // On the panel host: Steward (here 7000's worker 10001) and the processes it runs under.
        #expect(listing.protection(of: 10_001, sshUser: nil, panelPID: 10_001) != nil)
        #expect(listing.protection(of: 7000, sshUser: nil, panelPID: 10_001) != nil)
        #expect(listing.protection(of: 10_002, sshUser: nil, panelPID: 10_001) == nil)
    }

    @Test("the panel host's own processes are read for real: this test's process is there, and protected")
    func panelHost() async throws {
        let harness = try await ServerHarness()
        let localhost = try #require(try harness.server.hosts.all().first { $0.transport == .local })
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/hosts/\(localhost.id)/processes", method: .get) { response in
                #expect(String(buffer: response.body).contains("id=\"processes-never-read\""))
            }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/processes/refresh", method: .post) { response in
                #expect(response.status == .ok)
                let object = try json(response)
                #expect(object["error"] is NSNull && (object["total"] as? Int ?? 0) > 3, "\(object)")
            }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/processes?q=\(getpid())&limit=1000", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/hosts/\(localhost.id)/processes?limit=1000", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("data-pid=\"\(getpid())\"") && page.contains("id=\"processes-as-of\""))
                #expect(!page.contains("id=\"term-\(getpid())\"") && !page.contains("id=\"term-1\""))
            }
            try await client.execute(
                uri: "/api/v1/hosts/\(localhost.id)/processes/\(getpid())/signal", method: .post, headers: ServiceActionsTests.jsonHeaders,
                body: ByteBuffer(string: #"{"signal":"KILL"}"#)
            ) { response in
                #expect(response.status == .conflict)
                let detail = (try? json(response))?["detail"] as? String
                #expect(detail?.contains("Steward itself") == true, "\(detail ?? "")")
            }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/processes?sort=size&limit=0", method: .get) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try json(response)["errors"] as? [String: String] ?? [:]
                #expect(errors["sort"] != nil && errors["limit"] != nil)
            }
        }
    }

    @Test("a signal is checked against the reading and queued as an audited job with the command line; only admins")
    func signals() async throws {
        let harness = try await ServerHarness()
        let web = try ServiceActionsTests.readHost(harness, name: "web1")
        try HostReadingStore(database: harness.server.database).save(
            HostReading(hostID: web.id, readAt: Date(), body: ProcessListing(processes: ProcessListing.parse(Self.listing())), error: nil),
            kind: ProcessListing.kind)
        @Sendable func signal(_ client: any TestClientProtocol, _ pid: String, _ body: String) async throws -> (HTTPResponse.Status, [String: Any]) {
            try await client.execute(
                uri: "/api/v1/hosts/\(web.id)/processes/\(pid)/signal", method: .post, headers: ServiceActionsTests.jsonHeaders,
                body: ByteBuffer(string: body)
            ) { response in (response.status, (try? json(response)) ?? [:]) }
        }
        try await harness.test(as: [.admin]) { client in
            let (status, job) = try await signal(client, "6003", #"{"signal":"TERM"}"#)
            #expect(status == .accepted, "\(job)")
            let stored = try #require(try harness.server.jobs.store.job(id: Int64(job["id"] as? Int ?? 0)))
            #expect(stored.kind == ProcessSignal.kind && stored.title == "Send TERM to process 6003 on web1")
            let change = try JSONDecoder().decode(ProcessSignal.self, from: Data(stored.params.utf8))
            #expect(change.commandSHA256 == sha256Hex(Array("/usr/bin/stress --cpu 1 --timeout 3600".utf8)) && change.user == "alice")
            #expect(change.program == "/usr/bin/stress …" && !stored.params.contains("--timeout") && !stored.reason.contains("--timeout"))
            // The playbook gets the command line's hash, never its text.
            let variables = String(decoding: try JSONEncoder().encode(change.variables), as: UTF8.self)
            #expect(!variables.contains("stress") && variables.contains(change.commandSHA256))
            var filter = AuditFilter()
            filter.action = "process.signal"
            let audit = try #require(try AuditLog.events(harness.server.database, filter).first)
            #expect(audit.after?.contains("/usr/bin/stress --cpu 1 --timeout 3600") == true)
            var (code, problem) = try await signal(client, "5002", #"{"signal":"KILL"}"#)
            #expect(code == .conflict && (problem["detail"] as? String)?.contains("SSH session of steward") == true)
            (code, problem) = try await signal(client, "1", #"{"signal":"KILL"}"#)
            #expect(code == .conflict)
            (code, problem) = try await signal(client, "424242", #"{"signal":"TERM"}"#)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["pid"]?.contains("not a process on web1") == true)
            (code, problem) = try await signal(client, "6003", #"{"signal":"HUP"}"#)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["signal"] != nil)
            (code, problem) = try await signal(client, "abc", #"{"signal":"TERM"}"#)
            #expect(code == .unprocessableContent && (problem["errors"] as? [String: String])?["pid"] != nil)
        }
        try await harness.test(as: [.operator]) { client in
            let (code, _) = try await signal(client, "6003", #"{"signal":"TERM"}"#)
            #expect(code == .forbidden)
        }
    }
}

@Suite("Host text that can hold secrets is for operators and admins")
struct HostSecretsTests {
    @Test("a viewer sees each command's program only, and cannot search command lines or open an entry's command")
    func viewersSeePrograms() async throws {
        let harness = try await ServerHarness()
        let web = try ServiceActionsTests.readHost(harness, name: "web1")
        let store = HostReadingStore(database: harness.server.database)
        try store.save(
            HostReading(hostID: web.id, readAt: Date(), body: ProcessListing(processes: ProcessListing.parse(ProcessesTests.listing())), error: nil),
            kind: ProcessListing.kind)
        try store.save(
            HostReading(
                hostID: web.id, readAt: Date(),
                body: CronListing(entries: CronListing.parse(CronTasksTests.crontabs()), timeZone: "UTC", users: ["root"]), error: nil),
            kind: CronListing.kind)
        #expect(HostSecrets.command("/usr/bin/mysql -uroot -pSECRET", full: false) == "/usr/bin/mysql …")
        #expect(HostSecrets.command("/sbin/init", full: false) == "/sbin/init")
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/api/v1/hosts/\(web.id)/processes?limit=1000", method: .get) { response in
                let commands = (try json(response)["processes"] as? [[String: Any]] ?? []).compactMap { $0["command"] as? String }
                #expect(commands.contains("/usr/bin/stress …") && !commands.contains { $0.contains("--timeout") })
            }
            try await client.execute(uri: "/api/v1/hosts/\(web.id)/processes?q=timeout", method: .get) { response in
                let processes = (try? json(response))?["processes"] as? [Any]
                #expect(processes?.count == 100, "the search does not look into command lines")
            }
            try await client.execute(uri: "/hosts/\(web.id)/cron?edit=nightly%20backup&user=root", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(!page.contains("--all") && page.contains("/usr/local/bin/backup …"))
            }
            try await client.execute(uri: "/api/v1/cron?q=backup", method: .get) { response in
                let items = try json(response)["items"] as? [[String: Any]] ?? []
                #expect(!items.contains { ($0["command"] as? String)?.contains("--all") == true })
            }
        }
        let localhost = try #require(try harness.server.hosts.all().first { $0.transport == .local })
        try store.save(
            HostReading(
                hostID: localhost.id, readAt: Date(), body: ProcessListing(processes: ProcessListing.parse(ProcessesTests.listing())), error: nil),
            kind: ProcessListing.kind)
        try await harness.test(as: [.operator]) { client in
            // On the panel host an operator sees programs only: its processes are Steward's own.
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/processes?limit=1000", method: .get) { response in
                let commands = ((try? json(response))?["processes"] as? [[String: Any]] ?? []).compactMap { $0["command"] as? String }
                #expect(commands.contains("/usr/bin/stress …") && !commands.contains { $0.contains("--timeout") })
            }
            try await client.execute(uri: "/api/v1/hosts/\(web.id)/processes?q=timeout", method: .get) { response in
                let commands = (try json(response)["processes"] as? [[String: Any]] ?? []).compactMap { $0["command"] as? String }
                #expect(commands == ["/usr/bin/stress --cpu 1 --timeout 3600"])
            }
        }
    }
}
