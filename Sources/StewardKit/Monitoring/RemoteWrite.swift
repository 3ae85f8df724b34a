import Crypto
import Foundation
import GRDB
import Logging
import ServiceLifecycle

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A receiver of Prometheus remote write 1.0 (Prometheus with `--web.enable-remote-write-receiver`, VictoriaMetrics,
/// Mimir, Thanos): every sample Steward stores is sent there too, with credentials sealed like other secrets.
public struct RemoteWriteEndpoint: Sendable, Equatable {
    public enum Auth: String, Sendable, CaseIterable { case none, bearer, basic }

    public var id: Int64 = 0
    public var name = ""
    /// The receiver's write path, such as http://prometheus:9090/api/v1/write.
    public var url = ""
    public var auth = Auth.none
    /// The basic-auth user.
    public var username = ""
    /// The bearer token or basic-auth password, in clear only in memory.
    public var secret: String?
    public var enabled = true

    // What the queue did, kept across restarts.
    public internal(set) var sentThrough: Int64 = 0
    public internal(set) var samplesSent: Int64 = 0
    public internal(set) var samplesRejected: Int64 = 0
    public internal(set) var samplesDropped: Int64 = 0
    public internal(set) var requestsRetried: Int64 = 0
    public internal(set) var lastSuccessAt: Int64?
    public internal(set) var lastError = ""
    public internal(set) var lastErrorAt: Int64?

    public init() {}

    public func problems() -> [String: String] {
        var errors: [String: String] = [:]
        if name.isEmpty || name.count > 64 || !name.allSatisfy({ $0.isLetter || $0.isNumber || "-_. ".contains($0) }) {
            errors["name"] = "1 to 64 letters, digits, spaces, '-', '_' or '.'"
        }
        let components = URLComponents(string: url)
        if components?.scheme != "https" && components?.scheme != "http" || components?.host?.isEmpty != false {
            errors["url"] = "the receiver's http(s) write URL, such as http://prometheus.example.com:9090/api/v1/write"
        } else if components?.user != nil || components?.password != nil {
            errors["url"] = "no credentials in the URL: choose bearer or basic authentication and put them in their fields"
        }
        switch auth {
        case .none: break
        case .bearer:
            if secret?.isEmpty != false { errors["secret"] = "the bearer token the receiver expects" }
        case .basic:
            if username.isEmpty || username.contains(":") { errors["username"] = "the user name, without ':'" }
            if secret?.isEmpty != false { errors["secret"] = "the password for \(username.isEmpty ? "the user" : username)" }
        }
        if username.contains(where: \.isNewline) { errors["username"] = "no line breaks" }
        if secret?.contains(where: { $0.isNewline || $0 == "\0" }) == true { errors["secret"] = "no line breaks" }
        return errors
    }

    /// The Authorization header for this endpoint, if any.
    var authorization: String? {
        guard let secret else { return nil }
        switch auth {
        case .none: return nil
        case .bearer: return "Bearer " + secret
        case .basic: return "Basic " + Data((username + ":" + secret).utf8).base64EncodedString()
        }
    }
}

/// How far behind an endpoint is.
public struct RemoteWriteStatus: Sendable {
    public var endpoint: RemoteWriteEndpoint
    /// Samples and batches stored but not yet accepted by the endpoint.
    public var pendingSamples: Int64
    public var pendingBatches: Int64
    /// Seconds since the oldest sample the endpoint lacks was stored; 0 when it has everything.
    public var lagSeconds: Double
    /// When the next attempt is due after a retryable failure, nil when not waiting.
    public var retryAt: Int64?
}

/// The remote-write queue and its sender. Each collection round's kept samples become one batch (a snappy-compressed
/// WriteRequest) in SQLite, so the queue survives restarts; every endpoint has a cursor into it. The sender posts
/// batches in order, several to a request, and retries as the 1.0 specification asks: 5xx, 429 and network errors
/// with exponential backoff (honouring Retry-After), any other 4xx never (the samples are counted as rejected).
/// Batches older than `maximumBacklog` are dropped and counted, so a receiver gone for days does not fill the disk.
public final class RemoteWrite: Service, @unchecked Sendable {
    public struct Settings: Sendable {
        /// How long a batch waits for an endpoint that does not take it.
        public var maximumBacklog: Int64 = 6 * 3600 * 1000
        /// Samples in one request at most (a batch is never split).
        public var samplesPerRequest = 20_000
        public var timeoutSeconds: TimeInterval = 30
        public var minimumBackoff: Double = 1
        public var maximumBackoff: Double = 30
        public init() {}
    }

    let database: DatabasePool
    let sealer: SecretSealer
    let settings: Settings
    let logger: Logger
    private let lock = NSLock()
    private var pending: [(samples: Int, body: [UInt8])] = []
    private var anyEnabled = false
    private var backoff: [Int64: (retryAt: Date, delay: Double)] = [:]
    private let wake = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    private var roundCount = 0
    /// Turns of the sending loop so far: one a second while idle.
    var rounds: Int { lock.withLock { roundCount } }

    public init(database: DatabasePool, masterKey: SymmetricKey, settings: Settings = Settings(), logger: Logger) throws {
        self.database = database
        sealer = SecretSealer(masterKey: masterKey, purpose: "steward remote write secret")
        self.settings = settings
        self.logger = logger
        try refresh()
    }

    /// Whether any endpoint is enabled: without one, collection queues nothing.
    public var active: Bool { lock.withLock { anyEnabled } }

    func refresh() throws {
        let enabled = try database.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM remote_write_endpoints WHERE enabled)") }
        lock.withLock { anyEnabled = enabled ?? false }
    }

    // MARK: queueing

    /// One host's kept samples of a round, with the host's name as `instance` (a series' own `instance` label
    /// becomes `exported_instance`, as Prometheus renames a clashing target label).
    public func enqueue(host: String, samples: [(name: String, labels: String, time: Int64, value: Double)]) {
        guard active, !samples.isEmpty else { return }
        let series = samples.map { sample in
            var labels = PrometheusText.labels(fromCanonical: sample.labels).map { $0.0 == "instance" ? ("exported_instance", $0.1) : $0 }
            labels.append(("__name__", sample.name))
            labels.append(("instance", host))
            return RemoteWriteProtocol.Series(labels: RemoteWriteProtocol.sortedLabels(labels), samples: [(sample.time, sample.value)])
        }
        let body = Snappy.compress(RemoteWriteProtocol.encode(series))
        lock.withLock { pending.append((samples.count, body)) }
    }

    /// Store what was queued since the last call, in one transaction: the collector calls this at the end of a round.
    public func persist(now: Date = Date()) throws {
        let batches = lock.withLock {
            defer { pending.removeAll() }
            return pending
        }
        guard !batches.isEmpty else { return }
        let time = EpochMilliseconds.from(now)
        try database.write { db in
            for batch in batches {
                try db.execute(
                    sql: "INSERT INTO remote_write_batches (created_at, samples, body) VALUES (?, ?, ?)",
                    arguments: [time, batch.samples, Data(batch.body)])
            }
        }
        wake.continuation.yield()
    }

    // MARK: endpoints

    func endpoint(_ row: Row) -> RemoteWriteEndpoint {
        var endpoint = RemoteWriteEndpoint()
        endpoint.id = row["id"]
        endpoint.name = row["name"]
        endpoint.url = row["url"]
        endpoint.auth = RemoteWriteEndpoint.Auth(rawValue: row["auth"]) ?? .none
        endpoint.username = row["username"]
        endpoint.secret = sealer.open(row["secret_sealed"])
        endpoint.enabled = row["enabled"]
        endpoint.sentThrough = row["sent_through"]
        endpoint.samplesSent = row["samples_sent"]
        endpoint.samplesRejected = row["samples_rejected"]
        endpoint.samplesDropped = row["samples_dropped"]
        endpoint.requestsRetried = row["requests_retried"]
        endpoint.lastSuccessAt = row["last_success_at"]
        endpoint.lastError = row["last_error"]
        endpoint.lastErrorAt = row["last_error_at"]
        return endpoint
    }

    public func all() throws -> [RemoteWriteEndpoint] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM remote_write_endpoints ORDER BY name").map(endpoint) }
    }

    public func endpoint(id: Int64) throws -> RemoteWriteEndpoint? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM remote_write_endpoints WHERE id = ?", arguments: [id]).map(endpoint) }
    }

    /// Add or change an endpoint. A new endpoint, or one enabled again, starts at the newest batch: it receives what
    /// is collected from now on, not the history (which the backlog would not hold whole anyway).
    public func save(_ endpoint: RemoteWriteEndpoint, by who: AuditActor, now: Date) throws -> RemoteWriteEndpoint {
        let problems = endpoint.problems()
        guard problems.isEmpty else { throw Problem.invalid(problems) }
        let sealed = endpoint.auth == .none ? nil : try sealer.seal(endpoint.secret)
        let audit: [String: Any] = [
            "name": endpoint.name, "url": endpoint.url, "auth": endpoint.auth.rawValue, "username": endpoint.username,
            "enabled": endpoint.enabled, "has_secret": sealed != nil,
        ]
        let time = EpochMilliseconds.from(now)
        let id = try database.write { db -> Int64 in
            if try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM remote_write_endpoints WHERE name = ? AND id != ?)", arguments: [endpoint.name, endpoint.id])
                == true
            {
                throw Problem.invalid(["name": "an endpoint named \"\(endpoint.name)\" exists"])
            }
            let newest = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'remote_write_batches'") ?? 0
            if endpoint.id == 0 {
                try db.execute(
                    sql: """
                        INSERT INTO remote_write_endpoints (name, url, auth, username, secret_sealed, enabled, sent_through, created_at, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        endpoint.name, endpoint.url, endpoint.auth.rawValue, endpoint.auth == .basic ? endpoint.username : "", sealed,
                        endpoint.enabled,
                        newest, time, time,
                    ])
                let id = db.lastInsertedRowID
                try AuditLog.append(db, by: who, action: "remote_write.create", target: "remote_write:\(endpoint.name)", after: audit, now: now)
                return id
            }
            let wasEnabled = try Bool.fetchOne(db, sql: "SELECT enabled FROM remote_write_endpoints WHERE id = ?", arguments: [endpoint.id])
            guard let wasEnabled else { throw Problem.invalid(["name": "the endpoint was removed meanwhile"]) }
            try db.execute(
                sql: """
                    UPDATE remote_write_endpoints SET name = ?, url = ?, auth = ?, username = ?, secret_sealed = ?, enabled = ?,
                        sent_through = CASE WHEN ? THEN ? ELSE sent_through END, updated_at = ? WHERE id = ?
                    """,
                arguments: [
                    endpoint.name, endpoint.url, endpoint.auth.rawValue, endpoint.auth == .basic ? endpoint.username : "", sealed, endpoint.enabled,
                    !wasEnabled && endpoint.enabled, newest, time, endpoint.id,
                ])
            try AuditLog.append(db, by: who, action: "remote_write.update", target: "remote_write:\(endpoint.name)", after: audit, now: now)
            return endpoint.id
        }
        lock.withLock { backoff[id] = nil }
        try refresh()
        try trim(now: now)
        wake.continuation.yield()
        return try self.endpoint(id: id)!
    }

    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        guard let endpoint = try endpoint(id: id) else { return false }
        try database.write { db in
            try db.execute(sql: "DELETE FROM remote_write_endpoints WHERE id = ?", arguments: [id])
            try AuditLog.append(db, by: who, action: "remote_write.delete", target: "remote_write:\(endpoint.name)", now: now)
        }
        try refresh()
        try trim(now: now)
        return true
    }

    /// Every endpoint with how far behind it is.
    public func statuses(now: Date = Date()) throws -> [RemoteWriteStatus] {
        let endpoints = try all()
        let waits = lock.withLock { backoff }
        return try database.read { db in
            try endpoints.map { endpoint in
                let row = try Row.fetchOne(
                    db,
                    sql:
                        "SELECT COUNT(*) AS batches, COALESCE(SUM(samples), 0) AS samples, MIN(created_at) AS oldest FROM remote_write_batches WHERE id > ?",
                    arguments: [endpoint.sentThrough])
                let oldest: Int64? = endpoint.enabled ? row?["oldest"] : nil
                return RemoteWriteStatus(
                    endpoint: endpoint, pendingSamples: endpoint.enabled ? row?["samples"] ?? 0 : 0,
                    pendingBatches: endpoint.enabled ? row?["batches"] ?? 0 : 0,
                    lagSeconds: oldest.map { max(0, Double(EpochMilliseconds.from(now) - $0) / 1000) } ?? 0,
                    retryAt: waits[endpoint.id].map { EpochMilliseconds.from($0.retryAt) })
            }
        }
    }

    // MARK: sending

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            // One iterator for the whole loop: cancelling a task that waits on an AsyncStream ends the stream, and a
            // loop that raced a fresh iteration against a sleep each turn spun once the first sleep had won.
            var signals = wake.stream.makeAsyncIterator()
            while !Task.isCancelled {
                await sendRound(now: Date())
                lock.withLock { roundCount += 1 }
                // Woken by a stored batch or a changed endpoint, else once a second (to retry when a backoff ends).
                // Only a sleeper that slept its second wakes the loop; one cancelled because something else woke it
                // first must not, or each turn would be woken at once by the turn before.
                let sleeper = Task { [wake] in
                    try? await Task.sleep(for: .seconds(1))
                    if !Task.isCancelled { wake.continuation.yield() }
                }
                if case .none = await signals.next() {
                    // The stream ended (an earlier run of this loop was cancelled): fall back to the second's pace.
                    try? await Task.sleep(for: .seconds(1))
                }
                sleeper.cancel()
            }
        }
    }

    /// Send to every enabled endpoint that is not waiting out a backoff, concurrently, then drop what all have.
    public func sendRound(now: Date) async {
        // With no endpoint enabled nothing is queued, and saving or removing one trimmed the queue: nothing to do, and
        // no write transaction a second on the panel's database.
        guard active else { return }
        let endpoints = ((try? all()) ?? []).filter(\.enabled)
        let waits = lock.withLock { backoff }
        await withTaskGroup(of: Void.self) { group in
            for endpoint in endpoints where (waits[endpoint.id]?.retryAt ?? .distantPast) <= now {
                group.addTask { [self] in await drain(endpoint) }
            }
        }
        do { try trim(now: Date()) } catch { logger.error("remote write: trimming the queue failed", metadata: ["error": "\(error)"]) }
    }

    enum Outcome {
        case accepted
        case retry(String, after: Double?)
        case rejected(String)
    }

    /// Post an endpoint's batches in order until it has them all or a request fails.
    func drain(_ start: RemoteWriteEndpoint) async {
        var cursor = start.sentThrough
        while !Task.isCancelled {
            let batches: [(id: Int64, samples: Int, body: Data)]
            let from = cursor
            do {
                batches = try nextBatches(after: from)
            } catch {
                logger.error("remote write: reading the queue failed", metadata: ["error": "\(error)"])
                return
            }
            guard let last = batches.last else { return }
            let samples = batches.reduce(0) { $0 + $1.samples }
            let body: [UInt8]
            if batches.count == 1 {
                body = Array(batches[0].body)
            } else {
                var joined: [UInt8] = []
                for batch in batches { joined += (try? Snappy.decompress(Array(batch.body))) ?? [] }
                body = Snappy.compress(joined)
            }
            let outcome = await post(body, to: start)
            let now = EpochMilliseconds.from(Date())
            do {
                switch outcome {
                case .accepted:
                    let moved = try execute(
                        """
                        UPDATE remote_write_endpoints SET sent_through = ?, samples_sent = samples_sent + ?, last_success_at = ?
                        WHERE id = ? AND sent_through = ?
                        """, [last.id, samples, now, start.id, from])
                    // Changed meanwhile (removed, or enabled again at the newest batch): the next round starts afresh.
                    guard moved == 1 else { return }
                    lock.withLock { backoff[start.id] = nil }
                    cursor = last.id
                case .rejected(let message):
                    // The receiver will never take these (a 4xx other than 429): retrying would block every later sample.
                    logger.warning("remote write: \(start.name) refused \(samples) samples", metadata: ["error": "\(message)"])
                    let moved = try execute(
                        """
                        UPDATE remote_write_endpoints SET sent_through = ?, samples_rejected = samples_rejected + ?, last_error = ?,
                            last_error_at = ? WHERE id = ? AND sent_through = ?
                        """, [last.id, samples, message, now, start.id, from])
                    guard moved == 1 else { return }
                    cursor = last.id
                case .retry(let message, let after):
                    let delay = lock.withLock { () -> Double in
                        let previous = backoff[start.id]?.delay ?? 0
                        let next = min(settings.maximumBackoff, max(settings.minimumBackoff, previous * 2))
                        let wait = min(max(after ?? next, next), 300)
                        backoff[start.id] = (Date().addingTimeInterval(wait), next)
                        return wait
                    }
                    logger.notice(
                        "remote write: \(start.name) failed, retrying in \(Int(delay.rounded(.up))) s", metadata: ["error": "\(message)"])
                    try execute(
                        "UPDATE remote_write_endpoints SET requests_retried = requests_retried + 1, last_error = ?, last_error_at = ? WHERE id = ?",
                        [message, now, start.id])
                    return
                }
            } catch {
                logger.error("remote write: recording progress failed", metadata: ["error": "\(error)"])
                return
            }
        }
    }

    /// The batches after a cursor that make one request: in order, up to `samplesPerRequest` (at least one batch).
    func nextBatches(after cursor: Int64) throws -> [(id: Int64, samples: Int, body: Data)] {
        try database.read { db in
            var taken: [(Int64, Int, Data)] = []
            var samples = 0
            let rows = try Row.fetchCursor(
                db, sql: "SELECT id, samples, body FROM remote_write_batches WHERE id > ? ORDER BY id LIMIT 500", arguments: [cursor])
            while let row = try rows.next() {
                let count: Int = row["samples"]
                if !taken.isEmpty, samples + count > settings.samplesPerRequest { break }
                taken.append((row["id"], count, row["body"]))
                samples += count
            }
            return taken
        }
    }

    /// Run one statement; returns how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: StatementArguments) throws -> Int {
        try database.write { db in
            try db.execute(sql: sql, arguments: arguments)
            return db.changesCount
        }
    }

    /// One request, classified as the specification asks.
    func post(_ body: [UInt8], to endpoint: RemoteWriteEndpoint) async -> Outcome {
        guard let url = URL(string: endpoint.url) else { return .rejected("the URL \(endpoint.url) cannot be used") }
        var request = URLRequest(url: url, timeoutInterval: settings.timeoutSeconds)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.setValue("snappy", forHTTPHeaderField: "Content-Encoding")
        request.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
        request.setValue("0.1.0", forHTTPHeaderField: "X-Prometheus-Remote-Write-Version")
        request.setValue("Steward/\(StewardVersion.current)", forHTTPHeaderField: "User-Agent")
        if let authorization = endpoint.authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = settings.timeoutSeconds
        configuration.timeoutIntervalForResource = settings.timeoutSeconds
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch {
            return .retry("\(endpoint.url) did not answer: \(error.localizedDescription)", after: nil)
        }
        guard let http = response as? HTTPURLResponse else { return .retry("\(endpoint.url) gave no HTTP answer", after: nil) }
        let status = http.statusCode
        if (200..<300).contains(status) { return .accepted }
        let said = String(decoding: data.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let message = "HTTP \(status)" + (said.isEmpty ? "" : ": " + said)
        if status == 429 || status >= 500 {
            let after = http.value(forHTTPHeaderField: "Retry-After").flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            return .retry(message, after: after)
        }
        return .rejected(message)
    }

    /// Delete batches every enabled endpoint has, and batches older than the backlog limit (counted as dropped for
    /// each endpoint that lacked them).
    func trim(now: Date) throws {
        let cutoff = EpochMilliseconds.from(now) - settings.maximumBacklog
        try database.write { db in
            if let aged = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM remote_write_batches WHERE created_at < ?", arguments: [cutoff]) {
                try db.execute(
                    sql: """
                        UPDATE remote_write_endpoints SET samples_dropped = samples_dropped + (
                            SELECT COALESCE(SUM(samples), 0) FROM remote_write_batches WHERE id > sent_through AND id <= ?),
                            sent_through = ? WHERE enabled AND sent_through < ?
                        """,
                    arguments: [aged, aged, aged])
            }
            let floor = try Int64.fetchOne(db, sql: "SELECT MIN(sent_through) FROM remote_write_endpoints WHERE enabled")
            if let floor {
                try db.execute(sql: "DELETE FROM remote_write_batches WHERE id <= ?", arguments: [floor])
            } else {
                try db.execute(sql: "DELETE FROM remote_write_batches")
            }
        }
    }
}
