import Foundation

/// A host as the API shows it (the `Host` schema). Absent values are written as null (`Nullable`), never left out.
public struct HostResource: Codable, Sendable {
    var id: Int64
    var name, address, transport: String
    var sshPort: Int
    var sshUser, become: String
    var groups, tags: [String]
    var variables: JSONValue
    var variablesYAML: String
    var metricsURL: Nullable<String>
    var metricsAllow: [String]
    var notes: String
    var enabled: Bool
    var state: String
    var stateDetail, lastSeenAt: Nullable<String>
    var createdAt, updatedAt: String
    var links: [String: String]

    public init(_ host: Host) {
        id = host.id
        name = host.name
        address = host.address
        transport = host.transport.rawValue
        sshPort = host.sshPort
        sshUser = host.sshUser
        become = host.become.rawValue
        groups = host.groups
        tags = host.tags
        variables = JSONValue(any: (try? HostVariables.parse(host.variables).get()) ?? [String: Any]())
        variablesYAML = host.variables
        metricsURL = Nullable(host.metricsURL)
        metricsAllow = MetricAllowList(text: host.metricsAllow).patterns
        notes = host.notes
        enabled = host.enabled
        state = host.state.rawValue
        stateDetail = Nullable(host.stateDetail)
        lastSeenAt = Nullable(host.lastSeenAt.map(RFC3339.string))
        createdAt = RFC3339.string(host.createdAt)
        updatedAt = RFC3339.string(host.updatedAt)
        links = ["self": "/api/v1/hosts/\(host.id)", "page": "/hosts/\(host.id)"]
    }
}

/// Every host (the `HostList` schema).
struct HostListResource: Codable {
    var items: [HostResource]
}

/// A host's newest facts (the `HostFacts` schema).
struct HostFactsResource: Codable, Sendable {
    struct Filesystem: Codable, Sendable {
        let mount, type: String
        let sizeBytes, availableBytes: Int64
    }
    struct Updates: Codable, Sendable {
        let count, securityCount: Int
        let packages, securityPackages: [String]
    }
    struct User: Codable, Sendable {
        let name: String
        let uid: Int
    }
    struct Group: Codable, Sendable {
        let name: String
        let gid: Int
    }
    let gatheredAt: String
    let jobId: Nullable<Int64>
    let os, kernel: String
    let uptimeSeconds, cpus, memoryMb: Int
    let filesystems: [Filesystem]
    let addresses: [String]
    let updates: Updates
    let rebootRequired: Bool
    let users: [User]
    let groups: [Group]

    enum CodingKeys: String, CodingKey {
        case os, kernel, cpus, filesystems, addresses, updates, users, groups, gatheredAt, jobId, uptimeSeconds, memoryMb, rebootRequired
    }

    init(_ facts: HostFacts) {
        gatheredAt = RFC3339.string(facts.gatheredAt)
        jobId = Nullable(facts.jobID)
        os = facts.os
        kernel = facts.kernel
        uptimeSeconds = facts.uptimeSeconds
        cpus = facts.cpus
        memoryMb = facts.memoryMB
        filesystems = facts.filesystems.map {
            Filesystem(mount: $0.mount, type: $0.type, sizeBytes: $0.sizeBytes, availableBytes: $0.availableBytes)
        }
        addresses = facts.addresses
        updates = Updates(
            count: facts.updates.count, securityCount: facts.securityUpdates.count, packages: facts.updates, securityPackages: facts.securityUpdates)
        rebootRequired = facts.rebootRequired
        users = facts.users.map { User(name: $0.name, uid: $0.id) }
        groups = facts.groups.map { Group(name: $0.name, gid: $0.id) }
    }
}

/// One host with its newest facts (the `HostDetail` schema: the host's fields and `facts`, in one object).
struct HostDetailResource: Codable, Sendable {
    let host: HostResource
    let facts: Nullable<HostFactsResource>

    enum CodingKeys: String, CodingKey { case facts }

    init(host: HostResource, facts: Nullable<HostFactsResource>) {
        self.host = host
        self.facts = facts
    }

    init(from decoder: any Decoder) throws {
        host = try HostResource(from: decoder)
        facts = try decoder.container(keyedBy: CodingKeys.self).decode(Nullable<HostFactsResource>.self, forKey: .facts)
    }

    func encode(to encoder: any Encoder) throws {
        try host.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(facts, forKey: .facts)
    }
}

/// A host group (the `Group` schema).
struct GroupResource: Codable, Sendable {
    let name: String
    let hosts: Int
    let notes: String
    let variables: JSONValue

    init(_ group: HostGroup) {
        name = group.name
        hosts = group.hostCount
        notes = group.notes
        variables = JSONValue(any: (try? HostVariables.parse(group.variables).get()) ?? [String: Any]())
    }
}

/// A group's variables and notes as a client sends them; left out, each is empty.
struct GroupInput: APIInput {
    var variables: Patch<String> = .absent
    var notes: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case variables, notes }
}

/// Steward's SSH public key and the command that authorizes it on a host.
struct SSHIdentityResource: Codable, Sendable {
    let publicKey, authorizeCommand: String
}

/// The fingerprint an administrator compared, to trust a host's key.
struct HostKeyTrustInput: APIInput {
    var fingerprint: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case fingerprint }
}

/// What Steward concluded about a host's SSH key (the `HostKeyVerdict` schema: one shape per status).
struct HostKeyVerdictResource: Encodable, Sendable {
    let verdict: HostKeyVerdict

    enum CodingKeys: String, CodingKey { case status, fingerprint, presented, trusted, detail, message }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch verdict {
        case .trusted(let fingerprint):
            try container.encode("trusted", forKey: .status)
            try container.encode(fingerprint, forKey: .fingerprint)
        case .unconfirmed(let presented):
            try container.encode("unconfirmed", forKey: .status)
            try container.encode(presented, forKey: .presented)
        case .changed(let trusted, let presented):
            try container.encode("changed", forKey: .status)
            try container.encode(trusted, forKey: .trusted)
            try container.encode(presented, forKey: .presented)
        case .unreachable(let detail):
            try container.encode("unreachable", forKey: .status)
            try container.encode(detail, forKey: .detail)
        }
        try container.encode(verdict.message, forKey: .message)
    }
}
