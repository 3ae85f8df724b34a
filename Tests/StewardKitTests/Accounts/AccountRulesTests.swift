import Foundation
import Testing

@testable import StewardKit

@Suite("Unix account rules")
struct AccountRulesTests {
    static let shells = ["/bin/sh", "/bin/bash", "/usr/bin/bash", "/bin/dash"]
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFq0dj3X1w6dRQ2cXgYQxWlXyK7Hq0gBvK1o4nTz6Y3C steward-test@example"

    @Test("ordinary accounts pass")
    func ordinary() {
        var change = UserChange(action: .create, name: "steward-test-ann")
        change.uid = 1500
        change.groups = ["developers"]
        change.shell = "/bin/bash"
        change.home = "/home/steward-test-ann"
        change.gecos = "Ann Example"
        change.password = .hash("$y$j9T$abcdefghijklmnop$ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijk0123456")
        change.expiresOn = "2027-01-31"
        change.authorizedKeys = [Self.key]
        #expect(AccountRules.problems(change, shells: Self.shells, isAdmin: false) == [:])
        #expect(AccountRules.name("svc$") == nil && AccountRules.name("_backup") == nil)
    }

    static let injections = ["x;id", "$(id)", "`id`", "a\nb", "a && b", "-rf", "--help", "a b", "../x", "{{ lookup('pipe','id') }}", "A", ""]

    @Test("class 1: every field refuses shell, option, path and template syntax", arguments: injections)
    func injection(_ value: String) {
        #expect(AccountRules.name(value) != nil, "name \(value)")
        #expect(AccountRules.shell(value, allowed: Self.shells) != nil, "shell \(value)")
        #expect(AccountRules.path(value, field: "home") != nil, "home \(value)")
        #expect(AccountRules.passwordHash(value) != nil, "hash \(value)")
        #expect(AccountRules.sshKey(value) != nil, "key \(value)")
        #expect(AccountRules.date(value) != nil, "date \(value)")
    }

    @Test(
        "GECOS refuses separators, template syntax and line breaks but keeps ordinary names",
        arguments: [
            ("Ann Example", true), ("Zoë O'Brien (ops)", true), ("a:b", false), ("a,b", false), ("x=y", false), ("{{ lookup('pipe','id') }}", false),
            ("{% for %}", false), ("line\nbreak", false), ("<script>alert(1)</script>", true),
        ])
    func gecos(_ text: String, _ accepted: Bool) {
        #expect((AccountRules.gecos(text) == nil) == accepted, "\(text)")
    }

    @Test("keys: a real public key passes; a wrong type, options, two keys or a template comment do not")
    func keys() {
        #expect(AccountRules.sshKey(Self.key) == nil)
        #expect(AccountRules.sshKey(Self.key.replacingOccurrences(of: "ssh-ed25519 ", with: "ssh-rsa ")) != nil, "type must match the blob")
        #expect(AccountRules.sshKey("command=\"id\" " + Self.key) != nil)
        #expect(AccountRules.sshKey(Self.key + "\n" + Self.key) != nil)
        #expect(AccountRules.sshKey(Self.key + " {{ lookup('pipe','id') }}") != nil)
    }

    @Test("reserved names and out-of-range ids are refused; shells must be the host's")
    func limits() {
        for reserved in ["root", "sudo", "www-data", "nobody"] { #expect(AccountRules.name(reserved) != nil) }
        #expect(AccountRules.name(String(repeating: "a", count: 33)) != nil)
        #expect(AccountRules.id(-1) != nil && AccountRules.id(70000) != nil && AccountRules.id(1000) == nil)
        #expect(AccountRules.shell("/bin/zsh", allowed: Self.shells)?.contains("/etc/shells") == true)
        #expect(AccountRules.shell("/bin/bash", allowed: [])?.contains("gather its facts") == true)
    }

    @Test("class 6: an operator cannot make uid 0, a system account or a sudoer; an admin can")
    func operatorLimits() {
        var root = UserChange(action: .create, name: "steward-test-x")
        root.uid = 0
        #expect(AccountRules.problems(root, shells: Self.shells, isAdmin: false)["uid"] != nil)
        #expect(AccountRules.problems(root, shells: Self.shells, isAdmin: true)["uid"] == nil)
        var sudoer = UserChange(action: .create, name: "steward-test-y")
        sudoer.admin = true
        #expect(AccountRules.problems(sudoer, shells: Self.shells, isAdmin: false)["admin"] != nil)
        sudoer.admin = nil
        sudoer.groups = ["sudo"]
        #expect(AccountRules.problems(sudoer, shells: Self.shells, isAdmin: false)["admin"] != nil)
        #expect(AccountRules.problems(sudoer, shells: Self.shells, isAdmin: true) == [:])
        var group = GroupChange(action: .create, name: "steward-test-g")
        group.gid = 100
        #expect(AccountRules.problems(group, isAdmin: false)["gid"] != nil && AccountRules.problems(group, isAdmin: true) == [:])
    }
}
