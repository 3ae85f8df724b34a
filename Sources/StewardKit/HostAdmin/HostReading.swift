import Foundation
import GRDB

/// The newest reading of one kind from one host: what a quick read-only command printed, parsed, when it was read,
/// and why it failed when it did.
struct HostReading<Body: Codable & Sendable>: Sendable {
    let hostID: Int64
    let readAt: Date
    let body: Body
    let error: String?
}

/// Quick readings of hosts (their services, ...), one row per host and kind: a refresh replaces the row, so readings
/// never pile up. They are read in seconds with one command, unlike a facts job, and every page that shows one says
/// when it was read.
struct HostReadingStore: Sendable {
    let database: DatabasePool

    func save<Body: Codable & Sendable>(_ reading: HostReading<Body>, kind: String) throws {
        let body = String(decoding: try JSONEncoder().encode(reading.body), as: UTF8.self)
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO host_readings (host_id, kind, read_at, body, error) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (host_id, kind) DO UPDATE SET read_at = excluded.read_at, body = excluded.body, error = excluded.error
                    """, arguments: [reading.hostID, kind, EpochMilliseconds.from(reading.readAt), body, reading.error])
        }
    }

    func latest<Body: Codable & Sendable>(_ type: Body.Type, kind: String, hostID: Int64) throws -> HostReading<Body>? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM host_readings WHERE host_id = ? AND kind = ?", arguments: [hostID, kind])
        }.map { try Self.reading(Body.self, $0) }
    }

    /// Every host's newest reading of a kind, for the fleet views.
    func all<Body: Codable & Sendable>(_ type: Body.Type, kind: String) throws -> [HostReading<Body>] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM host_readings WHERE kind = ?", arguments: [kind]) }
            .map { try Self.reading(Body.self, $0) }
    }

    private static func reading<Body: Codable & Sendable>(_ type: Body.Type, _ row: Row) throws -> HostReading<Body> {
        let text: String = row["body"]
        return HostReading(
            hostID: row["host_id"], readAt: EpochMilliseconds.date(row["read_at"]), body: try JSONDecoder().decode(Body.self, from: Data(text.utf8)),
            error: row["error"])
    }
}

/// Runs a read-only command on a host: directly on the panel host (local transport), otherwise over SSH with
/// Steward's identity, checked against the trusted host key. The words are Steward's own constants, never text from a
/// request.
struct HostReader: Sendable {
    let keys: HostKeyStore

    func run(_ host: Host, _ words: [String], timeout: TimeInterval = 20) async throws -> ShortCommand.Output {
        if host.transport == .local { return try await ShortCommand.output(words, timeout: timeout) }
        return try await ShortCommand.output(
            ["ssh"] + keys.identity.sshOptions() + ["-p", String(host.sshPort), "-l", host.sshUser, "--", host.address] + words, timeout: timeout)
    }
}
