import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Audit log")
struct AuditLogTests {
    @Test("starting, cancelling and rescheduling each leave an entry with actor, source and before/after")
    func changesAreRecorded() async throws {
        let harness = try await ServerHarness()
        let database = harness.server.database
        let who = AuditActor(actor: "web:192.0.2.7", source: "192.0.2.7")
        let schedule = try #require(try harness.server.scheduler.store.schedule(named: "Database maintenance"))

        let firing = try #require(try await harness.server.scheduler.runNow(id: schedule.id, by: who))
        let jobID = try #require(firing.jobID)
        let started = try #require(try AuditLog.events(database, action: "job.start").first)
        #expect(started.target == "job:\(jobID)" && started.actor == "web:192.0.2.7" && started.source == "192.0.2.7")
        #expect(started.after?.contains(#""title":"Database maintenance""#) == true)

        _ = try await harness.server.jobs.cancel(id: jobID, by: who)
        let cancelled = try #require(try AuditLog.events(database, action: "job.cancel").first)
        #expect(cancelled.target == "job:\(jobID)")
        #expect(cancelled.before == #"{"state":"queued"}"#)
        #expect(cancelled.after == #"{"cancel_requested_by":"web:192.0.2.7"}"#)

        var settings = ScheduleSettings(cron: "0 4 * * *", timeZone: "UTC", jitterSeconds: 0, catchUp: .none, concurrency: .allow)
        settings.enabled = false
        _ = try harness.server.scheduler.store.update(id: schedule.id, settings: settings, now: Date(), by: who)
        let updated = try #require(try AuditLog.events(database, target: "schedule:\(schedule.id)").first)
        #expect(updated.action == "schedule.update")
        #expect(updated.before?.contains(#""cron":"17 3 * * *""#) == true && updated.before?.contains(#""enabled":true"#) == true)
        #expect(updated.after?.contains(#""cron":"0 4 * * *""#) == true && updated.after?.contains(#""enabled":false"#) == true)
        #expect(try AuditLog.events(database, actor: "web:192.0.2.7").count == 3)
    }

    @Test("entries cannot be changed or deleted")
    func appendOnly() throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        try database.write { db in try AuditLog.append(db, by: .system, action: "test.event", target: "thing:1", now: Date()) }
        #expect(throws: DatabaseError.self) { try database.write { db in try db.execute(sql: "UPDATE audit_events SET actor = 'someone else'") } }
        #expect(throws: DatabaseError.self) { try database.write { db in try db.execute(sql: "DELETE FROM audit_events") } }
        #expect(try AuditLog.events(database).map(\.actor) == ["system"])
    }

    @Test("a change through the HTTP API records the client address")
    func apiChangeRecordsAddress() async throws {
        let harness = try await ServerHarness()
        let schedule = try #require(try harness.server.scheduler.store.schedule(named: "Database maintenance"))
        try await harness.test { client in
            _ = try await client.execute(
                uri: "/api/v1/schedules/\(schedule.id)", method: .patch, headers: [.contentType: "application/json"],
                body: .init(string: #"{"enabled": false}"#))
        }
        let event = try #require(try AuditLog.events(harness.server.database, action: "schedule.update").first)
        #expect(event.actor == "tester-admin", "the signed-in user, not an address")
        #expect(event.requestID != nil, "tied to the request that made it")
        #expect(event.after?.contains(#""enabled":false"#) == true)
    }
}
