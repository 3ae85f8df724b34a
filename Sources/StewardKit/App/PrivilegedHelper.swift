import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The privilege split (SECURITY.md, "Processes"): `steward serve` started as root keeps this small helper, and the
/// network-facing server runs as the `steward` system user. The two talk over a socket pair in length-prefixed JSON
/// messages, and the helper accepts only this closed set of typed requests: never a shell string, never an argv.
public enum HelperRequest: Codable, Sendable, Equatable {
    /// A PAM transaction (authenticate, then the account stage) against the configured service.
    case authenticate(user: String, password: String, remoteHost: String?)
    /// Whether an account still exists, is unlocked, unexpired and owes no password change (reads shadow).
    case standing(user: String)
    /// A running job's playbook on the panel host itself, at the commit the job recorded (`PanelPlaybook`).
    case panelPlaybook(job: Int64, run: PlaybookRun)
    /// Stop the panel-host part of a job.
    case cancel(job: Int64)
    /// restic, a hook or a probe on the panel host (`PanelCommand`), rebuilt by the helper from records.
    case panelCommand(PanelCommand)
    /// Stop the panel command started by the request with this id.
    case cancelRequest(id: UInt64)
}

public enum HelperReply: Codable, Sendable, Equatable {
    case authenticated(user: String)
    case refused(kind: String, detail: String, messages: [String])
    case standing(String)
    case failed(String)
    /// A chunk of a running command's output, and of its callback events; more replies follow for the same request.
    case output(Data)
    case events(Data)
    case exited(code: Int32, signal: Int32, timedOut: Bool, cancelled: Bool)
}

/// One framed message: a 4-byte big-endian length, then that many bytes of JSON. Messages are capped at 1 MiB.
struct HelperEnvelope<Body: Codable & Sendable>: Codable, Sendable {
    var id: UInt64
    var body: Body
}

enum HelperWire {
    static let maximumMessage = 1 << 20

    static func write<Body: Codable>(_ envelope: HelperEnvelope<Body>, to descriptor: Int32) throws {
        let payload = try JSONEncoder().encode(envelope)
        var length = UInt32(payload.count).bigEndian
        var frame = Data(bytes: &length, count: 4)
        frame.append(payload)
        try frame.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw HelperError.closed("write: \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
    }

    /// The next message, or nil at end of stream.
    static func read<Body: Codable>(_ type: Body.Type, from descriptor: Int32) throws -> HelperEnvelope<Body>? {
        guard let header = try readExactly(4, from: descriptor) else { return nil }
        let length = header.withUnsafeBytes { Int(UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self))) }
        guard length <= maximumMessage else { throw HelperError.closed("a message of \(length) bytes is over the 1 MiB limit") }
        guard let payload = try readExactly(length, from: descriptor) else { throw HelperError.closed("the stream ended inside a message") }
        return try JSONDecoder().decode(HelperEnvelope<Body>.self, from: payload)
    }

    static func readExactly(_ count: Int, from descriptor: Int32) throws -> Data? {
        var data = Data(count: count)
        var offset = 0
        while offset < count {
            let got = data.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + offset, count - offset) }
            if got < 0, errno == EINTR { continue }
            if got < 0 { throw HelperError.closed("read: \(String(cString: strerror(errno)))") }
            if got == 0 { return nil }
            offset += got
        }
        return data
    }
}

public enum HelperError: Error, CustomStringConvertible {
    case closed(String)
    public var description: String {
        switch self {
        case .closed(let why): "the privileged helper is gone (\(why)); restart steward"
        }
    }
}

/// The root side: answers the web process's requests until it closes the socket. Each request runs on a thread
/// of its own (PAM blocks), and every answer names the request it answers.
public final class PrivilegedHelper: Sendable {
    let descriptor: Int32
    let authenticator: PAMAuthenticator
    let panel: PanelPlaybook
    let commands: PanelCommandRunner
    let logger: Logger
    /// Panel-host runs in progress, by job, so a cancel can reach them.
    let running = Mutex<[Int64: Task<Void, Never>]>([:])
    /// Panel commands in progress, by the id of the request that started them.
    let commandsRunning = Mutex<[UInt64: Task<Void, Never>]>([:])
    let writing = Mutex(())

    public init(descriptor: Int32, pamService: String, dataDirectory: DataDirectory, logger: Logger) {
        self.descriptor = descriptor
        self.authenticator = PAMAuthenticator(service: pamService)
        self.panel = PanelPlaybook(dataDirectory: dataDirectory)
        self.commands = PanelCommandRunner(dataDirectory: dataDirectory)
        self.logger = logger
    }

    func send(_ reply: HelperReply, to id: UInt64) {
        writing.withLock { _ in try? HelperWire.write(HelperEnvelope(id: id, body: reply), to: descriptor) }
    }

    /// Serve until the other side closes; returns then.
    public func serve() {
        while true {
            let envelope: HelperEnvelope<HelperRequest>?
            do {
                envelope = try HelperWire.read(HelperRequest.self, from: descriptor)
            } catch {
                logger.error("privileged helper: unreadable request; closing", metadata: ["error": "\(error)"])
                return
            }
            guard let envelope else { return }
            switch envelope.body {
            case .panelPlaybook(let job, let run):
                startPanelPlaybook(job: job, run: run, id: envelope.id)
            case .cancel(let job):
                running.withLock { $0[job] }?.cancel()
                send(.exited(code: 0, signal: 0, timedOut: false, cancelled: true), to: envelope.id)
            case .panelCommand(let command):
                startPanelCommand(command, id: envelope.id)
            case .cancelRequest(let id):
                commandsRunning.withLock { $0[id] }?.cancel()
                send(.exited(code: 0, signal: 0, timedOut: false, cancelled: true), to: envelope.id)
            default:
                let authenticator = self.authenticator
                let logger = self.logger
                Thread.detachNewThread { [self] in
                    send(Self.answer(envelope.body, authenticator: authenticator, logger: logger), to: envelope.id)
                }
            }
        }
    }

    func startPanelCommand(_ command: PanelCommand, id: UInt64) {
        // The helper's own line for every command it starts on the panel host (never a password).
        let what: String =
            switch command {
            case .restic(let repository, let arguments): "restic \(arguments.first ?? "") on repository \(repository)"
            case .hook(let plan, let phase, _): "the \(phase) hook of plan \(plan)"
            case .probe(let path): "a look into \(path)"
            }
        logger.notice("helper: running on the panel host", metadata: ["command": "\(what)"])
        let task = Task { [self] in
            do {
                let outcome = try await commands.run(command) { data in self.send(.output(data), to: id) }
                let (code, signal): (Int32, Int32) =
                    switch outcome.termination {
                    case .exited(let code): (code, 0)
                    case .signalled(let signal): (-1, signal)
                    }
                send(.exited(code: code, signal: signal, timedOut: outcome.timedOut, cancelled: outcome.cancelled), to: id)
            } catch {
                logger.warning("helper: panel command refused or failed", metadata: ["command": "\(what)", "error": "\(error)"])
                send(.failed("\(error)"), to: id)
            }
            _ = commandsRunning.withLock { $0.removeValue(forKey: id) }
        }
        commandsRunning.withLock { $0[id] = task }
    }

    func startPanelPlaybook(job: Int64, run: PlaybookRun, id: UInt64) {
        // The helper's own line for every command it starts on the panel host.
        logger.notice(
            "helper: running a playbook on the panel host",
            metadata: [
                "job": "\(job)", "playbook": "\(run.builtin.map { "builtin/" + $0 } ?? run.playbook)", "commit": "\(run.commit ?? "-")",
                "check": "\(run.check)",
            ])
        let task = Task { [self] in
            do {
                let outcome = try await panel.run(
                    job: job, run, output: { data in self.send(.output(data), to: id) }, events: { data in self.send(.events(data), to: id) })
                let (code, signal): (Int32, Int32) =
                    switch outcome.termination {
                    case .exited(let code): (code, 0)
                    case .signalled(let signal): (-1, signal)
                    }
                logger.notice("helper: panel-host playbook ended", metadata: ["job": "\(job)", "outcome": "\(outcome.summary)"])
                send(.exited(code: code, signal: signal, timedOut: outcome.timedOut, cancelled: outcome.cancelled), to: id)
            } catch {
                logger.warning("helper: panel-host playbook refused or failed", metadata: ["job": "\(job)", "error": "\(error)"])
                send(.failed("\(error)"), to: id)
            }
            _ = running.withLock { $0.removeValue(forKey: job) }
        }
        running.withLock { $0[job] = task }
    }

    static func answer(_ request: HelperRequest, authenticator: PAMAuthenticator, logger: Logger) -> HelperReply {
        switch request {
        case .authenticate(let user, let password, let remoteHost):
            // The helper's own line: who was checked, from where, and the outcome (never the password).
            let result = PAMAuthenticator.transaction(service: authenticator.service, user: user, password: password, remoteHost: remoteHost)
            switch result {
            case .success(let name):
                logger.info("helper: PAM accepted", metadata: ["user": "\(name)", "remote": "\(remoteHost ?? "-")"])
                return .authenticated(user: name)
            case .failure(let refusal):
                logger.info("helper: PAM refused", metadata: ["user": "\(user)", "remote": "\(remoteHost ?? "-")"])
                return refusal.helperReply
            }
        case .standing(let user):
            return .standing(AccountStanding.read(user: user).name)
        case .panelPlaybook, .cancel, .panelCommand, .cancelRequest:
            return .failed("not a one-answer request")
        }
    }
}

/// The web side's end of the socket: requests go out with an id, and a reader thread hands each reply to its
/// waiter. When the helper is gone every waiter fails, and so does every later request.
public final class HelperClient: Sendable {
    struct Waiter {
        var done: CheckedContinuation<HelperReply, any Error>
        var stream: (@Sendable (HelperReply) -> Void)?
    }
    let descriptor: Int32
    let state = Mutex<(next: UInt64, waiting: [UInt64: Waiter], closed: String?)>((1, [:], nil))
    let writing = Mutex(())
    let onClosed: @Sendable (String) -> Void

    /// `onClosed` runs once the helper is gone (it died, or was killed): the web process cannot work without it.
    public init(descriptor: Int32, onClosed: @escaping @Sendable (String) -> Void = { _ in }) {
        self.descriptor = descriptor
        self.onClosed = onClosed
        Thread.detachNewThread { [self] in readReplies() }
    }

    func readReplies() {
        var why = "the helper closed the socket"
        while true {
            do {
                guard let envelope = try HelperWire.read(HelperReply.self, from: descriptor) else { break }
                switch envelope.body {
                case .output, .events:
                    let stream = state.withLock { $0.waiting[envelope.id]?.stream }
                    stream?(envelope.body)
                default:
                    let waiter = state.withLock { $0.waiting.removeValue(forKey: envelope.id) }
                    waiter?.done.resume(returning: envelope.body)
                }
            } catch {
                why = "\(error)"
                break
            }
        }
        // No new request may start from here on. `onClosed` runs before the waiting requests fail: in the web process
        // it ends the process, so a job whose command ran through the helper is left running in the database and is
        // marked interrupted at the next start, rather than recorded as failed by a process that is going away.
        state.withLock { $0.closed = why }
        onClosed(why)
        let waiters = state.withLock { state in
            let all = state.waiting.values
            state.waiting = [:]
            return Array(all)
        }
        for waiter in waiters { waiter.done.resume(throwing: HelperError.closed(why)) }
    }

    public func ask(_ request: HelperRequest) async throws -> HelperReply {
        try await ask(request, stream: nil)
    }

    /// A request whose answer streams: `stream` gets every output and events reply, the return value the last one.
    func ask(
        _ request: HelperRequest, stream: (@Sendable (HelperReply) -> Void)?, started: (@Sendable (UInt64) -> Void)? = nil
    ) async throws -> HelperReply {
        try await withCheckedThrowingContinuation { continuation in
            let id: UInt64? = state.withLock { state in
                if state.closed != nil { return nil }
                let id = state.next
                state.next += 1
                state.waiting[id] = Waiter(done: continuation, stream: stream)
                return id
            }
            guard let id else {
                continuation.resume(throwing: HelperError.closed(state.withLock { $0.closed } ?? "closed"))
                return
            }
            started?(id)
            do {
                try writing.withLock { _ in try HelperWire.write(HelperEnvelope(id: id, body: request), to: descriptor) }
            } catch {
                if let waiter = state.withLock({ $0.waiting.removeValue(forKey: id) }) { waiter.done.resume(throwing: error) }
            }
        }
    }
}

extension HelperClient {
    /// A panel command through the helper, streamed like a local process; cancelling the task cancels it there.
    public func runPanelCommand(_ command: PanelCommand, output: @escaping @Sendable (Data) async -> Void) async throws -> ProcessOutcome {
        let (chunks, continuation) = AsyncStream<HelperReply>.makeStream()
        let relay = Task {
            for await reply in chunks { if case .output(let data) = reply { await output(data) } }
        }
        let started = Mutex<UInt64?>(nil)
        let final = try await withTaskCancellationHandler {
            try await ask(.panelCommand(command), stream: { reply in continuation.yield(reply) }, started: { id in started.withLock { $0 = id } })
        } onCancel: {
            if let id = started.withLock({ $0 }) { Task { _ = try? await self.ask(.cancelRequest(id: id)) } }
        }
        continuation.finish()
        await relay.value
        return try Self.outcome(final)
    }

    static func outcome(_ final: HelperReply) throws -> ProcessOutcome {
        switch final {
        case .exited(let code, let signal, let timedOut, let cancelled):
            var outcome = ProcessOutcome(termination: signal == 0 ? .exited(code) : .signalled(signal))
            outcome.timedOut = timedOut
            outcome.cancelled = cancelled
            return outcome
        case .failed(let why):
            throw JobFailure(why)
        default:
            throw JobFailure("the helper answered with something unexpected")
        }
    }
}

extension HelperClient: PanelPlaybookRunning {
    public func runOnPanel(
        job: Int64, run: PlaybookRun, output: @escaping @Sendable (Data) async -> Void, events: @escaping @Sendable (Data) async -> Void
    ) async throws -> ProcessOutcome {
        // Replies arrive on the reader thread in order; one task per run hands them on in that order.
        let (chunks, continuation) = AsyncStream<HelperReply>.makeStream()
        let relay = Task {
            for await reply in chunks {
                switch reply {
                case .output(let data): await output(data)
                case .events(let data): await events(data)
                default: break
                }
            }
        }
        let final = try await withTaskCancellationHandler {
            try await ask(.panelPlaybook(job: job, run: run)) { reply in continuation.yield(reply) }
        } onCancel: {
            Task { _ = try? await self.ask(.cancel(job: job)) }
        }
        continuation.finish()
        await relay.value
        return try Self.outcome(final)
    }
}

/// PAM through the helper, for the unprivileged web process (it cannot read /etc/shadow itself).
public struct HelperAuthenticator: PasswordAuthenticating {
    let client: HelperClient

    public init(client: HelperClient) { self.client = client }

    public func authenticate(user: String, password: String, remoteHost: String?) async -> Result<String, LoginRefusal> {
        do {
            switch try await client.ask(.authenticate(user: user, password: password, remoteHost: remoteHost)) {
            case .authenticated(let name): return .success(name)
            case .refused(let kind, let detail, let messages): return .failure(LoginRefusal(helperKind: kind, detail: detail, messages: messages))
            default: return .failure(.serviceFailure(detail: "the helper answered a PAM request with something else"))
            }
        } catch {
            return .failure(.serviceFailure(detail: "\(error)"))
        }
    }
}

extension LoginRefusal {
    var helperReply: HelperReply {
        switch self {
        case .invalidCredentials(let detail): .refused(kind: "invalid", detail: detail, messages: [])
        case .accountExpired: .refused(kind: "expired", detail: "", messages: [])
        case .passwordChangeRequired: .refused(kind: "change", detail: "", messages: [])
        case .accountNotPermitted(let detail, let messages): .refused(kind: "denied", detail: detail, messages: messages)
        case .serviceFailure(let detail): .refused(kind: "service", detail: detail, messages: [])
        }
    }

    init(helperKind: String, detail: String, messages: [String]) {
        switch helperKind {
        case "invalid": self = .invalidCredentials(detail: detail)
        case "expired": self = .accountExpired
        case "change": self = .passwordChangeRequired
        case "denied": self = .accountNotPermitted(detail: detail, pamMessages: messages)
        default: self = .serviceFailure(detail: detail)
        }
    }
}

extension AccountStanding {
    var name: String {
        switch self {
        case .usable: "usable"
        case .deleted: "deleted"
        case .locked: "locked"
        case .expired: "expired"
        case .passwordChangeRequired: "password_change_required"
        }
    }

    public init(name: String) {
        switch name {
        case "usable": self = .usable
        case "deleted": self = .deleted
        case "locked": self = .locked
        case "expired": self = .expired
        default: self = .passwordChangeRequired
        }
    }
}
