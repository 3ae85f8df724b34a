import Foundation
import HTTPTypes

/// One process as `ps` reported it.
struct HostProcess: Codable, Sendable, Equatable {
    var pid: Int
    var ppid: Int
    var user: String
    /// Percent of one CPU over the process's life (ps's %CPU), and percent of memory.
    var cpu: Double
    var memory: Double
    var rssKiB: Int
    /// Seconds since it started; the start time is the reading's time less this.
    var elapsedSeconds: Int
    var command: String
}

/// A host's processes reading.
struct ProcessListing: HostReadingBody, Equatable {
    var processes: [HostProcess]
    var itemCount: Int { processes.count }

    static let kind = "processes"
    /// Every process, full command lines (-ww), user names up to 64 characters, no headers.
    static let command = ["env", "LC_ALL=C", "ps", "-e", "-ww", "-o", "pid=,ppid=,user:64=,pcpu=,pmem=,rss=,etimes=,args="]

    /// Seven columns, then the command line with its spaces. Lines that do not start with numbers are left out.
    static func parse(_ text: String) -> [HostProcess] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            var rest = Substring(line).drop(while: \.isWhitespace)
            var columns: [Substring] = []
            while columns.count < 7, !rest.isEmpty {
                let word = rest.prefix(while: { !$0.isWhitespace })
                columns.append(word)
                rest = rest.dropFirst(word.count).drop(while: \.isWhitespace)
            }
            guard columns.count == 7, let pid = Int(columns[0]), let ppid = Int(columns[1]), let cpu = Double(columns[3]),
                let memory = Double(columns[4]), let rss = Int(columns[5]), let elapsed = Int(columns[6])
            else { return nil }
            return HostProcess(
                pid: pid, ppid: ppid, user: HostText.clean(String(columns[2]), maxBytes: 64), cpu: cpu, memory: memory, rssKiB: rss,
                elapsedSeconds: elapsed, command: HostText.clean(String(rest), maxBytes: 4096))
        }
    }

    enum Order: String, CaseIterable, Sendable {
        case cpu, memory
    }

    /// The busiest first: by CPU (then memory) or by memory (then CPU), the lower PID breaking ties.
    func top(_ order: Order, limit: Int, text: String = "") -> [HostProcess] {
        let matching =
            text.isEmpty
            ? processes : processes.filter { $0.command.localizedCaseInsensitiveContains(text) || $0.user.localizedCaseInsensitiveContains(text) }
        let sorted = matching.sorted { a, b in
            let (x, y) = order == .cpu ? ((a.cpu, a.memory), (b.cpu, b.memory)) : ((a.memory, a.cpu), (b.memory, b.cpu))
            return x != y ? x > y : a.pid < b.pid
        }
        return Array(sorted.prefix(limit))
    }

    /// Why a process may not be signalled from Steward, or nil: the host's init, and every process of an SSH session of
    /// the user Steward logs in as (Steward's own sessions, this one among them, and what runs in them). On the panel
    /// host, Steward itself and its ancestors.
    /// Processes by PID, for walking up from a process to its ancestors.
    var byPID: [Int: HostProcess] { Dictionary(processes.map { ($0.pid, $0) }, uniquingKeysWith: { first, _ in first }) }

    /// `index` is `byPID`, given by a caller that asks about many processes, so it is built once per page.
    func protection(of pid: Int, sshUser: String?, panelPID: Int?, index: [Int: HostProcess]? = nil) -> String? {
        if pid == 1 { return "PID 1 is the host's init" }
        let byPID = index ?? self.byPID
        if let panelPID {
            var ancestor: Int? = panelPID
            var seen = Set<Int>()
            while let current = ancestor, current > 1, seen.insert(current).inserted {
                if current == pid { return "it is Steward itself, or the process Steward runs under" }
                ancestor = byPID[current]?.ppid
            }
        }
        if let sshUser {
            var current: Int? = pid
            var seen = Set<Int>()
            while let id = current, id > 1, seen.insert(id).inserted, let process = byPID[id] {
                if process.command.hasPrefix("sshd: \(sshUser)@") || process.command.hasPrefix("sshd: \(sshUser) [")
                    || process.command == "sshd: \(sshUser)"
                {
                    return "it runs in an SSH session of \(sshUser), the user Steward logs in as"
                }
                current = process.ppid
            }
        }
        return nil
    }
}

/// Reads a host's processes now and keeps the reading.
struct ProcessReading: Sendable {
    let readings: HostReadings

    @discardableResult
    func refresh(_ host: Host, by who: AuditActor? = nil, now: Date = Date()) async throws -> HostReading<ProcessListing> {
        try await readings.refresh(host, by: who, now: now) { host in
            let output = try await readings.reader.run(host, ProcessListing.command)
            var error: String?
            if output.status != 0 { error = HostText.reason(output, command: "ps") }
            if output.truncated { error = "ps printed more than \(HostReader.maxOutputBytes >> 20) MB; the rest was left out" }
            return HostReading(hostID: host.id, readAt: now, body: ProcessListing(processes: ProcessListing.parse(output.stdout)), error: error)
        }
    }
}

/// TERM or KILL to one process, as queued (the `process.signal` job's params).
struct ProcessSignal: HostJobChange, Equatable {
    enum Signal: String, Codable, CaseIterable, Sendable {
        case term = "TERM"
        case kill = "KILL"
    }

    var hostId: Int64
    var host: String
    var pid: Int
    var signal: Signal
    var user: String
    /// The SHA-256 of the command line as the reading had it: the job sends nothing when the process's command line is
    /// no longer this. The text itself is kept only in the audit row (command lines can hold secrets, and job pages are
    /// for viewers too).
    var commandSHA256: String
    /// The command's program, for the job log.
    var program: String

    static let kind = "process.signal"

    /// The playbook sees the command line only as its SHA-256: text from a host never reaches a template.
    var variables: [String: JSONValue] {
        [
            "steward_signal": [
                "pid": .integer(Int64(pid)), "signal": .string(signal.rawValue), "command_sha256": .string(commandSHA256),
            ]
        ]
    }

    /// The module call, for the job log and the audit row.
    var moduleCall: String { "ansible.builtin.command: argv=[kill, -s, \(signal.rawValue), \(pid)]" }
}

/// Checks a signal request against the host's newest processes reading, and builds its job.
struct ProcessSignals: Sendable {
    let store: HostReadingStore

    func prepare(pid pidText: String, signal signalText: String, on host: Host, by who: AuditActor) throws -> JobRequest {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to signal its processes") }
        var errors: [String: String] = [:]
        let signal = ProcessSignal.Signal(rawValue: signalText.uppercased())
        if signal == nil { errors["signal"] = "must be TERM or KILL" }
        let reading = try store.latest(ProcessListing.self, kind: ProcessListing.kind, hostID: host.id)
        var process: HostProcess?
        if let pid = Int(pidText), pid > 0 {
            if let reading, reading.body.itemCount > 0 {
                process = reading.body.processes.first { $0.pid == pid }
                if process == nil {
                    errors["pid"] = "\(pid) is not a process on \(host.name) as of \(RFC3339.display(reading.readAt)); read its processes again"
                }
            } else {
                errors["pid"] =
                    "\(host.name)'s processes have not been read; read them first, so the process can be checked against what the host has"
            }
        } else {
            errors["pid"] = "must be a process id (a positive whole number)"
        }
        guard errors.isEmpty, let signal, let process, let reading else { throw Problem.invalid(errors) }
        let panelPID = host.transport == .local ? Int(getpid()) : nil
        if let reason = reading.body.protection(of: process.pid, sshUser: host.transport == .ssh ? host.sshUser : nil, panelPID: panelPID) {
            throw Problem(status: .conflict, detail: "Process \(process.pid) on \(host.name) is not signalled from Steward: \(reason).")
        }
        let change = ProcessSignal(
            hostId: host.id, host: host.name, pid: process.pid, signal: signal, user: process.user,
            commandSHA256: sha256Hex(Array(process.command.utf8)), program: HostSecrets.command(process.command, full: false))
        var request = JobRequest(
            kind: ProcessSignal.kind, title: "Send \(signal.rawValue) to process \(process.pid) on \(host.name)",
            params: String(decoding: try JSONEncoder().encode(change), as: UTF8.self), host: host.name, startedBy: who.actor,
            reason: change.moduleCall, source: who.source)
        request.audit = JobAudit(
            by: who, action: "process.signal",
            after: [
                "host": .string(host.name), "pid": .integer(Int64(process.pid)), "signal": .string(signal.rawValue), "user": .string(process.user),
                "command": .string(process.command),
            ])
        return request
    }
}

extension Engine {
    /// The `process.signal` job: Steward's signal playbook on the one host (it checks that the PID still runs the same
    /// command line, then sends the signal), then the host's processes read again.
    func processSignalHandler(hosts: HostStore, processes: ProcessReading) -> JobHandler {
        hostChangeHandler(ProcessSignal.self, hosts: hosts, playbook: BuiltinPlaybooks.signal, timeoutSeconds: 300) { host, change, _ in
            let reading = try await processes.refresh(host)
            let still = reading.body.processes.contains { $0.pid == change.pid && sha256Hex(Array($0.command.utf8)) == change.commandSHA256 }
            return "process \(change.pid) of \(change.user) (\(change.program)) on \(host.name) is \(still ? "still running" : "gone") as of "
                + RFC3339.display(reading.readAt)
        }
    }
}
