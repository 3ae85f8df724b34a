import Crypto
import Foundation
import GRDB

/// Run blocking work (a child process, a slow system call) on a thread of its own, so no cooperative-pool or
/// event-loop thread waits for it.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Run a short external command from an argv array (never a shell string) and collect its output.
/// `run` blocks its caller; async code uses `output`, which runs it off the cooperative pool.
enum ShortCommand {
    static func output(
        _ argv: [String], timeout: TimeInterval = 20, environment: [String: String]? = nil, maxBytes: Int = .max, stopWhenFull: Bool = false
    ) async throws -> Output {
        try await offload { try run(argv, timeout: timeout, environment: environment, maxBytes: maxBytes, stopWhenFull: stopWhenFull) }
    }

    struct Output: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
        /// More than `maxBytes` came on stdout or stderr: the rest was read and dropped.
        var truncated = false
    }

    /// `maxBytes` caps what is kept of each of stdout and stderr (a hostile or broken command cannot fill memory);
    /// the rest is still read, so the command is never blocked on a full pipe, and dropped. With `stopWhenFull` the
    /// command is ended (SIGTERM) once stdout passes the cap instead: a reader that continues where the kept output
    /// ends (a journal read after a cursor) takes the rest next time.
    static func run(
        _ argv: [String], timeout: TimeInterval = 20, input: String? = nil, environment: [String: String]? = nil, maxBytes: Int = .max,
        stopWhenFull: Bool = false
    ) throws -> Output {
        let process = Process()
        if let environment { process.environment = environment }
        process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
        process.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
        let out = Pipe()
        let err = Pipe()
        let stdin = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin
        try process.run()
        // The throwing write: a child that exits without reading its input (EPIPE, SIGPIPE being ignored) must not
        // trap the whole server, as the non-throwing FileHandle.write does.
        if let input { try? stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8)) }
        try? stdin.fileHandleForWriting.close()
        // Readers on threads of their own: GCD's shared pool can be exhausted under load, and a blocked reader there
        // would stall every other command.
        let collected = CollectedOutput()
        let readers = DispatchGroup()
        let pid = process.processIdentifier
        for (pipe, isOut) in [(out, true), (err, false)] {
            readers.enter()
            Thread.detachNewThread {
                let handle = pipe.fileHandleForReading
                var kept = Data()
                var dropped = false
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    let room = maxBytes - kept.count
                    if chunk.count <= room {
                        kept.append(chunk)
                    } else {
                        kept.append(chunk.prefix(max(room, 0)))
                        // The child exits only on this signal or by itself; in the second case Foundation may have
                        // reaped it already, and the pid could in principle be reused within these microseconds.
                        if stopWhenFull, isOut, !dropped { kill(pid, SIGTERM) }
                        dropped = true
                    }
                }
                collected.set(kept, isOut: isOut, dropped: dropped)
                readers.leave()
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            let killAt = Date().addingTimeInterval(5)
            while process.isRunning, Date() < killAt { usleep(5_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        readers.wait()
        return Output(
            status: process.terminationStatus, stdout: collected.text(true), stderr: collected.text(false), truncated: collected.dropped)
    }

    final class CollectedOutput: @unchecked Sendable {
        private let lock = NSLock()
        private var out = Data()
        private var err = Data()
        private var anyDropped = false
        func set(_ data: Data, isOut: Bool, dropped: Bool) {
            lock.withLock {
                if isOut { out = data } else { err = data }
                anyDropped = anyDropped || dropped
            }
        }
        func text(_ isOut: Bool) -> String { lock.withLock { String(decoding: isOut ? out : err, as: UTF8.self) } }
        var dropped: Bool { lock.withLock { anyDropped } }
    }
}

/// Steward's own SSH identity: an ed25519 key made at first run in DATA/ssh, and the known_hosts file that holds only
/// the host keys an operator confirmed.
public struct SSHIdentity: Sendable {
    public let directory: String
    public var privateKeyPath: String { directory + "/id_ed25519" }
    public var publicKeyPath: String { directory + "/id_ed25519.pub" }
    public var knownHostsPath: String { directory + "/known_hosts" }

    public init(dataDirectory: DataDirectory) { directory = dataDirectory.path + "/ssh" }
    public init(directory: String) { self.directory = directory }

    /// Make the key pair if it is missing; returns the public key line.
    @discardableResult
    public func prepare() throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(directory, 0o700)
        if !FileManager.default.fileExists(atPath: privateKeyPath) {
            let host = ProcessInfo.processInfo.hostName
            let result = try ShortCommand.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "steward@\(host)", "-f", privateKeyPath])
            guard result.status == 0 else { throw AccessError("ssh-keygen could not make Steward's key: \(result.stderr)") }
        }
        if !FileManager.default.fileExists(atPath: knownHostsPath) {
            FileManager.default.createFile(atPath: knownHostsPath, contents: Data(), attributes: [.posixPermissions: 0o600])
        }
        return try publicKey()
    }

    public func publicKey() throws -> String {
        try String(contentsOfFile: publicKeyPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The one command that authorizes this key for `user` on a host (run it there as that user).
    public func authorizeCommand(user: String = "root") throws -> String {
        "install -d -m 700 ~/.ssh && echo '\(try publicKey())' >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys"
    }

    /// The options every ssh and ansible connection uses: our key, our known_hosts, strict checking, no agent.
    public func sshOptions() -> [String] {
        [
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(knownHostsPath)", "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=\(privateKeyPath)", "-o", "ConnectTimeout=10", "-o", "ForwardAgent=no",
        ]
    }
}

/// One SSH host key as `ssh-keyscan` prints it.
public struct HostKey: Sendable, Equatable {
    public var type: String
    public var publicKey: String

    /// OpenSSH's "SHA256:..." fingerprint of the key blob.
    public var fingerprint: String {
        guard let blob = Data(base64Encoded: publicKey) else { return "invalid key" }
        let digest = Data(SHA256.hash(data: blob)).base64EncodedString().replacingOccurrences(of: "=", with: "")
        return "SHA256:" + digest
    }

    /// Parse `ssh-keyscan` output; comments and other hosts' lines are skipped.
    static func parse(keyscan output: String) -> [HostKey] {
        output.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#") else { return nil }
            let fields = line.split(separator: " ")
            guard fields.count >= 3, fields[1].hasPrefix("ssh-") || fields[1].hasPrefix("ecdsa-"), Data(base64Encoded: String(fields[2])) != nil
            else { return nil }
            return HostKey(type: String(fields[1]), publicKey: String(fields[2]))
        }
    }
}

/// Where a host's key stands.
public enum HostKeyVerdict: Sendable, Equatable {
    case trusted(fingerprint: String)
    /// Never confirmed: the operator must compare and confirm this fingerprint.
    case unconfirmed(presented: String)
    /// The host presents a different key than the one trusted: every job to it is blocked.
    case changed(trusted: String, presented: String)
    case unreachable(String)

    public var blocksJobs: Bool {
        if case .trusted = self { return false }
        return true
    }

    public var message: String {
        switch self {
        case .trusted(let fingerprint): "host key trusted (\(fingerprint))"
        case .unconfirmed(let presented):
            "the host key has not been confirmed yet: it presents \(presented). Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host, then trust it on the host's page."
        case .changed(let trusted, let presented):
            "THE HOST KEY CHANGED: Steward trusts \(trusted) but the host now presents \(presented). Every job to this host is stopped. If the machine was reinstalled, an admin can re-trust the new key on the host's page; otherwise something else is answering at this address."
        case .unreachable(let detail): "no SSH answer: \(detail)"
        }
    }
}

/// Trust-on-first-use with an explicit confirmation, kept in `host_keys` and written to Steward's known_hosts.
public struct HostKeyStore: Sendable {
    public let database: any DatabaseWriter
    public let identity: SSHIdentity
    /// The key type Steward pins (what modern sshd always offers).
    static let preferredTypes = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]

    public init(database: any DatabaseWriter, identity: SSHIdentity) {
        self.database = database
        self.identity = identity
    }

    /// Ask the host for its key (`ssh-keyscan`), record what it presented, and say where that leaves it.
    public func scan(_ host: Host, now: Date) async throws -> HostKeyVerdict {
        guard host.transport == .ssh else { return .trusted(fingerprint: "local transport, no SSH") }
        let result = try await ShortCommand.output(
            ["ssh-keyscan", "-T", "5", "-p", String(host.sshPort), "-t", "ed25519,ecdsa,rsa", host.address], timeout: 15)
        let keys = HostKey.parse(keyscan: result.stdout)
        guard let key = Self.preferredTypes.lazy.compactMap({ type in keys.first { $0.type == type } }).first else {
            let detail = result.stderr.split(separator: "\n").last.map(String.init) ?? "no key returned"
            return .unreachable("ssh-keyscan \(host.address):\(host.sshPort) returned no host key (\(detail))")
        }
        return try record(key, for: host, now: now)
    }

    /// Compare a presented key with the trusted one and remember it.
    func record(_ key: HostKey, for host: Host, now: Date) throws -> HostKeyVerdict {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO host_keys (host_id, key_type, public_key, fingerprint, status, seen_at) VALUES (?, ?, ?, ?, 'presented', ?)
                    ON CONFLICT (host_id, key_type, status) DO UPDATE SET public_key = excluded.public_key, fingerprint = excluded.fingerprint,
                        seen_at = excluded.seen_at
                    """, arguments: [host.id, key.type, key.publicKey, key.fingerprint, EpochMilliseconds.from(now)])
            let trusted = try Row.fetchOne(
                db, sql: "SELECT key_type, public_key, fingerprint FROM host_keys WHERE host_id = ? AND status = 'trusted'", arguments: [host.id])
            guard let trusted else { return .unconfirmed(presented: key.fingerprint) }
            if (trusted["key_type"] as String) == key.type, (trusted["public_key"] as String) == key.publicKey {
                return .trusted(fingerprint: key.fingerprint)
            }
            return .changed(trusted: trusted["fingerprint"], presented: key.fingerprint)
        }
    }

    /// The verdict from what is stored, without contacting the host.
    public func verdict(for host: Host) throws -> HostKeyVerdict? {
        guard host.transport == .ssh else { return .trusted(fingerprint: "local transport, no SSH") }
        return try database.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM host_keys WHERE host_id = ?", arguments: [host.id])
            let trusted = rows.first { ($0["status"] as String) == "trusted" }
            let presented = rows.filter { ($0["status"] as String) == "presented" }.max { ($0["seen_at"] as Int64) < ($1["seen_at"] as Int64) }
            switch (trusted, presented) {
            case (nil, nil): return nil
            case (nil, let presented?): return .unconfirmed(presented: presented["fingerprint"])
            case (let trusted?, nil): return .trusted(fingerprint: trusted["fingerprint"])
            case (let trusted?, let presented?):
                let same =
                    (trusted["key_type"] as String) == (presented["key_type"] as String)
                    && (trusted["public_key"] as String) == (presented["public_key"] as String)
                // Another key type seen alongside the trusted one is not a change.
                if same || (trusted["key_type"] as String) != (presented["key_type"] as String) {
                    return .trusted(fingerprint: trusted["fingerprint"])
                }
                return .changed(trusted: trusted["fingerprint"], presented: presented["fingerprint"])
            }
        }
    }

    /// Confirm the key the host last presented (its fingerprint must be the one the operator saw). Audited.
    public func trust(_ host: Host, fingerprint: String, by who: AuditActor, now: Date) throws {
        try database.write { db in
            guard
                let presented = try Row.fetchOne(
                    db, sql: "SELECT * FROM host_keys WHERE host_id = ? AND status = 'presented' AND fingerprint = ?",
                    arguments: [host.id, fingerprint])
            else {
                throw AccessError("the host no longer presents \(fingerprint); scan it again and compare the new fingerprint")
            }
            let before = try String.fetchOne(
                db, sql: "SELECT fingerprint FROM host_keys WHERE host_id = ? AND status = 'trusted'", arguments: [host.id])
            try db.execute(sql: "DELETE FROM host_keys WHERE host_id = ? AND status = 'trusted'", arguments: [host.id])
            try db.execute(
                sql: """
                    INSERT INTO host_keys (host_id, key_type, public_key, fingerprint, status, seen_at, trusted_at, trusted_by)
                    VALUES (?, ?, ?, ?, 'trusted', ?, ?, ?)
                    """,
                arguments: [
                    host.id, presented["key_type"] as String, presented["public_key"] as String, fingerprint, presented["seen_at"] as Int64,
                    EpochMilliseconds.from(now), who.actor,
                ])
            try AuditLog.append(
                db, by: who, action: before == nil ? "hostkey.trust" : "hostkey.retrust", target: "host:\(host.name)",
                before: before.map { ["fingerprint": $0] }, after: ["fingerprint": fingerprint], now: now)
        }
        try writeKnownHosts()
    }

    /// Rewrite known_hosts from the trusted keys (atomically, 0600).
    public func writeKnownHosts() throws {
        let lines = try database.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT h.address, h.ssh_port, k.key_type, k.public_key FROM host_keys k JOIN hosts h ON h.id = k.host_id WHERE k.status = 'trusted' ORDER BY h.name"
            ).map { row -> String in
                let address: String = row["address"]
                let port: Int = row["ssh_port"]
                let name = port == 22 ? address : "[\(address)]:\(port)"
                return "\(name) \(row["key_type"] as String) \(row["public_key"] as String)"
            }
        }
        let temporary = identity.knownHostsPath + ".tmp"
        FileManager.default.createFile(
            atPath: temporary, contents: Data((lines.joined(separator: "\n") + "\n").utf8), attributes: [.posixPermissions: 0o600])
        _ = rename(temporary, identity.knownHostsPath)
    }
}
