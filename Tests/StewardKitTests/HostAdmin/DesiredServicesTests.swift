import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Services as code: services/NAME.yml, drift from the newest readings, and converge jobs")
struct DesiredServicesTests {
    static func reading(_ units: [ServiceUnit]) -> HostReading<ServiceListing> {
        HostReading(hostID: 1, readAt: Date(), body: ServiceListing(units: units), error: nil)
    }

    static func unit(_ name: String, active: String, enabled: String) -> ServiceUnit {
        ServiceUnit(unit: name, load: "loaded", active: active, sub: active == "active" ? "running" : "dead", description: name, enabled: enabled)
    }

    @Test("a definition round-trips through its file, names its wrong fields, and measures drift from a reading")
    func definitions() throws {
        let nginx = DesiredService(unit: "nginx.service", state: "started", enabled: true, applyTo: ["web", "edge-1"])
        #expect(
            nginx.path == "services/nginx.yml"
                && DesiredService(unit: "backup.timer", state: "started", enabled: true, applyTo: ["x"]).path == "services/backup.timer.yml")
        #expect(try DesiredService.parse(nginx.yaml) == nginx)
        #expect(try DesiredService.parse("unit: a.service\nstate: stopped\nenabled: no\napply_to: [db]\n").enabled == false)
        do {
            _ = try DesiredService.parse("unit: \"{{x}}.service\"\nstate: running\napply_to: []\n")
            Issue.record("a bad file parsed")
        } catch {
            #expect(Set(error.errors.keys) == ["unit", "state", "apply_to"])
        }
        #expect(nginx.drift(in: nil) == ["services not read yet"])
        #expect(
            nginx.drift(in: Self.reading([Self.unit("ssh.service", active: "active", enabled: "enabled")])) == ["nginx.service is not on the host"])
        #expect(nginx.drift(in: Self.reading([Self.unit("nginx.service", active: "active", enabled: "enabled")])).isEmpty)
        #expect(
            nginx.drift(in: Self.reading([Self.unit("nginx.service", active: "failed", enabled: "disabled")]))
                == ["failed, should be started", "disabled, should be enabled"])
        let stopped = DesiredService(unit: "cups.service", state: "stopped", enabled: false, applyTo: ["web"])
        #expect(stopped.drift(in: Self.reading([Self.unit("cups.service", active: "active", enabled: "static")])) == ["active, should be stopped"])
        #expect(stopped.variables == ["steward_service": ["name": "cups.service", "state": "stopped", "enabled": false]])
    }

    @Test("operators keep regular units on fleet groups; sshd, Steward's units and the panel host are an admin's; converge queues the drifting hosts")
    func saveAndConverge() async throws {
        let harness = try await ServerHarness()
        let store = HostReadingStore(database: harness.server.database)
        var hostsMade: [StewardKit.Host] = []
        for index in 0..<3 {
            var settings = HostSettings()
            settings.name = "web-\(index)"
            settings.address = "192.0.2.\(index + 1)"
            settings.groups = ["web"]
            hostsMade.append(try harness.server.hosts.create(settings, by: .system, now: Date()))
        }
        let web = hostsMade
        // web-0 matches, web-1 has nginx stopped, web-2 was never read.
        try store.save(
            HostReading(
                hostID: web[0].id, readAt: Date(), body: ServiceListing(units: [Self.unit("nginx.service", active: "active", enabled: "enabled")]),
                error: nil),
            kind: ServiceListing.kind)
        try store.save(
            HostReading(
                hostID: web[1].id, readAt: Date(), body: ServiceListing(units: [Self.unit("nginx.service", active: "inactive", enabled: "enabled")]),
                error: nil),
            kind: ServiceListing.kind)
        @Sendable func put(_ client: any TestClientProtocol, _ name: String, _ body: String) async throws -> (HTTPResponse.Status, [String: Any]) {
            try await client.execute(
                uri: "/api/v1/services/desired/\(name)", method: .put, headers: ServiceActionsTests.jsonHeaders, body: ByteBuffer(string: body)
            ) { response in (response.status, (try? json(response)) ?? [:]) }
        }
        try await harness.test(as: [.operator]) { client in
            var (status, reply) = try await put(
                client, "nginx", #"{"unit":"nginx.service","state":"started","enabled":true,"apply_to":["web"],"message":"Keep nginx up"}"#)
            #expect(status == .ok && reply["path"] as? String == "services/nginx.yml", "\(reply)")
            #expect(try harness.server.engine.repository.read("services/nginx.yml")?.contains("state: started") == true)
            (status, reply) = try await put(client, "ssh", #"{"unit":"ssh.service","state":"stopped","apply_to":["web"],"message":"x"}"#)
            #expect(status == .unprocessableContent && (reply["errors"] as? [String: String])?["unit"]?.contains("only an admin") == true)
            (status, reply) = try await put(client, "cron", #"{"unit":"cron.service","apply_to":["localhost"],"message":"x"}"#)
            #expect(status == .unprocessableContent && (reply["errors"] as? [String: String])?["unit"]?.contains("panel host") == true)
            (status, reply) = try await put(client, "other", #"{"unit":"nginx.service","apply_to":["web"],"message":"x"}"#)
            #expect(status == .unprocessableContent)
            (status, reply) = try await put(client, "nginx", #"{"unit":"nginx.service","apply_to":["web"],"message":"x","restart":true}"#)
            #expect(status == .unprocessableContent && (reply["errors"] as? [String: String])?["restart"] != nil)
            try await client.execute(uri: "/api/v1/services/desired", method: .get) { response in
                let items = try json(response)["items"] as? [[String: Any]] ?? []
                #expect(items.count == 1 && Set(items[0]["drifting"] as? [String] ?? []) == ["web-1", "web-2"], "\(items)")
            }
            try await client.execute(uri: "/api/v1/services/desired/nginx/converge", method: .post) { response in
                #expect(response.status == .accepted)
                let job = try json(response)
                #expect(job["title"] as? String == "Converge services/nginx.yml on web-1", "only read hosts that differ")
                let stored = try #require(try harness.server.jobs.store.job(id: Int64(job["id"] as? Int ?? 0)))
                let convergence = try JSONDecoder().decode(ServiceConvergence.self, from: Data(stored.params.utf8))
                #expect(
                    convergence.hostIds == [web[1].id]
                        && convergence.moduleCall == "ansible.builtin.systemd_service: name=nginx.service state=started enabled=true")
            }
            try await client.execute(uri: "/api/v1/services/desired/nope/converge", method: .post) { response in #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/services/desired", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(
                    page.contains("services/nginx.yml") && page.contains("web-1: inactive, should be started")
                        && page.contains("id=\"converge-nginx\""))
            }
        }
        // An admin may keep sshd as code; an operator may then not converge it.
        try await harness.test(as: [.admin]) { client in
            let (status, _) = try await put(client, "ssh", #"{"unit":"ssh.service","state":"started","apply_to":["web"],"message":"Keep sshd"}"#)
            #expect(status == .ok)
        }
        try await store.database.write { db in
            try db.execute(
                sql: "UPDATE host_readings SET body = ? WHERE host_id = ?",
                arguments: [
                    String(
                        decoding: try JSONEncoder().encode(ServiceListing(units: [Self.unit("ssh.service", active: "inactive", enabled: "enabled")])),
                        as: UTF8.self),
                    web[0].id,
                ])
        }
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/api/v1/services/desired/ssh/converge", method: .post) { response in #expect(response.status == .forbidden)
            }
        }
        try await harness.test(as: [.viewer]) { client in
            let (status, _) = try await put(client, "nginx", #"{"unit":"nginx.service","apply_to":["web"],"message":"x"}"#)
            #expect(status == .forbidden)
        }
    }
}
