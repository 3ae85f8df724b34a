import Crypto
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Alert rules over HTTP: the built-in pack, API CRUD with per-field errors, pages, export")
struct AlertRouteTests {
    static let json: HTTPFields = [.contentType: "application/json"]

    func text(_ response: TestResponse) -> String { String(buffer: response.body) }

    func object(_ response: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text(response).utf8)) as? [String: Any]) ?? [:]
    }

    @Test func rulesAreManagedThroughTheAPIAndThePages() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/api/v1/alerts/rules", method: .get) { response in
                let items = object(response)["items"] as? [[String: Any]] ?? []
                // The built-in pack, plus the self-backup plan's own two rules (failed run, no snapshot in 26 h).
                #expect(items.count == BuiltinAlerts.rules().count + 2)
                #expect(items.filter { ($0["builtin"] as? String)?.hasPrefix("backup_") == true }.count == 2)
            }
            let bad = #"{"name":"","metric":"bad name","warn_threshold":90,"crit_threshold":80,"window_seconds":"5m","colour":"red"}"#
            try await client.execute(uri: "/api/v1/alerts/rules", method: .post, headers: Self.json, body: ByteBuffer(string: bad)) { response in
                #expect(response.status == .unprocessableContent)
                let errors = object(response)["errors"] as? [String: String] ?? [:]
                #expect(errors["window_seconds"] == "must be an integer" && errors["colour"]?.contains("unknown field") == true, "\(errors)")
            }
            let invalid = #"{"name":"","metric":"bad name","warn_threshold":90,"crit_threshold":80,"summary":"x"}"#
            try await client.execute(uri: "/api/v1/alerts/rules", method: .post, headers: Self.json, body: ByteBuffer(string: invalid)) { response in
                let errors = object(response)["errors"] as? [String: String] ?? [:]
                #expect(Set(errors.keys) == ["name", "metric", "crit_threshold"], "\(errors)")
            }
            let good = """
                {"name":"Root disk","metric":"node_filesystem_avail_bytes","matchers":"mountpoint=/","aggregation":"min","comparison":"below",
                 "warn_threshold":2e9,"crit_threshold":5e8,"for_seconds":120,"scope_groups":["web"],"summary":"{{host}}: {{value}} bytes free on /",
                 "runbook_url":"https://wiki.example.com/disk"}
                """
            var id = 0
            try await client.execute(uri: "/api/v1/alerts/rules", method: .post, headers: Self.json, body: ByteBuffer(string: good)) { response in
                #expect(response.status == .created, "\(text(response))")
                id = object(response)["id"] as? Int ?? 0
            }
            try await client.execute(
                uri: "/api/v1/alerts/rules/\(id)", method: .put, headers: Self.json, body: ByteBuffer(string: #"{"enabled":false,"for_seconds":60}"#)
            ) { response in
                #expect(object(response)["enabled"] as? Bool == false && object(response)["for_seconds"] as? Int == 60)
                #expect(object(response)["metric"] as? String == "node_filesystem_avail_bytes")
            }
            try await client.execute(uri: "/api/v1/alerts/rules/export", method: .get) { response in
                #expect(text(response).contains("FilesystemAlmostFull"))
                #expect(!text(response).contains("RootDisk"), "paused rules are not exported")
            }
            try await client.execute(uri: "/alerts", method: .get) { response in
                #expect(response.status == .ok)
                #expect(text(response).contains("Root disk") && text(response).contains("paused"))
                #expect(text(response).contains("Notifications, 7 days"))
            }
            try await client.execute(uri: "/alerts/rules/\(id)", method: .get) { response in
                #expect(text(response).contains(#"value="mountpoint=/""#))
                #expect(text(response).contains("Preview: what this rule sees now"))
            }
            // Preview renders the edited rule against localhost without saving it.
            let previewForm =
                "intent=preview&name=Preview+me&source=metric&metric=steward_host_up&aggregation=max&window_seconds=60"
                + "&horizon_seconds=0&comparison=above&warn_threshold=0.5&for_seconds=0&keep_firing_seconds=0&no_data=nodata&summary=x&repeat_seconds=3600"
            try await client.execute(
                uri: "/alerts/rules/new", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: previewForm)
            ) { response in
                #expect(response.status == .ok)
                #expect(text(response).contains("<td>localhost</td>"))
            }
            #expect(try AlertRuleStore(database: harness.server.database).all().contains { $0.name == "Preview me" } == false)
            let builtin = try #require(try AlertRuleStore(database: harness.server.database).all().first { $0.builtin != nil })
            try await client.execute(uri: "/api/v1/alerts/rules/\(builtin.id)", method: .delete) { response in
                #expect(response.status == .conflict)
            }
            try await client.execute(uri: "/api/v1/alerts/rules/\(id)", method: .delete) { response in #expect(response.status == .noContent) }
            try await client.execute(uri: "/api/v1/alerts", method: .get) { response in
                #expect(response.status == .ok && object(response)["items"] is [Any])
            }
            let file = """
                groups:
                  - name: imported
                    rules:
                      - alert: ImportedLoad
                        expr: max_over_time(node_load1[10m]) > 4
                        for: 5m
                        labels: {severity: warning, team: ops}
                        annotations: {summary: "{{ $labels.host }} load {{ $value | humanize }}"}
                      - alert: Unsupported
                        expr: max_over_time(rate(x[5m])[1h:]) > 1
                      - alert: NodeJob
                        expr: up{job="node"} == 0
                """
            try await client.execute(
                uri: "/api/v1/alerts/rules/import", method: .post, headers: [.contentType: "application/yaml"], body: ByteBuffer(string: file)
            ) { response in
                let created = object(response)["created"] as? [[String: Any]] ?? []
                let errors = object(response)["errors"] as? [[String: Any]] ?? []
                let warnings = object(response)["warnings"] as? [[String: Any]] ?? []
                #expect(created.map { $0["name"] as? String } == ["ImportedLoad", "NodeJob"])
                #expect(created.first?["summary"] as? String == "{{ $labels.host }} load {{ $value | humanize }}")
                #expect(created.first?["expression"] as? String == "max_over_time(node_load1[10m])")
                #expect(created.first?["comparison"] as? String == "gt" && created.first?["warn_threshold"] as? Double == 4)
                #expect(errors.map { $0["alert"] as? String } == ["Unsupported"])
                #expect(warnings.contains { $0["alert"] as? String == "NodeJob" && ($0["message"] as? String)?.contains("no job label") == true })
            }
            // The same file again: nothing new, and each rule reported unchanged.
            try await client.execute(
                uri: "/api/v1/alerts/rules/import", method: .post, headers: [.contentType: "application/yaml"], body: ByteBuffer(string: file)
            ) { response in
                #expect((object(response)["created"] as? [Any])?.isEmpty == true)
                #expect(object(response)["unchanged"] as? [String] == ["ImportedLoad", "NodeJob"])
            }
        }
        let actions = try await harness.server.database.read { db in
            try String.fetchAll(db, sql: "SELECT action FROM audit_events WHERE action LIKE 'alert_rule.%' AND actor != 'system' ORDER BY id")
        }
        #expect(actions == ["alert_rule.create", "alert_rule.update", "alert_rule.delete", "alert_rule.create", "alert_rule.create"])
        // A viewer reads but cannot change.
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/api/v1/alerts/rules", method: .post, headers: Self.json, body: ByteBuffer(string: "{}")) { response in
                #expect(response.status == .forbidden)
            }
        }
    }

    @Test func channelsSilencesAndWindowsHavePagesWithFieldErrors() async throws {
        let harness = try await ServerHarness()
        let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/settings/channels", method: .get) { response in
                #expect(response.status == .ok && text(response).contains("Add a channel"))
            }
            let bad = "name=ops&kind=webhook&url=ftp%3A%2F%2Fx&min_severity=warning&group_wait_seconds=30&group_interval_seconds=300&smtp_port=587"
            try await client.execute(uri: "/settings/channels", method: .post, headers: form, body: ByteBuffer(string: bad)) { response in
                #expect(response.status == .unprocessableContent)
                #expect(text(response).contains("an http(s) URL") && text(response).contains(#"value="ops""#))
            }
            let good =
                "name=ops&kind=webhook&url=https%3A%2F%2Fhooks.example.com%2Fx&secret=abc&enabled=on&send_resolved=on&min_severity=critical"
                + "&group_wait_seconds=30&group_interval_seconds=300&smtp_port=587"
            try await client.execute(uri: "/settings/channels", method: .post, headers: form, body: ByteBuffer(string: good)) { response in
                #expect(response.status == .seeOther)
            }
            let channel = try #require(try NotificationChannelStore(database: harness.server.database, masterKey: .init(size: .bits256)).all().first)
            #expect(channel.name == "ops" && channel.minSeverity == .critical)
            try await client.execute(uri: "/settings/channels/\(channel.id)", method: .get) { response in
                #expect(text(response).contains("set; leave empty to keep") && !text(response).contains("abc"))
            }
            try await client.execute(uri: "/alerts/silences", method: .get) { response in #expect(response.status == .ok) }
            try await client.execute(
                uri: "/alerts/silences", method: .post, headers: form, body: ByteBuffer(string: "matchers=host%3Dweb-*&duration=2h&comment=")
            ) { response in
                #expect(response.status == .unprocessableContent && text(response).contains("say why"))
            }
            try await client.execute(
                uri: "/alerts/silences", method: .post, headers: form, body: ByteBuffer(string: "matchers=host%3Dweb-*&duration=2h&comment=OPS-1")
            ) { response in #expect(response.status == .seeOther) }
            try await client.execute(
                uri: "/alerts/maintenance", method: .post, headers: form,
                body: ByteBuffer(string: "window_name=Patch&host_group=web&cron=0+2+*+*+2&duration_minutes=120&time_zone=Europe%2FBerlin")
            ) { response in #expect(response.status == .seeOther) }
            try await client.execute(uri: "/alerts/silences", method: .get) { response in
                #expect(text(response).contains("OPS-1") && text(response).contains("Europe/Berlin"))
            }
        }
    }
}
