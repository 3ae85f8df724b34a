import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Packages: installed packages per host and across the fleet, searches and changes as audited jobs")
struct PackagesTests {
    /// dpkg-query output of a host with 400 packages: installed ones, one held (`hi`), removed ones that left their
    /// configuration (`rc`), epochs, multiarch libraries and plus signs.
    static func dpkg() -> String {
        var lines: [String] = []
        for index in 0..<390 { lines.append("pkg\(index)\t1.\(index)-1\tamd64\tii ") }
        lines += [
            "libstdc++6\t12.2.0-14\tamd64\tii ", "openssh-server\t1:9.2p1-2+deb12u3\tamd64\tii ", "sudo\t1.9.13p3-1+deb12u1\tamd64\tii ",
            "nginx\t1.22.1-9\tamd64\thi ", "old-tool\t0.9-1\tamd64\trc ", "libc6\t2.36-9+deb12u7\ti386\tii ", "python3\t3.11.2-1+b1\tamd64\tii ",
            "gone\t1.0\tall\tun ", "broken line", "zlib1g\t1:1.2.13.dfsg-1\tamd64\tii ",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    @Test("dpkg and rpm listings parse; only installed packages count, holds are marked")
    func parses() throws {
        let packages = PackageListing.parseDpkg(Self.dpkg(), held: ["sudo"])
        #expect(packages.count == 390 + 7)
        #expect(packages.first { $0.name == "nginx" }?.held == true && packages.first { $0.name == "sudo" }?.held == true)
        #expect(packages.first { $0.name == "openssh-server" }?.version == "1:9.2p1-2+deb12u3")
        #expect(!packages.contains { $0.name == "old-tool" || $0.name == "gone" })
        let rpm = PackageListing.parseRpm("bash\t5.2.15-1.fc39\tx86_64\nkernel-core\t6.5.6-300.fc39\tx86_64\nbad\n", held: ["bash"])
        #expect(rpm.map(\.name) == ["bash", "kernel-core"] && rpm[0].held)
        #expect(PackageListing.manager(osRelease: "ID=debian\nVERSION_ID=12\n") == .apt)
        #expect(PackageListing.manager(osRelease: "ID=ubuntu\nID_LIKE=debian\n") == .apt)
        #expect(PackageListing.manager(osRelease: "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n") == .dnf)
        #expect(PackageListing.manager(osRelease: "ID=alpine\n") == nil)
        for name in ["nginx", "libstdc++6", "python3.11", "g++-12", "0ad"] { #expect(PackageListing.isPackageName(name), "\(name)") }
        for name in ["", "-rf", "a b", "nginx;reboot", "$(id)", "{{x}}", "é", String(repeating: "a", count: 129)] {
            #expect(!PackageListing.isPackageName(name), "\(name)")
        }
        let found = PackageListing.parseSearch(
            "nginx - small, powerful, scalable web/proxy server\nnginx-light - nginx web/proxy server (basic version)\nnginx - again\n;rm - bad\n",
            manager: .apt)
        #expect(found.map(\.name) == ["nginx", "nginx-light"] && found[0].summary == "small, powerful, scalable web/proxy server")
        #expect(PackageListing.parseSearch("htop 3.2.2-2.fc39 Interactive process viewer\n", manager: .dnf).first?.version == "3.2.2-2.fc39")
    }

    @Test("the panel host's packages are read for real and match its own dpkg-query")
    func panelHost() async throws {
        let harness = try await ServerHarness()
        let localhost = try #require(try harness.server.hosts.all().first { $0.transport == .local })
        let probe = try ShortCommand.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n"])
        // One line per installed package and architecture (the status is "ii " or "hi ", with its trailing space).
        let installed = probe.stdout.split(separator: "\n").map { $0.split(separator: " ") }.filter { $0.count == 2 && ["ii", "hi"].contains($0[1]) }
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/packages/refresh", method: .post) { response in
                #expect(response.status == .ok)
                let object = try json(response)
                #expect(object["manager"] as? String == "apt" && object["total"] as? Int == installed.count, "\(object["error"] ?? "")")
            }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/packages?q=sqlite", method: .get) { response in
                let names = (try json(response)["packages"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                #expect(names.contains("libsqlite3-dev"))
            }
            try await client.execute(uri: "/hosts/\(localhost.id)/packages?q=libpam0g-dev", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("data-package=\"libpam0g-dev\"") && page.contains("id=\"packages-as-of\""))
                #expect(!page.contains("id=\"remove-libpam0g-dev\""), "operators see no change buttons")
            }
            // A search of the panel host's own repositories, with what is installed marked.
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/packages/search?q=libpam0g", method: .get) { response in
                #expect(response.status == .ok)
                let items = (try json(response)["items"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                #expect(items.contains("libpam0g-dev"), "\(items)")
            }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/packages/search?q=a%20b", method: .get) { response in
                #expect(response.status == .unprocessableContent)
            }
            try await client.execute(uri: "/api/v1/packages?name=libsqlite3-dev", method: .get) { response in
                let object = try json(response)
                #expect((object["items"] as? [[String: Any]])?.first?["host"] as? String == "localhost")
            }
        }
    }

    @Test("changes are checked against the reading, only admins make them, and each is an audited job; the fleet view names who lacks a package")
    func changesAndFleet() async throws {
        let harness = try await ServerHarness()
        let store = HostReadingStore(database: harness.server.database)
        var hosts: [StewardKit.Host] = []
        for index in 0..<50 {
            let host = try ServiceActionsTests.readHost(harness, name: "node-\(index)")
            hosts.append(host)
            var packages = PackageListing.parseDpkg(Self.dpkg(), held: [])
            if index % 10 == 0 { packages.removeAll { $0.name == "nginx" } }
            if index == 1 { packages[packages.firstIndex { $0.name == "nginx" }!].version = "1.24.0-1" }
            try store.save(
                HostReading(hostID: host.id, readAt: Date(), body: PackageListing(manager: .apt, packages: packages), error: nil),
                kind: PackageListing.kind)
        }
        let web = hosts[1]
        @Sendable func change(_ client: any TestClientProtocol, _ body: String) async throws -> (HTTPResponse.Status, [String: Any]) {
            try await client.execute(
                uri: "/api/v1/hosts/\(web.id)/packages/actions", method: .post, headers: ServiceActionsTests.jsonHeaders,
                body: ByteBuffer(string: body)
            ) { response in (response.status, (try? json(response)) ?? [:]) }
        }
        try await harness.test(as: [.admin]) { client in
            var (status, job) = try await change(client, #"{"name":"nginx","action":"hold"}"#)
            #expect(status == .accepted, "\(job)")
            let stored = try #require(try harness.server.jobs.store.job(id: Int64(job["id"] as? Int ?? 0)))
            #expect(stored.kind == PackageChange.kind && stored.title == "Hold package nginx on node-1")
            #expect(
                try JSONDecoder().decode(PackageChange.self, from: Data(stored.params.utf8)).variables == [
                    "steward_package": ["name": "nginx", "hold": true]
                ])
            var filter = AuditFilter()
            filter.action = "package.hold"
            #expect(try AuditLog.events(harness.server.database, filter).first?.after?.contains("dpkg_selections") == true)
            (status, job) = try await change(client, #"{"name":"pkg7","action":"remove"}"#)
            #expect(status == .accepted)
            (status, job) = try await change(client, #"{"name":"notthere","action":"remove"}"#)
            #expect(status == .unprocessableContent && (job["errors"] as? [String: String])?["name"]?.contains("not installed") == true)
            (status, job) = try await change(client, #"{"name":"openssh-server","action":"remove"}"#)
            #expect(status == .unprocessableContent && (job["errors"] as? [String: String])?["confirm"] != nil)
            (status, job) = try await change(client, #"{"name":"openssh-server","action":"remove","confirm":"openssh-server"}"#)
            #expect(status == .accepted)
            (status, job) = try await change(client, #"{"name":"nginx;reboot","action":"install"}"#)
            #expect(status == .unprocessableContent && (job["errors"] as? [String: String])?["name"] != nil)
            (status, job) = try await change(client, #"{"name":"nginx","action":"upgrade"}"#)
            #expect(status == .unprocessableContent && (job["errors"] as? [String: String])?["action"] != nil)
            // Installing searches the host's repositories first: a host whose key was never confirmed is not asked.
            (status, job) = try await change(client, #"{"name":"htop","action":"install"}"#)
            #expect(status == .conflict)
            try await client.execute(uri: "/api/v1/packages?name=nginx", method: .get) { response in
                let object = try json(response)
                let items = object["items"] as? [[String: Any]] ?? []
                #expect(items.count == 45 && Set(items.compactMap { $0["version"] as? String }) == ["1.22.1-9", "1.24.0-1"])
                #expect(Set(object["lacking"] as? [String] ?? []) == Set(stride(from: 0, to: 50, by: 10).map { "node-\($0)" }))
                #expect(object["unread"] as? [String] == ["localhost"])
            }
            try await client.execute(uri: "/packages?name=nginx", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("2 version(s)") && page.contains("Hosts without nginx") && page.contains("node-40"))
            }
            try await client.execute(uri: "/hosts/\(web.id)/packages?q=nginx", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("id=\"hold-nginx\"") && page.contains("id=\"remove-nginx\"") && page.contains("1.24.0-1"))
            }
        }
        try await harness.test(as: [.operator]) { client in
            let (status, _) = try await change(client, #"{"name":"nginx","action":"remove"}"#)
            #expect(status == .forbidden)
        }
    }
}
