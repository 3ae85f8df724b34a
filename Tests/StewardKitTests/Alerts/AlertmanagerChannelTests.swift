import Foundation
import Testing

@testable import StewardKit

/// Debian's prometheus-alertmanager 0.25 on a loopback port, as a channel's target.
final class RealAlertmanager {
    let port: Int
    let process = Process()

    static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus-alertmanager") }

    init(directory: String) throws {
        try "route: {receiver: nobody, group_wait: 1s}\nreceivers: [{name: nobody}]\n".write(
            toFile: directory + "/alertmanager.yml", atomically: true, encoding: .utf8)
        port = try SyslogTests.freePort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus-alertmanager")
        process.arguments = [
            "--config.file=\(directory)/alertmanager.yml", "--storage.path=\(directory)/alertmanager", "--web.listen-address=127.0.0.1:\(port)",
            "--cluster.listen-address=",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// The alerts it holds (active, silenced or inhibited), by the host label.
    func alerts() throws -> [String: [String: Any]] {
        let data = try PromQLTests().get(port, "/api/v2/alerts")
        var byHost: [String: [String: Any]] = [:]
        for alert in try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? [] {
            byHost[(alert["labels"] as? [String: String])?["host"] ?? "?"] = alert
        }
        return byHost
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
    }
}

@Suite("Alertmanager as a channel, against the real Alertmanager 0.25")
struct AlertmanagerChannelTests {
    @Test("firing alerts arrive with Steward's labels and annotations; a resolved one ends; a refusal names the status")
    func postsToTheV2API() async throws {
        guard RealAlertmanager.installed else {
            Issue.record("Debian's prometheus-alertmanager is not installed (make test installs it)")
            return
        }
        let directory = TemporaryDirectory()
        let alertmanager = try RealAlertmanager(directory: directory.path)
        let ready = try await waitUntil { (try? PromQLTests().get(alertmanager.port, "/-/ready")) != nil }
        #expect(ready)
        var rule = AlertRule()
        rule.id = 7
        rule.name = "Filesystem nearly full"
        rule.source = PromQLRule.source
        rule.labels = "team=storage"
        rule.runbookURL = "https://wiki.example.com/disk"
        var channel = NotificationChannel()
        channel.name = "am"
        channel.kind = .alertmanager
        channel.url = "http://127.0.0.1:\(alertmanager.port)/"
        #expect(channel.problems().isEmpty)
        let since = EpochMilliseconds.from(Date()) - 120_000
        func item(_ host: String, _ id: Int64, _ severity: String) -> NotificationMessage.Item {
            NotificationMessage.Item(
                host: host, hostID: id, state: "firing", severity: severity, value: 93, since: since, summary: "\(host): /srv 93 % used",
                description: "Clear space", labels: [("mountpoint", "/srv"), ("device", "sda1")])
        }
        let sender = NotificationSender(scratchDirectory: directory.path)
        let firing = NotificationMessage(
            reason: "new", rule: rule, firing: [item("web-01", 1, "critical"), item("web-02", 2, "warning")], resolved: [],
            baseURL: "https://steward.example.com")
        try await sender.send(firing, to: channel)
        let held = try alertmanager.alerts()
        #expect(held.count == 2)
        let web1 = try #require(held["web-01"])
        #expect(
            web1["labels"] as? [String: String] == [
                "alertname": "Filesystem nearly full", "severity": "critical", "host": "web-01", "instance": "web-01", "team": "storage",
                "mountpoint": "/srv", "device": "sda1",
            ])
        #expect((web1["annotations"] as? [String: String])?["summary"] == "web-01: /srv 93 % used")
        #expect((web1["annotations"] as? [String: String])?["runbook_url"] == "https://wiki.example.com/disk")
        #expect((web1["status"] as? [String: Any])?["state"] as? String == "active")
        #expect(web1["generatorURL"] as? String == "https://steward.example.com/alerts/rules/7")

        // web-02 resolves: Alertmanager ends it, web-01 stays active.
        var resolvedItem = item("web-02", 2, "warning")
        resolvedItem.state = "resolved"
        let change = NotificationMessage(
            reason: "changed", rule: rule, firing: [item("web-01", 1, "critical")], resolved: [resolvedItem], baseURL: "https://steward.example.com")
        try await sender.send(change, to: channel)
        let after = try alertmanager.alerts()
        #expect(after.keys.sorted() == ["web-01"], "\(after.keys)")

        // A wrong address is refused with the status it answered.
        channel.url = "http://127.0.0.1:\(alertmanager.port)/nowhere"
        await #expect(throws: NotificationSender.Failure.self) { try await sender.send(firing, to: channel) }
        do {
            try await sender.send(firing, to: channel)
        } catch {
            #expect("\(error)".contains("HTTP 404"), "\(error)")
        }
        // Validation: an address with a password in it, and resolved messages turned off.
        channel.url = "http://user:secret@127.0.0.1:9093"
        channel.sendResolved = false
        #expect(Set(channel.problems().keys) == ["url", "send_resolved"])
    }
}
