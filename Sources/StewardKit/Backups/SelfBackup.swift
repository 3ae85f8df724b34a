import Foundation
import GRDB
import Logging

/// Steward backs up its own state: an online SQLite backup of the database plus the config repo, SSH key, TLS
/// material and secret key, staged in one directory and saved by a built-in plan to a local repository in the data
/// directory. `steward restore-self` puts a snapshot back.
public enum SelfBackup {
    public static let builtin = "self"
    /// What is copied into the staging directory besides the database.
    static let items = ["config", "ssh", "tls", "secret.key"]

    public static func repositoryPath(_ data: DataDirectory) -> String { data.path + "/backups/self-restic" }
    public static func passwordPath(_ data: DataDirectory) -> String { data.path + "/backups/self-restic.password" }
    static func stagingPath(_ data: DataDirectory) -> String { data.path + "/backups/self-staging" }

    /// Create the repository and the plan on first start. Without restic installed this logs and tries again next start.
    public static func ensure(service: BackupService, dataDirectory: DataDirectory, logger: Logger, now: Date) async {
        do {
            guard try service.store.plan(builtin: builtin) == nil else { return }
            guard let local = try service.hosts.all().first(where: { $0.transport == .local }) else { return }
            try FileManager.default.createDirectory(
                atPath: dataDirectory.path + "/backups", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            var repository = try service.store.repository(builtin: builtin)
            if repository == nil {
                let password: String
                if let existing = try? String(contentsOfFile: passwordPath(dataDirectory), encoding: .utf8), !existing.isEmpty {
                    password = existing.trimmingCharacters(in: .newlines)
                } else {
                    var bytes = [UInt8](repeating: 0, count: 32)
                    for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
                    password = Data(bytes).base64EncodedString().replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "+", with: "-")
                    try dataDirectory.writePrivateFile(passwordPath(dataDirectory), Data((password + "\n").utf8))
                }
                var record = BackupRepository()
                record.name = "Steward self-backup"
                record.kind = .local
                record.hostID = local.id
                record.path = repositoryPath(dataDirectory)
                record.builtin = builtin
                let exists = FileManager.default.fileExists(atPath: record.path + "/config")
                repository = try await service.addRepository(record, password: password, initialise: !exists, by: .system, now: now)
            }
            var plan = BackupPlan()
            plan.name = "Steward self-backup"
            plan.hostID = local.id
            plan.repositoryID = repository!.id
            plan.paths = [stagingPath(dataDirectory)]
            plan.retention = RetentionPolicy(daily: 7, weekly: 4, monthly: 6)
            plan.builtin = builtin
            _ = try await service.save(plan, timing: BackupPlanTiming(), by: .system, isAdmin: true, now: now)
            logger.notice("self-backup plan created", metadata: ["repository": "\(repositoryPath(dataDirectory))"])
        } catch {
            logger.warning(
                "self-backup is not set up yet; it will be tried again at the next start", metadata: ["error": "\(String(describing: error))"])
        }
    }

    /// Copy the state into the staging directory: the database through SQLite's online backup (consistent while
    /// Steward keeps writing), the rest as files. Returns the directory to back up.
    static func stage(database: DatabasePool, dataDirectory: DataDirectory, context: JobContext) async throws -> String {
        let staging = stagingPath(dataDirectory)
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try await context.progress(nil, "copying the database (SQLite online backup)")
        let copyPath = staging + "/steward.db"
        try await offload {
            let copy = try DatabaseQueue(path: copyPath)
            try database.backup(to: copy)
            try copy.close()
        }
        for item in items {
            let source = dataDirectory.path + "/" + item
            guard FileManager.default.fileExists(atPath: source) else { continue }
            try FileManager.default.copyItem(atPath: source, toPath: staging + "/" + item)
        }
        await context.log("staged the database and \(items.joined(separator: ", ")) in \(staging)")
        return staging
    }

    /// What `restore-self` did, for the person running it.
    public struct RestoreReport: Sendable {
        public var snapshot: String
        public var restored: [String]
        public var setAside: String
    }

    /// Restore a self-backup snapshot into `dataDirectory`. Current files are moved aside (never deleted) first.
    /// Steward must not be running on this data directory.
    /// For an operator facing a damaged database: when the newest self-backup was taken, read from the repository.
    public static func newestSnapshotNote(dataDirectory: DataDirectory) async -> String {
        let repository = repositoryPath(dataDirectory)
        guard FileManager.default.fileExists(atPath: passwordPath(dataDirectory)) else {
            return "no self-backup repository at \(repository); restore steward.db from a copy of your own"
        }
        var environment = ResticTarget.baseEnvironment()
        environment["RESTIC_PASSWORD_FILE"] = passwordPath(dataDirectory)
        environment["RESTIC_CACHE_DIR"] = dataDirectory.path + "/backups/cache"
        let collected = Collected()
        let outcome = try? await LocalProcessRunner().run(
            ProcessCommand(["restic", "--repo", repository, "snapshots", "--json", "--no-lock", "--latest", "1"], environment: environment, timeout: .seconds(30))
        ) { data in collected.append(data) }
        guard let outcome, outcome.succeeded,
            let list = try? JSONSerialization.jsonObject(with: collected.data) as? [[String: Any]]
        else { return "the self-backup repository \(repository) could not be read; check it with restic snapshots" }
        let times = list.compactMap { $0["time"] as? String }.sorted()
        guard let newest = times.last else { return "the self-backup repository \(repository) holds no snapshot yet" }
        return "the newest self-backup was taken at \(newest)"
    }

    public static func restore(
        dataDirectory: DataDirectory, repository: String, passwordFile: String, snapshot: String, now: Date = Date()
    ) async throws -> RestoreReport {
        if let problem = BackupService.snapshotProblem(snapshot) { throw JobFailure(problem) }
        guard FileManager.default.fileExists(atPath: passwordFile) else {
            throw JobFailure("no password file at \(passwordFile); give the self-backup repository's password file with --password-file")
        }
        let stamp = ISO8601DateFormatter().string(from: now).replacingOccurrences(of: ":", with: "")
        let scratch = dataDirectory.path + "/backups/restore-\(stamp)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var environment = ResticTarget.baseEnvironment()
        environment["RESTIC_PASSWORD_FILE"] = passwordFile
        environment["RESTIC_CACHE_DIR"] = dataDirectory.path + "/backups/cache"
        let buffer = LineSplitter()
        let outcome = try await LocalProcessRunner().run(
            ProcessCommand(["restic", "--repo", repository, "restore", snapshot, "--target", scratch, "--verify"], environment: environment)
        ) { data in _ = buffer.feed(data) }
        guard outcome.succeeded else {
            try? FileManager.default.removeItem(atPath: scratch)
            let detail = ResticDiagnosis.explain(buffer.tail, repository: repository, host: "this machine") ?? buffer.tail
            throw JobFailure("restic restore \(outcome.summary): \(detail)")
        }
        // restic versions differ in how much of the original path they keep; the staging root is where steward.db is.
        guard let root = findStagingRoot(scratch) else {
            throw JobFailure("snapshot \(snapshot) holds no steward.db; is \(repository) Steward's self-backup repository?")
        }
        let aside = dataDirectory.path + "/before-restore-\(stamp)"
        try FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var restored: [String] = []
        for item in ["steward.db"] + items {
            let from = root + "/" + item
            guard FileManager.default.fileExists(atPath: from) else { continue }
            let to = dataDirectory.path + "/" + item
            for suffix in item == "steward.db" ? ["", "-wal", "-shm"] : [""] where FileManager.default.fileExists(atPath: to + suffix) {
                try FileManager.default.moveItem(atPath: to + suffix, toPath: aside + "/" + item + suffix)
            }
            try FileManager.default.moveItem(atPath: from, toPath: to)
            restored.append(item)
        }
        try? FileManager.default.removeItem(atPath: scratch)
        return RestoreReport(snapshot: snapshot, restored: restored, setAside: aside)
    }

    static func findStagingRoot(_ directory: String) -> String? {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return nil }
        while let relative = enumerator.nextObject() as? String {
            if (relative as NSString).lastPathComponent == "steward.db" {
                return directory + "/" + (relative as NSString).deletingLastPathComponent
            }
        }
        return nil
    }
}
