import Crypto
import Foundation
import GRDB

/// Applies `migrations/NNNN_name.sql` in order, each in its own transaction, recorded in `schema_migrations`.
public struct MigrationRunner: Sendable {
    public struct Migration: Sendable, Equatable {
        public let version: Int
        public let name: String
        public let sql: String
        public var checksum: String { sha256Hex(Array(sql.utf8)) }
        public var fileName: String { String(format: "%04d_", version) + name + ".sql" }
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case badFileName(String)
        case duplicateVersion(Int, String, String)
        case unreadable(String)
        case noMigrations(String)
        case unknownMigrations(database: String, versions: [String], newestKnown: Int)
        case failed(file: String, message: String)

        public var description: String {
            switch self {
            case .badFileName(let name):
                "migration file \(name) must be named NNNN_name.sql (four digits, an underscore, lowercase letters, digits or _)"
            case .duplicateVersion(let version, let a, let b):
                "migrations \(a) and \(b) share version \(version); give one of them the next free number"
            case .unreadable(let path): "cannot read migration \(path)"
            case .noMigrations(let directory):
                "no migrations found in \(directory); point --resources at the directory that holds Steward's migrations/"
            case .unknownMigrations(let database, let versions, let newestKnown):
                "database \(database) has migration(s) \(versions.joined(separator: ", ")) that this steward (\(StewardVersion.current), newest migration \(String(format: "%04d", newestKnown))) does not know: it was written by a newer Steward. Refusing to start; run the newer steward binary, or restore a backup taken before the upgrade"
            case .failed(let file, let message): "migration \(file) failed and was rolled back: \(message)"
            }
        }
    }

    public let migrations: [Migration]

    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// Load every `*.sql` file in the directory; any other file is ignored.
    public static func load(directory: String) throws(Failure) -> MigrationRunner {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory), files.contains(where: { $0.hasSuffix(".sql") }) else {
            throw .noMigrations(directory)
        }
        var byVersion: [Int: Migration] = [:]
        for file in files.sorted() where file.hasSuffix(".sql") {
            let stem = String(file.dropLast(4))
            let parts = stem.split(separator: "_", maxSplits: 1)
            guard parts.count == 2, parts[0].count == 4, let version = Int(parts[0]), version > 0,
                parts[1].allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }), parts[1].allSatisfy(\.isASCII)
            else { throw .badFileName(file) }
            guard let sql = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8) else {
                throw .unreadable(directory + "/" + file)
            }
            let migration = Migration(version: version, name: String(parts[1]), sql: sql)
            if let existing = byVersion[version] { throw .duplicateVersion(version, existing.fileName, file) }
            byVersion[version] = migration
        }
        return MigrationRunner(migrations: Array(byVersion.values))
    }

    public struct Report: Sendable {
        public var applied: [String] = []
        public var alreadyApplied = 0
        /// Landed migrations whose file changed since they ran; migrations must never be edited.
        public var edited: [String] = []
    }

    /// Bring the database up to date, or refuse if it is newer than this binary.
    @discardableResult
    public func migrate(_ writer: any DatabaseWriter, databasePath: String) throws -> Report {
        try writer.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version INTEGER PRIMARY KEY,
                        name TEXT NOT NULL,
                        checksum TEXT NOT NULL,
                        applied_at INTEGER NOT NULL
                    )
                    """)
        }
        let recorded = try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        }
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        let unknown = recorded.filter { known[$0["version"]] == nil }
        if !unknown.isEmpty {
            throw Failure.unknownMigrations(
                database: databasePath,
                versions: unknown.map { String(format: "%04d_", $0["version"] as Int) + ($0["name"] as String) },
                newestKnown: migrations.last?.version ?? 0)
        }
        var report = Report()
        let appliedVersions = Set(recorded.map { $0["version"] as Int })
        for row in recorded {
            if let migration = known[row["version"]], migration.checksum != row["checksum"] as String { report.edited.append(migration.fileName) }
        }
        for migration in migrations where !appliedVersions.contains(migration.version) {
            do {
                try writer.write { db in
                    try db.execute(sql: migration.sql)
                    try db.execute(
                        sql: "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                        arguments: [migration.version, migration.name, migration.checksum, EpochMilliseconds.from(Date())])
                }
            } catch let error as DatabaseError {
                throw Failure.failed(file: migration.fileName, message: error.message ?? error.description)
            }
            report.applied.append(migration.fileName)
        }
        report.alreadyApplied = appliedVersions.count
        return report
    }
}
