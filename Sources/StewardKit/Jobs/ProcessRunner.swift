import CSpawn
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An external command: always an argv array, never a shell string.
public struct ProcessCommand: Sendable {
    public var argv: [String]
    /// Replaces the inherited environment when set; secrets belong here or in files, never in argv.
    public var environment: [String: String]?
    public var workingDirectory: String?
    public var timeout: Duration?
    /// Bytes fed to the command's standard input, which is then closed (a secret for a remote command, for example);
    /// nil connects it to /dev/null.
    public var input: Data?
    /// Send standard error to /dev/null instead of mixing it into the output (for binary output such as a file).
    public var discardStandardError = false
    /// Under privilege separation, what this command is to the root helper: a panel-host command the helper rebuilds
    /// from records. A runner without a helper ignores it and runs the argv.
    public var panel: PanelCommand?

    public init(
        _ argv: [String], environment: [String: String]? = nil, workingDirectory: String? = nil, timeout: Duration? = nil, input: Data? = nil
    ) {
        self.argv = argv
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.timeout = timeout
        self.input = input
    }
}

/// How a command ended.
public struct ProcessOutcome: Sendable, Equatable {
    public enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
    }
    public var termination: Termination
    public var timedOut = false
    public var cancelled = false
    public var succeeded: Bool { termination == .exited(0) && !timedOut && !cancelled }

    public var summary: String {
        if cancelled { return "was cancelled" }
        if timedOut { return "timed out" }
        switch termination {
        case .exited(let code): return "exited with status \(code)"
        case .signalled(let signal): return "was killed by signal \(signal)"
        }
    }
}

public enum ProcessRunnerError: Error, CustomStringConvertible, Equatable {
    case emptyCommand
    case notFound(String)
    case spawnFailed(String, String)

    public var description: String {
        switch self {
        case .emptyCommand: "no command given"
        case .notFound(let name): "command not found: \(name) (install it, or check PATH)"
        case .spawnFailed(let name, let reason): "could not start \(name): \(reason)"
        }
    }
}

/// Runs external commands; jobs use this so tests and remote transports can stand in for it.
public protocol ProcessRunning: Sendable {
    func run(_ command: ProcessCommand, output: @escaping @Sendable (Data) async -> Void) async throws -> ProcessOutcome
}

/// Runs a command on this machine in its own process group, so cancel and timeout end the whole tree.
public struct LocalProcessRunner: ProcessRunning {
    /// Time between SIGTERM and SIGKILL when a run is cancelled or times out.
    public var terminationGrace: Duration
    /// How long to keep reading after the main process exits, for output still held by its children.
    public var drainAfterExit: Duration

    public init(terminationGrace: Duration = .seconds(5), drainAfterExit: Duration = .seconds(2)) {
        self.terminationGrace = terminationGrace
        self.drainAfterExit = drainAfterExit
    }

    public func run(_ command: ProcessCommand, output: @escaping @Sendable (Data) async -> Void) async throws -> ProcessOutcome {
        guard let name = command.argv.first, !name.isEmpty else { throw ProcessRunnerError.emptyCommand }
        let environment = command.environment ?? ProcessInfo.processInfo.environment
        guard let executable = Self.resolve(name, path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin") else {
            throw ProcessRunnerError.notFound(name)
        }
        try Task.checkCancellation()
        let spawned = try Self.spawn(executable: executable, command: command, environment: environment)
        let group = ProcessGroup(id: spawned.pid, grace: terminationGrace)
        ProcessGroupRegistry.shared.started(spawned.pid)

        let (chunks, continuation) = AsyncStream<Data>.makeStream()
        let readFD = spawned.readFD
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
                if count > 0 {
                    continuation.yield(Data(buffer[0..<count]))
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            close(readFD)
            continuation.finish()
        }
        let exit = ExitWatcher(pid: spawned.pid)

        return await withTaskCancellationHandler {
            let timeoutTask = command.timeout.map { limit in
                Task {
                    try await Task.sleep(for: limit)
                    group.terminate(because: .timeout)
                }
            }
            let reader = Task {
                for await chunk in chunks { await output(chunk) }
            }
            let status = await exit.status()
            timeoutTask?.cancel()
            // Children that outlive the main process would hold the pipe open; give them a moment, then end them.
            let drained = Task {
                try await Task.sleep(for: drainAfterExit)
                group.killRemaining()
            }
            await reader.value
            drained.cancel()
            ProcessGroupRegistry.shared.ended(spawned.pid)
            var outcome = ProcessOutcome(termination: Self.termination(status))
            outcome.timedOut = group.reason == .timeout
            outcome.cancelled = group.reason == .cancel
            return outcome
        } onCancel: {
            group.terminate(because: .cancel)
        }
    }

    static func termination(_ status: Int32) -> ProcessOutcome.Termination {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    }

    /// Look the program up in PATH the way execvp would, but up front, so a missing tool gets a clear error.
    static func resolve(_ name: String, path: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    private static func spawn(executable: String, command: ProcessCommand, environment: [String: String]) throws -> (pid: pid_t, readFD: Int32) {
        var fds: [Int32] = [0, 0]
        guard steward_pipe_cloexec(&fds) == 0 else { throw ProcessRunnerError.spawnFailed(executable, String(cString: strerror(errno))) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var inputFDs: [Int32] = [-1, -1]
        if command.input != nil {
            guard steward_pipe_cloexec(&inputFDs) == 0 else {
                close(fds[0])
                close(fds[1])
                throw ProcessRunnerError.spawnFailed(executable, String(cString: strerror(errno)))
            }
            posix_spawn_file_actions_adddup2(&actions, inputFDs[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        if command.discardStandardError {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        } else {
            posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        }
        if let directory = command.workingDirectory { steward_spawn_add_chdir(&actions, directory) }
        // Only stdin, stdout and stderr reach the child. NIO's listening socket is not close-on-exec; a child that
        // outlived Steward would otherwise keep the port, and a restarted Steward could not bind it.
        steward_spawn_add_closefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = command.argv.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(fds[1])
        if inputFDs[0] >= 0 { close(inputFDs[0]) }
        guard result == 0 else {
            close(fds[0])
            if inputFDs[1] >= 0 { close(inputFDs[1]) }
            throw ProcessRunnerError.spawnFailed(executable, String(cString: strerror(result)))
        }
        if let input = command.input {
            // A child that exits without reading its input must give us EPIPE, not kill Steward with SIGPIPE.
            signal(SIGPIPE, SIG_IGN)
            // Written from a thread of its own: a child that reads slowly must not stall the caller.
            let writeFD = inputFDs[1]
            Thread.detachNewThread {
                input.withUnsafeBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let count = write(writeFD, bytes.baseAddress! + offset, bytes.count - offset)
                        if count > 0 {
                            offset += count
                        } else if count < 0 && errno == EINTR {
                            continue
                        } else {
                            break
                        }
                    }
                }
                close(writeFD)
            }
        }
        return (pid, fds[0])
    }
}

/// The process group of one run; signals go to the whole group, once, with SIGKILL after a grace period.
final class ProcessGroup: Sendable {
    enum Reason: Sendable { case cancel, timeout }
    private struct State {
        var reason: Reason?
    }
    let id: pid_t
    let grace: Duration
    /// The leader's start time, so a late signal never reaches a group that has ended and whose id the kernel has
    /// since given to another program (a new job's process among them).
    let leaderStart: UInt64?
    private let state = Mutex(State())

    init(id: pid_t, grace: Duration) {
        self.id = id
        self.grace = grace
        leaderStart = ProcessGroupRegistry.startTicks(id)
    }

    /// True while a process of this group, started no earlier than its leader, is still there.
    private var isStillOurs: Bool {
        guard let leaderStart else { return false }
        return ProcessGroupRegistry.members(of: id).contains { $0.start >= leaderStart }
    }

    var reason: Reason? { state.withLock { $0.reason } }

    func terminate(because reason: Reason) {
        let first = state.withLock { state -> Bool in
            guard state.reason == nil else { return false }
            state.reason = reason
            return true
        }
        guard first else { return }
        kill(-id, SIGTERM)
        let groupID = id
        let graceSeconds = Double(grace.components.seconds) + Double(grace.components.attoseconds) / 1e18
        DispatchQueue.global().asyncAfter(deadline: .now() + graceSeconds) { [self] in
            if isStillOurs { kill(-groupID, SIGKILL) }
        }
    }

    func killRemaining() {
        if isStillOurs { kill(-id, SIGKILL) }
    }
}

/// Waits for a child on a dedicated thread, so the cooperative pool is never blocked in waitpid.
struct ExitWatcher: Sendable {
    let pid: pid_t

    func status() async -> Int32 {
        await withCheckedContinuation { continuation in
            let pid = self.pid
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                continuation.resume(returning: status)
            }
        }
    }
}
