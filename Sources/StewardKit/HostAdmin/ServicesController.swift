import Foundation
import Hummingbird

/// systemd units per host and across the fleet, from each host's newest services reading: the Services pages and
/// `/api/v1/services`, `/api/v1/hosts/{id}/services`. Refreshing a host reads it again in seconds.
struct ServicesController {
    let area: AreaContext
    let hosts: HostStore
    /// Reads hosts now; its store holds every host's newest reading.
    let services: ServiceReading
    var readings: HostReadingStore { services.store }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "services")
        routes.get("/services", .view, use: fleetPage)
        routes.get("/hosts/:id/services", .view, use: hostPage)
        routes.post("/hosts/:id/services/refresh", .operate, use: refreshFromPage)
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
            "Read the host's units now (two systemctl commands, seconds) and answer with the new reading", parameters: [id], schema: "HostServices",
            use: apiRefresh)
    }

    // MARK: reading the request

    func host(_ context: StewardRequestContext) throws -> Host {
        guard let id = context.parameters.get("id", as: Int64.self), let host = try hosts.host(id: id) else { throw Problem.notFound("host") }
        return host
    }

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

    func refresh(_ host: Host) async throws -> HostReading<ServiceListing> {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to read its services") }
        return try await services.refresh(host)
    }

    // MARK: pages

    @Sendable func hostPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let (filter, errors) = Self.filter(request, defaultState: .all, defaultType: "service")
        let reading = try readings.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: host.id)
        let units = reading?.body.units ?? []
        let shown = units.filter(filter.matches)
        let rows = shown.map { unit in
            ViewNode([
                "unit_name": unit.unit, "load_state": unit.load.isEmpty ? "not loaded" : unit.load, "active_state": unit.active,
                "sub_state": unit.sub, "enabled_state": unit.enabled.isEmpty ? "-" : unit.enabled, "unit_description": unit.description,
                "failed": unit.active == "failed",
            ])
        }
        let types = Set(units.map(\.type) + ["service", filter.type]).subtracting(["all"]).sorted()
        var data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "units": rows, "shown": shown.count, "total": units.count,
            "failed_count": units.filter { $0.active == "failed" }.count, "read": reading != nil,
            "read_at": reading.map { RFC3339.display($0.readAt) } ?? "", "filter_text": filter.text,
            "states": ServiceFilter.State.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == filter.state]) },
            "types": (["all"] + types).map { ViewNode(["value": $0, "selected": $0 == filter.type]) },
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
            let reading = try await refresh(host)
            if let error = reading.error {
                return area.pages.redirect(to: "/hosts/\(host.id)/services", flash: Flash(.warning, "Read \(host.name), but: \(error)"))
            }
            return area.pages.redirect(
                to: "/hosts/\(host.id)/services", flash: Flash(.success, "Read \(reading.body.units.count) units from \(host.name)."))
        } catch let problem as Problem {
            return area.pages.redirect(to: "/hosts/\(host.id)/services", flash: Flash(.error, problem.detail))
        }
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
        /// Enabled hosts never read.
        var unread: [Host] = []
        var readHosts = 0
    }

    func fleet(filter: ServiceFilter, unit: String) throws -> FleetRows {
        let all = try hosts.all()
        let byID = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
        var result = FleetRows()
        let stored = try readings.all(ServiceListing.self, kind: ServiceListing.kind)
        result.readHosts = stored.count
        for reading in stored.sorted(by: { (byID[$0.hostID]?.name ?? "") < (byID[$1.hostID]?.name ?? "") }) {
            guard let host = byID[reading.hostID] else { continue }
            let units = reading.body.units.filter { (unit.isEmpty || $0.unit == unit) && filter.matches($0) }
            result.rows += units.map { (host, reading.readAt, $0) }
            if !unit.isEmpty && !reading.body.units.contains(where: { $0.unit == unit }) { result.lacking.append(host) }
        }
        let read = Set(stored.map(\.hostID))
        result.unread = all.filter { $0.enabled && !read.contains($0.id) }
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
        let reading = try await refresh(host)
        return try APIJSON.response(HostServicesResource(host: host, reading: reading, filter: ServiceFilter(state: .all, type: "all")))
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

    init(_ unit: ServiceUnit) {
        self.unit = unit.unit
        type = unit.type
        load = unit.load
        active = unit.active
        sub = unit.sub
        description = unit.description
        enabled = unit.enabled
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
    /// Enabled hosts whose services were never read.
    let unread: [String]
}
