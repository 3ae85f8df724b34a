import Foundation
import GRDB
import Testing

@testable import StewardKit

@Suite("Areas: one owner per job kind, navigation entry and data class, or the server does not start")
struct AreaAssemblyTests {
    static func area(_ name: String, jobs: [String], navigation: [String] = [], classes: [DataClass] = []) -> StewardArea {
        StewardArea(
            name: name, jobs: Dictionary(uniqueKeysWithValues: jobs.map { ($0, { _ in } as JobHandler) }),
            navigation: navigation.enumerated().map {
                .init(position: $0.offset, item: NavigationItem(key: $0.element, title: $0.element, href: "/"))
            },
            dataClasses: classes)
    }

    @Test("a second handler for a kind is refused with the kind and both areas named")
    func duplicateRefused() throws {
        let everything = Self.area("keeper", jobs: [], classes: DataClass.allCases)
        let assembled = try AreaAssembly([everything, Self.area("first", jobs: ["a.kind"]), Self.area("second", jobs: ["b.kind"])])
        #expect(Set(assembled.handlers.keys) == ["a.kind", "b.kind"])
        #expect(throws: AreaClash.self) {
            try AreaAssembly([everything, Self.area("first", jobs: ["a.kind"]), Self.area("second", jobs: ["a.kind"])])
        }
        #expect(throws: AreaClash.self) { try AreaAssembly([everything, Self.area("first", jobs: ["a.kind"])], extraJobs: ["a.kind": { _ in }]) }
        do {
            _ = try AreaAssembly([everything, Self.area("first", jobs: ["b.kind", "a.kind"]), Self.area("second", jobs: ["a.kind"])])
            Issue.record("a duplicate kind was accepted")
        } catch let clash as AreaClash {
            #expect(clash.description.contains("a.kind") && clash.description.contains("first") && clash.description.contains("second"))
        }
    }

    @Test("a navigation entry or a data class claimed twice, or a data class nobody keeps, is refused")
    func navigationAndClasses() throws {
        let everything = Self.area("keeper", jobs: [], classes: DataClass.allCases)
        #expect(throws: AreaClash.self) {
            try AreaAssembly([everything, Self.area("a", jobs: [], navigation: ["hosts"]), Self.area("b", jobs: [], navigation: ["hosts"])])
        }
        #expect(throws: AreaClash.self) { try AreaAssembly([everything, Self.area("b", jobs: [], classes: [.metrics])]) }
        do {
            _ = try AreaAssembly([Self.area("a", jobs: [], classes: DataClass.allCases.filter { $0 != .audit })])
            Issue.record("an unclaimed data class was accepted")
        } catch let clash as AreaClash {
            #expect(clash.description.contains("audit"))
        }
        // The bar follows the positions the areas give, not the order they are listed in.
        let ordered = try AreaAssembly([
            everything,
            StewardArea(name: "late", navigation: [.init(position: 20, item: NavigationItem(key: "late", title: "Late", href: "/late"))]),
            StewardArea(name: "early", navigation: [.init(position: 10, item: NavigationItem(key: "early", title: "Early", href: "/early"))]),
        ])
        #expect(ordered.navigation.map(\.key) == ["early", "late"])
    }

    @Test("every data class is described by exactly one area's retention definition, with tables that exist")
    func everyClassDefinedOnce() async throws {
        let classes = RetentionClassDefinition.all.map(\.dataClass)
        #expect(classes.count == DataClass.allCases.count && Set(classes) == Set(DataClass.allCases))
        let harness = try await ServerHarness()
        let tables = try await harness.server.database.read { db in
            Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_schema WHERE type = 'table'"))
        }
        for definition in RetentionClassDefinition.all {
            #expect(Set(definition.tables + [definition.counted.table]).isSubset(of: tables), "\(definition.dataClass.rawValue)")
            #expect(definition.kinds.contains(definition.defaults.kind) && definition.defaults.problems(for: definition.dataClass).isEmpty)
        }
    }

    @Test("a server given a handler for a kind an area already handles refuses to start")
    func serverRefusesDuplicateKind() async throws {
        let directory = TemporaryDirectory()
        var configuration = StewardConfiguration(dataDirectory: directory.path + "/data")
        configuration.tls = false
        configuration.resourcesDirectory = repositoryRoot
        await #expect(throws: AreaClash.self) {
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
