import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdOTP
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

func setCookieValue(_ response: TestResponse, _ name: String) -> String? {
    response.headers[values: .setCookie].compactMap { header -> String? in
        guard header.hasPrefix(name + "=") else { return nil }
        return String(header.dropFirst(name.count + 1).prefix { $0 != ";" })
    }.first
}

@Suite("Sessions, API tokens, second factor and their audit trail over HTTP")
struct SessionTokenTests {
    @Test("revocation by an admin, logout, and an expired session all take effect on the next request")
    func revocationAndExpiry() async throws {
        let harness = try await ServerHarness(configure: { $0.sessionIdleMinutes = 1 })
        let victim = try harness.signIn("victim", as: [.viewer])
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/", method: .get, headers: victim.headers) { #expect($0.status == .ok) }
        }
        let hash = SessionStore.hash(victim.cookie)
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/settings/sessions", method: .get) { response in #expect(text(response).contains("victim")) }
            try await client.execute(uri: "/settings/sessions/\(hash)/revoke", method: .post) { #expect($0.status == .seeOther) }
        }
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/", method: .get, headers: victim.headers) { response in
                #expect(response.status == .seeOther && response.headers[.location] == "/login")
            }
        }
        // Logout: the ID is dead afterwards, and the cookie is cleared.
        let leaving = try harness.signIn("leaving", as: [.viewer])
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/logout", method: .post, headers: leaving.headers) { response in
                #expect(response.status == .seeOther)
                #expect(setCookieValue(response, "steward_session") == "")
            }
            try await client.execute(uri: "/api/v1/me", method: .get, headers: leaving.headers) { #expect($0.status == .unauthorized) }
        }
        // Idle expiry with the configured 1 minute: a session last seen 2 minutes ago is gone.
        let store = harness.server.access.sessions
        #expect(store.idleTimeout == 60)
        let (old, _) = try store.create(user: "idle", source: nil, userAgent: nil, roles: [.viewer], now: Date().addingTimeInterval(-120))
        _ = try harness.server.access.roles.grant(.viewer, to: .user, "idle", by: .system, now: Date())
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/", method: .get, headers: [.cookie: "steward_session=\(old)"]) { #expect($0.status == .seeOther) }
        }
        let events = try AuditLog.events(harness.server.database, action: "session.revoke")
        #expect(events.first?.target == "user:victim" && events.first?.actor == "tester-admin")
        #expect(try AuditLog.events(harness.server.database, action: "logout").first?.actor == "leaving")
    }

    @Test("a privilege change gives the session a new ID and kills the old one; losing every role ends it")
    func privilegeChangeRotates() async throws {
        let harness = try await ServerHarness()
        let session = try harness.signIn("grower", as: [.viewer])
        _ = try harness.server.access.roles.grant(.operator, to: .user, "grower", by: .system, now: Date())
        let newID = Captured<String?>(nil)
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/api/v1/me", method: .get, headers: session.headers) { response in
                newID.value = setCookieValue(response, "steward_session")
                #expect(text(response).contains("operator"))
            }
            let rotated = try #require(newID.value)
            #expect(rotated != session.cookie)
            try await client.execute(uri: "/api/v1/me", method: .get, headers: session.headers) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: "steward_session=\(rotated)"]) { response in
                #expect(response.status == .ok && setCookieValue(response, "steward_session") == nil)
            }
            _ = try harness.server.access.roles.revoke(.viewer, from: .user, "grower", by: .system, now: Date())
            _ = try harness.server.access.roles.revoke(.operator, from: .user, "grower", by: .system, now: Date())
            try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: "steward_session=\(rotated)"]) {
                #expect($0.status == .unauthorized)
            }
        }
    }

    @Test("roles granted to a Unix group reach its members through the groups found at sign-in")
    func groupGrants() async throws {
        let harness = try await ServerHarness()
        _ = try harness.server.access.roles.grant(.operator, to: .group, "staff", by: .system, now: Date())
        let (id, _) = try harness.server.access.sessions.create(
            user: "member-ann", source: nil, userAgent: nil, groups: ["staff"], roles: [.operator], now: Date())
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: "steward_session=\(id)"]) { response in
                #expect(response.status == .ok && text(response).contains(#""operator""#))
            }
        }
    }

    @Test("tokens: Bearer only, scoped to their role, dead when expired, revoked, or when the owner loses the role")
    func tokens() async throws {
        let harness = try await ServerHarness()
        let access = harness.server.access
        _ = try access.roles.grant(.operator, to: .user, "scripter", by: .system, now: Date())
        let (viewerToken, viewerRecord) = try access.tokens.create(
            user: "scripter", name: "read", role: .viewer, lifetime: 3600, ownerRoles: [.operator], by: .system, now: Date())
        let (operatorToken, _) = try access.tokens.create(
            user: "scripter", name: "run", role: .operator, lifetime: 3600, ownerRoles: [.operator], by: .system, now: Date())
        let (expiredToken, _) = try access.tokens.create(
            user: "scripter", name: "old", role: .viewer, lifetime: 3600, ownerRoles: [.operator], by: .system, now: Date().addingTimeInterval(-7200))
        #expect(viewerToken.hasPrefix("stw_") && viewerToken.count == 47)
        let stored = try await harness.server.database.read { db in try String.fetchAll(db, sql: "SELECT token_hash FROM api_tokens") }
        #expect(!stored.contains(viewerToken) && stored.contains(SessionStore.hash(viewerToken)), "only the hash is kept")

        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: bearer(viewerToken)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(viewerToken)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/v1/schedules/1/run", method: .post, headers: bearer(viewerToken)) { response in
                #expect(response.status == .forbidden, "a viewer token cannot run anything")
            }
            // Bearer is exempt from CSRF: no token header needed.
            try await client.execute(uri: "/api/v1/jobs/999/cancel", method: .post, headers: bearer(operatorToken)) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: bearer(expiredToken)) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: bearer(viewerToken + "x")) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/jobs?token=\(viewerToken)", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: [.cookie: "steward_session=\(viewerToken)"]) {
                #expect($0.status == .unauthorized)
            }
        }
        #expect(try access.tokens.token(id: viewerRecord.id)?.lastUsedAt != nil, "last use is recorded")

        _ = try access.tokens.revoke(id: viewerRecord.id, by: .system, now: Date())
        _ = try access.roles.revoke(.operator, from: .user, "scripter", by: .system, now: Date())
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: bearer(viewerToken)) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/jobs", method: .get, headers: bearer(operatorToken)) { response in
                #expect(response.status == .unauthorized)
                #expect(text(response).contains("no longer holds"))
            }
        }
        #expect(throws: AccessError.self) { try APITokenStore.parseLifetime("400d") }
        #expect(try APITokenStore.parseLifetime("2w") == 14 * 86_400)
    }

    @Test("tokens from the account page: shown once, no higher than the owner, revocable by owner and admin")
    func tokensFromPages() async throws {
        let harness = try await ServerHarness()
        let created = Captured("")
        try await harness.test(as: [.operator]) { client in
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            try await client.execute(uri: "/account/tokens", method: .post, headers: form, body: ByteBuffer(string: "name=ci&role=admin&expires=30d"))
            {
                response in
                #expect(response.status == .unprocessableContent)
                #expect(text(response).contains("higher than its owner"))
            }
            try await client.execute(
                uri: "/account/tokens", method: .post, headers: form, body: ByteBuffer(string: "name=ci&role=operator&expires=30d")
            ) {
                response in
                #expect(response.status == .created)
                let page = text(response)
                let start = try #require(page.range(of: #"id="created-token">"#))
                created.value = String(page[start.upperBound...].prefix(47))
            }
            try await client.execute(uri: "/account", method: .get) { response in
                #expect(!text(response).contains(created.value), "never shown again")
            }
        }
        let token = try #require(try harness.server.access.tokens.list(user: "tester-operator").first)
        #expect(token.role == .operator && created.value.hasPrefix(token.prefix))
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/settings/tokens/\(token.id)/revoke", method: .post) { #expect($0.status == .seeOther) }
        }
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/api/v1/me", method: .get, headers: bearer(created.value)) { #expect($0.status == .unauthorized) }
        }
    }

    @Test("TOTP: the RFC 6238 vector, enrolment with recovery codes, no replay, and the second step of sign-in")
    func secondFactor() async throws {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890" at T=59: 94287082, whose last 6 digits are 287082.
        #expect(SecondFactorStore.matchingStep(secret: "12345678901234567890", code: "287082", now: Date(timeIntervalSince1970: 59)) == 1)
        #expect(SecondFactorStore.matchingStep(secret: "12345678901234567890", code: "287083", now: Date(timeIntervalSince1970: 59)) == nil)

        let harness = try await ServerHarness()
        let factors = harness.server.access.secondFactors
        let captured = Captured<[String]>([])
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/account/second-factor", method: .get) { response in
                #expect(text(response).contains("otpauth://totp/Steward:tester-viewer?secret="))
            }
            let secret = try #require(try factors.load("tester-viewer")).secret
            let code = String(format: "%06d", TOTP(secret: secret).compute(date: Date()))
            try await client.execute(
                uri: "/account/second-factor", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "code=\(code)")
            ) { response in
                #expect(response.status == .ok)
                let page = text(response)
                captured.value = page.components(separatedBy: "<li><code>").dropFirst().map { String($0.prefix(9)) }
            }
        }
        let codes = captured.value
        #expect(codes.count == 10)
        #expect(try factors.isEnrolled("tester-viewer"))
        let stored = try await harness.server.database.read { db in try Data.fetchOne(db, sql: "SELECT sealed_secret FROM totp_factors") }
        let secret = try #require(try factors.load("tester-viewer")).secret
        #expect(stored.map { !String(decoding: $0, as: UTF8.self).contains(secret) } == true, "sealed at rest")

        // Sign-in's second step: a pending session, then a code; replaying the same code fails.
        let pending = try harness.server.access.sessions.create(
            user: "tester-viewer", source: nil, userAgent: nil, roles: [.viewer], secondFactorPending: true, now: Date())
        let headers: HTTPFields = [
            .cookie: "steward_session=\(pending.id)", HTTPField.Name("X-CSRF-Token")!: pending.session.csrfToken,
            .contentType: "application/x-www-form-urlencoded",
        ]
        let now = Date().addingTimeInterval(30)
        let nextCode = String(format: "%06d", TOTP(secret: secret).compute(date: now))
        try await harness.test(as: nil) { client in
            try await client.execute(uri: "/login/second-factor", method: .post, headers: headers, body: ByteBuffer(string: "code=000000")) {
                #expect($0.status == .unauthorized)
            }
            var fullID: String?
            try await client.execute(uri: "/login/second-factor", method: .post, headers: headers, body: ByteBuffer(string: "code=\(nextCode)")) {
                response in
                #expect(response.status == .seeOther)
                fullID = setCookieValue(response, "steward_session")
            }
            let id = try #require(fullID)
            #expect(id != pending.id, "a new ID once the second factor is given")
            try await client.execute(uri: "/", method: .get, headers: [.cookie: "steward_session=\(id)"]) { #expect($0.status == .ok) }
            try await client.execute(uri: "/", method: .get, headers: headers) { #expect($0.status == .seeOther) }
        }
        #expect(try factors.verify(user: "tester-viewer", code: nextCode, now: now) == nil, "a code works once")
        #expect(try factors.verify(user: "tester-viewer", code: codes[0], now: Date()) == .recoveryCode(remaining: 9))
        #expect(try factors.verify(user: "tester-viewer", code: codes[0], now: Date()) == nil, "a recovery code works once")
        // Tokens are a login path too: with a second factor, creating one needs a code.
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(
                uri: "/account/tokens", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "name=x&role=viewer&expires=1d")
            ) { response in
                #expect(response.status == .unprocessableContent && text(response).contains("authenticator"))
            }
        }
        let actions = Set(try AuditLog.events(harness.server.database, target: "user:tester-viewer").map(\.action))
        #expect(actions.isSuperset(of: ["totp.enable", "login.success", "login.failure"]))
    }

    @Test("audit: each kind of change leaves an entry with actor, source, target and before/after; the audit API filters them")
    func auditTrail() async throws {
        let harness = try await ServerHarness()
        let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/settings/roles", method: .post, headers: form, body: ByteBuffer(string: "role=auditor&kind=user&principal=root")
            ) {
                #expect($0.status == .seeOther)
            }
            try await client.execute(
                uri: "/settings/roles/revoke", method: .post, headers: form, body: ByteBuffer(string: "role=auditor&kind=user&principal=root")
            ) { #expect($0.status == .seeOther) }
            try await client.execute(
                uri: "/settings/roles", method: .post, headers: form, body: ByteBuffer(string: "role=viewer&kind=user&principal=nosuchuser9")
            ) {
                response in
                #expect(response.status == .unprocessableContent && text(response).contains("no Unix user"))
            }
            try await client.execute(uri: "/account/tokens", method: .post, headers: form, body: ByteBuffer(string: "name=t&role=viewer&expires=1d"))
            {
                #expect($0.status == .created)
            }
            let id = try #require(try harness.server.access.tokens.list().first?.id)
            try await client.execute(uri: "/account/tokens/\(id)/revoke", method: .post) { #expect($0.status == .seeOther) }
            try await client.execute(
                uri: "/api/v1/schedules/1", method: .patch, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"enabled":false}"#)
            ) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/v1/schedules/1/run", method: .post) { #expect($0.status == .accepted) }
            try await client.execute(
                uri: "/settings/blocks/clear", method: .post, headers: form, body: ByteBuffer(string: "scope=address&address=192.0.2.1")
            ) {
                #expect($0.status == .seeOther)
            }
            try await client.execute(uri: "/api/v1/audit?action=role.*", method: .get) { response in
                let items = try #require(try json(response)["items"] as? [[String: Any]])
                #expect(items.map { $0["action"] as? String } == ["role.revoke", "role.grant", "role.grant"])
                #expect(items[1]["target"] as? String == "user:root" && (items[1]["after"] as? [String: Any])?["role"] as? String == "auditor")
            }
            try await client.execute(uri: "/api/v1/audit?since=yesterday", method: .get) { #expect($0.status == .unprocessableContent) }
            try await client.execute(uri: "/audit?user=tester-admin&action=token.*", method: .get) { response in
                let page = text(response)
                #expect(page.contains("token.create") && page.contains("token.revoke") && !page.contains("role.grant"))
            }
        }
        let events = try AuditLog.events(harness.server.database, limit: 100)
        let actions = Set(events.map(\.action))
        #expect(
            actions.isSuperset(of: ["role.grant", "role.revoke", "token.create", "token.revoke", "schedule.update", "job.start", "throttle.clear"]))
        let update = try #require(events.first { $0.action == "schedule.update" })
        #expect(update.actor == "tester-admin" && update.before != nil && update.after != nil && update.requestID != nil)
        // Nothing in the trail can be changed through SQL either.
        let database = harness.server.database
        await #expect(throws: (any Error).self) { try await database.write { db in try db.execute(sql: "DELETE FROM audit_events") } }
    }
}
