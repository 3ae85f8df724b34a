import Crypto
import Foundation
import GRDB
import Testing

@testable import StewardKit

/// Backups against the real restic: a temp database, a job runner with the backup handlers, and repositories in a
/// temp directory.
final class BackupHarness: Sendable {
    let directory = TemporaryDirectory()
    let database: DatabasePool
    let service: BackupService
    let runner: JobRunner
    let loop: Task<Void, Never>
    let localhost: StewardKit.Host

    init() throws {
        database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        try hosts.ensureLocalhost(now: Date())
        localhost = try #require(try hosts.host(named: "localhost"))
        let data = DataDirectory(path: directory.path + "/data")
        try data.prepare()
        service = BackupService(
            store: BackupStore(database: database, sealer: SecretSealer(masterKey: SymmetricKey(size: .bits256), purpose: "test")), hosts: hosts,
            identity: SSHIdentity(directory: directory.path + "/ssh"), dataDirectory: data)
        runner = JobRunner(
            store: JobStore(database: database), events: JobEvents(), handlers: service.handlers(),
            processes: LocalProcessRunner(terminationGrace: .seconds(2)),
            concurrency: 4, logCap: 1 << 20, shutdownGrace: .seconds(1), logger: quietLogger)
        let runner = self.runner
        loop = Task { try? await runner.run() }
    }

    deinit { loop.cancel() }

    func repository(_ name: String, password: String = "correct horse") async throws -> BackupRepository {
        var repository = BackupRepository()
        repository.name = name
        repository.hostID = localhost.id
        repository.path = directory.path + "/repos/" + name
        return try await service.addRepository(repository, password: password, initialise: true, by: .system, now: Date())
    }

    func plan(_ name: String, repository: BackupRepository, paths: [String], configure: (inout BackupPlan) -> Void = { _ in }) async throws
        -> BackupPlan
    {
        var plan = BackupPlan()
        plan.name = name
        plan.hostID = localhost.id
        plan.repositoryID = repository.id
        plan.paths = paths
        configure(&plan)
        return try await service.save(plan, timing: BackupPlanTiming(), by: .system, isAdmin: true, now: Date())
    }

    func run(_ kind: String, _ params: String) async throws -> Job {
        let job = try await runner.enqueue(JobRequest(kind: kind, title: kind, params: params, startedBy: "test"))
        let store = runner.store
        _ = try await waitUntil { try store.job(id: job.id)?.state.isFinished == true }
        return try #require(try store.job(id: job.id))
    }

    func backup(_ plan: BackupPlan) async throws -> Job { try await run(BackupStore.backupKind, "{\"plan_id\":\(plan.id)}") }

    func log(_ job: Job) throws -> String { try runner.store.logChunks(id: job.id).map(\.text).joined() }
}

/// Every file, directory and link under `root`, with a SHA-256 of file contents, link targets and modes.
func treeDigest(_ root: String) throws -> [String: String] {
    var result: [String: String] = [:]
    let manager = FileManager.default
    for relative in try manager.subpathsOfDirectory(atPath: root) {
        let path = root + "/" + relative
        let attributes = try manager.attributesOfItem(atPath: path)
        let mode = String((attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0, radix: 8)
        switch attributes[.type] as? FileAttributeType {
        case .typeSymbolicLink?: result[relative] = "link -> " + (try manager.destinationOfSymbolicLink(atPath: path))
        case .typeDirectory?: result[relative] = "dir \(mode)"
        default:
            let digest = SHA256.hash(data: try Data(contentsOf: URL(fileURLWithPath: path)))
            result[relative] = "file \(mode) " + digest.map { String(format: "%02x", $0) }.joined()
        }
    }
    return result
}

/// A tree with the awkward cases: spaces, unicode, shell metacharacters, a symlink, an empty dir, a large file.
func makeAwkwardTree(_ root: String) throws {
    let manager = FileManager.default
    try manager.createDirectory(atPath: root + "/odd dir/ünï cödé", withIntermediateDirectories: true)
    try manager.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
    try Data("plain\n".utf8).write(to: URL(fileURLWithPath: root + "/plain.txt"))
    try Data("spaces and ünïcödé\n".utf8).write(to: URL(fileURLWithPath: root + "/odd dir/ünï cödé/file with spaces.txt"))
    try Data("meta\n".utf8).write(to: URL(fileURLWithPath: root + "/odd dir/u=1337;$(whoami);"))
    var generator = SystemRandomNumberGenerator()
    try Data((0..<3_000_000).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: root + "/random.bin"))
    try manager.createSymbolicLink(atPath: root + "/link-to-plain", withDestinationPath: "plain.txt")
    chmod(root + "/plain.txt", 0o640)
}

@Suite("backup jobs with the real restic", .serialized)
struct BackupJobTests {
    @Test func aRestoreIsByteIdenticalToTheSource() async throws {
        let harness = try BackupHarness()
        let source = harness.directory.path + "/source"
        try makeAwkwardTree(source)
        let repository = try await harness.repository("main")
        let plan = try await harness.plan("awkward", repository: repository, paths: [source])
        let job = try await harness.backup(plan)
        let jobLog = try harness.log(job)
        #expect(job.state == .succeeded, "\(jobLog)")
        #expect(job.progressPercent == 100 && job.progressMessage.hasPrefix("snapshot "))
        let run = try #require(try harness.service.store.run(jobID: job.id))
        #expect(run.snapshotID?.count == 8, "\(run)")
        #expect(run.filesNew == 4 && (run.bytesProcessed ?? 0) > 3_000_000 && run.durationMS != nil, "\(run)")

        let target = harness.directory.path + "/restored"
        let request = BackupService.RestoreRequest(
            repositoryID: repository.id, planID: plan.id, snapshot: run.snapshotID!, includes: [], target: target, hostID: harness.localhost.id,
            confirm: "")
        let restoreJob = try await harness.runner.enqueue(try await harness.service.prepareRestore(request, by: .system, isAdmin: true))
        _ = try await waitUntil { try harness.runner.store.job(id: restoreJob.id)?.state.isFinished == true }
        let restored = try #require(try harness.runner.store.job(id: restoreJob.id))
        let restoreLog = try harness.log(restored)
        #expect(restored.state == .succeeded, "\(restoreLog)")
        #expect(restored.progressPercent == 100 && restored.progressMessage.contains("restored and verified"))
        // restic keeps the absolute path under the target.
        let digest = try treeDigest(target + source)
        #expect(digest == (try treeDigest(source)))
        #expect(digest["empty"] == "dir 755" && digest["link-to-plain"] == "link -> plain.txt" && digest["plain.txt"]?.hasPrefix("file 640 ") == true)

        // Browsing lists one directory's children; downloading streams one file's bytes.
        let entries = try await harness.service.browse(repository, snapshot: run.snapshotID!, directory: source + "/odd dir")
        #expect(entries.map(\.name) == ["ünï cödé", "u=1337;$(whoami);"])
        let collected = Collected()
        try await harness.service.dump(repository, snapshot: run.snapshotID!, path: source + "/odd dir/ünï cödé/file with spaces.txt") {
            await collected.add($0)
        }
        #expect(await collected.data == Data("spaces and ünïcödé\n".utf8))
    }

    @Test func restoringOverLivePathsNeedsTheTargetTypedAgain() async throws {
        let harness = try BackupHarness()
        let source = harness.directory.path + "/live"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try Data("v1".utf8).write(to: URL(fileURLWithPath: source + "/a"))
        let repository = try await harness.repository("main")
        let plan = try await harness.plan("live", repository: repository, paths: [source])
        _ = try await harness.backup(plan)
        var request = BackupService.RestoreRequest(
            repositoryID: repository.id, planID: plan.id, snapshot: "latest", includes: [], target: source, hostID: harness.localhost.id, confirm: "")
        await #expect { try await harness.service.prepareRestore(request, by: .system, isAdmin: true) } throws: { error in
            ((error as? Problem)?.errors?["confirm"] ?? "").contains("live path")
        }
        request.confirm = source + "/"
        await #expect(throws: Problem.self) { try await harness.service.prepareRestore(request, by: .system, isAdmin: true) }
        request.confirm = source
        let job = try await harness.service.prepareRestore(request, by: .system, isAdmin: true)
        #expect(job.reason.contains("confirmed restore over"))
        // Traversal and other refusals (SECURITY.md class 7).
        for (target, include, snapshot) in [
            ("/tmp/../etc", "", "latest"), ("relative", "", "latest"), ("/", "", "latest"), (source + "x", "../etc", "latest"),
            (source + "x", "", "../../x"),
        ] {
            request = BackupService.RestoreRequest(
                repositoryID: repository.id, planID: nil, snapshot: snapshot, includes: include.isEmpty ? [] : [include], target: target,
                hostID: harness.localhost.id,
                confirm: target)
            await #expect(throws: Problem.self, "\(target) \(include) \(snapshot)") {
                try await harness.service.prepareRestore(request, by: .system, isAdmin: true)
            }
        }
        request = BackupService.RestoreRequest(
            repositoryID: repository.id, planID: nil, snapshot: "latest", includes: [], target: repository.path + "/sub",
            hostID: harness.localhost.id, confirm: "")
        await #expect { try await harness.service.prepareRestore(request, by: .system, isAdmin: true) } throws: { error in
            ((error as? Problem)?.errors?["target"] ?? "").contains("overlaps the repository")
        }
    }

    @Test func twoPlansOnOneRepositoryNeverRunAtOnce() async throws {
        let harness = try BackupHarness()
        let source = harness.directory.path + "/shared"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        let repository = try await harness.repository("shared")
        let marker = harness.directory.path + "/overlap"
        // Each run's pre hook fails if the other run's hook is inside its window.
        let config = ConfigRepository(dataDirectory: harness.service.dataDirectory)
        try config.prepare()
        _ = try await config.save(
            "hooks/overlap.sh", content: "#!/bin/sh\ntest ! -e \(marker) && touch \(marker) && sleep 1.5 && rm \(marker)\n", message: "test hook",
            author: "tests", lock: RepositoryLock())
        let hook = ["overlap.sh"]
        let first = try await harness.plan("first", repository: repository, paths: [source]) { $0.preHook = hook }
        let second = try await harness.plan("second", repository: repository, paths: [source]) { $0.preHook = hook }
        async let a = harness.backup(first)
        async let b = harness.backup(second)
        let (jobA, jobB) = try await (a, b)
        let logs = [try harness.log(jobA), try harness.log(jobB)]
        #expect(jobA.state == .succeeded && jobB.state == .succeeded, "\(logs)")
        let waited = logs.filter { $0.contains("waiting: job") && $0.contains("one operation runs per repository") }
        #expect(waited.count == 1)
        let runs = try [jobA, jobB].map { try #require(try harness.service.store.run(jobID: $0.id)) }.sorted { $0.startedAt < $1.startedAt }
        #expect(runs[0].finishedAt! <= runs[1].startedAt)
    }

    @Test func wrongPasswordAndMissingRepositoryFailWithClearErrorsAndAlert() async throws {
        let harness = try BackupHarness()
        let source = harness.directory.path + "/src"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        let repository = try await harness.repository("main")
        let plan = try await harness.plan("p", repository: repository, paths: [source])
        try harness.service.store.setPassword(repository, password: "not the password", by: .system, now: Date())
        let wrong = try await harness.backup(plan)
        #expect(wrong.state == .failed)
        #expect(
            wrong.error?.contains("the password for repository main") == true && wrong.error?.contains("is wrong") == true, "\(wrong.error ?? "")")
        // The status line is read again after the job, in the background.
        let store = harness.service.store
        #expect(try await waitUntil { try store.repository(id: repository.id)?.statusError?.contains("password") == true })

        // The plan's own alert source sees the failure.
        let sources = BackupAlerts.sources(database: harness.database)
        var rule = AlertRule()
        rule.matchers = "plan=\(plan.id)"
        let now = EpochMilliseconds.from(Date())
        #expect(try sources[0].observe(harness.localhost, rule, now) == .value(1))
        guard case .value(let age) = try sources[1].observe(harness.localhost, rule, now) else {
            Issue.record("no age")
            return
        }
        #expect(age < 1, "never succeeded: counted from the plan's creation")
        let rules = try AlertRuleStore(database: harness.database).all().filter { BackupAlerts.planID(ofRule: $0.builtin) == plan.id }
        #expect(Set(rules.map(\.source)) == ["backup_failed", "backup_age_hours"] && rules.allSatisfy { $0.scopeHosts == ["localhost"] })

        try harness.service.store.setPassword(repository, password: "correct horse", by: .system, now: Date())
        let good = try await harness.backup(plan)
        #expect(good.state == .succeeded)
        #expect(try sources[0].observe(harness.localhost, rule, now) == .value(0))

        try FileManager.default.removeItem(atPath: repository.path)
        let missing = try await harness.backup(plan)
        #expect(missing.state == .failed && missing.error?.contains("there is no restic repository at main") == true, "\(missing.error ?? "")")
    }

    @Test("a plan, its schedules, its two alert rules and their audit rows are stored together, or not at all")
    func planAndItsAlertRulesShareOneTransaction() async throws {
        let harness = try BackupHarness()
        let repository = try await harness.repository("together")
        let rules = AlertRuleStore(database: harness.database)
        func counts() throws -> (plans: Int, schedules: Int, rules: Int, audit: Int) {
            try harness.database.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM backup_plans") ?? -1,
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM schedules") ?? -1,
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alert_rules") ?? -1,
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_events WHERE action LIKE 'backup_plan.%' OR action LIKE 'alert_rule.%'")
                        ?? -1
                )
            }
        }
        // Someone already wrote a rule with the name the plan's failure rule would take: the whole save is refused.
        var taken = AlertRule()
        taken.name = "Backup failed: nightly"
        taken.metric = "node_load1"
        _ = try rules.create(taken, by: .system, now: Date())
        let before = try counts()
        await #expect(throws: Problem.self) { _ = try await harness.plan("nightly", repository: repository, paths: [harness.directory.path]) }
        #expect(try counts() == before, "nothing of the refused plan is left: no plan, schedule, rule or audit row")

        // Without the clash the plan arrives with its schedule, both rules and an audit row for each.
        _ = try rules.delete(id: try #require(try rules.all().first { $0.name == taken.name }).id, by: .system, now: Date())
        let start = try counts()
        let plan = try await harness.plan("nightly", repository: repository, paths: [harness.directory.path])
        let after = try counts()
        let scheduleCount = [plan.backupScheduleID, plan.verifyScheduleID, plan.pruneScheduleID].compactMap { $0 }.count
        #expect(scheduleCount >= 1)
        #expect(after.plans == start.plans + 1 && after.schedules == start.schedules + scheduleCount && after.rules == start.rules + 2)
        #expect(after.audit == start.audit + 3, "backup_plan.create and two alert_rule.create")
        // Deleting the plan takes its schedule and rules with it, in one transaction too.
        try await harness.service.delete(plan, by: .system, isAdmin: true, now: Date())
        let gone = try counts()
        #expect(gone.plans == start.plans && gone.schedules == start.schedules && gone.rules == start.rules && gone.audit == after.audit + 3)
    }

    @Test func anExistingRepositoryWithAShortPasswordImportsButANewOneNeedsEightCharacters() async throws {
        let harness = try BackupHarness()
        var repository = BackupRepository()
        repository.name = "made elsewhere"
        repository.hostID = harness.localhost.id
        repository.path = harness.directory.path + "/repos/short"
        // Made outside Steward: restic itself takes any non-empty password.
        var environment = ResticTarget.baseEnvironment()
        environment["RESTIC_PASSWORD"] = "abc"
        environment["RESTIC_CACHE_DIR"] = harness.directory.path + "/cache"
        let made = try ShortCommand.run(["restic", "init", "--repo", repository.path], timeout: 60, environment: environment)
        #expect(made.status == 0, "\(made.stderr)")

        func refusal(_ repository: BackupRepository, _ password: String, initialise: Bool) async -> String? {
            do {
                _ = try await harness.service.addRepository(repository, password: password, initialise: initialise, by: .system, now: Date())
                return nil
            } catch let problem as Problem {
                return problem.errors?["password"] ?? problem.detail
            } catch {
                return String(describing: error)
            }
        }
        #expect(await refusal(repository, "", initialise: false) == "enter the repository's password")
        #expect(await refusal(repository, "abd", initialise: false)?.contains("is wrong") == true)
        #expect(await refusal(repository, "abc", initialise: false) == nil)
        #expect(try harness.service.store.repositories().contains { $0.name == "made elsewhere" })

        // The imported repository works with its short password: a backup into it succeeds.
        let imported = try #require(try harness.service.store.repositories().first { $0.name == "made elsewhere" })
        let source = harness.directory.path + "/src"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try Data("short\n".utf8).write(to: URL(fileURLWithPath: source + "/f"))
        let job = try await harness.backup(try await harness.plan("p", repository: imported, paths: [source]))
        #expect(job.state == .succeeded, "\(job.error ?? "")")

        // A repository Steward makes still needs 8 characters.
        repository.name = "new"
        repository.path = harness.directory.path + "/repos/new"
        #expect(await refusal(repository, "abc", initialise: true)?.contains("at least 8 characters") == true)
        #expect(!FileManager.default.fileExists(atPath: repository.path + "/config"))
    }

    @Test func retentionRunsAfterEachBackupAndKeepsTheNewest() async throws {
        let harness = try BackupHarness()
        let source = harness.directory.path + "/src"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        let repository = try await harness.repository("main")
        let plan = try await harness.plan("kept", repository: repository, paths: [source]) { $0.retention = RetentionPolicy(last: 2) }
        var last: Job?
        for round in 0..<3 {
            try Data("round \(round)".utf8).write(to: URL(fileURLWithPath: source + "/f"))
            last = try await harness.backup(plan)
            #expect(last?.state == .succeeded)
        }
        let snapshots = try await harness.service.snapshots(repository, plan: plan)
        #expect(snapshots.count == 2)
        let newest = try #require(try harness.service.store.run(jobID: last!.id))
        #expect(snapshots.first?.shortID == newest.snapshotID && newest.removedSnapshots == 1)
        let preview = try await harness.service.previewRetention(repository, plan: plan, policy: RetentionPolicy(last: 0))
        #expect(preview.kept == 1 && preview.removed == 1 && preview.items.first?.keep == true && preview.items.first?.reasons == ["last snapshot"])
    }
}

actor Collected {
    var data = Data()
    func add(_ chunk: Data) { data.append(chunk) }
}
