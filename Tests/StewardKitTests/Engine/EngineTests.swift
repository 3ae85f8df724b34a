import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Engine on localhost (the local transport): ad-hoc argv, results, inventory", .serialized)
struct EngineTests {
    @Test("the ad-hoc form runs an argv on localhost through ansible; shell syntax arrives as text; results are per host")
    func adhocOnLocalhost() async throws {
        let harness = try await ServerHarness()
        let runner = harness.server.jobs
        let loop = Task { try? await runner.run() }
        defer { loop.cancel() }
        let jobID = Captured<Int64>(0)
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/hosts/command", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(
                    string: "targets=localhost&arguments=" + "echo\nhello; $(id)".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            ) { response in
                #expect(response.status == .seeOther)
                jobID.value = Int64((response.headers[.location] ?? "").split(separator: "/").last ?? "") ?? 0
            }
        }
        let id = jobID.value
        #expect(try await waitUntil { try runner.store.job(id: id)?.state.isFinished == true })
        let job = try #require(try runner.store.job(id: id))
        let log = try runner.store.logChunks(id: id).map(\.text).joined()
        #expect(job.state == .succeeded, "\(job.error ?? "") \(log)")
        let results = try Engine.results(harness.server.database, job: id)
        #expect(results.map(\.host) == ["localhost"] && results.first?.status == "changed")
        let detail = try await harness.server.database.read { db in
            try String.fetchOne(db, sql: "SELECT detail FROM job_task_events WHERE job_id = ?", arguments: [id])
        }
        #expect(detail?.contains(#""stdout":"hello; $(id)""#) == true, "\(detail ?? "")")
        #expect(try AuditLog.events(harness.server.database, action: "adhoc.run").count == 1)
    }

    @Test("a job queued by an older Steward (fewer fields in its params) still decodes, with the defaults")
    func olderRunParametersDecode() throws {
        let old = try JSONDecoder().decode(
            PlaybookRun.self, from: Data(#"{"playbook":"playbooks/ping.yml","targets":["web"],"timeoutSeconds":60}"#.utf8))
        #expect(old.playbook == "playbooks/ping.yml" && old.targets == ["web"] && old.timeoutSeconds == 60)
        #expect(old.taskTimeoutSeconds == 600 && !old.check && old.commit == nil && old.builtin == nil && old.followedBy.isEmpty)
        var current = PlaybookRun(playbook: "rollout.yml", targets: ["a"])
        current.followedBy = [BuiltinPlaybooks.reboot]
        current.check = true
        #expect(try JSONDecoder().decode(PlaybookRun.self, from: JSONEncoder().encode(current)) == current)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(PlaybookRun.self, from: Data(#"{"targets":[]}"#.utf8)) }
    }

    @Test("an ad-hoc command must name targets and be a list; an operator may not run one")
    func adhocRefusals() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/hosts/command", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "targets=&arguments=uptime")
            ) { response in
                #expect(response.status == .unprocessableContent && text(response).contains("at least one host or group"))
            }
            try await client.execute(
                uri: "/api/v1/adhoc", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"command":"id; rm -rf /","targets":["localhost"]}"#)
            ) { response in #expect(response.status == .unprocessableContent) }
        }
        try await harness.test(as: [.operator]) { client in
            try await client.execute(
                uri: "/api/v1/adhoc", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"command":["id"],"targets":["localhost"]}"#)
            ) { response in #expect(response.status == .forbidden) }
        }
    }

    @Test("the generated inventory carries connection settings from the database and group variables")
    func inventory() throws {
        var web = HostSettings()
        web.name = "web-01"
        web.address = "192.0.2.11"
        web.sshPort = 2222
        web.sshUser = "ansible"
        web.become = .sudo
        web.groups = ["web"]
        web.variables = "http_port: 8080\n"
        let host = Host(
            id: 1, name: web.name, address: web.address, transport: .ssh, sshPort: 2222, sshUser: "ansible", become: .sudo, groups: ["web"],
            tags: ["prod"],
            variables: web.variables, metricsURL: nil, notes: "", enabled: true, state: .unknown, stateDetail: nil, lastSeenAt: nil,
            createdAt: Date(),
            updatedAt: Date())
        let document = try Inventory.document(
            hosts: [host], groups: [HostGroup(id: 1, name: "web", variables: "tier: front\n", notes: "", hostCount: 1)],
            identity: SSHIdentity(directory: "/x"))
        let all = try #require(document["all"] as? [String: Any])
        let vars = try #require((all["hosts"] as? [String: Any])?["web-01"] as? [String: Any])
        #expect(
            vars["ansible_host"] as? String == "192.0.2.11" && vars["ansible_port"] as? Int == 2222 && vars["ansible_user"] as? String == "ansible")
        #expect(vars["ansible_become"] as? Bool == true && vars["http_port"] as? Int == 8080)
        let group = try #require((all["children"] as? [String: Any])?["web"] as? [String: Any])
        #expect((group["vars"] as? [String: Any])?["tier"] as? String == "front")
        let list = Inventory.dynamicList(hosts: [host], groups: [HostGroup(id: 1, name: "web", variables: "", notes: "", hostCount: 1)])
        #expect((list["web"] as? [String: Any])?["hosts"] as? [String] == ["web-01"])
    }
}

@Suite("Facts on localhost", .serialized)
struct FactsTests {
    @Test("Gather facts now on the host page records localhost's facts, shown with their time")
    func factsNow() async throws {
        let harness = try await ServerHarness()
        let runner = harness.server.jobs
        let loop = Task { try? await runner.run() }
        defer { loop.cancel() }
        let localhost = try #require(try harness.server.hosts.host(named: "localhost"))
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/hosts/\(localhost.id)/facts", method: .post) { response in #expect(response.status == .seeOther) }
        }
        #expect(try await waitUntil { try runner.store.list(JobFilter()).allSatisfy(\.state.isFinished) })
        let facts = try #require(try HostFacts.latest(harness.server.database, hostID: localhost.id))
        #expect(!facts.kernel.isEmpty && facts.cpus > 0 && facts.memoryMB > 0 && facts.users.contains { $0.name == "root" })
        #expect(facts.filesystems.contains { $0.mount == "/" })
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/hosts/\(localhost.id)", method: .get) { response in
                #expect(text(response).contains(#"id="facts-as-of">As of "#))
            }
        }
        try await harness.test(as: [.operator]) { client in
            // System accounts and groups (root among them) are listed only when asked for.
            try await client.execute(uri: "/hosts/\(localhost.id)/accounts", method: .get) { response in
                let page = text(response)
                #expect(response.status == .ok && !page.contains("<td>root</td><td>0</td>") && page.contains(#"<option value="/bin/sh">"#))
                #expect(page.contains("system group(s) hidden") && page.contains("system account(s) hidden"))
            }
            try await client.execute(uri: "/hosts/\(localhost.id)/accounts?system=1", method: .get) { response in
                let page = text(response)
                #expect(
                    page.contains(#"<tr data-user="root"><td>root</td><td>0</td>"#)
                        && page.contains(#"<tr data-group="root"><td>root</td><td>0</td>"#))
            }
            // Class 6 on a real host's facts: an operator may not give sudo or touch root.
            try await client.execute(
                uri: "/api/v1/hosts/\(localhost.id)/users", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"action":"create","name":"steward-test-op","uid":0,"admin":true}"#)
            ) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try json(response)["errors"] as? [String: String]
                #expect(errors?["uid"] != nil && errors?["admin"] != nil)
            }
            try await client.execute(
                uri: "/api/v1/hosts/\(localhost.id)/users", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"action":"lock","name":"root"}"#)
            ) { response in
                #expect(response.status == .unprocessableContent)
            }
        }
        #expect(try runner.store.list(JobFilter()).count == 1, "nothing was queued for the refused changes")
    }
}
