import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Sign-in (PAM, then the second factor when enrolled), sign-out, and the first administrator's setup.
struct LoginController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let services: AccessServices
    let logger: Logger

    /// A pre-session CSRF token for the login and setup forms, as a cookie and a hidden field that must match.
    static let formCookie = "steward_form"

    func addRoutes(to routes: Routes) {
        routes.get("/login", .anonymous, use: loginPage)
        routes.post("/login", .anonymous, use: login)
        routes.get("/login/second-factor", .session, use: secondFactorPage)
        routes.post("/login/second-factor", .session, use: secondFactor)
        routes.post("/logout", .session, use: logout)
        routes.get("/setup", .anonymous, use: setupPage)
        routes.post("/setup", .anonymous, use: setup)
    }

    // MARK: password

    @Sendable func loginPage(request: Request, context: Context) async throws -> Response {
        if let identity = context.identity, !identity.secondFactorPending { return area.pages.redirect(to: nextPath(request)) }
        return formPage("auth/login", title: "Sign in", data: ["next": nextPath(request)], request: request, context: context)
    }

    @Sendable func login(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let user = (form["username"] ?? "").trimmingCharacters(in: .whitespaces)
        let next = ReturnPath.isSafe(form["next"] ?? "/") ? form["next"] ?? "/" : "/"
        var data: [String: Any] = ["username": user, "next": next]
        guard checkFormToken(request, form) else {
            data["error"] = "The sign-in form had expired. Enter your user name and password again."
            return formPage("auth/login", title: "Sign in", data: data, request: request, context: context, status: .forbidden)
        }
        guard !user.isEmpty, let password = form["password"], !password.isEmpty else {
            data["error"] = "Enter both your Unix user name and your password."
            return formPage("auth/login", title: "Sign in", data: data, request: request, context: context, status: .unprocessableContent)
        }
        switch try await checkPassword(user: user, password: password, context: context, action: "login") {
        case .refused(let message, let status):
            data["error"] = message
            return formPage("auth/login", title: "Sign in", data: data, request: request, context: context, status: status)
        case .accepted(let groups):
            let roles = try services.roles.roles(user: user, groups: groups)
            guard !roles.isEmpty else {
                try audit(context, user: user, action: "login.refused", detail: ["reason": "no role"])
                data["error"] =
                    "Your password is right, but \(user) has no role in Steward. Ask an administrator to grant one (Settings → Roles)."
                return formPage("auth/login", title: "Sign in", data: data, request: request, context: context, status: .forbidden)
            }
            return try startSession(user: user, groups: groups, roles: roles, request: request, context: context, next: next, flash: nil)
        }
    }

    enum PasswordCheck {
        case accepted(groups: [String])
        case refused(String, HTTPResponse.Status)
    }

    /// Throttle, then PAM, then count the outcome. Failures wait out their delay here, on a sleeping task.
    func checkPassword(user: String, password: String, context: Context, action: String) async throws -> PasswordCheck {
        let address = context.clientAddress ?? "unknown"
        let now = Date()
        if case .blocked(let block) = try services.throttle.check(user: user, address: address, now: now) {
            try audit(context, user: user, action: "\(action).blocked", detail: ["scope": block.scope.rawValue])
            let scope = block.scope == .address ? "this address" : "\(user) from this address"
            return .refused(
                "Sign-in for \(scope) is paused after \(block.failures) failed attempts, until \(RFC3339.display(block.until)). "
                    + "Try again then, sign in from another address, or ask an administrator to clear the block (Settings → Sign-in blocks).",
                .tooManyRequests)
        }
        switch await services.authenticator.authenticate(user: user, password: password, remoteHost: context.clientAddress) {
        case .success(let name):
            try services.throttle.recordSuccess(user: user, address: address)
            return .accepted(groups: services.groupsOf(name))
        case .failure(let refusal):
            let delay = try services.throttle.recordFailure(
                user: user, address: address, audit: entry(context, user: user, action: "\(action).failure", detail: ["reason": "\(refusal)"]),
                now: Date())
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            if case .serviceFailure(let detail) = refusal {
                logger.error("PAM service failure", metadata: ["detail": "\(detail)", "user": "\(user)"])
                return .refused(refusal.message, .serviceUnavailable)
            }
            return .refused(refusal.message, .unauthorized)
        }
    }

    func startSession(
        user: String, groups: [String], roles: Set<Role>, request: Request, context: Context, next: String, flash: Flash?
    ) throws -> Response {
        let now = Date()
        // Whatever session this browser had is ended; the new one never reuses an ID from before sign-in.
        if let old = request.cookies[AccessServices.sessionCookie]?.value, let session = try services.sessions.validate(id: old, now: now) {
            _ = try services.sessions.revoke(idHash: session.idHash, by: user, now: now)
        }
        let pending = try services.secondFactors.isEnrolled(user)
        let (id, _) = try services.sessions.create(
            user: user, source: context.clientAddress, userAgent: request.headers[.userAgent], groups: groups, roles: roles,
            secondFactorPending: pending,
            audit: entry(
                context, user: user, action: pending ? "login.password" : "login.success",
                detail: ["roles": roles.map(\.rawValue).sorted().joined(separator: ","), "second_factor": pending ? "owed" : "not enrolled"]),
            now: now)
        var response = area.pages.redirect(
            to: pending ? "/login/second-factor?next=" + (next.addingPercentEncoding(withAllowedCharacters: .urlQueryValueAllowed) ?? "/") : next,
            flash: flash)
        response.headers.append(HTTPField(name: .setCookie, value: services.sessionCookie(id)))
        response.headers.append(HTTPField(name: .setCookie, value: area.pages.cookie(Self.formCookie, value: "", maxAge: 0)))
        return response
    }

    // MARK: second factor

    @Sendable func secondFactorPage(request: Request, context: Context) async throws -> Response {
        guard context.identity?.secondFactorPending == true else { return area.pages.redirect(to: nextPath(request)) }
        return area.pages.page(
            "auth/second_factor", title: "Second factor", section: "", data: ["next": nextPath(request)], request: request, context: context)
    }

    @Sendable func secondFactor(request: Request, context: Context) async throws -> Response {
        guard let identity = context.identity, identity.secondFactorPending, identity.sessionHash != nil else { return area.pages.redirect(to: "/") }
        let form = try await FormBody.read(request, context: context)
        let next = ReturnPath.isSafe(form["next"] ?? "/") ? form["next"] ?? "/" : "/"
        let address = context.clientAddress ?? "unknown"
        let now = Date()
        func again(_ message: String, _ status: HTTPResponse.Status) -> Response {
            area.pages.page(
                "auth/second_factor", title: "Second factor", section: "", data: ["next": next, "error": message], request: request, context: context,
                status: status)
        }
        if case .blocked(let block) = try services.throttle.check(user: identity.user, address: address, now: now) {
            return again("Too many wrong codes. Try again after \(RFC3339.display(block.until)).", .tooManyRequests)
        }
        guard let proof = try services.secondFactors.verify(user: identity.user, code: form["code"] ?? "", now: now) else {
            let delay = try services.throttle.recordFailure(
                user: identity.user, address: address,
                audit: entry(context, user: identity.user, action: "login.failure", detail: ["reason": "wrong second factor"]), now: now)
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            return again(
                "That code is not right (or was already used). Enter the 6 digits your app shows now, or one of your recovery codes.",
                .unauthorized)
        }
        var flash: Flash?
        var factor = "totp"
        if case .recoveryCode(let remaining) = proof {
            factor = "recovery code"
            flash = Flash(.warning, "You signed in with a recovery code; \(remaining) left. Set up your authenticator again under Account.")
        }
        guard let cookie = request.cookies[AccessServices.sessionCookie]?.value,
            let newID = try services.sessions.elevate(
                id: cookie, roles: identity.roles, secondFactorDone: true,
                audit: entry(context, user: identity.user, action: "login.success", detail: ["second_factor": factor]), now: now)
        else { return area.pages.redirect(to: "/login") }
        try services.throttle.recordSuccess(user: identity.user, address: address)
        var response = area.pages.redirect(to: next, flash: flash)
        response.headers.append(HTTPField(name: .setCookie, value: services.sessionCookie(newID)))
        return response
    }

    // MARK: logout

    @Sendable func logout(request: Request, context: Context) async throws -> Response {
        if let identity = context.identity, let hash = identity.sessionHash {
            _ = try services.sessions.revoke(
                idHash: hash, by: identity.user, audit: entry(context, user: identity.user, action: "logout", detail: [:]), now: Date())
        }
        var response = area.pages.redirect(to: "/login", flash: Flash(.info, "You are signed out."))
        response.headers.append(HTTPField(name: .setCookie, value: services.clearedSessionCookie()))
        return response
    }

    // MARK: first administrator

    @Sendable func setupPage(request: Request, context: Context) async throws -> Response {
        formPage("auth/setup", title: "First administrator", data: ["active": services.setup.isActive], request: request, context: context)
    }

    @Sendable func setup(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let user = (form["username"] ?? "").trimmingCharacters(in: .whitespaces)
        var data: [String: Any] = ["username": user, "active": true]
        func again(_ message: String, _ status: HTTPResponse.Status) -> Response {
            data["error"] = message
            return formPage("auth/setup", title: "First administrator", data: data, request: request, context: context, status: status)
        }
        guard checkFormToken(request, form) else { return again("The form had expired. Fill it in again.", .forbidden) }
        guard services.setup.isActive, try !services.roles.hasAdmin() else {
            services.setup.discard()
            data["active"] = false
            return again("Setup is already done: an administrator exists. Sign in instead.", .conflict)
        }
        guard !user.isEmpty, let password = form["password"], !password.isEmpty, let token = form["setup_token"], !token.isEmpty else {
            return again("Enter your Unix user name, your password and the setup token from the server's console.", .unprocessableContent)
        }
        switch try await checkPassword(user: user, password: password, context: context, action: "setup") {
        case .refused(let message, let status):
            return again(message, status)
        case .accepted(let groups):
            guard services.setup.redeem(token) else {
                let address = context.clientAddress ?? "unknown"
                let delay = try services.throttle.recordFailure(
                    user: user, address: address, audit: entry(context, user: user, action: "setup.failure", detail: ["reason": "wrong setup token"]),
                    now: Date())
                try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                return again("That setup token is not the one printed on the server's console. Copy it again from the log.", .forbidden)
            }
            var who = context.actor
            who.actor = user
            _ = try services.roles.grant(.admin, to: .user, user, by: who, now: Date())
            logger.notice("first administrator set up; the setup token is spent", metadata: ["user": "\(user)"])
            let roles = try services.roles.roles(user: user, groups: groups)
            return try startSession(
                user: user, groups: groups, roles: roles, request: request, context: context, next: "/",
                flash: Flash(.success, "\(user) is now an administrator. Grant roles to others under Settings → Roles."))
        }
    }

    // MARK: helpers

    /// The login and setup pages, each with a fresh pre-session form token.
    func formPage(
        _ template: String, title: String, data: [String: Any], request: Request, context: Context, status: HTTPResponse.Status = .ok
    ) -> Response {
        let token = SessionStore.randomToken()
        var data = data
        data["form_token"] = token
        data["setup_active"] = services.setup.isActive
        var response = area.pages.page(template, title: title, section: "", data: data, request: request, context: context, status: status)
        response.headers.append(HTTPField(name: .setCookie, value: area.pages.cookie(Self.formCookie, value: token, maxAge: 3600)))
        return response
    }

    func checkFormToken(_ request: Request, _ form: FormBody) -> Bool {
        guard let cookie = request.cookies[Self.formCookie]?.value, let field = form["form_token"], !cookie.isEmpty else { return false }
        return constantTimeEqual(cookie, field)
    }

    func nextPath(_ request: Request) -> String {
        let next = request.uri.queryParameters["next"].map(String.init)?.removingPercentEncoding ?? "/"
        return ReturnPath.isSafe(next) ? next : "/"
    }

    /// Only a path on this server: no scheme, no host, no "//" or backslash tricks.
    /// The audit row of a sign-in event: by the user once they are known to be who they say, else by "anonymous".
    func entry(_ context: Context, user: String, action: String, detail: [String: String]) -> AuditEntry {
        var who = context.actor
        if context.identity == nil { who.actor = "anonymous" }
        if action.hasPrefix("login.success") || action == "logout" || action == "login.password" { who.actor = user }
        return AuditEntry(by: who, action: action, target: "user:\(user)", after: detail.isEmpty ? nil : detail)
    }

    /// A sign-in event that changes nothing else (a refusal, a block): its audit row on its own.
    func audit(_ context: Context, user: String, action: String, detail: [String: String]) throws {
        let entry = entry(context, user: user, action: action, detail: detail)
        try services.sessions.database.write { db in try entry.append(db, now: Date()) }
    }
}
