import Foundation

/// Accounts only an admin may change (SECURITY.md class 14): every account on the panel host, every account that
/// holds a Steward role (granted to the user, or to a group it is in), and the membership of granted groups.
/// Otherwise an operator could set a new password for an admin's account and sign in as that admin.
public struct RoleBoundary: Sendable {
    let roles: RoleStore
    /// Unix groups of a user on the panel host (NSS), where Steward resolves group grants at sign-in.
    let groupsOf: @Sendable (String) -> [String]

    public init(roles: RoleStore, groupsOf: @escaping @Sendable (String) -> [String]) {
        self.roles = roles
        self.groupsOf = groupsOf
    }

    /// Why changing the user `name` on `host` needs an admin, or nil when an operator may.
    public func userProblem(_ name: String, on host: Host?, facts: HostFacts?) throws -> String? {
        if let host, host.transport == .local {
            return "\(host.name) is the panel host; only an admin may change its accounts"
        }
        let grants = try roles.list()
        if let grant = grants.first(where: { $0.kind == .user && $0.principal == name }) {
            return "\(name) holds the \(grant.role.rawValue) role in Steward; only an admin may change an account that holds a role"
        }
        var memberOf = Set(groupsOf(name))
        if let facts { memberOf.formUnion(facts.groupMembers.filter { $0.value.members.contains(name) }.map(\.key)) }
        if let grant = grants.first(where: { $0.kind == .group && memberOf.contains($0.principal) }) {
            return "\(name) is in the group \(grant.principal), which holds the \(grant.role.rawValue) role in Steward; only an admin may change it"
        }
        return nil
    }

    /// Why changing the group `name` (or who is in it) needs an admin, or nil.
    public func groupProblem(_ name: String, on host: Host?) throws -> String? {
        if let host, host.transport == .local {
            return "\(host.name) is the panel host; only an admin may change its groups"
        }
        if let grant = try roles.list().first(where: { $0.kind == .group && $0.principal == name }) {
            return "the group \(name) holds the \(grant.role.rawValue) role in Steward; only an admin may change it or add members to it"
        }
        return nil
    }
}
