import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdCore
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
}

final class OrderRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ item: String) { lock.withLock { list.append(item) } }
    var items: [String] { lock.withLock { list } }
}
