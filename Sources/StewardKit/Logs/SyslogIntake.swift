import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// Syslog for devices Steward cannot pull from: TCP (RFC 6587 framing) and UDP on `syslog_port`, TLS on
/// `syslog_tls_port`, from the addresses an admin lists only. Lines are kept in memory for at most a second and then
/// stored per host (source `syslog`) like a journal read; what could not be kept is counted per sender, never silent.
public final class SyslogIntake: Service, Sendable {
    public struct Settings: Sendable {
        public var bind = "0.0.0.0"
        public var port = 0
        public var tlsPort = 0
        public var tls: TLSConfiguration?
        /// When a message arrives (tests set it to read a December line in January).
        public var clock: @Sendable () -> Date = { Date() }
        public init() {}
    }

    /// What happened to one sender's messages since Steward started.
    public struct SenderCounts: Sendable {
        public var received = 0
        public var stored = 0
        public var refused = 0
        public var unattributed = 0
        public var damaged = 0
        public var dropped = 0
        public var lastAt: Date?
    }

    public struct Status: Sendable {
        public var listening: [String]
        public var problems: [String]
        public var senders: [(address: String, counts: SenderCounts)]
    }

    struct State {
        var routes = SyslogRoutes()
        var pending: [Int64: [(line: LogLine, sender: String)]] = [:]
        var pendingCount = 0
        var pendingBytes = 0
        var counts: [String: SenderCounts] = [:]
        var listening: [String] = []
        var problems: [String] = []
        var connections = 0
        var connectionsByAddress: [String: Int] = [:]
    }

    let store: LogStore
    let senders: SyslogSenderStore
    let hosts: HostStore
    let readings: HostReadingStore
    let settings: Settings
    let logger: Logger
    let state = Mutex(State())
    /// Lines (and their bytes) waiting to be stored; past either, new lines are dropped (and counted) until the next store.
    static let maxPending = 200_000
    static let maxPendingBytes = 64 << 20
    static let maxConnections = 512
    /// Connections from one address (a listed device cannot hold every slot).
    static let maxConnectionsPerAddress = 16
    /// A connection that sends nothing this long (an idle sender, a TLS handshake never finished) is closed; senders
    /// reconnect when they have something to say.
    static let idleTimeout: TimeAmount = .minutes(10)
    /// Senders whose counts are kept (refused addresses beyond it are counted under "other").
    static let maxTrackedSenders = 1024
    static let source = "syslog"

    init(store: LogStore, senders: SyslogSenderStore, hosts: HostStore, readings: HostReadingStore, settings: Settings, logger: Logger) {
        self.store = store
        self.senders = senders
        self.hosts = hosts
        self.readings = readings
        self.settings = settings
        self.logger = logger
    }

    public var enabled: Bool { settings.port > 0 || settings.tlsPort > 0 }

    public func run() async throws {
        guard enabled else {
            try? await gracefulShutdown()
            return
        }
        reload()
        let channels = await listen()
        await cancelWhenGracefulShutdown { [self] in
            var rounds = 0
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(1)) } catch { break }
                rounds += 1
                flush(compact: rounds % 10 == 0)
                if rounds % 5 == 0 { reload() }
            }
        }
        for channel in channels { try? await channel.close() }
        flush(compact: true)
    }

    func listen() async -> [any Channel] {
        var channels: [any Channel] = []
        let group = MultiThreadedEventLoopGroup.singleton
        func note(_ what: String, _ result: () async throws -> any Channel) async {
            do {
                channels.append(try await result())
                state.withLock { $0.listening.append(what) }
                logger.notice("listening for syslog", metadata: ["on": "\(what)"])
            } catch {
                let problem = "cannot listen for syslog on \(what): \(error)"
                state.withLock { $0.problems.append(problem) }
                logger.error("\(problem)")
            }
        }
        let bind = settings.bind
        if settings.port > 0 {
            let port = settings.port
            await note("TCP \(bind) port \(port)") {
                try await ServerBootstrap(group: group).serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                            try channel.pipeline.syncOperations.addHandler(SyslogStreamHandler(intake: self, transport: "tcp"))
                        }
                    }
                    .bind(host: bind, port: port).get()
            }
            await note("UDP \(bind) port \(port)") {
                try await DatagramBootstrap(group: group).channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(SyslogDatagramHandler(intake: self)) }
                    }
                    .bind(host: bind, port: port).get()
            }
        }
        if settings.tlsPort > 0 {
            let port = settings.tlsPort
            await note("TLS \(bind) port \(port)") {
                guard let tls = settings.tls else { throw SyslogFramer.Failure(description: "TLS is off (tls = false), so there is no certificate") }
                let context = try NIOSSLContext(configuration: tls)
                return try await ServerBootstrap(group: group).serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                            try channel.pipeline.syncOperations.addHandler(SyslogStreamHandler(intake: self, transport: "tls"))
                        }
                    }
                    .bind(host: bind, port: port).get()
            }
        }
        return channels
    }

    /// Reads the list of senders and the hosts again (every few seconds, and at once after an admin changes the list).
    public func reload() {
        do {
            let all = try hosts.all()
            var zones: [Int64: String] = [:]
            for host in all {
                if let reading = try readings.latest(CronListing.self, kind: CronListing.kind, hostID: host.id) {
                    zones[host.id] = reading.body.timeZone
                }
            }
            let routes = SyslogRoutes(senders: try senders.all(), hosts: all, zones: zones)
            state.withLock { $0.routes = routes }
        } catch {
            logger.warning("could not read the syslog senders", metadata: ["error": "\(error)"])
        }
    }

    func decide(_ address: String) -> SyslogRoutes.Decision { state.withLock { $0.routes.decide(address) } }

    /// A connection opens: whether it may stay (a listed sender, and room for it).
    func admit(_ address: String) -> Bool {
        state.withLock { state in
            guard case .refused = state.routes.decide(address) else {
                guard state.connections < Self.maxConnections, state.connectionsByAddress[address, default: 0] < Self.maxConnectionsPerAddress else {
                    Self.count(&state, address) { $0.dropped += 1 }
                    return false
                }
                state.connections += 1
                state.connectionsByAddress[address, default: 0] += 1
                return true
            }
            Self.count(&state, address) { $0.refused += 1 }
            return false
        }
    }

    func closed(_ address: String) {
        state.withLock { state in
            state.connections -= 1
            state.connectionsByAddress[address, default: 1] -= 1
            if state.connectionsByAddress[address] == 0 { state.connectionsByAddress[address] = nil }
        }
    }

    static func count(_ state: inout State, _ address: String, _ change: (inout SenderCounts) -> Void) {
        let key = state.counts[address] != nil || state.counts.count < maxTrackedSenders ? address : "other"
        var counts = state.counts[key] ?? SenderCounts()
        change(&counts)
        counts.lastAt = Date()
        state.counts[key] = counts
    }

    /// Frames from one sender: parsed, then queued for their host.
    func receive(_ frames: [ArraySlice<UInt8>], from address: String, transport: String, damaged: Int = 0) {
        let decision = decide(address)
        guard case .host(let hostID, let zone) = decision else {
            state.withLock { state in
                Self.count(&state, address) { counts in
                    if case .refused = decision { counts.refused += frames.count } else { counts.unattributed += frames.count }
                    counts.damaged += damaged
                }
            }
            return
        }
        let origin = SyslogMessage.Origin(sender: address, transport: transport, zone: zone, now: settings.clock())
        let lines = frames.map { SyslogMessage.line($0, origin: origin) }
        state.withLock { state in
            var kept = 0
            for line in lines {
                let bytes =
                    line.message.utf8.count + line.identifier.utf8.count + line.fields.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
                    + 128
                guard state.pendingCount < Self.maxPending, state.pendingBytes + bytes <= Self.maxPendingBytes else { break }
                state.pending[hostID, default: []].append((line: line, sender: address))
                state.pendingCount += 1
                state.pendingBytes += bytes
                kept += 1
            }
            Self.count(&state, address) { counts in
                counts.received += lines.count
                counts.dropped += lines.count - kept
                counts.damaged += damaged
            }
        }
    }

    func damaged(from address: String) { state.withLock { Self.count(&$0, address) { $0.damaged += 1 } } }

    /// Stores what arrived since the last call, host by host (one host's failure does not lose another's lines).
    public func flush(compact: Bool = false) {
        let pending = state.withLock { state in
            defer {
                state.pending = [:]
                state.pendingCount = 0
                state.pendingBytes = 0
            }
            return state.pending
        }
        for (hostID, entries) in pending {
            do {
                try store.append(hostID: hostID, source: Self.source, lines: entries.map(\.line), position: nil)
                state.withLock { state in for entry in entries { Self.count(&state, entry.sender) { $0.stored += 1 } } }
            } catch {
                logger.warning("could not store syslog lines", metadata: ["host_id": "\(hostID)", "lines": "\(entries.count)", "error": "\(error)"])
                state.withLock { state in for entry in entries { Self.count(&state, entry.sender) { $0.dropped += 1 } } }
            }
        }
        guard compact else { return }
        for hostID in (try? store.sources().filter { $0.source == Self.source }.map(\.hostID)) ?? [] {
            _ = try? store.compact(hostID: hostID, source: Self.source)
        }
    }

    public func status() -> Status {
        state.withLock { state in
            Status(
                listening: state.listening, problems: state.problems,
                senders: state.counts.sorted { $0.key < $1.key }.map { (address: $0.key, counts: $0.value) })
        }
    }
}

/// One TCP or TLS connection: refused at once unless its address is listed; then split into messages.
final class SyslogStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let intake: SyslogIntake
    let transport: String
    var framer = SyslogFramer()
    var address = ""
    var admitted = false

    init(intake: SyslogIntake, transport: String) {
        self.intake = intake
        self.transport = transport
    }

    func channelActive(context: ChannelHandlerContext) {
        address = context.remoteAddress?.ipAddress ?? ""
        admitted = intake.admit(address)
        if !admitted { context.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard admitted else { return }
        let buffer = unwrapInboundIn(data)
        let before = framer.damaged
        do {
            let frames = try framer.push(buffer.readableBytesView)
            if !frames.isEmpty || framer.damaged > before {
                intake.receive(frames, from: address, transport: transport, damaged: framer.damaged - before)
            }
        } catch {
            intake.damaged(from: address)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if admitted {
            let before = framer.damaged
            let last = framer.finish()
            if last != nil || framer.damaged > before {
                intake.receive(last.map { [$0] } ?? [], from: address, transport: transport, damaged: framer.damaged - before)
            }
            intake.closed(address)
            admitted = false
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// UDP: one message per datagram, from listed addresses only.
final class SyslogDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let intake: SyslogIntake

    init(intake: SyslogIntake) { self.intake = intake }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView.prefix(SyslogFramer.maxFrame))
        intake.receive([bytes[...]], from: envelope.remoteAddress.ipAddress ?? "", transport: "udp")
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}
