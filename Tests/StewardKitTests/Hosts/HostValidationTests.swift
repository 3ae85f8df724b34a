import Foundation
import Testing

@testable import StewardKit

@Suite("Host fields and variables")
struct HostValidationTests {
    static let injections = ["x;id", "$(id)", "`id`", "a\nb", "a && b", "-oProxyCommand=id", "--help", "a b", "a|b", "../etc", "*", "web[1:3]", ""]

    @Test("class 1: names, addresses, users, groups and tags refuse shell, option and pattern syntax", arguments: injections)
    func injectionRefused(_ value: String) {
        #expect(HostValidation.name(value) != nil, "name \(value)")
        #expect(HostValidation.address(value) != nil, "address \(value)")
        #expect(HostValidation.sshUser(value) != nil, "user \(value)")
        #expect(HostValidation.groupName(value) != nil, "group \(value)")
        #expect(HostValidation.tag(value) != nil, "tag \(value)")
    }

    @Test("ordinary values pass")
    func ordinaryValues() {
        #expect(HostValidation.name("web-01") == nil && HostValidation.name("db1.example.com") == nil)
        #expect(
            HostValidation.address("192.0.2.10") == nil && HostValidation.address("2001:db8::1") == nil
                && HostValidation.address("Web-01.Example.com") == nil)
        #expect(HostValidation.sshUser("ansible") == nil && HostValidation.sshUser("_svc-ops") == nil)
        #expect(HostValidation.groupName("web_servers") == nil && HostValidation.groupName("all") != nil)
        #expect(HostValidation.port(22) == nil && HostValidation.port(0) != nil && HostValidation.port(70000) != nil)
        #expect(HostValidation.metricsURL("http://web-01:9100/metrics") == nil)
        #expect(HostValidation.metricsURL("file:///etc/passwd") != nil && HostValidation.metricsURL("http://u:p@h/") != nil)
    }

    @Test("variables: a plain mapping becomes JSON-ready values")
    func plainVariables() throws {
        let parsed = try HostVariables.parse("http_port: 8080\nratio: 0.5\nenabled: true\nnothing: ~\nnames: [a, b]\nnested:\n  key: value\n").get()
        #expect(parsed["http_port"] as? Int == 8080 && parsed["ratio"] as? Double == 0.5 && parsed["enabled"] as? Bool == true)
        #expect(parsed["nothing"] is NSNull && (parsed["names"] as? [Any])?.count == 2)
        #expect((parsed["nested"] as? [String: Any])?["key"] as? String == "value")
        #expect(try HostVariables.parse("").get().isEmpty)
    }

    @Test(
        "class 1 and 3: tags, aliases, connection variables, odd keys, deep or huge documents are refused with a reason",
        arguments: [
            ("x: !!python/object/apply:os.system ['id']", "tag"),
            ("x: !vault |\n  abc", "tag"),
            ("x: !!binary aGVsbG8=", "tag"),
            ("a: &a [1, 2]\nb: *a", "anchors"),
            ("ansible_ssh_common_args: -o ProxyCommand=id", "connection variable"),
            ("ansible_connection: local", "connection variable"),
            ("ansible_become_exe: /bin/sh", "connection variable"),
            ("\"bad key\": 1", "not a variable name"),
            ("- just\n- a list", "mapping"),
            ("plain text", "mapping"),
            ("x: [" + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "]", "nested deeper"),
            ("x: 'unterminated", "not valid YAML"),
        ])
    func refused(_ text: String, _ reason: String) {
        guard case .failure(let error) = HostVariables.parse(text) else {
            Issue.record("accepted: \(text)")
            return
        }
        #expect(error.message.contains(reason), "\(error.message)")
    }

    @Test("class 3: a document over 64 KiB and one with too many values are refused")
    func sizeLimits() {
        let huge = "x: \"" + String(repeating: "a", count: 70_000) + "\""
        guard case .failure(let big) = HostVariables.parse(huge) else {
            Issue.record("accepted 70 KB")
            return
        }
        #expect(big.message.contains("at most"))
        let many = "x: [" + Array(repeating: "1", count: 12_000).joined(separator: ",") + "]"
        guard case .failure(let wide) = HostVariables.parse(many) else {
            Issue.record("accepted 12,000 values")
            return
        }
        #expect(wide.message.contains("more than"))
        #expect((try? HostVariables.parse("ansible_python_interpreter: /usr/bin/python3").get()) != nil)
    }
}
