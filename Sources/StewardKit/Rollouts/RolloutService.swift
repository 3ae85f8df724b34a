import Foundation
import GRDB
import HTTPTypes
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A hook the driver installs so the service can wake it without waiting for its next tick.
final class DriverWake: Sendable {
    private let action = Mutex<(@Sendable () -> Void)?>(nil)
    func install(_ body: @escaping @Sendable () -> Void) { action.withLock { $0 = body } }
    func callAsFunction() { action.withLock { $0 }?() }
}

/// Rollouts: records, the plan and wave jobs, approvals, and the driver that runs approved rollouts wave by wave.
public struct RolloutService: Sendable {
    public static let planKind = "rollout.plan"
    public static let waveKind = "rollout.wave"

    public let database: DatabasePool
    let engine: Engine
    let hosts: HostStore
    let channels: NotificationChannelStore?
    let sender: (any NotificationSending)?
    let baseURL: String
    /// Wakes the driver when something it waits for happened here (a plan finished, an approval arrived).
    let wakeDriver = DriverWake()

    public init(
        database: DatabasePool, engine: Engine, hosts: HostStore, channels: NotificationChannelStore? = nil, sender: (any NotificationSending)? = nil,
        baseURL: String = ""
    ) {
        self.database = database
        self.engine = engine
        self.hosts = hosts
        self.channels = channels
        self.sender = sender
        self.baseURL = baseURL
    }

    // MARK: records

    public func rollout(id: Int64) throws -> Rollout? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM rollouts WHERE id = ?", arguments: [id]).map(Rollout.init) }
    }

    public func all(limit: Int = 100) throws -> [Rollout] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM rollouts ORDER BY id DESC LIMIT ?", arguments: [limit]).map(Rollout.init) }
    }

    public func plan(_ id: Int64) throws -> [RolloutPlanItem] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rollout_plan WHERE rollout_id = ? ORDER BY host", arguments: [id]).map { row in
                RolloutPlanItem(host: row["host"], changes: Self.decodeChanges(row["changes"]), diff: row["diff"], problem: row["problem"])
            }
        }
    }

    public struct Approval: Sendable, Equatable {
        public var revision: Int
        public var actor: String
        public var decision: String
        public var reason: String
        public var at: Int64
        public var urgent = false
    }

    public func approvals(_ id: Int64) throws -> [Approval] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rollout_approvals WHERE rollout_id = ? ORDER BY id", arguments: [id]).map { row in
                Approval(
                    revision: row["revision"], actor: row["actor"], decision: row["decision"], reason: row["reason"], at: row["at"],
                    urgent: row["urgent"])
            }
        }
    }

    public struct Wave: Sendable, Equatable {
        public var number: Int
        public var hosts: [String]
        public var jobID: Int64?
        public var state: String
        public var startedAt: Int64?
        public var finishedAt: Int64?
        public var gate: String
        /// The budget record the driver keeps (JSON: SLO name -> before, after, burned).
        public var budget = ""

        /// Each SLO's budget around the wave.
        var budgets: [String: RolloutResource.WaveBudget] {
            (JSONText.object(budget) ?? [:]).compactMapValues { value in
                guard let entry = value as? [String: Any], let before = (entry["before"] as? NSNumber)?.doubleValue else { return nil }
                return RolloutResource.WaveBudget(
                    before: before, after: Nullable((entry["after"] as? NSNumber)?.doubleValue),
                    burned: Nullable((entry["burned"] as? NSNumber)?.doubleValue))
            }
        }
    }

    public func waves(_ id: Int64) throws -> [Wave] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rollout_waves WHERE rollout_id = ? ORDER BY number", arguments: [id]).map { row in
                Wave(
                    number: row["number"], hosts: JSONText.strings(row["hosts"]), jobID: row["job_id"], state: row["state"],
                    startedAt: row["started_at"],
                    finishedAt: row["finished_at"], gate: row["gate"], budget: row["budget"])
            }
        }
    }

    public func results(_ id: Int64) throws -> [RolloutResult] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rollout_results WHERE rollout_id = ? ORDER BY wave, host", arguments: [id]).map { row in
                let changes = (try? JSONDecoder().decode([RolloutResult.Change].self, from: Data((row["changes"] as String).utf8))) ?? []
                return RolloutResult(
                    host: row["host"], wave: row["wave"], status: row["status"], changes: changes,
                    rebooted: row["rebooted"],
                    detail: row["detail"])
            }
        }
    }

    static func decodeChanges(_ text: String) -> [PendingUpdate] {
        ((try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]) ?? []).map {
            PendingUpdate(
                package: $0["package"] as? String ?? "", current: $0["current"] as? String ?? "", candidate: $0["candidate"] as? String ?? "",
                origin: $0["origin"] as? String ?? "", security: $0["security"] as? Bool ?? false)
        }
    }

    /// The enabled hosts a rollout targets (names, groups or tags), in name order; the first ones are the canary.
    public func targetHosts(_ rollout: Rollout) throws -> [Host] {
        try hosts.all().filter { host in
            host.enabled
                && (rollout.targets.contains { $0 == host.name || host.groups.contains($0) } || rollout.tags.contains { host.tags.contains($0) })
        }.sorted { $0.name < $1.name }
    }

    /// True when a host's facts are newer than the plan: what the approvers saw may no longer be what will change.
    public func planIsStale(_ rollout: Rollout) throws -> Bool {
        guard let planned = rollout.planFactsAt else { return false }
        let newest = try database.read { db in
            try Int64.fetchOne(
                db,
                sql:
                    "SELECT MAX(f.gathered_at) FROM host_facts f JOIN hosts h ON h.id = f.host_id WHERE h.name IN (SELECT host FROM rollout_plan WHERE rollout_id = ?)",
                arguments: [rollout.id])
        }
        return (newest ?? 0) > planned
    }

    static let columns = [
        "title", "what", "package_action", "packages", "playbook", "playbook_commit", "targets", "tags", "canary", "wave_kind", "wave_size",
        "pause_seconds",
        "max_failure_percent", "reboot", "window_id", "approvals_required", "expires_at", "check_url", "settle_seconds", "slos",
    ]

    static func values(_ rollout: Rollout) -> [(any DatabaseValueConvertible)?] {
        [
            rollout.title, rollout.what.storage.what, rollout.what.storage.action, JSONText.encode(rollout.packages), rollout.playbook,
            rollout.playbookCommit,
            JSONText.encode(rollout.targets),
            JSONText.encode(rollout.tags), rollout.canary, rollout.waveKind.rawValue, rollout.waveSize, rollout.pauseSeconds,
            rollout.maxFailurePercent,
            rollout.reboot.rawValue, rollout.windowID, rollout.approvalsRequired, rollout.expiresAt, rollout.checkURL, rollout.settleSeconds,
            JSONText.encode(rollout.slos),
        ]
    }

    static func audit(_ rollout: Rollout) -> [String: Any] {
        var result: [String: Any] = [:]
        for (column, value) in zip(columns, values(rollout)) { result[column] = value.map { "\($0)" } ?? NSNull() }
        return result
    }

    /// Check and save a new rollout, or a change to one that has not started (which resets its approvals), and queue
    /// its plan. Returns the rollout and the plan job. Installing or removing packages is an admin's to propose or change,
    /// as on one host; upgrades and playbooks are an operator's.
    public func save(_ rollout: Rollout, by who: AuditActor, isAdmin: Bool, jobs: JobRunner, now: Date = Date()) async throws -> (Rollout, Job) {
        if !isAdmin {
            let before = rollout.id == 0 ? nil : try self.rollout(id: rollout.id)
            if let kind = [rollout.what, before?.what].compactMap({ $0 }).first(where: \.needsAdmin) {
                throw Problem(
                    status: .forbidden,
                    detail:
                        "a rollout that \(kind == .install ? "installs" : "removes") packages is an admin's to propose or change, as it is on one host; operators may roll out upgrades and playbooks"
                )
            }
        }
        var errors = rollout.problems(now: EpochMilliseconds.from(now))
        if !rollout.slos.isEmpty {
            let known = Set(try SLOStore(database: database).all().map(\.name))
            if let unknown = rollout.slos.first(where: { !known.contains($0) }) {
                errors["slos"] = "there is no SLO named \"\(unknown)\"; leave it empty for the SLOs covering the rollout's hosts"
            }
        }
        // A pinned version can install or downgrade anything: for an operator, only the versions a rollback of theirs
        // puts back (the "from" versions its original recorded).
        let pins = rollout.packages.filter { $0.contains("=") }
        if !isAdmin, !pins.isEmpty, errors["packages"] == nil {
            let recorded = Set(
                try rollout.rollbackOf.map { original in
                    try results(original).flatMap { result in result.changes.filter { !$0.from.isEmpty }.map { "\($0.package)=\($0.from)" } }
                } ?? [])
            if let other = pins.first(where: { !recorded.contains($0) }) {
                errors["packages"] =
                    "\(other): an operator pins only the versions a rollback puts back (what its rollout recorded); ask an admin for other versions"
            }
        }
        if rollout.what == .playbook, errors["playbook"] == nil {
            do { _ = try engine.repository.resolvePlaybook(rollout.playbook) } catch { errors["playbook"] = error.description }
        }
        let known = try hosts.all()
        let unknown = rollout.targets.filter { name in !known.contains { $0.name == name || $0.groups.contains(name) } }
        if !unknown.isEmpty { errors["targets"] = "no host or group is called " + unknown.joined(separator: ", ") }
        if errors.isEmpty, try targetHosts(rollout).isEmpty { errors["targets"] = "these targets match no enabled host" }
        if rollout.what == .remove, errors["targets"] == nil, let panel = try targetHosts(rollout).first(where: { $0.transport == .local }) {
            errors["targets"] =
                "\(panel.name) is the panel host: a removal there could take what Steward itself runs on (ssh, ansible, git, restic); remove packages there by hand"
        }
        if let window = rollout.windowID, try MaintenanceWindowStore(database: database).all().first(where: { $0.id == window }) == nil {
            errors["window"] = "no maintenance window \(window)"
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let nowMS = EpochMilliseconds.from(now)
        let id: Int64 = try await database.write { db in
            if rollout.id == 0 {
                let placeholders = Array(repeating: "?", count: Self.columns.count + 6).joined(separator: ", ")
                try db.execute(
                    sql: """
                        INSERT INTO rollouts (\(Self.columns.joined(separator: ", ")), state, requested_by, rollback_of, revision, created_at, updated_at)
                        VALUES (\(placeholders))
                        """,
                    arguments: StatementArguments(Self.values(rollout) + ["planning", who.actor, rollout.rollbackOf, 1, nowMS, nowMS]))
                let id = db.lastInsertedRowID
                try Self.recordAuthor(db, rollout: id, actor: who.actor, revision: 1)
                try AuditLog.append(db, by: who, action: "rollout.create", target: "rollout:\(id)", after: Self.audit(rollout), now: now)
                return id
            }
            guard let before = try Row.fetchOne(db, sql: "SELECT * FROM rollouts WHERE id = ?", arguments: [rollout.id]).map(Rollout.init) else {
                throw Problem.notFound("rollout \(rollout.id)")
            }
            guard before.state.isEditable else {
                throw Problem(
                    status: .conflict, detail: "rollout \(rollout.id) is \(before.state.rawValue); only a rollout that has not started can change")
            }
            let assignments = Self.columns.map { "\($0) = ?" }.joined(separator: ", ")
            // A new revision: approvals given to the old one no longer count.
            try db.execute(
                sql:
                    "UPDATE rollouts SET \(assignments), state = 'planning', state_detail = '', revision = revision + 1, updated_at = ? WHERE id = ?",
                arguments: StatementArguments(Self.values(rollout) + [nowMS, rollout.id]))
            try Self.recordAuthor(db, rollout: rollout.id, actor: who.actor, revision: before.revision + 1)
            let reset =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM rollout_approvals WHERE rollout_id = ? AND revision = ? AND decision = 'approve'",
                    arguments: [rollout.id, before.revision]) ?? 0
            try AuditLog.append(
                db, by: who, action: "rollout.update", target: "rollout:\(rollout.id)", before: Self.audit(before),
                after: Self.audit(rollout).merging(["approvals_reset": reset]) { a, _ in a }, now: now)
            return rollout.id
        }
        let saved = try self.rollout(id: id)!
        let job = try await jobs.enqueue(
            JobRequest(
                kind: Self.planKind, title: "Plan rollout #\(id): \(saved.title)", params: RolloutJob(rolloutID: id, revision: saved.revision).json,
                startedBy: who.actor, reason: "plan before approval", source: who.source))
        try await database.write { db in try db.execute(sql: "UPDATE rollouts SET plan_job_id = ? WHERE id = ?", arguments: [job.id, id]) }
        return (try self.rollout(id: id)!, job)
    }

    func setState(
        _ id: Int64, _ state: Rollout.State, detail: String, now: Date = Date(), extra: String = "", arguments: [(any DatabaseValueConvertible)?] = []
    )
        throws
    {
        try database.write { db in
            try db.execute(
                sql:
                    "UPDATE rollouts SET state = ?, state_detail = ?, updated_at = ?\(state.isFinished ? ", finished_at = ?" : "")\(extra) WHERE id = ?",
                arguments: StatementArguments(
                    [state.rawValue, detail, EpochMilliseconds.from(now)] + (state.isFinished ? [EpochMilliseconds.from(now)] : []) + arguments + [id]
                ))
        }
    }

    // MARK: approvals

    /// Approve the current revision. The requester never approves their own rollout; a stale plan must be re-planned.
    /// An urgent approval (a security or urgent change, with a reason) lets waves start while an SLO's error budget is
    /// spent; it may also be given to a rollout that the budget paused, which then goes on.
    public func approve(
        _ id: Int64, by who: AuditActor, reason: String, urgent: Bool = false, isAdmin: Bool = false, now: Date = Date()
    ) async throws -> Rollout {
        guard let rollout = try rollout(id: id) else { throw Problem.notFound("rollout \(id)") }
        if urgent, reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw Problem.invalid(["reason": "an urgent approval spends a spent error budget: say why (the security fix, the incident)"])
        }
        if urgent, rollout.state == .paused {
            return try await approveUrgentWhilePaused(rollout, by: who, reason: reason, isAdmin: isAdmin, now: now)
        }
        guard rollout.state == .awaitingApproval else {
            throw Problem(
                status: .conflict,
                detail:
                    "rollout \(id) is \(rollout.state.rawValue.replacingOccurrences(of: "_", with: " ")); only a planned rollout awaiting approval can be approved"
            )
        }
        guard who.actor != rollout.requestedBy else {
            throw Problem(status: .forbidden, detail: "\(who.actor) requested this rollout and cannot approve it; another approver must")
        }
        if try isAuthor(id, actor: who.actor) {
            throw Problem(status: .forbidden, detail: "\(who.actor) wrote a revision of this rollout and cannot approve it; another approver must")
        }
        if EpochMilliseconds.from(now) > rollout.expiresAt {
            try setState(id, .expired, detail: "the approval window ended at \(RFC3339.string(milliseconds: rollout.expiresAt) ?? "")", now: now)
            throw Problem(status: .conflict, detail: "rollout \(id) expired before it was approved")
        }
        if try planIsStale(rollout) {
            throw Problem(
                status: .conflict,
                detail: "the plan is stale: facts changed after it was made; re-plan the rollout (edit and save it) before approving")
        }
        let approved = try await database.write { db -> Bool in
            if try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM rollout_approvals WHERE rollout_id = ? AND revision = ? AND actor = ?)",
                arguments: [id, rollout.revision, who.actor]) == true
            {
                throw Problem(status: .conflict, detail: "\(who.actor) already decided on this revision")
            }
            try db.execute(
                sql: "INSERT INTO rollout_approvals (rollout_id, revision, actor, decision, reason, at, urgent) VALUES (?, ?, ?, 'approve', ?, ?, ?)",
                arguments: [id, rollout.revision, who.actor, reason, EpochMilliseconds.from(now), urgent])
            try AuditLog.append(
                db, by: who, action: "rollout.approve", target: "rollout:\(id)",
                after: ["revision": rollout.revision, "reason": reason, "urgent": urgent], now: now)
            let count =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM rollout_approvals WHERE rollout_id = ? AND revision = ? AND decision = 'approve'",
                    arguments: [id, rollout.revision]) ?? 0
            if count >= rollout.approvalsRequired {
                try db.execute(
                    sql: "UPDATE rollouts SET state = 'approved', state_detail = ?, updated_at = ? WHERE id = ?",
                    arguments: ["approved by \(count) approver\(count == 1 ? "" : "s")", EpochMilliseconds.from(now), id])
                return true
            }
            return false
        }
        if approved { wakeDriver() }
        if approved { await notify(try self.rollout(id: id)!, event: "approved", detail: "approved by \(who.actor); it starts with the canary wave") }
        return try self.rollout(id: id)!
    }

    /// How the driver marks a wave an error budget kept from starting.
    static let budgetHoldPrefix = "did not start: "

    /// How a hold names an SLO, before its reason in brackets: the name in double quotes, which SLO names never hold,
    /// so RolloutDriver.heldBy and SLOStore.holds find it again.
    static func budgetHoldMention(_ slo: String) -> String { "SLO \"\(slo)\" (" }

    /// An urgent approval for a rollout the error budget paused: four-eyes as for any approval, then it goes on.
    func approveUrgentWhilePaused(_ rollout: Rollout, by who: AuditActor, reason: String, isAdmin: Bool, now: Date) async throws -> Rollout {
        // Held by a budget: a wave that did not start, and none that failed its gate (that is resume's business).
        let waves = try waves(rollout.id)
        guard waves.contains(where: { $0.state == "pending" && $0.gate.hasPrefix(Self.budgetHoldPrefix) }),
            !waves.contains(where: { $0.state == "failed" })
        else {
            throw Problem(status: .conflict, detail: "rollout \(rollout.id) is paused, but not by an error budget; resume it instead")
        }
        if rollout.what.needsAdmin, !isAdmin {
            throw Problem(status: .forbidden, detail: "going on with a rollout that installs or removes packages is an admin's call")
        }
        guard who.actor != rollout.requestedBy else {
            throw Problem(status: .forbidden, detail: "\(who.actor) requested this rollout and cannot approve it; another approver must")
        }
        if try isAuthor(rollout.id, actor: who.actor) {
            throw Problem(status: .forbidden, detail: "\(who.actor) wrote a revision of this rollout and cannot approve it; another approver must")
        }
        try await database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO rollout_approvals (rollout_id, revision, actor, decision, reason, at, urgent) VALUES (?, ?, ?, 'approve', ?, ?, 1)
                    ON CONFLICT (rollout_id, revision, actor) DO UPDATE SET decision = 'approve', reason = excluded.reason, at = excluded.at, urgent = 1
                    """, arguments: [rollout.id, rollout.revision, who.actor, reason, EpochMilliseconds.from(now)])
            try AuditLog.append(
                db, by: who, action: "rollout.approve", target: "rollout:\(rollout.id)",
                after: ["revision": rollout.revision, "reason": reason, "urgent": true], now: now)
        }
        try setState(rollout.id, .running, detail: "approved as urgent by \(who.actor): \(reason)", now: now)
        wakeDriver()
        await notify(
            try self.rollout(id: rollout.id)!, event: "approved", detail: "approved as urgent by \(who.actor) despite a spent error budget: \(reason)"
        )
        return try self.rollout(id: rollout.id)!
    }

    /// Remember who wrote a revision (four-eyes covers every author, not only the first requester).
    static func recordAuthor(_ db: Database, rollout: Int64, actor: String, revision: Int) throws {
        try db.execute(
            sql: "INSERT OR IGNORE INTO rollout_authors (rollout_id, actor, first_revision) VALUES (?, ?, ?)", arguments: [rollout, actor, revision])
    }

    /// Whether `actor` wrote any revision of the rollout.
    public func isAuthor(_ id: Int64, actor: String) throws -> Bool {
        try database.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM rollout_authors WHERE rollout_id = ? AND actor = ?)", arguments: [id, actor])
                ?? false
        }
    }

    /// Deny, with a reason the requester will read.
    public func deny(_ id: Int64, by who: AuditActor, reason: String, now: Date = Date()) async throws -> Rollout {
        let reason = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else { throw Problem.invalid(["reason": "say why the rollout is denied; the requester reads it"]) }
        guard let rollout = try rollout(id: id) else { throw Problem.notFound("rollout \(id)") }
        guard [.awaitingApproval, .planning, .planFailed, .approved].contains(rollout.state) else {
            throw Problem(status: .conflict, detail: "rollout \(id) is \(rollout.state.rawValue); it can no longer be denied")
        }
        try await database.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO rollout_approvals (rollout_id, revision, actor, decision, reason, at) VALUES (?, ?, ?, 'deny', ?, ?)",
                arguments: [id, rollout.revision, who.actor, reason, EpochMilliseconds.from(now)])
            try db.execute(
                sql: "UPDATE rollouts SET state = 'denied', state_detail = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                arguments: ["denied by \(who.actor): \(reason)", EpochMilliseconds.from(now), EpochMilliseconds.from(now), id])
            try AuditLog.append(
                db, by: who, action: "rollout.deny", target: "rollout:\(id)", after: ["revision": rollout.revision, "reason": reason], now: now)
        }
        await notify(try self.rollout(id: id)!, event: "denied", detail: "denied by \(who.actor): \(reason)")
        return try self.rollout(id: id)!
    }

    /// Pause (no new wave starts), resume, or abort (the running wave is cancelled).
    public func control(_ id: Int64, action: String, by who: AuditActor, isAdmin: Bool, jobs: JobRunner, now: Date = Date()) async throws -> Rollout {
        guard let rollout = try rollout(id: id) else { throw Problem.notFound("rollout \(id)") }
        // Anyone who may operate can stop a rollout; going on with an install or removal is an admin's call.
        if action == "resume", rollout.what.needsAdmin, !isAdmin {
            throw Problem(
                status: .forbidden, detail: "resuming a rollout that installs or removes packages is an admin's call; you may pause or abort it")
        }
        switch action {
        case "pause":
            guard rollout.state == .running || rollout.state == .approved else {
                throw Problem(status: .conflict, detail: "only a running rollout can be paused")
            }
            try setState(id, .paused, detail: "paused by \(who.actor)", now: now)
        case "resume":
            guard rollout.state == .paused else { throw Problem(status: .conflict, detail: "only a paused rollout can be resumed") }
            try await database.write { db in
                try db.execute(sql: "UPDATE rollout_waves SET state = 'gating', gate = '' WHERE rollout_id = ? AND state = 'failed'", arguments: [id])
            }
            try setState(
                id, .running, detail: "resumed by \(who.actor)", now: now, extra: ", gate_started_at = ?", arguments: [EpochMilliseconds.from(now)])
        case "abort":
            guard !rollout.state.isFinished else {
                throw Problem(status: .conflict, detail: "rollout \(id) has already ended (\(rollout.state.rawValue))")
            }
            for wave in try waves(id) where wave.state == "running" {
                if let job = wave.jobID { _ = try await jobs.cancel(id: job, by: who) }
            }
            try setState(id, .aborted, detail: "aborted by \(who.actor)", now: now)
        default:
            throw Problem.badRequest("unknown action \(action)")
        }
        try await database.write { db in try AuditLog.append(db, by: who, action: "rollout.\(action)", target: "rollout:\(id)", now: now) }
        return try self.rollout(id: id)!
    }

    /// The reverse of a finished package rollout, on the hosts that changed: an upgrade is undone by the previous
    /// versions, pinned; an install by removing the named packages it newly installed (dependencies it pulled in stay,
    /// for `apt autoremove`); a removal by installing the removed versions again, pinned. Its plan (check mode) finds
    /// out whether the package manager can still do that; if not, the plan says so.
    public func proposeRollback(of original: Rollout, by who: AuditActor, isAdmin: Bool, jobs: JobRunner) async throws -> (Rollout, Job) {
        guard original.what != .playbook else {
            throw Problem(
                status: .conflict,
                detail: "a playbook's changes cannot be reversed automatically; write a playbook that undoes them and roll that out")
        }
        guard original.state.isFinished || original.state == .paused else {
            throw Problem(status: .conflict, detail: "rollout #\(original.id) is \(original.state.rawValue); roll back once it has stopped")
        }
        let named = Set(original.packages.map { String($0.split(separator: "=").first ?? "") })
        var reverse = Set<String>()
        var hosts = Set<String>()
        var skipped: [String] = []
        for result in try results(original.id) where result.status != "unreachable" {
            for change in result.changes where change.from != change.to {
                switch original.what {
                case .install where change.from.isEmpty && named.contains(change.package):
                    reverse.insert(change.package)
                case .install where change.from.isEmpty:
                    skipped.append("\(change.package) on \(result.host) came in as a dependency")
                    continue
                case _ where change.from.isEmpty:
                    skipped.append("\(change.package) on \(result.host) was newly installed")
                    continue
                default:
                    reverse.insert("\(change.package)=\(change.from)")
                }
                hosts.insert(result.host)
            }
        }
        guard !reverse.isEmpty else {
            throw Problem(
                status: .conflict,
                detail: "rollout #\(original.id) changed nothing that can be reversed"
                    + (skipped.isEmpty ? "" : " (\(skipped.joined(separator: "; ")))"))
        }
        var rollback = original
        rollback.id = 0
        rollback.title = "Roll back #\(original.id): \(original.title)"
        rollback.what = original.what == .install ? .remove : original.what == .remove ? .install : .packages
        rollback.packages = reverse.sorted()
        rollback.targets = hosts.sorted()
        rollback.tags = []
        rollback.rollbackOf = original.id
        rollback.expiresAt = EpochMilliseconds.from(Date()) + 24 * 3_600_000
        return try await save(rollback, by: who, isAdmin: isAdmin, jobs: jobs)
    }

    // MARK: notifications

    /// Tell every enabled channel (that takes warnings) about a rollout event, with a direct link to it.
    func notify(_ rollout: Rollout, event: String, detail: String) async {
        guard let channels, let sender, let all = try? channels.all() else { return }
        let link = "\(baseURL)/rollouts/\(rollout.id)"
        let subject = "[ROLLOUT \(event.uppercased())] #\(rollout.id) \(rollout.title)"
        let text = [
            subject, "", "What: rollout #\(rollout.id) \"\(rollout.title)\" (\(rollout.what.rawValue)) \(event): \(detail)",
            "Requested by: \(rollout.requestedBy)", "Approvals needed: \(rollout.approvalsRequired)",
            "Open it: \(link)",
        ].joined(separator: "\n")
        var message = NotificationMessage(reason: "rollout.\(event)", rule: AlertRule(), firing: [], resolved: [], baseURL: baseURL)
        message.event = NotificationEvent(
            kind: "rollout.\(event)", subject: subject, text: text, link: link,
            severity: event == "paused" || event == "failed" ? "critical" : "warning")
        // Sent in the background, each channel on its own: a slow or dead mail server must not hold an approval
        // request or the driver.
        for channel in all where channel.enabled && (channel.minSeverity <= .warning || event == "paused" || event == "failed") {
            let outgoing = message
            Task.detached { try? await sender.send(outgoing, to: channel) }
        }
    }
}
