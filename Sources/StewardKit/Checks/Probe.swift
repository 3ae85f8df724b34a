import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import ServiceLifecycle

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What one run of a check saw.
public struct ProbeResult: Sendable, Equatable {
    public var at: Int64
    public var success: Bool
    public var duration: Double
    public var status: Int?
    public var error: String
    /// The peer certificate's notAfter (epoch ms), for HTTPS.
    public var certExpiresAt: Int64?
}

/// Runs checks: HTTP(S) through URLSession (redirects followed, the status and body text compared), TCP as a bare
/// connect; the TLS certificate's expiry is read on a connection of its own, at most hourly per check.
public enum Probe {
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalAndRemoteCacheData
        configuration.httpCookieStorage = nil
        configuration.urlCache = nil
        return URLSession(configuration: configuration, delegate: RedirectGuard(), delegateQueue: nil)
    }()

    /// Follows a redirect only to a name that does not lead to a link-local address.
    final class RedirectGuard: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
            completionHandler: @escaping @Sendable (URLRequest?) -> Void
        ) {
            guard let host = request.url?.host, Probe.linkLocalAddress(host) == nil else { return completionHandler(nil) }
            completionHandler(request)
        }
    }

    /// The first link-local address a name resolves to (169.254.0.0/16, fe80::/10, or 169.254.x.x mapped into IPv6),
    /// or nil. Numeric forms (decimal, octal, hex, mapped) resolve to what they mean, so they are caught here too.
    public static func linkLocalAddress(_ host: String) -> String? {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(bare, nil, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(first) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            if let address = current.pointee.ai_addr {
                if current.pointee.ai_family == AF_INET {
                    let bytes = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }
                    }
                    if bytes[0] == 169 && bytes[1] == 254 { return bytes.map(String.init).joined(separator: ".") }
                } else if current.pointee.ai_family == AF_INET6 {
                    let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }
                    }
                    let mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
                    if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return "fe80::/10" }
                    if mapped && bytes[12] == 169 && bytes[13] == 254 { return bytes[12...].map(String.init).joined(separator: ".") }
                }
            }
            entry = current.pointee.ai_next
        }
        return nil
    }

    public static func run(_ check: Check, now: Date = Date(), readCertificate: Bool = true) async -> ProbeResult {
        let started = ContinuousClock.now
        var result = ProbeResult(at: EpochMilliseconds.from(now), success: false, duration: 0, status: nil, error: "")
        let host = check.kind == .http ? URL(string: check.target)?.host : Check.hostPort(check.target)?.host
        // getaddrinfo blocks (up to the resolver's timeouts): on a thread of its own, not the cooperative pool.
        if let host, let address = try? await offload({ linkLocalAddress(host) }) {
            result.error = "\(host) leads to the link-local address \(address), which Steward does not probe"
            return result
        }
        func elapsed() -> Double {
            let duration = ContinuousClock.now - started
            return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        switch check.kind {
        case .http:
            guard let url = URL(string: check.target) else {
                result.error = "not a URL"
                return result
            }
            var request = URLRequest(url: url, timeoutInterval: check.timeoutSeconds)
            request.httpMethod = check.method.rawValue
            request.setValue("Steward-check/1", forHTTPHeaderField: "User-Agent")
            do {
                let (data, response) = try await session.data(for: request)
                result.duration = elapsed()
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                result.status = status
                let ranges = Check.statusRanges(check.expectStatus) ?? [200...399]
                if !ranges.contains(where: { $0.contains(status) }) {
                    result.error = "HTTP \(status), expected \(check.expectStatus)"
                } else if !check.expectBody.isEmpty, !String(decoding: data, as: UTF8.self).contains(check.expectBody) {
                    result.error = "the body (\(data.count) bytes) does not contain \"\(check.expectBody)\""
                } else {
                    result.success = true
                }
            } catch {
                result.duration = elapsed()
                result.error = (error as? URLError)?.code == .timedOut ? "no answer within \(check.timeoutSeconds) s" : error.localizedDescription
            }
            if readCertificate, url.scheme?.lowercased() == "https", let host = url.host {
                result.certExpiresAt = try? await certificateExpiry(host: host, port: url.port ?? 443, timeout: check.timeoutSeconds)
            }
            // The sample is stamped when the run ends, as it is stored: a minute the SLO engine has closed gets no late runs.
            result.at = EpochMilliseconds.from(now.addingTimeInterval(result.duration))
        case .tcp:
            guard let (host, port) = Check.hostPort(check.target) else {
                result.error = "not host:port"
                return result
            }
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.milliseconds(Int64(check.timeoutSeconds * 1000)))
                    .connect(host: host, port: port).get()
                result.duration = elapsed()
                result.success = true
                try? await channel.close()
            } catch {
                result.duration = elapsed()
                result.error = "\(check.target): \(error)"
            }
            result.at = EpochMilliseconds.from(now.addingTimeInterval(result.duration))
        }
        return result
    }

    /// Waits for the TLS handshake to end.
    final class HandshakeWatcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = Any
        let promise: EventLoopPromise<Void>
        init(promise: EventLoopPromise<Void>) { self.promise = promise }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event as? TLSUserEvent ?? .shutdownCompleted { promise.succeed() }
            context.fireUserInboundEventTriggered(event)
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
            context.close(promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.eof)
            context.fireChannelInactive()
        }
    }

    /// The notAfter of the certificate a TLS server presents (epoch ms). The chain is not verified here: the probe's
    /// own request did that, and an expired certificate must still have its date read.
    public static func certificateExpiry(host: String, port: Int, timeout: Double) async throws -> Int64? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(Int64(timeout * 1000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host))
                    try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(promise: promise))
                }
            }
            .connect(host: host, port: port).get()
        defer { channel.close(promise: nil) }
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) {
            promise.fail(ChannelError.connectTimeout(.seconds(0)))
        }
        defer { deadline.cancel() }
        try await promise.futureResult.get()
        guard let certificate = try await channel.nioSSL_peerCertificate().get() else { return nil }
        return Int64(certificate.notValidAfter) * 1000
    }
}

/// Runs every enabled check at its interval (at most 16 at once), stores each result as series of the check's host
/// and as the check's newest result.
public final class CheckRunner: Service, @unchecked Sendable {
    public static let seriesNames = ["probe_success", "probe_duration_seconds", "probe_http_status_code", "probe_ssl_earliest_cert_expiry"]
    let store: CheckStore
    let metrics: MetricStore
    let remoteWrite: RemoteWrite?
    let hosts: HostStore
    let logger: Logger
    private let lock = NSLock()
    private var lastRun: [Int64: Date] = [:]
    private var lastCertificate: [Int64: Date] = [:]
    private var running: Set<Int64> = []

    public init(store: CheckStore, metrics: MetricStore, hosts: HostStore, remoteWrite: RemoteWrite?, logger: Logger) {
        self.store = store
        self.metrics = metrics
        self.hosts = hosts
        self.remoteWrite = remoteWrite
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            await withTaskGroup(of: Void.self) { group in
                while !Task.isCancelled {
                    do {
                        for check in try due(now: Date()) {
                            group.addTask { await self.runOnce(check) }
                        }
                    } catch {
                        logger.error("checks could not be read", metadata: ["error": "\(error)"])
                    }
                    try? await Task.sleep(for: .milliseconds(250))
                }
                group.cancelAll()
            }
        }
    }

    /// The checks whose time has come, marked as running.
    func due(now: Date) throws -> [Check] {
        let checks = try store.all().filter(\.enabled)
        return lock.withLock {
            var due: [Check] = []
            for check in checks where running.count < 16 && !running.contains(check.id) {
                if let last = lastRun[check.id], now.timeIntervalSince(last) < Double(check.intervalSeconds) { continue }
                lastRun[check.id] = now
                running.insert(check.id)
                due.append(check)
            }
            return due
        }
    }

    /// Run one check now and store what it saw. A run someone asks for (`scheduled` false) updates the check's newest
    /// result only: its series, which SLOs count, hold the scheduled runs, so nobody can add good events by asking.
    @discardableResult
    public func runOnce(_ check: Check, now: Date = Date(), scheduled: Bool = true) async -> ProbeResult {
        let certificateDue = lock.withLock { lastCertificate[check.id].map { now.timeIntervalSince($0) >= 3600 } ?? true }
        let result = await Probe.run(check, now: now, readCertificate: certificateDue)
        lock.withLock {
            running.remove(check.id)
            if result.certExpiresAt != nil { lastCertificate[check.id] = now }
        }
        do {
            if scheduled { try record(check, result) } else { try store.record(check.id, result) }
        } catch {
            logger.error("a check's result could not be stored", metadata: ["check": "\(check.name)", "error": "\(error)"])
        }
        return result
    }

    func record(_ check: Check, _ result: ProbeResult) throws {
        var entries: [(String, Double)] = [
            ("probe_success", result.success ? 1 : 0), ("probe_duration_seconds", (result.duration * 1e6).rounded() / 1e6),
        ]
        if let status = result.status { entries.append(("probe_http_status_code", Double(status))) }
        if let expiry = result.certExpiresAt { entries.append(("probe_ssl_earliest_cert_expiry", Double(expiry / 1000))) }
        let labels = check.seriesLabels
        let ids = try metrics.resolve(hostID: check.hostID, series: entries.map { ($0.0, labels, .gauge) })
        _ = metrics.append(zip(ids, entries).map { ($0, result.at, $1.1) })
        if let remoteWrite, remoteWrite.active, let host = try hosts.host(id: check.hostID) {
            remoteWrite.enqueue(host: host.name, samples: entries.map { ($0.0, labels, result.at, $0.1) })
        }
        try store.record(check.id, result)
    }
}
