import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Cached API lists: the same bytes while nothing changed, the new state after any change")
struct ResponseCacheTests {
    static let jsonBody: HTTPFields = [.contentType: "application/json"]

    @Test("the cache never holds more than its byte cap")
    func byteCap() throws {
        let cache = ResponseCache(versions: TableVersions(tables: ["t"]), capacityBytes: 1000)
        for number in 0..<20 {
            let request = Request(
                head: HTTPRequest(method: .get, scheme: "http", authority: "localhost", path: "/x?n=\(number)"), body: RequestBody(buffer: ByteBuffer()))
            _ = cache.json(for: request, tables: ["t"]) { ByteBuffer(repeating: 0x20, count: 300) }
            #expect(cache.bytesHeld <= 1000)
        }
        let huge = Request(head: HTTPRequest(method: .get, scheme: "http", authority: "localhost", path: "/huge"), body: RequestBody(buffer: ByteBuffer()))
        _ = cache.json(for: huge, tables: ["t"]) { ByteBuffer(repeating: 0x20, count: 5000) }
        #expect(cache.bytesHeld <= 1000, "an answer larger than the cap is served but not kept")
    }

    @Test("a table's counter moves on commit only, and a write the update hook cannot detail counts for every table")
    func versionsFollowCommits() throws {
        let database = try DatabaseQueue()
        let versions = TableVersions(tables: ["a", "b"])
        try database.write { db in try db.execute(sql: "CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER); CREATE TABLE c (z INTEGER)") }
        database.add(transactionObserver: versions, extent: .databaseLifetime)
        let start = versions.version(of: ["a"])
        try database.write { db in try db.execute(sql: "INSERT INTO c VALUES (1)") }
        #expect(versions.version(of: ["a"]) == start && versions.version(of: ["b"]) == 0)
        try database.write { db in try db.execute(sql: "INSERT INTO a VALUES (1)") }
        #expect(versions.version(of: ["a"]) == start + 1 && versions.version(of: ["b"]) == 0)
        try? database.write { db in
            try db.execute(sql: "INSERT INTO b VALUES (1)")
            throw DatabaseError(resultCode: .SQLITE_ABORT, message: "rolled back on purpose")
        }
        #expect(versions.version(of: ["b"]) == 0, "a rolled-back write moves nothing")
        try database.write { db in try db.execute(sql: "DELETE FROM a") }
        #expect(versions.version(of: ["a"]) == start + 2, "a whole-table delete is seen (no truncate optimisation)")
        try database.write { db in try db.notifyChanges(in: .fullDatabase) }
        #expect(versions.version(of: ["a", "b"]) == start + 2 + 2)
    }

    @Test("the hosts and jobs lists answer from the cache, and show every create, change, delete and job at once")
    func listsFollowChanges() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.admin]) { client in
            func hostNames() async throws -> [String] {
                try await client.execute(uri: "/api/v1/hosts", method: .get) { response in
                    try #require(try json(response)["items"] as? [[String: Any]]).compactMap { $0["name"] as? String }
                }
            }
            #expect(try await hostNames() == ["localhost"])
            #expect(try await hostNames() == ["localhost"])
            var id = 0
            try await client.execute(
                uri: "/api/v1/hosts", method: .post, headers: Self.jsonBody,
                body: ByteBuffer(string: #"{"name":"web-01","address":"192.0.2.11","groups":["web"]}"#)
            ) { response in id = try json(response)["id"] as? Int ?? 0 }
            #expect(try await hostNames() == ["localhost", "web-01"])
            try await client.execute(
                uri: "/api/v1/hosts/\(id)", method: .patch, headers: Self.jsonBody, body: ByteBuffer(string: #"{"groups":["db"]}"#)
            ) { response in #expect(response.status == .ok) }
            try await client.execute(uri: "/api/v1/hosts", method: .get) { response in
                let web = try #require(try json(response)["items"] as? [[String: Any]]).first { $0["name"] as? String == "web-01" }
                #expect(web?["groups"] as? [String] == ["db"])
            }
            // A group removed on its own (its memberships go with it) shows at once.
            try await client.execute(uri: "/api/v1/groups/db", method: .delete) { response in #expect(response.status == .noContent) }
            try await client.execute(uri: "/api/v1/hosts", method: .get) { response in
                let web = try #require(try json(response)["items"] as? [[String: Any]]).first { $0["name"] as? String == "web-01" }
                #expect(web?["groups"] as? [String] == [])
            }
            try await client.execute(uri: "/api/v1/hosts/\(id)", method: .delete) { response in #expect(response.status == .noContent) }
            #expect(try await hostNames() == ["localhost"])

            func jobCount() async throws -> Int {
                try await client.execute(uri: "/api/v1/jobs?limit=200", method: .get) { response in
                    try #require(try json(response)["items"] as? [[String: Any]]).count
                }
            }
            // Distinct queries each make an entry, within the byte cap.
            for number in 0..<50 {
                try await client.execute(uri: "/api/v1/hosts?n=\(number)", method: .get) { response in #expect(response.status == .ok) }
            }
            let before = try await jobCount()
            _ = try await harness.server.jobs.enqueue(JobRequest(kind: "test.echo", title: "a job for the cache test", startedBy: "test"))
            #expect(try await jobCount() == before + 1)
        }
    }
}
