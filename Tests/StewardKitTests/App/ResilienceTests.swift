import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import StewardKit

@Suite("Staying up: request gates, log output, leftover process groups, the database check")
struct ResilienceTests {
    @Test("a gate admits its limit, queues in arrival order, turns away beyond the queue at once and after the wait")
    func gate() async throws {
        let gate = RequestGate(limit: 2, queueLimit: 2, wait: .milliseconds(300))
        #expect(await gate.enter())
        #expect(await gate.enter())
        let order = OrderRecorder()
        let first = Task { let admitted = await gate.enter(); order.add("first \(admitted)"); return admitted }
        try await Task.sleep(for: .milliseconds(20))
        let second = Task { let admitted = await gate.enter(); order.add("second \(admitted)"); return admitted }
        try await Task.sleep(for: .milliseconds(20))
        // Queue full: refused without waiting.
        let started = ContinuousClock.now
        #expect(await gate.enter() == false)
        #expect(ContinuousClock.now - started < .milliseconds(100))
        gate.leave()
        #expect(await first.value)
        gate.leave()
        #expect(await second.value)
        #expect(order.items == ["first true", "second true"])
        // Both places taken again; a waiter that is not admitted within the wait is turned away.
        #expect(await gate.enter() == false)
        #expect(gate.figures.active == 2 && gate.figures.queued == 0 && gate.figures.shed == 2)
        gate.leave()
        gate.leave()
        #expect(gate.figures.active == 0)
    }

    @Test("route classes: health, API, sign-in, static files and pages each have their own gate")
    func classes() {
        let isStatic: (String) -> Bool = { $0 == "/css/steward.css" }
        #expect(RouteClass.of("/healthz", isStatic: isStatic) == .health)
        #expect(RouteClass.of("/readyz", isStatic: isStatic) == .health)
        #expect(RouteClass.of("/api/v1/hosts", isStatic: isStatic) == .api)
        #expect(RouteClass.of("/login", isStatic: isStatic) == .auth)
        #expect(RouteClass.of("/login/second-factor", isStatic: isStatic) == .auth)
        #expect(RouteClass.of("/css/steward.css", isStatic: isStatic) == .statics)
        #expect(RouteClass.of("/hosts", isStatic: isStatic) == .pages)
        let busy = LoadSheddingMiddleware.busy(.api, path: "/api/v1/hosts")
        #expect(busy.status.code == 503 && busy.headers[.retryAfter] == "1")
    }

    @Test("a failed log write is counted and skipped: /dev/full, and a pipe whose reader is gone")
    func logOutput() throws {
        signal(SIGPIPE, SIG_IGN)
        let before = LogOutput.failedLines
        let full = open("/dev/full", O_WRONLY)
        #expect(full >= 0)
        defer { close(full) }
        #expect(LogOutput.write("a line\n", descriptor: full) == false)
        #expect(LogOutput.lastErrno == ENOSPC)
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        close(ends[0])
        defer { close(ends[1]) }
        #expect(LogOutput.write("a line\n", descriptor: ends[1]) == false)
        #expect(LogOutput.lastErrno == EPIPE)
        #expect(LogOutput.failedLines == before + 2)
        let null = open("/dev/null", O_WRONLY)
        defer { close(null) }
        #expect(LogOutput.write(String(repeating: "x", count: 100_000), descriptor: null))
    }

    @Test("leftover process groups are ended; a recorded id whose leader is another program now is left alone")
    func leftovers() throws {
        let directory = TemporaryDirectory()
        let file = directory.path + "/process-groups"
        // A group of our own making: sh and its sleep child, in a new session (setsid forks, so find the group by
        // the unusual sleep time).
        let marker = "30.\(Int.random(in: 10000...99999))"
        let leftover = Process()
        leftover.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        leftover.arguments = ["/bin/sh", "-c", "sleep \(marker) & sleep \(marker)"]
        try leftover.run()
        var pgid: pid_t = 0
        for _ in 0..<100 where pgid == 0 || ProcessGroupRegistry.members(of: pgid).count < 3 {
            usleep(20_000)
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = pid_t(entry), let command = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                    command.hasPrefix("sleep\0\(marker)"), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { continue }
                pgid = pid_t(stat[stat.index(after: close)...].split(separator: " ")[2]) ?? 0
            }
        }
        let ticks = ProcessGroupRegistry.startTicks(pgid)
        let members = ProcessGroupRegistry.members(of: pgid)
        #expect(members.count == 3)
        // A list someone else owns is not followed (it could name any process group).
        try "\(pgid) \(try #require(ticks))\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(chown(file, 65534, 65534) == 0)
        #expect(ProcessGroupRegistry.endLeftovers(file: file, owner: getuid(), grace: .seconds(2)).isEmpty)
        #expect(ProcessGroupRegistry.members(of: pgid).count == 3)
        // Ourselves, recorded with a wrong start time: must survive.
        let me = getpid()
        try "\(pgid) \(try #require(ticks))\n\(me) 1\n".write(toFile: file, atomically: true, encoding: .utf8)
        let ended = ProcessGroupRegistry.endLeftovers(file: file, owner: getuid(), grace: .seconds(2))
        #expect(ended == [pgid])
        usleep(200_000)
        #expect(ProcessGroupRegistry.members(of: pgid).isEmpty)
        #expect(kill(me, 0) == 0)
        #expect(!FileManager.default.fileExists(atPath: file))
    }

    @Test("a damaged database file is refused in words, naming restore-self, and left as it was")
    func damaged() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/steward.db"
        let pool = try StewardDatabase.open(path: path)
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE t (x TEXT)")
            for index in 0..<2000 { try db.execute(sql: "INSERT INTO t VALUES (?)", arguments: ["row \(index) " + String(repeating: "y", count: 50)]) }
        }
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try pool.close()
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: 4096 * 3 + 8)
        handle.write(Data(repeating: 0x7f, count: 600))
        try handle.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect {
            let reopened = try StewardDatabase.open(path: path)
            _ = try StewardDatabase.quickCheck(reopened, path: path)
        } throws: { error in
            let text = String(describing: error)
            return error is DatabaseDamage && text.contains("is damaged") && text.contains("steward restore-self --data \(directory.path)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test("after a fast-path answer a keep-alive connection's next read waits: a 503 until its Retry-After, a health check 100 ms")
    func fastPathPacing() async throws {
        var configuration = StewardConfiguration(dataDirectory: "/tmp/x")
        configuration.maxConcurrentRequests = 1
        configuration.maxQueuedRequests = 0
        let shedding = LoadShedding(configuration: configuration, isStatic: { _ in false })
        // The API class's one place is taken (used below; taken first, so nothing after this line awaits).
        let gate = try #require(shedding.gates[.api])
        #expect(await gate.enter())
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        let reads = ReadCounter()
        let counts = ConnectionCounts(
            limits: ConnectionLimits(maximumConnections: 10, maximumPerAddress: 10, headerTimeout: .seconds(10), idleTimeout: .seconds(60)))
        try channel.pipeline.syncOperations.addHandlers([
            reads, ConnectionGuardHandler(counts: counts, logger: Logger(label: "test")),
            FastPathHandler(shedding: shedding, allowlist: HostAllowlist(configuration: configuration), securityHeaders: [:]),
        ])
        func ask(_ path: String) throws -> HTTPResponse.Status? {
            try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .get, scheme: nil, authority: "127.0.0.1", path: path)))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            guard case .head(let response) = try channel.readOutbound(as: HTTPResponsePart.self) else { return nil }
            while try channel.readOutbound(as: HTTPResponsePart.self) != nil {}
            return response.status
        }
        // A health check: reading resumes 100 ms later, not before.
        #expect(try ask("/healthz") == .ok)
        channel.read()
        #expect(reads.count == 0)
        loop.advanceTime(by: .milliseconds(99))
        #expect(reads.count == 0)
        loop.advanceTime(by: .milliseconds(1))
        #expect(reads.count == 1)
        // Reading that nobody asked for is not started when the pause ends.
        #expect(try ask("/healthz") == .ok)
        loop.advanceTime(by: .milliseconds(200))
        #expect(reads.count == 1)
        // The API class full: a 503 on the network thread, and the connection is not read again for a second.
        #expect(try ask("/api/v1/hosts") == .serviceUnavailable)
        channel.read()
        loop.advanceTime(by: .milliseconds(999))
        #expect(reads.count == 1)
        loop.advanceTime(by: .milliseconds(1))
        #expect(reads.count == 2)
        #expect(shedding.figures.health == 2 && shedding.figures.shed == 1 && shedding.figures.paced == 2)
        // Once the pause is over, reads pass straight through.
        gate.leave()
        channel.read()
        #expect(reads.count == 3)
        _ = try channel.finish()
    }

    @Test("one timer per connection: the header deadline closes a connection idle that long, never one that keeps asking")
    func headerDeadline() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let counts = ConnectionCounts(
            limits: ConnectionLimits(maximumConnections: 10, maximumPerAddress: 10, headerTimeout: .seconds(10), idleTimeout: .seconds(60)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        try channel.pipeline.syncOperations.addHandler(ConnectionGuardHandler(counts: counts, logger: Logger(label: "test")))
        let request = HTTPRequest(method: .get, scheme: nil, authority: "127.0.0.1", path: "/")
        // A request every 6 s, each answered at once: never 10 s idle, so never closed.
        for _ in 0..<5 {
            loop.advanceTime(by: .seconds(6))
            try channel.writeInbound(HTTPRequestPart.head(request))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
            #expect(channel.isActive)
        }
        // A request being answered for a minute is not the client's idleness.
        try channel.writeInbound(HTTPRequestPart.head(request))
        loop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        loop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(counts.open == 0)
    }
}

final class OrderRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ item: String) { lock.withLock { list.append(item) } }
    var items: [String] { lock.withLock { list } }
}

/// Counts the reads that get past the handlers behind it, as the socket would see them.
final class ReadCounter: ChannelOutboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias OutboundIn = Any
    var count = 0

    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}
