import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Host overview: quick readings of OS, load, memory, filesystems, addresses, ports and logins")
struct OverviewTests {
    @Test("df, ip -j and ss lines of a real-sized host parse, with the odd ones left out")
    func parses() throws {
        var df = ["Filesystem                 Type     1B-blocks        Used    Available Mounted on"]
        for index in 0..<40 {
            df.append("/dev/mapper/vg-data\(index) ext4 \(1_000_000_000 + index) \(500_000_000 + index) 499999000 /srv/data \(index)")
        }
        df.append("overlay overlay 100 - 50 /broken")
        let filesystems = HostOverview.parseDF(df.joined(separator: "\n"))
        #expect(filesystems.count == 40 && filesystems[3].mountPoint == "/srv/data 3" && filesystems[3].sizeBytes == 1_000_000_003)
        #expect(Int(filesystems[0].usedPercent) == 50)

        let ip = """
            [{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"operstate":"UNKNOWN","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet6","local":"::1","prefixlen":128}]},
             {"ifindex":2,"ifname":"eth0","operstate":"UP","address":"52:54:00:12:34:56","addr_info":[{"family":"inet","local":"192.0.2.10","prefixlen":24}]},
             {"ifindex":3,"ifname":"wg0","operstate":"DOWN"}]
            """
        let interfaces = HostOverview.parseIP(ip)
        #expect(interfaces.map(\.name) == ["lo", "eth0", "wg0"])
        #expect(interfaces[0].addresses == ["127.0.0.1/8", "::1/128"] && interfaces[1].state == "UP" && interfaces[2].addresses.isEmpty)
        #expect(HostOverview.parseIP("Object \"address\" is unknown").isEmpty)

        let ss = """
            udp   UNCONN 0      0                 127.0.0.53%lo:53         0.0.0.0:*    users:(("systemd-resolve",pid=512,fd=13))
            tcp   LISTEN 0      128                     0.0.0.0:22         0.0.0.0:*    users:(("sshd",pid=34,fd=3),("sshd",pid=35,fd=3))
            tcp   LISTEN 0      4096                  127.0.0.1:8443       0.0.0.0:*
            """
        let sockets = HostOverview.parseSS(ss)
        #expect(sockets.count == 3)
        #expect(sockets[0].local == "127.0.0.53%lo:53" && sockets[0].process == "systemd-resolve (512)")
        #expect(sockets[1].process == "sshd (34), sshd (35)" && sockets[2].process == "")
    }

    @Test("the panel host's overview is read for real and matches what its own commands say")
    func panelHost() async throws {
        let harness = try await ServerHarness()
        let localhost = try #require(try harness.server.hosts.all().first { $0.transport == .local })
        let kernel = try ShortCommand.run(["uname", "-srm"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let cpus = Int(try ShortCommand.run(["nproc"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let release = try String(contentsOfFile: "/etc/os-release", encoding: .utf8)
        try await harness.test(as: [.operator]) { client in
            try await client.execute(uri: "/hosts/\(localhost.id)/overview", method: .get) { response in
                #expect(String(buffer: response.body).contains("id=\"overview-never-read\""))
            }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/overview/refresh", method: .post) { response in
                #expect(response.status == .ok)
                let object = try json(response)
                #expect(object["kernel"] as? String == kernel && object["cpus"] as? Int == cpus)
                #expect(release.contains("PRETTY_NAME=\"\(object["os"] as? String ?? "-")\""))
                #expect((object["uptime_seconds"] as? Double ?? 0) > 0 && (object["load"] as? [Double])?.count == 3)
                #expect((object["memory_total_bytes"] as? Int ?? 0) > 0)
                #expect(!(object["filesystems"] as? [Any] ?? []).isEmpty, "\(object)")
                #expect((object["interfaces"] as? [[String: Any]])?.contains { $0["name"] as? String == "lo" } == true)
            }
            try await client.execute(uri: "/hosts/\(localhost.id)/overview", method: .get) { response in
                let page = String(buffer: response.body)
                #expect(page.contains("id=\"overview-as-of\"") && page.contains(kernel) && page.contains("id=\"host-tabs\""))
            }
        }
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/overview", method: .get) { response in
                #expect(response.status == .ok)
                #expect((try? json(response))?["kernel"] as? String == kernel)
            }
            try await client.execute(uri: "/api/v1/hosts/\(localhost.id)/overview/refresh", method: .post) { response in
                #expect(response.status == .forbidden)
            }
        }
    }
}
