import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import StewardKit

/// SECURITY.md classes 14 to 17 and the smaller findings of the round-2 attack: one test per finding, each trying
/// the attack the way it was found.
@Suite("Security boundaries: the panel host, resources, disabled accounts, host names")
struct SecurityBoundaryTests {
    static let jsonBody: HTTPFields = [.contentType: "application/json"]
    static let lesserRoles: [Role] = [.operator, .approver, .viewer, .auditor]

    static func builtinIDs(_ harness: ServerHarness) throws -> (repository: Int64, plan: Int64) {
        try harness.server.database.read { db in
            (
                try #require(try Int64.fetchOne(db, sql: "SELECT id FROM backup_repositories WHERE builtin IS NOT NULL")),
                try #require(try Int64.fetchOne(db, sql: "SELECT id FROM backup_plans WHERE builtin IS NOT NULL"))
            )
        }
    }

    static func planBody(repository: Int64, paths: [String], hook: [String]? = nil, name: String = "attack") -> ByteBuffer {
        var object: [String: Any] = ["name": name, "repository": String(repository), "host": "localhost", "paths": paths]
        if let hook { object["pre_hook"] = hook }
        return ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
    }

    // MARK: class 14

    @Test("class 14: hooks are not free argv; no lesser role backs up, reads or restores the panel's secrets or touches built-in plans")
    func backupsStayInsideTheRole() async throws {
        let harness = try await ServerHarness()
        let (repository, builtinPlan) = try Self.builtinIDs(harness)
        let dataDirectory = harness.server.dataDirectory.path
        try await harness.test(as: [.operator]) { client in
            // Item 1: a hook is a name from the config repo's hooks/ folder, never a command line.
            for hook in [["/usr/bin/id"], ["/bin/sh", "-c", "id > /tmp/pwned"], ["../../usr/bin/id"], ["missing.sh"]] {
                try await client.execute(
                    uri: "/api/v1/backups/plans", method: .post, headers: Self.jsonBody,
                    body: Self.planBody(repository: repository, paths: ["/srv/steward-test-data"], hook: hook)
                ) { response in
                    #expect(response.status == .unprocessableContent, "\(hook)")
                    let detail = try json(response)["detail"] as? String ?? ""
                    #expect(detail.contains("hooks/"), "\(hook): \(detail)")
                }
            }
            // Item 2: the panel host's secrets, and anything that contains them.
            for paths in [
                ["/etc/shadow"], ["/etc/gshadow"], [dataDirectory], [dataDirectory + "/secret.key"], ["/etc"], ["/"], ["/root/.ssh"],
                ["/home/ann/.ssh/id_ed25519"], ["/etc/ssh/ssh_host_ed25519_key"],
            ] {
                try await client.execute(
                    uri: "/api/v1/backups/plans", method: .post, headers: Self.jsonBody, body: Self.planBody(repository: repository, paths: paths)
                ) { response in
                    #expect(response.status == .forbidden, "\(paths)")
                    #expect(text(response).contains("only an admin"), "\(paths)")
                }
            }
            // The built-in self-backup: neither edited, run, paused nor deleted by an operator.
            try await client.execute(
                uri: "/api/v1/backups/plans/\(builtinPlan)", method: .patch, headers: Self.jsonBody,
                body: ByteBuffer(string: #"{"paths":["/etc/shadow"]}"#)
            ) { response in #expect(response.status == .forbidden) }
            for action in ["run", "verify", "prune", "pause"] {
                try await client.execute(uri: "/api/v1/backups/plans/\(builtinPlan)/\(action)", method: .post) { response in
                    #expect(response.status == .forbidden, "\(action)")
                }
            }
            // Snapshot reads of secrets: refused before restic is asked.
            for path in ["/etc/shadow", dataDirectory + "/secret.key", dataDirectory + "/ssh/id_ed25519", "/root/.ssh/id_rsa"] {
                try await client.execute(
                    uri: "/api/v1/backups/repositories/\(repository)/snapshots/latest/file?path=\(path)", method: .get
                ) { response in #expect(response.status == .forbidden, "\(path)") }
            }
            try await client.execute(uri: "/api/v1/backups/repositories/\(repository)/snapshots/latest/tree?path=\(dataDirectory)", method: .get) {
                response in #expect(response.status == .forbidden)
            }
            // Restores of secrets, or over the panel's system paths.
            for body in [#"{"target":"/etc/cron.d","include":["/srv/x"]}"#, #"{"target":"/tmp/restore","include":["/etc/shadow"]}"#] {
                try await client.execute(
                    uri: "/api/v1/backups/repositories/\(repository)/snapshots/latest/restore", method: .post, headers: Self.jsonBody,
                    body: ByteBuffer(string: body)
                ) { response in #expect(response.status == .forbidden, "\(body): \(text(response))") }
            }
        }
        for role in Self.lesserRoles where role != .operator {
            try await harness.test(as: [role]) { client in
                try await client.execute(
                    uri: "/api/v1/backups/plans", method: .post, headers: Self.jsonBody,
                    body: Self.planBody(repository: repository, paths: ["/etc/shadow"])
                ) { response in #expect(response.status == .forbidden, "\(role)") }
                try await client.execute(uri: "/api/v1/backups/plans/\(builtinPlan)/run", method: .post) { response in
                    #expect(response.status == .forbidden, "\(role)")
                }
                try await client.execute(uri: "/api/v1/backups/repositories/\(repository)/snapshots/latest/file?path=/etc/shadow", method: .get) {
                    response in #expect(response.status == .forbidden, "\(role)")
                }
            }
        }
        // An admin may: the list is a boundary between roles, not a ban.
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/api/v1/backups/plans", method: .post, headers: Self.jsonBody,
                body: Self.planBody(repository: repository, paths: ["/etc/shadow"], name: "shadow by an admin")
            ) { response in #expect(response.status == .created, "\(text(response))") }
        }
    }

    @Test("class 14: an extra sensitive path from the configuration is guarded like the built-in ones")
    func sensitivePathsExtend() async throws {
        let harness = try await ServerHarness(configure: { $0.sensitivePaths = ["/srv/vault", "/home/*/.gnupg"] })
        let (repository, _) = try Self.builtinIDs(harness)
        try await harness.test(as: [.operator]) { client in
            for (paths, status) in [
                (["/srv/vault/keys"], HTTPResponse.Status.forbidden), (["/home/bob/.gnupg"], .forbidden), (["/srv/www"], .created),
            ] {
                try await client.execute(
                    uri: "/api/v1/backups/plans", method: .post, headers: Self.jsonBody,
                    body: Self.planBody(repository: repository, paths: paths, name: "p " + paths[0])
                ) { response in #expect(response.status == status, "\(paths): \(text(response))") }
            }
        }
        let guardList = SensitivePaths(dataDirectory: "/var/lib/steward", extra: ["/srv/vault"])
        #expect(guardList.overlapping("/") != nil && guardList.overlapping("/srv") != nil && guardList.overlapping("/srv/www") == nil)
        #expect(guardList.within("/etc") == nil && guardList.within("/etc/shadow") != nil && guardList.within("/home/x/.ssh/id_rsa") != nil)
    }

    @Test("class 14: accounts on the panel host and accounts that hold a Steward role change only through an admin")
    func accountsOfRoleHolders() async throws {
        let harness = try await ServerHarness()
        let server = harness.server
        // A fleet host with facts: ann is a plain user, boss holds admin, eve is in the granted group ops.
        _ = try server.access.roles.grant(.admin, to: .user, "boss", by: .system, now: Date())
        _ = try server.access.roles.grant(.operator, to: .group, "ops", by: .system, now: Date())
        let fleet = try await makeHostWithFacts(
            server, name: "web-01", address: "192.0.2.10",
            facts: #"""
                {"passwd": {"ann": ["x", "1001", "1001", "", "/home/ann", "/bin/bash"], "boss": ["x", "1002", "1002", "", "/home/boss", "/bin/bash"],
                            "eve": ["x", "1003", "1003", "", "/home/eve", "/bin/bash"]},
                 "group": {"ops": ["x", "1500", "eve"], "staff": ["x", "1600", "ann"]}, "shells": ["/bin/bash", "/bin/sh"]}
                """#)
        let hash = #"$6$salt$0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"#
        @Sendable func change(_ name: String, groups: [String]? = nil) -> ByteBuffer {
            var object: [String: Any] = ["action": "update", "name": name, "password": ["mode": "hash", "hash": hash]]
            if let groups { object["groups"] = groups }
            return ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
        }
        try await harness.test(as: [.operator]) { client in
            // The finding: a new password hash for an admin's account, through the panel host or a fleet host.
            for (host, name, groups) in [
                (1, "root", nil), (1, "tester-operator", nil), (Int(fleet.id), "boss", nil), (Int(fleet.id), "eve", nil),
                (Int(fleet.id), "ann", ["ops"]),
            ] as [(Int, String, [String]?)] {
                try await client.execute(
                    uri: "/api/v1/hosts/\(host)/users", method: .post, headers: Self.jsonBody, body: change(name, groups: groups)
                ) { response in
                    #expect(response.status == .unprocessableContent, "\(host) \(name)")
                    #expect(text(response).contains("only an admin"), "\(host) \(name): \(text(response))")
                }
            }
            try await client.execute(
                uri: "/api/v1/hosts/\(fleet.id)/groups", method: .post, headers: Self.jsonBody,
                body: ByteBuffer(string: #"{"action":"update","name":"ops","members":["eve","ann"]}"#)
            ) { response in #expect(response.status == .unprocessableContent && text(response).contains("holds the operator role")) }
            // A plain account on a fleet host stays the operator's to manage.
            try await client.execute(uri: "/api/v1/hosts/\(fleet.id)/users", method: .post, headers: Self.jsonBody, body: change("ann")) {
                response in #expect(response.status == .accepted, "\(text(response))")
            }
        }
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/api/v1/hosts/\(fleet.id)/users", method: .post, headers: Self.jsonBody, body: change("boss")) {
                response in #expect(response.status == .accepted, "\(text(response))")
            }
        }
    }

    // MARK: class 15

    @Test("class 15: a YAML alias bomb is refused with a 422 that names the limit, at once and without growing memory")
    func yamlBomb() async throws {
        var bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for level in 1...9 {
            let previous = Character(UnicodeScalar(UInt8(ascii: "a") + UInt8(level - 1)))
            let name = Character(UnicodeScalar(UInt8(ascii: "a") + UInt8(level)))
            bomb += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]\n"
        }
        bomb += "groups: *j\n"
        let document = bomb
        #expect(document.utf8.count < 500)
        let harness = try await ServerHarness()
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/api/v1/alerts/rules/import", method: .post, headers: [.contentType: "application/yaml"], body: ByteBuffer(string: document)
            ) { response in
                #expect(response.status == .unprocessableContent)
                #expect(text(response).contains("more than 200000 values"), "\(text(response))")
            }
        }
        // The same reader guards config-repo files (users/NAME.yml) and host variables.
        #expect(throws: YAMLReader.Refusal.self) { try YAMLReader.read(bomb, limits: .repositoryFile) }
        if case .failure(let error) = HostVariables.parse(bomb) { #expect(error.message.contains("anchors and aliases")) } else { Issue.record() }
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect { try YAMLReader.read(deep, limits: .document) } throws: { ($0 as? YAMLReader.Refusal)?.limit == "depth 64" }
        #expect { try YAMLReader.read("x: !!python/object:os.system 'id'", limits: .document) } throws: {
            ($0 as? YAMLReader.Refusal)?.limit == "tags"
        }
        // Ordinary anchors in a config file still read.
        let ordinary = try YAMLReader.read("base: &base {port: 80}\nweb: *base\n", limits: .repositoryFile) as? [String: Any]
        #expect((ordinary?["web"] as? [String: Any])?["port"] as? Int == 80)
    }

    @Test("class 15: a committed users/NAME.yml bomb does not hang the desired-accounts list")
    func repositoryBombDoesNotHang() async throws {
        var bomb = "name: x\na: &a [x,x,x,x,x,x,x,x,x,x]\n"
        for level in 1...8 {
            bomb += "l\(level): &l\(level) [" + Array(repeating: level == 1 ? "*a" : "*l\(level - 1)", count: 10).joined(separator: ",") + "]\n"
        }
        #expect(throws: AccountError.self) { try DesiredUser.parse(bomb) }
    }

    @Test("class 15: the connection caps leave room below the descriptor limit, and an idle connection makes room for a new one")
    func connectionCaps() {
        var configuration = StewardConfiguration(dataDirectory: "/tmp/x")
        configuration.maxConnections = 100_000
        #expect(ConnectionLimits.from(configuration, descriptorLimit: 1024).maximumConnections == 384)
        #expect(ConnectionLimits.from(configuration, descriptorLimit: 1_048_576).maximumConnections == 100_000)
        let counts = ConnectionCounts(
            limits: ConnectionLimits(maximumConnections: 2, maximumPerAddress: 2, headerTimeout: .seconds(10), idleTimeout: .seconds(60)))
        let loop = EmbeddedEventLoop()
        let channels = (0..<4).map { _ in EmbeddedChannel(loop: loop) }
        #expect(counts.open(channels[0], address: "192.0.2.1", now: .uptimeNanoseconds(1)) == nil)
        #expect(counts.open(channels[1], address: "192.0.2.2", now: .uptimeNanoseconds(2)) == nil)
        counts.busy(channels[1])
        // Full: the connection still waiting for its request head longest is closed for the newcomer.
        #expect(counts.open(channels[2], address: "192.0.2.3", now: .uptimeNanoseconds(3)) == nil)
        #expect(!channels[0].isActive || counts.evicted == 1)
        #expect(counts.close(channels[0], address: "192.0.2.1") == false)
        #expect(counts.open == 2)
        counts.busy(channels[2])
        // Full and everyone busy: refused.
        #expect(counts.open(channels[3], address: "192.0.2.4") != nil)
        #expect(counts.close(channels[1], address: "192.0.2.2") && counts.open == 1)
        // The victim comes from the address holding the most waiting connections, even when another waited longer.
        let fair = ConnectionCounts(
            limits: ConnectionLimits(maximumConnections: 3, maximumPerAddress: 3, headerTimeout: .seconds(10), idleTimeout: .seconds(60)))
        let more = (0..<4).map { _ in EmbeddedChannel(loop: loop) }
        #expect(fair.open(more[0], address: "192.0.2.20", now: .uptimeNanoseconds(1)) == nil)
        #expect(fair.open(more[1], address: "192.0.2.66", now: .uptimeNanoseconds(2)) == nil)
        #expect(fair.open(more[2], address: "192.0.2.66", now: .uptimeNanoseconds(3)) == nil)
        #expect(fair.open(more[3], address: "192.0.2.66", now: .uptimeNanoseconds(4)) == nil)
        #expect(fair.close(more[1], address: "192.0.2.66") == false && fair.close(more[0], address: "192.0.2.20"))
        let perAddress = ConnectionCounts(
            limits: ConnectionLimits(maximumConnections: 10, maximumPerAddress: 1, headerTimeout: .seconds(10), idleTimeout: .seconds(60)))
        #expect(perAddress.open(channels[0], address: "192.0.2.9") == nil)
        #expect(perAddress.open(channels[1], address: "192.0.2.9")?.contains("192.0.2.9") == true)
    }

    @Test("class 15: deep JSON and oversized bodies are 4xx, with words rather than Swift's debug text")
    func jsonLimits() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.admin]) { client in
            let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
            try await client.execute(uri: "/api/v1/hosts", method: .post, headers: Self.jsonBody, body: ByteBuffer(string: deep)) { response in
                #expect((400..<500).contains(Int(response.status.code)))
            }
            let huge = ByteBuffer(repeating: UInt8(ascii: "a"), count: 5 << 20)
            try await client.execute(uri: "/api/v1/hosts", method: .post, headers: Self.jsonBody, body: huge) { response in
                #expect(response.status == .contentTooLarge)
            }
            try await client.execute(
                uri: "/api/v1/hosts/1/users", method: .post, headers: Self.jsonBody, body: ByteBuffer(string: #"{"action":"create","name":7}"#)
            ) { response in
                #expect(response.status == .unprocessableContent)
                #expect(text(response).contains("must be a string"), "\(text(response))")
                #expect(!text(response).contains("DecodingError") && !text(response).contains("codingPath") && !text(response).contains("CodingKeys"))
            }
        }
    }

    // MARK: class 16

    @Test("class 16: sessions and tokens of deleted, locked, expired and must-change accounts get 401 that says why")
    func disabledAccounts() async throws {
        let standings = Mutex<[String: AccountStanding]>([:])
        let harness = try await ServerHarness(accountStanding: { user in standings.withLock { $0[user] ?? .usable } })
        for (user, standing, words) in [
            ("gone", AccountStanding.deleted, "no longer exists"), ("locked", .locked, "is locked"), ("expired", .expired, "has expired"),
            ("stale", .passwordChangeRequired, "must change its password"),
        ] {
            let session = try harness.signIn(user, as: [.operator])
            let (token, _) = try harness.server.access.tokens.create(
                user: user, name: "t", role: .operator, lifetime: 86_400, ownerRoles: [.operator], by: .system, now: Date())
            standings.withLock { $0[user] = standing }
            try await harness.server.makeApplication().test(.router) { client in
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                    #expect(response.status == .unauthorized && text(response).contains(words), "\(user): \(text(response))")
                }
                try await client.execute(uri: "/api/v1/me", method: .get, headers: session.headers) { response in
                    #expect(response.status == .unauthorized && text(response).contains(words), "\(user): \(text(response))")
                }
                // The session is over for good, not only while the account is out of order.
                standings.withLock { $0[user] = .usable }
                try await client.execute(uri: "/api/v1/me", method: .get, headers: session.headers) { response in
                    #expect(response.status == .unauthorized)
                }
            }
        }
    }

    @Test("class 16: standings are read again after at most a minute")
    func standingCache() async {
        let answer = Mutex(AccountStanding.usable)
        let cache = AccountStandingCache(lookup: { _ in answer.withLock { $0 } })
        let start = Date(timeIntervalSince1970: 1_000_000)
        #expect(await cache.standing(of: "ann", now: start) == .usable)
        answer.withLock { $0 = .locked }
        #expect(await cache.standing(of: "ann", now: start.addingTimeInterval(30)) == .usable)
        #expect(await cache.standing(of: "ann", now: start.addingTimeInterval(61)) == .locked)
    }

    @Test("class 16: a token owner's groups are read again after at most the re-check interval")
    func groupCache() {
        let groups = Mutex(["ops"])
        let cache = AccountStandingCache(maximumAge: 60) { _ in .usable }
        let start = Date(timeIntervalSince1970: 1_000_000)
        let lookup: (String) -> [String] = { _ in groups.withLock { $0 } }
        #expect(cache.groups(of: "ann", now: start, lookup: lookup) == ["ops"])
        groups.withLock { $0 = [] }
        #expect(cache.groups(of: "ann", now: start.addingTimeInterval(30), lookup: lookup) == ["ops"])
        #expect(cache.groups(of: "ann", now: start.addingTimeInterval(61), lookup: lookup) == [])
        // A clock that went back is not trusted to keep an entry.
        groups.withLock { $0 = ["ops"] }
        #expect(cache.groups(of: "ann", now: start, lookup: lookup) == ["ops"])
    }

    @Test("class 16: the real shadow database: root exists here, a made-up name does not")
    func realStanding() {
        #expect(AccountStanding.read(user: "steward-test-no-such-user") == .deleted)
        #expect(AccountStanding.read(user: "root") != .deleted)
    }

    // MARK: class 17

    @Test("class 17: a foreign Host is refused before any page; the Origin check never trusts the request's Host")
    func hostHeader() async throws {
        let harness = try await ServerHarness()
        // The router test client always says Host: localhost; Tests/e2e/test_security_boundaries.py sends foreign ones.
        try await harness.test(as: [.admin]) { client in
            // A served name with a foreign Origin: the Origin is compared with our own origins, never with the Host.
            for origin in ["http://localhost:10001", "http://evil.example", "null"] {
                try await client.execute(
                    uri: "/api/v1/hosts", method: .post, headers: [.origin: origin, .contentType: "application/json"],
                    body: ByteBuffer(string: #"{"name":"x","address":"192.0.2.1"}"#)
                ) { response in #expect(response.status == .forbidden, "\(origin)") }
            }
            try await client.execute(
                uri: "/api/v1/hosts", method: .post, headers: [.origin: "http://localhost:10000", .contentType: "application/json"],
                body: ByteBuffer(string: #"{"name":"x","address":"192.0.2.1"}"#)
            ) { response in #expect(response.status == .created) }
        }
        var configuration = StewardConfiguration(dataDirectory: "/tmp/x")
        configuration.externalURL = "https://panel.example.com"
        configuration.allowedHosts = ["proxy.example.net"]
        let allowlist = HostAllowlist(configuration: configuration, machineNames: ["panel-1", "10.0.0.5", "fe80::1"])
        for good in [
            "panel.example.com", "PANEL.example.com:443", "proxy.example.net", "localhost:10000", "127.0.0.1:10000", "[::1]:10000", "panel-1",
            "10.0.0.5",
        ] {
            #expect(allowlist.allows(authority: good), "\(good)")
        }
        for bad in ["evil.example", "panel.example.com.evil.example", "127.0.0.2", "[fe80::2]"] {
            #expect(!allowlist.allows(authority: bad), "\(bad)")
        }
        #expect(allowlist.origins.contains("https://panel.example.com") && !allowlist.origins.contains("https://evil.example"))
    }

    // MARK: smaller findings (item 9)

    @Test("item 9: disabled and busy hosts are 409s with words; only localhost is local; version and host name only for signed-in users")
    func smallerFindings() async throws {
        let harness = try await ServerHarness()
        let server = harness.server
        let panel = try #require(try server.hosts.host(named: "localhost"))
        var settings = HostStore.settings(of: panel)
        settings.enabled = false
        let localhost = try #require(try server.hosts.update(id: panel.id, settings, by: .system, now: Date()))
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/api/v1/hosts/\(localhost.id)/users", method: .post, headers: Self.jsonBody,
                body: ByteBuffer(string: #"{"action":"create","name":"steward-test-x"}"#)
            ) { response in #expect(response.status == .conflict && text(response).contains("disabled"), "\(text(response))") }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)", method: .delete) { response in
                #expect(response.status == .conflict && text(response).contains("panel host"), "\(text(response))")
                #expect(!text(response).contains("constraint"))
            }
            try await client.execute(
                uri: "/api/v1/hosts", method: .post, headers: Self.jsonBody,
                body: ByteBuffer(string: #"{"name":"sneaky","address":"192.0.2.7","transport":"local"}"#)
            ) { response in #expect(response.status == .unprocessableContent && text(response).contains("only localhost")) }
            try await client.execute(uri: "/healthz", method: .get) { response in #expect(text(response).contains("version")) }
            try await client.execute(uri: "/jobs", method: .get) { response in
                #expect(text(response).contains("Steward \(StewardVersion.current) on"))
            }
        }
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in #expect(text(response) == #"{"status":"ok"}"#) }
            try await client.execute(uri: "/readyz", method: .get) { response in #expect(!text(response).contains("version")) }
            try await client.execute(uri: "/login", method: .get) { response in
                #expect(!text(response).contains(StewardVersion.current) && !text(response).contains("footer"))
            }
        }
        // A host that a backup plan uses is not removed underneath it (the store, not the service: the check is the host's).
        let (repository, _) = try Self.builtinIDs(harness)
        let fleet = try server.hosts.create(
            {
                var settings = HostSettings()
                settings.name = "db-01"
                settings.address = "192.0.2.20"
                return settings
            }(), by: .system, now: Date())
        let store = BackupStore(database: server.database, sealer: SecretSealer(masterKey: try server.dataDirectory.secretKey(), purpose: "tests"))
        var plan = BackupPlan()
        plan.name = "db"
        plan.hostID = fleet.id
        plan.repositoryID = repository
        plan.paths = ["/srv"]
        _ = try store.createPlan(plan, timing: BackupPlanTiming(), hostName: "db-01", by: .system, now: Date())
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/api/v1/hosts/\(fleet.id)", method: .delete) { response in
                #expect(response.status == .conflict, "\(text(response))")
                let detail = try json(response)["detail"] as? String ?? ""
                #expect(detail.contains("backup plan \"db\""), "\(detail)")
            }
        }
        #expect(try server.hosts.host(id: fleet.id) != nil)
    }

    @Test("item 9: TLS 1.2 offers forward-secret AEAD suites only")
    func aeadOnly() {
        #expect(TLSMaterial.tls12CipherSuites == "ECDHE+AESGCM:ECDHE+CHACHA20")
    }

    // MARK: the privileged helper (item 8)

    @Test("item 8: the helper takes only restic commands Steward itself writes")
    func resticGrammar() {
        let steward: [[String]] = [
            ["backup", "--json", "--tag", "steward-plan-3", "--host", "localhost", "--exclude", "*.tmp", "--", "/srv/data", "/etc/nginx"],
            ["unlock"], ["check"], ["check", "--read-data-subset", "5%"],
            ["forget", "--json", "--tag", "steward-plan-3", "--group-by", "tags", "--prune", "--keep-last", "3", "--keep-within", "7d"],
            ["forget", "--dry-run", "--no-lock", "--json", "--tag", "steward-plan-3", "--group-by", "tags", "--keep-daily", "7"],
            ["restore", "5b4dbedd", "--target", "/srv/restore", "--verify", "--include", "/srv/data/a"],
            ["snapshots", "--json", "--no-lock"], ["snapshots", "--json", "--no-lock", "--tag", "steward-plan-1"],
            ["ls", "--json", "--no-lock", "latest"], ["ls", "--json", "--no-lock", "5b4dbedd", "/srv"], ["dump", "--no-lock", "latest", "/srv/a"],
            ["stats", "--json", "--no-lock", "--mode", "raw-data"], ["init"],
        ]
        for arguments in steward { #expect(ResticGrammar.problem(arguments) == nil, "\(arguments): \(ResticGrammar.problem(arguments) ?? "")") }
        let attacks: [[String]] = [
            ["snapshots", "--password-command", "id"], ["snapshots", "-o", "sftp.command=sh -c id"], ["snapshots", "--option", "sftp.command=id"],
            ["snapshots", "--repo", "/etc"], ["snapshots", "-r", "/"], ["self-update"], ["key", "add"], ["backup", "--json", "--", "../etc"],
            ["backup", "--files-from", "/etc/shadow", "--", "/srv"], ["backup", "--json"], ["restore", "latest", "--target", "/srv/../etc"],
            ["dump", "--no-lock", "latest"], ["ls", "--json", "--no-lock", "$(id)"], ["forget", "--keep-last", "-1"],
            ["check", "--read-data-subset", "1/0"], ["backup", "--tag", "other", "--", "/srv"], ["cache", "--cleanup"],
            ["snapshots", "--json\u{0}x"],
        ]
        for arguments in attacks { #expect(ResticGrammar.problem(arguments) != nil, "\(arguments)") }
        #expect(
            PanelCommandRunner.refusal(.probe(path: "../etc")) != nil && PanelCommandRunner.refusal(.hook(plan: 1, phase: "x", result: nil)) != nil)
    }

    @Test("item 8: the helper answers typed requests over a real socket pair and refuses a restic command outside the grammar")
    func helperOverSocketPair() async throws {
        let directory = TemporaryDirectory()
        let (helperEnd, webEnd) = try PrivilegeSeparation.socketPair()
        let helper = PrivilegedHelper(
            descriptor: helperEnd, pamService: "steward-test-no-such-service", dataDirectory: DataDirectory(path: directory.path + "/data"),
            logger: quietLogger)
        Thread.detachNewThread { helper.serve() }
        let client = HelperClient(descriptor: webEnd)
        #expect(try await client.ask(.standing(user: "steward-test-no-such-user")) == .standing("deleted"))
        #expect(try await client.ask(.standing(user: "root")) != .standing("deleted"))
        await #expect {
            _ = try await client.runPanelCommand(.restic(repository: 1, arguments: ["snapshots", "--password-command", "id"])) { _ in }
        } throws: {
            "\($0)".contains("refused") && "\($0)".contains("--password-command")
        }
        // Concurrent requests each get their own answer.
        async let a = client.ask(.standing(user: "root"))
        async let b = client.ask(.standing(user: "steward-test-no-such-user"))
        let (first, second) = try await (a, b)
        #expect(first != second)
        close(webEnd)
    }

    @Test("a helper that dies ends the web process before any waiting request fails, so no job records a failure of its own")
    func helperGoneRunsOnClosedFirst() async throws {
        let (helperEnd, webEnd) = try PrivilegeSeparation.socketPair()
        let closedFirst = Mutex(false)
        let client = HelperClient(descriptor: webEnd) { _ in closedFirst.withLock { $0 = true } }
        let waiting = Task { try await client.ask(.standing(user: "root")) }
        // Nothing serves the helper's end; closing it is the helper dying mid-request.
        try await Task.sleep(for: .milliseconds(50))
        close(helperEnd)
        await #expect(throws: HelperError.self) { _ = try await waiting.value }
        #expect(closedFirst.withLock { $0 }, "onClosed ran before the waiting request was failed")
        close(webEnd)
    }
}
