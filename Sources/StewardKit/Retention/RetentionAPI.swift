import Foundation
import Hummingbird

/// `/api/v1/retention`: policies (read, change with preview and confirmation, take back a pending change), storage
/// figures, legal holds, and enforcement on demand; `/api/v1/jobs/{id}/acknowledge` for failed jobs.
struct RetentionAPI {
    let area: AreaContext
    let service: RetentionService

    func addRoutes(to routes: Routes) {
        let dataClass = APIOperation.Parameter(
            name: "class", location: .path, type: "string", description: DataClass.allCases.map(\.rawValue).joined(separator: ", "))
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "id")
        let api = area.docs.routes(routes, tag: "retention")
        api(
            .get, "/api/v1/retention/policies", .view, "listRetentionPolicies",
            "Each data class's policy in force and any change waiting to take effect", schema: "DataRetentionList"
        ) { _, _ in
            try APIJSON.response(CursorPage(items: try service.policies().map(DataRetentionRecordResource.init), next: Nullable(nil)))
        }
        api(
            .get, "/api/v1/retention/policies/{class}", .view, "getRetentionPolicy", "One data class's policy", parameters: [dataClass],
            schema: "DataRetentionRecord"
        ) { _, context in
            try APIJSON.response(DataRetentionRecordResource(try service.policy(try Self.dataClass(context))))
        }
        api(
            .put, "/api/v1/retention/policies/{class}", .admin, "setRetentionPolicy",
            "Change a policy: it takes effect after the grace window; `confirm` (the class name) is needed when it would delete more than 25 %",
            parameters: [dataClass], request: "DataRetentionInput", schema: "DataRetentionRecord"
        ) { request, context in
            let dataClass = try Self.dataClass(context)
            let input = try await Self.policy(from: request)
            let record = try service.save(dataClass, input.policy, confirm: input.confirm, by: context.actor, now: Date())
            return try APIJSON.response(DataRetentionRecordResource(record))
        }
        api(
            .post, "/api/v1/retention/policies/{class}/preview", .view, "previewRetentionPolicy",
            "What a policy would delete now: rows, bytes, the oldest and newest affected item, per stage", parameters: [dataClass],
            request: "DataRetentionInput", schema: "DataRetentionPreview"
        ) { request, context in
            let dataClass = try Self.dataClass(context)
            let policy = try await Self.policy(from: request).policy
            let errors = policy.problems(for: dataClass)
            guard errors.isEmpty else { throw Problem.invalid(errors) }
            return try APIJSON.response(DataRetentionPreviewResource(try service.preview(dataClass, policy, now: Date())))
        }
        api(
            .delete, "/api/v1/retention/policies/{class}/pending", .admin, "undoRetentionChange", "Take back a change before it takes effect",
            parameters: [dataClass], status: 204, schema: nil
        ) { _, context in
            try service.discardPending(try Self.dataClass(context), by: context.actor, now: Date())
            return Response(status: .noContent)
        }
        api(
            .get, "/api/v1/retention/storage", .view, "getStorage",
            "Rows and bytes on disk per data class, growth per day over the last week, and when the disk fills at that rate (read at most every 5 minutes; `refresh=1` reads them now)",
            schema: "StorageFigures"
        ) { request, _ in
            try APIJSON.response(StorageFiguresResource(try service.storage(now: Date(), fresh: request.uri.queryParameters.get("refresh") != nil)))
        }
        api(.get, "/api/v1/retention/holds", .view, "listLegalHolds", "Legal holds in force", schema: "LegalHoldList") { _, _ in
            try APIJSON.response(CursorPage(items: try service.holds().map(LegalHoldResource.init), next: Nullable(nil)))
        }
        api(
            .post, "/api/v1/retention/holds", .admin, "createLegalHold",
            "Stop all deletion for a host (`host`, or none for every host) and/or a time range (`from`, `to`, RFC 3339), with a reason",
            request: "LegalHoldInput", status: 201, schema: "LegalHold"
        ) { request, context in
            let input = try await APIInputDecoding.decode(LegalHoldInput.self, from: request)
            let created = try service.addHold(
                host: input.host.given, from: input.from.given, to: input.to.given, reason: input.reason.given ?? "", by: context.actor, now: Date())
            guard let saved = try service.holds().first(where: { $0.id == created }) else { throw Problem.notFound("legal hold \(created)") }
            return try APIJSON.response(LegalHoldResource(saved), status: .created)
        }
        api(.delete, "/api/v1/retention/holds/{id}", .admin, "releaseLegalHold", "Release a legal hold", parameters: [id], status: 204, schema: nil) {
            _, context in
            guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("legal hold") }
            try service.releaseHold(id, by: context.actor, now: Date())
            return Response(status: .noContent)
        }
        api(
            .post, "/api/v1/retention/enforce", .admin, "enforceRetention", "Run the Enforce retention schedule's job now", status: 202, schema: "Job"
        ) {
            _, context in
            try APIJSON.response(JobResource(try await Self.enforceNow(area.scheduler, by: context.actor)), status: .accepted)
        }
        api(
            .post, "/api/v1/jobs/{id}/acknowledge", .operate, "acknowledgeJob", "Acknowledge a failed job (its log's retention clock starts)",
            parameters: [id], schema: "JobAcknowledgement"
        ) { _, context in
            guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("job") }
            try service.acknowledge(job: id, by: context.actor, now: Date())
            return try APIJSON.response(JobAcknowledgement(id: id, acknowledged: true))
        }
    }

    static func enforceNow(_ scheduler: Scheduler, by actor: AuditActor) async throws -> Job {
        guard let schedule = try scheduler.store.schedule(named: "Enforce retention") else {
            throw Problem.notFound("the Enforce retention schedule")
        }
        guard let firing = try await scheduler.runNow(id: schedule.id, by: actor), let id = firing.jobID,
            let job = try scheduler.jobs.store.job(id: id)
        else {
            throw Problem(status: .conflict, detail: "retention is already being enforced; see the Jobs page")
        }
        return job
    }

    static func dataClass(_ context: StewardRequestContext) throws -> DataClass {
        let name = context.parameters.get("class") ?? ""
        guard let dataClass = DataClass(rawValue: name) else {
            throw Problem.notFound("data class \(name) (one of \(DataClass.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return dataClass
    }

    /// A policy from a JSON body (the policy's fields, plus an optional `confirm`).
    static func policy(from request: Request) async throws -> RetentionPolicyInput {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        return try RetentionPolicyInput.decode(from: Data(buffer.readableBytesView))
    }
}
