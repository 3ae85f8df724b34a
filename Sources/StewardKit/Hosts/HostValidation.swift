import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Checks for every host field that ends up in an inventory, a command line or a file. Each refusal says what is
/// accepted, so a form can show it next to the field.
public enum HostValidation {
    /// A host name as Ansible's inventory and DNS both accept it: dot-separated labels of lowercase letters, digits
    /// and inner hyphens, at most 253 characters. Nothing that could be read as an option or a pattern.
    public static func name(_ text: String) -> String? {
        guard isDNSName(text) else {
            return "use lowercase letters, digits, '-' and '.' (like web-01 or db1.example.com); no spaces, no leading '-', at most 253 characters"
        }
        return nil
    }

    /// An IPv4/IPv6 literal or a DNS name.
    public static func address(_ text: String) -> String? {
        if AddressRange.bytes(text) != nil || isDNSName(text.lowercased()) { return nil }
        return "use an IPv4 or IPv6 address or a DNS name (letters, digits, '-' and '.'); no spaces, no leading '-'"
    }

    public static func port(_ value: Int) -> String? {
        (1...65535).contains(value) ? nil : "use a port from 1 to 65535"
    }

    /// A POSIX user name as shadow-utils creates them.
    public static func sshUser(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard (1...32).contains(bytes.count), let first = bytes.first, isLower(first) || first == 0x5F,
            bytes.dropFirst().allSatisfy({ isLower($0) || isDigit($0) || $0 == 0x5F || $0 == 0x2D })
        else { return "use a Unix user name: lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 32 characters" }
        return nil
    }

    /// Group names become Ansible group names, which must be identifiers; `all` and `ungrouped` are Ansible's own.
    public static func groupName(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard (1...64).contains(bytes.count), let first = bytes.first, isLower(first) || first == 0x5F,
            bytes.dropFirst().allSatisfy({ isLower($0) || isDigit($0) || $0 == 0x5F })
        else { return "use lowercase letters, digits and '_', starting with a letter or '_' (like web_servers), at most 64 characters" }
        guard text != "all", text != "ungrouped" else { return "\"\(text)\" is Ansible's own group; choose another name" }
        return nil
    }

    public static func tag(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard (1...32).contains(bytes.count), bytes.allSatisfy({ isLower($0) || isDigit($0) || $0 == 0x5F || $0 == 0x2D }), bytes[0] != 0x2D else {
            return "tags use lowercase letters, digits, '_' and '-' (not first), at most 32 characters each"
        }
        return nil
    }

    public static func metricsURL(_ text: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme, ["http", "https"].contains(scheme),
            let host = components.host, !host.isEmpty, components.user == nil, text.utf8.count <= 512
        else { return "use an http:// or https:// URL such as http://web-01:9100/metrics, without a user name or password" }
        return nil
    }

    static func isDNSName(_ text: String) -> Bool {
        guard (1...253).contains(text.utf8.count) else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            let bytes = Array(label.utf8)
            guard (1...63).contains(bytes.count), bytes.first != 0x2D, bytes.last != 0x2D else { return false }
            return bytes.allSatisfy { isLower($0) || isDigit($0) || $0 == 0x2D }
        }
    }

    static func isLower(_ byte: UInt8) -> Bool { byte >= 0x61 && byte <= 0x7A }
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
}

/// Host and group variables: a YAML mapping, checked before it is stored and again before it reaches Ansible.
///
/// Refused: anything over 64 KiB or nested deeper than 32, explicit or unusual tags (`!!python/object`, `!vault`,
/// any `!local` tag), anchors and aliases (no "billion laughs"), keys that are not Ansible variable names, and
/// `ansible_*` connection variables, which would let a variable choose what runs on the panel itself
/// (`ansible_ssh_common_args: -o ProxyCommand=...`). Only `ansible_python_interpreter` is allowed of those.
public enum HostVariables {
    public static let maximumBytes = YAMLReader.Limits.variables.maximumBytes
    static let allowedAnsibleVariables: Set<String> = ["ansible_python_interpreter"]

    /// The variables as JSON-ready values, or a message that says what to fix (with a line number where known).
    public static func parse(_ text: String) -> Result<[String: Any], VariablesError> {
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return .success([:]) }
        let value: Any?
        do {
            value = try YAMLReader.read(text, limits: .variables)
        } catch {
            return .failure(VariablesError(error.message))
        }
        guard let mapping = value as? [String: Any] else {
            return .failure(VariablesError("variables must be a YAML mapping of name: value lines, like \"http_port: 8080\""))
        }
        for name in mapping.keys.sorted() {
            guard isVariableName(name) else {
                return .failure(VariablesError("\"\(name)\" is not a variable name; use letters, digits and '_', starting with a letter or '_'"))
            }
            if name.hasPrefix("ansible_"), !allowedAnsibleVariables.contains(name) {
                return .failure(VariablesError("\"\(name)\" is a connection variable that Steward sets itself; it cannot be set here"))
            }
        }
        return .success(mapping)
    }

    static func isVariableName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...128).contains(bytes.count), let first = bytes.first else { return false }
        let isLetter = { (byte: UInt8) in (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F }
        return isLetter(first) && bytes.allSatisfy { isLetter($0) || HostValidation.isDigit($0) }
    }
}

public struct VariablesError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String, line: Int? = nil) {
        self.message = line.map { "line \($0 + 1): " }.map { $0 + message } ?? message
    }
    public var description: String { message }
}
