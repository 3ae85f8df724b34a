import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

/// A concrete request for a declared route: parameters filled with values that name nothing.
func sampleRequest(_ route: String) -> (method: HTTPRequest.Method, uri: String) {
    let parts = route.split(separator: " ", maxSplits: 1).map(String.init)
    let path = parts[1].replacingOccurrences(of: #"\{[a-z_]+\}"#, with: "999999", options: .regularExpression)
    return (HTTPRequest.Method(parts[0])!, path)
}

/// True when the access middleware (not the handler) turned the request away.
func refusedByAccessControl(_ response: TestResponse) -> Bool {
    switch response.status {
    case .unauthorized:
        return text(response).contains("sign in, or send an API token")
    case .seeOther:
        // The middleware's redirect to sign in sets no cookie; a handler's redirect after logout does.
        return (response.headers[.location] ?? "").hasPrefix("/login") && response.headers[.setCookie] == nil
    case .forbidden:
        return text(response).contains("permission")
    default:
        return false
    }
}

@Suite("Access control: routes, roles, CSRF and the attack classes")
struct AccessControlTests {
    @Test("every route the router knows declares a permission, and the table names no route that does not exist")
    func everyRouteDeclaresAPermission() async throws {
        let harness = try await ServerHarness()
        let routed = Set(harness.server.router.routes.map { "\($0.method.rawValue) \($0.path)" })
        let declared = Set(harness.server.routeTable.all.map(\.route))
        #expect(routed == declared, "undeclared: \(routed.subtracting(declared)); declared but absent: \(declared.subtracting(routed))")
        #expect(routed.count > 40)
    }

    @Test("the router walk: every identity (none, and each role) against every route gets exactly what the route declares")
    func everyRoleAgainstEveryRoute() async throws {
        let harness = try await ServerHarness()
        let routes = harness.server.routeTable.all
        let identities: [Set<Role>?] = [nil] + Role.allCases.map { [$0] }
        try await harness.server.makeApplication().test(.router) { client in
            for identity in identities {
                for (route, permission) in routes {
                    let (method, uri) = sampleRequest(route)
                    let allowed = permission == .anonymous || (identity.map { permissions(of: $0).union([.session]) }?.contains(permission) ?? false)
                    var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
                    if let identity {
                        // A fresh session each time: some routes (logout, revoke) end the one they are given.
                        let session = try harness.signIn("walker-" + identity.map(\.rawValue).joined(), as: identity)
                        headers.append(contentsOf: session.headers)
                    }
                    try await client.execute(uri: uri, method: method, headers: headers, body: ByteBuffer()) { response in
                        let who = identity.map { $0.map(\.rawValue).joined() } ?? "anonymous"
                        #expect(
                            refusedByAccessControl(response) == !allowed,
                            "\(who) \(route) needs \(permission.rawValue): got \(response.status.code) \(text(response).prefix(160))")
                    }
                }
            }
        }
    }

    @Test("class 2: without a session only sign-in, setup, health and Public/ answer; every other path sends you to sign in")
    func unauthenticatedPaths() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: nil) { client in
            let open = Set(harness.server.routeTable.all.filter { $0.permission == .anonymous }.map(\.route))
            #expect(open == ["GET /healthz", "GET /readyz", "GET /login", "POST /login", "GET /setup", "POST /setup"])
            for (route, _) in harness.server.routeTable.all where !open.contains(route) {
                let (method, uri) = sampleRequest(route)
                try await client.execute(uri: uri, method: method) { response in
                    #expect(refusedByAccessControl(response), "\(route) answered \(response.status.code) without a session")
                }
            }
            for uri in ["/no-such-page", "/api/v1/no-such-thing", "/metrics", "/api/openapi.json", "/api/v1/audit", "/jobs/1/events"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(refusedByAccessControl(response), "\(uri) answered \(response.status.code)")
                }
            }
            try await client.execute(uri: "/jobs?state=failed", method: .get) { response in
                #expect(response.headers[.location] == "/login?next=/jobs%3Fstate%3Dfailed", "sent back after sign-in")
            }
            for uri in ["/healthz", "/readyz", "/login", "/setup", "/css/steward.css", "/js/steward.js", "/img/steward.svg"] {
                try await client.execute(uri: uri, method: .get) { response in #expect(response.status == .ok, "\(uri)") }
            }
        }
    }

    @Test("class 4: a state-changing request without the session's CSRF token, with a wrong one, or from another origin is refused")
    func csrf() async throws {
        let harness = try await ServerHarness()
        try await harness.server.makeApplication().test(.router) { client in
            for (route, _) in harness.server.routeTable.all where !route.hasPrefix("GET ") {
                let (method, uri) = sampleRequest(route)
                let session = try harness.signIn("csrf-admin", as: [.admin])
                let cookie: HTTPFields = [.cookie: "steward_session=\(session.cookie)", .contentType: "application/x-www-form-urlencoded"]
                try await client.execute(uri: uri, method: method, headers: cookie, body: ByteBuffer(string: "name=x")) { response in
                    #expect(response.status == .forbidden, "\(route) without a token: \(response.status.code)")
                }
                try await client.execute(uri: uri, method: method, headers: cookie, body: ByteBuffer(string: "csrf_token=forged&name=x")) {
                    response in
                    #expect(response.status == .forbidden, "\(route) with a forged token: \(response.status.code)")
                }
                var foreign = session.headers
                foreign[.origin] = "https://evil.example"
                try await client.execute(uri: uri, method: method, headers: foreign) { response in
                    #expect(response.status == .forbidden, "\(route) from another origin: \(response.status.code)")
                }
            }
            // The same session's token in the form body is accepted (what the pages send).
            let session = try harness.signIn("csrf-admin", as: [.admin])
            try await client.execute(
                uri: "/settings/roles", method: .post,
                headers: [.cookie: "steward_session=\(session.cookie)", .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "csrf_token=\(session.csrf)&role=viewer&kind=user&principal=root")
            ) { response in
                #expect(response.status == .seeOther)
            }
        }
        #expect(try harness.server.access.roles.roles(user: "root", groups: []) == [.viewer])
        let denials = try AuditLog.events(harness.server.database, action: "access.denied", limit: 1000)
        #expect(denials.count >= 2 * (harness.server.routeTable.all.filter { !$0.route.hasPrefix("GET ") }.count - 3), "CSRF refusals are audited")
    }

    @Test("every form in every template carries the CSRF field (login and setup carry their pre-session token)")
    func formsCarryTokens() throws {
        let root = repositoryRoot + "/Templates"
        let files = FileManager.default.enumerator(atPath: root)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".mustache") }
        var checked = 0
        for file in files {
            let template = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            for form in template.components(separatedBy: "<form").dropFirst() where form.prefix(40).contains(#"method="post""#) {
                let body = form.components(separatedBy: "</form>")[0]
                #expect(body.contains("{{> partials/csrf}}") || body.contains(#"name="form_token""#), "a POST form in \(file) has no token")
                checked += 1
            }
        }
        #expect(checked > 15)
    }

    @Test("class 6: a viewer cannot change anything, an operator cannot grant roles, an auditor cannot cancel jobs")
    func privilegeEscalation() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.viewer]) { client in
            for (route, permission) in harness.server.routeTable.all where !route.hasPrefix("GET ") && permission > .view {
                let (method, uri) = sampleRequest(route)
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .forbidden, "viewer got \(response.status.code) from \(route)")
                }
            }
        }
        try await harness.test(as: [.operator]) { client in
            try await client.execute(
                uri: "/settings/roles", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "role=admin&kind=user&principal=tester-operator")
            ) { response in
                #expect(response.status == .forbidden)
                #expect(text(response).contains("needs the admin permission"))
            }
            try await client.execute(uri: "/audit", method: .get) { response in #expect(response.status == .forbidden) }
        }
        #expect(try harness.server.access.roles.roles(user: "tester-operator", groups: []) == [.operator])
        try await harness.test(as: [.auditor]) { client in
            try await client.execute(uri: "/api/v1/jobs/1/cancel", method: .post) { response in #expect(response.status == .forbidden) }
            try await client.execute(uri: "/api/v1/audit", method: .get) { response in #expect(response.status == .ok) }
        }
        // An operator's token can never be an admin token.
        #expect(throws: AccessError.self) {
            try harness.server.access.tokens.create(
                user: "tester-operator", name: "x", role: .admin, lifetime: 3600, ownerRoles: [.operator], by: .system, now: Date())
        }
    }

    @Test("class 9: only Public/ is served; nothing in the data directory or the repository is reachable by any path")
    func onlyPublicIsServed() async throws {
        let harness = try await ServerHarness()
        let paths = [
            "/steward.db", "/data/steward.db", "/secret.key", "/data/secret.key", "/tls/cert.pem", "/../data/secret.key", "/%2e%2e/data/secret.key",
            "/css/../../data/steward.db", "/css/%2e%2e/%2e%2e/Package.swift", "/Templates/layout.mustache", "/migrations/0001_core.sql",
            "/Public/css/steward.css", "//etc/passwd", "/css/steward.css/../../../etc/passwd",
        ]
        for roles: Set<Role>? in [nil, [.admin]] {
            try await harness.test(as: roles) { client in
                for path in paths {
                    try await client.execute(uri: path, method: .get) { response in
                        let body = text(response)
                        #expect(response.status != .ok, "\(path) answered 200")
                        #expect(!body.contains("SQLite format") && !body.contains("PRIVATE KEY") && !body.contains("root:x:0:0"), "\(path)")
                    }
                }
            }
        }
    }

    @Test("class 8: HTTP Basic is refused everywhere, and a pending second factor cannot be skipped by going elsewhere")
    func alternatePaths() async throws {
        let harness = try await ServerHarness()
        _ = try harness.signIn("alice", as: [.admin])
        let basic = "Basic " + Data("alice:correct horse".utf8).base64EncodedString()
        let pending = try harness.server.access.sessions.create(
            user: "alice", source: nil, userAgent: nil, roles: [.admin], secondFactorPending: true, now: Date())
        try await harness.test(as: nil) { client in
            for uri in ["/", "/api/v1/jobs", "/healthz", "/login", "/metrics"] {
                try await client.execute(uri: uri, method: .get, headers: [.authorization: basic]) { response in
                    #expect(response.status == .unauthorized, "\(uri) with Basic")
                    #expect(text(response).contains("HTTP Basic"))
                }
            }
            let cookie: HTTPFields = [.cookie: "steward_session=\(pending.id)", HTTPField.Name("X-CSRF-Token")!: pending.session.csrfToken]
            for uri in ["/", "/settings/roles", "/account", "/jobs"] {
                try await client.execute(uri: uri, method: .get, headers: cookie) { response in
                    #expect(response.status == .seeOther && response.headers[.location] == "/login/second-factor", "\(uri)")
                }
            }
            try await client.execute(uri: "/api/v1/me", method: .get, headers: cookie) { response in #expect(response.status == .unauthorized) }
            try await client.execute(uri: "/settings/roles", method: .post, headers: cookie) { response in
                #expect(response.status != .seeOther || response.headers[.location] == "/login/second-factor")
            }
            try await client.execute(uri: "/login/second-factor", method: .get, headers: cookie) { response in #expect(response.status == .ok) }
        }
        #expect(try harness.server.access.roles.list().count == 1, "the pending session changed nothing")
    }

    @Test("class 8: X-Forwarded-For is believed only from a configured proxy")
    func proxyHeaders() async throws {
        for trusted in [false, true] {
            let harness = try await ServerHarness(configure: { config in
                config.port = 0
                config.bind = "127.0.0.1"
                if trusted { config.trustedProxies = [AddressRange("127.0.0.0/8")!] }
            })
            let session = try harness.signIn("proxied", as: [.admin])
            try await harness.server.makeApplication().test(.live) { client in
                var headers = session.headers
                headers[HTTPField.Name("X-Forwarded-For")!] = "203.0.113.9, 198.51.100.4"
                headers[.contentType] = "application/x-www-form-urlencoded"
                try await client.execute(
                    uri: "/settings/second-factor/reset", method: .post, headers: headers, body: ByteBuffer(string: "user=nobody")
                ) {
                    response in #expect(response.status == .seeOther)
                }
            }
            let event = try #require(try AuditLog.events(harness.server.database, actor: "proxied").first)
            #expect(event.source == (trusted ? "198.51.100.4" : "127.0.0.1"), "trusted=\(trusted)")
        }
        #expect(AddressRange("10.0.0.0/8")!.contains("10.200.1.1") && !AddressRange("10.0.0.0/8")!.contains("11.0.0.1"))
        #expect(AddressRange("2001:db8::/32")!.contains("2001:db8:1::5") && AddressRange("::1")!.contains("::1"))
        #expect(AddressRange("not-an-address") == nil && AddressRange("10.0.0.0/33") == nil)
    }
}
