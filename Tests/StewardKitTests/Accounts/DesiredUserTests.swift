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

@Suite("Groups as code: definition files")
struct DesiredGroupTests {
    @Test("a group definition round-trips and refuses bad fields; converge adds members")
    func roundTrip() throws {
        var group = DesiredGroup(name: "steward-test-ops", applyTo: ["web"])
        group.gid = 2600
        group.members = ["steward-test-ann"]
        #expect(try DesiredGroup.parse(group.yaml) == group)
        #expect(group.path == "users/groups/steward-test-ops.yml")
        #expect(throws: AccountError.self) { try DesiredGroup.parse("name: \"<script>\"\napply_to: [web]\n") }
        #expect(throws: AccountError.self) { try DesiredGroup.parse("name: ops\nmembers: [\"a;b\"]\napply_to: [web]\n") }
        let users = group.convergeVariables["steward_users"] as? [[String: Any]]
        #expect(users?.first?["append"] as? Bool == true)
    }
}
