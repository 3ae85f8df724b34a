import Foundation
import Logging
import ServiceLifecycle

/// Pulls every enabled host's journal over Steward's SSH trust (the panel host's directly), with no agent: each round
/// asks `journalctl -o json` for what came after the stored cursor, at most `batchBytes` a read; a host with more
/// waiting is read again at once, up to `maxReadsPerRound`. The lines and the new cursor are saved in one
/// transaction, so a restart or an outage resumes where the last saved read ended: nothing lost, nothing twice.
public final class JournalCollector: Service, @unchecked Sendable {
    let store: LogStore
    let hosts: HostStore
    let reader: HostReader
    /// Plain files under /var/log read on the hosts of a group, after the journal, in the same round.
    let files: LogFileStore?
    let readings: HostReadingStore?
    let interval: Duration
    let logger: Logger
    /// One read of a host's journal at a time (a second caller waits for the first's answer: two reads from the same
    /// cursor would store lines twice), and a few hosts at once.
    let gate = ReadingGate(limit: parallelHosts)
    /// A host's first read starts this far back.
    static let firstReadSince = "-24h"
    static let batchBytes = 4 << 20
    static let maxReadsPerRound = 8
    static let parallelHosts = 4
    static let source = "journal"

    init(
        store: LogStore, hosts: HostStore, reader: HostReader, files: LogFileStore? = nil, readings: HostReadingStore? = nil, intervalSeconds: Int,
        logger: Logger
    ) {
        self.store = store
        self.hosts = hosts
        self.reader = reader
        self.files = files
        self.readings = readings
        self.interval = .seconds(intervalSeconds)
        self.logger = logger
    }

    public func run() async throws {
        guard interval > .zero else {
            // Collection is off: stay until the server stops (a service that returns would stop the others).
            try? await gracefulShutdown()
            return
        }
        // Graceful shutdown (SIGTERM) cancels the sleep; a round in progress saves what it read first.
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                await collectAll()
                do { try await Task.sleep(for: interval) } catch { break }
            }
        }
    }

    /// One round over every enabled host, a few at a time.
    public func collectAll() async {
        let all = ((try? hosts.all()) ?? []).filter(\.enabled)
        await withTaskGroup(of: Void.self) { group in
            for host in all { group.addTask { _ = try? await self.collect(host) } }
        }
    }

    /// The words that read a host's journal after `cursor` (or, the first time, the last day of it). The journal of
    /// the whole system needs root or the systemd-journal group: over SSH as another user, `sudo -n`.
    static func words(host: Host, cursor: String) -> [String] {
        let words =
            ["journalctl", "--output=json", "--all", "--no-pager", "--quiet"]
            + (cursor.isEmpty ? ["--since=\(firstReadSince)"] : ["--after-cursor=\(cursor)"])
        return host.transport == .ssh && host.sshUser != "root" ? ["sudo", "-n"] + words : words
    }

    /// Read one host until it has nothing more (or the round's reads are used up); returns the lines stored.
    @discardableResult
    public func collect(_ host: Host) async throws -> Int {
        try await gate.read(key: "journal:\(host.id)") {
            let journal = await self.read(host)
            return journal + (await self.readFiles(host))
        }
    }

    static let fileSource = "file"

    /// The host's listed files under /var/log, from where each was read to (see `LogFileReader`).
    func readFiles(_ host: Host) async -> Int {
        guard let files, let patterns = try? files.all().filter({ $0.applies(to: host) }).map(\.path), !patterns.isEmpty else { return 0 }
        let unique = patterns.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let zoneName = (try? readings?.latest(CronListing.self, kind: CronListing.kind, hostID: host.id))??.body.timeZone
        let zone = zoneName.flatMap(TimeZone.init(identifier:)) ?? .current
        var stored = 0
        for _ in 0..<Self.maxReadsPerRound {
            do {
                let text = try store.position(hostID: host.id, source: Self.fileSource)
                let position =
                    (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: [NSNumber]])?.mapValues { $0.map(\.int64Value) } ?? [:]
                // Base64 makes the budget's bytes a third larger.
                let output = try await reader.run(
                    host, LogFileReader.words(host: host, patterns: unique, position: position), timeout: 60,
                    maxBytes: LogFileReader.batchBytes * 2)
                if output.status != 0, output.stdout.isEmpty {
                    try store.recordFailure(hostID: host.id, source: Self.fileSource, error: HostText.reason(output, command: "python3"))
                    return stored
                }
                let read = LogFileReader.parse(output.stdout, position: position, zone: zone, now: Date())
                let saved = String(
                    decoding: try JSONSerialization.data(withJSONObject: read.position, options: [.sortedKeys, .withoutEscapingSlashes]),
                    as: UTF8.self)
                try store.append(hostID: host.id, source: Self.fileSource, lines: read.lines, position: saved)
                if !read.problems.isEmpty {
                    try store.recordFailure(
                        hostID: host.id, source: Self.fileSource, error: HostText.clean(read.problems.joined(separator: "; "), maxBytes: 500))
                }
                stored += read.lines.count
                if !read.more {
                    try store.compact(hostID: host.id, source: Self.fileSource)
                    return stored
                }
            } catch {
                let reason = (error as? Problem)?.detail ?? "\(error)"
                try? store.recordFailure(hostID: host.id, source: Self.fileSource, error: HostText.clean(reason, maxBytes: 500))
                return stored
            }
        }
        return stored
    }

    func read(_ host: Host) async -> Int {
        var stored = 0
        for _ in 0..<Self.maxReadsPerRound {
            do {
                let cursor = try store.position(hostID: host.id, source: Self.source)
                let output = try await reader.run(
                    host, Self.words(host: host, cursor: cursor), timeout: 60, maxBytes: Self.batchBytes, stopWhenFull: true)
                let (lines, newCursor, skipped) = LogLine.journalLines(output.stdout)
                // Stopped at the cap on standard output (not on a talkative standard error): more is waiting.
                let more = output.truncated && output.stdout.utf8.count >= Self.batchBytes - 1
                if lines.isEmpty, more {
                    try store.recordFailure(
                        hostID: host.id, source: Self.source,
                        error: "a journal entry after the stored cursor is larger than \(Self.batchBytes >> 20) MB; Steward cannot read past it")
                    return stored
                }
                if lines.isEmpty, output.status != 0 {
                    let reason = HostText.reason(output, command: "journalctl")
                    try store.recordFailure(hostID: host.id, source: Self.source, error: reason)
                    return stored
                }
                try store.append(hostID: host.id, source: Self.source, lines: lines, position: newCursor)
                stored += lines.count
                // A cut last line is read again next time; any other line that is not JSON is counted in the log.
                if skipped > (more ? 1 : 0) { logger.notice("\(host.name): \(skipped) journal lines could not be read as JSON") }
                if !more {
                    try store.compact(hostID: host.id, source: Self.source)
                    return stored
                }
            } catch {
                let reason = (error as? Problem)?.detail ?? "\(error)"
                try? store.recordFailure(hostID: host.id, source: Self.source, error: HostText.clean(reason, maxBytes: 500))
                return stored
            }
        }
        return stored
    }
}
