import Crypto
import Foundation

/// The data directory: database, TLS material, secret key. Created with mode 0700 and kept that way.
public struct DataDirectory: Sendable {
    public let path: String

    public enum Failure: Error, CustomStringConvertible {
        case cannotCreate(String, String)
        case notADirectory(String)
        case cannotWrite(String, String)
        case refused(String, String)
        case missing(String)
        public var description: String {
            switch self {
            case .cannotCreate(let path, let reason): "cannot create data directory \(path): \(reason); choose another with --data DIR"
            case .notADirectory(let path): "data directory \(path) exists but is not a directory; choose another with --data DIR"
            case .cannotWrite(let path, let reason): "cannot write \(path): \(reason)"
            case .refused(let path, let reason): "refusing data directory \(path): \(reason)"
            case .missing(let path):
                "\(path) is not a Steward data directory (it has no steward.db); give the right one with --data DIR, or start `steward serve --data \(path)` once to create it"
            }
        }
    }

    public init(path: String) {
        self.path = ResourceLocator.absolutePath(path)
    }

    public var databasePath: String { path + "/steward.db" }
    public var tlsDirectory: String { path + "/tls" }
    public var secretKeyPath: String { path + "/secret.key" }

    /// Names that only a Steward data directory holds; a non-empty directory with none of them is someone else's.
    static let markers: Set<String> = ["steward.db", "secret.key", "serve.lock", "steward.json"]

    /// Create the directory (0700) if needed, and tighten its mode if it is looser. An existing directory is refused,
    /// with the reason, when anyone may write it, when a user other than root, the running user or `steward` owns it,
    /// or when it holds files but nothing of Steward's: Steward keeps keys there and would otherwise adopt it.
    public func prepare(serviceUser: uid_t? = PrivilegeSeparation.serviceUID()) throws(Failure) {
        if let facts = FileFacts(path) {
            guard facts.isDirectory else { throw .notADirectory(path) }
            try checkExisting(facts, serviceUser: serviceUser)
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw .cannotCreate(path, Self.reason(errno: errno, fallback: error.localizedDescription))
            }
        }
        guard chmod(path, 0o700) == 0 else { throw .cannotCreate(path, String(cString: strerror(errno))) }
    }

    /// An existing directory that commands which only read (or add a row) may use: it must hold a database.
    public func requireExisting() throws(Failure) {
        guard FileFacts(path)?.isDirectory == true, access(databasePath, F_OK) == 0 else { throw .missing(path) }
    }

    func checkExisting(_ info: FileFacts, serviceUser: uid_t?) throws(Failure) {
        let mode = info.mode
        if mode & 0o002 != 0 {
            throw .refused(
                path,
                "every user may write it (mode \(String(mode, radix: 8))); Steward keeps its keys and database there, so give it a directory of its own, e.g. /var/lib/steward"
            )
        }
        let owners = Set([0, getuid()] + (serviceUser.map { [$0] } ?? []))
        if !owners.contains(info.owner) {
            let name = getpwuid(info.owner).map { String(cString: $0.pointee.pw_name) } ?? "uid \(info.owner)"
            throw .refused(path, "it belongs to \(name), not to root or Steward's own user; give Steward a directory of its own")
        }
        if access(path, W_OK) != 0 {
            throw .refused(path, errno == EROFS ? "it is on a read-only file system; give a writable directory" : String(cString: strerror(errno)))
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        if !entries.isEmpty, !entries.contains(where: Self.markers.contains) {
            let shown = entries.sorted().prefix(3).joined(separator: ", ")
            throw .refused(
                path, "it already holds files that are not Steward's (\(shown)\(entries.count > 3 ? ", ..." : "")); give an empty or new directory")
        }
    }

    static func reason(errno number: Int32, fallback: String) -> String {
        number == EROFS ? "it is on a read-only file system" : fallback
    }

    /// A 256-bit key, made once, used to sign cookies now and to encrypt stored secrets later.
    public func secretKey() throws(Failure) -> SymmetricKey {
        if let data = FileManager.default.contents(atPath: secretKeyPath), data.count == 32 {
            return SymmetricKey(data: data)
        }
        let key = SymmetricKey(size: .bits256)
        let bytes = key.withUnsafeBytes { Data($0) }
        try writePrivateFile(secretKeyPath, bytes)
        return key
    }

    /// Hold DATA/serve.lock for as long as this process runs: one `steward serve` per data directory, and
    /// `restore-self` can tell that Steward is running. Returns false when another process holds it.
    public func holdServeLock() throws(Failure) -> Bool {
        let lockPath = path + "/serve.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .cannotWrite(lockPath, String(cString: strerror(errno))) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return false
        }
        // Deliberately left open: the lock lasts until the process exits, however it exits.
        return true
    }

    /// Whether no process holds DATA/serve.lock now (the lock is not kept).
    public func serveLockIsFree() throws(Failure) -> Bool {
        let lockPath = path + "/serve.lock"
        // Opened, never created: the file belongs to whoever serves (the steward user under privilege separation).
        let fd = open(lockPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return true }
            throw .cannotWrite(lockPath, String(cString: strerror(errno)))
        }
        defer { close(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    /// Write a file readable only by its owner, atomically, so a crash never leaves half a key.
    public func writePrivateFile(_ filePath: String, _ data: Data) throws(Failure) {
        let temporary = filePath + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .cannotWrite(filePath, String(cString: strerror(errno))) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, filePath) == 0 else {
            unlink(temporary)
            throw .cannotWrite(filePath, String(cString: strerror(errno)))
        }
    }
}

/// What lstat says about a path (type, owner, permission bits), read through FileManager: Glibc's `stat` struct is
/// claimed by whichever C module the compiler loads first, which breaks member lookups from one build to the next.
struct FileFacts {
    let isDirectory: Bool
    let isRegularFile: Bool
    let owner: uid_t
    /// Permission bits with setuid, setgid and sticky (st_mode & 07777).
    let mode: UInt16

    init?(_ path: String) {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let type = attributes[.type] as? FileAttributeType,
            let owner = (attributes[.ownerAccountID] as? NSNumber)?.uint32Value,
            let mode = (attributes[.posixPermissions] as? NSNumber)?.uint16Value
        else { return nil }
        isDirectory = type == .typeDirectory
        isRegularFile = type == .typeRegular
        self.owner = owner
        self.mode = mode & 0o7777
    }
}
