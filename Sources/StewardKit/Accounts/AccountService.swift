import Foundation
import HTTPTypes

/// Turns validated account changes into a run of playbooks/users.yml on one host, with the facts they rely on.
public struct AccountService: Sendable {
    public let engine: Engine
    public let boundary: RoleBoundary

    public init(engine: Engine, boundary: RoleBoundary) {
        self.engine = engine
        self.boundary = boundary
    }

    /// A change on a disabled host is refused up front (409), before anything is validated or queued.
    static func requireEnabled(_ host: Host) throws {
        guard host.enabled else {
            throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it on its host page before changing its accounts")
        }
    }

    public struct Prepared: Sendable {
        public var request: JobRequest
        /// A generated password, shown once to the person who asked.
        public var generatedPassword: String?
    }

    /// The sudo group this host uses (sudo on Debian, wheel on Red Hat), if it has one.
    static func sudoGroup(_ facts: HostFacts?) -> String? {
        guard let facts else { return nil }
        return ["sudo", "wheel"].first { facts.groupMembers[$0] != nil }
    }

    /// Validate and build the job for a user change; throws `Problem`-ready field errors as `AccountError`.
    public func prepare(_ change: UserChange, on host: Host, by who: AuditActor, isAdmin: Bool) throws -> Prepared {
        try Self.requireEnabled(host)
        let facts = try HostFacts.latest(engine.database, hostID: host.id)
        var errors = AccountRules.problems(change, shells: facts?.shells ?? [], isAdmin: isAdmin)
        let existing = facts?.passwd[change.name]
        switch change.action {
        case .create:
            if existing != nil { errors["name"] = "\(change.name) already exists on \(host.name); edit it instead" }
        case .update, .lock, .unlock, .delete:
            if facts != nil, existing == nil { errors["name"] = "\(change.name) does not exist on \(host.name) (as of its last facts)" }
        }
        if !isAdmin, let existing {
            let sudo = Self.sudoGroup(facts)
            if !AccountRules.regularIDs.contains(existing.uid) {
                errors["name"] = "\(change.name) is a system account (uid \(existing.uid)); only an admin may change it"
            } else if let sudo, facts?.groupMembers[sudo]?.members.contains(change.name) == true {
                errors["name"] = "\(change.name) has sudo rights; only an admin may change it"
            }
        }
        if !isAdmin {
            if let problem = try boundary.userProblem(change.name, on: host, facts: facts) { errors["name"] = problem }
            for group in (change.groups ?? []) + [change.primaryGroup].compactMap({ $0 }) {
                if let problem = try boundary.groupProblem(group, on: nil) { errors["groups"] = problem }
            }
        }
        if change.admin == true, Self.sudoGroup(facts) == nil { errors["admin"] = "\(host.name) has no sudo or wheel group" }
        guard errors.isEmpty else { throw AccountError(errors: errors) }

        var item: [String: Any] = ["name": change.name]
        var generated: String?
        switch change.action {
        case .delete:
            item["state"] = "absent"
            item["remove"] = change.removeHome
        case .lock:
            item["password_lock"] = true
        case .unlock:
            item["password_lock"] = false
        case .create, .update:
            if let uid = change.uid { item["uid"] = uid }
            if let group = change.primaryGroup { item["group"] = group }
            var groups = change.groups
            if let admin = change.admin, let sudo = Self.sudoGroup(facts) {
                var current = groups ?? (facts?.groupMembers.filter { $0.value.members.contains(change.name) }.map(\.key) ?? [])
                current.removeAll { $0 == sudo }
                if admin { current.append(sudo) }
                groups = current
            }
            if let groups {
                item["groups"] = groups.sorted()
                item["append"] = false
            }
            if let shell = change.shell { item["shell"] = shell }
            if let home = change.home { item["home"] = home }
            if change.action == .create { item["create_home"] = change.createHome }
            if let gecos = change.gecos { item["comment"] = gecos }
            switch change.password {
            case .unchanged: break
            case .hash(let hash): item["password"] = hash
            case .locked: item["password_lock"] = true
            case .generate:
                let password = Self.generatePassword()
                generated = password
                item["password"] = try Self.hash(password)
            }
            if let expiry = change.expiresOn {
                item["expires"] = expiry == "never" ? -1 : Self.epochSeconds(expiry)
            }
            if let keys = change.authorizedKeys { item["authorized_keys"] = keys }
        }
        let variables = String(
            decoding: try JSONSerialization.data(withJSONObject: ["steward_users": [item]], options: [.sortedKeys]), as: UTF8.self)
        var run = PlaybookRun(playbook: "playbooks/users.yml", targets: [host.name])
        run.variables = variables
        var request = try engine.request(run, startedBy: who.actor, reason: "\(change.action.rawValue) user \(change.name)")
        request.title = "\(change.action.rawValue.capitalized) user \(change.name) on \(host.name)"
        request.source = who.source
        return Prepared(request: request, generatedPassword: generated)
    }

    public func prepare(_ change: GroupChange, on host: Host, by who: AuditActor, isAdmin: Bool) throws -> Prepared {
        try Self.requireEnabled(host)
        let facts = try HostFacts.latest(engine.database, hostID: host.id)
        var errors = AccountRules.problems(change, isAdmin: isAdmin)
        let existing = facts?.groupMembers[change.name]
        switch change.action {
        case .create:
            if existing != nil { errors["name"] = "the group \(change.name) already exists on \(host.name)" }
        case .update, .delete:
            if facts != nil, existing == nil { errors["name"] = "the group \(change.name) does not exist on \(host.name)" }
        }
        if !isAdmin, let existing, !AccountRules.regularIDs.contains(existing.gid) {
            errors["name"] = "\(change.name) is a system group (gid \(existing.gid)); only an admin may change it"
        }
        if !isAdmin, let problem = try boundary.groupProblem(change.name, on: host) { errors["name"] = problem }
        for member in change.members ?? [] where facts != nil && facts?.passwd[member] == nil {
            errors["members"] = "\(member) is not a user on \(host.name)"
        }
        guard errors.isEmpty else { throw AccountError(errors: errors) }
        var group: [String: Any] = ["name": change.name, "state": change.action == .delete ? "absent" : "present"]
        if let gid = change.gid { group["gid"] = gid }
        var users: [[String: Any]] = []
        if let members = change.members, change.action != .delete {
            let current = existing?.members ?? []
            users = members.filter { !current.contains($0) }.map { ["name": $0, "groups": [change.name], "append": true] }
            group["remove_members"] = current.filter { !members.contains($0) }
        }
        let variables = String(
            decoding: try JSONSerialization.data(withJSONObject: ["steward_groups": [group], "steward_users": users], options: [.sortedKeys]),
            as: UTF8.self)
        var run = PlaybookRun(playbook: "playbooks/users.yml", targets: [host.name])
        run.variables = variables
        var request = try engine.request(run, startedBy: who.actor, reason: "\(change.action.rawValue) group \(change.name)")
        request.title = "\(change.action.rawValue.capitalized) group \(change.name) on \(host.name)"
        request.source = who.source
        return Prepared(request: request, generatedPassword: nil)
    }

    static func generatePassword() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return String((0..<20).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
    }

    /// SHA-512 crypt through `openssl passwd -6 -stdin` (argv; the password goes through stdin, never argv).
    static func hash(_ password: String) throws -> String {
        let result = try ShortCommand.run(["openssl", "passwd", "-6", "-stdin"], timeout: 10, input: password + "\n")
        let hash = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, hash.hasPrefix("$6$") else { throw AccessError("openssl could not hash the generated password") }
        return hash
    }

    static func epochSeconds(_ date: String) -> Int {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return Int(formatter.date(from: date)?.timeIntervalSince1970 ?? 0)
    }
}

public struct AccountError: Error, Equatable {
    public var errors: [String: String]
}
