import Foundation
import GRDB

/// A playbook on the panel host itself, run by the root helper under privilege separation. The web process asks
/// with the recorded job and its typed run; the helper checks both against the database, builds everything the run
/// reads in a private directory of its own (inventory of localhost alone, the callback plugin, Steward's built-in
/// playbooks, the config repo exported at the job's recorded commit by the steward user), and never writes where the
/// web process could point it.
public struct PanelPlaybook: Sendable {
    public let dataDirectory: DataDirectory
    let runner: LocalProcessRunner

    public init(dataDirectory: DataDirectory, runner: LocalProcessRunner = LocalProcessRunner()) {
        self.dataDirectory = dataDirectory
        self.runner = runner
    }

    /// Why the helper will not run this, or nil: only a running job's playbook, at the commit it recorded.
    static func refusal(job: Row?, run: PlaybookRun) -> String? {
        guard let job else { return "no such job" }
        guard job["state"] as String? == "running" else { return "the job is not running" }
        if run.command != nil {
            return "ad-hoc commands do not run on the panel host under privilege separation; commit a playbook to the config repo instead"
        }
        guard let recorded = job["config_commit"] as String?, !recorded.isEmpty else { return "the job recorded no config commit" }
        if run.builtin == nil, run.commit != recorded { return "the run's commit is not the one its job recorded" }
        if let builtin = run.builtin, !BuiltinPlaybooks.files.contains(where: { $0.name == builtin }) { return "no built-in playbook \(builtin)" }
        for name in run.followedBy where !BuiltinPlaybooks.files.contains(where: { $0.name == name }) { return "no built-in playbook \(name)" }
        if let variables = run.variables {
            guard (try? JSONSerialization.jsonObject(with: Data(variables.utf8))) is [String: Any] else { return "the variables are not a JSON object" }
            if ["{{", "{%", "{#"].contains(where: variables.contains) { return "the variables contain template syntax" }
        }
        return nil
    }

    /// Run it; output and callback events stream to the two closures.
    public func run(
        job jobID: Int64, _ run: PlaybookRun, output: @escaping @Sendable (Data) async -> Void, events: @escaping @Sendable (Data) async -> Void
    ) async throws -> ProcessOutcome {
        var configuration = Configuration()
        configuration.readonly = true
        let database = try DatabaseQueue(path: dataDirectory.databasePath, configuration: configuration)
        let job = try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT state, kind, config_commit FROM jobs WHERE id = ?", arguments: [jobID])
        }
        if let refusal = Self.refusal(job: job, run: run) { throw JobFailure("the helper refused job \(jobID): \(refusal)") }
        let store = HostStore(database: try DatabasePool(path: dataDirectory.databasePath, configuration: configuration))
        guard let panel = try store.all().first(where: { $0.transport == .local }), panel.enabled else {
            throw JobFailure("the panel host is disabled, or not enrolled")
        }
        let commit = (job?["config_commit"] as String?) ?? ""

        let temporary = URL(fileURLWithPath: NSTemporaryDirectory()).standardizedFileURL.path
        var template = Array((temporary + "/steward-panel-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw JobFailure("the helper could not make its run directory") }
        let directory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tree = directory + "/tree"
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/callback_plugins", withIntermediateDirectories: true)
        try Data(CallbackPlugin.source.utf8).write(to: URL(fileURLWithPath: directory + "/callback_plugins/\(CallbackPlugin.name).py"))
        try FileManager.default.createDirectory(atPath: directory + "/builtin", withIntermediateDirectories: true)
        for (name, text) in BuiltinPlaybooks.files { try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/builtin/" + name)) }
        FileManager.default.createFile(atPath: directory + "/ansible.cfg", contents: Data("[defaults]\n".utf8))
        let eventsPath = directory + "/events.ndjson"
        FileManager.default.createFile(atPath: eventsPath, contents: Data())

        let playbook: String
        if let builtin = run.builtin {
            playbook = directory + "/builtin/" + builtin
        } else {
            try await export(commit: commit, to: tree)
            playbook = tree + "/" + run.playbook
            let resolved = URL(fileURLWithPath: playbook).standardizedFileURL.path
            guard resolved.hasPrefix(tree + "/"), ConfigRepository.isRegularFile(resolved) else {
                throw JobFailure("\(run.playbook) is not a playbook at commit \(commit)")
            }
        }
        let groupsOfPanel = try store.groups()
        let identity = SSHIdentity(dataDirectory: dataDirectory)
        try JSONSerialization.data(
            withJSONObject: try Inventory.document(hosts: [panel], groups: groupsOfPanel, identity: identity), options: [.sortedKeys]
        ).write(to: URL(fileURLWithPath: directory + "/inventory.json"))
        var argv = ["ansible-playbook", "-i", directory + "/inventory.json", playbook] + run.followedBy.map { directory + "/builtin/" + $0 }
        if run.check { argv += ["--check", "--diff"] }
        if let variables = run.variables {
            FileManager.default.createFile(atPath: directory + "/vars.json", contents: Data(variables.utf8), attributes: [.posixPermissions: 0o600])
            argv += ["-e", "@" + directory + "/vars.json"]
        }
        let environment: [String: String] = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": directory, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "ANSIBLE_CONFIG": directory + "/ansible.cfg", "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_TIMEOUT": "15",
            "ANSIBLE_TASK_TIMEOUT": String(run.taskTimeoutSeconds), "ANSIBLE_CALLBACK_PLUGINS": directory + "/callback_plugins",
            "ANSIBLE_CALLBACKS_ENABLED": CallbackPlugin.name, "ANSIBLE_LOCAL_TEMP": directory + "/tmp", "ANSIBLE_REMOTE_TEMP": directory + "/tmp", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_GATHERING": "explicit", "ANSIBLE_INVENTORY_ENABLED": "yaml,ini",
            "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_PYTHON_INTERPRETER": "auto_silent", "STEWARD_EVENTS_PATH": eventsPath,
            "PYTHONDONTWRITEBYTECODE": "1", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "True",
        ]
        let follower = Task {
            var offset: UInt64 = 0
            while true {
                if let handle = FileHandle(forReadingAtPath: eventsPath) {
                    try? handle.seek(toOffset: offset)
                    let data = handle.readDataToEndOfFile()
                    try? handle.close()
                    if let end = data.lastIndex(of: 0x0A) {
                        let complete = data[data.startIndex...end]
                        offset += UInt64(complete.count)
                        await events(Data(complete))
                    }
                }
                if Task.isCancelled { break }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        let outcome = try await runner.run(
            ProcessCommand(argv, environment: environment, workingDirectory: run.builtin == nil ? tree : directory, timeout: .seconds(run.timeoutSeconds)),
            output: output)
        follower.cancel()
        await follower.value
        return outcome
    }

    /// The config repo at `commit`, exported by the steward user (git never runs as root on a repository the web
    /// process writes) and unpacked without owners or modes from the archive.
    func export(commit: String, to tree: String) async throws {
        guard ConfigRepository.isCommitHash(commit) || (commit.count == 40 && commit.allSatisfy(\.isHexDigit)) else {
            throw JobFailure("\(commit) is not a commit")
        }
        let archive = Collected()
        var export = ProcessCommand(
                [
                    "setpriv", "--reuid", PrivilegeSeparation.userName, "--regid", PrivilegeSeparation.userName, "--clear-groups", "--no-new-privs",
                    "--", "git", "-C", dataDirectory.path + "/config", "archive", "--format=tar", commit,
            ], environment: ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"], timeout: .seconds(120))
        export.discardStandardError = true
        let git = try await runner.run(export) { data in archive.append(data) }
        guard git.succeeded else { throw JobFailure("git archive \(commit) \(git.summary)") }
        var command = ProcessCommand(["tar", "--no-same-owner", "--no-same-permissions", "-x", "-f", "-", "-C", tree], timeout: .seconds(120))
        command.input = archive.data
        let tar = try await runner.run(command) { _ in }
        guard tar.succeeded else { throw JobFailure("unpacking commit \(commit) \(tar.summary)") }
    }
}

/// Bytes gathered from a command's output.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = Data()
    func append(_ data: Data) { lock.withLock { buffer.append(data) } }
    var data: Data { lock.withLock { buffer } }
}
