import Foundation
import GRDB
import Testing

@testable import StewardKit

@Suite("Migrations")
struct MigrationRunnerTests {
    @Test("a fresh database gets every migration, in WAL mode, recorded once")
    func freshDatabase() throws {
        let directory = TemporaryDirectory()
        let pool = try StewardDatabase.open(path: directory.path + "/steward.db")
        let runner = try MigrationRunner.load(directory: repositoryRoot + "/migrations")
        let report = try runner.migrate(pool, databasePath: directory.path + "/steward.db")
        #expect(report.applied.first == "0001_core.sql")
        #expect(report.applied.count == runner.migrations.count)
        let facts = try pool.read { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA auto_vacuum"),
                try Int.fetchOne(db, sql: "PRAGMA foreign_keys"), try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM schema_migrations"),
                try db.tableExists("jobs") && db.tableExists("job_log_chunks") && db.tableExists("schedules")
            )
        }
        #expect(facts.0 == "wal")
        #expect(facts.1 == 2)
        #expect(facts.2 == 1)
        #expect(facts.3 == runner.migrations.count)
        #expect(facts.4)
    }

    @Test("running again applies nothing and keeps the data")
    func rerun() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/steward.db"
        let runner = try MigrationRunner.load(directory: repositoryRoot + "/migrations")
        let pool = try StewardDatabase.open(path: path)
        try runner.migrate(pool, databasePath: path)
        try pool.write { db in
            try db.execute(sql: "INSERT INTO jobs (kind, title, state, started_by, created_at) VALUES ('k', 't', 'queued', 'test', 0)")
        }
        let again = try runner.migrate(pool, databasePath: path)
        #expect(again.applied.isEmpty)
        #expect(again.alreadyApplied == runner.migrations.count)
        #expect(try pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM jobs") } == 1)
    }

    @Test("a database from a newer Steward is refused with a message naming the unknown migration")
    func downgradeRefused() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/steward.db"
        let pool = try StewardDatabase.open(path: path)
        let runner = try MigrationRunner.load(directory: repositoryRoot + "/migrations")
        try runner.migrate(pool, databasePath: path)
        try pool.write { db in
            try db.execute(sql: "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'from_the_future', 'x', 0)")
        }
        #expect {
            try runner.migrate(pool, databasePath: path)
        } throws: { error in
            let text = String(describing: error)
            return text.contains("9999_from_the_future") && text.contains("newer Steward") && text.contains("Refusing to start")
        }
    }

    @Test("a failing migration is rolled back whole and named")
    func failingMigrationRollsBack() throws {
        let directory = TemporaryDirectory()
        let migrations = directory.path + "/migrations"
        try FileManager.default.createDirectory(atPath: migrations, withIntermediateDirectories: true)
        try "CREATE TABLE a (x INTEGER);".write(toFile: migrations + "/0001_first.sql", atomically: true, encoding: .utf8)
        try "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);".write(
            toFile: migrations + "/0002_broken.sql", atomically: true, encoding: .utf8)
        let pool = try StewardDatabase.open(path: directory.path + "/steward.db")
        #expect {
            try MigrationRunner.load(directory: migrations).migrate(pool, databasePath: "test")
        } throws: { error in
            String(describing: error).contains("0002_broken.sql failed and was rolled back")
        }
        let state = try pool.read { db in
            (try db.tableExists("a"), try db.tableExists("b"), try Int.fetchAll(db, sql: "SELECT version FROM schema_migrations"))
        }
        #expect(state.0)
        #expect(!state.1)
        #expect(state.2 == [1])
    }

    @Test("a directory without migrations is an error, not an empty database")
    func missingDirectory() {
        let directory = TemporaryDirectory()
        #expect(throws: MigrationRunner.Failure.noMigrations(directory.path + "/nowhere")) {
            try MigrationRunner.load(directory: directory.path + "/nowhere")
        }
    }

    @Test("badly named files and duplicate versions are rejected")
    func badNames() throws {
        let directory = TemporaryDirectory()
        try "SELECT 1;".write(toFile: directory.path + "/1_short.sql", atomically: true, encoding: .utf8)
        #expect(throws: MigrationRunner.Failure.badFileName("1_short.sql")) { try MigrationRunner.load(directory: directory.path) }
        let other = TemporaryDirectory()
        try "SELECT 1;".write(toFile: other.path + "/0001_a.sql", atomically: true, encoding: .utf8)
        try "SELECT 1;".write(toFile: other.path + "/0001_b.sql", atomically: true, encoding: .utf8)
        #expect(throws: MigrationRunner.Failure.duplicateVersion(1, "0001_a.sql", "0001_b.sql")) { try MigrationRunner.load(directory: other.path) }
    }
}
