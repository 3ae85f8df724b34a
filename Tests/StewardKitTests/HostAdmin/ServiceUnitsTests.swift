import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Services: systemctl listings, filters, readings and the pages")
struct ServiceUnitsTests {
    /// A host's `list-units --all --plain --no-legend` of realistic size (260 units of every common type), written
    /// here from the constructs systemctl prints: descriptions with spaces, template instances, escaped device
    /// paths, not-found and masked units, failed ones, and a status mark some versions put first.
    static func listing() -> (text: String, failed: Set<String>) {
        var lines: [String] = []
        var failed: Set<String> = []
        for index in 0..<120 {
            let name = "app\(index).service"
            switch index % 6 {
            case 0:
                lines.append("\(name) loaded failed failed Application \(index) worker (queue \(index % 4))")
                failed.insert(name)
            case 1: lines.append("\(name) loaded active running Application \(index) web front end")
            case 2: lines.append("\(name) loaded inactive dead Application \(index) one-shot cleanup")
            case 3: lines.append("\(name) loaded active exited Application \(index) set-up")
            case 4: lines.append("\(name) not-found inactive dead \(name)")
            default: lines.append("\(name) masked inactive dead \(name)")
            }
        }
        for tty in 1...6 { lines.append("getty@tty\(tty).service loaded active running Getty on tty\(tty)") }
        for index in 0..<40 {
            lines.append(#"dev-disk-by\x2duuid-0000\#(index).device loaded active plugged /dev/disk/by-uuid/0000\#(index)"#)
        }
        for index in 0..<30 { lines.append("srv-data\(index).mount loaded active mounted /srv/data\(index)") }
        for index in 0..<20 { lines.append("job\(index).timer loaded active waiting Run job \(index) every hour") }
        for index in 0..<20 { lines.append("listener\(index).socket loaded active listening Listener \(index) socket") }
        for index in 0..<23 { lines.append("target\(index).target loaded active active Target number \(index)") }
        lines.append("● broken.service loaded failed failed A unit some systemd versions mark with a bullet")
        failed.insert("broken.service")
        return (lines.joined(separator: "\n") + "\n", failed)
    }

    @Test("a listing of 260 units parses unit by unit, descriptions with their spaces")
    func parsesARealisticListing() {
        let (text, failed) = Self.listing()
        let units = ServiceListing.parseUnits(text)
        #expect(units.count == 260)
        #expect(Set(units.filter { $0.active == "failed" }.map(\.unit)) == failed)
        let worker = units.first { $0.unit == "app0.service" }
        #expect(worker?.description == "Application 0 worker (queue 0)" && worker?.sub == "failed")
        #expect(units.first { $0.unit == "app4.service" }?.load == "not-found")
        #expect(units.first { $0.unit == "broken.service" }?.description == "A unit some systemd versions mark with a bullet")
        #expect(units.first { $0.unit.hasPrefix(#"dev-disk-by\x2duuid-00007"#) }?.type == "device")
        #expect(ServiceListing.parseUnits("\n  \nnot a unit line\n").isEmpty)
    }

    @Test("enabled states come from the unit files, instances from their template, unloaded files are listed as inactive")
    func mergesUnitFiles() {
        let units = ServiceListing.parseUnits(
            "ssh.service loaded active running OpenBSD Secure Shell server\ngetty@tty1.service loaded active running Getty on tty1\n")
        // With the PRESET column (systemd 245 and later) and without it.
        let files = ServiceListing.parseUnitFiles(
            "ssh.service enabled enabled\nsshd.service alias -\ngetty@.service enabled enabled\nrsync.service disabled\nfoo@.service static -\n")
        let merged = ServiceListing.merge(units: units, files: files).units
        #expect(merged.map(\.unit) == ["getty@tty1.service", "rsync.service", "ssh.service"])
        #expect(merged[0].enabled == "enabled" && merged[2].enabled == "enabled")
        #expect(merged[1] == ServiceUnit(unit: "rsync.service", load: "", active: "inactive", sub: "dead", description: "", enabled: "disabled"))
        #expect(ServiceListing.templateName("getty@tty1.service") == "getty@.service" && ServiceListing.templateName("ssh.service") == "ssh.service")
    }

    @Test("filters by state, type and text")
    func filters() {
        let units = ServiceListing.parseUnits(Self.listing().text)
        #expect(units.filter(ServiceFilter(state: .failed, type: "all").matches).count == 21)
        #expect(units.filter(ServiceFilter(state: .all, type: "timer").matches).count == 20)
        #expect(units.filter(ServiceFilter(state: .active, type: "service", text: "web front").matches).count == 20)
        #expect(units.filter(ServiceFilter(state: .inactive, type: "service", text: "GETTY").matches).isEmpty)
        #expect(units.filter(ServiceFilter(state: .all, type: "service", text: "getty").matches).count == 6)
    }

    @Test("reading the panel host stores what its own systemctl says, and the pages and API show it")
    func readsThePanelHost() async throws {
        let harness = try await ServerHarness()
        let localhost = try #require(try harness.server.hosts.all().first)
        // This host's real state: with systemd as init the units are listed; without it, systemctl's own words are
        // the reading's error and the list is empty.
        let probe = try ShortCommand.run(ServiceListing.listUnits)
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/hosts/\(localhost.id)/services", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("have not been read yet"))
            }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/services/refresh", method: .post) { response in
                #expect(response.status == .ok)
                let object = try json(response)
                #expect(object["read_at"] is String)
                if probe.status == 0 {
                    #expect((object["total"] as? Int ?? 0) > 0 && object["error"] is NSNull)
                } else {
                    let error = object["error"] as? String ?? ""
                    #expect(!error.isEmpty && (object["units"] as? [Any])?.isEmpty == true, "\(object)")
                    #expect(probe.stderr.split(separator: "\n").first.map { error.contains($0.trimmingCharacters(in: .whitespaces)) } ?? false)
                }
            }
            try await client.execute(uri: "/hosts/\(localhost.id)/services", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("id=\"services-as-of\"") && page.contains("Read again"))
                #expect(probe.status == 0 || page.contains("id=\"services-error\""))
            }
            try await client.execute(uri: "/services?state=all&unit=ssh.service", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/api/v1/services?state=bogus&type=Service", method: .get) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try json(response)["errors"] as? [String: String] ?? [:]
                #expect(errors["state"] != nil && errors["type"] != nil)
            }
            // A unit name is only looked up, so any text is a question with an answer: nobody has it.
            try await client.execute(uri: "/api/v1/services?unit=x;y", method: .get) { response in
                #expect(response.status == .ok)
                let items = try json(response)["items"] as? [Any]
                #expect(items?.isEmpty == true)
            }
            try await client.execute(uri: "/api/v1/hosts/999999/services", method: .get) { response in #expect(response.status == .notFound) }
        }
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/services", method: .get) { response in #expect(response.status == .ok) }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/services/refresh", method: .post) { response in
                #expect(response.status == .forbidden)
            }
        }
    }

    @Test("the fleet view lists each host's failed units, and where one unit is, with the hosts that lack it")
    func fleetView() async throws {
        let harness = try await ServerHarness()
        let store = HostReadingStore(database: harness.server.database)
        var ids: [Int64] = []
        for index in 0..<50 {
            var settings = HostSettings()
            settings.name = "node-\(index)"
            settings.address = "192.0.2.\(index + 1)"
            let host = try harness.server.hosts.create(settings, by: .system, now: Date())
            ids.append(host.id)
            var units = ServiceListing.parseUnits(Self.listing().text)
            if index % 10 == 0 { units.removeAll { $0.unit == "app1.service" } }
            try store.save(HostReading(hostID: host.id, readAt: Date(), body: ServiceListing(units: units), error: nil), kind: ServiceListing.kind)
        }
        let first = ids[0]
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/api/v1/services", method: .get) { response in
                let object = try json(response)
                let items = object["items"] as? [[String: Any]] ?? []
                #expect(items.count == 50 * 21)
                #expect(object["unread"] as? [String] == ["localhost"])
            }
            try await client.execute(uri: "/api/v1/services?unit=app1.service", method: .get) { response in
                let object = try json(response)
                #expect((object["items"] as? [[String: Any]])?.count == 45)
                #expect(Set(object["lacking"] as? [String] ?? []) == Set(stride(from: 0, to: 50, by: 10).map { "node-\($0)" }))
            }
            try await client.execute(uri: "/hosts/\(first)/services?state=failed&type=all", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("21 shown.") && page.contains("<code>app0.service</code>") && page.contains("<code>broken.service</code>"))
                #expect(!page.contains("<code>app1.service</code>") && !page.contains("id=\"services-error\""))
            }
            try await client.execute(uri: "/hosts/\(first)/services?type=timer&q=job 7", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("1 shown.") && page.contains("<code>job7.timer</code>") && page.contains("Run job 7 every hour"))
            }
            try await client.execute(uri: "/services?unit=app1.service", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("Hosts without app1.service") && page.contains("node-40"))
            }
        }
    }
}
