import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The classes of request that each get their own bound, so a flood of one cannot starve another: a storm of API
/// calls leaves sign-in, health checks and pages their own places.
public enum RouteClass: String, Sendable, CaseIterable {
    case health, statics = "static", auth, api, pages

    static func of(_ path: String, isStatic: (String) -> Bool) -> RouteClass {
        if path == "/healthz" || path == "/readyz" || path == "/metrics" { return .health }
        if path.hasPrefix("/api/") || path == "/api" { return .api }
        if path == "/login" || path.hasPrefix("/login/") || path == "/logout" || path == "/setup" { return .auth }
        if isStatic(path) { return .statics }
        return .pages
    }
}

/// At most `limit` requests at once, `queueLimit` more waiting at most `wait` each; anything beyond is turned away
/// at once. Waiters are admitted in arrival order.
public final class RequestGate: Sendable {
    struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }
    struct State {
        var active = 0
        var waiters: [Waiter] = []
        var head = 0
        var nextID: UInt64 = 0
        var admitted = 0
        var shed = 0
        var queued: Int { waiters.count - head }
    }
    let state = Mutex(State())
    public let limit: Int
    public let queueLimit: Int
    public let wait: Duration

    public init(limit: Int, queueLimit: Int, wait: Duration) {
        self.limit = max(1, limit)
        self.queueLimit = max(0, queueLimit)
        self.wait = wait
    }

    /// True once the request holds a place (call `leave()` after); false when it was turned away.
    public func enter() async -> Bool {
        enum Decision { case admitted, refused, queued(UInt64) }
        let id = state.withLock { $0.nextID &+= 1; return $0.nextID }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let decision: Decision = state.withLock { state in
                if state.active < limit {
                    state.active += 1
                    state.admitted += 1
                    return .admitted
                }
                guard state.queued < queueLimit else {
                    state.shed += 1
                    return .refused
                }
                state.waiters.append(Waiter(id: id, continuation: continuation))
                return .queued(id)
            }
            switch decision {
            case .admitted: continuation.resume(returning: true)
            case .refused: continuation.resume(returning: false)
            case .queued(let id):
                let wait = self.wait
                Task { [weak self] in
                    try? await Task.sleep(for: wait)
                    self?.expire(id)
                }
            }
        }
    }

    /// A waiter still queued when its time is up is turned away.
    private func expire(_ id: UInt64) {
        let expired: Waiter? = state.withLock { state in
            guard let index = state.waiters[state.head...].firstIndex(where: { $0.id == id }) else { return nil }
            state.shed += 1
            return state.waiters.remove(at: index)
        }
        expired?.continuation.resume(returning: false)
    }

    public func leave() {
        let next: Waiter? = state.withLock { state in
            if state.head < state.waiters.count {
                let waiter = state.waiters[state.head]
                state.head += 1
                state.admitted += 1
                if state.head > 256, state.head * 2 > state.waiters.count {
                    state.waiters.removeFirst(state.head)
                    state.head = 0
                }
                return waiter
            }
            state.active -= 1
            return nil
        }
        next?.continuation.resume(returning: true)
    }

    /// Every place taken and the queue full: a new request would be turned away at once.
    public var isFull: Bool { state.withLock { $0.active >= limit && $0.queued >= queueLimit } }

    /// Requests holding a place, waiting, and turned away since start.
    public var figures: (active: Int, queued: Int, shed: Int) { state.withLock { ($0.active, $0.queued, $0.shed) } }
}

/// The gates of every route class, shared by the middleware (which admits and queues) and the network-thread fast
/// path (which answers anonymous health checks and turns requests away while a class is full, without a task).
public final class LoadShedding: Sendable {
    let gates: [RouteClass: RequestGate]
    let isStatic: @Sendable (String) -> Bool
    private let fastHealth = Atomic<Int>(0)
    private let fastShed = Atomic<Int>(0)
    private let paced = Atomic<Int>(0)

    /// Health checks answered on the network thread, requests turned away there, and times a connection's reading
    /// was held after such an answer (see FastPathHandler), since start.
    public var figures: (health: Int, shed: Int, paced: Int) {
        (fastHealth.load(ordering: .relaxed), fastShed.load(ordering: .relaxed), paced.load(ordering: .relaxed))
    }
    func countHealth() { fastHealth.add(1, ordering: .relaxed) }
    func countShed() { fastShed.add(1, ordering: .relaxed) }
    func countPaced() { paced.add(1, ordering: .relaxed) }

    public init(configuration: StewardConfiguration, isStatic: @escaping @Sendable (String) -> Bool) {
        let wait = Duration.milliseconds(configuration.queueWaitMilliseconds)
        let base = configuration.maxConcurrentRequests
        var gates: [RouteClass: RequestGate] = [:]
        for kind in RouteClass.allCases {
            // Health answers are a few bytes and static files come from memory: their bounds only stop a runaway,
            // so a flood of /healthz cannot turn a monitoring probe away.
            let limit =
                switch kind {
                case .health: max(1024, base * 64)
                case .statics: max(256, base * 16)
                case .auth, .api, .pages: base
                }
            gates[kind] = RequestGate(limit: limit, queueLimit: configuration.maxQueuedRequests, wait: wait)
        }
        self.gates = gates
        self.isStatic = isStatic
    }
}

/// Bounds concurrent requests per route class and sheds the rest with a quick 503 and Retry-After; a request whose
/// client has gone while it waited is dropped before any work is done for it.
struct LoadSheddingMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    let shedding: LoadShedding

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let kind = RouteClass.of(request.uri.path, isStatic: shedding.isStatic)
        guard let gate = shedding.gates[kind] else { return try await next(request, context) }
        let arrived = ContinuousClock.now
        guard await gate.enter() else { return Self.busy(kind, path: request.uri.path) }
        defer { gate.leave() }
        // Only a request that waited for its place can have lost its client in between; the check costs a hop to the
        // network thread, so a request admitted at once skips it.
        guard ContinuousClock.now - arrived > .milliseconds(1) else { return try await next(request, context) }
        // The client hung up while this request waited: nobody will read the answer, so do none of the work.
        // (A connection with no peer address is an in-process test channel, never a gone client.)
        let gone = context.remoteAddress == nil ? false : await Self.clientHasGone(context.channel)
        guard !gone else { return Response(status: .init(code: 499, reasonPhrase: "Client Closed Request")) }
        return try await next(request, context)
    }

    /// True when the peer has closed its end. While a request is being handled the server reads no further, so
    /// the end of the stream is not seen by the channel; the kernel's TCP state says it: CLOSE_WAIT once the peer's
    /// FIN arrived, CLOSE after a reset. Read through TCP_INFO (only its first byte, tcpi_state).
    static func clientHasGone(_ channel: any Channel) async -> Bool {
        guard channel.isActive else { return true }
        guard let socket = channel as? any SocketOptionProvider else { return false }
        let future: EventLoopFuture<UInt8> = socket.unsafeGetSocketOption(level: SocketOptionLevel(IPPROTO_TCP), name: SocketOptionName(TCP_INFO))
        guard let state = try? await future.get() else { return false }
        return state == 8 || state == 7
    }

    static func busy(_ kind: RouteClass, path: String) -> Response {
        let (headers, body) = busyParts(kind)
        return Response(status: .serviceUnavailable, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func busyParts(_ kind: RouteClass) -> (HTTPFields, String) {
        let detail = "Steward is busy (too many \(kind.rawValue) requests at once); try again in a second"
        var headers: HTTPFields = [.retryAfter: "1", .cacheControl: "no-store"]
        let body: String
        if kind == .api || kind == .health {
            headers[.contentType] = "application/problem+json"
            body = #"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"\#(detail)"}"#
        } else {
            headers[.contentType] = "text/plain; charset=utf-8"
            body = detail + "\n"
        }
        headers[.contentLength] = String(body.utf8.count)
        return (headers, body)
    }
}

/// On the network thread, before a request becomes a task: an anonymous `GET /healthz` is answered at once (a probe
/// must not wait behind a flood of work in the task pool), and a request of a class whose places and queue are all
/// taken gets its 503 here, which costs a flood far less than a task, a log line and a histogram sample each. Both
/// are counted on /metrics. Anything else passes on untouched.
///
/// After such an answer the connection's next request is read no sooner than it is due: after a 503, once its
/// Retry-After has passed; after a health answer, `healthSpacing` later (a health checker asks every few seconds).
/// Nothing is refused for it; the bytes wait in the socket. Without this, a few thousand keep-alive connections
/// asking back to back keep every connection ready on every turn of the network threads, and a new client waits
/// behind all of them several times over while its connection is set up.
final class FastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let shedding: LoadShedding
    let allowlist: HostAllowlist
    let securityHeaders: HTTPFields
    let healthSpacing: TimeAmount
    /// Set while the parts of a request answered here are still arriving; they are dropped.
    var swallowing = false
    /// Reads are held until then.
    var readsResumeAt: NIODeadline?
    var readHeld = false
    var resume: Scheduled<Void>?
    var removed = false

    static let healthBody = #"{"status":"ok"}"#
    static let retryAfter = TimeAmount.seconds(1)

    init(shedding: LoadShedding, allowlist: HostAllowlist, securityHeaders: HTTPFields, healthSpacing: TimeAmount = .milliseconds(100)) {
        self.shedding = shedding
        self.allowlist = allowlist
        self.securityHeaders = securityHeaders
        self.healthSpacing = healthSpacing
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let request):
            if let answer = answer(request) {
                swallowing = true
                var headers = securityHeaders
                headers.append(contentsOf: answer.headers)
                // A client that asked for the connection to end gets that, as the full path would do.
                let closing = request.headerFields[.connection]?.lowercased().contains("close") ?? false
                if closing { headers[.connection] = "close" }
                context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(ByteBuffer(string: answer.body))), promise: nil)
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                    if closing { channel.close(promise: nil) }
                }
                if !closing { holdReads(context, for: answer.status == .ok ? healthSpacing : Self.retryAfter) }
                return
            }
            context.fireChannelRead(data)
        case .body:
            if !swallowing { context.fireChannelRead(data) }
        case .end:
            if swallowing {
                swallowing = false
            } else {
                context.fireChannelRead(data)
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if let until = readsResumeAt, context.eventLoop.now < until {
            if !readHeld { shedding.countPaced() }
            readHeld = true
            return
        }
        context.read()
    }

    func holdReads(_ context: ChannelHandlerContext, for pause: TimeAmount) {
        let until = context.eventLoop.now + pause
        readsResumeAt = until
        guard resume == nil else { return }
        scheduleResume(context, at: until)
    }

    func scheduleResume(_ context: ChannelHandlerContext, at due: NIODeadline) {
        resume = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) {
            self.resume = nil
            guard !self.removed else { return }
            // A later answer may have moved the time on: aim again rather than keep one timer per answer.
            if let until = self.readsResumeAt, until > due {
                self.scheduleResume(context, at: until)
                return
            }
            self.readsResumeAt = nil
            if self.readHeld {
                self.readHeld = false
                context.read()
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Not cancelled, for the same reason as ConnectionGuardHandler's timer: it fires, sees this, and stops.
        removed = true
    }

    func answer(_ request: HTTPRequest) -> (status: HTTPResponse.Status, headers: HTTPFields, body: String)? {
        let path = request.path.map { $0.split(separator: "?", maxSplits: 1).first.map(String.init) ?? $0 } ?? "/"
        // A foreign Host goes on to the middleware that refuses it with words (DNS rebinding, SECURITY.md 17).
        guard let authority = request.authority, allowlist.allows(authority: authority) else { return nil }
        if path == "/healthz", request.method == .get, request.headerFields[.authorization] == nil, request.headerFields[.cookie] == nil {
            shedding.countHealth()
            let headers: HTTPFields = [
                .contentType: "application/json", .cacheControl: "no-store", .contentLength: String(Self.healthBody.utf8.count),
            ]
            return (.ok, headers, Self.healthBody)
        }
        let kind = RouteClass.of(path, isStatic: shedding.isStatic)
        guard let gate = shedding.gates[kind], gate.isFull else { return nil }
        shedding.countShed()
        let (headers, body) = LoadSheddingMiddleware.busyParts(kind)
        return (.serviceUnavailable, headers, body)
    }
}
