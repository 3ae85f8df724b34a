import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import StewardKit

@Suite("Batch users: delete lines and home directories")
struct BatchUsersTests {
    @Test("the batch form's remove-home box reaches delete lines only, and the preview says so")
    func removeHome() async throws {
        let harness = try await ServerHarness()
        _ = try await makeHostWithFacts(
            harness.server, name: "web-01", address: "192.0.2.60",
            facts: #"""
                {"passwd": {"ann": ["x", "1001", "1001", "", "/home/ann", "/bin/bash"], "bob": ["x", "1002", "1002", "", "/home/bob", "/bin/bash"]},
                 "group": {"staff": ["x", "1600", "ann"]}, "shells": ["/bin/bash"]}
                """#)
        let lines = "delete,web-01,ann\nlock,web-01,bob".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        try await harness.test(as: [.operator]) { client in
            for (box, expected) in [("&remove_home=on", true), ("", false)] {
                try await client.execute(
                    uri: "/accounts/batch", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: "lines=\(lines)&apply=0" + box)
                ) { response in
                    let page = text(response)
                    #expect(response.status == .ok)
                    #expect(page.contains("delete ann on web-01, removing the home directory") == expected)
                    #expect(page.contains("lock bob on web-01</td>"))
                    #expect(page.contains(#"name="remove_home" checked"#) == expected)
                }
            }
        }
    }
}
