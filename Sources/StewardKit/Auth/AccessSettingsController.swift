import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore

/// Settings → Roles, Sessions, API tokens and Sign-in blocks: the administrator's side of access control.
struct AccessSettingsController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let services: AccessServices

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "access")
        routes.get("/settings/roles", .admin, use: rolesPage)
        routes.post("/settings/roles", .admin, use: grant)
        routes.post("/settings/roles/revoke", .admin, use: revoke)
        routes.post("/settings/second-factor/reset", .admin, use: resetSecondFactor)
        routes.get("/settings/sessions", .admin, use: sessionsPage)
        routes.post("/settings/sessions/:session/revoke", .admin, use: revokeSession)
        routes.get("/settings/tokens", .admin, use: tokensPage)
        routes.post("/settings/tokens/:id/revoke", .admin, use: revokeToken)
        routes.get("/settings/blocks", .admin, use: blocksPage)
        routes.post("/settings/blocks/clear", .admin, use: clearBlock)

        api(.get, "/api/v1/me", .view, "whoAmI", "The caller: user, roles and how they authenticated", schema: "Me", use: me)
    }

    // MARK: roles

    @Sendable func rolesPage(request: Request, context: Context) async throws -> Response {
        try rolesView(request: request, context: context)
    }

    func rolesView(request: Request, context: Context, extra: [String: Any] = [:], status: HTTPResponse.Status = .ok) throws -> Response {
        var data = extra
        data["grants"] = try services.roles.list().map { grant in
            ViewNode([
                "role": grant.role.rawValue, "kind": grant.kind.rawValue, "principal": grant.principal, "granted": RFC3339.display(grant.grantedAt),
                "granted_by": grant.grantedBy,
            ])
        }
        let chosen = extra["form_role"] as? String ?? "viewer"
        data["roles"] = Role.allCases.map { ViewNode(["name": $0.rawValue, "summary": $0.summary, "selected": $0.rawValue == chosen]) }
        data["kind_group"] = (extra["form_kind"] as? String) == "group"
        return area.pages.page("settings/roles", title: "Roles", section: "settings", data: data, request: request, context: context, status: status)
    }

    @Sendable func grant(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let principal = (form["principal"] ?? "").trimmingCharacters(in: .whitespaces)
        let kindText = form["kind"] ?? "user"
        var extra: [String: Any] = ["form_principal": principal, "form_kind": kindText, "form_role": form["role"] ?? ""]
        do {
            let role = try Role.parse(form["role"] ?? "")
            guard let kind = RoleGrant.Kind(rawValue: kindText) else { throw AccessError("choose whether the role goes to a user or a group") }
            try UnixAccounts.validateName(principal, kind: kind)
            let exists = kind == .user ? UnixAccounts.userExists(principal) : UnixAccounts.groupExists(principal)
            guard exists else {
                throw AccessError("there is no Unix \(kind.rawValue) \"\(principal)\" on this server (checked through NSS); check the spelling")
            }
            let added = try services.roles.grant(role, to: kind, principal, by: context.actor, now: Date())
            return area.pages.redirect(
                to: "/settings/roles",
                flash: added
                    ? Flash(.success, "\(kind.rawValue.capitalized) \(principal) now holds \(role.rawValue).")
                    : Flash(.info, "\(principal) already held \(role.rawValue)."))
        } catch let error as AccessError {
            extra["error"] = error.message
            return try rolesView(request: request, context: context, extra: extra, status: .unprocessableContent)
        }
    }

    @Sendable func revoke(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        guard let role = Role(rawValue: form["role"] ?? ""), let kind = RoleGrant.Kind(rawValue: form["kind"] ?? ""),
            let principal = form["principal"]
        else { throw HTTPError(.badRequest, message: "the revoke form needs role, kind and principal") }
        if role == .admin {
            let admins = try services.roles.list().filter { $0.role == .admin }
            guard admins.count > 1 else {
                return area.pages.redirect(
                    to: "/settings/roles", flash: Flash(.error, "This is the last admin grant; grant admin to someone else first."))
            }
        }
        let removed = try services.roles.revoke(role, from: kind, principal, by: context.actor, now: Date())
        return area.pages.redirect(
            to: "/settings/roles",
            flash: removed ? Flash(.success, "\(principal) no longer holds \(role.rawValue).") : Flash(.info, "That grant was already gone."))
    }

    @Sendable func resetSecondFactor(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let user = (form["user"] ?? "").trimmingCharacters(in: .whitespaces)
        let done = try services.secondFactors.disable(user: user, by: context.actor, now: Date())
        return area.pages.redirect(
            to: "/settings/roles",
            flash: done
                ? Flash(.success, "\(user)'s second factor is removed; they sign in with their password and can enrol again.")
                : Flash(.info, "\(user.isEmpty ? "That user" : user) has no second factor."))
    }

    // MARK: sessions and tokens

    @Sendable func sessionsPage(request: Request, context: Context) async throws -> Response {
        let sessions = try services.sessions.active(now: Date()).map {
            AccountController.sessionView($0, current: $0.idHash == context.identity?.sessionHash, revokeBase: "/settings/sessions")
        }
        return area.pages.page(
            "settings/sessions", title: "Sessions", section: "settings", data: ["sessions": sessions], request: request, context: context)
    }

    @Sendable func revokeSession(request: Request, context: Context) async throws -> Response {
        let hash = context.parameters.get("session") ?? ""
        guard let session = try services.sessions.session(idHash: hash) else {
            return area.pages.redirect(to: "/settings/sessions", flash: Flash(.info, "That session had already ended."))
        }
        _ = try services.sessions.revoke(
            idHash: hash, by: context.actor.actor,
            audit: AuditEntry(
                by: context.actor, action: "session.revoke", target: "user:\(session.user)", after: ["session": String(hash.prefix(12))]),
            now: Date())
        return area.pages.redirect(to: "/settings/sessions", flash: Flash(.success, "\(session.user)'s session is ended."))
    }

    @Sendable func tokensPage(request: Request, context: Context) async throws -> Response {
        let now = Date()
        let tokens = try services.tokens.list().map { AccountController.tokenView($0, now: now, revokeBase: "/settings/tokens") }
        return area.pages.page(
            "settings/tokens", title: "API tokens", section: "settings", data: ["tokens": tokens], request: request, context: context)
    }

    @Sendable func revokeToken(request: Request, context: Context) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), let token = try services.tokens.token(id: id) else {
            throw HTTPError(.notFound, message: "there is no such token")
        }
        let done = try services.tokens.revoke(id: id, by: context.actor, now: Date())
        return area.pages.redirect(
            to: "/settings/tokens",
            flash: done ? Flash(.success, "\(token.user)'s token \"\(token.name)\" is revoked.") : Flash(.info, "That token was already revoked."))
    }

    // MARK: blocks

    @Sendable func blocksPage(request: Request, context: Context) async throws -> Response {
        let blocks = try services.throttle.blocks(now: Date()).map { block in
            ViewNode([
                "scope": block.scope.rawValue, "scope_text": block.scope == .address ? "address" : "user at address", "user": block.user,
                "address": block.address, "failures": block.failures, "until": RFC3339.display(block.until),
                "block_label": block.user.isEmpty ? "the address \(block.address)" : "\(block.user) at \(block.address)",
            ])
        }
        return area.pages.page(
            "settings/blocks", title: "Sign-in blocks", section: "settings", data: ["blocks": blocks], request: request, context: context)
    }

    @Sendable func clearBlock(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        guard let scope = LoginThrottle.Scope(rawValue: form["scope"] ?? "") else {
            throw HTTPError(.badRequest, message: "the form needs a scope of address or user_address")
        }
        let user = form["user"] ?? ""
        let address = form["address"] ?? ""
        try services.throttle.clear(
            scope: scope, user: user, address: address,
            audit: AuditEntry(
                by: context.actor, action: "throttle.clear", target: "address:\(address)", before: ["scope": scope.rawValue, "user": user]))
        return area.pages.redirect(
            to: "/settings/blocks", flash: Flash(.success, "The block on \(user.isEmpty ? address : "\(user) at \(address)") is lifted."))
    }

    // MARK: API

    @Sendable func me(request: Request, context: Context) async throws -> Response {
        let identity = try AccountController.signedIn(context)
        var tokenID: Int64?
        if case .token(let id) = identity.credential { tokenID = id }
        return try APIJSON.response(
            MeResource(
                user: identity.user, roles: identity.roles.map(\.rawValue).sorted(), permissions: identity.permissions.map(\.rawValue).sorted(),
                via: tokenID == nil ? "session" : "token", tokenId: tokenID))
    }
}

/// Who is calling, with which roles and permissions, and by which credential.
struct MeResource: Codable, Sendable {
    let user: String
    let roles, permissions: [String]
    let via: String
    let tokenId: Int64?
}
