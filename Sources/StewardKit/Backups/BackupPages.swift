import Foundation
import Hummingbird

/// The Backups pages: plans and repositories, a plan's runs and snapshots, the plan form with its retention preview,
/// snapshot browsing, downloads and restores.
struct BackupPages {
    let area: AreaContext
    let service: BackupService

    var store: BackupStore { service.store }

    func addRoutes(to routes: Routes) {
        routes.get("/backups", .view, use: index)
        routes.get("/backups/plans/new", .operate, use: newPlan)
        routes.post("/backups/plans", .operate, use: createPlan)
        routes.get("/backups/plans/:id", .view, use: showPlan)
        routes.get("/backups/plans/:id/edit", .operate, use: editPlan)
        routes.post("/backups/plans/:id", .operate, use: savePlan)
        routes.post("/backups/plans/:id/delete", .operate, use: deletePlan)
        for action in ["run", "verify", "prune"] {
            routes.post("/backups/plans/:id/\(action)", .operate) { request, context in try await self.start(action, context: context) }
        }
        for paused in [true, false] {
            routes.post("/backups/plans/:id/\(paused ? "pause" : "resume")", .operate) { request, context in
                try await self.setPaused(paused, context: context)
            }
        }
        routes.get("/backups/repositories/new", .admin, use: newRepository)
        routes.post("/backups/repositories", .admin, use: createRepository)
        routes.get("/backups/repositories/:id", .view, use: showRepository)
        routes.post("/backups/repositories/:id/password", .admin, use: changePassword)
        routes.post("/backups/repositories/:id/refresh", .operate, use: refresh)
        routes.post("/backups/repositories/:id/check", .operate, use: check)
        routes.post("/backups/repositories/:id/delete", .admin, use: deleteRepository)
        routes.get("/backups/repositories/:id/snapshots/:snapshot", .view, use: browse)
        routes.get("/backups/repositories/:id/snapshots/:snapshot/file", .operate, use: download)
        routes.post("/backups/repositories/:id/snapshots/:snapshot/restore", .operate, use: restore)
    }

    // MARK: overview

    @Sendable func index(request: Request, context: StewardRequestContext) async throws -> Response {
        let hosts = Dictionary(uniqueKeysWithValues: try service.hosts.all().map { ($0.id, $0.name) })
        let repositories = try store.repositories()
        let names = Dictionary(uniqueKeysWithValues: repositories.map { ($0.id, $0.name) })
        // ?host=NAME narrows the page to one host: its plans, and the snapshots they made.
        let hostFilter = request.uri.queryParameters.get("host").flatMap { name in hosts.first { $0.value == name } }
        var snapshots: [ViewNode] = []
        var snapshotErrors: [String] = []
        if let hostFilter {
            for plan in try store.plans(hostID: hostFilter.key) {
                guard let repository = try store.repository(id: plan.repositoryID) else { continue }
                do {
                    snapshots += try await service.snapshots(repository, plan: plan).map { snapshot in
                        ViewNode([
                            "id": snapshot.id, "short_id": snapshot.shortID, "time": snapshot.time, "plan": plan.name, "plan_id": plan.id,
                            "repository_id": repository.id, "repository": repository.name,
                        ])
                    }
                } catch {
                    snapshotErrors.append("\(plan.name): \(error)")
                }
            }
        }
        let plans = try store.plans().filter { hostFilter == nil || $0.hostID == hostFilter!.key }.map { plan -> ViewNode in
            var values = try planValues(plan)
            values["host"] = hosts[plan.hostID] ?? "?"
            values["repository"] = names[plan.repositoryID] ?? "?"
            return ViewNode(values)
        }
        return area.pages.page(
            "backups/index", title: "Backups", section: "backups",
            data: [
                "plans": plans, "no_plans": plans.isEmpty, "repositories": repositories.map { ViewNode(repositoryValues($0, hosts: hosts)) },
                "no_repositories": repositories.isEmpty, "operator": context.identity?.permissions.contains(.operate) ?? false,
                "host_filter": hostFilter?.value as Any, "has_host_filter": hostFilter != nil, "host_snapshots": snapshots,
                "no_host_snapshots": snapshots.isEmpty, "snapshot_errors": snapshotErrors,
                "admin": context.identity?.permissions.contains(.admin) ?? false,
            ], request: request, context: context)
    }

    func planValues(_ plan: BackupPlan) throws -> [String: Any?] {
        let (last, success) = try store.lastBackups(planID: plan.id)
        let next = try plan.backupScheduleID.flatMap { try area.scheduler.store.schedule(id: $0) }?.nextFireAt
        let age = success.map { Double(Int64(Date().timeIntervalSince1970 * 1000) - ($0.finishedAt ?? $0.startedAt)) / 3_600_000 }
        return [
            "id": plan.id, "name": plan.name, "paused": plan.paused, "builtin": plan.builtin != nil, "paths": plan.paths.joined(separator: ", "),
            "next": plan.paused ? nil : next.map { DisplayTime.text($0) },
            "has_last": last != nil, "last_state": last?.jobState.rawValue, "last_job": last?.jobID,
            "last_success_age": age.map { DurationText.format(seconds: $0 * 3600) + " ago" } ?? "never",
            "overdue": (age ?? Double(Int64(Date().timeIntervalSince1970 * 1000) - plan.createdAt) / 3_600_000) >= Double(plan.alertAfterHours),
            "alert_after_hours": plan.alertAfterHours,
        ]
    }

    func repositoryValues(_ repository: BackupRepository, hosts: [Int64: String]) -> [String: Any?] {
        let location =
            repository.kind == .local
            ? "\(hosts[repository.hostID] ?? "?"):\(repository.path)" : "sftp \(hosts[repository.hostID] ?? "?"):\(repository.path)"
        return [
            "id": repository.id, "name": repository.name, "kind": repository.kind.rawValue, "location": location,
            "builtin": repository.builtin != nil,
            "size": repository.sizeBytes.map { MetricUnit.bytes.format(Double($0)) } ?? "unknown",
            "snapshots": repository.snapshotCount.map(String.init) ?? "unknown",
            "status_error": repository.statusError, "has_status_error": repository.statusError != nil,
            "checked": repository.checkAt.map { DisplayTime.text($0) },
            "check_ok": repository.checkOK == true, "check_failed": repository.checkOK == false, "check_message": repository.checkMessage,
            "never_checked": repository.checkAt == nil,
        ]
    }

    // MARK: plans

    func loadPlan(_ context: StewardRequestContext) throws -> BackupPlan {
        guard let id = context.parameters.get("id", as: Int64.self), let plan = try store.plan(id: id) else {
            throw HTTPError(.notFound, message: "backup plan \(context.parameters.get("id") ?? "") does not exist")
        }
        return plan
    }

    @Sendable func showPlan(request: Request, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        let repository = try store.repository(id: plan.repositoryID)
        let host = try service.hosts.host(id: plan.hostID)
        var snapshots: [ViewNode] = []
        var snapshotError: String?
        if let repository {
            do {
                snapshots = try await service.snapshots(repository, plan: plan).map { snapshot in
                    ViewNode([
                        "id": snapshot.id, "short_id": snapshot.shortID, "time": snapshot.time, "hostname": snapshot.hostname,
                        "repository_id": repository.id,
                    ])
                }
            } catch {
                snapshotError = String(describing: error)
            }
        }
        let runs = try store.runs(planID: plan.id, limit: 30).map { run in ViewNode(Self.runValues(run)) }
        let timing = try store.timing(of: plan)
        let subset = plan.verifyReadDataSubset.isEmpty ? "" : ", reading \(plan.verifyReadDataSubset) of the data"
        let verify: String = timing.verify.map { "\($0.cron) (\($0.timeZone))" + subset } ?? "off"
        let prune: String = timing.prune.map { "\($0.cron) (\($0.timeZone))" } ?? "off"
        let backup =
            "\(timing.backup.cron) (\(timing.backup.timeZone), jitter \(timing.backup.jitterSeconds) s, catch-up \(timing.backup.catchUp.rawValue))"
        var values = try planValues(plan)
        values.merge([
            "host": host?.name, "host_id": plan.hostID, "repository": repository?.name, "repository_id": plan.repositoryID,
            "excludes": plan.excludes.joined(separator: ", "), "has_excludes": !plan.excludes.isEmpty,
            "retention": plan.retention.keepsEverything ? "keep every snapshot" : plan.retention.resticFlags.joined(separator: " "),
            "prune_after_run": plan.pruneAfterRun,
            "pre_hook": plan.preHook.map(JobContext.quoteForDisplay).joined(separator: " "), "has_pre_hook": !plan.preHook.isEmpty,
            "post_hook": plan.postHook.map(JobContext.quoteForDisplay).joined(separator: " "), "has_post_hook": !plan.postHook.isEmpty,
            "backup_schedule": backup, "verify_schedule": verify, "prune_schedule": prune,
        ]) { _, new in new }
        return area.pages.page(
            "backups/plan", title: "Backup plan: \(plan.name)", section: "backups",
            data: [
                "plan": ViewNode(values), "runs": runs, "no_runs": runs.isEmpty, "snapshots": snapshots,
                "no_snapshots": snapshots.isEmpty && snapshotError == nil,
                "snapshot_error": snapshotError as Any, "has_snapshot_error": snapshotError != nil,
                "operator": context.identity?.permissions.contains(.operate) ?? false,
            ], request: request, context: context)
    }

    static func runValues(_ run: BackupStore.Run) -> [String: Any?] {
        var summary = run.detail ?? ""
        if let snapshot = run.snapshotID {
            summary =
                "snapshot \(snapshot): \(run.filesNew ?? 0) new, \(run.filesChanged ?? 0) changed files, "
                + "\(MetricUnit.bytes.format(Double(run.bytesAdded ?? 0))) added" + (run.removedSnapshots.map { ", \($0) old removed" } ?? "")
        }
        return [
            "job_id": run.jobID, "kind": run.kind, "state": run.jobState.rawValue, "started": DisplayTime.text(run.startedAt),
            "duration": run.finishedAt.map { DurationText.format(seconds: Double($0 - run.startedAt) / 1000) } ?? "",
            "summary": summary,
        ]
    }

    @Sendable func newPlan(request: Request, context: StewardRequestContext) async throws -> Response {
        var plan = BackupPlan()
        plan.hostID = try service.hosts.host(named: "localhost")?.id ?? 0
        plan.retention = RetentionPolicy(last: 3, daily: 7, weekly: 4, monthly: 12)
        return try planForm(plan, timing: BackupPlanTiming(), errors: [:], preview: nil, request: request, context: context)
    }

    @Sendable func editPlan(request: Request, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        return try planForm(plan, timing: try store.timing(of: plan), errors: [:], preview: nil, request: request, context: context)
    }

    @Sendable func createPlan(request: Request, context: StewardRequestContext) async throws -> Response {
        try await submitPlan(BackupPlan(), timing: BackupPlanTiming(), request: request, context: context)
    }

    @Sendable func savePlan(request: Request, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        return try await submitPlan(plan, timing: try store.timing(of: plan), request: request, context: context)
    }

    /// Save, or with intent=preview show what the retention policy would keep and remove, without saving.
    func submitPlan(_ base: BackupPlan, timing baseTiming: BackupPlanTiming, request: Request, context: StewardRequestContext) async throws
        -> Response
    {
        let form = try await FormBody.read(request, context: context)
        var (plan, timing, errors) = try BackupInput(form: form, checkboxes: ["prune_after_run", "paused"]).apply(
            to: base, timing: baseTiming, hosts: service.hosts)
        if form["intent"] == "preview" {
            errors.merge(plan.retention.problems()) { first, _ in first }
            var preview: [String: Any] = [:]
            if errors.isEmpty, base.id != 0, let repository = try store.repository(id: base.repositoryID) {
                do {
                    let result = try await service.previewRetention(repository, plan: base, policy: plan.retention)
                    preview = [
                        "kept": result.kept, "removed": result.removed, "empty": result.items.isEmpty,
                        "items": result.items.map {
                            ViewNode(["short_id": $0.shortID, "time": $0.time, "keep": $0.keep, "reasons": $0.reasons.joined(separator: ", ")])
                        },
                    ]
                } catch {
                    preview = ["error": String(describing: error), "has_error": true]
                }
            } else if base.id == 0 {
                preview = ["empty": true]
            }
            return try planForm(plan, timing: timing, errors: errors, preview: preview, request: request, context: context)
        }
        if errors.isEmpty {
            do {
                let saved = try await service.save(plan, timing: timing, by: context.actor, isAdmin: context.isAdmin, now: Date())
                return area.pages.redirect(to: "/backups/plans/\(saved.id)", flash: Flash(.success, "Backup plan \"\(saved.name)\" saved."))
            } catch let problem as Problem {
                errors = problem.errors ?? ["name": problem.detail]
            }
        }
        return try planForm(plan, timing: timing, errors: errors, preview: nil, request: request, context: context, status: .unprocessableContent)
    }

    func planForm(
        _ plan: BackupPlan, timing: BackupPlanTiming, errors: [String: String], preview: [String: Any]?, request: Request,
        context: StewardRequestContext,
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let r = plan.retention
        func number(_ value: Int?) -> String { value.map(String.init) ?? "" }
        let hosts = try service.hosts.all().map { ViewNode(["id": $0.id, "name": $0.name, "selected": $0.id == plan.hostID]) }
        let repositories = try store.repositories().map { ViewNode(["id": $0.id, "name": $0.name, "selected": $0.id == plan.repositoryID]) }
        let form: [String: Any] = [
            "id": plan.id, "is_new": plan.id == 0, "name": plan.name, "paths": plan.paths.joined(separator: "\n"),
            "excludes": plan.excludes.joined(separator: "\n"),
            "keep_last": number(r.last), "keep_hourly": number(r.hourly), "keep_daily": number(r.daily), "keep_weekly": number(r.weekly),
            "keep_monthly": number(r.monthly), "keep_yearly": number(r.yearly), "keep_within": r.within, "prune_after_run": plan.pruneAfterRun,
            "pre_hook": plan.preHook.joined(separator: "\n"), "post_hook": plan.postHook.joined(separator: "\n"),
            "verify_read_data_subset": plan.verifyReadDataSubset, "alert_after_hours": String(plan.alertAfterHours), "paused": plan.paused,
            "backup_cron": timing.backup.cron, "backup_time_zone": timing.backup.timeZone,
            "backup_jitter_seconds": String(timing.backup.jitterSeconds),
            "catch_up_one": timing.backup.catchUp == .one, "verify_cron": timing.verify?.cron ?? "", "prune_cron": timing.prune?.cron ?? "",
            "action": plan.id == 0 ? "/backups/plans" : "/backups/plans/\(plan.id)",
        ]
        return area.pages.page(
            "backups/plan_form", title: plan.id == 0 ? "New backup plan" : "Edit backup plan: \(plan.name)", section: "backups",
            data: [
                "form": ViewNode(form), "hosts": hosts, "repositories": repositories, "no_repositories": repositories.isEmpty,
                "errors": ViewNode(errors), "has_errors": !errors.isEmpty,
                "error_list": errors.keys.sorted().map { ViewNode(["field": $0, "message": errors[$0]!]) },
                "preview": preview.map { ViewNode($0) } as Any, "has_preview": preview != nil,
            ], request: request, context: context, status: status)
    }

    @Sendable func deletePlan(request: Request, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        let form = try await FormBody.read(request, context: context)
        guard plan.builtin == nil else {
            return area.pages.redirect(to: "/backups/plans/\(plan.id)", flash: Flash(.error, "The self-backup plan is built in; pause it instead."))
        }
        guard form["confirm"] == plan.name else {
            return area.pages.redirect(
                to: "/backups/plans/\(plan.id)", flash: Flash(.error, "Not deleted: type the plan's name, \(plan.name), to confirm."))
        }
        try await service.delete(plan, by: context.actor, isAdmin: context.isAdmin, now: Date())
        return area.pages.redirect(
            to: "/backups", flash: Flash(.success, "Plan \"\(plan.name)\" deleted. Its snapshots are still in the repository."))
    }

    func start(_ action: String, context: StewardRequestContext) async throws -> Response {
        let plan = try loadPlan(context)
        do {
            let job = try await BackupAPI.start(action, plan: plan, service: service, area: area, actor: context.actor, isAdmin: context.isAdmin)
            return area.pages.redirect(to: "/jobs/\(job.id)", flash: Flash(.success, "Started \"\(job.title)\" as job \(job.id)."))
        } catch let problem as Problem {
            return area.pages.redirect(to: "/backups/plans/\(plan.id)", flash: Flash(.warning, problem.detail))
        }
    }

    func setPaused(_ paused: Bool, context: StewardRequestContext) async throws -> Response {
        var plan = try loadPlan(context)
        plan.paused = paused
        _ = try await service.save(plan, timing: try store.timing(of: plan), by: context.actor, isAdmin: context.isAdmin, now: Date())
        return area.pages.redirect(
            to: "/backups/plans/\(plan.id)",
            flash: Flash(.success, paused ? "Plan paused: no scheduled runs or alerts until it is resumed. Run now still works." : "Plan resumed."))
    }

    // MARK: repositories

    func loadRepository(_ context: StewardRequestContext) throws -> BackupRepository {
        guard let id = context.parameters.get("id", as: Int64.self), let repository = try store.repository(id: id) else {
            throw HTTPError(.notFound, message: "backup repository \(context.parameters.get("id") ?? "") does not exist")
        }
        return repository
    }

    @Sendable func newRepository(request: Request, context: StewardRequestContext) async throws -> Response {
        try repositoryForm(["kind": "local", "host": "localhost", "mode": "init"], errors: [:], request: request, context: context)
    }

    func repositoryForm(
        _ values: [String: String], errors: [String: String], request: Request, context: StewardRequestContext, status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let hosts = try service.hosts.all().map { ViewNode(["name": $0.name, "selected": $0.name == values["host"]]) }
        return area.pages.page(
            "backups/repository_form", title: "New backup repository", section: "backups",
            data: [
                "form": ViewNode([
                    "name": values["name"] ?? "", "path": values["path"] ?? "", "sftp": values["kind"] == "sftp",
                    "import": values["mode"] == "import",
                ]),
                "hosts": hosts, "errors": ViewNode(errors), "has_errors": !errors.isEmpty,
                "error_list": errors.keys.sorted().map { ViewNode(["field": $0, "message": errors[$0]!]) },
            ], request: request, context: context, status: status)
    }

    @Sendable func createRepository(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        do {
            let (repository, password, initialise) = try BackupAPI.repositoryInput(BackupInput(form: form, checkboxes: []), hosts: service.hosts)
            let saved = try await service.addRepository(repository, password: password, initialise: initialise, by: context.actor, now: Date())
            return area.pages.redirect(
                to: "/backups/repositories/\(saved.id)",
                flash: Flash(.success, "Repository \"\(saved.name)\" \(initialise ? "created" : "imported")."))
        } catch let problem as Problem {
            var values = form.values
            values["password"] = nil
            return try repositoryForm(
                values, errors: problem.errors ?? ["name": problem.detail], request: request, context: context, status: .unprocessableContent)
        }
    }

    @Sendable func showRepository(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let hosts = Dictionary(uniqueKeysWithValues: try service.hosts.all().map { ($0.id, $0.name) })
        let plans = Dictionary(uniqueKeysWithValues: try store.plans().map { ($0.id, $0.name) })
        var snapshots: [ViewNode] = []
        var snapshotError: String?
        do {
            snapshots = try await service.snapshots(repository).map { snapshot in
                ViewNode([
                    "id": snapshot.id, "short_id": snapshot.shortID, "time": snapshot.time, "hostname": snapshot.hostname,
                    "paths": snapshot.paths.joined(separator: ", "), "plan": snapshot.planID.flatMap { plans[$0] } ?? "",
                    "repository_id": repository.id,
                ])
            }
        } catch {
            snapshotError = String(describing: error)
        }
        let runs = try store.runs(repositoryID: repository.id, limit: 30).map { ViewNode(Self.runValues($0)) }
        return area.pages.page(
            "backups/repository", title: "Repository: \(repository.name)", section: "backups",
            data: [
                "repository": ViewNode(repositoryValues(repository, hosts: hosts)), "snapshots": snapshots,
                "no_snapshots": snapshots.isEmpty && snapshotError == nil,
                "snapshot_error": snapshotError as Any, "has_snapshot_error": snapshotError != nil, "runs": runs, "no_runs": runs.isEmpty,
                "operator": context.identity?.permissions.contains(.operate) ?? false,
                "admin": context.identity?.permissions.contains(.admin) ?? false,
            ], request: request, context: context)
    }

    @Sendable func changePassword(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let form = try await FormBody.read(request, context: context)
        do {
            try await BackupAPI.changePassword(service, repository, password: form["password"] ?? "", by: context.actor)
            return area.pages.redirect(
                to: "/backups/repositories/\(repository.id)", flash: Flash(.success, "Password accepted by restic and stored."))
        } catch let problem as Problem {
            return area.pages.redirect(
                to: "/backups/repositories/\(repository.id)",
                flash: Flash(.error, "Password not stored: \(problem.errors?["password"] ?? problem.detail)"))
        }
    }

    @Sendable func refresh(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        await service.refreshStatus(repository)
        return area.pages.redirect(to: "/backups/repositories/\(repository.id)", flash: Flash(.info, "Status read again."))
    }

    @Sendable func check(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let host = try service.accessHost(repository)
        let job = try await area.runner.enqueue(
            JobRequest(
                kind: BackupStore.checkKind, title: "Verify repository: \(repository.name)", params: BackupCheckJob(repositoryID: repository.id).json,
                host: host.name,
                startedBy: context.actor.actor, reason: "check now by \(context.actor.actor)", source: context.actor.source))
        return area.pages.redirect(to: "/jobs/\(job.id)", flash: Flash(.success, "Started \"\(job.title)\" as job \(job.id)."))
    }

    @Sendable func deleteRepository(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let form = try await FormBody.read(request, context: context)
        guard repository.builtin == nil, form["confirm"] == repository.name else {
            return area.pages.redirect(
                to: "/backups/repositories/\(repository.id)",
                flash: Flash(
                    .error,
                    repository.builtin != nil ? "The self-backup repository is built in." : "Not removed: type the repository's name to confirm."))
        }
        do {
            try store.deleteRepository(repository, by: context.actor, now: Date())
        } catch let problem as Problem {
            return area.pages.redirect(to: "/backups/repositories/\(repository.id)", flash: Flash(.error, problem.detail))
        }
        return area.pages.redirect(
            to: "/backups", flash: Flash(.success, "Repository \"\(repository.name)\" removed from Steward; its data was not touched."))
    }

    // MARK: snapshots

    @Sendable func browse(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let snapshot = context.parameters.get("snapshot") ?? ""
        let query = FormBody(query: request)
        let path = query["path"] ?? "/"
        let planID = query["plan"].flatMap { Int64($0) }
        try service.requireReadable(path, isAdmin: context.isAdmin)
        var entries: [ViewNode] = []
        var failure: String?
        do {
            entries = try await service.browse(repository, snapshot: snapshot, directory: path).map { entry in
                ViewNode([
                    "name": entry.name, "path": entry.path, "is_dir": entry.type == "dir", "is_file": entry.type == "file", "type": entry.type,
                    "size": entry.size.map { MetricUnit.bytes.format(Double($0)) } ?? "", "mtime": entry.mtime, "permissions": entry.permissions,
                    "query": Self.query(entry.path),
                ])
            }
        } catch let problem as Problem {
            failure = problem.errors?.values.sorted().joined(separator: "; ") ?? problem.detail
        } catch {
            failure = String(describing: error)
        }
        var crumbs: [ViewNode] = [ViewNode(["name": "root", "query": Self.query("/")])]
        var walked = ""
        for part in path.split(separator: "/") {
            walked += "/" + part
            crumbs.append(ViewNode(["name": String(part), "query": Self.query(walked)]))
        }
        let plan = try planID.flatMap { try store.plan(id: $0) }
        let hosts = try service.hosts.all().map { ViewNode(["name": $0.name, "selected": $0.id == (plan?.hostID ?? repository.hostID)]) }
        return area.pages.page(
            "backups/snapshot", title: "Snapshot \(snapshot.prefix(8))", section: "backups",
            data: [
                "repository": ViewNode(["id": repository.id, "name": repository.name]), "snapshot": snapshot, "path": path, "entries": entries,
                "empty": entries.isEmpty && failure == nil, "failure": failure as Any, "has_failure": failure != nil, "crumbs": crumbs,
                "plan_id": planID as Any, "hosts": hosts, "operator": context.identity?.permissions.contains(.operate) ?? false,
            ], request: request, context: context)
    }

    static func query(_ path: String) -> String {
        path.addingPercentEncoding(withAllowedCharacters: .urlQueryValueAllowed) ?? ""
    }

    @Sendable func download(request: Request, context: StewardRequestContext) async throws -> Response {
        try await BackupAPI.fileResponse(
            service, repository: try loadRepository(context), snapshot: context.parameters.get("snapshot") ?? "",
            path: FormBody(query: request)["path"] ?? "", actor: context.actor, isAdmin: context.isAdmin)
    }

    @Sendable func restore(request: Request, context: StewardRequestContext) async throws -> Response {
        let repository = try loadRepository(context)
        let snapshot = context.parameters.get("snapshot") ?? ""
        let form = try await FormBody.read(request, context: context)
        let back =
            "/backups/repositories/\(repository.id)/snapshots/\(snapshot)?path=\(Self.query(form["path"] ?? "/"))"
            + (form["plan"].map { "&plan=\($0)" } ?? "")
        do {
            let restore = try BackupAPI.restoreRequest(
                BackupInput(form: form, checkboxes: []), repository: repository, snapshot: snapshot, service: service)
            let job = try await area.runner.enqueue(try await service.prepareRestore(restore, by: context.actor, isAdmin: context.isAdmin))
            return area.pages.redirect(to: "/jobs/\(job.id)", flash: Flash(.success, "Restore started as job \(job.id)."))
        } catch let problem as Problem {
            let errors = problem.errors ?? [:]
            let message = errors.isEmpty ? problem.detail : errors.keys.sorted().map { errors[$0]! }.joined(separator: "; ")
            return area.pages.redirect(to: back, flash: Flash(.error, "Restore not started: \(message)"))
        }
    }
}
