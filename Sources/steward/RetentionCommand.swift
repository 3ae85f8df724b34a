import ArgumentParser
import Foundation
import StewardKit

/// `steward retention`: see and apply retention from the command line (the same enforcer the hourly job runs).
struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention", abstract: "Show retention policies and storage, or enforce them now.", subcommands: [Show.self, Enforce.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each data class's rows, size on disk, growth and policy.")
        @Option(help: "Data directory.") var data: String?

        func run() async throws {
            do {
                let (service, _) = try RetentionCommand.openService(data)
                let figures = try service.storage(now: Date())
                let policies = Dictionary(uniqueKeysWithValues: try service.policies().map { ($0.dataClass, $0) })
                for entry in figures.entries {
                    let record = policies[entry.dataClass]!
                    print(
                        "\(entry.dataClass.rawValue)\t\(entry.rows) rows\t\(ByteCount.text(entry.bytes))\t\(ByteCount.text(Int64(entry.bytesPerDay)))/day\t"
                            + record.policy.summary(for: entry.dataClass)
                            + (record.pending.map { " (changing to: \($0.summary(for: entry.dataClass)))" } ?? ""))
                }
                if let days = figures.daysUntilFull { print(String(format: "the disk fills in about %.0f day(s) at last week's rate", days)) }
            } catch {
                throw fail(error)
            }
        }
    }

    struct Enforce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply every retention policy now: delete due rows in small batches, then return the space to the filesystem.")
        @Option(help: "Data directory.") var data: String?
        @Option(help: "At most this many rows per transaction (batches are sized to hold the write lock about 25 ms).") var batchSize = 2000

        func validate() throws {
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be 1 or more rows (the default is 2000)") }
        }

        func run() async throws {
            do {
                let (service, _) = try RetentionCommand.openService(data, batchSize: batchSize)
                let report = try await service.enforce(now: Date()) { line in print(line) }
                print("deleted \(report.deleted.values.reduce(0) { $0 + $1.rows }) row(s); \(ByteCount.text(report.freedBytes)) freed")
            } catch {
                throw fail(error)
            }
        }
    }

    static func openService(_ data: String?, batchSize: Int = 2000) throws -> (RetentionService, DataDirectory) {
        let configuration = try resolveConfiguration(dataFlag: data, flags: SettingsLayer(source: "command-line flags"))
        let (database, directory, _) = try openDatabase(configuration)
        return (
            RetentionService(
                database: database, databasePath: directory.databasePath, graceMinutes: configuration.retentionGraceMinutes,
                sessionIdleMinutes: configuration.sessionIdleMinutes, batchSize: batchSize),
            directory
        )
    }
}
