import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Disks and network: block devices, mounts, routes, DNS and nftables read-only, with free-space trends")
struct DisksNetworkTests {
    @Test("lsblk, findmnt and ip route JSON flatten with their nesting; other text gives nothing")
    func parses() {
        let lsblk = """
            {"blockdevices": [
              {"name":"vda","type":"disk","size":274877906944,"fstype":null,"mountpoint":null,"model":"QEMU disk","children": [
                {"name":"vda1","type":"part","size":1073741824,"fstype":"vfat","mountpoint":"/boot/efi","model":null},
                {"name":"vda2","type":"part","size":273804165120,"fstype":"LVM2_member","mountpoint":null,"model":null,"children": [
                  {"name":"vg-root","type":"lvm","size":53687091200,"fstype":"ext4","mountpoint":"/","model":null}]}]},
              {"name":"sr0","type":"rom","size":1073741312,"fstype":null,"mountpoint":null,"model":"QEMU DVD-ROM"}]}
            """
        let devices = DisksNetwork.parseLsblk(lsblk)
        #expect(devices.map(\.name) == ["vda", "vda1", "vda2", "vg-root", "sr0"] && devices.map(\.depth) == [0, 1, 1, 2, 0])
        #expect(devices[3].mountPoint == "/" && devices[0].model == "QEMU disk" && devices[1].sizeBytes == 1_073_741_824)
        let findmnt = """
            {"filesystems": [{"target":"/","source":"/dev/mapper/vg-root","fstype":"ext4","options":"rw,relatime,errors=remount-ro","children": [
              {"target":"/proc","source":"proc","fstype":"proc","options":"rw,nosuid,nodev,noexec,relatime"},
              {"target":"/srv/my data","source":"/dev/vdb1","fstype":"xfs","options":"rw,noatime"}]}]}
            """
        let mounts = DisksNetwork.parseFindmnt(findmnt)
        #expect(mounts.map(\.target) == ["/", "/proc", "/srv/my data"] && mounts[0].options == "rw,relatime,errors=remount-ro")
        let routes = DisksNetwork.parseRoutes(
            #"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","protocol":"dhcp","flags":[]},{"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.10","flags":[]}]"#
        )
        #expect(
            routes == [
                .init(destination: "default", gateway: "192.0.2.1", device: "eth0", proto: "dhcp"),
                .init(destination: "192.0.2.0/24", gateway: "", device: "eth0", proto: "kernel"),
            ])
        #expect(DisksNetwork.parseLsblk("lsblk: not found").isEmpty && DisksNetwork.parseFindmnt("").isEmpty && DisksNetwork.parseRoutes("x").isEmpty)
        var body = DisksNetwork()
        body.take("dns", "# comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.com corp.example.com\noptions edns0\n")
        body.take("nftables", "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t}\n}\n\u{1B}[0m")
        #expect(body.dnsServers == ["192.0.2.53", "2001:db8::53"] && body.dnsSearch == ["example.com", "corp.example.com"])
        #expect(body.nftables.hasPrefix("table inet filter {\n\tchain input {") && !body.nftables.contains("\u{1B}"))
    }

    @Test("free-space trends come from the host's node_filesystem_avail_bytes series over the last week")
    func trends() async throws {
        let harness = try await ServerHarness()
        let host = try ServiceActionsTests.readHost(harness, name: "db1")
        let store = harness.server.metrics
        let now = Date(timeIntervalSince1970: 1_796_515_200)
        let labels = [("/", "root"), ("/srv", "srv")].map { mount, _ in
            PrometheusText.canonicalLabels([("device", "/dev/vda"), ("mountpoint", mount)])
        }
        let ids = try store.resolve(hostID: host.id, series: labels.map { ("node_filesystem_avail_bytes", $0, .gauge) }, now: now)
        // Root loses 1 GiB a day from 50 GiB over six days; /srv gains.
        let start = EpochMilliseconds.from(now) - 6 * 86_400_000
        for hour in 0...(6 * 24) {
            let time = start + Int64(hour) * 3_600_000
            _ = store.append([(ids[0], time, 50 * 1_073_741_824 - Double(hour) / 24 * 1_073_741_824), (ids[1], time, 1e9 + Double(hour) * 1e6)])
        }
        let trends = FilesystemTrend.trends(store, hostID: host.id, now: now)
        #expect(trends.map(\.mountPoint) == ["/", "/srv"])
        #expect(abs(trends[0].freeBytesPerDay + 1_073_741_824) < 50_000_000 && abs((trends[0].daysUntilFull ?? 0) - 44) < 1.5, "\(trends[0])")
        #expect(trends[1].freeBytesPerDay > 0 && trends[1].daysUntilFull == nil)
        #expect(FilesystemTrend.trends(store, hostID: host.id + 1, now: now).isEmpty)
    }

    @Test("the panel host's disks and network are read for real")
    func panelHost() async throws {
        let harness = try await ServerHarness()
        let localhost = try #require(try harness.server.hosts.all().first { $0.transport == .local })
        let routes = try ShortCommand.run(["ip", "-j", "route", "show"])
        let resolv = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/disks-network/refresh", method: .post) { response in
                #expect(response.status == .ok)
                let object = try json(response)
                let mounts = (object["mounts"] as? [[String: Any]] ?? []).compactMap { $0["target"] as? String }
                #expect(mounts.contains("/"), "\(object["errors"] ?? "")")
                #expect((object["routes"] as? [Any])?.count == DisksNetwork.parseRoutes(routes.stdout).count)
                let servers = resolv.split(separator: "\n").filter { $0.hasPrefix("nameserver ") }.map { String($0.split(separator: " ")[1]) }
                #expect(object["dns_servers"] as? [String] == servers)
            }
            try await client.execute(uri: "/hosts/\(localhost.id)/system", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("id=\"system-as-of\"") && page.contains("id=\"system-mounts\"") && page.contains("Disks and network</a>"))
            }
        }
    }
}
