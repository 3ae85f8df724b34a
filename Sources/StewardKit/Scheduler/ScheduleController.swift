import Foundation
import Hummingbird

/// The Schedules pages and `/api/v1/schedules`.
struct ScheduleController {
    let area: AreaContext

    var store: ScheduleStore { area.scheduler.store }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "schedules")
        routes.get("/schedules", .view, use: listPage)
        routes.get("/schedules/:id", .view, use: editPage)
        routes.post("/schedules/:id", .operate, use: saveFromPage)
        routes.post("/schedules/:id/run", .operate, use: runFromPage)

        let idParameter = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "schedule id")
        api(.get, "/api/v1/schedules", .view, "listSchedules", "List schedules with their next five fire times", schema: "ScheduleList", use: apiList)
        api(.get, "/api/v1/schedules/{id}", .view, "getSchedule", "Read one schedule", parameters: [idParameter], schema: "Schedule", use: apiShow)
        api(
            .patch, "/api/v1/schedules/{id}", .operate, "updateSchedule",
            "Change timing, policies or the enabled switch; omitted fields keep their values", parameters: [idParameter], request: "ScheduleUpdate",
            schema: "Schedule", use: apiUpdate)
        api(
            .post, "/api/v1/schedules/{id}/run", .operate, "runSchedule", "Start the schedule's job now, honouring its concurrency policy",
            parameters: [idParameter], status: 202, schema: "Job", use: apiRun)
        api(
            .post, "/api/v1/schedules/preview", .view, "previewSchedule", "Validate a cron expression and time zone and list the next fire times",
            request: "SchedulePreviewRequest", schema: "SchedulePreview", use: apiPreview)
    }

    // MARK: pages

    @Sendable func listPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let schedules = try store.all().map(Self.view)
        return area.pages.page(
            "schedules/list", title: "Schedules", section: "schedules", data: ["schedules": schedules, "empty": schedules.isEmpty], request: request,
            context: context)
    }

    @Sendable func editPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let schedule = try loadSchedule(context)
        return formPage(schedule, values: Self.settings(of: schedule), errors: [:], request: request, context: context)
    }

    @Sendable func saveFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let schedule = try loadSchedule(context)
        let form = try await FormBody.read(request, context: context)
        var errors: [String: String] = [:]
        let jitterText = form["jitter_seconds"] ?? "0"
        let jitter = Int(jitterText.trimmingCharacters(in: .whitespaces))
        if jitter == nil { errors["jitter_seconds"] = "must be a whole number of seconds from 0 to 86400" }
        let catchUp = Schedule.CatchUp(rawValue: form["catch_up"] ?? "")
        if catchUp == nil { errors["catch_up"] = "choose none or one" }
        let concurrency = Schedule.Concurrency(rawValue: form["concurrency"] ?? "")
        if concurrency == nil { errors["concurrency"] = "choose forbid, replace or allow" }
        let submitted = ScheduleSettings(
            cron: (form["cron"] ?? "").trimmingCharacters(in: .whitespaces), timeZone: (form["time_zone"] ?? "").trimmingCharacters(in: .whitespaces),
            jitterSeconds: jitter ?? 0, catchUp: catchUp ?? schedule.catchUp, concurrency: concurrency ?? schedule.concurrency,
            enabled: form["enabled"] == "on")
        errors.merge(Self.timingErrors(submitted) ?? [:]) { first, _ in first }
        if errors.isEmpty, try await area.scheduler.update(id: schedule.id, settings: submitted, now: Date(), by: context.actor) != nil {
            return area.pages.redirect(to: "/schedules", flash: Flash(.success, "Schedule \"\(schedule.name)\" saved."))
        }
        return formPage(
            schedule, values: submitted, errors: errors, jitterText: jitterText, request: request, context: context, status: .unprocessableContent)
    }

    @Sendable func runFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let schedule = try loadSchedule(context)
        guard let firing = try await area.scheduler.runNow(id: schedule.id, by: context.actor) else { throw HTTPError(.notFound) }
        if let jobID = firing.jobID {
            return area.pages.redirect(to: "/jobs/\(jobID)", flash: Flash(.success, "Started \"\(schedule.jobTitle)\" as job \(jobID)."))
        }
        return area.pages.redirect(to: "/schedules", flash: Flash(.warning, "\"\(schedule.name)\" was not started: \(firing.outcome)."))
    }

    func formPage(
        _ schedule: Schedule, values: ScheduleSettings, errors: [String: String], jitterText: String? = nil, request: Request,
        context: StewardRequestContext, status: HTTPResponse.Status = .ok
    ) -> Response {
        var view = Self.values(schedule)
        view["form"] = ViewNode([
            "cron": values.cron, "time_zone": values.timeZone, "jitter_seconds": jitterText ?? String(values.jitterSeconds),
            "enabled": values.enabled,
            "catch_up_options": Schedule.CatchUp.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == values.catchUp]) },
            "concurrency_options": Schedule.Concurrency.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == values.concurrency]) },
        ])
        view["errors"] = ViewNode(errors)
        view["has_errors"] = !errors.isEmpty
        view["error_list"] = errors.keys.sorted().map { ViewNode(["field": $0, "message": errors[$0]!]) }
        view["time_zones"] = TimeZone.knownTimeZoneIdentifiers.sorted()
        return area.pages.page(
            "schedules/edit", title: "Schedule: \(schedule.name)", section: "schedules", data: ["schedule": ViewNode(view)], request: request,
            context: context, status: status)
    }

    // MARK: API

    @Sendable func apiList(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(CursorPage(items: try store.all().map(ScheduleResource.init), next: Nullable(nil)))
    }

    @Sendable func apiShow(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(ScheduleResource(try loadSchedule(context)))
    }

    @Sendable func apiUpdate(request: Request, context: StewardRequestContext) async throws -> Response {
        let schedule = try loadSchedule(context)
        var settings = Self.settings(of: schedule)
        try await APIInputDecoding.decode(ScheduleInput.self, from: request).apply(to: &settings)
        guard let updated = try await area.scheduler.update(id: schedule.id, settings: settings, now: Date(), by: context.actor) else {
            throw Problem.notFound("schedule \(schedule.id)")
        }
        return try APIJSON.response(ScheduleResource(updated))
    }

    @Sendable func apiRun(request: Request, context: StewardRequestContext) async throws -> Response {
        let schedule = try loadSchedule(context)
        guard let firing = try await area.scheduler.runNow(id: schedule.id, by: context.actor) else {
            throw Problem.notFound("schedule \(schedule.id)")
        }
        guard let jobID = firing.jobID, let job = try area.scheduler.jobs.store.job(id: jobID) else {
            throw Problem(status: .conflict, detail: "schedule \(schedule.name) was not started: \(firing.outcome)")
        }
        return try APIJSON.response(JobResource(job), status: .accepted)
    }

    @Sendable func apiPreview(request: Request, context: StewardRequestContext) async throws -> Response {
        let body = try await APIInputDecoding.decode(SchedulePreviewInput.self, from: request)
        let count = body.count.given ?? 5
        guard (1...50).contains(count) else { throw Problem.invalid(["count": "must be from 1 to 50"]) }
        guard let cron = body.cron.given else { throw Problem.invalid(["cron": "is required"]) }
        let timing: ScheduleTiming
        do {
            timing = try ScheduleTiming(cron: cron, timeZone: body.timeZone.given ?? "UTC", jitterSeconds: 0)
        } catch {
            throw Problem.invalid(error.fields)
        }
        let fires = timing.expression.nextFires(after: Date(), in: timing.zone, count: count)
        return try APIJSON.response(SchedulePreviewResource(nextFireTimes: fires.map(RFC3339.string)))
    }

    // MARK: helpers

    func loadSchedule(_ context: StewardRequestContext) throws -> Schedule {
        guard let id = context.parameters.get("id", as: Int64.self), let schedule = try store.schedule(id: id) else {
            throw HTTPError(.notFound, message: "schedule \(context.parameters.get("id") ?? "") does not exist")
        }
        return schedule
    }

    static func timingErrors(_ settings: ScheduleSettings) -> [String: String]? {
        do {
            _ = try ScheduleTiming(cron: settings.cron, timeZone: settings.timeZone, jitterSeconds: settings.jitterSeconds)
            return nil
        } catch {
            return error.fields
        }
    }

    static func settings(of schedule: Schedule) -> ScheduleSettings {
        ScheduleSettings(
            cron: schedule.cron, timeZone: schedule.timeZone, jitterSeconds: schedule.jitterSeconds, catchUp: schedule.catchUp,
            concurrency: schedule.concurrency, enabled: schedule.enabled)
    }

    static func nextFires(_ schedule: Schedule) -> [Date] {
        guard let timing = try? schedule.timing() else { return [] }
        return timing.expression.nextFires(after: Date(), in: timing.zone, count: 5)
    }

    /// A fire time in the schedule's own zone, with the zone's abbreviation, as operators think of it.
    static func localText(_ date: Date, zone: TimeZone) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = "EEE yyyy-MM-dd HH:mm zzz"
        return formatter.string(from: date)
    }

    static func view(_ schedule: Schedule) -> ViewNode { ViewNode(values(schedule)) }

    static func values(_ schedule: Schedule) -> [String: Any?] {
        let zone = TimeZone(identifier: schedule.timeZone) ?? .gmt
        return [
            "id": schedule.id, "name": schedule.name, "cron": schedule.cron, "time_zone": schedule.timeZone, "jitter_seconds": schedule.jitterSeconds,
            "catch_up": schedule.catchUp.rawValue, "concurrency": schedule.concurrency.rawValue, "job_title": schedule.jobTitle,
            "has_jitter": schedule.jitterSeconds > 0,
            "job_kind": schedule.jobKind, "owner": schedule.owner, "enabled": schedule.enabled,
            "last_fire": schedule.lastFireAt.map { localText(EpochMilliseconds.date($0), zone: zone) },
            "last_job_id": schedule.lastJobID, "last_outcome": schedule.lastOutcome,
            "next_fires": nextFires(schedule).map { localText($0, zone: zone) },
        ]
    }
}
