import Foundation
import GRDB

/// The plan job (check mode) and the wave job (apply) of a rollout.
extension RolloutService {
    public func handlers() -> [String: JobHandler] {
        [Self.planKind: { context in try await self.runPlan(context) }, Self.waveKind: { context in try await self.runWave(context) }]
    }

    static func ids(_ job: Job) throws -> (rollout: Int64, number: Int) {
        let params = try job.parameters(RolloutJob.self)
        return (params.rolloutID, params.wave ?? params.revision ?? 0)
    }

    /// The newest event of `task` per host in a job, decoded from the JSON the task's debug message carries.
    /// Each host's report of the given name from a built-in playbook, whole (see the `report` event of the callback
    /// plugin); a host that sent none is absent.
    func reports(job: Int64, name: String) throws -> [String: [String: Any]] {
        try database.read { db in
            var result: [String: [String: Any]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT host, body FROM job_reports WHERE job_id = ? AND name = ?", arguments: [job, name]) {
                guard let object = (row["body"] as String?).flatMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
                else { continue }
                result[row["host"]] = object
            }
            return result
        }
    }

    /// Run the engine and read the per-host results whether or not some hosts failed; the failure is returned for the
    /// caller to raise once it has recorded what happened. Cancellation is raised at once.
    func executeKeepingResults(_ run: PlaybookRun, _ context: JobContext) async throws -> ([HostResult], (any Error)?) {
        var failure: (any Error)?
        do {
            try await engine.execute(run, context)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            failure = error
        }
        return (try Engine.results(database, job: context.job.id), failure)
    }

    // MARK: plan

    func runPlan(_ context: JobContext) async throws {
        let (id, revision) = try Self.ids(context.job)
        guard let rollout = try rollout(id: id) else { throw JobFailure("rollout \(id) no longer exists") }
        guard rollout.revision == revision, rollout.state == .planning else {
            await context.log("rollout #\(id) changed since this plan was queued; a newer plan replaces it")
            return
        }
        let targets = try targetHosts(rollout)
        let names = targets.map(\.name)
        await context.log("planning rollout #\(id) revision \(revision) on \(names.joined(separator: ", "))")
        var run: PlaybookRun
        if rollout.what == .playbook {
            run = PlaybookRun(playbook: rollout.playbook, targets: names)
            run.commit = rollout.playbookCommit.isEmpty ? try engine.repository.head() : rollout.playbookCommit
        } else {
            run = PlaybookRun(playbook: BuiltinPlaybooks.rollout, targets: names)
            run.builtin = BuiltinPlaybooks.rollout
            // An upgrade simulates its pins only (a rollback); an install or removal simulates every named package.
            let pins = rollout.what == .packages ? rollout.packages.filter { $0.contains("=") } : rollout.packages
            run.variables = JSONText.encode([
                "steward_phase": "plan", "steward_action": rollout.what.storage.action, "steward_plan": [String: [String]](),
                "steward_reboot": "never", "steward_pins": pins,
            ])
        }
        run.check = true
        let (results, failure) = try await executeKeepingResults(run, context)
        var items: [RolloutPlanItem] = []
        if rollout.what == .playbook {
            let diffs = try database.read { db in
                try Row.fetchAll(
                    db,
                    sql: "SELECT host, task, status, detail FROM job_task_events WHERE job_id = ? AND status IN ('changed', 'failed') ORDER BY seq",
                    arguments: [context.job.id])
            }
            for host in names {
                let lines = diffs.filter { ($0["host"] as String) == host }.map { row -> String in
                    let detail =
                        (row["detail"] as String?).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
                    return "\(row["status"] as String): \(row["task"] as String)" + ((detail["diff"] as? String).map { "\n" + $0 } ?? "")
                }
                let result = results.first { $0.host == host }
                items.append(
                    RolloutPlanItem(
                        host: host, changes: [], diff: lines.joined(separator: "\n"),
                        problem: result.map { ["failed", "unreachable"].contains($0.status) ? "\($0.status): \($0.message ?? "")" : "" }
                            ?? "no result"))
            }
        } else {
            let reports = try self.reports(job: context.job.id, name: "plan")
            let wanted = Set(rollout.packages.map { String($0.split(separator: "=").first ?? "") })
            for host in names {
                guard let report = reports[host] else {
                    let result = results.first { $0.host == host }
                    items.append(
                        RolloutPlanItem(
                            host: host, changes: [], diff: "",
                            problem: "\(result?.status ?? "no result"): \(result?.message ?? "the plan task did not run")"))
                    continue
                }
                var updates = PendingUpdate.parse(
                    apt: report["apt"] as? [String] ?? [], dnf: report["dnf"] as? [String] ?? [],
                    dnfSecurity: report["dnf_security"] as? [String] ?? [], dnfInstalled: report["dnf_installed"] as? [String] ?? [])
                var problem = ""
                switch rollout.what {
                case .security: updates = updates.filter(\.security)
                case .all: break
                case .packages:
                    // An upgrade changes installed packages only: a pin of one that is not installed here is left out.
                    defer { updates = updates.filter { !$0.current.isEmpty || !wanted.contains($0.package) } }
                    let pinned = rollout.packages.filter { $0.contains("=") }
                    if !pinned.isEmpty, report["pkg_mgr"] as? String == "dnf" {
                        let (changes, missing) = PendingUpdate.dnfPins(
                            pinned, offered: report["dnf_offered"] as? [String] ?? [], installed: report["dnf_installed"] as? [String] ?? [])
                        updates = changes
                        if !missing.isEmpty {
                            problem =
                                "the package manager cannot install the pinned version here (no repository offers \(missing.joined(separator: ", "))); rolling back needs that version in a repository"
                        }
                    } else if !pinned.isEmpty {
                        let lines = report["pinned"] as? [String] ?? []
                        updates = lines.compactMap(PendingUpdate.parseApt)
                        if let error = lines.first(where: { $0.hasPrefix("E:") }) {
                            problem =
                                "the package manager cannot install the pinned version here (\(error)); rolling back needs that version in a repository"
                        }
                    } else {
                        updates = updates.filter { wanted.contains($0.package) }
                    }
                case .install:
                    (updates, problem) = PackagePlan.install(rollout.packages, report: report)
                case .remove:
                    (updates, problem) = PackagePlan.removal(rollout.packages, report: report)
                case .playbook: break
                }
                items.append(RolloutPlanItem(host: host, changes: updates, diff: "", problem: problem))
            }
        }
        let factsAt = try await database.read { db in
            try Int64.fetchOne(
                db,
                sql:
                    "SELECT MAX(f.gathered_at) FROM host_facts f JOIN hosts h ON h.id = f.host_id WHERE h.name IN (\(names.map { _ in "?" }.joined(separator: ",")))",
                arguments: StatementArguments(names))
        }
        let problems = items.filter { !$0.problem.isEmpty }
        let state: Rollout.State = problems.isEmpty ? (rollout.approvalsRequired == 0 ? .approved : .awaitingApproval) : .planFailed
        let detail =
            problems.isEmpty
            ? "\(items.reduce(0) { $0 + $1.changes.count }) package change(s) on \(items.filter { !$0.changes.isEmpty || !$0.diff.isEmpty }.count) of \(items.count) host(s)"
            : "the plan failed on " + problems.map { "\($0.host) (\($0.problem))" }.joined(separator: "; ")
        let now = Date()
        let planned = items
        try await database.write { db in
            guard try Int.fetchOne(db, sql: "SELECT revision FROM rollouts WHERE id = ?", arguments: [id]) == revision else { return }
            try db.execute(sql: "DELETE FROM rollout_plan WHERE rollout_id = ?", arguments: [id])
            for item in planned {
                let changes = item.changes.map {
                    ["package": $0.package, "current": $0.current, "candidate": $0.candidate, "origin": $0.origin, "security": $0.security]
                        as [String: Any]
                }
                try db.execute(
                    sql: "INSERT INTO rollout_plan (rollout_id, host, changes, diff, problem) VALUES (?, ?, ?, ?, ?)",
                    arguments: [id, item.host, JSONText.encode(changes), item.diff, item.problem])
            }
            try db.execute(
                sql: "UPDATE rollouts SET state = ?, state_detail = ?, planned_at = ?, plan_facts_at = ?, updated_at = ? WHERE id = ?",
                arguments: [
                    state.rawValue, detail, EpochMilliseconds.from(now), factsAt ?? EpochMilliseconds.from(now), EpochMilliseconds.from(now), id,
                ])
        }
        await context.log("plan: \(detail)")
        wakeDriver()
        if let updated = try self.rollout(id: id) {
            await notify(
                updated, event: state == .awaitingApproval ? "awaiting approval" : state.rawValue.replacingOccurrences(of: "_", with: " "),
                detail: detail
                    + (state == .awaitingApproval
                        ? "; \(updated.approvalsRequired) approval(s) needed before \(RFC3339.string(milliseconds: updated.expiresAt) ?? "")" : ""))
        }
        if state == .planFailed { throw JobFailure(detail) }
        if let failure, rollout.what == .playbook { throw failure }
    }

    // MARK: wave

    func runWave(_ context: JobContext) async throws {
        let (id, number) = try Self.ids(context.job)
        guard let rollout = try rollout(id: id), let wave = try waves(id).first(where: { $0.number == number }) else {
            throw JobFailure("rollout #\(id) wave \(number) does not exist")
        }
        let plan = try self.plan(id)
        var run: PlaybookRun
        if rollout.what == .playbook {
            run = PlaybookRun(playbook: rollout.playbook, targets: wave.hosts)
            run.commit = rollout.playbookCommit.isEmpty ? nil : rollout.playbookCommit
        } else {
            run = PlaybookRun(playbook: BuiltinPlaybooks.rollout, targets: wave.hosts)
            run.builtin = BuiltinPlaybooks.rollout
            var perHost: [String: [String]] = [:]
            for item in plan where wave.hosts.contains(item.host) {
                if rollout.what == .install || rollout.packages.contains(where: { $0.contains("=") }) {
                    // The named packages (pinned ones by name) that the plan changes here: the package manager brings
                    // their dependencies in as automatic ones.
                    perHost[item.host] = rollout.packages.filter { wanted in
                        let name = wanted.split(separator: "=", maxSplits: 1).first.map(String.init) ?? wanted
                        return item.changes.contains { $0.package == name }
                    }
                } else {
                    perHost[item.host] = item.changes.map(\.package)
                }
            }
            run.variables = JSONText.encode(["steward_phase": "apply", "steward_action": rollout.what.storage.action, "steward_plan": perHost])
        }
        if rollout.reboot != .never {
            // The reboot play follows the changes in the same run, one host at a time; its input is data in the vars file.
            var variables = (run.variables.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }) ?? [:]
            variables["steward_reboot"] = rollout.reboot.rawValue
            run.variables = JSONText.encode(variables)
            run.followedBy = [BuiltinPlaybooks.reboot]
        }
        await context.log("rollout #\(id) wave \(number): \(wave.hosts.joined(separator: ", "))")
        let (results, failure) = try await executeKeepingResults(run, context)
        let reports = try self.reports(job: context.job.id, name: "apply")
        let reboots = try self.reports(job: context.job.id, name: "reboot")
        var rows: [(host: String, status: String, changes: String, rebooted: Bool, detail: String)] = []
        for host in wave.hosts {
            let result = results.first { $0.host == host }
            let versions = Dictionary(
                ((reports[host]?["versions"] as? [String]) ?? []).compactMap { line -> (String, String)? in
                    let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                    return parts.count == 2 ? (parts[0], parts[1]) : nil
                }, uniquingKeysWith: { a, _ in a })
            let changes = (plan.first { $0.host == host }?.changes ?? []).map { change -> [String: String] in
                ["package": change.package, "from": change.current, "to": versions[change.package] ?? change.candidate]
            }
            rows.append(
                (
                    host, result?.status ?? "unreachable", JSONText.encode(changes), (reboots[host]?["rebooted"] as? Bool) ?? false,
                    result?.message ?? ""
                ))
        }
        let recorded = rows
        try await database.write { db in
            for row in recorded {
                try db.execute(
                    sql:
                        "INSERT OR REPLACE INTO rollout_results (rollout_id, host, wave, status, changes, rebooted, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    arguments: [id, row.host, number, row.status, row.changes, row.rebooted, row.detail])
            }
        }
        if let failure { throw failure }
    }
}
