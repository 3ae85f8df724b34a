import Foundation
import GRDB
import Testing

@testable import StewardKit

@Suite("Login throttling")
struct LoginThrottleTests {
    let directory = TemporaryDirectory()
    let throttle: LoginThrottle
    let start = utc("2026-05-01T10:00:00Z")

    init() throws {
        throttle = LoginThrottle(database: try makeDatabase(directory))
    }

    func fail(_ user: String, from address: String, times: Int, at time: Date) throws -> [TimeInterval] {
        try (0..<times).map { _ in try throttle.recordFailure(user: user, address: address, now: time) }
    }

    @Test("delays double from 0.5 s with each failure and stop growing at 10 s")
    func growingDelays() throws {
        #expect(try fail("alice", from: "192.0.2.1", times: 7, at: start) == [0.5, 1, 2, 4, 8, 10, 10])
    }

    @Test("ten failures block that user at that address; the same user from another address can still try")
    func pairBlockDoesNotLockOutTheUser() throws {
        _ = try fail("alice", from: "203.0.113.66", times: 10, at: start)
        guard case .blocked(let block) = try throttle.check(user: "alice", address: "203.0.113.66", now: start) else {
            Issue.record("expected a block")
            return
        }
        #expect(block.scope == .userAddress && block.failures == 10)
        #expect(block.until == start.addingTimeInterval(15 * 60))
        #expect(try throttle.check(user: "alice", address: "192.0.2.1", now: start) == .allowed)
        #expect(try throttle.check(user: "bob", address: "203.0.113.66", now: start) == .allowed)
    }

    @Test("thirty failures from one address over many names block the address for everyone on it")
    func addressBlock() throws {
        for index in 0..<30 { _ = try throttle.recordFailure(user: "user\(index)", address: "198.51.100.9", now: start) }
        guard case .blocked(let block) = try throttle.check(user: "carol", address: "198.51.100.9", now: start) else {
            Issue.record("expected the address to be blocked")
            return
        }
        #expect(block.scope == .address)
        #expect(try throttle.check(user: "carol", address: "198.51.100.10", now: start) == .allowed)
    }

    @Test("failures spread over many addresses slow one user down but never block them")
    func distributedGuessingOnlySlows() throws {
        var delays: [TimeInterval] = []
        for index in 0..<12 { delays.append(try throttle.recordFailure(user: "alice", address: "10.0.0.\(index)", now: start)) }
        #expect(delays.last == 10)
        #expect(try throttle.check(user: "alice", address: "10.0.0.200", now: start) == .allowed)
    }

    @Test("blocks end after their time; counters restart after the window")
    func expiry() throws {
        _ = try fail("alice", from: "192.0.2.1", times: 10, at: start)
        #expect(try throttle.check(user: "alice", address: "192.0.2.1", now: start.addingTimeInterval(15 * 60 - 1)) != .allowed)
        let later = start.addingTimeInterval(15 * 60 + 1)
        #expect(try throttle.check(user: "alice", address: "192.0.2.1", now: later) == .allowed)
        #expect(try throttle.recordFailure(user: "alice", address: "192.0.2.1", now: later) == 0.5)
    }

    @Test("a successful login clears the user's counters but not the address's")
    func successClears() throws {
        _ = try fail("alice", from: "192.0.2.1", times: 5, at: start)
        try throttle.recordSuccess(user: "alice", address: "192.0.2.1")
        #expect(try throttle.recordFailure(user: "alice", address: "192.0.2.1", now: start) == 0.5)
        let addressFailures = try throttle.database.read { db in
            try Int.fetchOne(db, sql: "SELECT failures FROM login_throttle WHERE scope = 'address' AND address = '192.0.2.1'")
        }
        #expect(addressFailures == 6)
    }

    @Test("blocks are listed for Settings and can be cleared there")
    func listAndClear() throws {
        _ = try fail("alice", from: "192.0.2.1", times: 10, at: start)
        let blocks = try throttle.blocks(now: start)
        #expect(blocks.map(\.scope) == [.userAddress])
        #expect(blocks.first?.user == "alice" && blocks.first?.address == "192.0.2.1")
        try throttle.clear(scope: .userAddress, user: "alice", address: "192.0.2.1")
        #expect(try throttle.check(user: "alice", address: "192.0.2.1", now: start) == .allowed)
        #expect(try throttle.blocks(now: start).isEmpty)
    }

    @Test("counters survive a restart: they are read from the database, not memory")
    func persisted() throws {
        _ = try fail("alice", from: "192.0.2.1", times: 10, at: start)
        let reopened = LoginThrottle(database: throttle.database)
        #expect(try reopened.check(user: "alice", address: "192.0.2.1", now: start) != .allowed)
    }
}

@Suite("PAM concurrency gate")
struct ConcurrencyGateTests {
    @Test("no more than the limit run at once, and every waiter gets its turn in order")
    func boundsConcurrency() async {
        let gate = ConcurrencyGate(limit: 2)
        let peak = Captured(0)
        let lock = NSLock()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    await gate.acquire()
                    let now = await gate.inUse
                    lock.withLock { peak.value = max(peak.value, now) }
                    try? await Task.sleep(for: .milliseconds(5))
                    await gate.release()
                }
            }
        }
        #expect(peak.value == 2)
        #expect(await gate.inUse == 0)
    }
}
