import CSpawn
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Splitting `steward serve` into a root helper and an unprivileged web process, OpenSSH-style: the system user,
/// handing it the data directory, dropping privileges for good, and starting the web process.
public enum PrivilegeSeparation {
    public static let userName = "steward"

    /// Where the root helper lists the process groups it started for one data directory: under /run (root's, and
    /// emptied at boot, when every such process is gone anyway).
    public static func helperProcessGroupsFile(dataDirectory: String) throws -> String {
        let directory = "/run/steward"
        mkdir(directory, 0o700)
        guard let facts = FileFacts(directory), facts.isDirectory, facts.owner == 0, facts.mode & 0o022 == 0 else {
            throw Failure("\(directory) must be a directory owned by root and writable only by it")
        }
        let name = dataDirectory.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
        return directory + "/process-groups" + name
    }

    /// The service user's uid, when the account exists.
    public static func serviceUID() -> uid_t? { getpwnam(userName).map { $0.pointee.pw_uid } }

    public struct Account: Sendable, Equatable {
        public var uid: uid_t
        public var gid: gid_t
    }

    /// The `steward` system user, created (with its own group, no login shell, no home made) when it is missing.
    public static func ensureUser(home: String, logger: Logger) throws -> Account {
        if let account = lookup() { return account }
        let result = try ShortCommand.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin", "--", userName],
            timeout: 30)
        guard result.status == 0, let account = lookup() else {
            throw Failure("could not create the system user \(userName): useradd exited \(result.status): \(result.stderr)")
        }
        logger.notice("created the system user the web process runs as", metadata: ["user": "\(userName)", "uid": "\(account.uid)"])
        return account
    }

    public static func lookup() -> Account? {
        guard let entry = getpwnam(userName) else { return nil }
        return Account(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// A data directory made by an earlier version belongs to root: hand it to `steward` at start, and say so. Files
    /// that root made since (a CLI command while the server was down creates the database's -wal) are handed over
    /// too. Modes stay as they are (0600 files, 0700 directories), so only `steward` and root can read them.
    public static func handOver(dataDirectory path: String, to account: Account, logger: Logger) throws {
        var changed = 0
        for entry in [""] + (FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String }.map { "/" + $0 } ?? []) {
            let full = path + entry
            let owner = (try? FileManager.default.attributesOfItem(atPath: full)[.ownerAccountID] as? NSNumber)?.uint32Value
            guard owner != account.uid else { continue }
            try change(full, account)
            changed += 1
        }
        if changed > 0 {
            logger.notice(
                "handed the data directory to the steward user (files made by root: an earlier version or a CLI command)",
                metadata: ["path": "\(path)", "entries": "\(changed)"])
        }
    }

    /// The web process must be able to walk down to the data directory: say which parent stops it, and how to fix it.
    public static func checkReachable(dataDirectory path: String, by account: Account) throws {
        var ancestor = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent()
        while true {
            let parent = ancestor.path
            let attributes = try FileManager.default.attributesOfItem(atPath: parent)
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0
            let owner = (attributes[.ownerAccountID] as? NSNumber)?.uint32Value
            let group = (attributes[.groupOwnerAccountID] as? NSNumber)?.uint32Value
            let searchable = owner == account.uid ? mode & 0o100 != 0 : group == account.gid ? mode & 0o010 != 0 : mode & 0o001 != 0
            guard searchable else {
                throw Failure(
                    "the \(userName) user cannot reach the data directory \(path): \(parent) is mode \(String(mode, radix: 8)) and not theirs. "
                        + "Run chmod o+x \(parent), choose a data directory under a path \(userName) can walk, or set privilege_separation=false")
            }
            if parent == "/" { return }
            ancestor = ancestor.deletingLastPathComponent()
        }
    }

    static func change(_ path: String, _ account: Account) throws {
        // lchown: a symbolic link is handed over itself, never what it points to.
        guard lchown(path, account.uid, account.gid) == 0 else { throw Failure("cannot hand \(path) to steward: \(String(cString: strerror(errno)))") }
    }

    /// The web process dropped its privileges before main (CSpawn's steward_privsep_early); make sure it did.
    public static func verifyDropped() throws {
        guard let account = lookup() else { throw Failure("the steward user does not exist") }
        guard getuid() == account.uid, geteuid() == account.uid, getgid() == account.gid, setuid(0) != 0,
            steward_no_new_privs() == 1
        else { throw Failure("the web process still holds privileges (uid \(getuid()), euid \(geteuid())); refusing to serve") }
    }

    /// Start the web process: this binary again, as `steward serve ... --privsep-fd 3`, with the helper's socket as
    /// descriptor 3 and nothing else inherited. It drops privileges before it reads anything.
    public static func spawnWebProcess(arguments: [String], socket: Int32) throws -> pid_t {
        let executable = "/proc/self/exe"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, socket, 3)
        steward_spawn_add_closefrom(&actions, 4)
        var path = [CChar](repeating: 0, count: 4096)
        let length = readlink(executable, &path, path.count - 1)
        let program = length > 0 ? String(cString: path) : CommandLine.arguments[0]
        let argv = ([program] + arguments + ["--privsep-fd", "3"]).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, program, &actions, nil, argv, environ)
        guard status == 0 else { throw Failure("could not start the web process \(program): \(String(cString: strerror(status)))") }
        return pid
    }

    /// A socket pair for the helper and the web process; both ends close on exec (the child gets a dup).
    public static func socketPair() throws -> (helper: Int32, web: Int32) {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw Failure("socketpair: \(String(cString: strerror(errno)))")
        }
        return (pair[0], pair[1])
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
