import Foundation
import Hummingbird

/// `/api/v1/retention`: policies (read, change with preview and confirmation, take back a pending change), storage
/// figures, legal holds, and enforcement on demand; `/api/v1/jobs/{id}/acknowledge` for failed jobs.
struct RetentionAPI {
    let service: RetentionService
    let scheduler: Scheduler
    let docs: APIDocumentation

    func addRoutes(to routes: Routes) {
        let dataClass = APIOperation.Parameter(
            name: "class", location: .path, type: "string", description: DataClass.allCases.map(\.rawValue).joined(separator: ", "))
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "id")
        let add = docs.section("retention")
        add(
            .get, "/api/v1/retention/policies", "listRetentionPolicies", "Each data class's policy in force and any change waiting to take effect",
            schema: "DataRetentionList")
        routes.get("/api/v1/retention/policies", .view) { _, _ in
            try JSONResponse.make(object: ["items": try service.policies().map(Self.resource), "next": NSNull()])
        }
        add(
            .get, "/api/v1/retention/policies/{class}", "getRetentionPolicy", "One data class's policy", parameters: [dataClass],
            schema: "DataRetentionRecord")
        routes.get("/api/v1/retention/policies/:class", .view) { _, context in
            try JSONResponse.make(object: Self.resource(try service.policy(try Self.dataClass(context))))
        }
        add(
            .put, "/api/v1/retention/policies/{class}", "setRetentionPolicy",
            "Change a policy: it takes effect after the grace window; `confirm` (the class name) is needed when it would delete more than 25 %",
            parameters: [dataClass], request: "DataRetentionInput", schema: "DataRetentionRecord")
        routes.put("/api/v1/retention/policies/:class", .admin) { request, context in
            let dataClass = try Self.dataClass(context)
            let (policy, confirm) = try await Self.policy(from: request)
            let record = try service.save(dataClass, policy, confirm: confirm, by: context.actor, now: Date())
            return try JSONResponse.make(object: Self.resource(record))
        }
        add(
            .post, "/api/v1/retention/policies/{class}/preview", "previewRetentionPolicy",
            "What a policy would delete now: rows, bytes, the oldest and newest affected item, per stage", parameters: [dataClass],
            request: "DataRetentionInput", schema: "DataRetentionPreview")
        routes.post("/api/v1/retention/policies/:class/preview", .view) { request, context in
            let dataClass = try Self.dataClass(context)
            let (policy, _) = try await Self.policy(from: request)
            let errors = policy.problems(for: dataClass)
            guard errors.isEmpty else { throw Problem.invalid(errors) }
            return try JSONResponse.make(object: Self.resource(try service.preview(dataClass, policy, now: Date())))
        }
        add(
            .delete, "/api/v1/retention/policies/{class}/pending", "undoRetentionChange", "Take back a change before it takes effect",
            parameters: [dataClass], status: 204, schema: nil)
        routes.delete("/api/v1/retention/policies/:class/pending", .admin) { _, context in
            try service.discardPending(try Self.dataClass(context), by: context.actor, now: Date())
            return Response(status: .noContent)
        }
        add(
            .get, "/api/v1/retention/storage", "getStorage",
            "Rows and bytes on disk per data class, growth per day over the last week, and when the disk fills at that rate (read at most every 5 minutes; `refresh=1` reads them now)",
            schema: "StorageFigures")
        routes.get("/api/v1/retention/storage", .view) { request, _ in
            try JSONResponse.make(
                object: try Self.resource(service.storage(now: Date(), fresh: request.uri.queryParameters.get("refresh") != nil)))
        }
        add(.get, "/api/v1/retention/holds", "listLegalHolds", "Legal holds in force", schema: "LegalHoldList")
        routes.get("/api/v1/retention/holds", .view) { _, _ in
            try JSONResponse.make(object: ["items": try service.holds().map(Self.resource), "next": NSNull()])
        }
        add(
            .post, "/api/v1/retention/holds", "createLegalHold",
            "Stop all deletion for a host (`host`, or none for every host) and/or a time range (`from`, `to`, RFC 3339), with a reason",
            request: "LegalHoldInput", status: 201, schema: "LegalHold")
        routes.post("/api/v1/retention/holds", .admin) { request, context in
            let input = try await APIInputDecoding.decode(LegalHoldInput.self, from: request)
            let created = try service.addHold(
                host: input.host.given, from: input.from.given, to: input.to.given, reason: input.reason.given ?? "", by: context.actor, now: Date())
            guard let saved = try service.holds().first(where: { $0.id == created }) else { throw Problem.notFound("legal hold \(created)") }
            return try JSONResponse.make(object: Self.resource(saved), status: .created)
        }
        add(.delete, "/api/v1/retention/holds/{id}", "releaseLegalHold", "Release a legal hold", parameters: [id], status: 204, schema: nil)
        routes.delete("/api/v1/retention/holds/:id", .admin) { _, context in
            guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("legal hold") }
            try service.releaseHold(id, by: context.actor, now: Date())
            return Response(status: .noContent)
        }
        add(.post, "/api/v1/retention/enforce", "enforceRetention", "Run the Enforce retention schedule's job now", status: 202, schema: "Job")
        routes.post("/api/v1/retention/enforce", .admin) { _, context in
            try APIJSON.response(JobResource(try await Self.enforceNow(scheduler, by: context.actor)), status: .accepted)
        }
        add(
            .post, "/api/v1/jobs/{id}/acknowledge", "acknowledgeJob", "Acknowledge a failed job (its log's retention clock starts)",
            parameters: [id], schema: "JobAcknowledgement")
        routes.post("/api/v1/jobs/:id/acknowledge", .operate) { _, context in
            guard let id = context.parameters.get("id", as: Int64.self) else { throw Problem.notFound("job") }
            try service.acknowledge(job: id, by: context.actor, now: Date())
            return try JSONResponse.make(object: ["id": id, "acknowledged": true])
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
    static func policy(from request: Request) async throws -> (DataRetention, String?) {
        var body = try await JSONResponse.object(from: request, what: "a retention policy: kind, max_age_days, max_bytes, tier_days, rules")
        let confirm = body.removeValue(forKey: "confirm") as? String
        do {
            let data = try JSONSerialization.data(withJSONObject: body)
            return (try JSONDecoder().decode(DataRetention.self, from: data), confirm)
        } catch let error as DecodingError {
            throw Problem.invalid([
                Self.field(of: error): "kind is full, time, size or tiered; ages are numbers of days; rules are {field, pattern, days}"
            ])
        }
    }

    static func field(of error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): key.stringValue
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            context.codingPath.map(\.stringValue).joined(separator: ".").nilIfEmpty ?? "kind"
        @unknown default: "policy"
        }
    }

    static func resource(_ policy: DataRetention) -> [String: Any] {
        [
            "kind": policy.kind.rawValue, "max_age_days": orNull(policy.maxAgeDays), "max_bytes": orNull(policy.maxBytes),
            "tier_days": orNull(policy.tierDays),
            "rules": policy.rules.map { ["field": $0.field, "pattern": $0.pattern, "days": $0.days] as [String: Any] },
            "keep_while_firing": policy.keepWhileFiring, "failed_days": orNull(policy.failedDays),
            "keep_failed_until_acknowledged": policy.keepFailedUntilAcknowledged,
        ]
    }

    static func resource(_ record: DataRetentionRecord) -> [String: Any] {
        [
            "data_class": record.dataClass.rawValue, "title": record.dataClass.title, "policy": resource(record.policy),
            "summary": record.policy.summary(for: record.dataClass), "is_default": record.isDefault,
            "default": resource(DataRetention.defaults(record.dataClass)), "pending": orNull(record.pending.map(resource)),
            "pending_summary": orNull(record.pending.map { $0.summary(for: record.dataClass) }),
            "pending_at": orNull(record.pendingAt.flatMap(RFC3339.string)), "pending_by": orNull(record.pendingBy),
            "kinds": record.dataClass.kinds.map(\.rawValue), "rule_fields": record.dataClass.ruleFields, "tier_names": record.dataClass.tierNames,
        ]
    }

    static func resource(_ preview: DataRetentionPreview) -> [String: Any] {
        [
            "data_class": preview.dataClass.rawValue, "rows": preview.rows, "bytes": preview.bytes,
            "oldest": orNull(preview.oldest.flatMap(RFC3339.string)), "newest": orNull(preview.newest.flatMap(RFC3339.string)),
            "class_rows": preview.classRows, "share": (preview.share * 1000).rounded() / 1000,
            "needs_confirmation": preview.share > RetentionService.confirmShare,
            "stages": preview.stages.map { ["label": $0.label, "rows": $0.rows, "bytes": $0.bytes] as [String: Any] },
        ]
    }

    static func resource(_ figures: StorageFigures) -> [String: Any] {
        [
            "classes": figures.entries.map { entry in
                [
                    "data_class": entry.dataClass.rawValue, "title": entry.dataClass.title, "rows": entry.rows, "bytes": entry.bytes,
                    "rows_last_week": entry.rowsLastWeek, "bytes_per_day": entry.bytesPerDay.rounded(),
                    "oldest": orNull(entry.oldest.flatMap(RFC3339.string)),
                ] as [String: Any]
            },
            "database_bytes": figures.databaseBytes, "free_bytes": figures.freeBytes, "filesystem_bytes": figures.filesystemBytes,
            "bytes_per_day": figures.bytesPerDay.rounded(), "read_at": RFC3339.string(figures.readAt),
            "days_until_full": orNull(figures.daysUntilFull.map { ($0 * 10).rounded() / 10 }),
        ]
    }

    static func resource(_ hold: RetentionHold) -> [String: Any] {
        [
            "id": hold.id, "host": orNull(hold.hostName), "from": orNull(hold.fromMS.flatMap(RFC3339.string)),
            "to": orNull(hold.toMS.flatMap(RFC3339.string)), "reason": hold.reason, "created_by": hold.createdBy,
            "created_at": orNull(RFC3339.string(milliseconds: hold.createdAt)),
        ]
    }
}

/// A new legal hold: a host (or none for every host), a time range (either end open) and the reason.
struct LegalHoldInput: APIInput {
    var host: Patch<String> = .absent
    var from: Patch<String> = .absent
    var to: Patch<String> = .absent
    var reason: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case host, from, to, reason }
}
