import Foundation
import Testing

@testable import StewardKit

@Suite("Inventories: connection variables only where a host needs them, tags as groups")
struct InventoryTests {
    static func host(
        _ id: Int64, _ name: String, address: String, transport: StewardKit.Host.Transport = .ssh, port: Int = 22, user: String = "root",
        become: StewardKit.Host.Become = .none, groups: [String] = [], tags: [String] = []
    ) -> StewardKit.Host {
        StewardKit.Host(
            id: id, name: name, address: address, transport: transport, sshPort: port, sshUser: user, become: become, groups: groups, tags: tags,
            variables: "", metricsURL: nil, notes: "", enabled: true, state: .unknown, stateDetail: nil, lastSeenAt: nil, createdAt: Date(),
            updatedAt: Date())
    }

    static let hosts = [
        host(1, "localhost", address: "127.0.0.1", transport: .local, tags: ["panel"]),
        host(2, "web-01", address: "192.0.2.11", user: "ansible", groups: ["web"], tags: ["prod", "eu-west"]),
        host(3, "db1.example.com", address: "db1.example.com", port: 2222, become: .sudo, tags: ["prod"]),
    ]
    static let groups = [HostGroup(id: 1, name: "web", variables: "tier: front\n", notes: "", hostCount: 1)]

    static func hostVars(_ list: [String: Any], _ name: String) -> [String: Any] {
        ((list["_meta"] as? [String: Any])?["hostvars"] as? [String: Any])?[name] as? [String: Any] ?? [:]
    }

    @Test("steward inventory sets no variable that would outrank ansible -c, -u or -b without need")
    func onlyNeededConnectionVariables() {
        let list = Inventory.dynamicList(hosts: Self.hosts, groups: Self.groups)
        let local = Self.hostVars(list, "localhost")
        #expect(local["ansible_connection"] as? String == "local" && local["ansible_host"] == nil && local["ansible_become"] == nil)
        let web = Self.hostVars(list, "web-01")
        #expect(web["ansible_connection"] == nil && web["ansible_port"] == nil && web["ansible_become"] == nil)
        #expect(web["ansible_host"] as? String == "192.0.2.11" && web["ansible_user"] as? String == "ansible")
        #expect(web["steward_tags"] as? [String] == ["prod", "eu-west"])
        let db = Self.hostVars(list, "db1.example.com")
        #expect(db["ansible_connection"] == nil && db["ansible_host"] == nil && db["ansible_port"] as? Int == 2222)
        #expect(db["ansible_become"] as? Bool == true && db["ansible_become_method"] as? String == "sudo")
    }

    @Test("Steward's own runs still pin every connection setting, so a play cannot move a host's tasks or login")
    func engineRunsPinTheConnection() throws {
        let document = try Inventory.document(hosts: Self.hosts, groups: Self.groups, identity: SSHIdentity(directory: "/x"))
        let all = try #require(document["all"] as? [String: Any])
        let web = try #require((all["hosts"] as? [String: Any])?["web-01"] as? [String: Any])
        #expect(web["ansible_connection"] as? String == "ssh" && web["ansible_port"] as? Int == 22 && web["ansible_become"] as? Bool == false)
        let db = try #require((all["hosts"] as? [String: Any])?["db1.example.com"] as? [String: Any])
        #expect(db["ansible_host"] as? String == "db1.example.com")
        let tagGroup = try #require((all["children"] as? [String: Any])?["tag_prod"] as? [String: Any])
        #expect((tagGroup["hosts"] as? [String: Any])?.keys.sorted() == ["db1.example.com", "web-01"])
    }

    @Test("each tag is a group named tag_ and the tag as an identifier; the tags stay a variable too")
    func tagsAreGroups() {
        #expect(Inventory.tagGroup("prod") == "tag_prod" && Inventory.tagGroup("eu-west") == "tag_eu_west")
        #expect(Inventory.tagGroup("Web.1") == "tag_web_1" && Inventory.tagGroup("a_b") == "tag_a_b")
        let list = Inventory.dynamicList(hosts: Self.hosts, groups: Self.groups)
        #expect((list["tag_prod"] as? [String: Any])?["hosts"] as? [String] == ["db1.example.com", "web-01"])
        #expect((list["tag_eu_west"] as? [String: Any])?["hosts"] as? [String] == ["web-01"])
        #expect((list["tag_panel"] as? [String: Any])?["hosts"] as? [String] == ["localhost"])
        #expect((list["web"] as? [String: Any])?["hosts"] as? [String] == ["web-01"])
        let children = (list["all"] as? [String: Any])?["children"] as? [String] ?? []
        #expect(Set(["tag_prod", "tag_eu_west", "tag_panel", "web", "ungrouped"]).isSubset(of: children))
        // Every host is in some group now, so none is left ungrouped.
        #expect((list["ungrouped"] as? [String: Any])?["hosts"] as? [String] == [])
    }

    @Test("a group of the operator's own named like a tag group keeps its members and variables")
    func ownGroupWinsOverATagGroup() {
        var hosts = Self.hosts
        hosts[1].groups = ["tag_prod"]
        let list = Inventory.dynamicList(hosts: hosts, groups: [HostGroup(id: 2, name: "tag_prod", variables: "x: 1\n", notes: "", hostCount: 1)])
        let group = list["tag_prod"] as? [String: Any] ?? [:]
        #expect(group["hosts"] as? [String] == ["web-01"] && (group["vars"] as? [String: Any])?["x"] as? Int == 1)
    }
}
