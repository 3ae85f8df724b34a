import Foundation
import GRDB
import HTTPTypes

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

    /// Keeps the reading, and the audit row of whoever asked for it, in one transaction.
    func save<Body: Codable & Sendable>(_ reading: HostReading<Body>, kind: String, audit: AuditEntry? = nil) throws {
        let body = String(decoding: try JSONEncoder().encode(reading.body), as: UTF8.self)
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO host_readings (host_id, kind, read_at, body, error) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (host_id, kind) DO UPDATE SET read_at = excluded.read_at, body = excluded.body, error = excluded.error
                    """, arguments: [reading.hostID, kind, EpochMilliseconds.from(reading.readAt), body, reading.error])
            try audit?.append(db, now: Date())
        }
    }

    /// Nil when the host was never read, or when its stored reading no longer decodes (written by another version of
    /// Steward): the next refresh replaces it.
    func latest<Body: Codable & Sendable>(_ type: Body.Type, kind: String, hostID: Int64) throws -> HostReading<Body>? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM host_readings WHERE host_id = ? AND kind = ?", arguments: [hostID, kind])
        }.flatMap { Self.reading(Body.self, $0) }
    }

    /// Every host's newest reading of a kind, for the fleet views (rows that no longer decode are left out).
    func all<Body: Codable & Sendable>(_ type: Body.Type, kind: String) throws -> [HostReading<Body>] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM host_readings WHERE kind = ?", arguments: [kind]) }
            .compactMap { Self.reading(Body.self, $0) }
    }

    private static func reading<Body: Codable & Sendable>(_ type: Body.Type, _ row: Row) -> HostReading<Body>? {
        let text: String = row["body"]
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(text.utf8)) else { return nil }
        return HostReading(hostID: row["host_id"], readAt: EpochMilliseconds.date(row["read_at"]), body: body, error: row["error"])
    }
}

/// What one kind of reading holds: a list of things read from the host (units, processes, packages, ...).
protocol HostReadingBody: Codable, Sendable {
    static var kind: String { get }
    var itemCount: Int { get }
}

/// Refreshes readings of any kind the same way: one read of a host and kind at a time (a second one waits for the
/// first's answer), at most eight across the fleet, one stored reading with an audit row for the person who asked.
/// A read that fails (no such command, SSH refused) is kept as the reading's error, in the host's own words; the items
/// of the last good reading stay, with their own time, so a host that cannot be reached for a moment keeps showing
/// what it had.
struct HostReadings: Sendable {
    let reader: HostReader
    let store: HostReadingStore
    let gate: ReadingGate

    /// Run each part's command on the host (through `sudo -n` where it needs root and Steward logs in as another
    /// user): what each printed, and for those that failed, why, in the host's words.
    func readParts(_ host: Host, _ commands: [(part: String, words: [String], needsRoot: Bool)]) async throws -> (
        outputs: [(part: String, text: String)], errors: [String: String]
    ) {
        let sudo = host.transport == .ssh && host.sshUser != "root"
        var outputs: [(part: String, text: String)] = []
        var errors: [String: String] = [:]
        for command in commands {
            let output = try await reader.run(host, (command.needsRoot && sudo ? ["sudo", "-n"] : []) + command.words, timeout: 15)
            if output.status == 0 {
                outputs.append((command.part, output.stdout))
            } else {
                errors[command.part] = HostText.reason(output, command: command.words.first { $0 != "env" && !$0.contains("=") } ?? "")
            }
        }
        return (outputs, errors)
    }

    func refresh<Body: HostReadingBody>(
        _ host: Host, by who: AuditActor?, now: Date, read: @escaping @Sendable (Host) async throws -> HostReading<Body>
    ) async throws -> HostReading<Body> {
        try await gate.read(key: "\(host.id)/\(Body.kind)") {
            let fresh = try await read(host)
            var reading = fresh
            if fresh.error != nil, fresh.body.itemCount == 0, let previous = try store.latest(Body.self, kind: Body.kind, hostID: host.id),
                previous.body.itemCount > 0
            {
                let stale = "reading at \(RFC3339.display(now)) failed, showing the one of \(RFC3339.display(previous.readAt)): "
                reading = HostReading(hostID: host.id, readAt: previous.readAt, body: previous.body, error: stale + (fresh.error ?? ""))
            }
            let audit = who.map {
                AuditEntry(
                    by: $0, action: "\(Body.kind).read", target: "host:\(host.id)",
                    after: ["host": host.name, "items": String(fresh.body.itemCount), "error": fresh.error ?? ""])
            }
            try store.save(reading, kind: Body.kind, audit: audit)
            return reading
        }
    }
}

/// Text a host printed, made fit to show and store: control characters (terminal escapes among them) become spaces,
/// and it is cut to a number of UTF-8 bytes at a character boundary.
enum HostText {
    /// The first lines a failed command printed, as plain text of at most 500 bytes.
    static func reason(_ output: ShortCommand.Output, command: String) -> String {
        let lines = (output.stderr + "\n" + output.stdout).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        let text = lines.filter { !$0.isEmpty }.prefix(3).joined(separator: " ")
        return text.isEmpty ? "\(command) exited with status \(output.status)" : clean(text, maxBytes: 500)
    }

    /// `keepingLines` keeps line breaks (and tabs) for text shown as a block, such as a ruleset.
    static func clean(_ text: String, maxBytes: Int, keepingLines: Bool = false) -> String {
        var result = ""
        var bytes = 0
        for scalar in text.unicodeScalars {
            let control = scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
            let kept: Unicode.Scalar = control && !(keepingLines && (scalar == "\n" || scalar == "\t")) ? " " : scalar
            let size = String(kept).utf8.count
            if bytes + size > maxBytes { break }
            result.unicodeScalars.append(kept)
            bytes += size
        }
        return result
    }
}

/// One read of a host at a time per kind, and a few reads across the fleet at once: a second refresh of the same host
/// and kind while one runs waits for that one's answer instead of connecting again, and at most `limit` reads run
/// together, the rest waiting their turn.
actor ReadingGate {
    private var running: [String: Task<any Sendable, any Error>] = [:]
    private var active = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []
    let limit: Int

    init(limit: Int = 8) { self.limit = limit }

    func read<T: Sendable>(key: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        if let task = running[key], let value = try await task.value as? T { return value }
        let task = Task<any Sendable, any Error> {
            await self.enter()
            do {
                let value = try await body()
                self.leave()
                return value
            } catch {
                self.leave()
                throw error
            }
        }
        running[key] = task
        defer { running[key] = nil }
        guard let value = try await task.value as? T else { throw CancellationError() }
        return value
    }

    private func enter() async {
        if active < limit {
            active += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func leave() {
        if waiting.isEmpty {
            active -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// Runs a read-only command on a host: directly on the panel host (local transport), otherwise over SSH with
/// Steward's identity, checked against the trusted host key. The words are Steward's own constants, and names the host
/// itself reported (a unit), never text from a request.
struct HostReader: Sendable {
    let keys: HostKeyStore
    /// What is kept of a command's output (each of stdout and stderr); a host cannot make Steward hold more.
    static let maxOutputBytes = 8 << 20
    /// How long an idle shared connection to a host stays open after the last read.
    static let persistSeconds = 60

    /// A host whose key was never confirmed, or changed since, is not connected to (409 with the reason), as the
    /// engine refuses to run jobs there.
    func run(
        _ host: Host, _ words: [String], timeout: TimeInterval = 20, maxBytes: Int = maxOutputBytes, stopWhenFull: Bool = false
    ) async throws -> ShortCommand.Output {
        if host.transport == .local { return try await ShortCommand.output(words, timeout: timeout, maxBytes: maxBytes, stopWhenFull: stopWhenFull) }
        let verdict = try keys.verdict(for: host)
        guard let verdict, !verdict.blocksJobs else {
            throw Problem(
                status: .conflict,
                detail: "\(host.name): " + (verdict?.message ?? "the host key has never been scanned; scan and trust it on the host's page first"))
        }
        let argv =
            ["ssh"] + keys.identity.sshOptions() + multiplexing() + ["-p", String(host.sshPort), "-l", host.sshUser, "--", host.address]
            + words.map(Self.quoteForRemoteShell)
        return try await ShortCommand.output(argv, timeout: timeout, maxBytes: maxBytes, stopWhenFull: stopWhenFull)
    }

    /// Reads of one host share one SSH connection for a minute (OpenSSH's ControlMaster), so a page's second and
    /// third command, and the next refresh, skip the handshake. The sockets live in DATA/ssh/mux (0700, Steward's own);
    /// when that path is too long for a socket name, every read connects afresh instead.
    func multiplexing() -> [String] {
        let directory = keys.identity.directory + "/mux"
        // %C is 40 hex digits; ssh adds a 17-character temporary suffix while it creates the socket; sun_path holds 108.
        guard directory.utf8.count + 1 + 40 + 17 < 104 else { return [] }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            return []
        }
        return ["-o", "ControlMaster=auto", "-o", "ControlPath=\(directory)/%C", "-o", "ControlPersist=\(Self.persistSeconds)"]
    }

    /// ssh hands the remote side one command line, which the remote user's shell splits again: every word that is
    /// not plainly safe goes in single quotes, so a unit such as `-.mount` or `dev-disk-by\x2duuid-1.swap` arrives
    /// as one word, as it was.
    static func quoteForRemoteShell(_ word: String) -> String {
        let plain =
            !word.isEmpty
            && word.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_./=:@%+,-".unicodeScalars.contains($0)) }
        return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
