import Foundation
import GRDB
import Logging
import StewardKit

/// bench/rollout: a no-op update (the config repo's ping playbook) planned and applied across 20 hosts in 4 waves
/// by the real plan job, wave jobs and driver, with no approval, pause or settle time to wait for. The engine's own
/// time is what ansible-playbook took in each job (each job logs it); Steward's time is everything else from
/// proposing the rollout to its end.
func benchRollout(_ options: Options) async throws {
    let count = options.int("hosts", 20)
    let waves = options.int("waves", 4)
    let rounds = options.int("rounds", 2)
    let work = options.string("work") ?? NSTemporaryDirectory() + "steward-bench-rollout-\(getpid())"
    defer { if options.string("work") == nil { try? FileManager.default.removeItem(atPath: work) } }
    var quiet = Logger(label: "bench")
    quiet.logLevel = .warning
    var totals: [Double] = []
    var engines: [Double] = []
    for round in 1...rounds {
        let data = DataDirectory(path: work + "/data-\(round)")
        try data.prepare()
        let database = try makeDatabase(data.databasePath)
        let hosts = HostStore(database: database)
        for index in 1...count {
            // Local transport: every host is this machine, so the figures are Steward's and ansible's, not a network's.
            var settings = HostSettings()
            settings.name = String(format: "bench-%02d", index)
            settings.address = "127.0.0.1"
            settings.transport = .local
            settings.groups = ["bench"]
            _ = try hosts.create(settings, by: AuditActor(actor: "bench"), now: Date())
        }
        let identity = SSHIdentity(dataDirectory: data)
        try identity.prepare()
        let repository = ConfigRepository(dataDirectory: data)
        try repository.prepare()
        let engine = Engine(
            database: database, hosts: hosts, keys: HostKeyStore(database: database, identity: identity), repository: repository, dataDirectory: data)
        try engine.prepare()
        let service = RolloutService(database: database, engine: engine, hosts: hosts)
        let runner = JobRunner(
            store: JobStore(database: database), events: JobEvents(), handlers: service.handlers(), concurrency: 4, logCap: 1 << 22,
            shutdownGrace: .seconds(5), logger: quiet)
        let driver = RolloutDriver(service: service, jobs: runner, evaluator: nil, logger: quiet)
        let loops = [Task { try? await runner.run() }, Task { try? await driver.run() }]
        defer { for loop in loops { loop.cancel() } }

        var rollout = Rollout()
        rollout.title = "bench no-op"
        rollout.what = .playbook
        rollout.playbook = "playbooks/ping.yml"
        rollout.targets = ["bench"]
        rollout.canary = count / waves
        rollout.waveSize = count / waves
        rollout.approvalsRequired = 0
        rollout.settleSeconds = 0
        rollout.expiresAt = EpochMilliseconds.from(Date()) + 3_600_000
        let start = ContinuousClock.now
        let (saved, _) = try await service.save(rollout, by: AuditActor(actor: "bench"), isAdmin: false, jobs: runner)
        var current = saved
        while !current.state.isFinished && current.state != .paused {
            try await Task.sleep(for: .milliseconds(20))
            current = try service.rollout(id: saved.id)!
        }
        let elapsed = ContinuousClock.now - start
        let total = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        guard current.state == .succeeded else { throw BenchError("the rollout ended \(current.state.rawValue): \(current.stateDetail)") }
        let jobIDs = [current.planJobID].compactMap { $0 } + (try service.waves(saved.id).compactMap(\.jobID))
        var engineTime = 0.0
        for id in jobIDs {
            let log = try runner.store.logChunks(id: id).map(\.text).joined()
            // "engine: ansible-playbook ran 1.234 s" and "engine: ansible-playbook --syntax-check ran 0.9 s"
            for line in log.split(separator: "\n") where line.hasPrefix("engine: ansible-playbook ") {
                let words = line.split(separator: " ")
                if let ran = words.firstIndex(of: "ran"), ran + 1 < words.count { engineTime += Double(words[ran + 1]) ?? 0 }
            }
        }
        totals.append(total)
        engines.append(engineTime)
        say(
            String(
                format: "round %d: %d hosts, plan + %d waves: %.2f s in all, ansible-playbook %.2f s, Steward %.2f s (%.1f %%)", round, count,
                try service.waves(saved.id).count, total, engineTime, total - engineTime, (total - engineTime) / engineTime * 100))
    }
    let best = zip(totals, engines).min { ($0.0 - $0.1) / $0.1 < ($1.0 - $1.1) / $1.1 }!
    let median = zip(totals, engines).map { ($0 - $1) / $1 * 100 }.sorted()[rounds / 2]
    say(
        String(
            format: "Steward's time on top of the engine's: best %.1f %%, median %.1f %% of ansible-playbook's time (goal < 10 %%)",
            (best.0 - best.1) / best.1 * 100, median))
}
