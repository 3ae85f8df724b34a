import Foundation
import Testing

@testable import StewardKit

@Suite("The OpenAPI document in the repository")
struct OpenAPIDocumentTests {
    /// docs/openapi.json is the contract clients are generated from. It is written from the routes' own declarations
    /// (`make openapi`), and this test fails when the routes and the committed file differ, so neither can drift.
    @Test("docs/openapi.json is exactly the document the server serves")
    func committedDocumentMatchesTheRoutes() async throws {
        let harness = try await ServerHarness()
        let served = try harness.server.docs.documentText()
        let path = repositoryRoot + "/docs/openapi.json"
        if ProcessInfo.processInfo.environment["STEWARD_WRITE_OPENAPI"] == "1" {
            try served.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let committed = try String(contentsOfFile: path, encoding: .utf8)
        #expect(committed == served, "docs/openapi.json differs from the routes: run `make openapi` and commit the file")
    }
}
