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
