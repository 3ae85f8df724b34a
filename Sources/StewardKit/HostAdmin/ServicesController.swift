import Foundation
import Hummingbird

/// systemd units per host and across the fleet, from each host's newest services reading: the Services pages and
/// `/api/v1/services`, `/api/v1/hosts/{id}/services`. Refreshing a host reads it again in seconds.
struct ServicesController: HostScopedController {
    let area: AreaContext
    let hosts: HostStore
    /// Reads hosts now; its store holds every host's newest reading.
    let services: ServiceReading
    var readings: HostReadingStore { services.store }
    var changes: ServiceChanges { ServiceChanges(store: services.store) }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "services")
        routes.get("/services", .view, use: fleetPage)
        routes.get("/hosts/:id/services", .view, use: hostPage)
        routes.post("/hosts/:id/services/refresh", .operate, use: refreshFromPage)
        routes.get("/hosts/:id/services/:unit", .view, use: unitPage)
        routes.post("/hosts/:id/services/:unit/actions", .operate, use: actionFromPage)
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "host id")
        let state = APIOperation.Parameter(
            name: "state", location: .query, type: "string", description: "active, inactive, failed or all",
            enumValues: ServiceFilter.State.allCases.map(\.rawValue))
        let type = APIOperation.Parameter(
            name: "type", location: .query, type: "string", description: "a unit type (service, socket, timer, ...) or all; default service",
            pattern: "^[a-z]{1,32}$")
        let text = APIOperation.Parameter(name: "q", location: .query, type: "string", description: "part of a unit's name or description")
        let unit = APIOperation.Parameter(
            name: "unit", location: .query, type: "string", description: "one unit's full name: where it is and in which state")
        api(
            .get, "/api/v1/services", .view, "listFleetServices",
            "Units across the fleet from each host's newest reading: failed ones by default, or every host's state of one unit",
            parameters: [state, type, text, unit], schema: "FleetServiceList", use: apiFleet)
        api(
            .get, "/api/v1/hosts/{id}/services", .view, "hostServices", "A host's systemd units from its newest reading, with when it was read",
            parameters: [id, state, type, text], schema: "HostServices", use: apiHost)
        api(
            .post, "/api/v1/hosts/{id}/services/refresh", .operate, "refreshHostServices",
            "Read the host's units now (three systemctl commands over one connection, seconds) and answer with the new reading",
            parameters: [id], schema: "HostServices", use: apiRefresh)
        let unitPath = APIOperation.Parameter(
            name: "unit", location: .path, type: "string", description: "a unit's full name as the host reported it, such as ssh.service")
        api(
            .get, "/api/v1/hosts/{id}/services/{unit}", .view, "hostServiceUnit",
            "One unit now: its systemctl show properties and newest journal lines, read from the host (the unit must be in the host's newest reading)",
            parameters: [id, unitPath], schema: "ServiceUnitDetail", use: apiUnit)
        api(
            .post, "/api/v1/hosts/{id}/services/{unit}/actions", .operate, "changeHostServiceUnit",
            "Start, stop, restart, reload, enable, disable, mask or unmask a unit, as an audited job (ansible.builtin.systemd_service); sshd, "
                + "Steward's own units and the panel host's units need an admin, and stopping sshd or Steward needs confirm set to the unit's name",
            parameters: [id, unitPath], request: "ServiceUnitAction", status: 202, schema: "Job", use: apiAction)
    }

    // MARK: reading the request

    /// The filter in the query; wrong values are named (the API answers 422, the pages fall back and say so).
    static func filter(_ request: Request, defaultState: ServiceFilter.State, defaultType: String) -> (ServiceFilter, [String: String]) {
        let query = QueryInput(request).query
        var filter = ServiceFilter(state: defaultState, type: defaultType, text: "")
        var errors: [String: String] = [:]
        if let text = query["state"] {
            if let state = ServiceFilter.State(rawValue: text) {
                filter.state = state
            } else {
                errors["state"] = "must be one of " + ServiceFilter.State.allCases.map(\.rawValue).joined(separator: ", ")
            }
        }
        if let text = query["type"] {
            if text.count <= 32, !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isLowercase }) {
                filter.type = text
            } else {
                errors["type"] = "must be a unit type in lowercase letters (service, socket, timer, ...) or all"
            }
        }
        filter.text = query["q"] ?? ""
        return (filter, errors)
    }

    static func describe(_ errors: [String: String]) -> String {
        errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "; ")
    }

    func refresh(_ host: Host, by who: AuditActor) async throws -> HostReading<ServiceListing> {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to read its services") }
        return try await services.refresh(host, by: who)
    }

    /// The unit named in the path, which must be one the host reported in its newest reading (404 otherwise).
    func unit(_ context: StewardRequestContext, on host: Host) throws -> ServiceUnit {
        let name = context.parameters.get("unit")?.removingPercentEncoding ?? ""
        let reading = try readings.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: host.id)
        guard UnitGuard.isUnitName(name), let unit = reading?.body.units.first(where: { $0.unit == name }) else {
            throw Problem(
                status: .notFound,
                detail: "\(host.name) has no unit \(HostText.clean(name, maxBytes: 255)) in its newest services reading; read its services again")
        }
        return unit
    }

    /// A unit read now, through the reading gate: one read of a unit at a time (others asking wait for its answer), and
    /// at most eight reads across the fleet, so reloading a unit page cannot pile up commands on a host.
    func readUnit(_ unit: String, on host: Host) async throws -> UnitDetail {
        let reader = services.reader
        return try await services.gate.read(key: "\(host.id)/unit/\(unit)") { try await UnitDetail.read(unit, on: host, with: reader) }
    }

    func queue(_ input: ServiceChanges.Request, on host: Host, context: StewardRequestContext) async throws -> Job {
        let request = try changes.prepare(input, on: host, by: context.actor, isAdmin: context.isAdmin)
        return try await area.runner.enqueue(request)
    }

    // MARK: pages

    @Sendable func hostPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let (filter, errors) = Self.filter(request, defaultState: .all, defaultType: "service")
        let reading = try readings.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: host.id)
        let units = reading?.body.units ?? []
        let shown = units.filter(filter.matches)
        let rows = shown.map { unit in
            var row: [String: Any] = [
                "unit_name": unit.unit, "unit_path": Self.pathComponent(unit.unit), "load_state": unit.load.isEmpty ? "not loaded" : unit.load,
                "active_state": unit.active, "sub_state": unit.sub, "enabled_state": unit.enabled.isEmpty ? "-" : unit.enabled,
                "unit_description": unit.description, "failed": unit.active == "failed",
            ]
            if let next = unit.nextRun { row["next_run"] = RFC3339.display(next) }
            if let last = unit.lastRun { row["last_run"] = RFC3339.display(last) }
            return ViewNode(row)
        }
        let types = Set(units.map(\.type) + ["service", filter.type]).subtracting(["all"]).sorted()
        var data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "units": rows, "shown": shown.count, "total": units.count,
            "failed_count": units.filter { $0.active == "failed" }.count, "read": reading != nil,
            "read_at": reading.map { RFC3339.display($0.readAt) } ?? "", "filter_text": filter.text,
            "states": ServiceFilter.State.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == filter.state]) },
            "types": (["all"] + types).map { ViewNode(["value": $0, "selected": $0 == filter.type]) }, "tab_services": true,
            "operator": context.identity?.permissions.contains(.operate) ?? false, "disabled": !host.enabled,
        ]
        // A section opens on any value that is there, an empty string too: only what there is goes in.
        if let error = reading?.error { data["reading_error"] = error }
        if !errors.isEmpty { data["filter_errors"] = Self.describe(errors) }
        return area.pages.page("services/host", title: "Services on \(host.name)", section: "hosts", data: data, request: request, context: context)
    }

    @Sendable func refreshFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        do {
            let reading = try await refresh(host, by: context.actor)
            if let error = reading.error {
                return area.pages.redirect(to: "/hosts/\(host.id)/services", flash: Flash(.warning, "Read \(host.name), but: \(error)"))
            }
            return area.pages.redirect(
                to: "/hosts/\(host.id)/services", flash: Flash(.success, "Read \(reading.body.units.count) units from \(host.name)."))
        } catch let problem as Problem {
            return area.pages.redirect(to: "/hosts/\(host.id)/services", flash: Flash(.error, problem.detail))
        }
    }

    @Sendable func unitPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let listed = try self.unit(context, on: host)
        var data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "unit_name": listed.unit, "unit_path": Self.pathComponent(listed.unit),
            "operator": context.identity?.permissions.contains(.operate) ?? false, "disabled": !host.enabled,
        ]
        do {
            guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled: nothing connects to it") }
            let detail = try await readUnit(listed.unit, on: host)
            data["read_at"] = RFC3339.display(detail.readAt)
            data["properties"] = UnitDetail.properties.compactMap { property in
                detail.values[property.key].map { ViewNode(["property_label": property.label, "property_value": $0]) }
            }
            if HostSecrets.mayReadJournal(context, on: host) {
                data["journal"] = detail.journal.joined(separator: "\n")
                data["has_journal"] = !detail.journal.isEmpty
                if let error = detail.journalError { data["journal_error"] = error }
            } else {
                data["journal_error"] = "this is the panel host: its journal is Steward's own and shown to admins only"
            }
        } catch let problem as Problem {
            data["detail_error"] = problem.detail
        }
        let guardReason = UnitGuard.adminReason(listed.unit, on: host)
        let mayAct = guardReason == nil ? (data["operator"] as? Bool ?? false) : context.isAdmin
        data["actions"] = UnitAction.allCases.map { action in
            var node: [String: Any] = ["action_name": action.rawValue, "action_title": action.title]
            if UnitGuard.needsConfirmation(action, listed.unit, on: host) { node["confirm_needed"] = true }
            return ViewNode(node)
        }
        data["may_act"] = mayAct && host.enabled
        if let guardReason { data["guard_reason"] = guardReason }
        return area.pages.page(
            "services/unit", title: "\(listed.unit) on \(host.name)", section: "hosts", data: data, request: request, context: context)
    }

    @Sendable func actionFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let name = context.parameters.get("unit")?.removingPercentEncoding ?? ""
        let form = try await FormBody.read(request, context: context)
        let back = UnitGuard.isUnitName(name) ? "/hosts/\(host.id)/services/" + Self.pathComponent(name) : "/hosts/\(host.id)/services"
        return try await queueAndShow(back, pages: area.pages, failure: "Not done") {
            try await queue(.init(unit: name, action: form["action"] ?? "", confirm: form["confirm"]), on: host, context: context)
        }
    }

    /// A unit name as one path segment (`\` is the one character of systemd's alphabet a URL path does not keep as is).
    static func pathComponent(_ unit: String) -> String {
        unit.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: ":-_.@"))) ?? unit
    }

    @Sendable func fleetPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let unitName = QueryInput(request).query["unit"] ?? ""
        let (filter, errors) = Self.filter(request, defaultState: unitName.isEmpty ? .failed : .all, defaultType: "all")
        let fleet = try self.fleet(filter: filter, unit: unitName)
        let rows = fleet.rows.map { row in
            ViewNode([
                "row_host_id": row.host.id, "row_host": row.host.name, "unit_name": row.unit.unit, "active_state": row.unit.active,
                "sub_state": row.unit.sub, "enabled_state": row.unit.enabled.isEmpty ? "-" : row.unit.enabled,
                "unit_description": row.unit.description, "row_read_at": RFC3339.display(row.readAt), "failed": row.unit.active == "failed",
            ])
        }
        var data: [String: Any] = [
            "rows": rows, "empty": rows.isEmpty, "filter_text": filter.text,
            "states": ServiceFilter.State.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == filter.state]) },
            "lacking": fleet.lacking.map { ViewNode(["lacking_id": $0.id, "lacking_name": $0.name]) },
            "unread": fleet.unread.map { ViewNode(["unread_id": $0.id, "unread_name": $0.name]) },
            "has_lacking": !fleet.lacking.isEmpty, "has_unread": !fleet.unread.isEmpty, "read_hosts": fleet.readHosts,
        ]
        if !unitName.isEmpty { data["unit_query"] = unitName }
        if !errors.isEmpty { data["filter_errors"] = Self.describe(errors) }
        return area.pages.page("services/fleet", title: "Services", section: "services", data: data, request: request, context: context)
    }

    struct FleetRows {
        var rows: [(host: Host, readAt: Date, unit: ServiceUnit)] = []
        /// With a unit named: hosts whose reading does not have it.
        var lacking: [Host] = []
        /// Enabled hosts with no units read yet: never read, or every reading so far failed.
        var unread: [Host] = []
        var readHosts = 0
    }

    /// Enabled hosts only: a disabled host is not looked after, and its old reading would only mislead.
    func fleet(filter: ServiceFilter, unit: String) throws -> FleetRows {
        let all = try hosts.all().filter(\.enabled)
        let byID = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
        var result = FleetRows()
        let stored = try readings.all(ServiceListing.self, kind: ServiceListing.kind).filter { byID[$0.hostID] != nil && !$0.body.units.isEmpty }
        result.readHosts = stored.count
        for reading in stored.sorted(by: { (byID[$0.hostID]?.name ?? "") < (byID[$1.hostID]?.name ?? "") }) {
            guard let host = byID[reading.hostID] else { continue }
            let units = reading.body.units.filter { (unit.isEmpty || $0.unit == unit) && filter.matches($0) }
            result.rows += units.map { (host, reading.readAt, $0) }
            if !unit.isEmpty && !reading.body.units.contains(where: { $0.unit == unit }) { result.lacking.append(host) }
        }
        let read = Set(stored.map(\.hostID))
        result.unread = all.filter { !read.contains($0.id) }
        return result
    }

    // MARK: API

    @Sendable func apiHost(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let (filter, errors) = Self.filter(request, defaultState: .all, defaultType: "service")
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let reading = try readings.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: host.id)
        return try APIJSON.response(HostServicesResource(host: host, reading: reading, filter: filter))
    }

    @Sendable func apiRefresh(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let reading = try await refresh(host, by: context.actor)
        return try APIJSON.response(HostServicesResource(host: host, reading: reading, filter: ServiceFilter(state: .all, type: "all")))
    }

    @Sendable func apiUnit(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let listed = try self.unit(context, on: host)
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled: nothing connects to it") }
        let detail = try await readUnit(listed.unit, on: host)
        var shown = detail
        if !HostSecrets.mayReadJournal(context, on: host) {
            shown.journal = []
            shown.journalError = "this is the panel host: its journal is Steward's own and shown to admins only"
        }
        return try APIJSON.response(ServiceUnitDetailResource(host: host, unit: listed, detail: shown))
    }

    @Sendable func apiAction(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let input = try await APIInputDecoding.decode(ServiceUnitActionInput.self, from: request, limit: 1 << 12)
        var errors = APIInputDecoding.wrongFields(input)
        if input.action.given == nil, errors["action"] == nil {
            errors["action"] = "required: " + UnitAction.allCases.map(\.rawValue).joined(separator: ", ")
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let name = context.parameters.get("unit")?.removingPercentEncoding ?? ""
        let job = try await queue(.init(unit: name, action: input.action.given ?? "", confirm: input.confirm.given), on: host, context: context)
        return try APIJSON.response(JobResource(job), status: .accepted)
    }

    @Sendable func apiFleet(request: Request, context: StewardRequestContext) async throws -> Response {
        let unitName = QueryInput(request).query["unit"] ?? ""
        // `unit` is only compared with the names hosts reported, never passed on, so any text is a fair question.
        let (filter, errors) = Self.filter(request, defaultState: unitName.isEmpty ? .failed : .all, defaultType: "all")
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let fleet = try self.fleet(filter: filter, unit: unitName)
        return try APIJSON.response(
            FleetServiceListResource(
                items: fleet.rows.map { FleetServiceResource(host: $0.host, readAt: $0.readAt, unit: $0.unit) },
                lacking: fleet.lacking.map(\.name), unread: fleet.unread.map(\.name)))
    }
}

/// One unit as the API shows it.
struct ServiceUnitResource: Codable, Sendable {
    let unit, type, load, active, sub, description, enabled: String
    /// A timer's next and last run; null for other units and for a timer without one.
    let nextRun, lastRun: Nullable<String>

    init(_ unit: ServiceUnit) {
        self.unit = unit.unit
        type = unit.type
        load = unit.load
        active = unit.active
        sub = unit.sub
        description = unit.description
        enabled = unit.enabled
        nextRun = Nullable(unit.nextRun.map(RFC3339.string))
        lastRun = Nullable(unit.lastRun.map(RFC3339.string))
    }
}

/// The body of a unit action: which one, and for the guarded ones the unit's name typed again.
struct ServiceUnitActionInput: APIInput {
    var action: Patch<String> = .absent
    var confirm: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case action, confirm }
}

/// One unit read from its host now (the `ServiceUnitDetail` schema).
struct ServiceUnitDetailResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    let readAt: String
    let unit: ServiceUnitResource
    /// `systemctl show` properties the host gave values for.
    let properties: [String: String]
    let journal: [String]
    /// Why the journal could not be read, in the host's words.
    let journalError: Nullable<String>

    init(host: Host, unit: ServiceUnit, detail: UnitDetail) {
        hostId = host.id
        self.host = host.name
        readAt = RFC3339.string(detail.readAt)
        self.unit = ServiceUnitResource(unit)
        properties = detail.values
        journal = detail.journal
        journalError = Nullable(detail.journalError)
    }
}

/// A host's units from its newest reading (the `HostServices` schema).
struct HostServicesResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    /// Null before the host was first read.
    let readAt: Nullable<String>
    /// Why the last reading failed or is incomplete, in the host's words.
    let error: Nullable<String>
    let total: Int
    let units: [ServiceUnitResource]

    init(host: Host, reading: HostReading<ServiceListing>?, filter: ServiceFilter) {
        hostId = host.id
        self.host = host.name
        readAt = Nullable(reading.map { RFC3339.string($0.readAt) })
        error = Nullable(reading?.error)
        total = reading?.body.units.count ?? 0
        units = (reading?.body.units ?? []).filter(filter.matches).map(ServiceUnitResource.init)
    }
}

/// One unit on one host, for the fleet view.
struct FleetServiceResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    let readAt: String
    let unit: ServiceUnitResource

    init(host: Host, readAt: Date, unit: ServiceUnit) {
        hostId = host.id
        self.host = host.name
        self.readAt = RFC3339.string(readAt)
        self.unit = ServiceUnitResource(unit)
    }
}

/// Units across the fleet (the `FleetServiceList` schema).
struct FleetServiceListResource: Codable, Sendable {
    let items: [FleetServiceResource]
    /// With `unit`: hosts whose newest reading does not have that unit.
    let lacking: [String]
    /// Enabled hosts with no units read yet (never read, or every reading failed).
    let unread: [String]
}
