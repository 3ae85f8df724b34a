import Foundation
import GRDB
import HTTPTypes
import Synchronization

/// One operation per repository at a time: backup, check, retention and restore jobs wait here for the repository.
public actor RepositoryGate {
    private var holders: [Int64: Int64] = [:]

    public init() {}

    /// The job holding the repository, if another one does.
    public func holder(of repository: Int64) -> Int64? { holders[repository] }

    func tryAcquire(_ repository: Int64, job: Int64) -> Int64? {
        if let holder = holders[repository], holder != job { return holder }
        holders[repository] = job
        return nil
    }

    func release(_ repository: Int64, job: Int64) {
        if holders[repository] == job { holders[repository] = nil }
    }
}

/// A restic snapshot as `restic snapshots --json` lists it.
public struct BackupSnapshot: Sendable, Equatable {
    public var id: String
    public var shortID: String
    public var time: String
    public var hostname: String
    public var paths: [String]
    public var tags: [String]

    init?(_ object: [String: Any]) {
        guard let id = object["id"] as? String else { return nil }
        self.id = id
        shortID = object["short_id"] as? String ?? String(id.prefix(8))
        time = object["time"] as? String ?? ""
        hostname = object["hostname"] as? String ?? ""
        paths = object["paths"] as? [String] ?? []
        tags = object["tags"] as? [String] ?? []
    }

    /// The plan this snapshot belongs to, from its steward-plan-N tag.
    public var planID: Int64? {
        tags.lazy.compactMap { $0.hasPrefix("steward-plan-") ? Int64($0.dropFirst("steward-plan-".count)) : nil }.first
    }
}

/// One entry of a snapshot's tree.
public struct BackupTreeEntry: Sendable, Equatable {
    public var name: String
    public var path: String
    public var type: String
    public var size: Int64?
    public var mtime: String
    public var permissions: String
}

/// Repositories, plans, runs and restores: everything about backups that is not HTTP.
public struct BackupService: Sendable {
    public let store: BackupStore
    let hosts: HostStore
    let identity: SSHIdentity
    let dataDirectory: DataDirectory
    let rules: AlertRuleStore
    public let gate: RepositoryGate
    let runner: any ProcessRunning
    /// The panel host's secrets, which only an admin may back up, browse, download or restore over.
    public let sensitive: SensitivePaths
    /// Told after a plan's schedules change, so the scheduler reads them again.
    public let schedules: ScheduleWake

    public init(
        store: BackupStore, hosts: HostStore, identity: SSHIdentity, dataDirectory: DataDirectory, gate: RepositoryGate = RepositoryGate(),
        runner: any ProcessRunning = LocalProcessRunner(), sensitive: SensitivePaths? = nil, schedules: ScheduleWake = ScheduleWake()
    ) {
        self.schedules = schedules
        self.sensitive = sensitive ?? SensitivePaths(dataDirectory: dataDirectory.path)
        self.store = store
        self.hosts = hosts
        self.identity = identity
        self.dataDirectory = dataDirectory
        self.rules = AlertRuleStore(database: store.database)
        self.gate = gate
        self.runner = runner
    }

    var cacheDirectory: String { dataDirectory.path + "/backups/cache" }

    // MARK: reaching repositories

    /// The host restic runs on for repository-wide work: the repository's own host for a local one, the panel for SFTP.
    public func accessHost(_ repository: BackupRepository) throws -> Host {
        if repository.kind == .local {
            guard let host = try hosts.host(id: repository.hostID) else {
                throw JobFailure("the host of repository \(repository.name) no longer exists")
            }
            return host
        }
        guard let local = try hosts.all().first(where: { $0.transport == .local }) else { throw JobFailure("no host with the local transport") }
        return local
    }

    /// Why `host` cannot reach `repository`, or nil when it can.
    public func reachProblem(host: Host, repository: BackupRepository) -> String? {
        switch repository.kind {
        case .local where repository.hostID != host.id:
            let owner = (try? hosts.host(id: repository.hostID))?.name ?? "another host"
            return
                "repository \(repository.name) is a directory on \(owner); a plan on \(host.name) needs a repository on \(host.name) itself, or an SFTP repository used from the panel host"
        case .sftp where host.transport != .local:
            return "SFTP repositories are used from the panel host (transport local); for \(host.name), create a repository on its own disk"
        default:
            return nil
        }
    }

    public func target(repository: BackupRepository, on host: Host) throws -> ResticTarget {
        if let problem = reachProblem(host: host, repository: repository) { throw JobFailure(problem, conflict: true) }
        let storage = repository.kind == .sftp ? try hosts.host(id: repository.hostID) : nil
        // Every backup operation honours the enabled switch, on the plan's host and on the repository's.
        for reached in [host, storage].compactMap({ $0 }) where !reached.enabled {
            throw JobFailure(
                "\(reached.name) is disabled, and Steward runs nothing on a disabled host; enable it on its host page first", conflict: true)
        }
        return ResticTarget(
            host: host, repository: repository, storageHost: storage, password: try store.password(of: repository), identity: identity,
            cacheDirectory: cacheDirectory)
    }

    func target(repository: BackupRepository) throws -> ResticTarget { try target(repository: repository, on: try accessHost(repository)) }

    /// What a short restic command printed, once it ended.
    struct Captured: Sendable {
        var outcome: ProcessOutcome
        var output: String
        /// Lines that are JSON documents, in order.
        var json: [Any] {
            output.split(separator: "\n").compactMap { line in
                guard line.first == "[" || line.first == "{" else { return nil }
                return try? JSONSerialization.jsonObject(with: Data(line.utf8))
            }
        }
    }

    func capture(_ command: ProcessCommand, limit: Int = 64 << 20) async throws -> Captured {
        let buffer = Mutex(Data())
        let outcome = try await runner.run(command) { data in
            buffer.withLock { if $0.count < limit { $0.append(data) } }
        }
        return Captured(outcome: outcome, output: buffer.withLock { String(decoding: $0, as: UTF8.self) })
    }

    /// Run a restic command to completion; throws a message that says what to do when it fails.
    func restic(_ target: ResticTarget, _ arguments: [String], timeout: Duration = .seconds(120)) async throws -> Captured {
        let captured = try await capture(target.command(arguments, timeout: timeout))
        guard captured.outcome.succeeded else { throw JobFailure(Self.failure(captured.output, outcome: captured.outcome, target: target)) }
        return captured
    }

    static func failure(_ output: String, outcome: ProcessOutcome, target: ResticTarget) -> String {
        let name = target.repository.name.isEmpty ? target.repositoryURL : "\(target.repository.name) (\(target.repositoryURL))"
        if let explained = ResticDiagnosis.explain(output, repository: name, host: target.host.name) { return explained }
        let lines = output.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("{\"message_type\":\"status\"") }
        return "restic \(outcome.summary): " + lines.suffix(3).joined(separator: " / ")
    }

    // MARK: repositories

    /// Make the repository (restic init), or import an existing one after checking the password opens it.
    public func addRepository(_ repository: BackupRepository, password: String, initialise: Bool, by who: AuditActor, now: Date) async throws
        -> BackupRepository
    {
        var errors: [String: String] = [:]
        if repository.name.trimmingCharacters(in: .whitespaces).isEmpty || repository.name.count > 100 {
            errors["name"] = "give the repository a name of 1 to 100 characters"
        }
        if let problem = BackupPaths.problem(repository.path, what: "the path") { errors["path"] = problem }
        // restic opens a repository with any non-empty password; the minimum is for the repositories Steward makes.
        if password.isEmpty {
            errors["password"] = initialise ? "enter a password (restic encrypts the repository with it)" : "enter the repository's password"
        } else if initialise, password.count < 8 {
            errors["password"] = "use a password of at least 8 characters (restic encrypts the repository with it)"
        }
        guard let host = try hosts.host(id: repository.hostID) else { throw Problem.invalid(["host": "choose a host that exists"]) }
        if repository.kind == .sftp, host.transport != .ssh { errors["host"] = "an SFTP repository lives on an SSH host; choose one" }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let storage = repository.kind == .sftp ? host : nil
        let access = try repository.kind == .local ? host : accessHost(repository)
        // Under privilege separation the root helper reaches the panel host's repositories, and it knows them only by
        // their record: save first, and take the record back if restic refuses.
        let viaHelper = runner is PanelAwareRunner && access.transport == .local
        let recorded = viaHelper ? try store.createRepository(repository, password: password, by: who, now: now) : nil
        let target = ResticTarget(
            host: access, repository: recorded ?? repository, storageHost: storage, password: password, identity: identity,
            cacheDirectory: cacheDirectory)
        do {
            _ = try await restic(target, initialise ? ["init"] : ["snapshots", "--json", "--no-lock"])
        } catch let failure as JobFailure {
            if let recorded { try store.deleteRepository(recorded, by: who, now: now) }
            throw Problem.invalid([failure.message.contains("password") ? "password" : "path": failure.message])
        }
        let saved = try recorded ?? store.createRepository(repository, password: password, by: who, now: now)
        await refreshStatus(saved)
        return try store.repository(id: saved.id) ?? saved
    }

    /// Read the repository's size and snapshot count into its status line (one `restic stats`); failures are kept
    /// there, not thrown.
    public func refreshStatus(_ repository: BackupRepository) async {
        do {
            let target = try target(repository: repository)
            let stats = try await restic(target, ["stats", "--json", "--no-lock", "--mode", "raw-data"]).json.first as? [String: Any]
            try store.recordStatus(
                repositoryID: repository.id, size: (stats?["total_size"] as? NSNumber)?.int64Value,
                snapshots: (stats?["snapshots_count"] as? NSNumber)?.intValue, error: nil, now: Date())
        } catch {
            try? store.recordStatus(repositoryID: repository.id, size: nil, snapshots: nil, error: String(describing: error), now: Date())
        }
    }

    /// Refresh the status line after a job, without holding the job open for it.
    func refreshStatusLater(_ repository: BackupRepository) {
        let service = self
        Task.detached { await service.refreshStatus(repository) }
    }

    /// Snapshots, newest first; only the plan's own when a plan is given.
    public func snapshots(_ repository: BackupRepository, plan: BackupPlan? = nil) async throws -> [BackupSnapshot] {
        var arguments = ["snapshots", "--json", "--no-lock"]
        if let plan { arguments += ["--tag", plan.tag] }
        let list = try await restic(try target(repository: repository), arguments).json.first as? [[String: Any]] ?? []
        return list.compactMap(BackupSnapshot.init).sorted { $0.time > $1.time }
    }

    /// A snapshot ID as restic prints it (8 to 64 hex digits), or `latest`.
    public static func snapshotProblem(_ id: String) -> String? {
        let hex = id.count >= 8 && id.count <= 64 && id.allSatisfy { $0.isHexDigit && ($0.isNumber || $0.isLowercase) }
        return hex || id == "latest" ? nil : "a snapshot is 8 to 64 lowercase hex digits (as restic prints it), or latest"
    }

    /// The entries directly inside `directory` of the snapshot's tree.
    public func browse(_ repository: BackupRepository, snapshot: String, directory: String) async throws -> [BackupTreeEntry] {
        if let problem = Self.snapshotProblem(snapshot) { throw Problem.invalid(["snapshot": problem]) }
        if let problem = BackupPaths.problem(directory) { throw Problem.invalid(["path": problem]) }
        let captured = try await restic(try target(repository: repository), ["ls", "--json", "--no-lock", snapshot, directory])
        return captured.json.compactMap { item -> BackupTreeEntry? in
            guard let node = item as? [String: Any], node["struct_type"] as? String == "node", let path = node["path"] as? String,
                path != directory, Self.parent(of: path) == directory
            else { return nil }
            return BackupTreeEntry(
                name: node["name"] as? String ?? "", path: path, type: node["type"] as? String ?? "", size: (node["size"] as? NSNumber)?.int64Value,
                mtime: node["mtime"] as? String ?? "", permissions: node["permissions"] as? String ?? "")
        }.sorted { ($0.type == "dir" ? 0 : 1, $0.name) < ($1.type == "dir" ? 0 : 1, $1.name) }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// Stream one file of a snapshot (`restic dump`), chunk by chunk.
    public func dump(
        _ repository: BackupRepository, snapshot: String, path: String, output: @escaping @Sendable (Data) async -> Void
    ) async throws {
        if let problem = Self.snapshotProblem(snapshot) { throw Problem.invalid(["snapshot": problem]) }
        if let problem = BackupPaths.problem(path) { throw Problem.invalid(["path": problem]) }
        var command = try target(repository: repository).command(["dump", "--no-lock", snapshot, path], timeout: .seconds(3600))
        command.discardStandardError = true
        let outcome = try await runner.run(command, output: output)
        guard outcome.succeeded else { throw JobFailure("restic dump \(outcome.summary)") }
    }

    /// Which snapshots `policy` keeps and why, and which it removes: restic's own forget, as a dry run.
    public func previewRetention(_ repository: BackupRepository, plan: BackupPlan, policy: RetentionPolicy) async throws -> RetentionPreview {
        let arguments = ["forget", "--dry-run", "--no-lock", "--json", "--tag", plan.tag, "--group-by", "tags"] + policy.resticFlags
        let groups = try await restic(try target(repository: repository), arguments).json.first as? [[String: Any]] ?? []
        return RetentionPreview(groups: groups)
    }

    // MARK: the panel host's boundary

    /// Why only an admin may edit, run or delete this plan, or nil: it is built in, or it backs up a secret of the
    /// panel host (SECURITY.md class 14).
    public func adminOnlyReason(_ plan: BackupPlan) throws -> String? {
        if plan.builtin != nil { return "\(plan.name) is built in; only an admin may change or run it" }
        guard let host = try hosts.host(id: plan.hostID), host.transport == .local else { return nil }
        for path in plan.paths {
            if let pattern = sensitive.overlapping(path) {
                return "\(path) on \(host.name), the panel host, includes its secrets (\(pattern)); only an admin may back it up"
            }
        }
        return nil
    }

    /// Refuse a non-admin's action on an admin-only plan with 403 and the reason.
    public func requireAllowed(_ plan: BackupPlan, isAdmin: Bool) throws {
        guard !isAdmin, let reason = try adminOnlyReason(plan) else { return }
        throw Problem(status: .forbidden, detail: reason)
    }

    /// Snapshot reads (browse, download): a path within the panel's secrets needs an admin.
    public func requireReadable(_ path: String, isAdmin: Bool) throws {
        guard !isAdmin, let pattern = sensitive.within(path) else { return }
        throw Problem(
            status: .forbidden, detail: "\(path) lies within \(pattern), one of the panel host's secrets; only an admin may read it from a snapshot")
    }

    /// A restore by a non-admin: nothing from the panel's secrets, and nothing over the panel host's system paths.
    func restoreProblem(_ request: RestoreRequest, host: Host, plan: BackupPlan?) throws -> String? {
        if let plan, let reason = try adminOnlyReason(plan) { return reason }
        for path in request.includes {
            if let pattern = sensitive.overlapping(path) {
                return "\(path) includes \(pattern), one of the panel host's secrets; only an admin may restore it"
            }
        }
        if host.transport == .local, let pattern = sensitive.restoreTargetNeedsAdmin(request.target) {
            return "restoring over \(request.target) on \(host.name), the panel host, touches \(pattern); only an admin may restore there"
        }
        return nil
    }

    // MARK: plans

    /// Field errors for a plan and its timing; empty when it can be saved.
    public func problems(_ plan: BackupPlan, timing: BackupPlanTiming) throws -> [String: String] {
        var errors: [String: String] = [:]
        if plan.name.trimmingCharacters(in: .whitespaces).isEmpty || plan.name.count > 100 {
            errors["name"] = "give the plan a name of 1 to 100 characters"
        }
        let host = try hosts.host(id: plan.hostID)
        let repository = try store.repository(id: plan.repositoryID)
        if host == nil { errors["host"] = "choose a host that exists" }
        if repository == nil { errors["repository"] = "choose a repository that exists" }
        if let host, let repository, let problem = reachProblem(host: host, repository: repository) { errors["repository"] = problem }
        if plan.paths.isEmpty { errors["paths"] = "list at least one absolute path to back up, one per line" }
        if let problem = plan.paths.lazy.compactMap({ BackupPaths.problem($0) }).first { errors["paths"] = problem }
        if plan.paths.count > 100 { errors["paths"] = "at most 100 paths" }
        if let problem = plan.excludes.lazy.compactMap(BackupPaths.excludeProblem).first { errors["excludes"] = problem }
        if let problem = hookProblem(plan.preHook) { errors["pre_hook"] = problem }
        if let problem = hookProblem(plan.postHook) { errors["post_hook"] = problem }
        errors.merge(plan.retention.problems()) { first, _ in first }
        if !plan.verifyReadDataSubset.isEmpty, !Self.isSubset(plan.verifyReadDataSubset) {
            errors["verify_read_data_subset"] = "write a share such as 5% or 1/10, or a size such as 500M (empty checks structure only)"
        }
        if !(1...8784).contains(plan.alertAfterHours) { errors["alert_after_hours"] = "must be from 1 to 8784 hours (a year)" }
        for (field, settings) in [("backup", timing.backup), ("verify", timing.verify), ("prune", timing.prune)] {
            guard let settings else { continue }
            if let fields = ScheduleController.timingErrors(settings) {
                for (key, message) in fields { errors["\(field)_\(key)"] = message }
            }
        }
        return errors
    }

    /// restic's --read-data-subset: n/t, a percentage, or a size with K, M, G or T.
    static func isSubset(_ text: String) -> Bool {
        let parts = text.split(separator: "/")
        if parts.count == 2, let n = Int(parts[0]), let t = Int(parts[1]), n >= 1, t >= 1, n <= t { return true }
        if text.hasSuffix("%"), let value = Double(text.dropLast()), value > 0, value <= 100 { return true }
        if let unit = text.last, "KMGT".contains(unit), let value = Double(text.dropLast()), value > 0 { return true }
        return false
    }

    /// Create or change a plan: check it, store it with its schedules and its two alert rules (one transaction, with the
    /// audit rows), then wake the scheduler.
    /// A plan given without a host runs where its repository is reached (the repository's host, or the panel for SFTP).
    public func save(_ given: BackupPlan, timing: BackupPlanTiming, by who: AuditActor, isAdmin: Bool, now: Date) async throws -> BackupPlan {
        var plan = given
        if plan.hostID == 0, let repository = try store.repository(id: plan.repositoryID) { plan.hostID = try accessHost(repository).id }
        let errors = try problems(plan, timing: timing)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        // Both the plan as it was and as it would be: an operator may neither edit an admin-only plan nor make one.
        if plan.id != 0, let before = try store.plan(id: plan.id) { try requireAllowed(before, isAdmin: isAdmin) }
        try requireAllowed(plan, isAdmin: isAdmin)
        let hostName = try hosts.host(id: plan.hostID)?.name ?? ""
        let saved: BackupPlan
        if plan.id == 0 {
            saved = try store.createPlan(plan, timing: timing, hostName: hostName, by: who, now: now)
        } else {
            guard let updated = try store.updatePlan(plan, timing: timing, hostName: hostName, by: who, now: now) else {
                throw Problem.notFound("backup plan \(plan.id)")
            }
            saved = updated
        }
        await schedules.changed()
        return saved
    }

    /// Delete a plan, its schedules and its alert rules, then wake the scheduler.
    public func delete(_ plan: BackupPlan, by who: AuditActor, isAdmin: Bool, now: Date) async throws {
        try requireAllowed(plan, isAdmin: isAdmin)
        try store.deletePlan(plan, by: who, now: now)
        await schedules.changed()
    }
}

/// What a retention policy does to a plan's snapshots, per restic's dry run.
public struct RetentionPreview: Sendable {
    public struct Item: Sendable, Equatable {
        public var id: String
        public var shortID: String
        public var time: String
        public var keep: Bool
        public var reasons: [String]
    }
    public var items: [Item] = []

    init(groups: [[String: Any]]) {
        for group in groups {
            var reasons: [String: [String]] = [:]
            for reason in group["reasons"] as? [[String: Any]] ?? [] {
                let snapshot = reason["snapshot"] as? [String: Any] ?? [:]
                if let time = snapshot["time"] as? String { reasons[time] = reason["matches"] as? [String] ?? [] }
            }
            for (list, keep) in [(group["keep"], true), (group["remove"], false)] {
                for snapshot in list as? [[String: Any]] ?? [] {
                    let time = snapshot["time"] as? String ?? ""
                    let id = snapshot["id"] as? String ?? ""
                    items.append(
                        Item(
                            id: id, shortID: snapshot["short_id"] as? String ?? String(id.prefix(8)), time: time, keep: keep,
                            reasons: keep ? reasons[time] ?? [] : []))
                }
            }
        }
        items.sort { $0.time > $1.time }
    }

    public var kept: Int { items.filter(\.keep).count }
    public var removed: Int { items.count - kept }
}
