import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Paths on the panel host that hold its secrets: only an admin may back them up, browse or download them from a
/// snapshot, or restore over them (SECURITY.md class 14). Patterns are absolute paths whose components may use
/// shell globs; `sensitive_paths` in the configuration adds to the built-in list.
public struct SensitivePaths: Sendable, Equatable {
    /// Shadow files, SSH host keys and users' SSH keys, TLS private keys.
    public static let builtin = [
        "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/ssh/ssh_host_*_key", "/root/.ssh", "/home/*/.ssh",
        "/etc/ssl/private", "/etc/letsencrypt",
    ]
    /// Where a restore onto the panel host would give root (cron, sudoers, system binaries): operators may not
    /// restore over these either.
    public static let systemRestoreTargets = ["/etc", "/root", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib64", "/var/spool/cron", "/var/lib"]

    public let patterns: [String]

    public init(dataDirectory: String, tlsKeyPath: String? = nil, extra: [String] = []) {
        var patterns = Self.builtin + [dataDirectory]
        if let tlsKeyPath { patterns.append(tlsKeyPath) }
        self.patterns = patterns + extra
    }

    /// The pattern `path` lies within (the path is, or is under, a sensitive one), or nil.
    public func within(_ path: String) -> String? {
        patterns.first { Self.matches(pattern: $0, path: path, allowLonger: true, allowShorter: false) }
    }

    /// The pattern `path` overlaps: within it, or containing it (backing up /etc includes /etc/shadow).
    public func overlapping(_ path: String) -> String? {
        patterns.first { Self.matches(pattern: $0, path: path, allowLonger: true, allowShorter: true) }
    }

    /// Whether a restore target on the panel host needs an admin.
    public func restoreTargetNeedsAdmin(_ path: String) -> String? {
        if let pattern = overlapping(path) { return pattern }
        return Self.systemRestoreTargets.first { Self.matches(pattern: $0, path: path, allowLonger: true, allowShorter: true) }
    }

    static func matches(pattern: String, path: String, allowLonger: Bool, allowShorter: Bool) -> Bool {
        let wanted = pattern.split(separator: "/").map(String.init)
        let given = path.split(separator: "/").map(String.init)
        if given.count > wanted.count, !allowLonger { return false }
        if given.count < wanted.count, !allowShorter { return false }
        for (glob, component) in zip(wanted, given) where fnmatch(glob, component, 0) != 0 {
            return false
        }
        return true
    }
}
