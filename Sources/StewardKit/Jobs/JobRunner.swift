import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The code that performs one kind of job.
public typealias JobHandler = @Sendable (JobContext) async throws -> Void

/// A job failure with a message meant for the person reading the job page.
public struct JobFailure: Error, CustomStringConvertible {
    public let message: String
    /// Refused before anything ran, because of how things are set up (a disabled host): a request answers 409, not 502.
    public var isConflict = false
    public init(_ message: String, conflict: Bool = false) {
        self.message = message
        isConflict = conflict
    }
    public var description: String { message }
}

/// What a running job can do: log, report progress, and run commands whose output lands in its log.
public struct JobContext: Sendable {
    public let job: Job
    let writer: JobLogWriter
    let store: JobStore
    let events: JobEvents
    public let processes: any ProcessRunning

    public func log(_ line: String) async {
        await writer.append(line.hasSuffix("\n") ? line : line + "\n")
    }

    public func progress(_ percent: Double?, _ message: String) async throws {
        try store.setProgress(id: job.id, percent: percent, message: message)
        events.publish(job: job.id, .progress(percent: percent, message: message))
    }

    /// Run a command with its output streamed into the job log; throws unless it exits 0.
    @discardableResult
    public func run(_ command: ProcessCommand) async throws -> ProcessOutcome {
        await log("$ " + command.argv.map(Self.quoteForDisplay).joined(separator: " "))
        let writer = self.writer
        let outcome = try await processes.run(command) { data in await writer.append(data) }
        if outcome.cancelled { throw CancellationError() }
        guard outcome.succeeded else { throw JobFailure("\(command.argv[0]) \(outcome.summary)") }
        return outcome
    }

    static func quoteForDisplay(_ argument: String) -> String {
        let plain = argument.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }
        return plain && !argument.isEmpty ? argument : "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// Runs queued jobs with bounded concurrency; a `Service` so shutdown can wait for, then interrupt, running work.
public actor JobRunner: Service {
    public nonisolated let store: JobStore
    public nonisolated let events: JobEvents
    let handlers: [String: JobHandler]
    let processes: any ProcessRunning
    let concurrency: Int
    let logCap: Int
    let shutdownGrace: Duration
    let logger: Logger
    private var running: [Int64: Task<Void, Never>] = [:]
    private var interruptReasons: [Int64: String] = [:]
    private var wake: AsyncStream<Void>.Continuation?
    private var accepting = true
    /// Set by a second SIGTERM/SIGINT: the operator will not wait for the grace period.
    private var hurried = false

    public init(
        store: JobStore, events: JobEvents, handlers: [String: JobHandler], processes: any ProcessRunning = LocalProcessRunner(),
        concurrency: Int, logCap: Int, shutdownGrace: Duration, logger: Logger
    ) {
        self.store = store
        self.events = events
        self.handlers = handlers
        self.processes = processes
        self.concurrency = concurrency
        self.logCap = logCap
        self.shutdownGrace = shutdownGrace
        self.logger = logger
    }

    public nonisolated var kinds: [String] { handlers.keys.sorted() }

    /// Mark jobs that a previous process left running as interrupted; call once before serving.
    public func recoverAfterRestart(now: Date = Date()) throws -> [Int64] {
        let ids = try store.interruptLeftovers(
            reason:
                "interrupted: Steward stopped while this job was running (found at startup \(RFC3339.string(now))); start it again if it is still needed",
            now: now)
        if !ids.isEmpty { logger.warning("marked jobs left running as interrupted", metadata: ["jobs": "\(ids)"]) }
        return ids
    }

    public func enqueue(_ request: JobRequest) throws -> Job {
        guard handlers[request.kind] != nil else {
            throw JobFailure("unknown job kind \(request.kind); known kinds: \(kinds.joined(separator: ", "))")
        }
        let job = try store.insert(request, now: Date())
        logger.info("job queued", metadata: ["job": "\(job.id)", "kind": "\(job.kind)", "by": "\(job.startedBy)"])
        wake?.yield()
        return job
    }

    /// Cancel a queued or running job. Running jobs stop when their process group is gone.
    @discardableResult
    public func cancel(id: Int64, by who: AuditActor) throws -> Job? {
        guard let job = try store.job(id: id) else { return nil }
        switch job.state {
        case .queued:
            try store.markCancelRequested(id: id, by: who, now: Date())
            if try store.finish(id: id, state: .cancelled, error: "cancelled by \(who.actor) before it started", now: Date()) {
                events.publish(job: id, .finished(.cancelled))
            }
        case .running:
            try store.markCancelRequested(id: id, by: who, now: Date())
            running[id]?.cancel()
        default: break
        }
        return try store.job(id: id)
    }

    public func run() async throws {
        let (signals, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        continuation.yield()
        await withGracefulShutdownHandler {
            for await _ in signals {
                guard accepting else { break }
                startQueued()
            }
        } onGracefulShutdown: {
            Task { await self.beginShutdown() }
        }
        await drain()
    }

    /// End the shutdown grace period now: running jobs are interrupted at once.
    public func hurry() {
        hurried = true
    }

    private func beginShutdown() {
        accepting = false
        wake?.finish()
    }

    /// Give running jobs the grace period, then interrupt what is left.
    private func drain() async {
        guard !running.isEmpty else { return }
        logger.notice("waiting for running jobs before shutdown", metadata: ["jobs": "\(running.keys.sorted())", "grace": "\(shutdownGrace)"])
        let deadline = ContinuousClock.now + shutdownGrace
        while !running.isEmpty && ContinuousClock.now < deadline && !hurried {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for (id, task) in running {
            interruptReasons[id] =
                hurried
                ? "interrupted: Steward was told twice to stop, which ends the grace period at once"
                : "interrupted: Steward shut down and the job did not finish within the \(shutdownGrace) grace period"
            task.cancel()
        }
        while !running.isEmpty { try? await Task.sleep(for: .milliseconds(20)) }
    }

    private func startQueued() {
        guard accepting, running.count < concurrency else { return }
        let ids: [Int64]
        do {
            ids = try store.nextQueuedIDs(excluding: Set(running.keys), limit: concurrency - running.count)
        } catch {
            logger.error("cannot read the job queue", metadata: ["error": "\(error)"])
            return
        }
        for id in ids where running.count < concurrency {
            guard let job = try? store.claim(id: id, now: Date()) else { continue }
            running[id] = Task { await self.execute(job) }
        }
    }

    private func execute(_ job: Job) async {
        let writer = JobLogWriter(jobID: job.id, store: store, events: events, cap: logCap)
        await writer.start()
        let context = JobContext(job: job, writer: writer, store: store, events: events, processes: processes)
        var state = Job.State.succeeded
        var errorText: String?
        if let handler = handlers[job.kind] {
            do {
                try await handler(context)
                if Task.isCancelled { state = .cancelled }
            } catch is CancellationError {
                state = .cancelled
            } catch {
                state = .failed
                errorText = String(describing: error)
                await context.log("error: \(errorText!)")
            }
        } else {
            state = .failed
            errorText = "no handler for job kind \(job.kind) in this Steward version"
        }
        if state == .cancelled, let reason = interruptReasons.removeValue(forKey: job.id) {
            state = .interrupted
            errorText = reason
        } else if state == .cancelled {
            let by = (try? store.job(id: job.id))?.cancelRequestedBy ?? "system"
            errorText = "cancelled by \(by)"
        }
        await writer.close()
        do {
            try store.finish(id: job.id, state: state, error: errorText, now: Date())
        } catch {
            logger.error("cannot record job outcome", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
        logger.info("job finished", metadata: ["job": "\(job.id)", "kind": "\(job.kind)", "state": "\(state.rawValue)"])
        events.publish(job: job.id, .finished(state))
        running[job.id] = nil
        wake?.yield()
    }
}
