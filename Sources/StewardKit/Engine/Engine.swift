import Foundation
import GRDB
import Synchronization

/// What a playbook job was asked to do (stored as the job's params).
public struct PlaybookRun: Sendable, Codable, Equatable {
    /// Repository-relative, e.g. playbooks/ping.yml.
    public var playbook: String
    /// Host names and group names to run on; empty means every enabled host.
    public var targets: [String] = []
    /// Whole-run limit in seconds.
    public var timeoutSeconds: Int = 3600
    /// Per-task limit in seconds (0: none).
    public var taskTimeoutSeconds: Int = 600
    /// An ad-hoc command instead of a playbook: an argv run by the `command` module (never a shell).
    public var command: [String]?
    /// Extra variables as a JSON object, passed to the playbook as a vars file (data, never template text).
    public var variables: String?
    /// A playbook Steward ships (written into DATA/engine/builtin at start) instead of one from the config repo.
    public var builtin: String?
    /// `--check --diff`: report what would change, change nothing.
    public var check = false
    /// Run the config repo's playbook as it was at this commit instead of the working tree.
    public var commit: String?
    /// Built-in playbooks run after the main one in the same ansible-playbook invocation (hosts that failed it are
    /// left out), e.g. the rollout's reboots.
    public var followedBy: [String] = []

    public init(playbook: String, targets: [String] = []) {
        self.playbook = playbook
        self.targets = targets
    }

    /// Fields added over time may be missing from jobs queued by an older Steward; they take their defaults.
    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        playbook = try values.decode(String.self, forKey: .playbook)
        targets = try values.decodeIfPresent([String].self, forKey: .targets) ?? []
        timeoutSeconds = try values.decodeIfPresent(Int.self, forKey: .timeoutSeconds) ?? 3600
        taskTimeoutSeconds = try values.decodeIfPresent(Int.self, forKey: .taskTimeoutSeconds) ?? 600
        command = try values.decodeIfPresent([String].self, forKey: .command)
        variables = try values.decodeIfPresent(String.self, forKey: .variables)
        builtin = try values.decodeIfPresent(String.self, forKey: .builtin)
        check = try values.decodeIfPresent(Bool.self, forKey: .check) ?? false
        commit = try values.decodeIfPresent(String.self, forKey: .commit)
        followedBy = try values.decodeIfPresent([String].self, forKey: .followedBy) ?? []
    }
}

/// Per-host outcome of a playbook job.
/// One task's outcome on one host, as the callback plugin reported it; `detail` is JSON text.
public struct TaskEvent: Sendable, Equatable {
    public let host: String
    public let task: String
    public let status: String
    public let detail: String?
}

public struct HostResult: Sendable, Equatable {
    public var host: String
    public var ok: Int
    public var changed: Int
    public var failed: Int
    public var unreachable: Int
    public var skipped: Int
    public var status: String
    public var message: String?
}

/// Where the panel host's part of a playbook runs under privilege separation: the root helper (`HelperClient`).
public protocol PanelPlaybookRunning: Sendable {
    func runOnPanel(
        job: Int64, run: PlaybookRun, output: @escaping @Sendable (Data) async -> Void, events: @escaping @Sendable (Data) async -> Void
    ) async throws -> ProcessOutcome
}

/// Runs `ansible-playbook` as a job: inventory from the database, playbook from the config repo, a pinned
/// environment (strict host keys, our key and known_hosts, no retry files), a syntax check first, and the callback
/// plugin's events turned into per-host results while the run goes on.
public struct Engine: Sendable {
    public static let kind = "playbook.run"
    public static let adhocKind = "adhoc.run"
    public let database: any DatabaseWriter
    public let hosts: HostStore
    public let keys: HostKeyStore
    public let repository: ConfigRepository
    public let workDirectory: String
    public var forks = 20
    /// Under privilege separation, the panel host's part of each run goes to the root helper; everything else runs
    /// here, as the unprivileged user. Nil: one process does all of it.
    public var panel: (any PanelPlaybookRunning)?
    /// Playbooks that passed the syntax check at a commit ("commit:path"); a commit never changes, so neither does the answer.
    let checked = SyntaxCheckCache()

    public init(database: any DatabaseWriter, hosts: HostStore, keys: HostKeyStore, repository: ConfigRepository, dataDirectory: DataDirectory) {
        self.database = database
        self.hosts = hosts
        self.keys = keys
        self.repository = repository
        workDirectory = dataDirectory.path + "/engine"
    }

    /// Write the callback plugin where ansible will look for it.
    public func prepare() throws {
        try FileManager.default.createDirectory(atPath: workDirectory + "/callback_plugins", withIntermediateDirectories: true)
        try Data(CallbackPlugin.source.utf8).write(to: URL(fileURLWithPath: workDirectory + "/callback_plugins/\(CallbackPlugin.name).py"))
        try FileManager.default.createDirectory(atPath: workDirectory + "/runs", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: workDirectory + "/builtin", withIntermediateDirectories: true)
        for (name, text) in BuiltinPlaybooks.files {
            try Data(text.utf8).write(to: URL(fileURLWithPath: workDirectory + "/builtin/" + name))
        }
    }

    /// A job request for a run; validates the playbook path and the targets first.
    public func request(_ run: PlaybookRun, startedBy: String, reason: String) throws -> JobRequest {
        if let command = run.command {
            try Self.validate(command: command)
        } else {
            _ = try repository.resolvePlaybook(run.playbook)
        }
        _ = try select(run.targets)
        let params = String(decoding: try JSONEncoder().encode(run), as: UTF8.self)
        let target = run.targets.isEmpty ? "all hosts" : run.targets.joined(separator: ", ")
        let what = run.command.map { "command " + $0.map(JobContext.quoteForDisplay).joined(separator: " ") } ?? run.playbook
        return JobRequest(
            kind: run.command == nil ? Self.kind : Self.adhocKind, title: "\(what) on \(target)", params: params,
            host: run.targets.count == 1 ? run.targets[0] : nil, startedBy: startedBy, reason: reason)
    }

    /// An ad-hoc argv: 1 to 64 arguments, no NUL bytes, at most 4 KiB each. It is passed as a list, so shell
    /// syntax in it is inert.
    static func validate(command: [String]) throws(AccessError) {
        guard (1...64).contains(command.count), !command[0].isEmpty,
            command.allSatisfy({ !$0.contains("\0") && $0.utf8.count <= 4096 })
        else { throw AccessError("give the command as a list of 1 to 64 arguments, like [\"uptime\"] or [\"systemctl\", \"status\", \"nginx\"]") }
    }

    /// The enabled hosts named directly or through a group; unknown names are an error that lists them.
    func select(_ targets: [String]) throws -> [Host] {
        let all = try hosts.all().filter(\.enabled)
        guard !targets.isEmpty else { return all }
        let unknown = targets.filter { name in !all.contains { $0.name == name || $0.groups.contains(name) } }
        guard unknown.isEmpty else {
            throw AccessError("no enabled host or group is called " + unknown.map { "\"\($0)\"" }.joined(separator: ", "))
        }
        return all.filter { host in targets.contains { $0 == host.name || host.groups.contains($0) } }
    }

    public func handler() -> JobHandler {
        { context in try await execute(try JSONDecoder().decode(PlaybookRun.self, from: Data(context.job.params.utf8)), context) }
    }

    /// The `facts.gather` job: playbooks/facts.yml on every enabled host; its `Steward facts` task feeds host_facts.
    public static let factsKind = "facts.gather"

    public func factsHandler() -> JobHandler {
        { context in try await execute(PlaybookRun(playbook: "playbooks/facts.yml"), context) }
    }

    public static func ensureFactsSchedule(_ store: ScheduleStore, now: Date) throws {
        guard try store.schedule(named: "Gather facts") == nil else { return }
        _ = try store.create(
            name: "Gather facts",
            settings: ScheduleSettings(cron: "7 * * * *", timeZone: "UTC", jitterSeconds: 300, catchUp: .one, concurrency: .forbid),
            jobKind: factsKind, jobTitle: "Gather facts from every host", owner: "system", now: now)
    }

    func execute(_ run: PlaybookRun, _ context: JobContext) async throws {
        var playbookPath = ""
        if let builtin = run.builtin {
            guard BuiltinPlaybooks.files.contains(where: { $0.name == builtin }) else { throw JobFailure("no built-in playbook \(builtin)") }
            playbookPath = workDirectory + "/builtin/" + builtin
        } else if run.command == nil {
            playbookPath = try repository.resolvePlaybook(run.playbook)
        }
        for name in run.followedBy where !BuiltinPlaybooks.files.contains(where: { $0.name == name }) {
            throw JobFailure("no built-in playbook \(name)")
        }
        let following = run.followedBy.map { workDirectory + "/builtin/" + $0 }
        var workingDirectory = repository.path
        let commit = try run.commit ?? repository.head()
        try await database.write { db in
            try db.execute(sql: "UPDATE jobs SET config_commit = ? WHERE id = ?", arguments: [commit, context.job.id])
        }
        await context.log("config repo at \(commit)")
        let selected = try select(run.targets)
        var runnable: [Host] = []
        for host in selected {
            let verdict = try keys.verdict(for: host)
            if verdict.map({ !$0.blocksJobs }) ?? false {
                runnable.append(host)
            } else {
                let message = verdict?.message ?? "the host key has never been scanned; scan and trust it on the host's page first"
                try record(
                    HostResult(host: host.name, ok: 0, changed: 0, failed: 0, unreachable: 1, skipped: 0, status: "unreachable", message: message),
                    job: context.job.id)
                await context.log("\(host.name): skipped, \(message)")
            }
        }
        guard !runnable.isEmpty else { throw JobFailure("no host can be reached safely: see each host's key status") }
        // The panel host's part goes to the root helper when there is one; the fleet's runs here, unprivileged.
        let onPanel = panel == nil ? [] : runnable.filter { $0.transport == .local }
        let elsewhere = runnable.filter { host in !onPanel.contains { $0.id == host.id } }

        let runDirectory = workDirectory + "/runs/\(context.job.id)"
        try FileManager.default.createDirectory(
            atPath: runDirectory + "/tmp", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer {
            Self.closeConnections(in: runDirectory + "/cp")
            try? FileManager.default.removeItem(atPath: runDirectory)
        }
        let inventoryPath = runDirectory + "/inventory.json"
        try JSONSerialization.data(
            withJSONObject: try Inventory.document(hosts: elsewhere, groups: hosts.groups(), identity: keys.identity), options: [.sortedKeys]
        )
        .write(to: URL(fileURLWithPath: inventoryPath))
        let eventsPath = runDirectory + "/events.ndjson"
        FileManager.default.createFile(atPath: eventsPath, contents: Data())
        // An empty config of our own, so no ansible.cfg from the working directory or the system is read.
        FileManager.default.createFile(atPath: runDirectory + "/ansible.cfg", contents: Data("[defaults]\n".utf8))
        let environment = self.environment(run: run, runDirectory: runDirectory, eventsPath: eventsPath)
        if let pinned = run.commit, run.builtin == nil, run.command == nil {
            // The repository as it was at that commit, unpacked for this run only.
            let tree = runDirectory + "/tree"
            try repository.export(commit: pinned, to: tree)
            workingDirectory = tree
            playbookPath = tree + "/" + run.playbook
            guard FileManager.default.fileExists(atPath: playbookPath) else { throw JobFailure("\(run.playbook) does not exist at commit \(pinned)") }
            await context.log("playbook \(run.playbook) as of commit \(pinned)")
        }
        let checkFlags = run.check ? ["--check", "--diff"] : []

        let argv: [String]
        if let command = run.command {
            try Self.validate(command: command)
            let arguments = String(decoding: try JSONSerialization.data(withJSONObject: ["argv": command]), as: UTF8.self)
            argv = ["ansible", "all", "-i", inventoryPath, "-m", "ansible.builtin.command", "-a", arguments]
        } else if run.builtin != nil || checked.contains(commit + ":" + run.playbook) {
            await context.log(run.builtin != nil ? "Steward's own playbook \(run.builtin!)" : "syntax check: passed earlier for this commit")
            argv =
                ["ansible-playbook", "-i", inventoryPath, playbookPath] + following + checkFlags
                + (try variablesArguments(run, runDirectory: runDirectory))
        } else {
            try await context.progress(5, "checking playbook syntax")
            let checkStart = ContinuousClock.now
            do {
                try await context.run(
                    ProcessCommand(
                        ["ansible-playbook", "--syntax-check", "-i", inventoryPath, playbookPath], environment: environment,
                        workingDirectory: workingDirectory, timeout: .seconds(120)))
            } catch is JobFailure {
                throw JobFailure("\(run.playbook) failed its syntax check (see the log); nothing was run")
            }
            await context.log(String(format: "engine: ansible-playbook --syntax-check ran %.3f s", Self.seconds(ContinuousClock.now - checkStart)))
            checked.insert(commit + ":" + run.playbook)
            argv =
                ["ansible-playbook", "-i", inventoryPath, playbookPath] + following + checkFlags
                + (try variablesArguments(run, runDirectory: runDirectory))
        }

        try await context.progress(10, "running on \(runnable.count) host(s)")
        let ingester = EventIngester(database: database, job: context.job.id, path: eventsPath)
        let tail = Task { await ingester.follow() }
        var failure: (any Error)?
        let engineStart = ContinuousClock.now
        let fleetCommand = ProcessCommand(argv, environment: environment, workingDirectory: workingDirectory, timeout: .seconds(run.timeoutSeconds))
        async let fleetPart: (any Error)? = elsewhere.isEmpty ? nil : Self.attempt { _ = try await context.run(fleetCommand) }
        async let panelPart: (any Error)? =
            onPanel.isEmpty ? nil : Self.attempt { try await runOnPanel(run, commit: commit, eventsPath: eventsPath, context) }
        let (fleetFailure, panelFailure) = await (fleetPart, panelPart)
        failure = fleetFailure ?? panelFailure
        let engineTime = ContinuousClock.now - engineStart
        // The engine's own time, for the rollout benchmark and for anyone asking where a job's time went.
        await context.log(String(format: "engine: %@ ran %.3f s", argv[0], Self.seconds(engineTime)))
        tail.cancel()
        _ = await tail.value
        let results = try await ingester.finish()
        let (count, seconds) = await ingester.statistics
        await context.log(
            "events: \(count) ingested in \(Int(seconds * 1000)) ms" + (seconds > 0 ? " (\(Int(Double(count) / seconds)) events/s)" : ""))
        let failed = results.filter { $0.status == "failed" }.map(\.host)
        let unreachable = results.filter { $0.status == "unreachable" }.map(\.host)
        await context.log(
            "results: " + results.map { "\($0.host)=\($0.status) (ok \($0.ok), changed \($0.changed), failed \($0.failed))" }.joined(separator: ", "))
        if failure is CancellationError { throw CancellationError() }
        if !failed.isEmpty || !unreachable.isEmpty {
            var parts: [String] = []
            if !failed.isEmpty { parts.append("failed on " + failed.joined(separator: ", ")) }
            if !unreachable.isEmpty { parts.append("unreachable: " + unreachable.joined(separator: ", ")) }
            throw JobFailure(parts.joined(separator: "; "))
        }
        if let failure { throw failure }
        try await context.progress(100, "done on \(results.count) host(s)")
    }

    static func attempt(_ body: () async throws -> Void) async -> (any Error)? {
        do {
            try await body()
            return nil
        } catch {
            return error
        }
    }

    /// The panel host's part of a run, through the root helper: its output joins the job log line by line, and its
    /// callback events join the run's events file, which the ingester follows for every host alike.
    func runOnPanel(_ run: PlaybookRun, commit: String, eventsPath: String, _ context: JobContext) async throws {
        guard let panel else { return }
        var panelRun = run
        if run.builtin == nil { panelRun.commit = commit }
        await context.log("the panel host's part runs in the privileged helper (playbook at commit \(commit.prefix(12)))")
        let lines = LineSplitter()
        let writer = context.writer
        let outcome = try await panel.runOnPanel(
            job: context.job.id, run: panelRun,
            output: { data in for line in lines.feed(data) { await writer.append(line + "\n") } },
            events: { data in Self.append(data, to: eventsPath) })
        for line in lines.finish() { await writer.append(line + "\n") }
        if outcome.cancelled || Task.isCancelled { throw CancellationError() }
        guard outcome.succeeded else { throw JobFailure("ansible-playbook on the panel host \(outcome.summary)") }
    }

    /// Whole lines, in one O_APPEND write, so they never interleave with the callback plugin's own lines.
    static func append(_ data: Data, to path: String) {
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        data.withUnsafeBytes { raw in _ = write(descriptor, raw.baseAddress, raw.count) }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Ansible's environment, pinned: nothing inherited, nothing read from ansible.cfg or ~/.ssh.
    func environment(run: PlaybookRun, runDirectory: String, eventsPath: String) -> [String: String] {
        let ssh = keys.identity.sshOptions().joined(separator: " ")
        return [
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": runDirectory, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "ANSIBLE_CONFIG": runDirectory + "/ansible.cfg", "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PRIVATE_KEY_FILE": keys.identity.privateKeyPath,
            "ANSIBLE_SSH_ARGS": ssh + " -o ControlMaster=auto -o ControlPersist=60s", "ANSIBLE_SSH_CONTROL_PATH_DIR": runDirectory + "/cp",
            "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_FORKS": String(forks), "ANSIBLE_TIMEOUT": "15",
            "ANSIBLE_TASK_TIMEOUT": String(run.taskTimeoutSeconds), "ANSIBLE_CALLBACK_PLUGINS": workDirectory + "/callback_plugins",
            "ANSIBLE_CALLBACKS_ENABLED": CallbackPlugin.name, "ANSIBLE_LOCAL_TEMP": runDirectory + "/tmp", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_PIPELINING": "True", "ANSIBLE_GATHERING": "explicit", "ANSIBLE_INVENTORY_ENABLED": "yaml,ini",
            "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_PYTHON_INTERPRETER": "auto_silent", "STEWARD_EVENTS_PATH": eventsPath,
            "PYTHONDONTWRITEBYTECODE": "1", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "True",
        ]
    }

    /// `-e @vars.json` for a run's variables. Ansible would evaluate template syntax inside variable values on the
    /// panel itself, so any value that contains it is refused here, whatever validated it before.
    func variablesArguments(_ run: PlaybookRun, runDirectory: String) throws -> [String] {
        guard let variables = run.variables else { return [] }
        guard (try? JSONSerialization.jsonObject(with: Data(variables.utf8))) is [String: Any] else {
            throw JobFailure("the run's variables are not a JSON object")
        }
        for marker in ["{{", "{%", "{#"] where variables.contains(marker) {
            throw JobFailure("the run's variables contain template syntax (\(marker)); nothing was run")
        }
        let path = runDirectory + "/vars.json"
        FileManager.default.createFile(atPath: path, contents: Data(variables.utf8), attributes: [.posixPermissions: 0o600])
        return ["-e", "@" + path]
    }

    /// SSH connection masters (ControlPersist) outlive ansible by design; a run's end, or cancel, closes them.
    static func closeConnections(in directory: String) {
        for socket in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            _ = try? ShortCommand.run(["ssh", "-o", "ControlPath=\(directory)/\(socket)", "-O", "exit", "steward-control"], timeout: 5)
        }
    }

    func record(_ result: HostResult, job: Int64) throws {
        try database.write { db in try EventIngester.upsert(db, job: job, result) }
    }

    /// The task events of a job, in order (at most `limit`).
    public static func taskEvents(_ reader: any DatabaseReader, job: Int64, limit: Int = 100_000) throws -> [TaskEvent] {
        try reader.read { db in
            try Row.fetchAll(
                db, sql: "SELECT host, task, status, detail FROM job_task_events WHERE job_id = ? ORDER BY seq LIMIT ?", arguments: [job, limit]
            ).map { TaskEvent(host: $0["host"], task: $0["task"], status: $0["status"], detail: $0["detail"]) }
        }
    }

    public static func results(_ reader: any DatabaseReader, job: Int64) throws -> [HostResult] {
        try reader.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM job_host_results WHERE job_id = ? ORDER BY host", arguments: [job]).map { row in
                HostResult(
                    host: row["host"], ok: row["ok"], changed: row["changed"], failed: row["failed"], unreachable: row["unreachable"],
                    skipped: row["skipped"], status: row["status"], message: row["message"])
            }
        }
    }
}

/// Reads the callback plugin's NDJSON as it grows and stores task events and per-host summaries in batches.
actor EventIngester {
    let database: any DatabaseWriter
    let job: Int64
    let path: String
    private var offset: UInt64 = 0
    private var partial = Data()
    private var seq: Int64 = 0
    private var summaries: [String: HostResult] = [:]
    private(set) var eventCount = 0
    private var busy: Duration = .zero

    /// Events stored and the time spent parsing and storing them.
    var statistics: (Int, Double) {
        let (seconds, attoseconds) = busy.components
        return (eventCount, Double(seconds) + Double(attoseconds) / 1e18)
    }

    init(database: any DatabaseWriter, job: Int64, path: String) {
        self.database = database
        self.job = job
        self.path = path
    }

    func follow() async {
        while !Task.isCancelled {
            try? ingest()
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Read what is left and return the per-host results.
    func finish() throws -> [HostResult] {
        try ingest()
        return try Engine.results(database, job: job)
    }

    func ingest() throws {
        let start = ContinuousClock.now
        defer { busy += ContinuousClock.now - start }
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        let data = handle.readDataToEndOfFile()
        guard !data.isEmpty else { return }
        offset += UInt64(data.count)
        partial.append(data)
        guard let lastNewline = partial.lastIndex(of: 0x0A) else { return }
        let complete = partial[partial.startIndex...lastNewline]
        partial = Data(partial[partial.index(after: lastNewline)...])
        var events: [[String: Any]] = []
        for line in complete.split(separator: 0x0A) where !line.isEmpty {
            if let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] { events.append(object) }
        }
        eventCount += events.count
        let job = self.job
        var seq = self.seq
        var summaries = self.summaries
        try database.write { db in
            for event in events {
                switch event["event"] as? String {
                case "result":
                    guard let host = event["host"] as? String, let status = event["status"] as? String else { continue }
                    seq += 1
                    let detail = (event["detail"] as? [String: Any]).flatMap {
                        try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys])
                    }
                    try db.execute(
                        sql: "INSERT INTO job_task_events (job_id, seq, at, host, task, status, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        arguments: [
                            job, seq, EpochMilliseconds.from(Date(timeIntervalSince1970: event["at"] as? Double ?? Date().timeIntervalSince1970)),
                            host,
                            event["task"] as? String ?? "", status, detail.map { String(decoding: $0, as: UTF8.self) },
                        ])
                    var summary = summaries[host] ?? HostResult(host: host, ok: 0, changed: 0, failed: 0, unreachable: 0, skipped: 0, status: "ok")
                    switch status {
                    case "changed":
                        summary.ok += 1
                        summary.changed += 1
                    case "failed": summary.failed += 1
                    case "unreachable": summary.unreachable += 1
                    case "skipped": summary.skipped += 1
                    default: summary.ok += 1
                    }
                    if status == "failed" || status == "unreachable" {
                        summary.message = ((event["detail"] as? [String: Any])?["msg"] as? String).map { String($0.prefix(500)) } ?? summary.message
                    }
                    summary.status = Self.overall(summary)
                    summaries[host] = summary
                    try EventIngester.upsert(db, job: job, summary)
                case "facts":
                    guard let host = event["host"] as? String, let facts = event["facts"] as? [String: Any],
                        let data = try? JSONSerialization.data(withJSONObject: facts, options: [.sortedKeys])
                    else { continue }
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO host_facts (host_id, gathered_at, job_id, facts) SELECT id, ?, ?, ? FROM hosts WHERE name = ?",
                        arguments: [EpochMilliseconds.from(Date()), job, String(decoding: data, as: UTF8.self), host])
                case "report":
                    guard let host = event["host"] as? String, let name = event["name"] as? String,
                        let data = try? JSONSerialization.data(withJSONObject: event["body"] ?? NSNull(), options: [.sortedKeys, .fragmentsAllowed])
                    else { continue }
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO job_reports (job_id, host, name, body) VALUES (?, ?, ?, ?)",
                        arguments: [job, host, name, String(decoding: data, as: UTF8.self)])
                case "stats":
                    guard let hosts = event["hosts"] as? [String: [String: Int]] else { continue }
                    for (host, counts) in hosts {
                        var summary =
                            summaries[host] ?? HostResult(host: host, ok: 0, changed: 0, failed: 0, unreachable: 0, skipped: 0, status: "ok")
                        summary.ok = counts["ok"] ?? summary.ok
                        summary.changed = counts["changed"] ?? summary.changed
                        summary.failed = counts["failures"] ?? summary.failed
                        summary.unreachable = counts["unreachable"] ?? summary.unreachable
                        summary.skipped = counts["skipped"] ?? summary.skipped
                        summary.status = Self.overall(summary)
                        summaries[host] = summary
                        try EventIngester.upsert(db, job: job, summary)
                    }
                default:
                    continue
                }
            }
        }
        self.seq = seq
        self.summaries = summaries
    }

    static func overall(_ summary: HostResult) -> String {
        if summary.unreachable > 0 { return "unreachable" }
        if summary.failed > 0 { return "failed" }
        if summary.changed > 0 { return "changed" }
        if summary.ok == 0 && summary.skipped > 0 { return "skipped" }
        return "ok"
    }

    static func upsert(_ db: GRDB.Database, job: Int64, _ result: HostResult) throws {
        try db.execute(
            sql: """
                INSERT INTO job_host_results (job_id, host, ok, changed, failed, unreachable, skipped, status, message)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (job_id, host) DO UPDATE SET ok = excluded.ok, changed = excluded.changed, failed = excluded.failed,
                    unreachable = excluded.unreachable, skipped = excluded.skipped, status = excluded.status,
                    message = COALESCE(excluded.message, job_host_results.message)
                """,
            arguments: [
                job, result.host, result.ok, result.changed, result.failed, result.unreachable, result.skipped, result.status, result.message,
            ])
    }
}

/// The inventory Ansible sees, generated from the database: Ansible's YAML inventory structure, written as JSON.
/// Each host tag is also a group (`tag_prod`), so `-l tag_prod` and `hosts: tag_prod` select by tag.
public enum Inventory {
    /// How much of each host's connection the inventory spells out. Host variables outrank Ansible's command line
    /// (`-c`, `-u`, `-b`) and play keywords (`connection:`, `remote_user:`, `become:`).
    public enum ConnectionVariables: Sendable {
        /// All of it, for Steward's own runs: no play can move a host's tasks elsewhere (`connection: local` would
        /// run them on the panel) or log in as another user.
        case pinned
        /// Only what Ansible's defaults would get wrong, for `steward inventory` and people's own `ansible -c/-u/-b`:
        /// the local transport, an address other than the name, a port other than 22, the SSH user, sudo.
        case needed
    }

    public static func document(
        hosts: [Host], groups: [HostGroup], identity: SSHIdentity, connection: ConnectionVariables = .pinned
    ) throws -> [String: Any] {
        let pinned = connection == .pinned
        var hostVars: [String: Any] = [:]
        var members: [String: [String: Any]] = [:]
        var tagged: [String: [String: Any]] = [:]
        for host in hosts {
            var vars = (try? HostVariables.parse(host.variables).get()) ?? [:]
            switch host.transport {
            case .local:
                if pinned { vars["ansible_host"] = host.address }
                vars["ansible_connection"] = "local"
                vars["ansible_python_interpreter"] = vars["ansible_python_interpreter"] ?? "/usr/bin/python3"
            case .ssh:
                // Ansible's default connection is ssh, its default host the inventory name and its default port 22.
                if pinned { vars["ansible_connection"] = "ssh" }
                if pinned || host.address != host.name { vars["ansible_host"] = host.address }
                if pinned || host.sshPort != 22 { vars["ansible_port"] = host.sshPort }
                // Ansible has no default user of its own (ssh uses the local one), so the record's user always goes in.
                vars["ansible_user"] = host.sshUser
            }
            if host.become == .sudo {
                vars["ansible_become"] = true
                vars["ansible_become_method"] = "sudo"
            } else if pinned {
                vars["ansible_become"] = false
            }
            vars["steward_tags"] = host.tags
            hostVars[host.name] = vars
            for group in host.groups { members[group, default: [:]][host.name] = [String: Any]() }
            for tag in host.tags { tagged[tagGroup(tag), default: [:]][host.name] = [String: Any]() }
        }
        var children: [String: Any] = [:]
        for group in groups where members[group.name] != nil {
            children[group.name] =
                [
                    "hosts": members[group.name] ?? [:], "vars": (try? HostVariables.parse(group.variables).get()) ?? [:],
                ] as [String: Any]
        }
        // A group of the operator's own with hosts in it keeps its name (and its variables) when a tag makes the same one.
        for (name, taggedHosts) in tagged where children[name] == nil {
            children[name] = ["hosts": taggedHosts] as [String: Any]
        }
        return ["all": ["hosts": hostVars, "children": children] as [String: Any]]
    }

    /// The group a host tag becomes: `tag_` and the tag, lowercased, with every character other than a letter, a
    /// digit or `_` as `_` (Ansible group names are identifiers): the tag eu-west is the group tag_eu_west.
    public static func tagGroup(_ tag: String) -> String {
        let bytes = tag.lowercased().utf8.map { HostValidation.isLower($0) || HostValidation.isDigit($0) ? $0 : UInt8(ascii: "_") }
        return "tag_" + String(decoding: bytes, as: UTF8.self)
    }

    /// `--list` output of a dynamic inventory script: groups with host lists and vars, plus _meta.hostvars. Only the
    /// connection variables a host needs, so `ansible -c`, `-u` and `-b` still choose for the rest.
    public static func dynamicList(hosts: [Host], groups: [HostGroup]) -> [String: Any] {
        let document =
            (try? Inventory.document(hosts: hosts, groups: groups, identity: SSHIdentity(directory: ""), connection: .needed)) ?? [:]
        let all = document["all"] as? [String: Any] ?? [:]
        let hostVars = all["hosts"] as? [String: Any] ?? [:]
        var result: [String: Any] = ["_meta": ["hostvars": hostVars]]
        var grouped = Set<String>()
        for (name, value) in all["children"] as? [String: Any] ?? [:] {
            let group = value as? [String: Any] ?? [:]
            let names = (group["hosts"] as? [String: Any] ?? [:]).keys.sorted()
            grouped.formUnion(names)
            result[name] = ["hosts": names, "vars": group["vars"] ?? [:]]
        }
        result["all"] = ["hosts": hostVars.keys.sorted(), "children": (all["children"] as? [String: Any] ?? [:]).keys.sorted() + ["ungrouped"]]
        result["ungrouped"] = ["hosts": hostVars.keys.filter { !grouped.contains($0) }.sorted()]
        return result
    }
}

/// A set of strings shared between concurrent jobs.
final class SyntaxCheckCache: Sendable {
    private let entries = Mutex<Set<String>>([])
    func contains(_ key: String) -> Bool { entries.withLock { $0.contains(key) } }
    func insert(_ key: String) { _ = entries.withLock { $0.insert(key) } }
}
