import Foundation

/// A definition of desired state kept in the config repo and converged through playbooks/users.yml.
protocol DesiredDefinition: Sendable {
    /// Where definitions of this kind live in the config repo ("users/" or "users/groups/").
    static var directory: String { get }
    /// "user" or "group", for messages and job titles.
    static var noun: String { get }
    var name: String { get }
    var present: Bool { get }
    var applyTo: [String] { get }
    var yaml: String { get }
    /// users.yml variables that make a host match.
    var convergeVariables: [String: Any] { get }
    func drift(on facts: HostFacts) -> [String]
    /// Problems with the definition for the person saving it (operators may not define system or sudo accounts).
    func problems(isAdmin: Bool) -> [String: String]
    static func parse(_ text: String) throws(AccountError) -> Self
    /// Built from form or JSON fields by name.
    static func from(fields: (String) -> String?) -> Self
}

extension DesiredDefinition {
    var path: String { Self.directory + name + ".yml" }

    static func isDefinition(_ path: String) -> Bool {
        path.hasPrefix(directory) && path.hasSuffix(".yml") && !path.dropFirst(directory.count).contains("/")
    }
}

/// A user as it should be on every host of some host groups, kept in the config repo as users/NAME.yml.
public struct DesiredUser: Sendable, Equatable, DesiredDefinition {
    static let directory = "users/"
    static let noun = "user"

    public var name: String
    public var present = true
    public var uid: Int?
    public var groups: [String]?
    public var shell: String?
    public var gecos: String?
    public var authorizedKeys: [String]?
    /// Host groups (or host names) the definition applies to.
    public var applyTo: [String]

    public init(name: String, applyTo: [String]) {
        self.name = name
        self.applyTo = applyTo
    }

    /// The file's text: plain YAML an operator can also edit with git.
    public var yaml: String {
        var lines = ["# Desired state of the Unix user \(name), kept by Steward.", "name: \(name)", "state: \(present ? "present" : "absent")"]
        if let uid { lines.append("uid: \(uid)") }
        if let groups { lines.append("groups: [" + groups.joined(separator: ", ") + "]") }
        if let shell { lines.append("shell: \(shell)") }
        if let gecos {
            lines.append("gecos: \"" + gecos.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"")
        }
        if let authorizedKeys {
            lines.append("authorized_keys:")
            lines += authorizedKeys.map { "  - \"\($0)\"" }
        }
        lines.append("apply_to: [" + applyTo.joined(separator: ", ") + "]")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A definition file's mapping, read with the repository-file limits (an alias bomb is refused, not expanded).
    static func mapping(_ text: String) throws(AccountError) -> [String: Any] {
        let value: Any?
        do {
            value = try YAMLReader.read(text, limits: .repositoryFile)
        } catch {
            throw AccountError(errors: ["file": error.message])
        }
        guard let object = value as? [String: Any] else { throw AccountError(errors: ["file": "not a YAML mapping"]) }
        return object
    }

    /// Parse and validate a definition file; errors name the field.
    public static func parse(_ text: String) throws(AccountError) -> DesiredUser {
        let object = try DesiredUser.mapping(text)
        var errors: [String: String]
        let name = object["name"] as? String ?? ""
        let applyTo = (object["apply_to"] as? [Any])?.compactMap { "\($0)" } ?? []
        var user = DesiredUser(name: name, applyTo: applyTo)
        user.present = (object["state"] as? String ?? "present") != "absent"
        user.uid = object["uid"] as? Int
        user.groups = (object["groups"] as? [Any])?.compactMap { "\($0)" }
        user.shell = object["shell"] as? String
        user.gecos = object["gecos"] as? String
        user.authorizedKeys = (object["authorized_keys"] as? [Any])?.compactMap { $0 as? String }
        errors = user.problems(isAdmin: true)
        if let shell = user.shell, let problem = AccountRules.path(shell, field: "shell") { errors["shell"] = problem }
        if applyTo.isEmpty || applyTo.contains(where: { HostValidation.groupName($0) != nil && HostValidation.name($0) != nil }) {
            errors["apply_to"] = "list the host groups (or hosts) this user belongs on, like [web_servers]"
        }
        guard errors.isEmpty else { throw AccountError(errors: errors) }
        return user
    }

    /// How one host differs from this definition, in words; empty when it matches.
    public func drift(on facts: HostFacts) -> [String] {
        guard let entry = facts.passwd[name] else { return present ? ["missing"] : [] }
        guard present else { return ["present, should be absent"] }
        var differences: [String] = []
        if let uid, entry.uid != uid { differences.append("uid \(entry.uid), should be \(uid)") }
        if let shell, entry.shell != shell { differences.append("shell \(entry.shell), should be \(shell)") }
        if let gecos, entry.gecos != gecos { differences.append("full name \"\(entry.gecos)\", should be \"\(gecos)\"") }
        if let groups {
            let actual = Set(facts.groupMembers.filter { $0.value.members.contains(name) }.map(\.key))
            let missing = Set(groups).subtracting(actual)
            if !missing.isEmpty { differences.append("not in " + missing.sorted().joined(separator: ", ")) }
        }
        if let shell, !facts.shells.isEmpty, !facts.shells.contains(shell) {
            differences.append("\(shell) is not in this host's /etc/shells")
        }
        return differences
    }

    var convergeVariables: [String: Any] { ["steward_users": [convergeItem]] }

    func problems(isAdmin: Bool) -> [String: String] {
        var change = UserChange(action: .create, name: name)
        change.uid = uid
        change.groups = groups
        change.gecos = gecos
        change.authorizedKeys = authorizedKeys
        return AccountRules.problems(change, shells: [], isAdmin: isAdmin)
    }

    static func from(fields: (String) -> String?) -> DesiredUser {
        var user = DesiredUser(
            name: (fields("name") ?? "").trimmingCharacters(in: .whitespaces), applyTo: HostSettings.list(fields("apply_to") ?? ""))
        user.present = fields("state") != "absent"
        if let uid = fields("uid"), !uid.isEmpty { user.uid = Int(uid) ?? -1 }
        if let groups = fields("groups"), !groups.isEmpty { user.groups = HostSettings.list(groups) }
        if let shell = fields("shell"), !shell.isEmpty { user.shell = shell }
        if let gecos = fields("gecos"), !gecos.isEmpty { user.gecos = gecos }
        if let keys = fields("authorized_keys"), !keys.isEmpty {
            user.authorizedKeys = keys.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        }
        return user
    }

    /// The users.yml item that converges a host to this definition.
    var convergeItem: [String: Any] {
        var item: [String: Any] = ["name": name]
        if !present {
            item["state"] = "absent"
            return item
        }
        if let uid { item["uid"] = uid }
        if let groups {
            item["groups"] = groups
            item["append"] = true
        }
        if let shell { item["shell"] = shell }
        if let gecos { item["comment"] = gecos }
        if let authorizedKeys { item["authorized_keys"] = authorizedKeys }
        return item
    }
}

/// A group as it should be on every host of some host groups, kept in the config repo as users/groups/NAME.yml.
public struct DesiredGroup: Sendable, Equatable, DesiredDefinition {
    static let directory = "users/groups/"
    static let noun = "group"

    public var name: String
    public var present = true
    public var gid: Int?
    public var members: [String]?
    public var applyTo: [String]

    public init(name: String, applyTo: [String]) {
        self.name = name
        self.applyTo = applyTo
    }

    public var yaml: String {
        var lines = ["# Desired state of the Unix group \(name), kept by Steward.", "name: \(name)", "state: \(present ? "present" : "absent")"]
        if let gid { lines.append("gid: \(gid)") }
        if let members { lines.append("members: [" + members.joined(separator: ", ") + "]") }
        lines.append("apply_to: [" + applyTo.joined(separator: ", ") + "]")
        return lines.joined(separator: "\n") + "\n"
    }

    public static func parse(_ text: String) throws(AccountError) -> DesiredGroup {
        let object = try DesiredUser.mapping(text)
        var group = DesiredGroup(name: object["name"] as? String ?? "", applyTo: (object["apply_to"] as? [Any])?.compactMap { "\($0)" } ?? [])
        group.present = (object["state"] as? String ?? "present") != "absent"
        group.gid = object["gid"] as? Int
        group.members = (object["members"] as? [Any])?.compactMap { "\($0)" }
        var errors = group.problems(isAdmin: true)
        if group.applyTo.isEmpty || group.applyTo.contains(where: { HostValidation.groupName($0) != nil && HostValidation.name($0) != nil }) {
            errors["apply_to"] = "list the host groups (or hosts) this group belongs on, like [web_servers]"
        }
        guard errors.isEmpty else { throw AccountError(errors: errors) }
        return group
    }

    public func drift(on facts: HostFacts) -> [String] {
        guard let entry = facts.groupMembers[name] else { return present ? ["missing"] : [] }
        guard present else { return ["present, should be absent"] }
        var differences: [String] = []
        if let gid, entry.gid != gid { differences.append("gid \(entry.gid), should be \(gid)") }
        if let members {
            let missing = Set(members).subtracting(entry.members)
            if !missing.isEmpty { differences.append("missing members " + missing.sorted().joined(separator: ", ")) }
        }
        return differences
    }

    func problems(isAdmin: Bool) -> [String: String] {
        var change = GroupChange(action: .create, name: name)
        change.gid = gid
        change.members = members
        return AccountRules.problems(change, isAdmin: isAdmin)
    }

    static func from(fields: (String) -> String?) -> DesiredGroup {
        var group = DesiredGroup(
            name: (fields("name") ?? "").trimmingCharacters(in: .whitespaces), applyTo: HostSettings.list(fields("apply_to") ?? ""))
        group.present = fields("state") != "absent"
        if let gid = fields("gid"), !gid.isEmpty { group.gid = Int(gid) ?? -1 }
        if let members = fields("members") { group.members = HostSettings.list(members) }
        return group
    }

    /// users.yml variables that converge a host: the group, then each member added to it.
    var convergeVariables: [String: Any] {
        var item: [String: Any] = ["name": name, "state": present ? "present" : "absent"]
        if let gid { item["gid"] = gid }
        let users: [[String: Any]] = present ? (members ?? []).map { ["name": $0, "groups": [name], "append": true] } : []
        return ["steward_groups": [item], "steward_users": users]
    }
}
