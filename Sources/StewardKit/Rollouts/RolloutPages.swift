import Foundation
import Hummingbird

/// The rollout pages: the list, the proposal form, and a rollout's page with its plan, approvals, waves and report.
struct RolloutPages {
    let area: AreaContext
    let service: RolloutService

    func addRoutes(to routes: Routes) {
        routes.get("/rollouts", .view, use: list)
        routes.get("/rollouts/new", .operate, use: newForm)
        routes.post("/rollouts", .operate, use: create)
        routes.get("/rollouts/:id", .view, use: show)
        routes.post("/rollouts/:id/approve", .approve) { request, context in try await self.decide(true, request: request, context: context) }
        routes.post("/rollouts/:id/deny", .approve) { request, context in try await self.decide(false, request: request, context: context) }
        for action in ["pause", "resume", "abort"] {
            routes.post("/rollouts/:id/\(action)", .operate) { request, context in try await self.control(action, context: context) }
        }
        routes.post("/rollouts/:id/rollback", .operate, use: rollback)
        routes.get("/rollouts/:id/edit", .operate, use: editForm)
        routes.post("/rollouts/:id/edit", .operate, use: edit)
        routes.post("/rollouts/:id/replan", .operate, use: replan)
    }

    func id(_ context: StewardRequestContext) throws -> Int64 {
        guard let id = context.parameters.get("id", as: Int64.self), try service.rollout(id: id) != nil else {
            throw HTTPError(.notFound, message: "rollout \(context.parameters.get("id") ?? "") does not exist")
        }
        return id
    }

    @Sendable func list(request: Request, context: StewardRequestContext) async throws -> Response {
        let rows = try service.all().map { rollout in
            ViewNode([
                "id": rollout.id, "title": rollout.title, "what": rollout.what.rawValue, "state": rollout.state.rawValue,
                "state_label": rollout.state.rawValue.replacingOccurrences(of: "_", with: " "), "detail": rollout.stateDetail,
                "requested_by": rollout.requestedBy, "created": DisplayTime.text(rollout.createdAt),
            ])
        }
        return area.pages.page(
            "rollouts/list", title: "Rollouts", section: "rollouts",
            data: ["rollouts": rows, "empty": rows.isEmpty, "operator": context.identity?.permissions.contains(.operate) ?? false], request: request,
            context: context)
    }

    /// The proposal form; other pages prefill what, packages and targets through the query (the fleet packages view
    /// links "install on hosts" here). Prefilled text is only shown in the form: nothing is saved until it is sent.
    @Sendable func newForm(request: Request, context: StewardRequestContext) async throws -> Response {
        var values = ["what": "security", "canary": "1", "wave_size": "1", "approvals_required": "1", "expires_hours": "24", "settle_seconds": "60"]
        let query = QueryInput(request).query
        if let what = query["what"].flatMap(Rollout.What.init(rawValue:)) { values["what"] = what.rawValue }
        // Too long to be a list someone meant is left out, not cut (a cut name could name another host).
        for key in ["packages", "targets", "title"] { if let text = query[key], text.count <= 20_000 { values[key] = text } }
        return try form(values: values, errors: [:], request: request, context: context)
    }

    func form(
        values: [String: String], errors: [String: String], request: Request, context: StewardRequestContext, status: HTTPResponse.Status = .ok,
        editing: Rollout? = nil
    ) throws -> Response {
        let windows = try MaintenanceWindowStore(database: service.database).all().map {
            ViewNode(["id": $0.id, "name": $0.name, "selected": String($0.id) == values["window"]])
        }
        var view: [String: Any] = values
        for what in Rollout.What.allCases { view["what_\(what.rawValue)"] = values["what"] == what.rawValue }
        for reboot in Rollout.Reboot.allCases { view["reboot_\(reboot.rawValue)"] = values["reboot"] == reboot.rawValue }
        view["percent"] = values["wave_kind"] == "percent"
        view["form_action"] = editing.map { "/rollouts/\($0.id)/edit" } ?? "/rollouts"
        let heading = editing.map { "Edit rollout #\($0.id)" } ?? "New rollout"
        return area.pages.page(
            "rollouts/new", title: heading, section: "rollouts",
            data: [
                "heading": heading, "editing_id": editing?.id as Any, "editing": editing != nil,
                "form": ViewNode(view), "windows": windows, "errors": ViewNode(errors), "has_errors": !errors.isEmpty,
                "error_list": errors.keys.sorted().map { ViewNode(["field": $0, "message": errors[$0]!]) },
                "playbooks": (try? service.engine.repository.playbooks()) ?? [],
            ], request: request, context: context, status: status)
    }

    /// A saved rollout as the form's values, for editing it.
    static func values(_ rollout: Rollout) -> [String: String] {
        [
            "title": rollout.title, "what": rollout.what.rawValue, "packages": rollout.packages.joined(separator: "\n"),
            "playbook": rollout.playbook, "commit": rollout.playbookCommit, "targets": rollout.targets.joined(separator: ", "),
            "tags": rollout.tags.joined(separator: ", "), "wave_kind": rollout.waveKind.rawValue, "reboot": rollout.reboot.rawValue,
            "check_url": rollout.checkURL, "slos": rollout.slos.joined(separator: ", "), "canary": String(rollout.canary),
            "wave_size": String(rollout.waveSize),
            "pause_seconds": String(rollout.pauseSeconds), "max_failure_percent": String(rollout.maxFailurePercent),
            "approvals_required": String(rollout.approvalsRequired), "settle_seconds": String(rollout.settleSeconds),
            "expires_hours": String(max(1, Int((rollout.expiresAt - EpochMilliseconds.from(Date()) + 3_599_999) / 3_600_000))),
            "window": rollout.windowID.map(String.init) ?? "",
        ]
    }

    @Sendable func create(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var rollout = Rollout()
        rollout.expiresAt = EpochMilliseconds.from(Date()) + 24 * 3_600_000
        var errors = RolloutInput(form: form).apply(to: &rollout)
        if errors.isEmpty {
            do {
                let (saved, _) = try await service.save(rollout, by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
                return area.pages.redirect(
                    to: "/rollouts/\(saved.id)", flash: Flash(.success, "Rollout #\(saved.id) proposed; Steward is planning it in check mode."))
            } catch let problem as Problem {
                errors = problem.errors ?? ["title": problem.detail]
            }
        }
        return try self.form(values: form.values, errors: errors, request: request, context: context, status: .unprocessableContent)
    }

    func editable(_ context: StewardRequestContext) throws -> Rollout {
        let rollout = try service.rollout(id: try id(context))!
        guard rollout.state.isEditable else {
            throw HTTPError(.conflict, message: "rollout #\(rollout.id) is \(rollout.state.rawValue); only a rollout that has not started can change")
        }
        return rollout
    }

    @Sendable func editForm(request: Request, context: StewardRequestContext) async throws -> Response {
        let rollout = try editable(context)
        return try form(values: Self.values(rollout), errors: [:], request: request, context: context, editing: rollout)
    }

    /// Saving an edit makes a new revision: it is planned again and approvals given to the old one stop counting.
    @Sendable func edit(request: Request, context: StewardRequestContext) async throws -> Response {
        var rollout = try editable(context)
        let form = try await FormBody.read(request, context: context)
        var errors = RolloutInput(form: form).apply(to: &rollout)
        if errors.isEmpty {
            do {
                let (saved, job) = try await service.save(rollout, by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
                return area.pages.redirect(
                    to: "/rollouts/\(saved.id)",
                    flash: Flash(
                        .success,
                        "Saved as revision \(saved.revision); Steward is planning it again (job \(job.id)) and earlier approvals no longer count."))
            } catch let problem as Problem {
                errors = problem.errors ?? ["title": problem.detail]
            }
        }
        return try self.form(values: form.values, errors: errors, request: request, context: context, status: .unprocessableContent, editing: rollout)
    }

    /// Plan again unchanged, for instance after the hosts' package lists moved on or a plan failed on a host that is
    /// back: a new revision, so approvals of the old plan do not carry over.
    @Sendable func replan(request: Request, context: StewardRequestContext) async throws -> Response {
        let id = try id(context)
        do {
            let rollout = try editable(context)
            let (saved, job) = try await service.save(rollout, by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
            return area.pages.redirect(
                to: "/rollouts/\(id)",
                flash: Flash(.success, "Planning revision \(saved.revision) (job \(job.id)); earlier approvals no longer count."))
        } catch let error as HTTPError {
            return area.pages.redirect(to: "/rollouts/\(id)", flash: Flash(.error, error.body ?? "this rollout cannot be planned again"))
        } catch let problem as Problem {
            return area.pages.redirect(to: "/rollouts/\(id)", flash: Flash(.error, problem.detail))
        }
    }

    @Sendable func show(request: Request, context: StewardRequestContext) async throws -> Response {
        let rollout = try service.rollout(id: try id(context))!
        let plan = try service.plan(rollout.id).map { item in
            ViewNode([
                "host": item.host, "problem": item.problem, "has_problem": !item.problem.isEmpty, "diff": item.diff, "has_diff": !item.diff.isEmpty,
                "none": item.changes.isEmpty && item.diff.isEmpty && item.problem.isEmpty,
                "changes": item.changes.map {
                    ViewNode([
                        "package": $0.package, "current": $0.current.isEmpty ? "new" : $0.current,
                        "candidate": $0.candidate.isEmpty ? "removed" : $0.candidate, "security": $0.security,
                    ])
                },
            ])
        }
        let approvals = try service.approvals(rollout.id).map { approval in
            ViewNode([
                "actor": approval.actor, "decision": approval.decision, "reason": approval.reason, "has_reason": !approval.reason.isEmpty,
                "revision": approval.revision, "current": approval.revision == rollout.revision,
                "at": DisplayTime.text(approval.at), "urgent": approval.urgent,
            ])
        }
        let waves = try service.waves(rollout.id).map { wave in
            ViewNode([
                "number": wave.number, "hosts": wave.hosts.joined(separator: ", "), "job_id": wave.jobID as Any, "state": wave.state,
                "gate": wave.gate,
                "budget": wave.budgets.sorted { $0.key < $1.key }.map { name, budget in
                    "\(name): \(SLOController.percent(budget.before))"
                        + (budget.after.value.map { " → \(SLOController.percent($0))" } ?? "")
                        + (budget.burned.value.map { " (burned \(SLOController.percent($0)))" } ?? "")
                }.joined(separator: "; "),
            ])
        }
        let results = try service.results(rollout.id).map { result in
            ViewNode([
                "host": result.host, "wave": result.wave, "status": result.status, "rebooted": result.rebooted, "detail": result.detail,
                "changes": result.changes.map { "\($0.package) \($0.from.isEmpty ? "new" : $0.from) → \($0.to.isEmpty ? "removed" : $0.to)" }.joined(
                    separator: ", "),
            ])
        }
        let permissions = context.identity?.permissions ?? []
        let stale = try service.planIsStale(rollout)
        let heldWaves = try service.waves(rollout.id).filter { $0.state == "pending" && $0.gate.hasPrefix(RolloutService.budgetHoldPrefix) }
        let budgetHold = rollout.state == .paused && !heldWaves.isEmpty
        return area.pages.page(
            "rollouts/show", title: "Rollout #\(rollout.id)", section: "rollouts",
            data: [
                "rollout": ViewNode([
                    "id": rollout.id, "title": rollout.title, "what": rollout.what.rawValue, "state": rollout.state.rawValue,
                    "state_label": rollout.state.rawValue.replacingOccurrences(of: "_", with: " "), "detail": rollout.stateDetail,
                    "requested_by": rollout.requestedBy, "revision": rollout.revision,
                    "targets": (rollout.targets + rollout.tags.map { "tag:" + $0 }).joined(separator: ", "),
                    "packages": rollout.packages.joined(separator: ", "), "has_packages": !rollout.packages.isEmpty, "playbook": rollout.playbook,
                    "waves_text":
                        "canary \(rollout.canary), then \(rollout.waveSize)\(rollout.waveKind == .percent ? " %" : " host(s)") per wave, \(rollout.pauseSeconds) s apart, stop above \(rollout.maxFailurePercent) % failures",
                    "reboot": rollout.reboot.rawValue.replacingOccurrences(of: "_", with: " "), "approvals_required": rollout.approvalsRequired,
                    "expires": DisplayTime.text(rollout.expiresAt), "settle": rollout.settleSeconds, "check_url": rollout.checkURL,
                    "has_check_url": !rollout.checkURL.isEmpty, "plan_job_id": rollout.planJobID as Any, "stale": stale,
                ]),
                "plan": plan, "no_plan": plan.isEmpty, "approvals": approvals, "waves": waves, "results": results, "has_results": !results.isEmpty,
                "can_decide": try permissions.contains(.approve) && rollout.state == .awaitingApproval && context.actor.actor != rollout.requestedBy
                    && !service.isAuthor(rollout.id, actor: context.actor.actor),
                "is_requester": context.actor.actor == rollout.requestedBy && rollout.state == .awaitingApproval,
                "can_pause": permissions.contains(.operate) && (rollout.state == .running || rollout.state == .approved),
                "can_resume": permissions.contains(.operate) && rollout.state == .paused,
                "budget_hold": budgetHold,
                "can_override": try permissions.contains(.approve) && budgetHold
                    && context.actor.actor != rollout.requestedBy && !service.isAuthor(rollout.id, actor: context.actor.actor),
                "slos": "those covering each wave's hosts" + (rollout.slos.isEmpty ? "" : ", and " + rollout.slos.joined(separator: ", ")),
                "can_abort": permissions.contains(.operate) && !rollout.state.isFinished,
                "can_edit": permissions.contains(.operate) && rollout.state.isEditable,
                "can_rollback": permissions.contains(.operate) && rollout.what != .playbook && !results.isEmpty
                    && (rollout.state.isFinished || rollout.state == .paused),
                "playbook_rollback": rollout.what == .playbook && !results.isEmpty,
            ], request: request, context: context)
    }

    func decide(_ approve: Bool, request: Request, context: StewardRequestContext) async throws -> Response {
        let id = try id(context)
        let form = try await FormBody.read(request, context: context)
        do {
            if approve {
                _ = try await service.approve(
                    id, by: context.actor, reason: form["reason"] ?? "", urgent: form["urgent"] == "on", isAdmin: context.isAdmin)
            } else {
                _ = try await service.deny(id, by: context.actor, reason: form["reason"] ?? "")
            }
            return area.pages.redirect(
                to: "/rollouts/\(id)", flash: Flash(.success, approve ? "Approved." : "Denied; the requester sees your reason."))
        } catch let problem as Problem {
            return area.pages.redirect(to: "/rollouts/\(id)", flash: Flash(.error, problem.errors?["reason"] ?? problem.detail))
        }
    }

    func control(_ action: String, context: StewardRequestContext) async throws -> Response {
        let id = try id(context)
        do {
            _ = try await service.control(id, action: action, by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
            return area.pages.redirect(to: "/rollouts/\(id)", flash: Flash(.success, "Rollout \(action == "abort" ? "aborted" : action + "d")."))
        } catch let problem as Problem {
            return area.pages.redirect(to: "/rollouts/\(id)", flash: Flash(.error, problem.detail))
        }
    }

    @Sendable func rollback(request: Request, context: StewardRequestContext) async throws -> Response {
        let id = try id(context)
        do {
            let (saved, _) = try await service.proposeRollback(
                of: try service.rollout(id: id)!, by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
            return area.pages.redirect(
                to: "/rollouts/\(saved.id)",
                flash: Flash(.success, "Rollback proposed as rollout #\(saved.id); its plan shows whether the old versions can be installed."))
        } catch let problem as Problem {
            return area.pages.redirect(to: "/rollouts/\(id)", flash: Flash(.error, problem.detail))
        }
    }
}
