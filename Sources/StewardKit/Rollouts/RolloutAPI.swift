import Foundation
import Hummingbird

/// `/api/v1/rollouts`: propose, read (with plan, approvals, waves and results), change, approve or deny, and
/// pause, resume or abort.
struct RolloutAPI {
    let area: AreaContext
    let service: RolloutService

    func addRoutes(to routes: Routes) {
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "rollout id")
        let api = area.docs.routes(routes, tag: "rollouts")
        api(.get, "/api/v1/rollouts", .view, "listRollouts", "Rollouts, newest first", schema: "RolloutList") { _, _ in
            try APIJSON.response(CursorPage(items: try service.all().map(RolloutSummaryResource.init), next: Nullable(nil)))
        }
        api(
            .post, "/api/v1/rollouts", .operate, "createRollout", "Propose a rollout; Steward plans it in check mode before anyone can approve it",
            request: "RolloutCreate", status: 201, schema: "RolloutCreated", use: create)
        api(
            .get, "/api/v1/rollouts/{id}", .view, "getRollout", "A rollout with its plan, approvals, waves and per-host results", parameters: [id],
            schema: "Rollout"
        ) { _, context in try APIJSON.response(try RolloutResource(try rollout(context), service: service)) }
        api(
            .patch, "/api/v1/rollouts/{id}", .operate, "updateRollout",
            "Change a rollout that has not started: it is planned again and its approvals reset", parameters: [id], request: "RolloutInput",
            schema: "Rollout", use: update)
        api(
            .post, "/api/v1/rollouts/{id}/approve", .approve, "approveRollout", "Approve (an approver other than the requester)", parameters: [id],
            request: "RolloutApproval", schema: "Rollout"
        ) { request, context in try await self.decide(true, request: request, context: context) }
        api(
            .post, "/api/v1/rollouts/{id}/deny", .approve, "denyRollout", "Deny, with a required reason", parameters: [id], request: "RolloutDenial",
            schema: "Rollout"
        ) { request, context in try await self.decide(false, request: request, context: context) }
        for action in ["pause", "resume", "abort"] {
            api(
                .post, "/api/v1/rollouts/{id}/\(action)", .operate, "\(action)Rollout", "\(action.capitalized) the rollout", parameters: [id],
                schema: "Rollout"
            ) { _, context in
                let rollout = try await service.control(
                    try self.id(context), action: action, by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
                return try APIJSON.response(try RolloutResource(rollout, service: service))
            }
        }
        api(
            .post, "/api/v1/rollouts/{id}/rollback", .operate, "rollbackRollout",
            "Propose the reverse of a finished rollout, where the package manager can downgrade", parameters: [id], status: 201,
            schema: "RolloutCreated"
        ) { _, context in
            let (saved, job) = try await service.proposeRollback(
                of: try rollout(context), by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
            return try APIJSON.response(
                RolloutCreatedResource(rollout: try RolloutResource(saved, service: service), planJob: JobResource(job)), status: .created)
        }
    }

    func id(_ context: StewardRequestContext) throws -> Int64 {
        guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("rollout \(context.parameters.get("id") ?? "")") }
        return id
    }

    func rollout(_ context: StewardRequestContext) throws -> Rollout {
        guard let rollout = try service.rollout(id: try id(context)) else { throw Problem.notFound("rollout \(context.parameters.get("id") ?? "")") }
        return rollout
    }

    @Sendable func create(request: Request, context: StewardRequestContext) async throws -> Response {
        let input = try await APIInputDecoding.decode(RolloutInput.self, from: request)
        var rollout = Rollout()
        rollout.expiresAt = EpochMilliseconds.from(Date()) + 24 * 3_600_000
        let errors = input.apply(to: &rollout)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let (saved, job) = try await service.save(rollout, by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
        return try APIJSON.response(
            RolloutCreatedResource(rollout: try RolloutResource(saved, service: service), planJob: JobResource(job)), status: .created)
    }

    @Sendable func update(request: Request, context: StewardRequestContext) async throws -> Response {
        var rollout = try rollout(context)
        let input = try await APIInputDecoding.decode(RolloutInput.self, from: request)
        let errors = input.apply(to: &rollout)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let (saved, _) = try await service.save(rollout, by: context.actor, isAdmin: context.isAdmin, jobs: area.runner)
        return try APIJSON.response(try RolloutResource(saved, service: service))
    }

    /// Approve or deny; an empty body is an approval without a reason.
    func decide(_ approve: Bool, request: Request, context: StewardRequestContext) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 1 << 16)
        var input = RolloutDecisionInput()
        if buffer.readableBytes > 0 { input = try APIInputDecoding.decode(RolloutDecisionInput.self, from: Data(buffer.readableBytesView)) }
        var errors: [String: String] = [:]
        var reason = ""
        input.reason.assign(RolloutDecisionInput.CodingKeys.reason.rawValue, &errors) { reason = $0 }
        var urgent = false
        input.urgent.assign(RolloutDecisionInput.CodingKeys.urgent.rawValue, &errors) { urgent = $0 }
        if urgent && !approve { errors["urgent"] = "only an approval can be urgent" }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let rollout =
            approve
            ? try await service.approve(try id(context), by: context.actor, reason: reason, urgent: urgent, isAdmin: context.isAdmin)
            : try await service.deny(try id(context), by: context.actor, reason: reason)
        return try APIJSON.response(try RolloutResource(rollout, service: service))
    }
}
