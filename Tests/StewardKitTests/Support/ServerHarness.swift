import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

/// A whole Steward server (real SQLite, real routes and middleware) driven in memory by HummingbirdTesting.
struct ServerHarness: @unchecked Sendable {
    let directory = TemporaryDirectory()
    let server: StewardServer

    init(
        configure: (inout StewardConfiguration) -> Void = { _ in }, authenticator: (any PasswordAuthenticating)? = nil,
        throttle: LoginThrottlePolicy = .fast,
        // Test users are not Unix accounts; tests of account standing pass their own lookup.
        accountStanding: @escaping @Sendable (String) async -> AccountStanding = { _ in .usable }
    ) async throws {
        var configuration = StewardConfiguration(dataDirectory: directory.path + "/data")
        configuration.tls = false
        configuration.resourcesDirectory = repositoryRoot
        configuration.externalURL = "http://localhost:10000"
        configure(&configuration)
        server = try await StewardServer.build(
            configuration: configuration, logger: quietLogger,
            extraJobHandlers: [
                "test.echo": { context in
                    try await context.progress(40, "echoing")
                    try await context.run(ProcessCommand(["echo", "output of \(context.job.title)"]))
                }
            ],
            authenticator: authenticator, groupsOf: { user in user.hasPrefix("member-") ? ["staff"] : [] }, throttlePolicy: throttle,
            accountStanding: accountStanding)
    }

    /// Run a job to completion through the real runner loop.
    func runJob(title: String) async throws -> Job {
        let runner = server.jobs
        let loop = Task { try? await runner.run() }
        defer { loop.cancel() }
        let job = try await runner.enqueue(JobRequest(kind: "test.echo", title: title, startedBy: "test"))
        _ = try await waitUntil { try runner.store.job(id: job.id)?.state.isFinished == true }
        return try #require(try runner.store.job(id: job.id))
    }

    /// A signed-in browser: the role is granted for real and the session created by the real store.
    func signIn(_ user: String = "tester", as roles: Set<Role> = [.admin]) throws -> BrowserSession {
        for role in roles { _ = try server.access.roles.grant(role, to: .user, user, by: .system, now: Date()) }
        let (id, session) = try server.access.sessions.create(
            user: user, source: "127.0.0.1", userAgent: "tests", roles: try server.access.roles.roles(user: user, groups: []), now: Date())
        return BrowserSession(cookie: id, csrf: session.csrfToken)
    }

    /// Drive the app as an administrator (unless `as` says otherwise); `nil` means no session at all.
    func test(as roles: Set<Role>? = [.admin], _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let session = try roles.map { try signIn("tester-" + $0.map(\.rawValue).sorted().joined(separator: "-"), as: $0) }
        try await server.makeApplication().test(.router) { client in
            try await body(session.map { SignedInClient(base: client, session: $0) } ?? client)
        }
    }
}

struct BrowserSession: Sendable {
    var cookie: String
    var csrf: String

    var headers: HTTPFields { [.cookie: "steward_session=\(cookie)", HTTPField.Name("X-CSRF-Token")!: csrf] }
}

/// Adds the session cookie (merged with any cookie the test sets) and the CSRF header to every request.
struct SignedInClient: TestClientProtocol {
    let base: any TestClientProtocol
    let session: BrowserSession

    func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestResponse {
        var headers = headers
        let cookie = headers[.cookie].map { $0 + "; " } ?? ""
        headers[.cookie] = cookie + "steward_session=\(session.cookie)"
        if headers[HTTPField.Name("X-CSRF-Token")!] == nil { headers[HTTPField.Name("X-CSRF-Token")!] = session.csrf }
        return try await base.executeRequest(uri: uri, method: method, headers: headers, body: body)
    }

    var port: Int? { base.port }
}

extension LoginThrottlePolicy {
    /// The real rules with delays in milliseconds, so tests that fail ten logins do not wait a minute.
    static var fast: LoginThrottlePolicy {
        var policy = LoginThrottlePolicy()
        policy.baseDelay = 0.005
        policy.maximumDelay = 0.02
        return policy
    }
}

/// A value a @Sendable test closure hands back to the test (the closures run one at a time).
final class Captured<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
