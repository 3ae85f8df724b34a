import Foundation
import Testing

@testable import StewardKit

@Suite("Job handlers: one per kind, or the server does not start")
struct JobHandlerSetTests {
    @Test("a second handler for a kind is refused with the kind named")
    func duplicateRefused() throws {
        var set = JobHandlerSet()
        try set.add("a.kind") { _ in }
        #expect(throws: JobHandlerSet.Duplicate.self) { try set.add("a.kind") { _ in } }
        #expect(throws: JobHandlerSet.Duplicate.self) { try set.add(contentsOf: ["b.kind": { _ in }, "a.kind": { _ in }]) }
        #expect(JobHandlerSet.Duplicate(kind: "a.kind").description.contains("a.kind"))
    }

    @Test("a server given a handler for a kind an area already handles refuses to start")
    func serverRefusesDuplicateKind() async throws {
        let directory = TemporaryDirectory()
        var configuration = StewardConfiguration(dataDirectory: directory.path + "/data")
        configuration.tls = false
        configuration.resourcesDirectory = repositoryRoot
        await #expect(throws: JobHandlerSet.Duplicate.self) {
            _ = try await StewardServer.build(
                configuration: configuration, logger: quietLogger, extraJobHandlers: [BackupStore.backupKind: { _ in }],
                groupsOf: { _ in [] }, accountStanding: { _ in .usable })
        }
    }
}

@Suite("A job's own audit row")
struct JobAuditTests {
    @Test("a request's audit row (an ad-hoc command, a restore) is written with the job, in the same transaction")
    func auditWithTheJob() throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        var request = JobRequest(kind: "engine.adhoc", title: "uptime", startedBy: "alice")
        request.audit = JobAudit(
            by: AuditActor(actor: "alice", source: "192.0.2.7"), action: "adhoc.run",
            after: ["command": .array([.string("uptime")]), "targets": .array([.string("web-01")])])
        let job = try JobStore(database: database).insert(request, now: Date())
        let events = try AuditLog.events(database, AuditFilter())
        let run = try #require(events.first { $0.action == "adhoc.run" })
        #expect(run.target == "job:\(job.id)" && run.actor == "alice" && run.source == "192.0.2.7")
        #expect(run.after?.contains("\"uptime\"") == true && run.after?.contains("web-01") == true, "\(String(describing: run.after))")
        #expect(events.contains { $0.action == "job.start" && $0.target == "job:\(job.id)" })
    }
}

@Suite("Short commands")
struct ShortCommandTests {
    /// A child that exits without reading its input (curl giving up on an SMTP server, say) closes the pipe: the
    /// write fails with EPIPE, and that must be the command's failure, not a trap that ends the server.
    @Test("input to a command that never reads it does not stop the process")
    func unreadInput() throws {
        signal(SIGPIPE, SIG_IGN)  // as `steward serve` does at start: a closed pipe is an error to handle, not a signal
        let result = try ShortCommand.run(["/bin/true"], timeout: 10, input: String(repeating: "x", count: 1 << 20))
        #expect(result.status == 0)
        let echoed = try ShortCommand.run(["/bin/cat"], timeout: 10, input: "hello\n")
        #expect(echoed.stdout == "hello\n")
    }
}
