import Foundation
import GRDB
import Testing

@testable import StewardKit

@Suite("Sessions")
struct SessionStoreTests {
    let directory = TemporaryDirectory()
    let store: SessionStore
    let start = utc("2026-05-01T10:00:00Z")

    init() throws {
        store = SessionStore(database: try makeDatabase(directory))
    }

    @Test("IDs are 256 random bits, unique, and only their hash is stored")
    func idsAndHashing() throws {
        let (id, session) = try store.create(user: "alice", source: "192.0.2.1", userAgent: "test", now: start)
        let (other, _) = try store.create(user: "alice", source: "192.0.2.1", userAgent: "test", now: start)
        #expect(id.count == 43 && Data(base64URLEncoded: id)?.count == 32)
        #expect(id != other)
        #expect(session.csrfToken.count == 43 && session.csrfToken != id)
        let stored = try store.database.read { db in try String.fetchAll(db, sql: "SELECT id_hash FROM sessions") }
        #expect(!stored.contains(id) && stored.contains(session.idHash))
        #expect(try store.validate(id: id, now: start)?.user == "alice")
        #expect(try store.validate(id: session.idHash, now: start) == nil, "the stored hash is not a usable cookie")
    }

    @Test("an idle session ends after 30 minutes; activity keeps it alive")
    func idleTimeout() throws {
        let (id, _) = try store.create(user: "alice", source: nil, userAgent: nil, now: start)
        #expect(try store.validate(id: id, now: start.addingTimeInterval(29 * 60)) != nil)
        #expect(try store.validate(id: id, now: start.addingTimeInterval(58 * 60)) != nil, "the 29-minute visit moved the idle clock")
        #expect(try store.validate(id: id, now: start.addingTimeInterval(89 * 60)) == nil)
    }

    @Test("no session lives beyond 12 hours however active it is")
    func absoluteLifetime() throws {
        let (id, _) = try store.create(user: "alice", source: nil, userAgent: nil, now: start)
        for minutes in stride(from: 20, through: 700, by: 20) {
            #expect(try store.validate(id: id, now: start.addingTimeInterval(Double(minutes) * 60)) != nil)
        }
        #expect(try store.validate(id: id, now: start.addingTimeInterval(12 * 3600 + 1)) == nil)
    }

    @Test("rotation issues a new ID and CSRF token; the old ID is dead at once (fixation)")
    func rotation() throws {
        let (id, session) = try store.create(user: "alice", source: nil, userAgent: nil, now: start)
        let rotated = try #require(try store.rotate(id: id, now: start))
        #expect(rotated != id)
        #expect(try store.validate(id: id, now: start) == nil)
        let renewed = try #require(try store.validate(id: rotated, now: start))
        #expect(renewed.user == "alice" && renewed.csrfToken != session.csrfToken)
        #expect(try store.rotate(id: id, now: start) == nil, "a dead ID cannot be rotated back to life")
    }

    @Test("revocation ends a session on the next request; listings show only live sessions")
    func revocation() throws {
        let (id, session) = try store.create(user: "alice", source: "192.0.2.1", userAgent: "firefox", now: start)
        _ = try store.create(user: "bob", source: "192.0.2.2", userAgent: "curl", now: start)
        #expect(try store.active(user: "alice", now: start).map(\.user) == ["alice"])
        #expect(try store.active(now: start).count == 2)
        #expect(try store.revoke(idHash: session.idHash, by: "admin", now: start))
        #expect(try store.validate(id: id, now: start) == nil)
        #expect(try store.active(now: start).map(\.user) == ["bob"])
        #expect(try store.revoke(idHash: session.idHash, by: "admin", now: start) == false)
    }

    @Test("a session's start and end carry their audit rows in the same write; ending an ended session records nothing")
    func auditRowsTravelWithTheChange() throws {
        func audit() throws -> [String] {
            try store.database.read { db in
                try String.fetchAll(db, sql: "SELECT action || ' ' || actor || ' ' || target FROM audit_events ORDER BY id")
            }
        }
        let who = AuditActor(actor: "alice", source: "192.0.2.1")
        let (_, session) = try store.create(
            user: "alice", source: "192.0.2.1", userAgent: "firefox", audit: AuditEntry(by: who, action: "login.success", target: "user:alice"),
            now: start)
        #expect(try audit() == ["login.success alice user:alice"])
        let logout = AuditEntry(by: who, action: "logout", target: "user:alice")
        #expect(try store.revoke(idHash: session.idHash, by: "alice", audit: logout, now: start))
        #expect(try store.revoke(idHash: session.idHash, by: "alice", audit: logout, now: start) == false)
        #expect(try audit() == ["login.success alice user:alice", "logout alice user:alice"])
    }

    @Test("ended sessions are purged; live ones stay")
    func purge() throws {
        let (ended, endedSession) = try store.create(user: "alice", source: nil, userAgent: nil, now: start)
        _ = ended
        _ = try store.revoke(idHash: endedSession.idHash, by: "alice", now: start)
        let (live, _) = try store.create(user: "bob", source: nil, userAgent: nil, now: start)
        #expect(try store.purgeEnded(now: start) == 1)
        #expect(try store.validate(id: live, now: start) != nil)
    }

    @Test("malformed cookie values are rejected without a lookup")
    func malformed() throws {
        for value in ["", "short", String(repeating: "a", count: 500), "' OR 1=1 --"] {
            #expect(try store.validate(id: value, now: start) == nil)
        }
    }
}
