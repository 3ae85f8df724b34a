import Crypto
import Foundation

/// The data directory: database, TLS material, secret key. Created with mode 0700 and kept that way.
public struct DataDirectory: Sendable {
    public let path: String

    public enum Failure: Error, CustomStringConvertible {
        case cannotCreate(String, String)
        case notADirectory(String)
        case cannotWrite(String, String)
        public var description: String {
            switch self {
            case .cannotCreate(let path, let reason): "cannot create data directory \(path): \(reason); choose another with --data DIR"
            case .notADirectory(let path): "data directory \(path) exists but is not a directory; choose another with --data DIR"
            case .cannotWrite(let path, let reason): "cannot write \(path): \(reason)"
            }
        }
    }

    public init(path: String) {
        self.path = ResourceLocator.absolutePath(path)
    }

    public var databasePath: String { path + "/steward.db" }
    public var tlsDirectory: String { path + "/tls" }
    public var secretKeyPath: String { path + "/secret.key" }

    /// Create the directory (0700) if needed, and tighten its mode if it is looser.
    public func prepare() throws(Failure) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .notADirectory(path) }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw .cannotCreate(path, String(describing: error.localizedDescription))
            }
        }
        guard chmod(path, 0o700) == 0 else { throw .cannotCreate(path, String(cString: strerror(errno))) }
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
