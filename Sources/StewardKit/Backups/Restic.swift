import Foundation

/// How one restic command reaches a repository from the host it runs on. Every command is an argv; on a remote host
/// the argv is quoted word by word for the login shell that sshd hands it to, and the password travels on stdin.
public struct ResticTarget: Sendable {
    /// Where restic runs: the plan's host.
    public var host: Host
    public var repository: BackupRepository
    /// The repository's host, for SFTP repositories.
    public var storageHost: Host?
    public var password: String
    public var identity: SSHIdentity
    /// restic's cache on the panel host (remote hosts use their own default).
    public var cacheDirectory: String

    public init(host: Host, repository: BackupRepository, storageHost: Host?, password: String, identity: SSHIdentity, cacheDirectory: String) {
        self.host = host
        self.repository = repository
        self.storageHost = storageHost
        self.password = password
        self.identity = identity
        self.cacheDirectory = cacheDirectory
    }

    /// The repository as restic names it.
    public var repositoryURL: String {
        switch repository.kind {
        case .local: repository.path
        case .sftp: "sftp:\(storageHost?.sshUser ?? "root")@\(storageHost?.address ?? "unknown"):\(repository.path)"
        }
    }

    /// The ssh command restic uses for an SFTP repository: Steward's key and its confirmed known_hosts only.
    var sftpCommand: String? {
        guard repository.kind == .sftp, let storage = storageHost else { return nil }
        return (["ssh"] + identity.sshOptions() + ["-p", String(storage.sshPort), "\(storage.sshUser)@\(storage.address)", "-s", "sftp"])
            .joined(separator: " ")
    }

    /// The restic argv for `arguments` (a subcommand and its flags), before any transport wrapping.
    func resticArguments(_ arguments: [String]) -> [String] {
        var argv = ["restic", "--repo", repositoryURL]
        if let sftp = sftpCommand { argv += ["--option", "sftp.command=\(sftp)"] }
        return argv + arguments
    }

    /// A command that runs restic with `arguments` on the plan's host.
    public func command(_ arguments: [String], timeout: Duration? = nil) -> ProcessCommand {
        let argv = resticArguments(arguments)
        if host.transport == .local {
            var environment = ResticTarget.baseEnvironment()
            environment["RESTIC_PASSWORD"] = password
            environment["RESTIC_CACHE_DIR"] = cacheDirectory
            var command = ProcessCommand(argv, environment: environment, timeout: timeout)
            // A repository being added has no id yet; its first commands run in the process that asks.
            if repository.id != 0 { command.panel = .restic(repository: repository.id, arguments: arguments) }
            return command
        }
        let remote = ["env", "RESTIC_PROGRESS_FPS=1", "RESTIC_PASSWORD_FILE=/dev/stdin"] + argv
        return ProcessCommand(remoteArgv(remote), environment: ResticTarget.baseEnvironment(), timeout: timeout, input: Data((password + "\n").utf8))
    }

    /// Any other argv on the plan's host (hooks, `du`), with the same transport and privileges as restic.
    public func plainCommand(_ argv: [String], environment extra: [String: String] = [:], timeout: Duration? = nil) -> ProcessCommand {
        if host.transport == .local {
            var environment = ResticTarget.baseEnvironment()
            environment.merge(extra) { _, new in new }
            return ProcessCommand(argv, environment: environment, timeout: timeout)
        }
        let prefix = extra.isEmpty ? [] : ["env"] + extra.keys.sorted().map { "\($0)=\(extra[$0]!)" }
        return ProcessCommand(remoteArgv(prefix + argv), environment: ResticTarget.baseEnvironment(), timeout: timeout)
    }

    func remoteArgv(_ argv: [String]) -> [String] {
        let privileged = host.become == .sudo ? ["sudo", "-n", "--"] + argv : argv
        return ["ssh"] + identity.sshOptions() + ["-p", String(host.sshPort), "\(host.sshUser)@\(host.address)", "--"]
            + [privileged.map(ResticTarget.shellQuote).joined(separator: " ")]
    }

    static func baseEnvironment() -> [String: String] {
        var environment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "RESTIC_PROGRESS_FPS": "1"]
        environment["HOME"] = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        return environment
    }

    /// One word for a POSIX shell: single-quoted, with embedded quotes closed, escaped and reopened. Nothing inside
    /// is ever interpreted, whatever the bytes.
    public static func shellQuote(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// One line of `restic backup --json`.
public enum ResticMessage: Equatable, Sendable {
    public struct Status: Equatable, Sendable {
        public var percent: Double
        public var totalFiles: Int64
        public var filesDone: Int64
        public var totalBytes: Int64
        public var bytesDone: Int64
        public var secondsRemaining: Int64?
    }
    public struct Summary: Equatable, Sendable {
        public var filesNew: Int64
        public var filesChanged: Int64
        public var filesUnmodified: Int64
        public var bytesAdded: Int64
        public var bytesProcessed: Int64
        public var duration: Double
        public var snapshotID: String
    }
    case status(Status)
    case summary(Summary)
    case error(String)
    /// Anything else restic printed: messages, warnings, or other JSON.
    case text(String)

    public static func parse(_ line: String) -> ResticMessage {
        guard line.first == "{", let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let type = object["message_type"] as? String
        else { return .text(line) }
        func int(_ key: String) -> Int64 { (object[key] as? NSNumber)?.int64Value ?? 0 }
        switch type {
        case "status":
            return .status(
                Status(
                    percent: (object["percent_done"] as? NSNumber)?.doubleValue ?? 0, totalFiles: int("total_files"), filesDone: int("files_done"),
                    totalBytes: int("total_bytes"), bytesDone: int("bytes_done"),
                    secondsRemaining: (object["seconds_remaining"] as? NSNumber)?.int64Value))
        case "summary":
            return .summary(
                Summary(
                    filesNew: int("files_new"), filesChanged: int("files_changed"), filesUnmodified: int("files_unmodified"),
                    bytesAdded: int("data_added"), bytesProcessed: int("total_bytes_processed"),
                    duration: (object["total_duration"] as? NSNumber)?.doubleValue ?? 0, snapshotID: object["snapshot_id"] as? String ?? ""))
        case "error":
            let error = (object["error"] as? [String: Any])?["message"] as? String ?? "\(object["error"] ?? "")"
            let item = object["item"] as? String ?? ""
            return .error(item.isEmpty ? error : "\(item): \(error)")
        default:
            return .text(line)
        }
    }

    /// The progress line a person reads: "42% · 1.2 GiB of 2.9 GiB · 1200 of 3000 files · about 2 min left".
    public static func progressText(_ status: Status) -> String {
        var parts = [
            "\(Int(status.percent * 100))%",
            "\(MetricUnit.bytes.format(Double(status.bytesDone))) of \(MetricUnit.bytes.format(Double(status.totalBytes)))",
            "\(status.filesDone) of \(status.totalFiles) files",
        ]
        if let left = status.secondsRemaining, left > 0 { parts.append("about \(DurationText.format(seconds: Double(left))) left") }
        return parts.joined(separator: " · ")
    }
}

/// What restic's stderr means, in words that say what to do.
public enum ResticDiagnosis {
    public static func explain(_ output: String, repository: String, host: String) -> String? {
        let lower = output.lowercased()
        if lower.contains("wrong password or no key found") {
            return
                "the password for repository \(repository) is wrong (restic: wrong password or no key found); enter the repository's password on its page"
        }
        if lower.contains("is there a repository at the following location") || lower.contains("unable to open config file") {
            return "there is no restic repository at \(repository) (seen from \(host)); check the path, or create the repository from Steward"
        }
        if lower.contains("no space left on device") {
            return "the disk holding repository \(repository) is full (no space left on device); free space there or forget and prune old snapshots"
        }
        if lower.contains("repository is already locked") {
            return "repository \(repository) is locked by another restic process that is still running; wait for it, or stop it on its host"
        }
        if lower.contains("restic: command not found") || lower.contains("restic: not found")
            || lower.contains("\"restic\": executable file not found")
        {
            return "restic is not installed on \(host); install Debian's restic package there"
        }
        if lower.contains("config file already exists") {
            return "a repository already exists at \(repository); import it instead (give its existing password)"
        }
        return nil
    }
}

/// Durations in words, the one formatter for every page and message: "45 s", "3 min", "2 h 5 min".
public enum DurationText {
    /// About how long, to the largest unit and the next: "45 s", "3 min", "2 h 5 min" (an estimate, a run time).
    public static func format(seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total < 60 { return "\(total) s" }
        if total < 3600 { return "\(total / 60) min" }
        let minutes = (total % 3600) / 60
        return minutes == 0 ? "\(total / 3600) h" : "\(total / 3600) h \(minutes) min"
    }

    /// Exactly, to the second, leaving out parts that are zero: "90 s" is "1 min 30 s", "5 min", "1 h 0 min 5 s" is
    /// "1 h 5 s" (a configured window, a query step, a job's duration).
    public static func exact(seconds: Int) -> String {
        if seconds == 0 { return "0 s" }
        let parts = [(seconds / 3600, "h"), (seconds % 3600 / 60, "min"), (seconds % 60, "s")]
        return parts.filter { $0.0 != 0 }.map { "\($0.0) \($0.1)" }.joined(separator: " ")
    }
}
