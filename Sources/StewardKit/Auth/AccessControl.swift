import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// Who is making a request, and with what rights.
public struct Identity: Sendable, Equatable {
    public enum Credential: Sendable, Equatable {
        case session(idHash: String, csrfToken: String)
        case token(id: Int64)
    }
    public var user: String
    public var roles: Set<Role>
    public var credential: Credential
    public var secondFactorPending = false

    public var permissions: Set<Permission> {
        secondFactorPending ? [.session] : StewardKit.permissions(of: roles).union([.session])
    }

    public var csrfToken: String? {
        if case .session(_, let token) = credential { return token }
        return nil
    }

    public var sessionHash: String? {
        if case .session(let hash, _) = credential { return hash }
        return nil
    }
}

/// The permission each route declared, keyed like the router's own endpoint paths ("POST /jobs/{id}/cancel").
public final class RouteTable: Sendable {
    private let entries = Mutex<[String: Permission]>([:])
    private let paths = Mutex<[(segments: [Substring], method: String)]>([])
    private let repeated = Mutex<[String]>([])

    public init() {}

    static func key(_ method: HTTPRequest.Method, _ path: String) -> String { "\(method.rawValue) \(path)" }

    func declare(_ method: HTTPRequest.Method, _ path: RouterPath, _ permission: Permission) {
        let key = Self.key(method, path.description)
        let isNew = entries.withLock { table in
            defer { table[key] = permission }
            return table[key] == nil
        }
        if isNew {
            paths.withLock { $0.append((path.description.split(separator: "/"), method.rawValue)) }
        } else {
            repeated.withLock { $0.append(key) }
        }
    }

    /// Routes declared twice ("GET /api/v1/hosts"): the server refuses to start with any.
    public var duplicates: [String] { repeated.withLock { $0 } }

    /// The methods some route answers at a concrete path, for a 405 with Allow instead of a 404.
    func methods(at path: String) -> [String] {
        let segments = path.split(separator: "/")
        let matching = paths.withLock { routes in
            routes.filter { route in
                if route.segments.last == "**" { return segments.count >= route.segments.count - 1 && zip(route.segments, segments).allSatisfy(Self.matches) }
                return route.segments.count == segments.count && zip(route.segments, segments).allSatisfy(Self.matches)
            }
        }
        // The router takes a literal segment over a parameter at each level ("rules/export" before "rules/{id}"), so
        // only the most literal templates answer this path.
        func literals(_ route: (segments: [Substring], method: String)) -> [Bool] { route.segments.map { !Self.isParameter($0) } }
        guard let best = matching.map(literals).max(by: { $0.lexicographicallyPrecedes($1) { !$0 && $1 } }) else { return [] }
        return Set(matching.filter { literals($0) == best }.map(\.method)).sorted()
    }

    private static func matches(_ template: Substring, _ segment: Substring) -> Bool { template == segment || isParameter(template) }

    private static func isParameter(_ template: Substring) -> Bool {
        template.hasPrefix("{") || template.hasPrefix(":") || template == "*" || template == "**"
    }

    public func permission(_ method: HTTPRequest.Method, _ endpointPath: String) -> Permission? {
        entries.withLock { $0[Self.key(method, endpointPath)] }
    }

    /// Every declared route, for the router-walking test.
    public var all: [(route: String, permission: Permission)] {
        entries.withLock { table in table.map { ($0.key, $0.value) }.sorted { $0.route < $1.route } }
    }
}

/// Registers routes together with the permission each needs; the only way routes are added in Steward.
public struct Routes {
    public typealias Context = StewardRequestContext
    let router: Router<Context>
    let table: RouteTable

    func on<Output: ResponseGenerator>(
        _ method: HTTPRequest.Method, _ path: String, _ permission: Permission,
        use handler: @escaping @Sendable (Request, Context) async throws -> Output
    ) {
        let routerPath = RouterPath(path)
        table.declare(method, routerPath, permission)
        router.on(routerPath, method: method, use: handler)
    }

    func get<Output: ResponseGenerator>(
        _ path: String, _ permission: Permission, use handler: @escaping @Sendable (Request, Context) async throws -> Output
    ) { on(.get, path, permission, use: handler) }

    func post<Output: ResponseGenerator>(
        _ path: String, _ permission: Permission, use handler: @escaping @Sendable (Request, Context) async throws -> Output
    ) { on(.post, path, permission, use: handler) }

    func patch<Output: ResponseGenerator>(
        _ path: String, _ permission: Permission, use handler: @escaping @Sendable (Request, Context) async throws -> Output
    ) { on(.patch, path, permission, use: handler) }

    func put<Output: ResponseGenerator>(
        _ path: String, _ permission: Permission, use handler: @escaping @Sendable (Request, Context) async throws -> Output
    ) { on(.put, path, permission, use: handler) }

    func delete<Output: ResponseGenerator>(
        _ path: String, _ permission: Permission, use handler: @escaping @Sendable (Request, Context) async throws -> Output
    ) { on(.delete, path, permission, use: handler) }
}

/// Everything the access middleware and the login pages share.
public struct AccessServices: Sendable {
    public let sessions: SessionStore
    public let tokens: APITokenStore
    public let roles: RoleStore
    public let secondFactors: SecondFactorStore
    public let throttle: LoginThrottle
    public let authenticator: any PasswordAuthenticating
    public let setup: SetupToken
    public let secureCookies: Bool
    /// Unix groups of a user; NSS in production.
    public let groupsOf: @Sendable (String) -> [String]
    /// Whether a credential's owner may still use it (exists, unlocked, unexpired, no password change owed).
    public let standings: AccountStandingCache

    public static let sessionCookie = "steward_session"

    func sessionCookie(_ id: String) -> String {
        "\(Self.sessionCookie)=\(id); Path=/; HttpOnly; SameSite=Strict" + (secureCookies ? "; Secure" : "")
    }

    func clearedSessionCookie() -> String {
        "\(Self.sessionCookie)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" + (secureCookies ? "; Secure" : "")
    }
}

/// Finds who is asking: a Bearer token, or a session cookie. When a session's roles no longer match the grants,
/// the same sign-in continues under a new ID (a privilege change); when no role is left, the session ends.
struct IdentityMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    let services: AccessServices

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let now = Date()
        var newSessionID: String?
        if let authorization = request.headers[.authorization] {
            do {
                context.identity = try await tokenIdentity(authorization, context: context, now: now)
            } catch let problem as Problem {
                // This runs before the error pages, so it answers for itself.
                return problem.response(headers: [.wwwAuthenticate: "Bearer realm=\"steward\""])
            }
        } else if let cookie = request.cookies[AccessServices.sessionCookie]?.value,
            var session = try services.sessions.validate(id: cookie, now: now)
        {
            if let refusal = await services.standings.standing(of: session.user, now: now).refusal(user: session.user) {
                _ = try services.sessions.revoke(idHash: session.idHash, by: "system (\(refusal))", now: now)
                var response = Problem(status: .unauthorized, detail: refusal + "; sign in again once the account is in order").response()
                response.headers.append(HTTPField(name: .setCookie, value: services.clearedSessionCookie()))
                return response
            }
            let current = try services.roles.roles(user: session.user, groups: session.groups)
            if current.isEmpty, !session.secondFactorPending {
                _ = try services.sessions.revoke(idHash: session.idHash, by: "system (no role left)", now: now)
            } else {
                if current != session.roles, !session.secondFactorPending {
                    newSessionID = try services.sessions.elevate(id: cookie, roles: current, secondFactorDone: false, now: now)
                    if let newSessionID, let fresh = try services.sessions.validate(id: newSessionID, now: now) { session = fresh }
                }
                context.identity = Identity(
                    user: session.user, roles: current, credential: .session(idHash: session.idHash, csrfToken: session.csrfToken),
                    secondFactorPending: session.secondFactorPending)
            }
        }
        var response = try await next(request, context)
        if let newSessionID { response.headers.append(HTTPField(name: .setCookie, value: services.sessionCookie(newSessionID))) }
        return response
    }

    func tokenIdentity(_ authorization: String, context: Context, now: Date) async throws -> Identity {
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Problem(
                status: .unauthorized,
                detail:
                    "only Authorization: Bearer <token> is accepted; HTTP Basic and other schemes are refused. Create a token under Account → API tokens."
            )
        }
        guard let token = try services.tokens.authenticate(String(parts[1]), from: context.clientAddress, now: now) else {
            throw Problem(status: .unauthorized, detail: "the API token is unknown, expired or revoked; create a new one under Account → API tokens")
        }
        if let refusal = await services.standings.standing(of: token.user, now: now).refusal(user: token.user) {
            throw Problem(status: .unauthorized, detail: refusal)
        }
        let groups = services.standings.groups(of: token.user, now: now, lookup: services.groupsOf)
        let ownerRoles = try services.roles.roles(user: token.user, groups: groups)
        guard ownerRoles.contains(where: { $0.covers(token.role) }) else {
            throw Problem(
                status: .unauthorized,
                detail: "the token's owner \(token.user) no longer holds the \(token.role.rawValue) role, so the token no longer works")
        }
        return Identity(user: token.user, roles: [token.role], credential: .token(id: token.id))
    }

}

/// Enforces each route's declared permission, checks the CSRF token of every state-changing request made with a
/// session, and makes sure every state-changing request that succeeds leaves an audit row.
struct AuthorizationMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    let table: RouteTable
    let services: AccessServices
    let logger: Logger

    static let csrfField = "csrf_token"
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        let required = context.endpointPath.flatMap { table.permission(request.method, $0) }
        guard let required else {
            // No such route (or, failing closed, a route that declared nothing): strangers are sent to sign in.
            if let path = context.endpointPath, path != "NotFound" {
                logger.error("route has no declared permission; refusing", metadata: ["route": "\(path)"])
                throw HTTPError(.forbidden, message: "this route declares no permission, so it is refused")
            }
            guard let identity = context.identity, !identity.secondFactorPending else { return unauthenticated(request) }
            return try await next(request, context)
        }
        if required == .anonymous { return try await next(request, context) }
        guard let identity = context.identity else { return unauthenticated(request) }
        guard identity.permissions.contains(required) else {
            if identity.secondFactorPending {
                guard Self.isAPI(request) else { return Response(status: .seeOther, headers: [.location: "/login/second-factor"]) }
                throw HTTPError(.unauthorized, message: "the second factor is still owed; finish signing in at /login/second-factor")
            }
            let held = identity.roles.isEmpty ? "no role" : identity.roles.map(\.rawValue).sorted().joined(separator: ", ")
            try? recordDenied(request, context: context, required: required)
            throw HTTPError(
                .forbidden,
                message: "\(identity.user) holds \(held); this needs the \(required.rawValue) permission. Ask an administrator if you need it.")
        }
        if Self.changesState(request.method), let expected = identity.csrfToken {
            let presented: String?
            if let header = request.headers[Self.csrfHeader] {
                presented = header
            } else if request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true {
                let body = try await request.collectBody(upTo: 1 << 20)
                presented = FormBody(String(buffer: body))[Self.csrfField]
            } else {
                presented = nil
            }
            guard let presented, constantTimeEqual(presented, expected) else {
                try? recordDenied(request, context: context, required: required, reason: "csrf")
                throw HTTPError(
                    .forbidden, message: "the form's security token is missing or out of date; go back, reload the page and submit it again")
            }
        }
        let response = try await next(request, context)
        if Self.changesState(request.method), response.status.code < 400 { try recordIfUnaudited(request, context: context, status: response.status) }
        return response
    }

    func unauthenticated(_ request: Request) -> Response {
        if Self.isAPI(request) {
            return Problem(
                status: .unauthorized, detail: "sign in, or send an API token as Authorization: Bearer <token>"
            ).response(headers: [.wwwAuthenticate: "Bearer realm=\"steward\""])
        }
        var target = "/login"
        if request.method == .get, let path = request.uri.string.removingPercentEncoding, ReturnPath.isSafe(path), path != "/" {
            target += "?next=" + (request.uri.string.addingPercentEncoding(withAllowedCharacters: .urlQueryValueAllowed) ?? "")
        }
        return Response(status: .seeOther, headers: [.location: target, .cacheControl: "no-store"])
    }

    static func isAPI(_ request: Request) -> Bool {
        let path = request.uri.path
        return path.hasPrefix("/api/") || path == "/metrics"
    }

    static func changesState(_ method: HTTPRequest.Method) -> Bool {
        !(method == .get || method == .head || method == .options)
    }

    /// The catch-all: a state-changing request that succeeded without writing its own audit row gets a generic one.
    func recordIfUnaudited(_ request: Request, context: Context, status: HTTPResponse.Status) throws {
        let who = context.actor
        try services.sessions.database.write { db in
            guard try !AuditLog.hasEvent(db, requestID: context.requestID) else { return }
            try AuditLog.append(
                db, by: who, action: "http.\(request.method.rawValue.lowercased())", target: request.uri.path,
                after: ["route": context.endpointPath ?? "", "status": status.code], now: Date())
        }
    }

    func recordDenied(_ request: Request, context: Context, required: Permission, reason: String = "permission") throws {
        guard Self.changesState(request.method) else { return }
        let who = context.actor
        try services.sessions.database.write { db in
            try AuditLog.append(
                db, by: who, action: "access.denied", target: request.uri.path,
                after: ["route": context.endpointPath ?? "", "needs": required.rawValue, "reason": reason], now: Date())
        }
    }
}

extension CharacterSet {
    static let urlQueryValueAllowed: CharacterSet = {
        var set = CharacterSet.urlQueryAllowed
        set.remove(charactersIn: "&=+?#")
        return set
    }()
}

/// Compares secrets without an early exit, so timing does not reveal how much of a guess was right.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8)
    let y = Array(b.utf8)
    guard x.count == y.count else { return false }
    var difference: UInt8 = 0
    for index in x.indices { difference |= x[index] ^ y[index] }
    return difference == 0
}

/// The first administrator: while nobody holds admin, a one-time token printed at startup lets a PAM-authenticated
/// user claim the role at /setup. It lives only in this process's memory and dies after one use.
public final class SetupToken: Sendable {
    private let hash = Mutex<String?>(nil)

    public init() {}

    /// A new token (the old one stops working); returns the text to print.
    public func issue() -> String {
        let token = SessionStore.randomToken()
        hash.withLock { $0 = SessionStore.hash(token) }
        return token
    }

    public var isActive: Bool { hash.withLock { $0 != nil } }

    /// True exactly once for the right token.
    public func redeem(_ presented: String) -> Bool {
        let presentedHash = SessionStore.hash(presented.trimmingCharacters(in: .whitespacesAndNewlines))
        return hash.withLock { current in
            guard let expected = current, constantTimeEqual(expected, presentedHash) else { return false }
            current = nil
            return true
        }
    }

    public func discard() { hash.withLock { $0 = nil } }
}

/// Where a sign-in may send the browser back to: a path on this server, never another site (`//host`, `https://`,
/// a backslash some browsers read as a slash) and no control characters.
enum ReturnPath {
    static func isSafe(_ path: String) -> Bool {
        path.hasPrefix("/") && !path.hasPrefix("//") && !path.contains("\\") && !path.contains("://")
            && !path.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
}
