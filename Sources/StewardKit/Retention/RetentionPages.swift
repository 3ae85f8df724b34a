import Foundation
import GRDB
import Hummingbird

/// The storage page (each data class's size, growth and policy; legal holds; enforcement runs) and the policy editor
/// with its preview.
struct RetentionPages {
    let area: AreaContext
    let service: RetentionService
    let hosts: HostStore
    /// Remote write's queues, shown beside the storage they drain.
    var remoteWrite: RemoteWrite?

    func addRoutes(to routes: Routes) {
        routes.get("/settings/storage", .view, use: storage)
        routes.get("/settings/storage/:class", .view) { request, context in
            let dataClass = try Self.dataClass(context)
            let record = try service.policy(dataClass)
            return try editor(dataClass, values: Self.formValues(record.pending ?? record.policy), request: request, context: context)
        }
        // Preview is a read (any viewer); Save checks for admin itself.
        routes.post("/settings/storage/:class", .view, use: submit)
        routes.post("/settings/storage/:class/undo", .admin) { _, context in
            let dataClass = try Self.dataClass(context)
            do {
                try service.discardPending(dataClass, by: context.actor, now: Date())
                return area.pages.redirect(
                    to: "/settings/storage", flash: Flash(.success, "The change to \(dataClass.title.lowercased()) was taken back."))
            } catch let problem as Problem {
                return area.pages.redirect(to: "/settings/storage", flash: Flash(.warning, problem.detail))
            }
        }
        routes.post("/settings/storage/holds", .admin, use: addHold)
        routes.post("/settings/storage/holds/:id/release", .admin) { _, context in
            guard let id = context.parameters.get("id", as: Int64.self) else { throw HTTPError(.notFound) }
            try service.releaseHold(id, by: context.actor, now: Date())
            return area.pages.redirect(to: "/settings/storage", flash: Flash(.success, "Legal hold \(id) released."))
        }
        routes.post("/settings/storage-enforce", .admin) { _, context in
            do {
                let job = try await RetentionAPI.enforceNow(area.scheduler, by: context.actor)
                return area.pages.redirect(to: "/jobs/\(job.id)", flash: Flash(.success, "Enforcing retention as job \(job.id)."))
            } catch let problem as Problem {
                return area.pages.redirect(to: "/settings/storage", flash: Flash(.warning, problem.detail))
            }
        }
        routes.post("/jobs/:id/acknowledge", .operate) { _, context in
            guard let id = context.parameters.get("id", as: Int64.self) else { throw HTTPError(.notFound) }
            do {
                try service.acknowledge(job: id, by: context.actor, now: Date())
                return area.pages.redirect(to: "/jobs/\(id)", flash: Flash(.success, "Failure acknowledged; its log's retention clock has started."))
            } catch let problem as Problem {
                return area.pages.redirect(to: "/jobs/\(id)", flash: Flash(.warning, problem.detail))
            }
        }
    }

    static func dataClass(_ context: StewardRequestContext) throws -> DataClass {
        guard let dataClass = DataClass(rawValue: context.parameters.get("class") ?? "") else {
            throw HTTPError(.notFound, message: "no such data class")
        }
        return dataClass
    }

    static func time(_ milliseconds: Int64?) -> String {
        milliseconds.map { RFC3339.display(EpochMilliseconds.date($0)) } ?? ""
    }

    @Sendable func storage(request: Request, context: StewardRequestContext) async throws -> Response {
        let now = Date()
        let figures = try service.storage(now: now, fresh: request.uri.queryParameters.get("refresh") != nil)
        let records = Dictionary(uniqueKeysWithValues: try service.policies().map { ($0.dataClass, $0) })
        let classes = figures.entries.map { entry -> ViewNode in
            let record = records[entry.dataClass]!
            return ViewNode([
                "class": entry.dataClass.rawValue, "title": entry.dataClass.title, "rows": entry.rows, "bytes": ByteCount.text(entry.bytes),
                "per_day": ByteCount.text(Int64(entry.bytesPerDay.rounded())) + "/day", "week_rows": entry.rowsLastWeek,
                "oldest": Self.time(entry.oldest), "policy": record.policy.summary(for: entry.dataClass), "is_default": record.isDefault,
                "has_pending": record.pending != nil, "pending": record.pending.map { $0.summary(for: entry.dataClass) } ?? "",
                "pending_at": Self.time(record.pendingAt), "pending_by": record.pendingBy ?? "",
            ])
        }
        let projection: String
        let rate =
            "At \(ByteCount.text(Int64(figures.bytesPerDay.rounded())))/day (last week's rate), the \(ByteCount.text(figures.freeBytes)) free on the data directory's filesystem"
        if let days = figures.daysUntilFull, days <= 3650 {
            let full = now.addingTimeInterval(days * 86_400)
            projection =
                "\(rate) fills in about \(days >= 10 ? String(Int(days)) : String(format: "%.1f", days)) day(s), on \(RFC3339.display(full))."
        } else if figures.daysUntilFull != nil {
            projection = "\(rate) fills in more than 10 years."
        } else {
            projection = "Nothing grew in the last week; \(ByteCount.text(figures.freeBytes)) are free on the data directory's filesystem."
        }
        let holds = try service.holds().map { hold in
            ViewNode([
                "id": hold.id, "host": hold.hostName ?? "every host", "from": Self.time(hold.fromMS).nilIfEmpty ?? "the beginning",
                "to": Self.time(hold.toMS).nilIfEmpty ?? "open", "reason": hold.reason, "by": hold.createdBy, "at": Self.time(hold.createdAt),
            ])
        }
        let runs = try service.runs().map { row in
            ViewNode([
                "class": DataClass(rawValue: row["data_class"]).map(\.title) ?? "", "at": Self.time(row["started_at"]),
                "rows": row["rows_deleted"] as Int, "bytes": ByteCount.text(row["bytes_deleted"]), "detail": row["detail"] as String,
            ])
        }
        let backups = try service.backupRetention().map { plan in
            ViewNode([
                "plan": plan.plan, "repository": plan.repository, "keep": plan.keep, "bytes": plan.bytes.map(ByteCount.text) ?? "not read yet",
                "snapshots": plan.snapshots.map(String.init) ?? "–",
            ])
        }
        let sending = try remoteWrite?.statuses(now: now) ?? []
        return area.pages.page(
            "settings/storage", title: "Storage and retention", section: "settings",
            data: [
                "remote_write": sending.map { ViewNode(RemoteWriteController.view($0, form: $0.endpoint)) }, "has_remote_write": !sending.isEmpty,
                "classes": classes, "database": ByteCount.text(figures.databaseBytes), "projection": projection, "holds": holds,
                "has_holds": !holds.isEmpty, "runs": runs, "has_runs": !runs.isEmpty, "backups": backups, "has_backups": !backups.isEmpty,
                "hosts": try hosts.all().map { ViewNode(["name": $0.name]) }, "admin": context.identity?.permissions.contains(.admin) ?? false,
                "grace": RetentionPolicyText.grace(service.graceMS),
                "read_at": RFC3339.display(figures.readAt),
            ], request: request, context: context)
    }

    /// The form's fields for a policy.
    static func formValues(_ policy: DataRetention) -> [String: String] {
        func number(_ value: Double?) -> String { value.map { $0 == $0.rounded() ? String(Int($0)) : String($0) } ?? "" }
        var values: [String: String] = [
            "kind": policy.kind.rawValue, "max_age_days": number(policy.maxAgeDays),
            "max_mib": policy.maxBytes.map { String($0 / 1_048_576) } ?? "", "failed_days": number(policy.failedDays),
            "keep_while_firing": policy.keepWhileFiring ? "on" : "", "keep_failed_until_acknowledged": policy.keepFailedUntilAcknowledged ? "on" : "",
            "rules": policy.rules.map { "\($0.field) \($0.pattern) \(number($0.days))" }.joined(separator: "\n"),
        ]
        for (index, days) in (policy.tierDays ?? []).enumerated() { values["tier\(index)"] = number(days) }
        return values
    }

    /// A policy from the form, or the fields that are wrong.
    static func policy(from form: [String: String], for dataClass: DataClass) -> (DataRetention?, [String: String]) {
        var errors: [String: String] = [:]
        guard let kind = DataRetention.Kind(rawValue: form["kind"] ?? "") else { return (nil, ["kind": "choose a kind of policy"]) }
        func days(_ key: String) -> Double? {
            let text = (form[key] ?? "").trimmingCharacters(in: .whitespaces)
            if text.isEmpty { return nil }
            guard let value = Double(text) else {
                errors[key] = "a number of days"
                return nil
            }
            return value
        }
        var policy = DataRetention(kind: kind)
        policy.maxAgeDays = kind == .time ? days("max_age_days") : nil
        if kind == .size {
            if let mib = Int64((form["max_mib"] ?? "").trimmingCharacters(in: .whitespaces)) {
                policy.maxBytes = mib * 1_048_576
            } else {
                errors["max_mib"] = "a whole number of MiB"
            }
        }
        if kind == .tiered { policy.tierDays = dataClass.tierNames.indices.compactMap { days("tier\($0)") } }
        policy.keepWhileFiring = form["keep_while_firing"] == "on"
        if dataClass == .jobLogs {
            policy.failedDays = days("failed_days")
            policy.keepFailedUntilAcknowledged = form["keep_failed_until_acknowledged"] == "on"
        }
        for (index, line) in (form["rules"] ?? "").split(whereSeparator: \.isNewline).enumerated() {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard words.count == 3, let ruleDays = Double(words[2]) else {
                errors["rules"] = "line \(index + 1): write FIELD PATTERN DAYS, e.g. action role.* 1095"
                continue
            }
            policy.rules.append(RetentionRule(field: words[0], pattern: words[1], days: ruleDays))
        }
        for (key, message) in policy.problems(for: dataClass) {
            let field =
                key.hasPrefix("rules") ? "rules" : key == "max_bytes" ? "max_mib" : key == "tier_days" ? "tier0" : key
            errors[field] = errors[field] ?? message
        }
        return (errors.isEmpty ? policy : nil, errors)
    }

    func editor(
        _ dataClass: DataClass, values: [String: String], preview: DataRetentionPreview? = nil, errors: [String: String] = [:],
        request: Request, context: StewardRequestContext, status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let record = try service.policy(dataClass)
        var form: [String: Any] = values
        for kind in DataRetention.Kind.allCases { form["kind_\(kind.rawValue)"] = values["kind"] == kind.rawValue }
        form["keep_while_firing_checked"] = values["keep_while_firing"] == "on"
        form["keep_failed_checked"] = values["keep_failed_until_acknowledged"] == "on"
        let tiers = dataClass.tierNames.enumerated().map { index, name in
            ViewNode(["index": index, "name": name, "value": values["tier\(index)"] ?? "", "error": errors["tier\(index)"] ?? ""])
        }
        var data: [String: Any] = [
            "class": dataClass.rawValue, "title": dataClass.title, "form": ViewNode(form), "errors": ViewNode(errors), "has_errors": !errors.isEmpty,
            "kinds": dataClass.kinds.map { kind in
                ViewNode([
                    "kind": kind.rawValue, "checked": values["kind"] == kind.rawValue,
                    "label": [
                        "full": "Full: keep everything", "time": "Time-based: a maximum age", "size": "Size-based: a maximum size, oldest first",
                        "tiered": "Tiered: " + dataClass.tierNames.joined(separator: " → ") + " → deleted",
                    ][kind.rawValue] ?? kind.rawValue,
                ])
            },
            "allows_time": dataClass.kinds.contains(.time), "allows_size": dataClass.kinds.contains(.size), "tiers": tiers,
            "has_tiers": !tiers.isEmpty,
            "rule_fields": dataClass.ruleFields.joined(separator: ", "), "has_rules": !dataClass.ruleFields.isEmpty,
            "job_logs": dataClass == .jobLogs, "firing": [.metrics, .alertHistory].contains(dataClass),
            "current": record.policy.summary(for: dataClass), "default": DataRetention.defaults(dataClass).summary(for: dataClass),
            "has_pending": record.pending != nil, "pending": record.pending.map { $0.summary(for: dataClass) } ?? "",
            "pending_at": Self.time(record.pendingAt), "grace": RetentionPolicyText.grace(service.graceMS),
            "admin": context.identity?.permissions.contains(.admin) ?? false,
        ]
        if let preview {
            data["preview"] = ViewNode([
                "rows": preview.rows, "bytes": ByteCount.text(preview.bytes), "oldest": Self.time(preview.oldest).nilIfEmpty ?? "–",
                "newest": Self.time(preview.newest).nilIfEmpty ?? "–", "share": String(format: "%.1f", preview.share * 100),
                "stages": preview.stages.map { ViewNode(["label": $0.label, "rows": $0.rows, "bytes": ByteCount.text($0.bytes)]) },
                "needs_confirmation": preview.share > RetentionService.confirmShare,
            ])
        }
        return area.pages.page(
            "settings/retention_policy", title: "Retention: \(dataClass.title)", section: "settings", data: data, request: request,
            context: context, status: status)
    }

    @Sendable func submit(request: Request, context: StewardRequestContext) async throws -> Response {
        let dataClass = try Self.dataClass(context)
        let form = try await FormBody.read(request, context: context)
        let (parsed, errors) = Self.policy(from: form.values, for: dataClass)
        guard let policy = parsed else {
            return try editor(dataClass, values: form.values, errors: errors, request: request, context: context, status: .unprocessableContent)
        }
        let preview = try service.preview(dataClass, policy, now: Date())
        if form["action"] != "save" {
            return try editor(dataClass, values: form.values, preview: preview, request: request, context: context)
        }
        guard context.identity?.permissions.contains(.admin) == true else {
            throw HTTPError(.forbidden, message: "changing a retention policy needs the admin role")
        }
        do {
            let record = try service.save(dataClass, policy, confirm: form["confirm"], by: context.actor, now: Date())
            let when = record.pending == nil ? "now" : "at \(Self.time(record.pendingAt)) unless taken back before then"
            return area.pages.redirect(
                to: "/settings/storage", flash: Flash(.success, "\(dataClass.title): the new policy takes effect \(when)."))
        } catch let problem as Problem {
            return try editor(
                dataClass, values: form.values, preview: preview, errors: problem.errors ?? ["kind": problem.detail], request: request,
                context: context, status: .unprocessableContent)
        }
    }

    @Sendable func addHold(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        do {
            let id = try service.addHold(
                host: form["host"], from: form["from"], to: form["to"], reason: form["reason"] ?? "", by: context.actor, now: Date())
            return area.pages.redirect(to: "/settings/storage", flash: Flash(.success, "Legal hold \(id) is in force: nothing it covers is deleted."))
        } catch let problem as Problem {
            let detail =
                problem.errors.map { errors in errors.keys.sorted().map { "\($0): \(errors[$0]!)" }.joined(separator: "; ") } ?? problem.detail
            return area.pages.redirect(to: "/settings/storage", flash: Flash(.error, "The hold was not added: \(detail)"))
        }
    }
}

enum RetentionPolicyText {
    static func grace(_ milliseconds: Int64) -> String {
        milliseconds == 0 ? "at once" : "after \(milliseconds / 60_000) minutes"
    }
}
