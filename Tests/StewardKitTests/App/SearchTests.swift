import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import StewardKit

@Suite("Search and the navigation's firing count")
struct SearchTests {
    static func searchPage(_ client: any TestClientProtocol, _ query: String) async throws -> String {
        let captured = Captured("")
        try await client.execute(uri: "/search?" + query, method: .get) { response in
            #expect(response.status == .ok)
            captured.value = text(response)
        }
        return captured.value
    }

    @Test("one box finds hosts, tags, Unix users and groups, packages, jobs, rules, plans, schedules and pages")
    func findsEveryKind() async throws {
        let harness = try await ServerHarness()
        let server = harness.server
        let facts = #"""
            {"passwd": {"postgres": ["x", "115", "121", "PostgreSQL administrator,,,", "/var/lib/postgresql", "/bin/bash"],
                        "ann": ["x", "1001", "1001", "Ann Example", "/home/ann", "/bin/bash"]},
             "group": {"postgres": ["x", "121", ""], "staff": ["x", "1600", "ann"]}, "shells": ["/bin/bash"],
             "upgrade_lines": ["Inst postgresql-15 [15.4-0+deb12u1] (15.8-0+deb12u1 Debian-Security:12/stable-security [amd64])",
                               "Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/stable [all])"]}
            """#
        let database = try await makeHostWithFacts(server, name: "db-01", address: "192.0.2.41", facts: facts)
        _ = try await makeHostWithFacts(server, name: "db-02", address: "192.0.2.42", facts: facts)
        var web = HostSettings()
        web.name = "web-01"
        web.address = "192.0.2.50"
        web.tags = ["postgres-client"]
        _ = try server.hosts.create(web, by: .system, now: Date())
        _ = try await harness.server.jobs.enqueue(JobRequest(kind: "test.echo", title: "Vacuum postgres on db-01", startedBy: "test"))
        try await harness.test(as: [.viewer]) { client in
            // "+" is a space, as a GET form sends it; case does not matter.
            let page = try await Self.searchPage(client, "q=POSTGRES")
            #expect(page.contains(#"<a href="/hosts?tag=postgres-client">tag: postgres-client</a>"#))
            #expect(page.contains(#"<a href="/accounts">postgres</a> <span class="muted">uid 115 on db-01, db-02</span>"#))
            #expect(page.contains("postgresql-15</a> <span class=\"muted\">security · 15.4-0+deb12u1 → 15.8-0+deb12u1 on db-01, db-02"))
            #expect(page.contains("Vacuum postgres on db-01</a>"))
            #expect(!page.contains(">tzdata<"), "only what matches")
            let host = try await Self.searchPage(client, "q=db-01")
            #expect(host.contains(#"<a href="/hosts/\#(database.id)">db-01</a>"#))
            let gecos = try await Self.searchPage(client, "q=ann+example")
            #expect(gecos.contains(#">ann</a>"#) && gecos.contains("1 match(es)"))
            let places = try await Self.searchPage(client, "q=retention")
            #expect(places.contains(#"<a href="/settings/storage">Storage and retention</a>"#))
            // A viewer is not shown admin pages.
            let roles = try await Self.searchPage(client, "q=roles")
            #expect(!roles.contains(#"href="/settings/roles""#) && roles.contains("Nothing matches"))
            let rules = try await Self.searchPage(client, "q=disk")
            #expect(rules.contains(#"href="/alerts/rules/"#))
            // SQL wildcards are plain characters ("Vacuum postgres on db-01" would match V%01 as a LIKE pattern).
            let percent = try await Self.searchPage(client, "q=V%2501")
            #expect(percent.contains("Nothing matches"))
        }
        try await harness.test(as: [.admin]) { client in
            let roles = try await Self.searchPage(client, "q=roles")
            #expect(roles.contains(#"<a href="/settings/roles">Roles</a>"#))
        }
    }

    @Test("firing alerts are counted in the navigation and listed on the dashboard; with no channel, pages say nobody is told")
    func firingCount() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/", method: .get) { response in #expect(!text(response).contains("nav-count-alerts")) }
        }
        try await harness.server.database.write { db in
            let rule = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM alert_rules ORDER BY id LIMIT 1"))
            let host = try #require(try Int64.fetchOne(db, sql: "SELECT id FROM hosts WHERE name = 'localhost'"))
            try db.execute(
                sql: "INSERT OR REPLACE INTO alert_states (rule_id, host_id, state, severity, since, evaluated_at) VALUES (?, ?, 'firing', 'critical', 0, 0)",
                arguments: [rule, host])
        }
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/hosts", method: .get) { response in
                #expect(text(response).contains(#"<span class="nav-count" id="nav-count-alerts" title="1 firing now">1</span>"#))
            }
            // The dashboard lists it, and the pages people check say that nobody is notified while no channel exists.
            try await client.execute(uri: "/", method: .get) { response in
                let page = text(response)
                #expect(page.contains(#"id="firing-list""#) && page.contains(#"<span class="badge badge-critical">critical</span>"#))
                #expect(page.contains(" on <a href=\"/hosts/") && page.contains("localhost</a>"))
            }
            for path in ["/", "/alerts", "/settings"] {
                try await client.execute(uri: path, method: .get) { response in #expect(text(response).contains(#"id="no-channel-warning""#), "\(path)") }
            }
        }
    }
}
