import Foundation
import GRDB
import Logging
import StewardKit

/// bench/backup: a generated tree of mixed files backed up as a Steward job (the job runner, restic's --json stream
/// parsed into progress, the run's summary and repository status stored) versus `restic backup` run directly with
/// the same repository settings. Each round uses fresh repositories; the tree is read once first so both runs start
/// from a warm page cache.
func benchBackup(_ options: Options) async throws {
    let megabytes = options.int("megabytes", 1024)
    let rounds = options.int("rounds", 2)
    let work = options.string("work") ?? NSTemporaryDirectory() + "steward-bench-backup-\(getpid())"
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { if options.string("work") == nil { try? FileManager.default.removeItem(atPath: work) } }
    let tree = work + "/tree"
    let (files, bytes) = try generateTree(tree, megabytes: megabytes)
    say(
        "tree: \(files) files, \(bytes / 1_048_576) MiB (70% random data in 1-64 MiB files, 20% text in 64-512 KiB files, 10% small files of 1-16 KiB)"
    )
    _ = try readEverything(tree)

    let data = DataDirectory(path: work + "/data")
    try data.prepare()
    let database = try makeDatabase(data.databasePath)
    let hosts = HostStore(database: database)
    try hosts.ensureLocalhost(now: Date())
    let localhost = try hosts.host(named: "localhost")!
    let service = BackupService(
        store: BackupStore(database: database, sealer: SecretSealer(masterKey: try data.secretKey(), purpose: "bench")), hosts: hosts,
        identity: SSHIdentity(directory: work + "/ssh"), dataDirectory: data)
    var quiet = Logger(label: "bench")
    quiet.logLevel = .warning
    let runner = JobRunner(
        store: JobStore(database: database), events: JobEvents(), handlers: service.handlers(), concurrency: 2, logCap: 1 << 20,
        shutdownGrace: .seconds(5), logger: quiet)
    let loop = Task { try? await runner.run() }
    defer { loop.cancel() }

    var rawTimes: [Double] = []
    var jobTimes: [Double] = []
    for round in 1...rounds {
        // Reference: restic on its own, same password handling, cache directory and progress setting.
        let rawRepository = work + "/raw-\(round)"
        var environment = ProcessInfo.processInfo.environment
        environment["RESTIC_PASSWORD"] = "bench password"
        environment["RESTIC_CACHE_DIR"] = work + "/raw-cache-\(round)"
        try runQuiet(["restic", "--repo", rawRepository, "init"], environment: environment)
        let rawStart = Date()
        try runQuiet(["restic", "--repo", rawRepository, "backup", "--", tree], environment: environment)
        rawTimes.append(Date().timeIntervalSince(rawStart))

        var repository = BackupRepository()
        repository.name = "bench \(round)"
        repository.hostID = localhost.id
        repository.path = work + "/steward-\(round)"
        repository = try await service.addRepository(repository, password: "bench password", initialise: true, by: .system, now: Date())
        var plan = BackupPlan()
        plan.name = "bench \(round)"
        plan.hostID = localhost.id
        plan.repositoryID = repository.id
        plan.paths = [tree]
        plan = try await service.save(plan, timing: BackupPlanTiming(), by: .system, isAdmin: true, now: Date())
        let jobStart = Date()
        let job = try await runner.enqueue(
            JobRequest(kind: BackupStore.backupKind, title: "bench", params: "{\"plan_id\":\(plan.id)}", startedBy: "bench"))
        var finished = try runner.store.job(id: job.id)!
        while !finished.state.isFinished {
            try await Task.sleep(for: .milliseconds(20))
            finished = try runner.store.job(id: job.id)!
        }
        jobTimes.append(Date().timeIntervalSince(jobStart))
        guard finished.state == .succeeded else { throw JobFailure("the Steward job \(finished.state.rawValue): \(finished.error ?? "")") }
        let run = try service.store.run(jobID: job.id)
        say(
            String(
                format:
                    "round %d: restic directly %.2f s, Steward job %.2f s (snapshot %@, %@ added, from enqueue to finished: queueing, --json progress into the job, the stored summary)",
                round, rawTimes.last!, jobTimes.last!, run?.snapshotID ?? "?", MetricUnit.bytes.format(Double(run?.bytesAdded ?? 0))))
    }
    let raw = rawTimes.min()!
    let job = jobTimes.min()!
    say(String(format: "restic backup directly: %.2f s (best of %d), %.0f MiB/s", raw, rounds, Double(bytes) / 1_048_576 / raw))
    say(String(format: "as a Steward job:       %.2f s (best of %d), %.0f MiB/s", job, rounds, Double(bytes) / 1_048_576 / job))
    say(String(format: "ratio Steward / restic: %.3f (goal ≤ 1.10)", job / raw))
}

func runQuiet(_ argv: [String], environment: [String: String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = argv
    process.environment = environment
    process.standardOutput = FileHandle.nullDevice
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    let message = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw JobFailure("\(argv.joined(separator: " ")) exited \(process.terminationStatus): \(String(decoding: message, as: UTF8.self))")
    }
}

/// Deterministic contents: random bytes, word-like text, and many small files.
func generateTree(_ root: String, megabytes: Int) throws -> (files: Int, bytes: Int64) {
    var random = Random(state: 20_261_121)
    var files = 0
    var bytes: Int64 = 0
    let total = Int64(megabytes) << 20
    func write(_ path: String, _ data: Data) throws {
        try data.write(to: URL(fileURLWithPath: path))
        files += 1
        bytes += Int64(data.count)
    }
    func randomData(_ count: Int) -> Data {
        var data = Data(count: count)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for index in words.indices { words[index] = random.next() }
        }
        return data
    }
    let vocabulary = ["steward", "backup", "restic", "snapshot", "host", "fleet", "alert", "metric", "rollout", "the", "of", "and", "error", "ok"]
    try FileManager.default.createDirectory(atPath: root + "/large", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: root + "/text", withIntermediateDirectories: true)
    var index = 0
    while bytes < total * 7 / 10 {
        let size = Int(random.next() % UInt64(63 << 20)) + (1 << 20)
        try write(root + "/large/blob-\(index).bin", randomData(min(size, Int(total * 7 / 10 - bytes) + 4096) & ~7))
        index += 1
    }
    while bytes < total * 9 / 10 {
        var text = ""
        let target = Int(random.next() % UInt64(448 << 10)) + (64 << 10)
        while text.utf8.count < target {
            text += vocabulary[Int(random.next() % UInt64(vocabulary.count))] + (random.next() % 12 == 0 ? "\n" : " ")
        }
        try write(root + "/text/doc-\(index).txt", Data(text.utf8))
        index += 1
    }
    var directory = 0
    var small = 0
    while bytes < total {
        if small % 500 == 0 {
            directory += 1
            try FileManager.default.createDirectory(atPath: root + "/small/d\(directory)", withIntermediateDirectories: true)
        }
        try write(root + "/small/d\(directory)/f-\(index)", randomData(Int(random.next() % UInt64(15 << 10) + 1024) & ~7))
        index += 1
        small += 1
    }
    return (files, bytes)
}

func readEverything(_ root: String) throws -> Int64 {
    var total: Int64 = 0
    for relative in try FileManager.default.subpathsOfDirectory(atPath: root) {
        if let data = FileManager.default.contents(atPath: root + "/" + relative) { total += Int64(data.count) }
    }
    return total
}
