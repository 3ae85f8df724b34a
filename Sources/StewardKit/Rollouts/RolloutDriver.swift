import Foundation
import GRDB
import Logging
import ServiceLifecycle

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Moves approved rollouts forward, one step per tick: waits for the maintenance window and the pause between
/// waves, starts each wave's job, records its results, and holds the health gate for the settle time: the wave's
/// hosts are back up, no critical alert fires on them, and the check URL (if any) answers 2xx. A failed gate or too
/// many failures pauses the rollout and notifies. State is in the database, so a restart picks up where it was.
public actor RolloutDriver: Service {
    let service: RolloutService
    let jobs: JobRunner
    let evaluator: AlertEvaluator?
    let slos: SLOEngine?
    let interval: Duration
    let logger: Logger
    /// When the HTTP check last passed, per rollout and wave, so it is not asked on every tick.
    private var lastCheck: [String: Date] = [:]
    private var wake: AsyncStream<Void>.Continuation?

    public init(
        service: RolloutService, jobs: JobRunner, evaluator: AlertEvaluator?, slos: SLOEngine? = nil, interval: Duration = .seconds(2), logger: Logger
    ) {
        self.service = service
        self.jobs = jobs
        self.evaluator = evaluator
        self.slos = slos
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let (signals, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wake = continuation
        service.wakeDriver.install { continuation.yield() }
        await cancelWhenGracefulShutdown {
            var iterator = signals.makeAsyncIterator()
            while !Task.isCancelled {
                await self.tick()
                // Sleep for the interval, or less when a wave's job ends.
                let interval = self.interval
                // Only a sleeper that slept its interval wakes the loop; a cancelled one waking it would make it spin.
                let sleeper = Task {
                    try? await Task.sleep(for: interval)
                    if !Task.isCancelled { continuation.yield() }
                }
                _ = await iterator.next()
                sleeper.cancel()
            }
        }
    }

    /// Take the next step at once (a wave's job ended, a rollout was approved).
    public func nudge() { wake?.yield() }

    /// Wake when this wave's job ends, so the next step does not wait for the interval.
    func watch(job id: Int64) {
        let stream = jobs.events.subscribe(job: id)
        Task {
            for await event in stream {
                if case .finished = event { await self.nudge() }
            }
        }
    }

    public func tick(now: Date = Date()) async {
        do {
            for rollout in try await service.database.read({ db in
                try Row.fetchAll(
                    db, sql: "SELECT * FROM rollouts WHERE state IN ('planning', 'plan_failed', 'awaiting_approval', 'approved', 'running')"
                ).map(Rollout.init)
            }) {
                // Several steps in one tick when nothing needs to wait (a gate with no settle time, no pause).
                var current = rollout
                for _ in 0..<8 {
                    try await step(current, now: now)
                    guard let next = try service.rollout(id: rollout.id), next != current, next.state == .running || next.state == .approved else {
                        break
                    }
                    current = next
                }
            }
        } catch is CancellationError {
            // Steward is stopping: the step is taken again at the next start.
            logger.debug("rollout driver step cut short by shutdown")
        } catch {
            logger.error("rollout driver step failed", metadata: ["error": "\(error)"])
        }
    }

    func detail(_ rollout: Rollout, _ text: String, now: Date) throws {
        guard rollout.stateDetail != text else { return }
        try service.database.write { db in
            try db.execute(
                sql: "UPDATE rollouts SET state_detail = ?, updated_at = ? WHERE id = ?", arguments: [text, EpochMilliseconds.from(now), rollout.id])
        }
    }

    func pause(_ rollout: Rollout, wave: Int, because reason: String, now: Date) async throws {
        try await service.database.write { db in
            try db.execute(
                sql: "UPDATE rollout_waves SET state = 'failed', gate = ? WHERE rollout_id = ? AND number = ?", arguments: [reason, rollout.id, wave])
        }
        try service.setState(rollout.id, .paused, detail: "paused at wave \(wave): \(reason)", now: now)
        logger.warning("rollout paused", metadata: ["rollout": "\(rollout.id)", "reason": "\(reason)"])
        await service.notify(
            try service.rollout(id: rollout.id)!, event: "paused",
            detail: "wave \(wave): \(reason). Look at the hosts, then resume or abort the rollout.")
    }

    func step(_ rollout: Rollout, now: Date) async throws {
        let nowMS = EpochMilliseconds.from(now)
        switch rollout.state {
        case .planning, .planFailed, .awaitingApproval:
            if nowMS > rollout.expiresAt {
                try service.setState(
                    rollout.id, .expired, detail: "not approved before \(RFC3339.string(milliseconds: rollout.expiresAt) ?? "")", now: now)
                await service.notify(
                    try service.rollout(id: rollout.id)!, event: "expired", detail: "it was not approved in time; nothing was changed")
            }
            return
        case .approved:
            let waves = Rollout.waves(
                hosts: try service.plan(rollout.id).map(\.host), canary: rollout.canary, kind: rollout.waveKind, size: rollout.waveSize)
            try await service.database.write { db in
                try db.execute(sql: "DELETE FROM rollout_waves WHERE rollout_id = ?", arguments: [rollout.id])
                for (index, hosts) in waves.enumerated() {
                    try db.execute(
                        sql: "INSERT INTO rollout_waves (rollout_id, number, hosts, state) VALUES (?, ?, ?, 'pending')",
                        arguments: [rollout.id, index + 1, JSONText.encode(hosts)])
                }
            }
            try service.setState(rollout.id, .running, detail: "\(waves.count) wave(s); the canary goes first", now: now)
            return
        case .running:
            break
        default:
            return
        }
        let waves = try service.waves(rollout.id)
        if let active = waves.first(where: { $0.state == "running" || $0.state == "gating" }) {
            try await follow(rollout, wave: active, all: waves, now: now)
            return
        }
        guard let next = waves.first(where: { $0.state == "pending" }) else {
            let results = try service.results(rollout.id)
            let failed = results.filter { ["failed", "unreachable"].contains($0.status) }
            let changed = results.reduce(0) { $0 + $1.changes.count }
            let report =
                "\(results.count) host(s) in \(waves.count) wave(s): \(changed) package change(s), \(results.filter(\.rebooted).count) reboot(s), \(failed.count) failure(s)"
            try service.setState(rollout.id, .succeeded, detail: report, now: now)
            await service.notify(try service.rollout(id: rollout.id)!, event: "finished", detail: report)
            return
        }
        // The pause between waves runs from the end of the previous one.
        if let previous = waves.last(where: { $0.state == "passed" }), let ended = previous.finishedAt,
            nowMS < ended + Int64(rollout.pauseSeconds) * 1000
        {
            try detail(rollout, "wave \(next.number) starts after the \(rollout.pauseSeconds) s pause", now: now)
            return
        }
        if let windowID = rollout.windowID,
            let window = try MaintenanceWindowStore(database: service.database).all().first(where: { $0.id == windowID }),
            !window.isOpen(at: now)
        {
            try detail(rollout, "wave \(next.number) waits for maintenance window \"\(window.name)\"", now: now)
            return
        }
        let budgets = try budgetGate(rollout, wave: next)
        if let spent = budgets.spent {
            try holdForBudget(rollout, wave: next, spent: spent, now: now)
            await service.notify(
                try service.rollout(id: rollout.id)!, event: "paused",
                detail:
                    "wave \(next.number) did not start: \(spent). A second approver may approve it as an urgent or security change, with a reason.")
            return
        }
        let job = try await jobs.enqueue(
            JobRequest(
                kind: RolloutService.waveKind, title: "Rollout #\(rollout.id) wave \(next.number): \(rollout.title)",
                params: RolloutJob(rolloutID: rollout.id, wave: next.number).json, host: next.hosts.count == 1 ? next.hosts[0] : nil,
                startedBy: "rollout #\(rollout.id)",
                reason: "wave \(next.number) of \(waves.count)" + (next.number == 1 && rollout.canary > 0 ? " (canary)" : "")))
        watch(job: job.id)
        try await service.database.write { db in
            try db.execute(
                sql:
                    "UPDATE rollout_waves SET state = 'running', job_id = ?, started_at = ?, budget = ?, gate = ? WHERE rollout_id = ? AND number = ?",
                arguments: [job.id, nowMS, budgets.record, budgets.override ?? "", rollout.id, next.number])
            try db.execute(
                sql: "UPDATE rollouts SET current_wave = ?, state_detail = ?, updated_at = ? WHERE id = ?",
                arguments: [next.number, "wave \(next.number) of \(waves.count) running (job \(job.id))", nowMS, rollout.id])
        }
    }

    func follow(_ rollout: Rollout, wave: RolloutService.Wave, all waves: [RolloutService.Wave], now: Date) async throws {
        let nowMS = EpochMilliseconds.from(now)
        if wave.state == "running" {
            guard let jobID = wave.jobID, let job = try jobs.store.job(id: jobID), job.state.isFinished else { return }
            // Failures so far, over every host that has been through a wave.
            let results = try service.results(rollout.id)
            let failed = results.filter { ["failed", "unreachable"].contains($0.status) }
            let share = results.isEmpty ? 0 : Double(failed.count) * 100 / Double(results.count)
            try await service.database.write { db in
                try db.execute(
                    sql: "UPDATE rollout_waves SET state = 'gating', finished_at = ? WHERE rollout_id = ? AND number = ?",
                    arguments: [nowMS, rollout.id, wave.number])
                try self.recordBudgetAfter(db, rollout: rollout.id, wave: wave.number)
                try db.execute(sql: "UPDATE rollouts SET gate_started_at = ? WHERE id = ?", arguments: [nowMS, rollout.id])
            }
            if job.state != .succeeded && failed.isEmpty {
                try await pause(rollout, wave: wave.number, because: "the wave's job \(job.state.rawValue): \(job.error ?? "")", now: now)
            } else if share > Double(rollout.maxFailurePercent) {
                try await pause(
                    rollout, wave: wave.number,
                    because:
                        "\(failed.count) of \(results.count) host(s) failed (\(Int(share)) %, more than the allowed \(rollout.maxFailurePercent) %): "
                        + failed.map { "\($0.host) \($0.status)" }.joined(separator: ", "), now: now)
            }
            return
        }
        // Gating: every check must hold for the whole settle time.
        if let problem = try await gateProblem(rollout, wave: wave, now: now) {
            try await pause(rollout, wave: wave.number, because: "health gate: \(problem)", now: now)
            return
        }
        let started = rollout.gateStartedAt ?? nowMS
        if nowMS - started >= Int64(rollout.settleSeconds) * 1000 {
            try await service.database.write { db in
                try db.execute(
                    sql: "UPDATE rollout_waves SET state = 'passed', gate = ?, finished_at = ? WHERE rollout_id = ? AND number = ?",
                    arguments: [
                        "passed: hosts up, no critical alert for \(rollout.settleSeconds) s"
                            + (wave.gate.contains("approved as urgent") ? "; \(wave.gate)" : ""), nowMS, rollout.id, wave.number,
                    ])
                try self.recordBudgetAfter(db, rollout: rollout.id, wave: wave.number)
            }
            try detail(rollout, "wave \(wave.number) of \(waves.count) passed its health gate", now: now)
        } else {
            try detail(rollout, "wave \(wave.number) of \(waves.count) settling: health gate for \(rollout.settleSeconds) s", now: now)
        }
    }

    /// What is wrong with the wave's hosts now, or nil when the gate holds.
    func gateProblem(_ rollout: Rollout, wave: RolloutService.Wave, now: Date) async throws -> String? {
        let hosts = try service.hosts.all().filter { wave.hosts.contains($0.name) }
        let results = try service.results(rollout.id).filter { $0.wave == wave.number }
        if let down = results.first(where: { $0.status == "unreachable" }) { return "\(down.host) is not back up (unreachable in the wave)" }
        // The wave's own results are the fresh answer for SSH; hosts with a metrics URL are also watched by each
        // scrape round, so a host that goes down while the gate holds is seen.
        if let down = hosts.first(where: { $0.metricsURL != nil && $0.state == .down }) {
            return "\(down.name) is down" + (down.stateDetail.map { ": \($0)" } ?? "")
        }
        if let evaluator {
            let ids = Set(hosts.map(\.id))
            let rules = Dictionary(uniqueKeysWithValues: try AlertRuleStore(database: service.database).all().map { ($0.id, $0) })
            // A wave approved to start while a budget was spent: the SLO pages that already fired then are what the
            // approver accepted, not the wave's doing; one that begins during the wave still stops it.
            let urgent = wave.gate.contains("approved as urgent")
            for entry in evaluator.allStates() where ids.contains(entry.host) && entry.state.phase == .firing && entry.state.severity == .critical {
                if urgent, rules[entry.rule]?.source == SLOAlerts.source, let began = entry.state.activeSince, let started = wave.startedAt,
                    began < started
                {
                    continue
                }
                let host = hosts.first { $0.id == entry.host }?.name ?? "?"
                return "critical alert \"\(rules[entry.rule]?.name ?? "?")\" is firing on \(host)"
            }
        }
        if !rollout.checkURL.isEmpty, let url = URL(string: rollout.checkURL) {
            let key = "\(rollout.id):\(wave.number)"
            if let last = lastCheck[key], now.timeIntervalSince(last) < 5 { return nil }
            var request = URLRequest(url: url, timeoutInterval: 10)
            request.httpMethod = "GET"
            do {
                let (_, response) = try await URLSession.shared.data(for: request)
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                guard (200..<300).contains(status) else { return "the check URL answered \(status), not 2xx" }
                lastCheck[key] = now
            } catch {
                return "the check URL did not answer: \(error.localizedDescription)"
            }
        }
        return nil
    }

    // MARK: the error-budget gate

    /// The SLOs a wave respects: those covering its hosts, and those the rollout names besides (naming one never
    /// drops a covering SLO, so a rollout cannot name its way past a spent budget). Read from the SLOs themselves, so
    /// one the engine has not counted yet is still respected.
    func respected(_ rollout: Rollout, wave: RolloutService.Wave) throws -> [SLO] {
        guard slos != nil else { return [] }
        let hosts = try service.hosts.all()
        let checks = try CheckStore(database: service.database).all()
        let ids = Set(hosts.filter { wave.hosts.contains($0.name) }.map(\.id))
        let held = Self.heldBy(wave.gate)
        return try SLOStore(database: service.database).all().filter { slo in
            rollout.slos.contains(slo.name) || held.contains(slo.name)
                || !SLOEngine.coveredHostIDs(slo, hosts: hosts, checks: checks).isDisjoint(with: ids)
        }
    }

    /// The SLOs a wave's hold names (`RolloutService.budgetHoldMention`): a held wave keeps respecting them,
    /// so taking a host out of a group or moving a check to another host does not release it. (SLO names have no quotes.)
    static func heldBy(_ gate: String) -> Set<String> {
        guard gate.hasPrefix(RolloutService.budgetHoldPrefix) else { return [] }
        var names: Set<String> = []
        var rest = Substring(gate)
        while let start = rest.range(of: "SLO \""), let end = rest[start.upperBound...].range(of: "\" (") {
            names.insert(String(rest[start.upperBound..<end.lowerBound]))
            rest = rest[end.upperBound...]
        }
        return names
    }

    /// Before a wave: the budgets it starts with (JSON for the wave's record), the spent ones as a reason to hold it,
    /// unless an approver other than the requester approved the rollout as urgent with a reason.
    func budgetGate(_ rollout: Rollout, wave: RolloutService.Wave) throws -> (record: String, spent: String?, override: String?) {
        let respected = try respected(rollout, wave: wave)
        let now = EpochMilliseconds.from(Date())
        var record: [String: Any] = [:]
        var holds: [String] = []
        for slo in respected {
            // No answer is not a yes: an SLO not counted lately, or whose SLI fails, holds the wave as a spent one does.
            guard let status = slos?.status(slo.id), now - status.at <= 5 * 60_000 else {
                holds.append(RolloutService.budgetHoldMention(slo.name) + "not evaluated in the last 5 minutes, so its error budget is unknown)")
                continue
            }
            if let problem = status.problem {
                // Without double quotes, so the SLO names in the hold stay the only quoted words (heldBy, SLOStore.holds).
                let words = problem.replacingOccurrences(of: "\"", with: "'")
                holds.append(RolloutService.budgetHoldMention(slo.name) + "its SLI cannot be counted: \(words))")
                continue
            }
            record[slo.name] = ["before": SLOResource.round(status.remaining * 100, 4)]
            if status.spent {
                holds.append(
                    RolloutService.budgetHoldMention(slo.name) + "\(SLOController.percent(status.remaining * 100)) of its error budget left)")
            }
        }
        let json = record.isEmpty ? "" : JSONText.encode(record)
        guard !holds.isEmpty else { return (json, nil, nil) }
        let reason = "the error budget of " + holds.joined(separator: " and ") + " is spent or unknown"
        let urgent = try service.database.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT actor, reason FROM rollout_approvals
                    WHERE rollout_id = ? AND revision = ? AND decision = 'approve' AND urgent = 1 AND reason != '' AND actor != ? ORDER BY id LIMIT 1
                    """, arguments: [rollout.id, rollout.revision, rollout.requestedBy])
        }
        guard let urgent else { return (json, reason, nil) }
        return (json, nil, "started although \(reason): approved as urgent by \(urgent["actor"] as String): \(urgent["reason"] as String)")
    }

    /// Pause before a wave that may not start; the wave stays pending, so a resume asks the gate again.
    func holdForBudget(_ rollout: Rollout, wave: RolloutService.Wave, spent: String, now: Date) throws {
        try service.database.write { db in
            try db.execute(
                sql: "UPDATE rollout_waves SET gate = ? WHERE rollout_id = ? AND number = ?",
                arguments: [RolloutService.budgetHoldPrefix + spent, rollout.id, wave.number])
        }
        try service.setState(rollout.id, .paused, detail: "paused before wave \(wave.number): \(spent)", now: now)
        logger.warning("rollout held by an error budget", metadata: ["rollout": "\(rollout.id)", "reason": "\(spent)"])
    }

    /// After a wave: each respected SLO's budget now, beside what it was when the wave started.
    nonisolated func recordBudgetAfter(_ db: GRDB.Database, rollout: Int64, wave: Int) throws {
        guard let slos else { return }
        let text =
            try String.fetchOne(db, sql: "SELECT budget FROM rollout_waves WHERE rollout_id = ? AND number = ?", arguments: [rollout, wave]) ?? ""
        guard var record = JSONText.object(text), !record.isEmpty else { return }
        let statuses = Dictionary(slos.allStatuses().map { ($0.slo.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (name, value) in record {
            guard var entry = value as? [String: Any], let status = statuses[name] else { continue }
            let after = SLOResource.round(status.remaining * 100, 4)
            entry["after"] = after
            if let before = entry["before"] as? Double { entry["burned"] = SLOResource.round(before - after, 4) }
            record[name] = entry
        }
        try db.execute(
            sql: "UPDATE rollout_waves SET budget = ? WHERE rollout_id = ? AND number = ?", arguments: [JSONText.encode(record), rollout, wave])
    }
}
