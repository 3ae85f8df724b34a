import Foundation
import GRDB
import Synchronization

/// The file system holding the data directory: how much room it has, whether an error means it is full, and the
/// words an operator needs. A full disk is a 507 that says so (not a 500), /readyz fails below the reserve, and
/// the panel's own alert rule watches the same figure; writes resume by themselves once space is freed.
public final class DiskSpace: Sendable {
    public let path: String
    public let reserveBytes: Int64
    private let fullErrors = Atomic<Int>(0)
    private let lastFull = Atomic<Int64>(0)

    public init(path: String, reserveMB: Int) {
        self.path = path
        self.reserveBytes = Int64(reserveMB) << 20
    }

    /// Bytes an unprivileged writer may still use there (statvfs f_bavail), nil if the file system cannot be read.
    public func freeBytes() -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// Free space as multiples of the reserve: under 1 the reserve is eaten into; 0 right after a write failed for
    /// want of space.
    public func freeRatio(now: Int64 = EpochMilliseconds.from(Date())) -> Double? {
        if now - lastFull.load(ordering: .relaxed) < 120_000 { return 0 }
        guard let free = freeBytes() else { return nil }
        return Double(free) / Double(max(reserveBytes, 1 << 20))
    }

    /// Writes refused for want of space since start.
    public var fullErrorCount: Int { fullErrors.load(ordering: .relaxed) }

    /// True when `error` (SQLite, a file write, a wrapped message) says the disk is full.
    public static func isFull(_ error: any Error) -> Bool {
        if let database = error as? DatabaseError { return database.resultCode == .SQLITE_FULL }
        let bridged = error as NSError
        if bridged.domain == NSPOSIXErrorDomain, [ENOSPC, EDQUOT].contains(Int32(bridged.code)) { return true }
        if bridged.domain == NSCocoaErrorDomain, bridged.code == CocoaError.fileWriteOutOfSpace.rawValue { return true }
        let text = String(describing: error)
        return text.contains("database or disk is full") || text.contains("No space left on device")
    }

    /// Count a write refused for want of space, for /metrics and the panel's disk alert.
    public func recordFull() {
        fullErrors.add(1, ordering: .relaxed)
        lastFull.store(EpochMilliseconds.from(Date()), ordering: .relaxed)
    }

    /// What an operator reads on a 507.
    public func fullMessage() -> String {
        let free = freeBytes().map { "\($0) bytes free" } ?? "free space unknown"
        return "the disk holding \(path) is full (\(free)); free space there (journalctl --vacuum-size, old backups, du -xh \(path)) and Steward resumes writing by itself"
    }

    /// Nil when there is room; otherwise why the panel is not ready to take writes.
    public func shortage() -> String? {
        guard let free = freeBytes(), free < reserveBytes else { return nil }
        return "the disk holding \(path) is almost full (\(free) bytes free, below the \(reserveBytes >> 20) MiB reserve set by disk_reserve_mb)"
    }
}
