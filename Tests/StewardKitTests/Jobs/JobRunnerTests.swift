import Foundation
import GRDB
import ServiceLifecycle
import Testing

@testable import StewardKit

/// A running JobRunner over a temp database, stopped when the test ends.
final class RunnerHarness: Sendable {
    let directory = TemporaryDirectory()
    let database: DatabasePool
    let runner: JobRunner
    let loop: Task<Void, Never>

    init(handlers: [String: JobHandler], logCap: Int = 1 << 20, concurrency: Int = 2) throws {
        database = try makeDatabase(directory)
        runner = JobRunner(
            store: JobStore(database: database), events: JobEvents(), handlers: handlers,
            processes: LocalProcessRunner(terminationGrace: .seconds(2)), concurrency: concurrency, logCap: logCap,
            shutdownGrace: .seconds(1), logger: quietLogger)
        let runner = self.runner
        loop = Task { try? await runner.run() }
    }

    deinit { loop.cancel() }

    func start(_ kind: String, params: String = "{}") async throws -> Job {
        try await runner.enqueue(JobRequest(kind: kind, title: kind, params: params, startedBy: "test"))
    }

    /// A bound on waiting, not a speed check: with the whole suite running on two cores a job can wait its turn for long.
    func finished(_ id: Int64) async throws -> Job {
        let store = runner.store
        _ = try await waitUntil { try store.job(id: id)?.state.isFinished == true }
        return try #require(try store.job(id: id))
    }

    func log(_ id: Int64) throws -> String { try runner.store.logChunks(id: id).map(\.text).joined() }
}

/// A shell script in the temp dir that starts a tree of sleeping processes and records their pids.
func writeTreeScript(in directory: String) throws -> String {
    let script = directory + "/tree.sh"
    try """
    #!/bin/sh
    echo "tree starting"
    sleep 300 &
    echo $! > "$1/child"
    ( sleep 300 & echo $! > "$1/grandchild"; wait ) &
    echo $! > "$1/subshell"
    echo $$ > "$1/main"
    echo "tree ready"
    wait
    """.write(toFile: script, atomically: true, encoding: .utf8)
    return script
}

/// True when the process no longer exists (or is a zombie waiting for a reaper that is not ours).
func processIsGone(_ pid: pid_t) -> Bool {
    if kill(pid, 0) != 0 && errno == ESRCH { return true }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    let afterName = stat.split(separator: ")").last ?? ""
    return afterName.trimmingCharacters(in: .whitespaces).hasPrefix("Z")
}

@Suite("Job runner")
struct JobRunnerTests {
    @Test("a successful command's output lands in the log and the job succeeds")
    func success() async throws {
        let harness = try RunnerHarness(handlers: [
            "echo": { context in
                try await context.progress(50, "echoing")
                try await context.run(ProcessCommand(["echo", "hello from", "a job"]))
            }
        ])
        let job = try await harness.finished(try await harness.start("echo").id)
        #expect(job.state == .succeeded)
        #expect(job.progressPercent == 100)
        #expect(job.startedAt != nil && job.finishedAt != nil)
        let log = try harness.log(job.id)
        #expect(log.contains("$ echo 'hello from' 'a job'"))
        #expect(log.contains("hello from a job\n"))
    }

    @Test("a child inherits only stdin, stdout and stderr, not Steward's other descriptors (a listening socket among them)")
    func childrenInheritNoExtraDescriptors() async throws {
        // A descriptor without close-on-exec, as NIO's listening socket is.
        let leaked = open("/dev/null", O_RDONLY)
        defer { close(leaked) }
        #expect(fcntl(leaked, F_GETFD) & FD_CLOEXEC == 0)
        let collected = Collected()
        let outcome = try await LocalProcessRunner().run(ProcessCommand(["/bin/sh", "-c", "ls /proc/$$/fd"])) { await collected.add($0) }
        #expect(outcome.succeeded)
        let descriptors = String(decoding: await collected.data, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }.sorted()
        #expect(descriptors == [0, 1, 2])
    }

    @Test("a command that exits non-zero fails the job with a message that says so")
    func failure() async throws {
        let harness = try RunnerHarness(handlers: [
            "false": { context in try await context.run(ProcessCommand(["false"])) },
            "missing": { context in try await context.run(ProcessCommand(["steward-test-no-such-tool"])) },
        ])
        let failed = try await harness.finished(try await harness.start("false").id)
        #expect(failed.state == .failed)
        #expect(failed.error == "false exited with status 1")
        let missing = try await harness.finished(try await harness.start("missing").id)
        #expect(missing.state == .failed)
        #expect(missing.error?.contains("command not found: steward-test-no-such-tool") == true)
    }

    @Test("cancel stops the whole process tree of a running job")
    func cancelKillsTree() async throws {
        let pids = TemporaryDirectory()
        let script = try writeTreeScript(in: pids.path)
        let harness = try RunnerHarness(handlers: [
            "tree": { context in try await context.run(ProcessCommand(["/bin/sh", script, pids.path])) }
        ])
        let job = try await harness.start("tree")
        // waitUntil's bound is long: the whole suite starts at once on a loaded 2-core machine. If it is not ready, say what the job did.
        let ready = try await waitUntil {
            ["main", "child", "subshell", "grandchild"].allSatisfy { FileManager.default.fileExists(atPath: pids.path + "/" + $0) }
        }
        guard ready else {
            let now = try harness.runner.store.job(id: job.id)
            Issue.record("the tree never got ready: job \(String(describing: now?.state)) \(now?.error ?? ""), log: \(try harness.log(job.id))")
            return
        }
        let recorded = try ["main", "child", "subshell", "grandchild"].map { name -> pid_t in
            let text = try String(contentsOfFile: pids.path + "/" + name, encoding: .utf8)
            return pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))!
        }
        #expect(recorded.allSatisfy { !processIsGone($0) })
        let requested = try await harness.runner.cancel(id: job.id, by: AuditActor(actor: "tester"))
        #expect(requested?.cancelRequestedBy == "tester")
        let finished = try await harness.finished(job.id)
        #expect(finished.state == .cancelled)
        #expect(finished.error == "cancelled by tester")
        let allGone = try await waitUntil { recorded.allSatisfy(processIsGone) }
        #expect(allGone, "processes still alive: \(recorded.filter { !processIsGone($0) })")
    }

    @Test("a queued job can be cancelled before it starts")
    func cancelQueued() async throws {
        let gate = AsyncStream<Void>.makeStream()
        let harness = try RunnerHarness(
            handlers: ["block": { _ in for await _ in gate.stream { break } }, "noop": { _ in }], concurrency: 1)
        let blocker = try await harness.start("block")
        let queued = try await harness.start("noop")
        _ = try await waitUntil { try harness.runner.store.job(id: blocker.id)?.state == .running }
        let cancelled = try await harness.runner.cancel(id: queued.id, by: AuditActor(actor: "tester"))
        #expect(cancelled?.state == .cancelled)
        gate.continuation.yield()
        #expect(try await harness.finished(blocker.id).state == .succeeded)
        #expect(try harness.runner.store.job(id: queued.id)?.startedAt == nil)
    }

    @Test("concurrency is bounded: with one slot, the second job waits for the first")
    func boundedConcurrency() async throws {
        let gate = AsyncStream<Void>.makeStream()
        let harness = try RunnerHarness(handlers: ["block": { _ in for await _ in gate.stream { break } }], concurrency: 1)
        let first = try await harness.start("block")
        let second = try await harness.start("block")
        _ = try await waitUntil { try harness.runner.store.job(id: first.id)?.state == .running }
        try await Task.sleep(for: .milliseconds(200))
        #expect(try harness.runner.store.job(id: second.id)?.state == .queued)
        gate.continuation.yield()
        _ = try await harness.finished(first.id)
        _ = try await waitUntil { try harness.runner.store.job(id: second.id)?.state == .running }
        gate.continuation.yield()
        #expect(try await harness.finished(second.id).state == .succeeded)
    }

    @Test("output is stored in a few chunks, not a row per line")
    func chunkedLog() async throws {
        let harness = try RunnerHarness(handlers: [
            "chatty": { context in
                for line in 0..<20_000 { await context.log("line \(line) of the chatty job") }
            }
        ])
        let job = try await harness.finished(try await harness.start("chatty").id)
        let chunks = try harness.runner.store.logChunks(id: job.id)
        let text = chunks.map(\.text).joined()
        #expect(text.hasPrefix("line 0 of the chatty job\n"))
        #expect(text.hasSuffix("line 19999 of the chatty job\n"))
        #expect(text.split(separator: "\n").count == 20_000)
        #expect(chunks.count < 40, "20,000 lines became \(chunks.count) chunks")
        #expect(chunks.allSatisfy { $0.data.count <= 65536 })
        #expect(job.logBytes == Int64(text.utf8.count))
    }

    @Test("output beyond the cap is discarded with a marker, and the job still finishes")
    func logCap() async throws {
        let harness = try RunnerHarness(
            handlers: ["flood": { context in for _ in 0..<5000 { await context.log(String(repeating: "x", count: 99)) } }], logCap: 65536)
        let job = try await harness.finished(try await harness.start("flood").id)
        #expect(job.state == .succeeded)
        #expect(job.logTruncated)
        let log = try harness.log(job.id)
        #expect(log.contains("output truncated at the 65536-byte cap"))
        #expect(log.utf8.count < 65536 + 200)
    }

    @Test("a multi-byte character split across chunks still decodes")
    func utf8Boundary() {
        let text = Data(("ab" + "é").utf8)  // é is two bytes
        #expect(JobLogWriter.utf8Boundary(text, before: 3) == 2)
        #expect(JobLogWriter.utf8Boundary(text, before: 4) == 4)
        let euro = Data("€".utf8)  // three bytes
        #expect(JobLogWriter.utf8Boundary(euro, before: 2) == 0)
    }

    @Test("jobs left running by a previous process are marked interrupted at startup, with the reason")
    func startupRecovery() async throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        try await database.write { db in
            try db.execute(
                sql: "INSERT INTO jobs (kind, title, state, started_by, created_at, started_at) VALUES ('k', 'left over', 'running', 'test', 1, 1)")
            try db.execute(sql: "INSERT INTO jobs (kind, title, state, started_by, created_at) VALUES ('k', 'waiting', 'queued', 'test', 1)")
        }
        let runner = JobRunner(
            store: JobStore(database: database), events: JobEvents(), handlers: [:], concurrency: 1, logCap: 1 << 20,
            shutdownGrace: .seconds(1), logger: quietLogger)
        let ids = try await runner.recoverAfterRestart()
        #expect(ids == [1])
        let leftOver = try #require(try runner.store.job(id: 1))
        #expect(leftOver.state == .interrupted)
        #expect(leftOver.error?.contains("Steward stopped while this job was running") == true)
        #expect(leftOver.finishedAt != nil)
        #expect(try runner.store.job(id: 2)?.state == .queued)
    }

    @Test("at shutdown, jobs that outlast the grace period are interrupted")
    func shutdownInterrupts() async throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let runner = JobRunner(
            store: JobStore(database: database), events: JobEvents(),
            handlers: ["slow": { context in try await context.run(ProcessCommand(["sleep", "120"])) }], concurrency: 1, logCap: 1 << 20,
            shutdownGrace: .milliseconds(300), logger: quietLogger)
        let group = ServiceGroup(services: [runner], logger: quietLogger)
        let running = Task { try await group.run() }
        let job = try await runner.enqueue(JobRequest(kind: "slow", title: "slow", startedBy: "test"))
        _ = try await waitUntil { try runner.store.job(id: job.id)?.state == .running }
        await group.triggerGracefulShutdown()
        try await running.value
        let stopped = try #require(try runner.store.job(id: job.id))
        #expect(stopped.state == .interrupted)
        #expect(stopped.error?.contains("grace period") == true)
    }

    @Test("live viewers get the stored log, then new output, then the end")
    func liveFeed() async throws {
        let gate = AsyncStream<Void>.makeStream()
        let harness = try RunnerHarness(handlers: [
            "two-part": { context in
                await context.log("before")
                for await _ in gate.stream { break }
                await context.log("after")
            }
        ])
        let job = try await harness.start("two-part")
        _ = try await waitUntil { try harness.log(job.id).contains("before") }
        let feed = JobFeed(store: harness.runner.store, events: harness.runner.events)
        var texts: [String] = []
        var end: Job.State?
        gate.continuation.yield()
        for await event in feed.events(job: job.id, afterSeq: 0) {
            switch event {
            case .log(let chunk): texts.append(chunk.text)
            case .finished(let state): end = state
            case .progress: break
            }
        }
        #expect(texts.joined() == "before\nafter\n")
        #expect(end == .succeeded)
    }

    @Test("a viewer that joins after the end gets the log, the final progress, then the end")
    func lateViewer() async throws {
        let harness = try RunnerHarness(handlers: ["quick": { context in try await context.progress(100, "all done") }])
        let job = try await harness.finished(try await harness.start("quick").id)
        var events: [JobEvent] = []
        for await event in JobFeed(store: harness.runner.store, events: harness.runner.events).events(job: job.id, afterSeq: 0) {
            events.append(event)
        }
        #expect(events == [.progress(percent: 100, message: "all done"), .finished(.succeeded)])
    }

    @Test("a command past its timeout is killed with its children")
    func processTimeout() async throws {
        let pids = TemporaryDirectory()
        let script = try writeTreeScript(in: pids.path)
        let output = OutputCollector()
        let outcome = try await LocalProcessRunner(terminationGrace: .seconds(1))
            .run(ProcessCommand(["/bin/sh", script, pids.path], timeout: .milliseconds(500))) { await output.add($0) }
        #expect(outcome.timedOut)
        #expect(!outcome.succeeded)
        #expect(await output.text.contains("tree ready"))
        let child = pid_t(try String(contentsOfFile: pids.path + "/grandchild", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
        #expect(try await waitUntil { processIsGone(child) })
    }

    @Test("working directory and environment are passed as given, and argv is never a shell string")
    func argvAndEnvironment() async throws {
        let directory = TemporaryDirectory()
        let output = OutputCollector()
        let outcome = try await LocalProcessRunner().run(
            ProcessCommand(
                ["/usr/bin/env"], environment: ["STEWARD_TEST_VALUE": "$(id); `id`", "PATH": "/usr/bin:/bin"], workingDirectory: directory.path)
        ) { await output.add($0) }
        #expect(outcome.succeeded)
        #expect(await output.text.contains("STEWARD_TEST_VALUE=$(id); `id`"))
        let hostile = OutputCollector()
        _ = try await LocalProcessRunner().run(ProcessCommand(["echo", "x;id", "$(id)", "`id`", "&&", "-n"])) { await hostile.add($0) }
        #expect(await hostile.text == "x;id $(id) `id` && -n\n")
    }
}

actor OutputCollector {
    private var data = Data()
    func add(_ chunk: Data) { data.append(chunk) }
    var text: String { String(decoding: data, as: UTF8.self) }
}
