import Foundation
import Testing

@testable import StewardKit

@Suite("Users as code: definition files and drift")
struct DesiredUserTests {
    @Test("a definition round-trips through its YAML file and refuses bad fields")
    func roundTrip() throws {
        var user = DesiredUser(name: "steward-test-cy", applyTo: ["web", "db"])
        user.uid = 1700
        user.groups = ["developers"]
        user.shell = "/bin/bash"
        user.gecos = "Cy \"the\" Example"
        let parsed = try DesiredUser.parse(user.yaml)
        #expect(parsed == user)
        #expect(throws: AccountError.self) { try DesiredUser.parse("name: x;id\napply_to: [web]\n") }
        #expect(throws: AccountError.self) { try DesiredUser.parse("name: steward-test-cy\napply_to: []\n") }
        #expect(throws: AccountError.self) { try DesiredUser.parse("name: steward-test-cy\ngecos: \"{{ lookup('pipe','id') }}\"\napply_to: [web]\n") }
    }
}
