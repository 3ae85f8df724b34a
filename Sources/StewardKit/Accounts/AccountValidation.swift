import Foundation

/// A request to change one Unix user on hosts; every field is checked before it reaches Ansible.
public struct UserChange: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable, CaseIterable { case create, update, lock, unlock, delete }
    public enum Password: Sendable, Equatable, Codable {
        case unchanged
        case hash(String)
        case generate
        case locked
    }

    public var action: Action
    public var name: String
    public var uid: Int?
    public var primaryGroup: String?
    public var groups: [String]?
    public var shell: String?
    public var home: String?
    public var createHome = true
    public var gecos: String?
    public var password: Password = .unchanged
    /// Days since 1970-01-01 (as chage uses), or nil to leave alone; -1 removes the expiry.
    public var expiresOn: String?
    public var authorizedKeys: [String]?
    public var admin: Bool?
    /// On delete: remove the home directory too.
    public var removeHome = false

    public init(action: Action, name: String) {
        self.action = action
        self.name = name
    }
}

/// A request to change one Unix group.
public struct GroupChange: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable, CaseIterable { case create, update, delete }
    public var action: Action
    public var name: String
    public var gid: Int?
    public var members: [String]?

    public init(action: Action, name: String) {
        self.action = action
        self.name = name
    }
}

/// Rules as strict as useradd's, and the lines between what operators and admins may do.
public enum AccountRules {
    /// Names Debian reserves or that tools treat specially.
    public static let reservedNames: Set<String> = [
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data", "backup", "list", "irc", "gnats",
        "nobody", "nogroup", "systemd-network", "systemd-resolve", "systemd-timesync", "messagebus", "sshd", "_apt", "sudo", "wheel", "adm",
        "shadow", "staff", "users", "disk", "kmem", "tty", "utmp", "all", "none",
    ]
    public static let regularIDs = 1000...59999
    public static let systemIDs = 1...999
    public static let maximumID = 60000

    /// `^[a-z_][a-z0-9_-]*[$]?$`, at most 32 characters, not reserved.
    public static func name(_ text: String, kind: String = "user") -> String? {
        let bytes = Array(text.utf8)
        let isLower = { (b: UInt8) in b >= 0x61 && b <= 0x7A }
        let isDigit = { (b: UInt8) in b >= 0x30 && b <= 0x39 }
        var body = bytes[...]
        if body.last == 0x24 { body = body.dropLast() }
        guard (1...32).contains(bytes.count), let first = body.first, isLower(first) || first == 0x5F,
            body.dropFirst().allSatisfy({ isLower($0) || isDigit($0) || $0 == 0x5F || $0 == 0x2D })
        else {
            return
                "a \(kind) name is lowercase letters, digits, '_' and '-', starting with a letter or '_', optionally ending in '$', at most 32 characters"
        }
        if reservedNames.contains(text) { return "\"\(text)\" is reserved for the system; choose another name" }
        return nil
    }

    public static func id(_ value: Int, kind: String = "uid") -> String? {
        (0...maximumID).contains(value)
            ? nil : "a \(kind) is a number from 0 to \(maximumID) (regular accounts use \(regularIDs.lowerBound)-\(regularIDs.upperBound))"
    }

    /// GECOS: printable text without the separators of /etc/passwd and without template syntax.
    public static func gecos(_ text: String) -> String? {
        guard text.utf8.count <= 255, !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }),
            !text.contains(where: { ":,=".contains($0) }), !text.contains("{{"), !text.contains("{%"), !text.contains("{#")
        else { return "the full name (GECOS) may not contain ':', ',', '=', '{{', '{%', control characters or line breaks, and is at most 255 bytes" }
        return nil
    }

    /// An absolute path with ordinary characters and no "..".
    public static func path(_ text: String, field: String) -> String? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard text.hasPrefix("/"), text.utf8.count <= 255, parts.dropFirst().allSatisfy({ !$0.isEmpty && $0 != ".." && $0 != "." }),
            text.unicodeScalars.allSatisfy({
                ($0.value >= 0x30 && $0.value <= 0x39) || ($0.value >= 0x41 && $0.value <= 0x5A) || ($0.value >= 0x61 && $0.value <= 0x7A)
                    || "/._-+".unicodeScalars.contains($0)
            })
        else { return "the \(field) must be an absolute path of letters, digits and / . _ - + (no spaces, no ..)" }
        return nil
    }

    /// A shell must be one the host lists in /etc/shells.
    public static func shell(_ text: String, allowed: [String]) -> String? {
        if let problem = path(text, field: "shell") { return problem }
        guard allowed.contains(text) else {
            return allowed.isEmpty
                ? "the host's /etc/shells is not known yet; gather its facts first"
                : "\(text) is not in the host's /etc/shells; choose one of " + allowed.joined(separator: ", ")
        }
        return nil
    }

    /// A crypt(3) hash as /etc/shadow holds it ($y$, $6$, $5$, $2b$...).
    public static func passwordHash(_ text: String) -> String? {
        guard text.hasPrefix("$"), (13...256).contains(text.utf8.count),
            text.unicodeScalars.allSatisfy({
                ($0.value >= 0x30 && $0.value <= 0x39) || ($0.value >= 0x41 && $0.value <= 0x5A) || ($0.value >= 0x61 && $0.value <= 0x7A)
                    || "$./=".unicodeScalars.contains($0)
            })
        else { return "give a crypt hash as in /etc/shadow, like $y$j9T$... (from mkpasswd or openssl passwd -6), never the password itself" }
        return nil
    }

    /// One OpenSSH public key line: a known type, base64 that decodes and names the same type, an optional comment.
    public static func sshKey(_ line: String) -> String? {
        let problem = "each authorized key must be one OpenSSH public key line, like \"ssh-ed25519 AAAAC3... user@host\" (no options, no line breaks)"
        let types = [
            "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
            "sk-ecdsa-sha2-nistp256@openssh.com",
        ]
        guard line.utf8.count <= 8192, !line.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return problem }
        let fields = line.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, types.contains(String(fields[0])), let blob = Data(base64Encoded: String(fields[1])), blob.count > 4 else {
            return problem
        }
        let length = Int(blob[0]) << 24 | Int(blob[1]) << 16 | Int(blob[2]) << 8 | Int(blob[3])
        guard blob.count >= 4 + length, String(decoding: blob[4..<(4 + length)], as: UTF8.self) == fields[0] else {
            return "an authorized key's data does not match its type \(fields[0]); paste the .pub file's line unchanged"
        }
        if fields.count == 3, fields[2].contains("{{") || fields[2].contains("{%") { return problem }
        return nil
    }

    /// A date as YYYY-MM-DD.
    public static func date(_ text: String) -> String? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        guard text.count == 10, formatter.date(from: text) != nil else { return "give the expiry as YYYY-MM-DD" }
        return nil
    }

    /// Every problem with a user change, by field. `shells` are the host's, `isAdmin` says who asks.
    public static func problems(_ change: UserChange, shells: [String], isAdmin: Bool) -> [String: String] {
        var errors: [String: String] = [:]
        if let message = name(change.name) { errors["name"] = message }
        if let uid = change.uid {
            if let message = id(uid) {
                errors["uid"] = message
            } else if !isAdmin, !regularIDs.contains(uid) {
                errors["uid"] =
                    "operators manage regular accounts: uid \(regularIDs.lowerBound)-\(regularIDs.upperBound); uid 0 and the system range need an admin"
            }
        }
        if let group = change.primaryGroup, let message = name(group, kind: "group"), !(isAdmin && reservedNames.contains(group)) {
            errors["primary_group"] = message
        }
        for group in change.groups ?? [] {
            if let message = name(group, kind: "group"), !(isAdmin && reservedNames.contains(group)) {
                errors["groups"] = message
                break
            }
        }
        if let shell = change.shell, let message = AccountRules.shell(shell, allowed: shells) { errors["shell"] = message }
        if let home = change.home, let message = path(home, field: "home directory") { errors["home"] = message }
        if let text = change.gecos, let message = gecos(text) { errors["gecos"] = message }
        if case .hash(let hash) = change.password, let message = passwordHash(hash) { errors["password"] = message }
        if let expiry = change.expiresOn, expiry != "never", let message = date(expiry) { errors["expires"] = message }
        for key in change.authorizedKeys ?? [] {
            if let message = sshKey(key) {
                errors["authorized_keys"] = message
                break
            }
        }
        if !isAdmin, change.admin == true || (change.groups ?? []).contains(where: { ["sudo", "wheel", "admin"].contains($0) }) {
            errors["admin"] = "only an admin may give sudo rights"
        }
        return errors
    }

    public static func problems(_ change: GroupChange, isAdmin: Bool) -> [String: String] {
        var errors: [String: String] = [:]
        if let message = name(change.name, kind: "group") { errors["name"] = message }
        if let gid = change.gid {
            if let message = id(gid, kind: "gid") {
                errors["gid"] = message
            } else if !isAdmin, !regularIDs.contains(gid) {
                errors["gid"] =
                    "operators manage regular groups: gid \(regularIDs.lowerBound)-\(regularIDs.upperBound); the system range needs an admin"
            }
        }
        for member in change.members ?? [] {
            if let message = name(member) {
                errors["members"] = message
                break
            }
        }
        return errors
    }
}
