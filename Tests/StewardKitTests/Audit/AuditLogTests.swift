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

    @Test("the page shows epoch-millisecond times in before/after as page times, keeping the stored value")
    func pageShowsTimes() async throws {
        let harness = try await ServerHarness()
        try await harness.server.database.write { db in
            try AuditLog.append(
                db, by: .system, action: "test.times", target: "thing:1",
                before: ["expires_at": "1796520000000", "window_seconds": 1_796_520_000_000 as Int64],
                after: ["ends_at": 1_796_520_000_000 as Int64, "created_at": 1_796_520_000 as Int64, "title": "next_fire_at"], now: Date())
        }
        let stored = try #require(try AuditLog.events(harness.server.database, action: "test.times").first)
        #expect(stored.before == #"{"expires_at":"1796520000000","window_seconds":1796520000000}"#, "the stored row is unchanged")
        #expect(stored.after == #"{"created_at":1796520000,"ends_at":1796520000000,"title":"next_fire_at"}"#)

        #expect(
            AuditController.displayJSON(stored.before!)
                == #"{"expires_at":"2026-12-06 01:20:00 UTC (1796520000000)","window_seconds":1796520000000}"#,
            "a string of digits under a time key (rollouts store column text) reads as a time; other keys are left alone")
        #expect(
            AuditController.displayJSON(stored.after!)
                == #"{"created_at":1796520000,"ends_at":"2026-12-06 01:20:00 UTC (1796520000000)","title":"next_fire_at"}"#,
            "seconds are not mistaken for milliseconds, and a string value that looks like a key is not a key")
        // Stored rows are compact JSON with sorted keys (JSONText.encode), and the page shows them the same way.
        #expect(AuditController.displayJSON(#"{"a":{"next_fire_at":1796520000000},"b":"x\"y"}"#)
            == #"{"a":{"next_fire_at":"2026-12-06 01:20:00 UTC (1796520000000)"},"b":"x\"y"}"#)
        #expect(AuditController.displayJSON("not json") == "not json")

        try await harness.test { client in
            try await client.execute(uri: "/audit?action=test.times", method: .get) { response in
                #expect(response.status == .ok)
                let page = text(response)
                #expect(page.contains("&quot;ends_at&quot;:&quot;2026-12-06 01:20:00 UTC (1796520000000)&quot;"))
                #expect(page.contains("&quot;expires_at&quot;:&quot;2026-12-06 01:20:00 UTC (1796520000000)&quot;"))
                #expect(page.contains("&quot;window_seconds&quot;:1796520000000"))
            }
        }
    }
}
