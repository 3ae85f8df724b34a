import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import StewardKit

@Suite("Rollout page: the plan job, Edit and Plan again")
struct RolloutPageTests {
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    static func saved(_ harness: ServerHarness, _ id: Int) throws -> Rollout? {
        try harness.server.database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM rollouts WHERE id = ?", arguments: [id]).map(Rollout.init) }
    }

    @Test("a proposed rollout links its plan job, edits into a new revision with the old values filled in, and plans again")
    func editAndReplan() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.operator]) { client in
            let proposal =
                "title=Security+fixes&what=security&targets=localhost&canary=1&wave_size=1&approvals_required=1&expires_hours=24&settle_seconds=60"
            let location = Captured("")
            try await client.execute(uri: "/rollouts", method: .post, headers: Self.form, body: ByteBuffer(string: proposal)) { response in
                #expect(response.status == .seeOther)
                location.value = response.headers[.location] ?? ""
            }
            let id = try #require(Int(location.value.split(separator: "/").last ?? ""))
            let first = try #require(try Self.saved(harness, id))
            try await client.execute(uri: "/rollouts/\(id)", method: .get) { response in
                let page = text(response)
                #expect(page.contains(#"<a href="/jobs/\#(first.planJobID ?? -1)" id="plan-job">"#))
                #expect(page.contains(#"href="/rollouts/\#(id)/edit""#) && page.contains(#"action="/rollouts/\#(id)/replan""#))
            }
            // The edit form shows what is saved now.
            try await client.execute(uri: "/rollouts/\(id)/edit", method: .get) { response in
                let page = text(response)
                #expect(response.status == .ok && page.contains(#"action="/rollouts/\#(id)/edit""#))
                #expect(page.contains(#"value="Security fixes""#) && page.contains(#"value="localhost""#))
            }
            // A bad value keeps the form and changes nothing.
            try await client.execute(
                uri: "/rollouts/\(id)/edit", method: .post, headers: Self.form, body: ByteBuffer(string: proposal + "&canary=x")
            ) { response in #expect(response.status == .unprocessableContent && text(response).contains("must be a whole number")) }
            #expect(try Self.saved(harness, id)?.revision == 1)
            try await client.execute(
                uri: "/rollouts/\(id)/edit", method: .post, headers: Self.form,
                body: ByteBuffer(string: proposal.replacingOccurrences(of: "Security+fixes", with: "Security+fixes%2C+reviewed"))
            ) { response in #expect(response.status == .seeOther) }
            let edited = try #require(try Self.saved(harness, id))
            #expect(edited.title == "Security fixes, reviewed" && edited.revision == 2 && edited.planJobID != first.planJobID)
            try await client.execute(uri: "/rollouts/\(id)/replan", method: .post) { response in #expect(response.status == .seeOther) }
            let replanned = try #require(try Self.saved(harness, id))
            #expect(replanned.revision == 3 && replanned.planJobID != edited.planJobID && replanned.state == .planning)
            // Once finished, it cannot change.
            try await client.execute(uri: "/rollouts/\(id)/abort", method: .post) { response in #expect(response.status == .seeOther) }
            try await client.execute(uri: "/rollouts/\(id)/edit", method: .get) { response in #expect(response.status == .conflict) }
        }
    }
}
