import Foundation
import Hummingbird

/// Scheduled tasks per host (crontabs, /etc/crontab, /etc/cron.d and systemd timers) with their next runs, and across
/// the fleet; cron entries created, changed, disabled and deleted by admins as audited jobs.
struct CronController: HostScopedController {
    let area: AreaContext
    let hosts: HostStore
    let cron: CronReading
    var store: HostReadingStore { cron.readings.store }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "cron")
        routes.get("/cron", .view, use: fleetPage)
        routes.get("/hosts/:id/cron", .view, use: hostPage)
        routes.post("/hosts/:id/cron/refresh", .operate, use: refreshFromPage)
        routes.post("/hosts/:id/cron/entries", .admin, use: changeFromPage)
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "host id")
        let text = APIOperation.Parameter(name: "q", location: .query, type: "string", description: "part of a command, user, name or file")
        api(
            .get, "/api/v1/hosts/{id}/cron", .view, "hostCron",
            "A host's cron entries from its newest reading, each with its next five runs in the host's time zone, and its systemd timers",
            parameters: [id, text], schema: "HostCron", use: apiHost)
        api(
            .post, "/api/v1/hosts/{id}/cron/refresh", .operate, "refreshHostCron", "Read the host's crontabs now", parameters: [id],
            schema: "HostCron", use: apiRefresh)
        api(
            .post, "/api/v1/hosts/{id}/cron/entries", .admin, "changeHostCronEntry",
            "Create, change, disable or delete a named entry of a user's crontab with ansible.builtin.cron, as an audited job; admins only",
            parameters: [id], request: "CronEntryInput", status: 202, schema: "Job", use: apiChange)
        api(
            .get, "/api/v1/cron", .view, "fleetCron", "Every cron entry and timer across the fleet from each host's newest readings",
            parameters: [text], schema: "FleetCron", use: apiFleet)
    }

    func refresh(_ host: Host, by who: AuditActor) async throws -> HostReading<CronListing> {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to read its crontabs") }
        return try await cron.refresh(host, by: who)
    }

    static func matches(_ entry: CronEntry, _ text: String) -> Bool {
        text.isEmpty
            || [entry.command, entry.user, entry.name ?? "", entry.source, entry.schedule].contains { $0.localizedCaseInsensitiveContains(text) }
    }

    /// A host's tasks: its cron entries with their next runs, then its timers from the services reading.
    /// `full`: commands as they are (operators and admins); otherwise each command's program only.
    func tasks(_ host: Host, text: String, full: Bool, now: Date = Date()) throws -> (cron: HostReading<CronListing>?, rows: [ScheduledTaskResource])
    {
        let reading = try store.latest(CronListing.self, kind: CronListing.kind, hostID: host.id)
        var rows: [ScheduledTaskResource] = []
        if let reading {
            rows += reading.body.entries.filter { Self.matches($0, full ? text : "") && (full || text.isEmpty || $0.user.contains(text)) }.map {
                entry in
                var shown = entry
                shown.command = HostSecrets.command(entry.command, full: full)
                return ScheduledTaskResource(host: host, entry: shown, zone: reading.body.timeZone, readAt: reading.readAt, now: now)
            }
        }
        if let services = try store.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: host.id) {
            rows += services.body.units.filter { $0.type == "timer" && (text.isEmpty || $0.unit.localizedCaseInsensitiveContains(text)) }.map {
                ScheduledTaskResource(host: host, timer: $0, readAt: services.readAt)
            }
        }
        return (reading, rows)
    }

    // MARK: pages

    func rowNodes(_ rows: [ScheduledTaskResource]) -> [ViewNode] {
        rows.map { row in
            var node: [String: Any] = [
                "task_kind": row.kind, "task_source": row.source, "task_user": row.user, "task_schedule": row.schedule, "task_command": row.command,
                "task_runs": (row.nextRuns.value ?? []).compactMap { Self.local($0, zone: row.timeZone) }.map { ViewNode(["run_at": $0]) },
                "task_disabled": row.disabled, "task_host": row.host,
                "task_host_id": row.hostId,
            ]
            if let name = row.name.value {
                node["task_name"] = name
                let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
                node["task_edit_query"] =
                    "edit=" + (name.addingPercentEncoding(withAllowedCharacters: allowed) ?? "") + "&user="
                    + (row.user.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
                if row.kind == "cron" && row.source == "crontab" { node["changeable"] = true }
            }
            return ViewNode(node)
        }
    }

    /// An RFC 3339 instant as the host's wall-clock time, with the zone's name.
    static func local(_ text: String, zone: String) -> String? {
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = parser.date(from: text) ?? ISO8601DateFormatter().date(from: text) else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: zone) ?? TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return formatter.string(from: date) + " " + (formatter.timeZone?.identifier ?? "UTC")
    }

    @Sendable func hostPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let query = QueryInput(request).query
        let text = query["q"] ?? ""
        let (reading, rows) = try tasks(host, text: text, full: HostSecrets.mayRead(context, on: host))
        var data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "read": reading != nil, "read_at": reading.map { RFC3339.display($0.readAt) } ?? "",
            "time_zone": reading?.body.timeZone ?? "", "rows": rowNodes(rows), "filter_text": text, "tab_cron": true,
            "operator": context.identity?.permissions.contains(.operate) ?? false, "admin": context.isAdmin, "disabled": !host.enabled,
            "users": (reading?.body.users ?? []).map { ViewNode(["user_option": $0, "user_selected": $0 == (query["user"] ?? "root")]) },
        ]
        // "Edit" fills the form with the entry's fields (the form is an admin's, and so is the full command).
        if context.isAdmin, let name = query["edit"],
            let entry = reading?.body.entries.first(where: { $0.name == name && $0.user == query["user"] && $0.source == "crontab" })
        {
            let fields = entry.schedule.split(separator: " ").map(String.init)
            data["form_name"] = name
            data["form_job"] = entry.command
            if fields.count == 5 {
                for (key, value) in zip(["form_minute", "form_hour", "form_day", "form_month", "form_weekday"], fields) { data[key] = value }
            }
            data["form_disabled"] = entry.disabled
            data["editing"] = true
        }
        if let error = reading?.error { data["reading_error"] = error }
        return area.pages.page(
            "cron/host", title: "Scheduled tasks on \(host.name)", section: "hosts", data: data, request: request, context: context)
    }

    @Sendable func refreshFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        return try await refreshAndReturn(
            host, to: "/hosts/\(host.id)/cron", pages: area.pages, success: { "Read \($0.body.entries.count) cron entries from \(host.name)." }
        ) { try await refresh(host, by: context.actor) }
    }

    @Sendable func changeFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let form = try await FormBody.read(request, context: context)
        var input = CronChanges.Input()
        input.name = form["name"] ?? ""
        input.user = form["user"] ?? ""
        input.minute = form["minute"] ?? ""
        input.hour = form["hour"] ?? ""
        input.day = form["day"] ?? ""
        input.month = form["month"] ?? ""
        input.weekday = form["weekday"] ?? ""
        input.job = form["job"] ?? ""
        input.disabled = form["disabled"] == "true"
        input.delete = form["delete"] == "true"
        return try await queueAndShow("/hosts/\(host.id)/cron", pages: area.pages, failure: "Not done") {
            try await area.runner.enqueue(CronChanges(store: store).prepare(input, on: host, by: context.actor))
        }
    }

    @Sendable func fleetPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let text = QueryInput(request).query["q"] ?? ""
        let rows = try hosts.all().filter(\.enabled).sorted { $0.name < $1.name }.flatMap {
            try tasks($0, text: text, full: HostSecrets.mayRead(context, on: $0)).rows
        }
        return area.pages.page(
            "cron/fleet", title: "Scheduled tasks", section: "cron", data: ["rows": rowNodes(rows), "filter_text": text, "count": rows.count],
            request: request, context: context)
    }

    // MARK: API

    @Sendable func apiHost(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let (reading, rows) = try tasks(host, text: QueryInput(request).query["q"] ?? "", full: HostSecrets.mayRead(context, on: host))
        return try APIJSON.response(HostCronResource(host: host, reading: reading, items: rows))
    }

    @Sendable func apiRefresh(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        _ = try await refresh(host, by: context.actor)
        let (reading, rows) = try tasks(host, text: "", full: true)
        return try APIJSON.response(HostCronResource(host: host, reading: reading, items: rows))
    }

    @Sendable func apiChange(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let body = try await APIInputDecoding.decode(CronEntryInput.self, from: request, limit: 1 << 14)
        var errors = APIInputDecoding.wrongFields(body)
        for (key, value) in [("name", body.name.given), ("user", body.user.given)] where value == nil && errors[key] == nil {
            errors[key] = "required"
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        var input = CronChanges.Input()
        input.name = body.name.given ?? ""
        input.user = body.user.given ?? ""
        input.minute = body.minute.given ?? "*"
        input.hour = body.hour.given ?? "*"
        input.day = body.day.given ?? "*"
        input.month = body.month.given ?? "*"
        input.weekday = body.weekday.given ?? "*"
        input.job = body.job.given ?? ""
        input.disabled = body.disabled.given ?? false
        input.delete = body.state.given == "absent"
        if let state = body.state.given, !["present", "absent"].contains(state) { throw Problem.invalid(["state": "present or absent"]) }
        let job = try await area.runner.enqueue(CronChanges(store: store).prepare(input, on: host, by: context.actor))
        return try APIJSON.response(JobResource(job), status: .accepted)
    }

    @Sendable func apiFleet(request: Request, context: StewardRequestContext) async throws -> Response {
        let text = QueryInput(request).query["q"] ?? ""
        let rows = try hosts.all().filter(\.enabled).sorted { $0.name < $1.name }.flatMap {
            try tasks($0, text: text, full: HostSecrets.mayRead(context, on: $0)).rows
        }
        return try APIJSON.response(ItemList(items: rows))
    }
}

struct CronEntryInput: APIInput {
    var name: Patch<String> = .absent
    var user: Patch<String> = .absent
    var minute: Patch<String> = .absent
    var hour: Patch<String> = .absent
    var day: Patch<String> = .absent
    var month: Patch<String> = .absent
    var weekday: Patch<String> = .absent
    var job: Patch<String> = .absent
    var disabled: Patch<Bool> = .absent
    var state: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case name, user, minute, hour, day, month, weekday, job, disabled, state }
}

/// One scheduled task: a cron entry or a systemd timer (the `ScheduledTask` schema).
struct ScheduledTaskResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    /// cron or timer.
    let kind: String
    /// crontab (the user's own), /etc/crontab, /etc/cron.d/NAME, or the timer unit.
    let source: String
    let user: String
    let name: Nullable<String>
    let schedule: String
    let command: String
    let disabled: Bool
    /// Cron: the next five runs in the host's time zone, by Steward's cron code; a timer: its next run.
    let nextRuns: Nullable<[String]>
    let lastRun: Nullable<String>
    /// The host's time zone, which the cron runs are computed in.
    let timeZone: String
    let readAt: String

    init(host: Host, entry: CronEntry, zone: String, readAt: Date, now: Date) {
        timeZone = zone
        hostId = host.id
        self.host = host.name
        kind = "cron"
        source = entry.source
        user = entry.user
        name = Nullable(entry.name)
        schedule = entry.schedule
        command = entry.command
        disabled = entry.disabled
        let runs = CronListing.nextRuns(entry, zone: zone, after: now)
        nextRuns = Nullable(runs.isEmpty ? nil : runs.map { RFC3339.string($0) })
        lastRun = Nullable(nil)
        self.readAt = RFC3339.string(readAt)
    }

    init(host: Host, timer: ServiceUnit, readAt: Date) {
        timeZone = "UTC"
        hostId = host.id
        self.host = host.name
        kind = "timer"
        source = timer.unit
        user = "root"
        name = Nullable(timer.unit)
        schedule = timer.description
        command = String(timer.unit.dropLast(".timer".count)) + ".service"
        disabled = timer.active != "active"
        nextRuns = Nullable(timer.nextRun.map { [RFC3339.string($0)] })
        lastRun = Nullable(timer.lastRun.map { RFC3339.string($0) })
        self.readAt = RFC3339.string(readAt)
    }
}

/// A host's scheduled tasks (the `HostCron` schema).
struct HostCronResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    let readAt: Nullable<String>
    let error: Nullable<String>
    let timeZone: Nullable<String>
    let items: [ScheduledTaskResource]

    init(host: Host, reading: HostReading<CronListing>?, items: [ScheduledTaskResource]) {
        hostId = host.id
        self.host = host.name
        readAt = Nullable(reading.map { RFC3339.string($0.readAt) })
        error = Nullable(reading?.error)
        timeZone = Nullable(reading?.body.timeZone)
        self.items = items
    }
}
