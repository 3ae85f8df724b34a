import Foundation
import GRDB
import Logging
import Synchronization
import Testing

@testable import StewardKit

/// The repository root, where Templates/, Public/ and migrations/ live.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }
    return url.path
}()

/// A fresh directory under the system temp dir, removed when the value is released by the test.
final class TemporaryDirectory: Sendable {
    let path: String

    init() {
        let path = NSTemporaryDirectory() + "steward-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A migrated database in a temp dir.
func makeDatabase(_ directory: TemporaryDirectory) throws -> DatabasePool {
    let pool = try StewardDatabase.open(path: directory.path + "/steward.db")
    try MigrationRunner.load(directory: repositoryRoot + "/migrations").migrate(pool, databasePath: directory.path + "/steward.db")
    return pool
}

let quietLogger: Logger = {
    var logger = Logger(label: "steward-test")
    logger.logLevel = .critical
    return logger
}()

/// A clock the test moves by hand.
final class ManualClock: SchedulerClock {
    private let current: Mutex<Date>
    init(_ start: Date) { current = Mutex(start) }
    func now() -> Date { current.withLock { $0 } }
    func set(_ date: Date) { current.withLock { $0 = date } }
    func sleep(until deadline: Date) async throws { try await Task.sleep(for: .seconds(3600)) }
}

/// "2026-03-29T01:00:00Z" as a Date.
func utc(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text)!
}

func iso(_ date: Date?) -> String? {
    guard let date else { return nil }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
}

/// Poll until `condition` holds, at most `timeout`; tests never wait unbounded. The bounds are long (5 minutes) because
/// they only end a broken run: with the whole suite started at once on two cores, long synchronous tests can hold both
/// cooperative-pool threads, and CI has seen async tests make no progress for a minute.
func waitUntil(timeout: Duration = .seconds(300), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// A fleet host with the given facts (the JSON the facts playbook stores), as if they had just been gathered.
func makeHostWithFacts(_ server: StewardServer, name: String, address: String, facts: String) async throws -> StewardKit.Host {
    var settings = HostSettings()
    settings.name = name
    settings.address = address
    let host = try server.hosts.create(settings, by: .system, now: Date())
    try await server.database.write { db in
        try db.execute(
            sql: "INSERT INTO host_facts (host_id, gathered_at, facts) VALUES (?, ?, ?)", arguments: [host.id, EpochMilliseconds.from(Date()), facts])
    }
    return host
}
