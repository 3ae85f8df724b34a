import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Config repo: seeded, edited as the signed-in user, history, revert, refusals")
struct ConfigRepositoryTests {
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    static func body(_ fields: [String: String]) -> ByteBuffer {
        ByteBuffer(
            string: fields.map { "\($0.key)=" + ($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }.joined(separator: "&")
        )
    }

    @Test("the repo is seeded with Steward's playbooks at first run")
    func seeded() async throws {
        let harness = try await ServerHarness()
        let repository = harness.server.engine.repository
        #expect(try repository.playbooks() == ["playbooks/facts.yml", "playbooks/ping.yml", "playbooks/updates.yml", "playbooks/users.yml"])
        #expect(try repository.history().map(\.author) == ["Steward"])
    }

    @Test("an edit commits with the user as author and message; history and diff show it; revert undoes it")
    func editHistoryRevert() async throws {
        let harness = try await ServerHarness()
        let repository = harness.server.engine.repository
        let original = try #require(try repository.read("playbooks/ping.yml"))
        let edited = original.replacingOccurrences(of: "Reach the host and run Python", with: "Reach every host")
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/config/file", method: .post, headers: Self.form,
                body: Self.body(["path": "playbooks/ping.yml", "content": edited, "message": "Shorter task name"])
            ) { response in
                #expect(response.status == .seeOther)
            }
            let commit = try #require(try repository.history().first)
            #expect(commit.author == "tester-admin" && commit.subject == "Shorter task name")
            try await client.execute(uri: "/config/commits/\(commit.hash)", method: .get) { response in
                let page = text(response)
                #expect(page.contains(#"<span class="diff-add">+    - name: Reach every host</span>"#))
                #expect(page.contains(#"<span class="diff-del">-    - name: Reach the host and run Python</span>"#))
            }
            try await client.execute(uri: "/config/commits/\(commit.hash)/revert", method: .post) { response in
                #expect(response.status == .seeOther)
            }
        }
        #expect(try repository.read("playbooks/ping.yml") == original)
        #expect(try repository.history().first?.subject.hasPrefix("Revert") == true)
        #expect(try repository.history().first?.author == "tester-admin")
        let actions = try AuditLog.events(harness.server.database, action: "config.*").map(\.action)
        #expect(actions == ["config.revert", "config.commit"])
    }

    @Test(
        "a syntax error, invalid YAML, a missing message or a path outside the repo is refused and nothing changes",
        arguments: [
            ("playbooks/ping.yml", "- name: x\n  hosts: all\n  tasks:\n    - no_such_module_anywhere: {}\n", "msg", "syntax-check"),
            ("playbooks/ping.yml", "- name: [unclosed\n", "msg", "not valid YAML"),
            ("playbooks/ping.yml", "- name: fine\n  hosts: all\n", "", "commit message is required"),
            ("../outside.yml", "x: 1\n", "msg", "not a file path"),
            ("/etc/passwd", "x\n", "msg", "not a file path"),
            (".git/config", "x\n", "msg", "not a file path"),
        ])
    func refused(_ path: String, _ content: String, _ message: String, _ reason: String) async throws {
        let harness = try await ServerHarness()
        let repository = harness.server.engine.repository
        let before = try repository.head()
        let original = try repository.read("playbooks/ping.yml")
        try await harness.test(as: [.admin]) { client in
            try await client.execute(
                uri: "/config/file", method: .post, headers: Self.form, body: Self.body(["path": path, "content": content, "message": message])
            ) { response in
                #expect(response.status == .unprocessableContent)
                #expect(text(response).contains(reason), "\(text(response).prefix(3000))")
            }
        }
        #expect(try repository.head() == before)
        #expect(try repository.read("playbooks/ping.yml") == original)
        #expect(!FileManager.default.fileExists(atPath: repository.path + "/../outside.yml"))
    }

    @Test("a viewer reads the repo but cannot edit or revert")
    func viewerReadsOnly() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/config", method: .get) { response in
                #expect(response.status == .ok && text(response).contains("playbooks/ping.yml"))
            }
            try await client.execute(
                uri: "/config/file", method: .post, headers: Self.form, body: Self.body(["path": "playbooks/x.yml", "content": "[]", "message": "m"])
            ) { response in #expect(response.status == .forbidden) }
        }
    }
}
