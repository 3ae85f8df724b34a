import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Limits that keep a flood of connections from taking the server down (SECURITY.md class 15): a cap on open
/// connections in total and per client address, both well below the descriptor limit, and a deadline for a
/// connection's request head (slow headers, and TLS handshakes that never finish).
public struct ConnectionLimits: Sendable, Equatable {
    public var maximumConnections: Int
    public var maximumPerAddress: Int
    public var headerTimeout: TimeAmount
    /// How long a kept-alive connection may sit between requests.
    public var idleTimeout: TimeAmount

    public init(maximumConnections: Int, maximumPerAddress: Int, headerTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.maximumConnections = maximumConnections
        self.maximumPerAddress = maximumPerAddress
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }

    /// The configured caps, lowered when the descriptor limit leaves less room: connections may use at most half the
    /// descriptors, so the database, job pipes and SSH always find one.
    public static func from(_ configuration: StewardConfiguration, descriptorLimit: Int = DescriptorLimit.current()) -> ConnectionLimits {
        let room = max(32, (descriptorLimit - 256) / 2)
        let total = min(configuration.maxConnections, room)
        return ConnectionLimits(
            maximumConnections: total, maximumPerAddress: min(configuration.maxConnectionsPerAddress, total),
            headerTimeout: .seconds(Int64(configuration.headerTimeoutSeconds)), idleTimeout: .seconds(Int64(configuration.idleTimeoutSeconds)))
    }
}

/// The process's open-file limit.
public enum DescriptorLimit {
    public static func current() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur == rlim_t.max ? 1 << 20 : Int(clamping: limit.rlim_cur)
    }

    /// Raise the soft limit to the hard limit (systemd and most shells start services at 1024); returns (before, after).
    @discardableResult
    public static func raiseToHard() -> (before: Int, after: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (1024, 1024) }
        let before = Int(clamping: limit.rlim_cur)
        guard limit.rlim_cur < limit.rlim_max else { return (before, before) }
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (before, before) }
        return (before, current())
    }
}

/// Open connections, in total and per client address; shared by every event loop. Connections that are waiting
/// for a request head (new, or kept alive between requests) can be evicted: when the server is full, the one that
/// has waited longest, from the address with the most such connections, is closed to make room, so a flood of idle
/// sockets cannot lock out a client that talks.
public final class ConnectionCounts: Sendable {
    struct Waiting {
        let channel: any Channel
        let since: NIODeadline
        let address: String
    }
    struct State {
        var total = 0
        var perAddress: [String: Int] = [:]
        var waiting: [ObjectIdentifier: Waiting] = [:]
        /// Evicted connections whose place was already handed over; their close must not release it again.
        var evictedIDs: Set<ObjectIdentifier> = []
        var refused = 0
        var evicted = 0
    }
    let state = Mutex(State())
    public let limits: ConnectionLimits

    public init(limits: ConnectionLimits) {
        self.limits = limits
    }

    /// Take a place for a new connection from `address`, or say which cap it hit. At the total cap the longest-waiting
    /// idle connection is closed instead, when there is one.
    func open(_ channel: any Channel, address: String, now: NIODeadline = .now()) -> String? {
        let (refusal, victim): (String?, (any Channel)?) = state.withLock { state in
            if state.perAddress[address, default: 0] >= limits.maximumPerAddress {
                state.refused += 1
                return ("\(address) holds its maximum of \(limits.maximumPerAddress) connections", nil)
            }
            var victim: (any Channel)?
            if state.total >= limits.maximumConnections {
                // The victim comes from the address with the most connections waiting, the longest-waiting of those:
                // a flood from a few addresses pays for its own, and a client with one connection, accepted in the
                // same burst as hundreds of the flood's (up to 256 accepts a wake-up) and not read yet, keeps it.
                var waitingAt: [String: Int] = [:]
                for entry in state.waiting.values { waitingAt[entry.address, default: 0] += 1 }
                let oldest = state.waiting.max { a, b in
                    let (countA, countB) = (waitingAt[a.value.address, default: 0], waitingAt[b.value.address, default: 0])
                    return countA != countB ? countA < countB : a.value.since > b.value.since
                }
                guard let oldest else {
                    state.refused += 1
                    return ("the server holds its maximum of \(limits.maximumConnections) connections, all busy", nil)
                }
                state.waiting[oldest.key] = nil
                state.evictedIDs.insert(oldest.key)
                state.evicted += 1
                victim = oldest.value.channel
                // The victim's place is handed over now; its own close finds it already released.
                Self.release(&state, address: oldest.value.address)
            }
            state.total += 1
            state.perAddress[address, default: 0] += 1
            state.waiting[ObjectIdentifier(channel)] = Waiting(channel: channel, since: now, address: address)
            return (nil, victim)
        }
        victim?.close(promise: nil)
        return refusal
    }

    /// The connection delivered a request head: it is busy until its response ends.
    func busy(_ channel: any Channel) {
        _ = state.withLock { $0.waiting.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// The response ended; the connection waits for its next request and may be evicted.
    func idle(_ channel: any Channel, address: String, now: NIODeadline = .now()) {
        state.withLock { $0.waiting[ObjectIdentifier(channel)] = Waiting(channel: channel, since: now, address: address) }
    }

    /// The connection closed; false when its place had already been handed to another (it was evicted).
    @discardableResult
    func close(_ channel: any Channel, address: String) -> Bool {
        state.withLock { state in
            let id = ObjectIdentifier(channel)
            if state.evictedIDs.remove(id) != nil { return false }
            state.waiting[id] = nil
            Self.release(&state, address: address)
            return true
        }
    }

    static func release(_ state: inout State, address: String) {
        state.total -= 1
        let left = state.perAddress[address, default: 1] - 1
        state.perAddress[address] = left > 0 ? left : nil
    }

    public var open: Int { state.withLock { $0.total } }
    public var refused: Int { state.withLock { $0.refused } }
    public var evicted: Int { state.withLock { $0.evicted } }
}

/// Joins every connection's pipeline right after it is accepted: over a cap it closes the connection before any
/// byte is read; otherwise it closes it when no complete request head arrives within the header timeout, counted
/// from the accept and again from the end of each response (the keep-alive wait).
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let counts: ConnectionCounts
    let logger: Logger
    var address: String?
    /// When the connection last became idle (accepted, or a response ended); nil while a request is under way.
    var idleSince: NIODeadline?
    /// One timer per connection, re-aimed only when it fires: arming and cancelling a timer for every request
    /// costs a search of the event loop's whole timer heap, which under a keep-alive flood was a fifth of the CPU.
    var deadlineCheck: Scheduled<Void>?

    init(counts: ConnectionCounts, logger: Logger) {
        self.counts = counts
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if let refusal = counts.open(context.channel, address: peer) {
            // Logged at debug: a flood must not turn into a flood of log lines.
            logger.debug("connection refused", metadata: ["remote": "\(peer)", "reason": "\(refusal)"])
            context.close(promise: nil)
            return
        }
        address = peer
        armHeaderDeadline(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        release(context)
        context.fireChannelInactive()
    }

    func release(_ context: ChannelHandlerContext) {
        // The timer is left to fire and find nothing to do: cancelling searches the timer heap, and when a flood's
        // thousands of connections close at once those searches held the network threads for a noticeable while.
        idleSince = nil
        if let address {
            counts.close(context.channel, address: address)
            self.address = nil
        }
    }

    func armHeaderDeadline(_ context: ChannelHandlerContext) {
        let now = context.eventLoop.now
        idleSince = now
        if deadlineCheck == nil { scheduleDeadlineCheck(context, at: now + counts.limits.headerTimeout) }
    }

    func scheduleDeadlineCheck(_ context: ChannelHandlerContext, at due: NIODeadline) {
        deadlineCheck = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) {
            self.deadlineCheck = nil
            // Busy (a request is being read or answered) or already released: the next idle moment re-arms.
            guard let since = self.idleSince, self.address != nil else { return }
            let due = since + self.counts.limits.headerTimeout
            if context.eventLoop.now >= due {
                context.close(promise: nil)
            } else {
                self.scheduleDeadlineCheck(context, at: due)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            idleSince = nil
            counts.busy(context.channel)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), let address, context.channel.isActive {
            counts.idle(context.channel, address: address)
            armHeaderDeadline(context)
        }
        context.write(data, promise: promise)
    }
}

/// Hands freed heap back to the system once a burst of connections is over: glibc keeps what thousands of
/// connections allocated in its arenas, so without this the resident size stays at the burst's peak for good.
struct MemoryTrimmer: Service {
    let connections: ConnectionCounts
    var interval: Duration = .seconds(10)
    /// Trim only when this few connections are open (a quiet moment), and only after a busier one.
    var quiet = 64

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var busiest = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let open = connections.open
                busiest = max(busiest, open)
                guard open < quiet, busiest >= quiet else { continue }
                try? await Task.sleep(for: interval)
                guard connections.open < quiet else { continue }
                _ = mallocTrim(0)
                busiest = 0
            }
        }
    }
}

/// glibc's malloc_trim (declared in malloc.h, which no imported module exposes).
@_silgen_name("malloc_trim")
func mallocTrim(_ pad: Int) -> Int32
