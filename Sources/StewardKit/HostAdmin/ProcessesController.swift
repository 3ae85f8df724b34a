import Foundation
import Hummingbird

/// A host's processes, busiest first, from its newest processes reading; TERM and KILL for admins as audited jobs.
struct ProcessesController: HostScopedController {
    let area: AreaContext
    let hosts: HostStore
    let processes: ProcessReading
    var store: HostReadingStore { processes.readings.store }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "processes")
        routes.get("/hosts/:id/processes", .view, use: page)
        routes.post("/hosts/:id/processes/refresh", .operate, use: refreshFromPage)
        routes.post("/hosts/:id/processes/:pid/signal", .admin, use: signalFromPage)
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "host id")
        let order = APIOperation.Parameter(
            name: "sort", location: .query, type: "string", description: "cpu (default) or memory",
            enumValues: ProcessListing.Order.allCases.map(\.rawValue))
        let text = APIOperation.Parameter(name: "q", location: .query, type: "string", description: "part of the command line or user")
        let limit = APIOperation.Parameter.limit(default: 100, maximum: 1000)
        api(
            .get, "/api/v1/hosts/{id}/processes", .view, "hostProcesses", "A host's processes from its newest reading, busiest first",
            parameters: [id, order, text, limit], schema: "HostProcesses", use: apiList)
        api(
            .post, "/api/v1/hosts/{id}/processes/refresh", .operate, "refreshHostProcesses",
            "Read the host's processes now (one ps command) and answer with the busiest 100", parameters: [id], schema: "HostProcesses",
            use: apiRefresh)
        let pid = APIOperation.Parameter(name: "pid", location: .path, type: "integer", description: "a process id from the newest reading")
        api(
            .post, "/api/v1/hosts/{id}/processes/{pid}/signal", .admin, "signalHostProcess",
            "Send TERM or KILL to a process, as an audited job that first checks the PID still runs the command line that was read; never "
                + "the host's init or a process of Steward's own SSH sessions; admins only",
            parameters: [id, pid], request: "ProcessSignalInput", status: 202, schema: "Job", use: apiSignal)
    }

    struct View {
        var order = ProcessListing.Order.cpu
        var text = ""
        var limit = 100
        var errors: [String: String] = [:]
    }

    static func view(_ request: Request) -> View {
        let query = QueryInput(request).query
        var view = View()
        if let sort = query["sort"] {
            if let order = ProcessListing.Order(rawValue: sort) { view.order = order } else { view.errors["sort"] = "must be cpu or memory" }
        }
        if let text = query["limit"] {
            if let limit = Int(text), (1...1000).contains(limit) { view.limit = limit } else { view.errors["limit"] = "must be 1 to 1000" }
        }
        view.text = query["q"] ?? ""
        return view
    }

    func refresh(_ host: Host, by who: AuditActor) async throws -> HostReading<ProcessListing> {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to read its processes") }
        return try await processes.refresh(host, by: who)
    }

    func queue(pid: String, signal: String, on host: Host, context: StewardRequestContext) async throws -> Job {
        try await area.runner.enqueue(ProcessSignals(store: store).prepare(pid: pid, signal: signal, on: host, by: context.actor))
    }

    // MARK: pages

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let view = Self.view(request)
        let reading = try store.latest(ProcessListing.self, kind: ProcessListing.kind, hostID: host.id)
        let listing = reading?.body ?? ProcessListing(processes: [])
        let panelPID = host.transport == .local ? Int(getpid()) : nil
        let sshUser = host.transport == .ssh ? host.sshUser : nil
        let full = HostSecrets.mayRead(context, on: host)
        let index = listing.byPID
        let rows = listing.top(view.order, limit: view.limit, text: full ? view.text : "").map { process in
            var row: [String: Any] = [
                "pid": process.pid, "process_user": process.user, "cpu": String(format: "%.1f", process.cpu),
                "memory": String(format: "%.1f", process.memory), "rss_mib": String(format: "%.1f", Double(process.rssKiB) / 1024),
                "started": reading.map { RFC3339.display($0.readAt.addingTimeInterval(-Double(process.elapsedSeconds))) } ?? "",
                "command": HostSecrets.command(process.command, full: full),
            ]
            if let reason = listing.protection(of: process.pid, sshUser: sshUser, panelPID: panelPID, index: index) { row["protected"] = reason }
            return ViewNode(row)
        }
        var data: [String: Any] = [
            "host_id": host.id, "host_name": host.name, "rows": rows, "total": listing.processes.count, "read": reading != nil,
            "read_at": reading.map { RFC3339.display($0.readAt) } ?? "", "filter_text": view.text, "by_memory": view.order == .memory,
            "operator": context.identity?.permissions.contains(.operate) ?? false, "admin": context.isAdmin, "disabled": !host.enabled,
            "tab_processes": true,
        ]
        if let error = reading?.error { data["reading_error"] = error }
        if !view.errors.isEmpty { data["filter_errors"] = ServicesController.describe(view.errors) }
        return area.pages.page("processes/host", title: "Processes on \(host.name)", section: "hosts", data: data, request: request, context: context)
    }

    @Sendable func refreshFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        return try await refreshAndReturn(
            host, to: "/hosts/\(host.id)/processes", pages: area.pages, success: { "Read \($0.body.processes.count) processes from \(host.name)." }
        ) { try await refresh(host, by: context.actor) }
    }

    @Sendable func signalFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let form = try await FormBody.read(request, context: context)
        return try await queueAndShow("/hosts/\(host.id)/processes", pages: area.pages, failure: "Not sent") {
            try await queue(pid: context.parameters.get("pid") ?? "", signal: form["signal"] ?? "", on: host, context: context)
        }
    }

    // MARK: API

    @Sendable func apiList(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let view = Self.view(request)
        guard view.errors.isEmpty else { throw Problem.invalid(view.errors) }
        let reading = try store.latest(ProcessListing.self, kind: ProcessListing.kind, hostID: host.id)
        return try APIJSON.response(HostProcessesResource(host: host, reading: reading, view: view, full: HostSecrets.mayRead(context, on: host)))
    }

    @Sendable func apiRefresh(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        return try APIJSON.response(HostProcessesResource(host: host, reading: try await refresh(host, by: context.actor), view: View(), full: true))
    }

    @Sendable func apiSignal(request: Request, context: StewardRequestContext) async throws -> Response {
        let host = try self.host(context)
        let input = try await APIInputDecoding.decode(ProcessSignalInput.self, from: request, limit: 1 << 12)
        var errors = APIInputDecoding.wrongFields(input)
        if input.signal.given == nil, errors["signal"] == nil { errors["signal"] = "required: TERM or KILL" }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let job = try await queue(pid: context.parameters.get("pid") ?? "", signal: input.signal.given ?? "", on: host, context: context)
        return try APIJSON.response(JobResource(job), status: .accepted)
    }
}

struct ProcessSignalInput: APIInput {
    var signal: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case signal }
}

/// One process as the API shows it.
struct ProcessResource: Codable, Sendable {
    let pid, ppid: Int
    let user: String
    let cpuPercent, memoryPercent: Double
    let rssKib: Int
    let startedAt: String
    let command: String
}

/// A host's processes from its newest reading (the `HostProcesses` schema).
struct HostProcessesResource: Codable, Sendable {
    let hostId: Int64
    let host: String
    let readAt: Nullable<String>
    let error: Nullable<String>
    let total: Int
    let processes: [ProcessResource]

    /// `full`: command lines as they are (operators and admins); otherwise each command's program only, and no search in them.
    init(host: Host, reading: HostReading<ProcessListing>?, view: ProcessesController.View, full: Bool) {
        hostId = host.id
        self.host = host.name
        readAt = Nullable(reading.map { RFC3339.string($0.readAt) })
        error = Nullable(reading?.error)
        total = reading?.body.processes.count ?? 0
        processes = (reading?.body.top(view.order, limit: view.limit, text: full ? view.text : "") ?? []).map { process in
            ProcessResource(
                pid: process.pid, ppid: process.ppid, user: process.user, cpuPercent: process.cpu, memoryPercent: process.memory,
                rssKib: process.rssKiB,
                startedAt: RFC3339.string((reading?.readAt ?? Date()).addingTimeInterval(-Double(process.elapsedSeconds))),
                command: HostSecrets.command(process.command, full: full))
        }
    }
}
