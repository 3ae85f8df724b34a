import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Hosts over HTTP: API CRUD, pages, bulk add, audit")
struct HostRouteTests {
    static let jsonBody: HTTPFields = [.contentType: "application/json"]
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    @Test("localhost is enrolled at first run with the local transport, once")
    func localhostEnrolled() async throws {
        let harness = try await ServerHarness()
        let hosts = try harness.server.hosts.all()
        #expect(hosts.map(\.name) == ["localhost"] && hosts[0].transport == .local)
        try harness.server.hosts.ensureLocalhost(now: Date())
        #expect(try harness.server.hosts.all().count == 1)
    }

    @Test("create, read, change and delete a host through the API; every change is audited")
    func apiCrud() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.admin]) { client in
            let body =
                #"{"name":"web-01","address":"192.0.2.11","ssh_port":2222,"ssh_user":"ansible","become":"sudo","groups":["web","eu"],"tags":["prod"],"variables":"http_port: 8080\n"}"#
            var id = 0
            try await client.execute(uri: "/api/v1/hosts", method: .post, headers: Self.jsonBody, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .created)
                let object = try json(response)
                id = object["id"] as? Int ?? 0
                #expect(object["groups"] as? [String] == ["eu", "web"] && (object["variables"] as? [String: Any])?["http_port"] as? Int == 8080)
            }
            try await client.execute(uri: "/api/v1/hosts", method: .post, headers: Self.jsonBody, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .conflict)
            }
            try await client.execute(
                uri: "/api/v1/hosts/\(id)", method: .patch, headers: Self.jsonBody,
                body: ByteBuffer(string: #"{"address":"web-01.example.com","enabled":false}"#)
            ) { response in
                #expect(response.status == .ok)
                let address = try json(response)["address"] as? String
                #expect(address == "web-01.example.com")
            }
            try await client.execute(uri: "/api/v1/groups", method: .get) { response in
                let names = try #require(try json(response)["items"] as? [[String: Any]]).compactMap { $0["name"] as? String }
                #expect(names == ["eu", "web"])
            }
            try await client.execute(uri: "/hosts/\(id)", method: .get) { response in
                #expect(response.status == .ok && text(response).contains("web-01.example.com") && text(response).contains("http_port: 8080"))
            }
            try await client.execute(uri: "/api/v1/hosts/\(id)", method: .delete) { response in #expect(response.status == .noContent) }
            try await client.execute(uri: "/api/v1/hosts/\(id)", method: .get) { response in #expect(response.status == .notFound) }
        }
        let actions = try AuditLog.events(harness.server.database, target: "host:web-01").map(\.action)
        #expect(actions == ["host.delete", "host.update", "host.create"])
    }

    @Test(
        "class 1 and 3 through the API: injected names, addresses, users and variables are refused with the field named",
        arguments: [
            (#"{"name":"x;id","address":"192.0.2.1"}"#, "name"),
            (#"{"name":"ok","address":"$(id)"}"#, "address"),
            (#"{"name":"ok","address":"-oProxyCommand=id"}"#, "address"),
            (#"{"name":"ok","address":"192.0.2.1","ssh_user":"root`id`"}"#, "ssh_user"),
            (#"{"name":"ok","address":"192.0.2.1","groups":["a b"]}"#, "groups"),
            (#"{"name":"ok","address":"192.0.2.1","variables":"x: !!python/object/apply:os.system [id]"}"#, "variables"),
            (#"{"name":"ok","address":"192.0.2.1","variables":"ansible_ssh_common_args: -oProxyCommand=id"}"#, "variables"),
            (#"{"name":"ok","address":"192.0.2.1","ssh_port":"22"}"#, "ssh_port"),
            (#"{"name":"ok","address":"192.0.2.1","surprise":1}"#, "surprise"),
        ])
    func injectionRefused(_ body: String, _ field: String) async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/api/v1/hosts", method: .post, headers: Self.jsonBody, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try json(response)["errors"] as? [String: String]
                #expect(errors?[field] != nil, "\(text(response))")
            }
        }
        #expect(try harness.server.hosts.all().count == 1, "nothing was stored")
    }

    @Test("the form keeps what was typed and says what to fix; an operator cannot add hosts")
    func formErrors() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/hosts/new", method: .post, headers: Self.form,
                body: ByteBuffer(string: "name=Bad+Name&address=192.0.2.5&ssh_port=22&ssh_user=root")
            ) { response in
                #expect(response.status == .unprocessableContent)
                let page = text(response)
                #expect(page.contains(#"value="bad name""#) && page.contains("lowercase letters"))
            }
            try await client.execute(
                uri: "/hosts/new", method: .post, headers: Self.form,
                body: ByteBuffer(string: "name=db-01&address=192.0.2.5&ssh_port=22&ssh_user=root&groups=db&enabled=on")
            ) { response in
                #expect(response.status == .seeOther)
            }
        }
        try await harness.test(as: [.operator]) { client in
            try await client.execute(
                uri: "/hosts/new", method: .post, headers: Self.form, body: ByteBuffer(string: "name=x&address=192.0.2.6&ssh_port=22&ssh_user=root")
            ) { response in #expect(response.status == .forbidden) }
            try await client.execute(uri: "/hosts", method: .get) { response in
                #expect(response.status == .ok && text(response).contains("db-01") && !text(response).contains("Add a host"))
            }
        }
    }

    @Test("bulk add: a preview with per-line errors, then only the valid lines are added and the bad ones are kept")
    func bulkAdd() async throws {
        let harness = try await ServerHarness()
        let lines =
            "web-01 192.0.2.11\nweb-02 192.0.2.12:2222\n# a comment\ndb-01,192.0.2.21,22,ansible,db;eu,primary\nbad;name 192.0.2.99\nweb-01 192.0.2.13\n"
        let encoded = lines.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/hosts/bulk", method: .post, headers: Self.form, body: ByteBuffer(string: "lines=\(encoded)&commit=0")) {
                response in
                let page = text(response)
                #expect(response.status == .ok && page.contains("3 ready, 2 with errors") && page.contains("already exists"))
            }
            #expect(try harness.server.hosts.all().count == 1, "a preview adds nothing")
            try await client.execute(uri: "/hosts/bulk", method: .post, headers: Self.form, body: ByteBuffer(string: "lines=\(encoded)&commit=1")) {
                response in
                #expect(response.status == .unprocessableContent)
                let page = text(response)
                #expect(page.contains("bad;name 192.0.2.99") && page.contains("Added: web-01, web-02, db-01"))
            }
        }
        let hosts = try harness.server.hosts.all()
        #expect(hosts.map(\.name) == ["db-01", "localhost", "web-01", "web-02"])
        let db = try #require(hosts.first { $0.name == "db-01" })
        #expect(db.groups == ["db", "eu"] && db.tags == ["primary"] && db.sshUser == "ansible")
        #expect(hosts.first { $0.name == "web-02" }?.sshPort == 2222)
    }
}

@Suite("Host API types")
struct HostAPITypeTests {
    @Test("JSON numbers and booleans are told apart, including 0 and 1")
    func numbersAndBooleans() throws {
        for (body, port, enabled) in [(#"{"ssh_port": 1, "enabled": true}"#, 1, true), (#"{"ssh_port": 22, "enabled": false}"#, 22, false)] {
            var settings = HostSettings()
            try APIInputDecoding.decode(HostInput.self, from: Data(body.utf8)).apply(to: &settings)
            #expect(settings.sshPort == port && settings.enabled == enabled)
        }
        for body in [#"{"ssh_port": true}"#, #"{"enabled": 1}"#, #"{"enabled": 0}"#] {
            var settings = HostSettings()
            #expect(throws: Problem.self, "\(body)") {
                try APIInputDecoding.decode(HostInput.self, from: Data(body.utf8)).apply(to: &settings)
            }
        }
    }
}

@Suite("Group API")
struct GroupAPITests {
    @Test("groups are created, changed and removed through the API with validated variables; hosts stay")
    func crud() async throws {
        let harness = try await ServerHarness()
        let jsonType: HTTPFields = [.contentType: "application/json"]
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/api/v1/groups/web", method: .put, headers: jsonType, body: ByteBuffer(string: #"{"variables":"tier: front\n","notes":"n"}"#)
            ) {
                response in
                #expect(response.status == .ok)
                let tier = (try json(response)["variables"] as? [String: Any])?["tier"] as? String
                #expect(tier == "front")
            }
            try await client.execute(
                uri: "/api/v1/groups/web", method: .put, headers: jsonType, body: ByteBuffer(string: #"{"variables":"x: !!python/name:os.system"}"#)
            ) {
                response in #expect(response.status == .unprocessableContent)
            }
            try await client.execute(uri: "/api/v1/groups/all", method: .put, headers: jsonType, body: ByteBuffer(string: #"{}"#)) { response in
                #expect(response.status == .unprocessableContent)
            }
            try await client.execute(
                uri: "/api/v1/hosts", method: .post, headers: jsonType,
                body: ByteBuffer(string: #"{"name":"w1","address":"192.0.2.1","groups":["web"]}"#)
            ) { response in #expect(response.status == .created) }
            try await client.execute(uri: "/api/v1/groups/web", method: .delete) { response in #expect(response.status == .noContent) }
            try await client.execute(uri: "/api/v1/groups/web", method: .delete) { response in #expect(response.status == .notFound) }
        }
        #expect(try harness.server.hosts.host(named: "w1")?.groups == [])
        #expect(try AuditLog.events(harness.server.database, action: "group.*").map(\.action) == ["group.delete", "group.create"])
    }
}
