import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdOTP
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

/// The login pages end to end through real libpam, with pam_wrapper + pam_matrix standing in for /etc/pam.d.
@Suite(
    "Sign-in pages through PAM (libpam-wrapper + pam_matrix)", .enabled(if: pamWrapperActive, "needs the pam_wrapper environment from make unit-test")
)
struct PAMLoginRouteTests {
    static func harness(service: String = "steward-test", trustLoopbackProxy: Bool = false) async throws -> ServerHarness {
        try await ServerHarness(configure: { config in
            config.pamService = service
            if trustLoopbackProxy {
                config.port = 0
                config.trustedProxies = [AddressRange("127.0.0.1")!]
            }
        })
    }

    /// GET the form, then POST it with its pre-session token, as a browser does.
    static func submit(
        _ client: any TestClientProtocol, path: String = "/login", fields: [String: String], extraHeaders: HTTPFields = [:]
    ) async throws -> TestResponse {
        var getHeaders = extraHeaders
        getHeaders[.cookie] = nil
        let form = try await client.execute(uri: path, method: .get, headers: getHeaders)
        let page = text(form)
        let start = try #require(page.range(of: #"name="form_token" value=""#))
        let token = String(page[start.upperBound...].prefix { $0 != "\"" })
        let cookie = try #require(setCookieValue(form, "steward_form"))
        var headers = extraHeaders
        headers[.cookie] = [headers[.cookie], "steward_form=\(cookie)"].compactMap { $0 }.joined(separator: "; ")
        headers[.contentType] = "application/x-www-form-urlencoded"
        var body = "form_token=\(token)"
        for (key, value) in fields {
            body += "&\(key)=" + (value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        }
        return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    @Test("the right password signs in with a fresh HttpOnly SameSite=Strict cookie; wrong or unknown read the same and are audited")
    func passwordLogin() async throws {
        let harness = try await Self.harness()
        _ = try harness.server.access.roles.grant(.viewer, to: .user, "alice", by: .system, now: Date())
        try await harness.test(as: nil) { client in
            let good = try await Self.submit(client, fields: ["username": "alice", "password": "correct horse", "next": "/jobs"])
            #expect(good.status == .seeOther && good.headers[.location] == "/jobs")
            let header = try #require(good.headers[values: .setCookie].first { $0.hasPrefix("steward_session=") })
            #expect(header.contains("HttpOnly") && header.contains("SameSite=Strict") && !header.contains("Max-Age"))
            let id = try #require(setCookieValue(good, "steward_session"))
            try await client.execute(uri: "/jobs", method: .get, headers: [.cookie: "steward_session=\(id)"]) { #expect($0.status == .ok) }

            for (user, password) in [("alice", "wrong"), ("mallory", "correct horse")] {
                let bad = try await Self.submit(client, fields: ["username": user, "password": password])
                #expect(bad.status == .unauthorized)
                #expect(text(bad).contains("Wrong user name or password.") && text(bad).contains(#"value="\#(user)""#), "keeps the name")
                #expect(setCookieValue(bad, "steward_session") == nil)
            }
            let offsite = try await Self.submit(client, fields: ["username": "alice", "password": "correct horse", "next": "//evil.example/"])
            #expect(offsite.headers[.location] == "/", "never redirected off this server")
            let stale = try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "username=alice&password=correct+horse"))
            #expect(stale.status == .forbidden, "no pre-session token, no sign-in (login CSRF)")
        }
        let database = harness.server.database
        #expect(try AuditLog.events(database, action: "login.success").map(\.actor) == ["alice", "alice"])
        #expect(try AuditLog.events(database, action: "login.failure").map(\.target) == ["user:mallory", "user:alice"])
    }

    @Test("expired accounts and users without a role are refused with a message that says so")
    func refusals() async throws {
        let expired = try await Self.harness(service: "steward-test-expired")
        _ = try expired.server.access.roles.grant(.viewer, to: .user, "bob", by: .system, now: Date())
        try await expired.test(as: nil) { client in
            let response = try await Self.submit(client, fields: ["username": "bob", "password": "correct horse"])
            #expect(response.status == .unauthorized && text(response).contains("expired"))
        }
        let noRole = try await Self.harness()
        try await noRole.test(as: nil) { client in
            let response = try await Self.submit(client, fields: ["username": "alice", "password": "correct horse"])
            #expect(response.status == .forbidden && text(response).contains("has no role in Steward"))
            #expect(setCookieValue(response, "steward_session") == nil)
        }
    }

    @Test("class 12: a session ID from before sign-in is never kept, the old session dies, and a logged-out ID is dead")
    func fixation() async throws {
        let harness = try await Self.harness()
        _ = try harness.server.access.roles.grant(.admin, to: .user, "alice", by: .system, now: Date())
        let planted = SessionStore.randomToken()
        let earlier = try harness.signIn("alice", as: [.admin])
        try await harness.test(as: nil) { client in
            for preset in [planted, earlier.cookie] {
                let response = try await Self.submit(
                    client, fields: ["username": "alice", "password": "correct horse"], extraHeaders: [.cookie: "steward_session=\(preset)"])
                let issued = try #require(setCookieValue(response, "steward_session"))
                #expect(issued != preset && issued.count == 43)
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: "steward_session=\(preset)"]) {
                    #expect($0.status == .unauthorized, "the pre-login ID does not work")
                }
                let session = try #require(try harness.server.access.sessions.validate(id: issued, now: Date()))
                try await client.execute(
                    uri: "/logout", method: .post,
                    headers: [.cookie: "steward_session=\(issued)", HTTPField.Name("X-CSRF-Token")!: session.csrfToken])
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: "steward_session=\(issued)"]) {
                    #expect($0.status == .unauthorized, "a logged-out ID is dead")
                }
            }
        }
        #expect(try AuditLog.events(harness.server.database, action: "logout").count == 2)
    }

    @Test("class 11: throttling engages and blocks the guesser's address, while the real user signs in from another address")
    func bruteForce() async throws {
        let harness = try await Self.harness(trustLoopbackProxy: true)
        _ = try harness.server.access.roles.grant(.admin, to: .user, "alice", by: .system, now: Date())
        try await harness.server.makeApplication().test(.live) { client in
            let attacker: HTTPFields = [HTTPField.Name("X-Forwarded-For")!: "198.51.100.66"]
            for _ in 0..<10 {
                let response = try await Self.submit(client, fields: ["username": "alice", "password": "guess"], extraHeaders: attacker)
                #expect(response.status == .unauthorized)
            }
            let blocked = try await Self.submit(client, fields: ["username": "alice", "password": "correct horse"], extraHeaders: attacker)
            #expect(blocked.status == .tooManyRequests && text(blocked).contains("another address"))
            let real = try await Self.submit(
                client, fields: ["username": "alice", "password": "correct horse"],
                extraHeaders: [HTTPField.Name("X-Forwarded-For")!: "192.0.2.10"])
            #expect(real.status == .seeOther, "the real user is not locked out")
            let id = try #require(setCookieValue(real, "steward_session"))
            let session = try #require(try harness.server.access.sessions.validate(id: id, now: Date()))
            let admin: HTTPFields = [
                .cookie: "steward_session=\(id)", HTTPField.Name("X-CSRF-Token")!: session.csrfToken,
                HTTPField.Name("X-Forwarded-For")!: "192.0.2.10", .contentType: "application/x-www-form-urlencoded",
            ]
            try await client.execute(uri: "/settings/blocks", method: .get, headers: admin) { response in
                #expect(text(response).contains("198.51.100.66"))
            }
            try await client.execute(
                uri: "/settings/blocks/clear", method: .post, headers: admin,
                body: ByteBuffer(string: "scope=user_address&user=alice&address=198.51.100.66")
            ) { #expect($0.status == .seeOther) }
            let afterClear = try await Self.submit(client, fields: ["username": "alice", "password": "correct horse"], extraHeaders: attacker)
            #expect(afterClear.status == .seeOther)
        }
        let blockedEvents = try AuditLog.events(harness.server.database, action: "login.blocked")
        #expect(blockedEvents.first?.source == "198.51.100.66")
    }

    @Test("the setup token makes one PAM user admin, once; a second factor is asked for at sign-in when enrolled")
    func setupAndSecondFactor() async throws {
        let harness = try await Self.harness()
        let token = try #require(try harness.server.firstAdminSetupToken())
        try await harness.test(as: nil) { client in
            let wrong = try await Self.submit(
                client, path: "/setup", fields: ["username": "alice", "password": "correct horse", "setup_token": "not-it"])
            #expect(wrong.status == .forbidden && text(wrong).contains("not the one printed"))
            let badPassword = try await Self.submit(client, path: "/setup", fields: ["username": "alice", "password": "x", "setup_token": token])
            #expect(badPassword.status == .unauthorized)
            let right = try await Self.submit(
                client, path: "/setup", fields: ["username": "alice", "password": "correct horse", "setup_token": token])
            #expect(right.status == .seeOther && setCookieValue(right, "steward_session") != nil)
            try await client.execute(uri: "/setup", method: .get) { response in
                #expect(text(response).contains("Setup is done") && !text(response).contains("setup_token"), "the token dies after use")
            }
        }
        #expect(try harness.server.access.roles.roles(user: "alice", groups: []) == [.admin])
        #expect(try harness.server.firstAdminSetupToken() == nil, "no token once an admin exists")
        // The wrong token and the wrong password were each recorded once (the token's row in the write that counted it).
        let setupFailures = try AuditLog.events(harness.server.database, action: "setup.failure")
        #expect(setupFailures.map(\.target) == ["user:alice", "user:alice"], "\(setupFailures)")
        #expect(setupFailures.filter { $0.after?.contains("wrong setup token") == true }.count == 1, "\(setupFailures)")

        _ = try harness.server.access.secondFactors.begin(user: "alice", now: Date())
        let secret = try #require(try harness.server.access.secondFactors.load("alice")).secret
        _ = try harness.server.access.secondFactors.confirm(
            user: "alice", code: String(format: "%06d", TOTP(secret: secret).compute(date: Date().addingTimeInterval(-30))), by: .system, now: Date())
        try await harness.test(as: nil) { client in
            let response = try await Self.submit(client, fields: ["username": "alice", "password": "correct horse", "next": "/jobs"])
            #expect(response.headers[.location] == "/login/second-factor?next=/jobs")
            let id = try #require(setCookieValue(response, "steward_session"))
            try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: "steward_session=\(id)"]) {
                #expect($0.status == .unauthorized)
            }
        }
    }
}
