import Foundation
import GRDB
import Hummingbird
import NIOCore

/// `/api/v1/backups`: repositories, plans, runs, snapshots, browsing, downloads and restores.
struct BackupAPI {
    let area: AreaContext
    let service: BackupService

    var store: BackupStore { service.store }

    func addRoutes(to routes: Routes) {
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "id")
        let snapshot = APIOperation.Parameter(
            name: "snapshot", location: .path, type: "string", description: "snapshot id (8 to 64 hex digits) or latest",
            pattern: "^([0-9a-f]{8,64}|latest)$")
        let path = APIOperation.Parameter(
            name: "path", location: .query, type: "string", description: "absolute path inside the snapshot", pattern: "^/")
        var filePath = path
        filePath.required = true
        let api = area.docs.routes(routes, tag: "backups")
        api(
            .get, "/api/v1/backups/repositories", .view, "listBackupRepositories", "List repositories with their status line",
            schema: "BackupRepositoryList", use: listRepositories)
        api(
            .post, "/api/v1/backups/repositories", .admin, "createBackupRepository",
            "Initialise a new repository, or import an existing one (init: false)",
            request: "BackupRepositoryInput", status: 201, schema: "BackupRepository", use: createRepository)
        api(
            .get, "/api/v1/backups/repositories/{id}", .view, "getBackupRepository", "Read one repository", parameters: [id],
            schema: "BackupRepository", use: showRepository)
        api(
            .delete, "/api/v1/backups/repositories/{id}", .admin, "deleteBackupRepository", "Forget a repository in Steward (its data stays)",
            parameters: [id], status: 204, schema: nil, use: deleteRepository)
        api(
            .post, "/api/v1/backups/repositories/{id}/password", .admin, "setBackupRepositoryPassword",
            "Replace the stored password after restic accepts it",
            parameters: [id], request: "BackupRepositoryPassword", schema: "BackupRepository", use: setPassword)
        api(
            .post, "/api/v1/backups/repositories/{id}/refresh", .operate, "refreshBackupRepository", "Re-read size and snapshot count",
            parameters: [id],
            schema: "BackupRepository", use: refreshRepository)
        api(
            .get, "/api/v1/backups/repositories/{id}/snapshots", .view, "listBackupSnapshots", "The repository's snapshots, newest first",
            parameters: [id],
            schema: "BackupSnapshotList", use: repositorySnapshots)
        api(
            .get, "/api/v1/backups/repositories/{id}/snapshots/{snapshot}/tree", .view, "browseBackupSnapshot",
            "The entries directly inside one directory of a snapshot", parameters: [id, snapshot, path], schema: "BackupTree", use: tree)
        api(
            .get, "/api/v1/backups/repositories/{id}/snapshots/{snapshot}/file", .operate, "downloadBackupFile", "Download one file of a snapshot",
            parameters: [id, snapshot, filePath], schema: "Binary", contentType: "application/octet-stream", use: download)
        api(
            .post, "/api/v1/backups/repositories/{id}/snapshots/{snapshot}/restore", .operate, "restoreBackupSnapshot",
            "Restore a snapshot, or paths of it, into a target directory (a job)", parameters: [id, snapshot], request: "BackupRestore", status: 202,
            schema: "Job", use: restore)

        api(
            .get, "/api/v1/backups/hosts/{id}/snapshots", .view, "listBackupHostSnapshots", "Every snapshot the host's plans made, newest first",
            parameters: [id], schema: "BackupHostSnapshotList", use: hostSnapshots)
        api(.get, "/api/v1/backups/plans", .view, "listBackupPlans", "List plans with their last runs", schema: "BackupPlanList", use: listPlans)
        api(
            .post, "/api/v1/backups/plans", .operate, "createBackupPlan", "Create a plan with its schedules and alert rules",
            request: "BackupPlanCreate",
            status: 201, schema: "BackupPlan", use: createPlan)
        api(.get, "/api/v1/backups/plans/{id}", .view, "getBackupPlan", "Read one plan", parameters: [id], schema: "BackupPlan", use: showPlan)
        api(
            .patch, "/api/v1/backups/plans/{id}", .operate, "updateBackupPlan", "Change a plan; omitted fields keep their values", parameters: [id],
            request: "BackupPlanInput", schema: "BackupPlan", use: updatePlan)
        api(
            .delete, "/api/v1/backups/plans/{id}", .operate, "deleteBackupPlan", "Delete a plan (its snapshots stay in the repository)",
            parameters: [id],
            status: 204, schema: nil, use: deletePlan)
        for (action, summary) in [("run", "Back up now"), ("verify", "Run restic check now"), ("prune", "Apply retention now")] {
            api(.post, "/api/v1/backups/plans/{id}/\(action)", .operate, "\(action)BackupPlan", summary, parameters: [id], status: 202, schema: "Job")
            { request, context in
                try await self.start(action, request: request, context: context)
            }
        }
        for paused in [true, false] {
            let action = paused ? "pause" : "resume"
            api(
                .post, "/api/v1/backups/plans/{id}/\(action)", .operate, "\(action)BackupPlan",
                paused ? "Pause the plan's schedules" : "Resume the plan's schedules", parameters: [id], schema: "BackupPlan"
            ) { request, context in try await self.setPaused(paused, context: context) }
        }
        api(
            .get, "/api/v1/backups/plans/{id}/runs", .view, "listBackupRuns", "The plan's runs with their summaries", parameters: [id],
            schema: "BackupRunList", use: planRuns)
        api(
            .get, "/api/v1/backups/plans/{id}/snapshots", .view, "listBackupPlanSnapshots", "The plan's snapshots, newest first", parameters: [id],
            schema: "BackupPlanSnapshotList", use: planSnapshots)
        api(
            .post, "/api/v1/backups/plans/{id}/retention/preview", .view, "previewBackupRetention",
            "Which snapshots a policy keeps (and why) and removes",
            parameters: [id], request: "BackupRetentionInput", schema: "BackupRetentionPreview", use: preview)
    }

    // MARK: repositories

    func loadRepository(_ context: StewardRequestContext) throws -> BackupRepository {
        guard let id = context.parameters.get("id", as: Int64.self), let repository = try store.repository(id: id) else {
            throw Problem.notFound("backup repository \(context.parameters.get("id") ?? "")")
        }
        return repository
    }

    @Sendable func listRepositories(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(CursorPage(items: try store.repositories().map(BackupRepositoryResource.init), next: Nullable(nil)))
    }

    @Sendable func showRepository(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(BackupRepositoryResource(try loadRepository(context)))
    }

    @Sendable func createRepository(request: Request, context: StewardRequestContext) async throws -> Response {
        let body = try await JSONResponse.fields(from: request, what: "a repository: name, kind, host, path, password, init")
        let (repository, password, initialise) = try Self.repositoryInput(BackupInput(json: body), hosts: service.hosts)
        let saved = try await service.addRepository(repository, password: password, initialise: initialise, by: context.actor, now: Date())
        return try APIJSON.response(BackupRepositoryResource(saved), status: .created)
    }

    static func repositoryInput(_ input: BackupInput, hosts: HostStore) throws -> (BackupRepository, String, Bool) {
        var repository = BackupRepository()
        var errors: [String: String] = [:]
        repository.name = (input.string("name") ?? "").trimmingCharacters(in: .whitespaces)
        if let kind = BackupRepository.Kind(rawValue: input.string("kind") ?? "local") {
            repository.kind = kind
        } else {
            errors["kind"] = "choose local or sftp"
        }
        let hostText = input.string("host") ?? "localhost"
        if let host = try Int64(hostText).flatMap({ try hosts.host(id: $0) }) ?? hosts.host(named: hostText.isEmpty ? "localhost" : hostText) {
            repository.hostID = host.id
        } else {
            errors["host"] = "no host \(hostText); give a host's id or name"
        }
        repository.path = (input.string("path") ?? "").trimmingCharacters(in: .whitespaces)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return (repository, input.string("password") ?? "", input.flag("init") ?? (input.string("mode") != "import"))
    }

    @Sendable func deleteRepository(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        if repository.builtin != nil { throw Problem(status: .conflict, detail: "the self-backup repository is built in and cannot be removed") }
        try store.deleteRepository(repository, by: context.actor, now: Date())
        return Response(status: .noContent)
    }

    @Sendable func setPassword(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let body = try await JSONResponse.fields(from: request, what: "password")
        try await Self.changePassword(service, repository, password: body["password"]?.text ?? "", by: context.actor)
        return try APIJSON.response(BackupRepositoryResource(try store.repository(id: repository.id) ?? repository))
    }

    /// Store a new password for an existing repository once restic opens the repository with it.
    static func changePassword(_ service: BackupService, _ repository: BackupRepository, password: String, by who: AuditActor) async throws {
        guard !password.isEmpty else { throw Problem.invalid(["password": "enter the repository's password"]) }
        let access = try service.accessHost(repository)
        let storage = repository.kind == .sftp ? try service.hosts.host(id: repository.hostID) : nil
        let target = ResticTarget(
            host: access, repository: repository, storageHost: storage, password: password, identity: service.identity,
            cacheDirectory: service.cacheDirectory)
        do {
            _ = try await service.restic(target, ["snapshots", "--json", "--no-lock"])
        } catch let failure as JobFailure {
            throw Problem.invalid(["password": failure.message])
        }
        try service.store.setPassword(repository, password: password, by: who, now: Date())
        await service.refreshStatus(repository)
    }

    @Sendable func refreshRepository(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        await service.refreshStatus(repository)
        return try APIJSON.response(BackupRepositoryResource(try store.repository(id: repository.id) ?? repository))
    }

    @Sendable func repositorySnapshots(request: Request, context: StewardRequestContext) async throws -> Response {
        let snapshots = try await Self.problemOnFailure { try await service.snapshots(try loadRepository(context)) }
        return try APIJSON.response(CursorPage(items: snapshots.map { BackupSnapshotResource($0) }, next: Nullable(nil)))
    }

    @Sendable func tree(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let snapshot = context.parameters.get("snapshot") ?? ""
        let path = FormBody(query: request)["path"] ?? "/"
        try service.requireReadable(path, isAdmin: context.isAdmin)
        let entries = try await Self.problemOnFailure { try await service.browse(repository, snapshot: snapshot, directory: path) }
        return try APIJSON.response(BackupTreeResource(path: path, entries: entries))
    }

    @Sendable func download(request: Request, context: StewardRequestContext) async throws -> Response {
        try await Self.fileResponse(
            service, repository: try loadRepository(context), snapshot: context.parameters.get("snapshot") ?? "",
            path: FormBody(query: request)["path"] ?? "", actor: context.actor, isAdmin: context.isAdmin)
    }

    /// Stream one file; the entry is looked up first, so a missing path or a directory is a clear 404/422, not a broken download.
    static func fileResponse(
        _ service: BackupService, repository: BackupRepository, snapshot: String, path: String, actor: AuditActor, isAdmin: Bool
    ) async throws -> Response {
        if let problem = BackupPaths.problem(path) { throw Problem.invalid(["path": problem]) }
        try service.requireReadable(path, isAdmin: isAdmin)
        let parent = BackupService.parent(of: path)
        let entries = try await problemOnFailure { try await service.browse(repository, snapshot: snapshot, directory: parent) }
        guard let entry = entries.first(where: { $0.path == path }) else { throw Problem.notFound("\(path) in snapshot \(snapshot)") }
        guard entry.type == "file" else {
            throw Problem.invalid(["path": "\(path) is a \(entry.type), not a file; download files one at a time, or restore the directory"])
        }
        try await service.store.database.write { db in
            try AuditLog.append(
                db, by: actor, action: "backup.download", target: "backup_repository:\(repository.name)",
                after: ["snapshot": snapshot, "path": path], now: Date())
        }
        // An ASCII fallback name plus the exact one in RFC 5987 form, so unicode names survive the download.
        let fallback = String(entry.name.unicodeScalars.map { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 0x20 ? Character($0) : "_" })
        let exact = entry.name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? "file"
        var headers: HTTPFields = [
            .contentType: "application/octet-stream", .cacheControl: "no-store",
            .contentDisposition: "attachment; filename=\"\(fallback)\"; filename*=UTF-8''\(exact)",
        ]
        if let size = entry.size { headers[.contentLength] = String(size) }
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                let (chunks, continuation) = AsyncStream<Data>.makeStream(bufferingPolicy: .unbounded)
                let producer = Task {
                    try? await service.dump(repository, snapshot: snapshot, path: path) { data in continuation.yield(data) }
                    continuation.finish()
                }
                for await chunk in chunks { try await writer.write(ByteBuffer(bytes: chunk)) }
                _ = await producer.value
                try await writer.finish(nil)
            })
    }

    @Sendable func restore(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let body = try await JSONResponse.fields(from: request, what: "a restore: target, include, host, plan, confirm")
        let restore = try Self.restoreRequest(
            BackupInput(json: body), repository: repository, snapshot: context.parameters.get("snapshot") ?? "", service: service)
        let job = try await area.runner.enqueue(try await service.prepareRestore(restore, by: context.actor, isAdmin: context.isAdmin))
        return try APIJSON.response(JobResource(job), status: .accepted)
    }

    static func restoreRequest(_ input: BackupInput, repository: BackupRepository, snapshot: String, service: BackupService) throws
        -> BackupService.RestoreRequest
    {
        let planID = input.string("plan").flatMap { Int64($0) }
        var hostID = try service.accessHost(repository).id
        if let plan = try planID.flatMap({ try service.store.plan(id: $0) }) { hostID = plan.hostID }
        if let text = input.string("host"), !text.isEmpty {
            guard let host = try Int64(text).flatMap({ try service.hosts.host(id: $0) }) ?? service.hosts.host(named: text) else {
                throw Problem.invalid(["host": "no host \(text)"])
            }
            hostID = host.id
        }
        return BackupService.RestoreRequest(
            repositoryID: repository.id, planID: planID, snapshot: snapshot, includes: input.list("include") ?? [],
            target: (input.string("target") ?? "").trimmingCharacters(in: .whitespaces), hostID: hostID, confirm: input.string("confirm") ?? "")
    }

    /// restic failures (a wrong password, a missing repository) as a 502 problem that says what to do.
    static func problemOnFailure<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let failure as JobFailure {
            throw Problem(status: failure.isConflict ? .conflict : .badGateway, detail: failure.message)
        }
    }

    // MARK: plans

    func loadPlan(_ context: StewardRequestContext) throws -> BackupPlan {
        guard let id = context.parameters.get("id", as: Int64.self), let plan = try store.plan(id: id) else {
            throw Problem.notFound("backup plan \(context.parameters.get("id") ?? "")")
        }
        return plan
    }

    @Sendable func listPlans(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(CursorPage(items: try store.plans().map { try planResource($0) }, next: Nullable(nil)))
    }

    @Sendable func showPlan(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(try planResource(try loadPlan(context)))
    }

    @Sendable func createPlan(request: Request, context: StewardRequestContext) async throws -> Response {
        let body = try await JSONResponse.fields(from: request, what: "a backup plan")
        let (plan, timing, errors) = try BackupInput(json: body).apply(to: BackupPlan(), timing: BackupPlanTiming(), hosts: service.hosts)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let saved = try await service.save(plan, timing: timing, by: context.actor, isAdmin: context.isAdmin, now: Date())
        return try APIJSON.response(try planResource(saved), status: .created)
    }

    @Sendable func updatePlan(request: Request, context: StewardRequestContext) async throws -> Response {
        let current = try loadPlan(context)
        let body = try await JSONResponse.fields(from: request, what: "the plan fields to change")
        let (plan, timing, errors) = try BackupInput(json: body).apply(to: current, timing: try store.timing(of: current), hosts: service.hosts)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let saved = try await service.save(plan, timing: timing, by: context.actor, isAdmin: context.isAdmin, now: Date())
        return try APIJSON.response(try planResource(saved))
    }

    @Sendable func deletePlan(request: Request, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        if plan.builtin != nil { throw Problem(status: .conflict, detail: "the self-backup plan is built in; pause it instead of deleting it") }
        try await service.delete(plan, by: context.actor, isAdmin: context.isAdmin, now: Date())
        return Response(status: .noContent)
    }

    func start(_ action: String, request: Request, context: StewardRequestContext) async throws -> Response {
        let job = try await Self.start(
            action, plan: try loadPlan(context), service: service, area: area, actor: context.actor, isAdmin: context.isAdmin)
        return try APIJSON.response(JobResource(job), status: .accepted)
    }

    /// "Run now" (and verify or prune now) through the plan's schedule when it has one, so concurrency forbid applies.
    static func start(
        _ action: String, plan: BackupPlan, service: BackupService, area: AreaContext, actor: AuditActor, isAdmin: Bool
    ) async throws -> Job {
        try service.requireAllowed(plan, isAdmin: isAdmin)
        let scheduleID =
            [("run", plan.backupScheduleID), ("verify", plan.verifyScheduleID), ("prune", plan.pruneScheduleID)].first { $0.0 == action }?.1 ?? nil
        if let scheduleID, let firing = try await area.scheduler.runNow(id: scheduleID, by: actor) {
            guard let jobID = firing.jobID, let job = try area.runner.store.job(id: jobID) else {
                throw Problem(status: .conflict, detail: "plan \(plan.name) was not started: \(firing.outcome)")
            }
            return job
        }
        let kind =
            ["run": BackupStore.backupKind, "verify": BackupStore.checkKind, "prune": BackupStore.forgetKind][action] ?? BackupStore.backupKind
        let label = ["run": "Backup", "verify": "Verify backups", "prune": "Apply retention"][action] ?? "Backup"
        let host = try service.hosts.host(id: plan.hostID)?.name
        return try await area.runner.enqueue(
            JobRequest(
                kind: kind, title: "\(label): \(plan.name)", params: BackupPlanJob(planID: plan.id).json, host: host, startedBy: actor.actor,
                reason: "run now by \(actor.actor)", source: actor.source))
    }

    func setPaused(_ paused: Bool, context: StewardRequestContext) async throws -> Response {
        var plan = try loadPlan(context)
        plan.paused = paused
        let saved = try await service.save(plan, timing: try store.timing(of: plan), by: context.actor, isAdmin: context.isAdmin, now: Date())
        return try APIJSON.response(try planResource(saved))
    }

    @Sendable func planRuns(request: Request, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        return try APIJSON.response(CursorPage(items: try store.runs(planID: plan.id, limit: 100).map(BackupRunResource.init), next: Nullable(nil)))
    }

    @Sendable func planSnapshots(request: Request, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        guard let repository = try store.repository(id: plan.repositoryID) else { throw Problem.notFound("the plan's repository") }
        let snapshots = try await Self.problemOnFailure { try await service.snapshots(repository, plan: plan) }
        return try APIJSON.response(BackupPlanSnapshotList(items: snapshots.map { BackupSnapshotResource($0) }, repositoryId: repository.id))
    }

    @Sendable func hostSnapshots(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try service.hosts.host(id: id) != nil else {
            throw Problem.notFound("host \(context.parameters.get("id") ?? "")")
        }
        var items: [BackupSnapshotResource] = []
        for plan in try store.plans(hostID: id) {
            guard let repository = try store.repository(id: plan.repositoryID) else { continue }
            let snapshots = try await Self.problemOnFailure { try await service.snapshots(repository, plan: plan) }
            items += snapshots.map { BackupSnapshotResource($0, repositoryID: repository.id) }
        }
        items.sort { $0.time > $1.time }
        return try APIJSON.response(CursorPage(items: items, next: Nullable(nil)))
    }

    @Sendable func preview(request: Request, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        let body = try await JSONResponse.fields(from: request, what: "a retention policy: keep_last, keep_daily, ..., keep_within")
        let (changed, _, errors) = try BackupInput(json: body).apply(to: plan, timing: BackupPlanTiming(), hosts: service.hosts)
        let problems = errors.merging(changed.retention.problems()) { first, _ in first }
        guard problems.isEmpty else { throw Problem.invalid(problems) }
        guard let repository = try store.repository(id: plan.repositoryID) else { throw Problem.notFound("the plan's repository") }
        let preview = try await Self.problemOnFailure { try await service.previewRetention(repository, plan: plan, policy: changed.retention) }
        return try APIJSON.response(
            BackupRetentionPreviewResource(
                keep: preview.kept, remove: preview.removed, flags: changed.retention.resticFlags,
                items: preview.items.map { .init(id: $0.id, shortId: $0.shortID, time: $0.time, keep: $0.keep, reasons: $0.reasons) }))
    }

    // MARK: resources

    func planResource(_ plan: BackupPlan) throws -> BackupPlanResource {
        let (last, success) = try store.lastBackups(planID: plan.id)
        return BackupPlanResource(plan, timing: try store.timing(of: plan), last: last, success: success)
    }
}
