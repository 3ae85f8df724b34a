import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Testing

@testable import StewardKit

/// Mustache resolves a name up the whole context stack: inside a row, a name the row lacks becomes an enclosing
/// object's. These tests keep row actions on their own row.
@Suite("Templates: a row's action names its own row")
struct TemplateRowTests {
    /// Sections that only switch on a flag or a role; every other section is an object or a list of rows.
    static func isFlag(_ name: String) -> Bool {
        ["operator", "admin", "error", "active"].contains(name) || name.hasPrefix("has_") || name.hasPrefix("is_") || name.hasPrefix("can_")
    }

    /// `{{#X}}` re-entered inside a list (a plural section) while X is an object the template opens at its top level:
    /// inside it, the row's own fields are shadowed by X's.
    static func reentries(in text: String) -> [String] {
        let tag = try! Regex(#"\{\{([#^/$<]?)\s*([\w./-]+)\s*\}\}"#)
        var stack: [String] = []
        var topLevel: Set<String> = []
        var opened: [(name: String, enclosing: [String], line: Int)] = []
        for match in text.matches(of: tag) {
            let kind = String(match.output[1].substring ?? "")
            let name = String(match.output[2].substring ?? "")
            switch kind {
            case "#", "^":
                if kind == "#" {
                    if stack.isEmpty { topLevel.insert(name) }
                    opened.append((name, stack, text[..<match.range.lowerBound].filter { $0 == "\n" }.count + 1))
                }
                stack.append(name)
            case "$", "<":
                break
            case "/":
                if let index = stack.lastIndex(of: name) { stack.removeSubrange(index...) }
            default:
                break
            }
        }
        return opened.compactMap { entry in
            guard topLevel.contains(entry.name), !isFlag(entry.name), !entry.enclosing.contains(entry.name),
                let list = entry.enclosing.first(where: { $0.hasSuffix("s") && !isFlag($0) })
            else { return nil }
            return "line \(entry.line): {{#\(entry.name)}} inside the rows of {{#\(list)}}"
        }
    }

    @Test("no template re-enters an enclosing object inside a list of rows")
    func noReentry() throws {
        let root = URL(fileURLWithPath: repositoryRoot).appendingPathComponent("Templates")
        let files = try #require(FileManager.default.enumerator(atPath: root.path)).compactMap { $0 as? String }.filter { $0.hasSuffix(".mustache") }
        #expect(files.count > 30)
        var found: [String] = []
        for file in files {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            found += Self.reentries(in: text).map { "\(file) \($0)" }
        }
        #expect(found.isEmpty, "\(found)")
        // The check finds the shape that once made each row's Delete post the host's name.
        #expect(!Self.reentries(in: "{{#host}}{{name}}{{/host}}{{#users}}{{#host}}<input value=\"{{name}}\">{{/host}}{{/users}}").isEmpty)
    }

    @Test("on a host named like one of its users, each row's Lock, Unlock and Delete post that row's user")
    func hostNamedLikeAUser() async throws {
        let harness = try await ServerHarness()
        let server = harness.server
        let host = try await makeHostWithFacts(
            server, name: "alice", address: "192.0.2.30",
            facts: #"""
                {"passwd": {"alice": ["x", "1001", "1001", "Alice,,,", "/home/alice", "/bin/bash"], "bob": ["x", "1002", "1002", "", "/home/bob", "/bin/bash"],
                            "carol": ["x", "1003", "1003", "Carol Example,Room 12,,", "/home/carol", "/bin/sh"],
                            "daemon": ["x", "1", "1", "daemon", "/usr/sbin", "/usr/sbin/nologin"]},
                 "group": {"alice": ["x", "1001", ""], "staff": ["x", "1600", "bob,carol"]}, "shells": ["/bin/bash", "/bin/sh"],
                 "account_states": {"alice": [false, ""], "bob": [true, "20819"], "carol": [false, ""], "daemon": [true, ""]}}
                """#)
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/hosts/\(host.id)/accounts", method: .get) { response in
                let page = text(response)
                #expect(response.status == .ok)
                let users = try #require(page.components(separatedBy: #"id="host-users""#).last?.components(separatedBy: "</table>").first)
                let rows = users.components(separatedBy: "<tr data-user=").filter { $0.contains(#"name="action" value="delete""#) }
                #expect(rows.count == 3)
                // Each row offers Lock or Unlock, whichever applies, and Delete, all for its own user.
                for (row, user) in zip(rows, ["alice", "bob", "carol"]) {
                    #expect(row.hasPrefix("\"\(user)\"><td>\(user)</td>"), "\(row.prefix(80))")
                    let posted = row.components(separatedBy: #"<input type="hidden" name="name" value=""#).dropFirst().map { $0.prefix { $0 != "\"" } }
                    #expect(posted.map(String.init) == [user, user], "\(user): \(posted)")
                    #expect(row.contains(#"value="unlock""#) == (user == "bob") && row.contains(#"value="lock""#) == (user != "bob"))
                    #expect(row.contains(#"href="/hosts/\#(host.id)/accounts/users/\#(user)/edit""#))
                    #expect(row.contains("Delete the user \(user)?") && row.contains(#"action="/hosts/\#(host.id)/accounts/users""#))
                }
                // GECOS without adduser's bare commas; locked and expiry from the shadow figures; system accounts hidden.
                #expect(users.contains("<td>Alice</td>") && users.contains("<td>Carol Example (Room 12)</td>"))
                #expect(rows[1].contains(#"<span class="badge badge-warning">locked</span></td><td>2027-01-01</td>"#))
                #expect(!users.contains("daemon") && page.contains("1 system account(s) hidden"))
            }
            try await client.execute(uri: "/hosts/\(host.id)/accounts?system=1", method: .get) { response in
                #expect(text(response).contains(#"<tr data-user="daemon"><td>daemon</td>"#))
            }
            // Edit: the form holds what the host has now.
            try await client.execute(uri: "/hosts/\(host.id)/accounts/users/carol/edit", method: .get) { response in
                let page = text(response)
                #expect(response.status == .ok)
                #expect(page.contains(#"<input type="hidden" name="name" value="carol">"#) && page.contains(#"name="uid" inputmode="numeric" value="1003""#))
                #expect(page.contains(#"value="staff""#) && page.contains(#"<option value="/bin/sh" selected>"#))
                #expect(page.contains(#"value="Carol Example,Room 12,,""#) && page.contains(#"name="expires" value="never""#))
            }
            try await client.execute(uri: "/hosts/\(host.id)/accounts/users/nobody-here/edit", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
    }
}
