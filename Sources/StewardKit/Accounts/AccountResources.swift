import Foundation

// The accounts API's replies as Encodable types (the schemas in APISchemas+Areas.swift describe them).

/// Users across the fleet: which hosts have each, and where the same name or uid disagrees.
struct AccountMatrixResource: Codable, Sendable {
    struct Cell: Codable, Sendable {
        let uid, gid: Int
        let shell: String
    }
    struct User: Codable, Sendable {
        let name: String
        let hosts: [String: Cell]
    }
    struct UIDConflict: Codable, Sendable {
        let name: String
        let uids: [Int]
    }
    struct NameConflict: Codable, Sendable {
        let uid: Int
        let names: [String]
    }
    struct Conflicts: Codable, Sendable {
        let uid: [UIDConflict]
        let name: [NameConflict]
    }
    let hosts: [String]
    let users: [User]
    let conflicts: Conflicts

    init(_ matrix: AccountsController.Matrix) {
        hosts = matrix.hosts
        users = matrix.cells.keys.sorted().map { name in
            User(name: name, hosts: matrix.cells[name]!.mapValues { Cell(uid: $0.uid, gid: $0.gid, shell: $0.shell) })
        }
        conflicts = Conflicts(
            uid: matrix.uidConflicts.sorted { $0.key < $1.key }.map { UIDConflict(name: $0.key, uids: $0.value) },
            name: matrix.nameConflicts.sorted { $0.key < $1.key }.map { NameConflict(uid: $0.key, names: $0.value) })
    }
}

/// One host's users and groups, from its newest facts.
struct HostAccountsResource: Codable, Sendable {
    struct User: Codable, Sendable {
        let name: String
        let uid, gid: Int
        let gecos, home, shell: String
        let system: Bool
        let groups: [String]
    }
    struct Group: Codable, Sendable {
        let name: String
        let gid: Int
        let members: [String]
        let system: Bool
    }
    let asOf: String
    let shells: [String]
    let users: [User]
    let groups: [Group]

    init(_ facts: HostFacts) {
        asOf = RFC3339.string(facts.gatheredAt)
        shells = facts.shells
        users = facts.passwd.sorted { $0.key < $1.key }.map { name, entry in
            User(
                name: name, uid: entry.uid, gid: entry.gid, gecos: entry.gecos, home: entry.home, shell: entry.shell,
                system: !AccountRules.regularIDs.contains(entry.uid),
                groups: facts.groupMembers.filter { $0.value.members.contains(name) }.map(\.key).sorted())
        }
        groups = facts.groupMembers.sorted { $0.key < $1.key }.map { name, entry in
            Group(name: name, gid: entry.gid, members: entry.members, system: !AccountRules.regularIDs.contains(entry.gid))
        }
    }
}

/// A job started for a user change, with the password Steward generated for a new user (shown once).
struct UserChangeAccepted: Codable, Sendable {
    let job: JobResource
    let generatedPassword: String?

    enum CodingKeys: String, CodingKey { case generatedPassword = "generated_password" }

    init(job: JobResource, generatedPassword: String?) {
        self.job = job
        self.generatedPassword = generatedPassword
    }

    init(from decoder: any Decoder) throws {
        job = try JobResource(from: decoder)
        generatedPassword = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .generatedPassword)
    }

    func encode(to encoder: any Encoder) throws {
        try job.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(generatedPassword, forKey: .generatedPassword)
    }
}
