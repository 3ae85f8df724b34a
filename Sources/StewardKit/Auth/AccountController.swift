import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore

/// A signed-in user's own things: sessions, API tokens and second factor.
struct AccountController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let services: AccessServices

    func addRoutes(to routes: Routes) {
        routes.get("/account", .signedIn, use: accountPage)
        routes.post("/account/sessions/:session/revoke", .signedIn, use: revokeSession)
        routes.post("/account/tokens", .signedIn, use: createToken)
        routes.post("/account/tokens/:id/revoke", .signedIn, use: revokeToken)
        routes.get("/account/second-factor", .signedIn, use: enrolPage)
        routes.post("/account/second-factor", .signedIn, use: confirmEnrolment)
        routes.post("/account/second-factor/disable", .signedIn, use: disable)
    }

    @Sendable func accountPage(request: Request, context: Context) async throws -> Response {
        try page(request: request, context: context)
    }

    func page(request: Request, context: Context, extra: [String: Any] = [:], status: HTTPResponse.Status = .ok) throws -> Response {
        let identity = try Self.signedIn(context)
        let now = Date()
        var data = extra
        data["sessions"] = try services.sessions.active(user: identity.user, now: now).map {
            Self.sessionView($0, current: $0.idHash == identity.sessionHash, revokeBase: "/account/sessions")
        }
        data["tokens"] = try services.tokens.list(user: identity.user).map { Self.tokenView($0, now: now, revokeBase: "/account/tokens") }
        data["roles"] = identity.roles.sorted { $0.rawValue < $1.rawValue }.map { ViewNode(["name": $0.rawValue]) }
        data["token_roles"] = Role.allCases.filter { role in identity.roles.contains { $0.covers(role) } }.map {
            ViewNode(["name": $0.rawValue, "selected": $0.rawValue == (extra["form_role"] as? String ?? "viewer")])
        }
        let enrolled = try services.secondFactors.isEnrolled(identity.user)
        data["totp_enrolled"] = enrolled
        if enrolled { data["recovery_left"] = try services.secondFactors.remainingRecoveryCodes(user: identity.user) }
        data["via_token"] = identity.sessionHash == nil
        return area.pages.page("account/index", title: "Account", section: "account", data: data, request: request, context: context, status: status)
    }

    @Sendable func revokeSession(request: Request, context: Context) async throws -> Response {
        let identity = try Self.signedIn(context)
        let hash = context.parameters.get("session") ?? ""
        guard let session = try services.sessions.session(idHash: hash), session.user == identity.user else {
            return area.pages.redirect(to: "/account", flash: Flash(.error, "That session has already ended."))
        }
        _ = try services.sessions.revoke(
            idHash: hash, by: identity.user,
            audit: AuditEntry(
                by: context.actor, action: "session.revoke", target: "user:\(session.user)", after: ["session": String(hash.prefix(12))]),
            now: Date())
        if hash == identity.sessionHash {
            var response = area.pages.redirect(to: "/login", flash: Flash(.info, "This session is ended; you are signed out."))
            response.headers.append(HTTPField(name: .setCookie, value: services.clearedSessionCookie()))
            return response
        }
        return area.pages.redirect(to: "/account", flash: Flash(.success, "The session from \(session.source ?? "an unknown address") is ended."))
    }

    @Sendable func createToken(request: Request, context: Context) async throws -> Response {
        let identity = try Self.signedIn(context)
        let form = try await FormBody.read(request, context: context)
        let name = form["name"] ?? ""
        var formData: [String: Any] = ["form_name": name, "form_expires": form["expires"] ?? "90d", "form_role": form["role"] ?? "viewer"]
        guard identity.sessionHash != nil else {
            throw HTTPError(.forbidden, message: "API tokens are created from a signed-in browser session, not with another token")
        }
        do {
            let role = try Role.parse(form["role"] ?? "viewer")
            let lifetime = try APITokenStore.parseLifetime(form["expires"] ?? "90d")
            if try services.secondFactors.isEnrolled(identity.user) {
                // The second factor covers tokens too: making one needs a fresh code.
                guard try services.secondFactors.verify(user: identity.user, code: form["code"] ?? "", now: Date()) != nil else {
                    throw AccessError("enter a current code from your authenticator app (or a recovery code) to create a token")
                }
            }
            let (token, record) = try services.tokens.create(
                user: identity.user, name: name, role: role, lifetime: lifetime, ownerRoles: identity.roles, by: context.actor, now: Date())
            formData["created_token"] = token
            formData["created_name"] = record.name
            formData["created_expires"] = RFC3339.display(record.expiresAt)
            formData.removeValue(forKey: "form_name")
            return try page(request: request, context: context, extra: formData, status: .created)
        } catch let error as AccessError {
            formData["token_error"] = error.message
            return try page(request: request, context: context, extra: formData, status: .unprocessableContent)
        }
    }

    @Sendable func revokeToken(request: Request, context: Context) async throws -> Response {
        let identity = try Self.signedIn(context)
        guard let id = context.parameters.get("id", as: Int64.self), let token = try services.tokens.token(id: id), token.user == identity.user
        else { throw HTTPError(.notFound, message: "you have no such token") }
        let done = try services.tokens.revoke(id: id, by: context.actor, now: Date())
        return area.pages.redirect(
            to: "/account", flash: done ? Flash(.success, "Token \"\(token.name)\" is revoked.") : Flash(.info, "That token was already revoked."))
    }

    @Sendable func enrolPage(request: Request, context: Context) async throws -> Response {
        let identity = try Self.signedIn(context)
        guard try !services.secondFactors.isEnrolled(identity.user) else { return area.pages.redirect(to: "/account") }
        let enrolment = try services.secondFactors.pending(user: identity.user) ?? services.secondFactors.begin(user: identity.user, now: Date())
        return area.pages.page(
            "account/second_factor", title: "Set up a second factor", section: "account",
            data: ["secret": Self.grouped(enrolment.secret), "uri": enrolment.uri], request: request, context: context)
    }

    @Sendable func confirmEnrolment(request: Request, context: Context) async throws -> Response {
        let identity = try Self.signedIn(context)
        let form = try await FormBody.read(request, context: context)
        do {
            let codes = try services.secondFactors.confirm(user: identity.user, code: form["code"] ?? "", by: context.actor, now: Date())
            return area.pages.page(
                "account/recovery_codes", title: "Recovery codes", section: "account", data: ["codes": codes.map { ViewNode(["code": $0]) }],
                request: request, context: context)
        } catch let error as AccessError {
            guard let enrolment = try services.secondFactors.pending(user: identity.user) else {
                return area.pages.redirect(to: "/account", flash: Flash(.error, error.message))
            }
            return area.pages.page(
                "account/second_factor", title: "Set up a second factor", section: "account",
                data: ["secret": Self.grouped(enrolment.secret), "uri": enrolment.uri, "error": error.message], request: request, context: context,
                status: .unprocessableContent)
        }
    }

    @Sendable func disable(request: Request, context: Context) async throws -> Response {
        let identity = try Self.signedIn(context)
        let form = try await FormBody.read(request, context: context)
        guard try services.secondFactors.verify(user: identity.user, code: form["code"] ?? "", now: Date()) != nil else {
            return area.pages.redirect(
                to: "/account", flash: Flash(.error, "To turn the second factor off, enter a current code from your app or a recovery code."))
        }
        _ = try services.secondFactors.disable(user: identity.user, by: context.actor, now: Date())
        return area.pages.redirect(to: "/account", flash: Flash(.success, "The second factor is off. Sign-in now needs only your password."))
    }

    // MARK: helpers

    static func signedIn(_ context: Context) throws -> Identity {
        guard let identity = context.identity else { throw HTTPError(.unauthorized) }
        return identity
    }

    static func grouped(_ secret: String) -> String {
        stride(from: 0, to: secret.count, by: 4).map { offset in
            let start = secret.index(secret.startIndex, offsetBy: offset)
            return String(secret[start..<(secret.index(start, offsetBy: 4, limitedBy: secret.endIndex) ?? secret.endIndex)])
        }.joined(separator: " ")
    }

    static func sessionView(_ session: Session, current: Bool, revokeBase: String) -> ViewNode {
        ViewNode([
            "hash": session.idHash, "short": String(session.idHash.prefix(8)), "user": session.user, "source": session.source ?? "unknown",
            "agent": session.userAgent ?? "", "created": RFC3339.display(session.createdAt), "created_iso": RFC3339.string(session.createdAt),
            "seen": RFC3339.display(session.lastSeenAt), "seen_iso": RFC3339.string(session.lastSeenAt),
            "expires": RFC3339.display(session.expiresAt),
            "current": current, "pending": session.secondFactorPending, "revoke": "\(revokeBase)/\(session.idHash)/revoke",
        ])
    }

    static func tokenView(_ token: APIToken, now: Date, revokeBase: String) -> ViewNode {
        let state = token.revokedAt != nil ? "revoked" : token.expiresAt <= now ? "expired" : "live"
        return ViewNode([
            "id": token.id, "prefix": token.prefix, "name": token.name, "user": token.user, "role": token.role.rawValue,
            "created": RFC3339.display(token.createdAt), "expires": RFC3339.display(token.expiresAt),
            "last_used": token.lastUsedAt.map(RFC3339.display) ?? "never", "last_from": token.lastUsedFrom, "state": state,
            "live": state == "live", "revoke": "\(revokeBase)/\(token.id)/revoke",
        ])
    }
}
