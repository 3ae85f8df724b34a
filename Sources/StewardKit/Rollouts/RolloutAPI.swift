import Foundation
import Hummingbird

/// `/api/v1/rollouts`: propose, read (with plan, approvals, waves and results), change, approve or deny, and
/// pause, resume or abort.
struct RolloutAPI {
    let service: RolloutService
    let jobs: JobRunner
    let docs: APIDocumentation

    func addRoutes(to routes: Routes) {
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "rollout id")
        let add = docs.section("rollouts")
        add(.get, "/api/v1/rollouts", "listRollouts", "Rollouts, newest first", schema: "RolloutList")
        routes.get("/api/v1/rollouts", .view, use: list)
        add(
            .post, "/api/v1/rollouts", "createRollout", "Propose a rollout; Steward plans it in check mode before anyone can approve it",
            request: "RolloutCreate", status: 201, schema: "RolloutCreated")
        routes.post("/api/v1/rollouts", .operate, use: create)
        add(
            .get, "/api/v1/rollouts/{id}", "getRollout", "A rollout with its plan, approvals, waves and per-host results", parameters: [id],
            schema: "Rollout")
        routes.get("/api/v1/rollouts/:id", .view, use: show)
        add(
            .patch, "/api/v1/rollouts/{id}", "updateRollout", "Change a rollout that has not started: it is planned again and its approvals reset",
            parameters: [id], request: "RolloutInput", schema: "Rollout")
        routes.patch("/api/v1/rollouts/:id", .operate, use: update)
        add(
            .post, "/api/v1/rollouts/{id}/approve", "approveRollout", "Approve (an approver other than the requester)", parameters: [id],
            request: "RolloutApproval", schema: "Rollout")
        routes.post("/api/v1/rollouts/:id/approve", .approve) { request, context in try await self.decide(true, request: request, context: context) }
        add(
            .post, "/api/v1/rollouts/{id}/deny", "denyRollout", "Deny, with a required reason", parameters: [id], request: "RolloutDenial",
            schema: "Rollout")
        routes.post("/api/v1/rollouts/:id/deny", .approve) { request, context in try await self.decide(false, request: request, context: context) }
        for action in ["pause", "resume", "abort"] {
            add(
                .post, "/api/v1/rollouts/{id}/\(action)", "\(action)Rollout", "\(action.capitalized) the rollout", parameters: [id],
                schema: "Rollout")
            routes.post("/api/v1/rollouts/:id/\(action)", .operate) { request, context in
                try JSONResponse.make(
                    object: try self.resource(try await service.control(try self.id(context), action: action, by: context.actor, jobs: jobs)))
            }
        }
        add(
            .post, "/api/v1/rollouts/{id}/rollback", "rollbackRollout",
            "Propose the reverse of a finished rollout, where the package manager can downgrade", parameters: [id], status: 201,
            schema: "RolloutCreated")
        routes.post("/api/v1/rollouts/:id/rollback", .operate, use: rollback)
    }

    func id(_ context: StewardRequestContext) throws -> Int64 {
        guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("rollout \(context.parameters.get("id") ?? "")") }
        return id
    }

    @Sendable func list(request: Request, context: StewardRequestContext) async throws -> Response {
        try JSONResponse.make(object: ["items": try service.all().map(summary), "next": NSNull()])
    }

    @Sendable func show(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let rollout = try service.rollout(id: try id(context)) else { throw Problem.notFound("rollout \(context.parameters.get("id") ?? "")") }
        return try JSONResponse.make(object: try resource(rollout))
    }

    @Sendable func create(request: Request, context: StewardRequestContext) async throws -> Response {
        let body = try await JSONResponse.object(from: request, what: "a rollout: title, what, targets, waves, approvals")
        var rollout = Rollout()
        rollout.expiresAt = EpochMilliseconds.from(Date()) + 24 * 3_600_000
        let errors = Self.apply(body, to: &rollout)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let (saved, job) = try await service.save(rollout, by: context.actor, jobs: jobs)
        var object = try resource(saved)
        object["plan_job"] = APIJSON.object(JobResource(job))
        return try JSONResponse.make(object: object, status: .created)
    }

    @Sendable func update(request: Request, context: StewardRequestContext) async throws -> Response {
        guard var rollout = try service.rollout(id: try id(context)) else { throw Problem.notFound("rollout \(context.parameters.get("id") ?? "")") }
        let body = try await JSONResponse.object(from: request, what: "the rollout fields to change")
        let errors = Self.apply(body, to: &rollout)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let (saved, _) = try await service.save(rollout, by: context.actor, jobs: jobs)
        return try JSONResponse.make(object: try resource(saved))
    }

    func decide(_ approve: Bool, request: Request, context: StewardRequestContext) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 1 << 16)
        let body = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]) ?? [:]
        let reason = body["reason"] as? String ?? ""
        let rollout =
            approve
            ? try await service.approve(try id(context), by: context.actor, reason: reason)
            : try await service.deny(try id(context), by: context.actor, reason: reason)
        return try JSONResponse.make(object: try resource(rollout))
    }

    @Sendable func rollback(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let original = try service.rollout(id: try id(context)) else { throw Problem.notFound("rollout \(context.parameters.get("id") ?? "")") }
        let (saved, job) = try await service.proposeRollback(of: original, by: context.actor, jobs: jobs)
        var object = try resource(saved)
        object["plan_job"] = APIJSON.object(JobResource(job))
        return try JSONResponse.make(object: object, status: .created)
    }

    /// Apply the body's fields; returns errors for fields of the wrong type or value.
    static func apply(_ body: [String: Any], to rollout: inout Rollout) -> [String: String] {
        var errors: [String: String] = [:]
        func strings(_ key: String) -> [String]? {
            guard let value = body[key] else { return nil }
            guard let list = value as? [Any] else {
                errors[key] = "must be a list of strings"
                return nil
            }
            return list.map { "\($0)" }
        }
        func int(_ key: String) -> Int? {
            guard let value = body[key] else { return nil }
            guard let number = value as? NSNumber else {
                errors[key] = "must be a whole number"
                return nil
            }
            return number.intValue
        }
        if let title = body["title"] as? String { rollout.title = title.trimmingCharacters(in: .whitespaces) }
        if let text = body["what"] as? String {
            if let what = Rollout.What(rawValue: text) { rollout.what = what } else { errors["what"] = "security, all, packages or playbook" }
        }
        if let packages = strings("packages") { rollout.packages = packages }
        if let playbook = body["playbook"] as? String { rollout.playbook = playbook }
        if let commit = body["commit"] as? String { rollout.playbookCommit = commit }
        if let targets = strings("targets") { rollout.targets = targets }
        if let tags = strings("tags") { rollout.tags = tags }
        if let canary = int("canary") { rollout.canary = canary }
        if let text = body["wave_kind"] as? String {
            if let kind = Rollout.WaveKind(rawValue: text) { rollout.waveKind = kind } else { errors["wave_kind"] = "count or percent" }
        }
        if let size = int("wave_size") { rollout.waveSize = size }
        if let pause = int("pause_seconds") { rollout.pauseSeconds = pause }
        if let share = int("max_failure_percent") { rollout.maxFailurePercent = share }
        if let text = body["reboot"] as? String {
            if let reboot = Rollout.Reboot(rawValue: text) { rollout.reboot = reboot } else { errors["reboot"] = "never, when_required or always" }
        }
        if body["window"] is NSNull { rollout.windowID = nil } else if let window = int("window") { rollout.windowID = Int64(window) }
        if let count = int("approvals_required") { rollout.approvalsRequired = count }
        if let hours = int("expires_hours") {
            if (1...24 * 30).contains(hours) {
                rollout.expiresAt = EpochMilliseconds.from(Date()) + Int64(hours) * 3_600_000
            } else {
                errors["expires_hours"] = "from 1 to 720 hours"
            }
        }
        if let url = body["check_url"] as? String { rollout.checkURL = url }
        if let settle = int("settle_seconds") { rollout.settleSeconds = settle }
        return errors
    }

    func summary(_ rollout: Rollout) -> [String: Any] {
        [
            "id": rollout.id, "title": rollout.title, "what": rollout.what.rawValue, "state": rollout.state.rawValue,
            "state_detail": rollout.stateDetail,
            "requested_by": rollout.requestedBy, "revision": rollout.revision, "created_at": RFC3339.string(milliseconds: rollout.createdAt) ?? "",
            "expires_at": RFC3339.string(milliseconds: rollout.expiresAt) ?? "", "current_wave": rollout.currentWave,
            "link": "/rollouts/\(rollout.id)",
        ]
    }

    func resource(_ rollout: Rollout) throws -> [String: Any] {
        var object = summary(rollout)
        object.merge([
            "packages": rollout.packages, "playbook": rollout.playbook, "commit": rollout.playbookCommit, "targets": rollout.targets,
            "tags": rollout.tags,
            "canary": rollout.canary, "wave_kind": rollout.waveKind.rawValue, "wave_size": rollout.waveSize, "pause_seconds": rollout.pauseSeconds,
            "max_failure_percent": rollout.maxFailurePercent, "reboot": rollout.reboot.rawValue, "window": orNull(rollout.windowID),
            "approvals_required": rollout.approvalsRequired, "check_url": rollout.checkURL, "settle_seconds": rollout.settleSeconds,
            "plan_job_id": orNull(rollout.planJobID), "planned_at": orNull(RFC3339.string(milliseconds: rollout.plannedAt)),
            "plan_stale": try service.planIsStale(rollout), "rollback_of": orNull(rollout.rollbackOf),
            "finished_at": orNull(RFC3339.string(milliseconds: rollout.finishedAt)),
            "plan": try service.plan(rollout.id).map { item -> [String: Any] in
                [
                    "host": item.host, "diff": item.diff, "problem": item.problem,
                    "packages": item.changes.map {
                        ["package": $0.package, "current": $0.current, "candidate": $0.candidate, "origin": $0.origin, "security": $0.security]
                    },
                ]
            },
            "approvals": try service.approvals(rollout.id).map {
                [
                    "revision": $0.revision, "actor": $0.actor, "decision": $0.decision, "reason": $0.reason,
                    "at": RFC3339.string(milliseconds: $0.at) ?? "",
                ]
            },
            "waves": try service.waves(rollout.id).map { wave -> [String: Any] in
                [
                    "number": wave.number, "hosts": wave.hosts, "job_id": orNull(wave.jobID), "state": wave.state, "gate": wave.gate,
                    "started_at": orNull(RFC3339.string(milliseconds: wave.startedAt)),
                    "finished_at": orNull(RFC3339.string(milliseconds: wave.finishedAt)),
                ]
            },
            "results": try service.results(rollout.id).map { result -> [String: Any] in
                [
                    "host": result.host, "wave": result.wave, "status": result.status, "rebooted": result.rebooted, "detail": result.detail,
                    "packages": result.changes.map { ["package": $0.package, "from": $0.from, "to": $0.to] },
                ]
            },
        ]) { _, new in new }
        return object
    }
}
