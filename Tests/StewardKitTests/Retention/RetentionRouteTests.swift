import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("retention pages and API: who may preview and who may change")
struct RetentionRouteTests {
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    @Test("a viewer sees the storage page and previews a policy but cannot save one; an admin's save waits out the grace window")
    func viewerPreviewsAdminSaves() async throws {
        let harness = try await ServerHarness()
        let body = "kind=time&max_age_days=30&rules=action+role.*+1095"
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/settings/storage", method: .get) { response in
                #expect(response.status == .ok)
                let page = String(buffer: response.body)
                #expect(page.contains("id=\"class-audit\"") && !page.contains("id=\"enforce-now\""))
            }
            try await client.execute(
                uri: "/settings/storage/audit", method: .post, headers: Self.form, body: ByteBuffer(string: body + "&action=preview")
            ) { response in
                #expect(response.status == .ok && String(buffer: response.body).contains("id=\"preview-rows\""))
            }
            try await client.execute(
                uri: "/settings/storage/audit", method: .post, headers: Self.form, body: ByteBuffer(string: body + "&action=save")
            ) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(
                uri: "/api/v1/retention/policies/audit", method: .put, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"kind":"full"}"#)
            ) { response in
                #expect(response.status == .forbidden)
            }
        }
        let service = RetentionService(
            database: harness.server.database, databasePath: harness.server.dataDirectory.databasePath, graceMinutes: 120, sessionIdleMinutes: 30)
        #expect(try service.policy(.audit).pending == nil)
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/settings/storage/audit", method: .post, headers: Self.form, body: ByteBuffer(string: body + "&action=save&confirm=audit")
            ) { response in
                #expect(response.status == .seeOther)
            }
            try await client.execute(uri: "/api/v1/retention/policies/audit", method: .get) { response in
                let object = try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
                #expect((object?["pending"] as? [String: Any])?["max_age_days"] as? Double == 30)
                #expect(object?["pending_at"] is String && object?["pending_by"] as? String == "tester-admin")
            }
            try await client.execute(
                uri: "/settings/storage/audit", method: .post, headers: Self.form, body: ByteBuffer(string: "kind=tiered&action=preview")
            ) { response in
                #expect(response.status == .unprocessableContent && String(buffer: response.body).contains("Audit log can use"))
            }
        }
    }
}
