import Foundation

/// A host as the API shows it (the `Host` schema). Absent values are written as null (`Nullable`), never left out.
public struct HostResource: Encodable, Sendable {
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

    enum CodingKeys: String, CodingKey {
        case id, name, address, transport, sshPort = "ssh_port", sshUser = "ssh_user", become, groups, tags, variables
        case variablesYAML = "variables_yaml", metricsURL = "metrics_url", metricsAllow = "metrics_allow", notes, enabled, state
        case stateDetail = "state_detail", lastSeenAt = "last_seen_at", createdAt = "created_at", updatedAt = "updated_at", links
    }
}

/// Every host (the `HostList` schema).
struct HostListResource: Encodable {
    var items: [HostResource]
}
