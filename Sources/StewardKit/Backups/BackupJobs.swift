import Foundation
import GRDB
import HTTPTypes
import Synchronization

/// The job handlers: backup, verify (check), retention (forget + prune) and restore. Each holds its repository for
/// its whole run, so two operations never run on one repository at once.
extension BackupService {
    public func handlers() -> [String: JobHandler] {
        [
            BackupStore.backupKind: { context in try await self.runBackup(context) },
            BackupStore.checkKind: { context in try await self.runCheck(context) },
            BackupStore.forgetKind: { context in try await self.runForget(context) },
            BackupStore.restoreKind: { context in try await self.runRestore(context) },
        ]
    }

    func plan(for job: Job) throws -> BackupPlan {
        let id = try job.parameters(BackupPlanJob.self).planID
        guard let plan = try store.plan(id: id) else { throw JobFailure("backup plan \(id) no longer exists") }
        return plan
    }

    func repository(of plan: BackupPlan) throws -> BackupRepository {
        guard let repository = try store.repository(id: plan.repositoryID) else { throw JobFailure("the plan's repository no longer exists") }
        return repository
    }

    /// Hold the repository for `body`, waiting (and saying so) while another job has it.
    func holding<T: Sendable>(_ repository: BackupRepository, _ context: JobContext, _ body: () async throws -> T) async throws -> T {
        var said = false
        while let holder = await gate.tryAcquire(repository.id, job: context.job.id) {
            if !said {
                await context.log("waiting: job \(holder) is using repository \(repository.name); one operation runs per repository at a time")
                try await context.progress(nil, "waiting for repository \(repository.name) (job \(holder) is using it)")
                said = true
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        do {
            let result = try await body()
            await gate.release(repository.id, job: context.job.id)
            return result
        } catch {
            await gate.release(repository.id, job: context.job.id)
            throw error
        }
    }

    /// Run a command, handing each output line to `line`, which returns whether the line goes into the job log.
    /// Returns the outcome and the last lines that were not progress, for error messages.
    func stream(
        _ command: ProcessCommand, _ context: JobContext, display: [String], line: @escaping @Sendable (String) async -> Bool = { _ in true }
    ) async throws -> (outcome: ProcessOutcome, tail: String) {
        await context.log("$ " + display.map(JobContext.quoteForDisplay).joined(separator: " "))
        let splitter = LineSplitter()
        let writer = context.writer
        let outcome = try await runner.run(command) { data in
            for text in splitter.feed(data) where await line(text) { await writer.append(text + "\n") }
        }
        for text in splitter.finish() where await line(text) { await writer.append(text + "\n") }
        if outcome.cancelled || Task.isCancelled { throw CancellationError() }
        return (outcome, splitter.tail)
    }

    /// Remove locks that restic processes left behind when they died (a kill -9, a reboot); live locks are kept.
    func unlockStale(_ target: ResticTarget, _ context: JobContext) async throws {
        let (outcome, tail) = try await stream(
            target.command(["unlock"], timeout: .seconds(300)), context, display: target.resticArguments(["unlock"]))
        guard outcome.succeeded else { throw JobFailure(Self.failure(tail, outcome: outcome, target: target)) }
    }

    /// The config repository's folder of hook scripts: reviewed, versioned and written only by admins.
    static let hooksFolder = "hooks/"

    /// A hook's name: a file name in hooks/, nothing that reads as a path or an option.
    static func isHookName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...100).contains(bytes.count), let first = bytes.first, first != UInt8(ascii: "-"), first != UInt8(ascii: ".") else { return false }
        return bytes.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) || [0x2D, 0x2E, 0x5F].contains(byte)
        }
    }

    /// What is wrong with a plan's hook (stored as a one-element list holding its name), or nil.
    func hookProblem(_ hook: [String]) -> String? {
        guard let name = hook.first else { return nil }
        guard hook.count == 1, Self.isHookName(name) else {
            return "choose a hook by name: a script committed to the config repo's hooks/ folder, like dump-database.sh (a hook is not a command line)"
        }
        guard (try? ConfigRepository(dataDirectory: dataDirectory).read(Self.hooksFolder + name)) != nil else {
            return "the config repo has no hooks/\(name); an admin commits hook scripts there first"
        }
        return nil
    }

    /// Run a hook script from the config repo on the plan's host, as restic runs there. The script travels on
    /// standard input into a private temporary file, so nothing of it is ever parsed as a command line.
    func hook(
        _ hook: [String], name: String, plan: BackupPlan, target: ResticTarget, context: JobContext, environment: [String: String] = [:]
    ) async throws {
        guard let script = hook.first else { return }
        if let problem = hookProblem(hook) { throw JobFailure("the \(name) hook: \(problem)") }
        let repository = ConfigRepository(dataDirectory: dataDirectory)
        guard let text = try repository.read(Self.hooksFolder + script) else { throw JobFailure("the \(name) hook hooks/\(script) is gone") }
        let commit = (try? repository.head()) ?? "unknown"
        await context.log("running the \(name) hook hooks/\(script) at config commit \(commit.prefix(12)) on \(target.host.name)")
        await context.log("$ hooks/" + script)
        let splitter = LineSplitter()
        let writer = context.writer
        let streamed: @Sendable (Data) async -> Void = { data in
            for text in splitter.feed(data) { await writer.append(text + "\n") }
        }
        let outcome: ProcessOutcome
        if target.host.transport == .local, runner is PanelAwareRunner {
            // Under privilege separation the root helper reads the script from the config repo itself and runs it.
            var command = ProcessCommand(["hooks/" + script])
            command.panel = .hook(plan: plan.id, phase: name, result: environment["STEWARD_BACKUP_RESULT"])
            outcome = try await runner.run(command, output: streamed)
        } else {
            let make: @Sendable ([String], [String: String]) -> ProcessCommand = { (argv: [String], extra: [String: String]) -> ProcessCommand in
                target.plainCommand(argv, environment: extra, timeout: Duration.seconds(3600))
            }
            let steps = HookScript(text: text, make: make)
            outcome = try await steps.run(environment: environment, runner: runner, streamed: streamed)
        }
        for text in splitter.finish() { await writer.append(text + "\n") }
        if outcome.cancelled || Task.isCancelled { throw CancellationError() }
        let tail = splitter.tail
        guard outcome.succeeded else {
            throw JobFailure("the \(name) hook \(outcome.summary)" + (tail.isEmpty ? "" : ": \(tail.split(separator: "\n").last ?? "")"))
        }
    }

    // MARK: backup

    func runBackup(_ context: JobContext) async throws {
        let plan = try plan(for: context.job)
        let repository = try repository(of: plan)
        guard let host = try hosts.host(id: plan.hostID) else { throw JobFailure("the plan's host no longer exists") }
        let target = try target(repository: repository, on: host)
        try await holding(repository, context) {
            try store.startRun(jobID: context.job.id, kind: "backup", planID: plan.id, repositoryID: repository.id, hostID: host.id, now: Date())
            do {
                try await backup(plan: plan, target: target, context: context)
                try store.finishRun(jobID: context.job.id, now: Date())
            } catch {
                try? store.finishRun(jobID: context.job.id, detail: String(describing: error), now: Date())
                refreshStatusLater(repository)
                throw error
            }
        }
        refreshStatusLater(repository)
    }

    func backup(plan: BackupPlan, target: ResticTarget, context: JobContext) async throws {
        var paths = plan.paths
        if plan.builtin == SelfBackup.builtin {
            paths = [try await SelfBackup.stage(database: store.database, dataDirectory: dataDirectory, context: context)]
        }
        // Stale locks come from runs that did not end cleanly (Steward or restic killed); clear them only then,
        // since every restic command costs a key derivation. A lock met anyway is handled below.
        if !(try store.previousRunEndedCleanly(repositoryID: target.repository.id, excluding: context.job.id)) {
            await context.log("the previous operation on this repository did not finish cleanly; removing stale locks first")
            try await unlockStale(target, context)
        }
        try await hook(plan.preHook, name: "pre", plan: plan, target: target, context: context)
        var arguments = ["backup", "--json", "--tag", plan.tag, "--host", target.host.name]
        for pattern in plan.excludes { arguments += ["--exclude", pattern] }
        arguments += ["--"] + paths
        let collected = BackupCollector()
        var (outcome, tail) = try await runBackupCommand(target, arguments, context: context, collected: collected)
        if !outcome.succeeded, tail.contains("repository is already locked") {
            await context.log("the repository is locked; removing stale locks (live ones stay) and trying once more")
            try await unlockStale(target, context)
            (outcome, tail) = try await runBackupCommand(target, arguments, context: context, collected: collected)
        }
        let made = collected.summary.withLock { $0 }
        let result = outcome.succeeded ? "succeeded" : "failed"
        var hookFailure: (any Error)?
        do {
            try await hook(plan.postHook, name: "post", plan: plan, target: target, context: context, environment: ["STEWARD_BACKUP_RESULT": result])
        } catch {
            hookFailure = error
        }
        guard outcome.succeeded, let made else {
            if outcome.termination == ProcessOutcome.Termination.exited(3), let made {
                let unreadable = collected.errors.withLock { $0 }
                throw JobFailure(
                    "snapshot \(made.snapshotID) was made, but \(unreadable.count) file\(unreadable.count == 1 ? "" : "s") could not be read: "
                        + unreadable.prefix(3).joined(separator: "; "))
            }
            throw JobFailure(Self.failure(tail, outcome: outcome, target: target))
        }
        let text =
            "snapshot \(made.snapshotID): \(made.filesNew) new, \(made.filesChanged) changed, \(made.filesUnmodified) unchanged files; "
            + "\(MetricUnit.bytes.format(Double(made.bytesAdded))) added in \(DurationText.format(seconds: made.duration))"
        try await context.progress(100, text)
        await context.log(text)
        if let hookFailure { throw hookFailure }
        if plan.pruneAfterRun, !plan.retention.keepsEverything {
            let removed = try await forget(plan: plan, target: target, context: context)
            try store.finishRun(jobID: context.job.id, removed: removed, now: Date())
            try await context.progress(100, text + "; retention removed \(removed) snapshot\(removed == 1 ? "" : "s")")
        }
    }

    /// `restic backup --json`: status lines become the progress bar (and a log line every 10 s), the summary is
    /// stored with the run, errors for single files go to the log.
    func runBackupCommand(
        _ target: ResticTarget, _ arguments: [String], context: JobContext, collected: BackupCollector
    ) async throws -> (outcome: ProcessOutcome, tail: String) {
        let store = self.store
        let jobID = context.job.id
        let lastLogged = Mutex(Date.distantPast)
        return try await stream(target.command(arguments), context, display: target.resticArguments(arguments)) { line in
            switch ResticMessage.parse(line) {
            case .status(let status):
                try? await context.progress(status.percent * 100, ResticMessage.progressText(status))
                // One progress line in the log every 10 s; the bar shows every update.
                let now = Date()
                let due = lastLogged.withLock { last in
                    guard now.timeIntervalSince(last) >= 10 else { return false }
                    last = now
                    return true
                }
                if due { await context.log("progress: " + ResticMessage.progressText(status)) }
                return false
            case .summary(let value):
                collected.summary.withLock { $0 = value }
                try? store.recordSummary(jobID: jobID, summary: value)
                return false
            case .error(let message):
                collected.errors.withLock { $0.append(message) }
                await context.log("error: \(message)")
                return false
            case .text:
                return true
            }
        }
    }

    // MARK: retention

    func runForget(_ context: JobContext) async throws {
        let plan = try plan(for: context.job)
        let repository = try repository(of: plan)
        guard !plan.retention.keepsEverything else {
            await context.log("plan \(plan.name) keeps every snapshot (no retention rule); nothing to forget")
            return
        }
        let target = try target(repository: repository)
        try await holding(repository, context) {
            try store.startRun(
                jobID: context.job.id, kind: "forget", planID: plan.id, repositoryID: repository.id, hostID: target.host.id, now: Date())
            try await unlockStale(target, context)
            do {
                let removed = try await forget(plan: plan, target: target, context: context)
                try store.finishRun(jobID: context.job.id, removed: removed, now: Date())
            } catch {
                try? store.finishRun(jobID: context.job.id, detail: String(describing: error), now: Date())
                throw error
            }
        }
        refreshStatusLater(repository)
    }

    /// `restic forget --prune` with the plan's policy on the plan's snapshots only; returns how many were removed.
    func forget(plan: BackupPlan, target: ResticTarget, context: JobContext) async throws -> Int {
        try await context.progress(nil, "applying retention: \(plan.retention.resticFlags.joined(separator: " "))")
        let arguments = ["forget", "--json", "--tag", plan.tag, "--group-by", "tags", "--prune"] + plan.retention.resticFlags
        let removed = Mutex(0)
        let (outcome, tail) = try await stream(
            target.command(arguments, timeout: .seconds(6 * 3600)), context, display: target.resticArguments(arguments)
        ) {
            line in
            if line.first == "[", let groups = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [[String: Any]] {
                let preview = RetentionPreview(groups: groups)
                removed.withLock { $0 += preview.removed }
                for item in preview.items {
                    await context.log(
                        "\(item.keep ? "keep  " : "remove") \(item.shortID) \(item.time)\(item.reasons.isEmpty ? "" : " (" + item.reasons.joined(separator: ", ") + ")")"
                    )
                }
                return false
            }
            return true
        }
        guard outcome.succeeded else { throw JobFailure("retention: " + Self.failure(tail, outcome: outcome, target: target)) }
        let count = removed.withLock { $0 }
        await context.log("retention removed \(count) snapshot\(count == 1 ? "" : "s") and pruned unreferenced data")
        return count
    }

    // MARK: verify

    func runCheck(_ context: JobContext) async throws {
        let params = try context.job.parameters(BackupCheckJob.self)
        let plan = try params.planID.flatMap { try store.plan(id: $0) }
        let repositoryID = plan?.repositoryID ?? params.repositoryID
        guard let repositoryID, let repository = try store.repository(id: repositoryID) else {
            throw JobFailure("the repository to check does not exist")
        }
        let target = try target(repository: repository)
        var arguments = ["check"]
        let subset = plan?.verifyReadDataSubset ?? params.readDataSubset ?? ""
        if !subset.isEmpty { arguments += ["--read-data-subset", subset] }
        try await holding(repository, context) {
            try store.startRun(
                jobID: context.job.id, kind: "check", planID: plan?.id, repositoryID: repository.id, hostID: target.host.id, now: Date())
            try await unlockStale(target, context)
            try await context.progress(
                nil, subset.isEmpty ? "checking the repository's structure" : "checking structure and reading \(subset) of the data")
            let (outcome, tail) = try await stream(
                target.command(arguments, timeout: .seconds(12 * 3600)), context, display: target.resticArguments(arguments))
            let message =
                outcome.succeeded
                ? "no errors were found" + (subset.isEmpty ? " (structure)" : " (structure and \(subset) of the data)")
                : Self.failure(tail, outcome: outcome, target: target)
            try store.recordCheck(repositoryID: repository.id, ok: outcome.succeeded, message: message, now: Date())
            try store.finishRun(jobID: context.job.id, detail: message, now: Date())
            guard outcome.succeeded else { throw JobFailure("check: " + message) }
        }
        refreshStatusLater(repository)
    }

    // MARK: restore

    /// A validated restore request: which snapshot, which paths of it, where to, and on which host.
    public struct RestoreRequest: Sendable {
        public var repositoryID: Int64
        public var planID: Int64?
        public var snapshot: String
        public var includes: [String]
        public var target: String
        public var hostID: Int64
        public var confirm: String
    }

    /// Check a restore and build its job; a target that holds data or overlaps the plan's live paths needs `confirm`
    /// to repeat the target exactly.
    public func prepareRestore(_ request: RestoreRequest, by who: AuditActor, isAdmin: Bool) async throws -> JobRequest {
        var errors: [String: String] = [:]
        if let problem = Self.snapshotProblem(request.snapshot) { errors["snapshot"] = problem }
        if let problem = BackupPaths.problem(request.target, what: "the target") { errors["target"] = problem }
        if request.target == "/" { errors["target"] = "restoring onto / is refused; restore into a directory and move what you need" }
        if let problem = request.includes.lazy.compactMap({ BackupPaths.problem($0, what: "an included path") }).first { errors["include"] = problem }
        guard let repository = try store.repository(id: request.repositoryID) else {
            throw Problem.invalid(["repository": "choose a repository that exists"])
        }
        guard let host = try hosts.host(id: request.hostID) else { throw Problem.invalid(["host": "choose a host that exists"]) }
        if let problem = reachProblem(host: host, repository: repository) { errors["host"] = problem }
        if repository.kind == .local, repository.hostID == host.id, errors["target"] == nil,
            BackupPaths.contains(repository.path, request.target) || BackupPaths.contains(request.target, repository.path)
        {
            errors["target"] = "the target overlaps the repository itself (\(repository.path)); choose a directory outside it"
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let plan = try request.planID.flatMap { try store.plan(id: $0) }
        if !isAdmin, let reason = try restoreProblem(request, host: host, plan: plan) { throw Problem(status: .forbidden, detail: reason) }
        let live =
            plan.map { plan in
                plan.hostID == host.id && plan.paths.contains { BackupPaths.contains($0, request.target) || BackupPaths.contains(request.target, $0) }
            } ?? false
        let occupied = try await targetHasContent(host: host, repository: repository, path: request.target)
        if (live || occupied) && request.confirm != request.target {
            let why = live ? "\(request.target) is a live path that plan \(plan?.name ?? "") backs up" : "\(request.target) already holds files"
            throw Problem.invalid([
                "confirm": "\(why); restoring will overwrite files there. To go ahead, type the target path \(request.target) to confirm"
            ])
        }
        let params = BackupRestoreJob(
            repositoryID: repository.id, snapshot: request.snapshot, include: request.includes, target: request.target, hostID: host.id,
            overwritesLiveData: live || occupied, planID: plan?.id)
        var job = JobRequest(
            kind: BackupStore.restoreKind, title: "Restore \(request.snapshot.prefix(8)) to \(request.target) on \(host.name)",
            params: params.json, host: host.name, startedBy: who.actor,
            reason: live || occupied ? "confirmed restore over \(request.target)" : "", source: who.source)
        // The restore's own audit row is written with the job, in one transaction.
        job.audit = JobAudit(
            by: who, action: "backup.restore",
            after: [
                "snapshot": .string(request.snapshot), "target": .string(request.target), "include": .array(request.includes.map(JSONValue.string)),
                "host_id": .integer(request.hostID), "confirmed_overwrite": .bool(request.confirm == request.target),
            ])
        return job
    }

    func targetHasContent(host: Host, repository: BackupRepository, path: String) async throws -> Bool {
        let target = try target(repository: repository, on: host)
        var probe = target.plainCommand(["find", path, "-mindepth", "1", "-maxdepth", "1", "-print", "-quit"], timeout: .seconds(60))
        if host.transport == .local { probe.panel = .probe(path: path) }
        let found = try await capture(probe)
        return found.outcome.succeeded && !found.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }

    func runRestore(_ context: JobContext) async throws {
        let params = try context.job.parameters(BackupRestoreJob.self)
        guard let repository = try store.repository(id: params.repositoryID), let host = try hosts.host(id: params.hostID) else {
            throw JobFailure("the restore's repository or host no longer exists")
        }
        let snapshot = params.snapshot
        let targetPath = params.target
        let includes = params.include
        // Checked again here: the job's parameters are stored and could have been written by something else.
        if let problem = Self.snapshotProblem(snapshot) ?? BackupPaths.problem(targetPath)
            ?? includes.lazy.compactMap({ BackupPaths.problem($0) }).first
        {
            throw JobFailure(problem)
        }
        let target = try target(repository: repository, on: host)
        let planID = params.planID
        try await holding(repository, context) {
            try store.startRun(jobID: context.job.id, kind: "restore", planID: planID, repositoryID: repository.id, hostID: host.id, now: Date())
            let total = try await restoreSize(target: target, snapshot: snapshot, includes: includes)
            await context.log("restoring \(MetricUnit.bytes.format(Double(total))) from snapshot \(snapshot) into \(targetPath) on \(host.name)")
            var arguments = ["restore", snapshot, "--target", targetPath, "--verify"]
            for include in includes { arguments += ["--include", include] }
            let poller = Task {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                    let done = await self.sizeOnDisk(target: target, path: targetPath)
                    if total > 0 {
                        let percent = min(99, Double(done) / Double(total) * 100)
                        try? await context.progress(
                            percent,
                            "\(Int(percent))% · \(MetricUnit.bytes.format(Double(done))) of \(MetricUnit.bytes.format(Double(total))) written")
                    }
                }
            }
            let result: (outcome: ProcessOutcome, tail: String)
            do {
                result = try await stream(
                    target.command(arguments, timeout: .seconds(24 * 3600)), context, display: target.resticArguments(arguments))
            } catch {
                poller.cancel()
                throw error
            }
            poller.cancel()
            guard result.outcome.succeeded else {
                let message = Self.failure(result.tail, outcome: result.outcome, target: target)
                try? store.finishRun(jobID: context.job.id, detail: message, now: Date())
                throw JobFailure(message)
            }
            let text = "restored and verified \(MetricUnit.bytes.format(Double(total))) into \(targetPath)"
            try store.finishRun(jobID: context.job.id, detail: text, now: Date())
            try await context.progress(100, text)
        }
    }

    /// Bytes of regular files the restore will write: from the snapshot's listing, narrowed to the included paths.
    func restoreSize(target: ResticTarget, snapshot: String, includes: [String]) async throws -> Int64 {
        let listing = try await restic(target, ["ls", "--json", "--no-lock", snapshot], timeout: .seconds(600))
        var total: Int64 = 0
        for item in listing.json {
            guard let node = item as? [String: Any], node["type"] as? String == "file", let path = node["path"] as? String else { continue }
            if includes.isEmpty || includes.contains(where: { BackupPaths.contains($0, path) }) {
                total += (node["size"] as? NSNumber)?.int64Value ?? 0
            }
        }
        return total
    }

    /// Bytes of regular files under `path` on the target's host (apparent sizes, as the listing gives them).
    func sizeOnDisk(target: ResticTarget, path: String) async -> Int64 {
        if target.host.transport == .local { return Self.localSize(path) }
        guard let captured = try? await capture(target.plainCommand(["du", "-sb", "--", path], timeout: .seconds(30))) else { return 0 }
        return Int64(captured.output.split(whereSeparator: \.isWhitespace).first ?? "") ?? 0
    }

    static func localSize(_ path: String) -> Int64 {
        guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total: Int64 = 0
        while let name = enumerator.nextObject() as? String {
            if let attributes = enumerator.fileAttributes, attributes[.type] as? FileAttributeType == .typeRegular {
                total += (attributes[.size] as? NSNumber)?.int64Value ?? 0
            }
            _ = name
        }
        return total
    }
}

/// What one `restic backup` reported: its summary, and the files it could not read.
final class BackupCollector: Sendable {
    let summary = Mutex<ResticMessage.Summary?>(nil)
    let errors = Mutex<[String]>([])
}

/// Splits a byte stream into lines, keeping the last ten lines that are not progress for error messages.
final class LineSplitter: Sendable {
    private struct State {
        var pending = Data()
        var tail: [String] = []
    }
    private let state = Mutex(State())

    func feed(_ data: Data) -> [String] {
        state.withLock { state in
            state.pending.append(data)
            var lines: [String] = []
            while let newline = state.pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: state.pending[state.pending.startIndex..<newline], as: UTF8.self)
                state.pending.removeSubrange(state.pending.startIndex...newline)
                lines.append(line)
            }
            for line in lines where !line.hasPrefix("{\"message_type\":\"status\"") {
                state.tail.append(line)
                if state.tail.count > 10 { state.tail.removeFirst() }
            }
            return lines
        }
    }

    func finish() -> [String] {
        state.withLock { state in
            guard !state.pending.isEmpty else { return [] }
            let line = String(decoding: state.pending, as: UTF8.self)
            state.pending = Data()
            state.tail.append(line)
            return [line]
        }
    }

    var tail: String { state.withLock { $0.tail.joined(separator: "\n") } }
}
