import Foundation
import GRDB

/// A command on the panel host itself that needs root, as the web process asks the root helper for it under
/// privilege separation: restic on a repository Steward knows, with a subcommand and arguments from Steward's own
/// closed grammar (`ResticGrammar`); a plan's hook by plan and phase; a look into a restore target. The helper builds
/// the argv, the repository location and the password itself, from the database.
public enum PanelCommand: Codable, Sendable, Equatable {
    case restic(repository: Int64, arguments: [String])
    case hook(plan: Int64, phase: String, result: String?)
    case probe(path: String)
}

/// The restic subcommands and flags Steward uses, and nothing else: no --password-command, no --option (an
/// sftp.command runs any program), no --repo (the helper names the repository), no files read from elsewhere.
public enum ResticGrammar {
    /// Flags that stand alone, by subcommand.
    static let switches: [String: Set<String>] = [
        "backup": ["--json"], "unlock": [], "check": ["--json"], "forget": ["--json", "--prune", "--dry-run", "--no-lock"],
        "restore": ["--verify"], "snapshots": ["--json", "--no-lock"], "ls": ["--json", "--no-lock"], "dump": ["--no-lock"],
        "stats": ["--json", "--no-lock"], "init": [],
    ]
    /// Flags that take a value, and the check each value must pass (nil when it may be used).
    static let options: [String: @Sendable (String) -> String?] = [
        "--tag": { BackupGrammarValues.tag($0) }, "--host": { HostValidation.name($0) }, "--exclude": { BackupPaths.excludeProblem($0) },
        "--group-by": { $0 == "tags" ? nil : "only --group-by tags" }, "--read-data-subset": { BackupService.isSubset($0) ? nil : "not a subset" },
        "--mode": { $0 == "raw-data" ? nil : "only --mode raw-data" }, "--target": { BackupPaths.problem($0) },
        "--include": { BackupPaths.problem($0) }, "--keep-last": BackupGrammarValues.count, "--keep-hourly": BackupGrammarValues.count,
        "--keep-daily": BackupGrammarValues.count, "--keep-weekly": BackupGrammarValues.count, "--keep-monthly": BackupGrammarValues.count,
        "--keep-yearly": BackupGrammarValues.count, "--keep-within": { RetentionPolicy.isDuration($0) ? nil : "not a duration" },
    ]
    static let optionsBySubcommand: [String: Set<String>] = [
        "backup": ["--tag", "--host", "--exclude"], "check": ["--read-data-subset"],
        "forget": ["--tag", "--group-by", "--keep-last", "--keep-hourly", "--keep-daily", "--keep-weekly", "--keep-monthly", "--keep-yearly",
            "--keep-within"],
        "restore": ["--target", "--include"], "snapshots": ["--tag"], "stats": ["--mode"],
    ]
    /// Positional arguments: how many, and what each is.
    static let positionals: [String: [@Sendable (String) -> String?]] = [
        "restore": [BackupService.snapshotProblem], "ls": [BackupService.snapshotProblem, { BackupPaths.problem($0) }],
        "dump": [BackupService.snapshotProblem, { BackupPaths.problem($0) }],
    ]

    /// What is wrong with `arguments`, or nil when Steward could have written them.
    public static func problem(_ arguments: [String]) -> String? {
        guard let subcommand = arguments.first, let allowedSwitches = switches[subcommand] else {
            return "restic \(arguments.first ?? "(nothing)") is not a subcommand Steward runs"
        }
        let allowedOptions = optionsBySubcommand[subcommand] ?? []
        var positional: [String] = []
        var index = 1
        while index < arguments.count {
            let word = arguments[index]
            if word.contains("\0") { return "an argument contains a NUL byte" }
            if subcommand == "backup", word == "--" {
                let paths = arguments[(index + 1)...]
                if paths.isEmpty { return "backup names no path" }
                return paths.lazy.compactMap { BackupPaths.problem($0) }.first
            }
            if allowedSwitches.contains(word) {
                index += 1
            } else if allowedOptions.contains(word), let check = options[word] {
                guard index + 1 < arguments.count else { return "\(word) needs a value" }
                if let problem = check(arguments[index + 1]) { return "\(word): \(problem)" }
                index += 2
            } else if word.hasPrefix("-") {
                return "restic \(subcommand) \(word) is not a flag Steward uses"
            } else {
                positional.append(word)
                index += 1
            }
        }
        var expected = positionals[subcommand] ?? []
        // `ls SNAPSHOT` lists a whole snapshot; `ls SNAPSHOT DIR` one directory.
        if subcommand == "ls", positional.count == 1 { expected = Array(expected.prefix(1)) }
        guard positional.count == expected.count else { return "restic \(subcommand) takes \(expected.count) positional argument(s)" }
        for (value, check) in zip(positional, expected) { if let problem = check(value) { return problem } }
        return subcommand == "backup" ? "backup names no path (after --)" : nil
    }
}

enum BackupGrammarValues {
    static func tag(_ text: String) -> String? {
        text.hasPrefix("steward-plan-") && Int64(text.dropFirst("steward-plan-".count)) != nil ? nil : "not a Steward plan tag"
    }

    static func count(_ text: String) -> String? {
        Int(text).map { $0 >= 0 ? nil : "negative" } ?? "not a number"
    }
}

/// The root helper's side of `PanelCommand`: everything the command needs comes from the database and the data
/// directory, read as root; the request only says which record and which of Steward's own commands.
public struct PanelCommandRunner: Sendable {
    public let dataDirectory: DataDirectory
    let runner = LocalProcessRunner()
    /// restic's cache for the helper's runs: root's own, outside the directory the web process writes.
    static let cacheDirectory = "/var/cache/steward-helper/restic"

    public init(dataDirectory: DataDirectory) { self.dataDirectory = dataDirectory }

    /// What is wrong with the request in itself, before any record is read.
    public static func refusal(_ command: PanelCommand) -> String? {
        switch command {
        case .restic(_, let arguments): ResticGrammar.problem(arguments)
        case .hook(_, let phase, let result):
            ["pre", "post"].contains(phase) && (result == nil || ["succeeded", "failed"].contains(result!)) ? nil : "not a hook phase"
        case .probe(let path): BackupPaths.problem(path)
        }
    }

    public func run(_ command: PanelCommand, output: @escaping @Sendable (Data) async -> Void) async throws -> ProcessOutcome {
        if let refusal = Self.refusal(command) { throw JobFailure("the helper refused: \(refusal)") }
        var configuration = Configuration()
        configuration.readonly = true
        let database = try DatabasePool(path: dataDirectory.databasePath, configuration: configuration)
        let store = BackupStore(
            database: database, sealer: SecretSealer(masterKey: try dataDirectory.secretKey(), purpose: "steward backup repository password"))
        let hosts = HostStore(database: database)
        guard let panel = try hosts.all().first(where: { $0.transport == .local }), panel.enabled else {
            throw JobFailure("the panel host is disabled, or not enrolled")
        }
        var process: ProcessCommand
        switch command {
        case .restic(let repositoryID, let arguments):
            guard let repository = try store.repository(id: repositoryID) else { throw JobFailure("repository \(repositoryID) does not exist") }
            let storage = repository.kind == .sftp ? try hosts.host(id: repository.hostID) : nil
            guard repository.kind == .sftp || repository.hostID == panel.id else {
                throw JobFailure("repository \(repository.name) is not on the panel host")
            }
            try FileManager.default.createDirectory(
                atPath: Self.cacheDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let target = ResticTarget(
                host: panel, repository: repository, storageHost: storage, password: try store.password(of: repository),
                identity: SSHIdentity(dataDirectory: dataDirectory), cacheDirectory: Self.cacheDirectory)
            process = target.command(arguments, timeout: .seconds(24 * 3600))
            // A file's bytes go to the caller as they are; restic's messages would corrupt them.
            process.discardStandardError = arguments.first == "dump"
        case .hook(let planID, let phase, let result):
            guard let plan = try store.plan(id: planID), plan.hostID == panel.id else { throw JobFailure("plan \(planID) is not on the panel host") }
            guard let name = (phase == "pre" ? plan.preHook : plan.postHook).first, BackupService.isHookName(name) else {
                throw JobFailure("plan \(plan.name) has no \(phase) hook")
            }
            let script = try Self.readNoFollow(dataDirectory.path + "/config/" + BackupService.hooksFolder + name)
            var environment: [String: String] = [:]
            if let result, ["succeeded", "failed"].contains(result) { environment["STEWARD_BACKUP_RESULT"] = result }
            let base = ResticTarget.baseEnvironment()
            let make: @Sendable ([String], [String: String]) -> ProcessCommand = { (argv: [String], extra: [String: String]) -> ProcessCommand in
                var merged: [String: String] = base
                for (key, value) in extra { merged[key] = value }
                return ProcessCommand(argv, environment: merged, timeout: Duration.seconds(3600))
            }
            let steps = HookScript(text: String(decoding: script, as: UTF8.self), make: make)
            return try await steps.run(environment: environment, runner: runner, streamed: output)
        case .probe(let path):
            process = ProcessCommand(
                ["find", path, "-mindepth", "1", "-maxdepth", "1", "-print", "-quit"], environment: ResticTarget.baseEnvironment(),
                timeout: .seconds(60))
        }
        process.panel = nil
        return try await runner.run(process, output: output)
    }

    /// A file's bytes, refusing a symbolic link in its last component (the web process owns the directory).
    static func readNoFollow(_ path: String) throws -> Data {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw JobFailure("cannot read \(path): \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        let data = handle.readDataToEndOfFile()
        guard data.count <= 1 << 20 else { throw JobFailure("\(path) is over 1 MiB") }
        return data
    }
}

/// The web process's runner under privilege separation: commands marked for the panel host go to the root helper
/// as typed requests; every other command runs here, unprivileged.
public struct PanelAwareRunner: ProcessRunning {
    let local: LocalProcessRunner
    let helper: HelperClient

    public init(local: LocalProcessRunner = LocalProcessRunner(), helper: HelperClient) {
        self.local = local
        self.helper = helper
    }

    public func run(_ command: ProcessCommand, output: @escaping @Sendable (Data) async -> Void) async throws -> ProcessOutcome {
        guard let panel = command.panel else { return try await local.run(command, output: output) }
        return try await helper.runPanelCommand(panel, output: output)
    }
}
