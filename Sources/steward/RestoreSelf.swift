import ArgumentParser
import Foundation
import StewardKit

/// `steward restore-self`: put a self-backup snapshot back into the data directory, with Steward stopped.
struct RestoreSelf: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore-self",
        abstract: "Restore Steward's own state (database, config repo, keys, certificate) from its self-backup repository.",
        discussion: """
            Stop Steward first. The current database, config repo, ssh/, tls/ and secret.key are moved aside into \
            DATA/before-restore-<time>/, never deleted. By default the repository and password file are the ones in \
            DATA/backups/; give --repository and --password-file when DATA was lost and you restore from a copy.
            """)

    @Option(help: "Data directory to restore into (default /var/lib/steward as root).") var data: String?
    @Option(help: "The self-backup restic repository (default DATA/backups/self-restic).") var repository: String?
    @Option(name: .customLong("password-file"), help: "File holding the repository password (default DATA/backups/self-restic.password).")
    var passwordFile: String?
    @Option(help: "Snapshot to restore: an ID from `restic snapshots`, or latest.") var snapshot = "latest"

    func run() async throws {
        let directory = DataDirectory(path: data ?? StewardConfiguration.defaultDataDirectory())
        do {
            try directory.prepare()
            guard try directory.holdServeLock() else {
                throw Fatal(message: "Steward is running on \(directory.path) (it holds serve.lock); stop it, then run restore-self again")
            }
            let report = try await SelfBackup.restore(
                dataDirectory: directory, repository: repository ?? SelfBackup.repositoryPath(directory),
                passwordFile: passwordFile ?? SelfBackup.passwordPath(directory), snapshot: snapshot)
            print("restored snapshot \(report.snapshot) into \(directory.path): \(report.restored.joined(separator: ", "))")
            print("the previous files are in \(report.setAside); start Steward again with: steward serve --data \(directory.path)")
        } catch {
            throw fail(error)
        }
    }
}
