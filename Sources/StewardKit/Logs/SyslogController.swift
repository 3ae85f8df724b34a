import Foundation
import Hummingbird

/// The syslog intake's page and API: where it listens, who may send and whose lines theirs are, and what became of
/// every sender's messages.
struct SyslogController {
    let area: AreaContext
    let hosts: HostStore
    let intake: SyslogIntake
    var senders: SyslogSenderStore { intake.senders }

    func addRoutes(to routes: Routes) {
        routes.get("/logs/syslog", .view, use: page)
        routes.post("/logs/syslog/senders", .admin, use: createFromPage)
        routes.post("/logs/syslog/senders/:id/delete", .admin, use: deleteFromPage)
        let api = area.docs.routes(routes, tag: "logs")
        api(
            .get, "/api/v1/logs/syslog", .view, "syslogIntake",
            "Where the syslog intake listens, the senders allowed, and what became of each sender's messages since Steward started",
            schema: "SyslogIntake", use: apiStatus)
        api(
            .post, "/api/v1/logs/syslog/senders", .admin, "createSyslogSender",
            "Allow an address or range to send syslog; its lines go to the host named, or to the host with the sender's address",
            request: "SyslogSenderInput", status: 201, schema: "SyslogSender", use: apiCreate)
        api(
            .delete, "/api/v1/logs/syslog/senders/{id}", .admin, "deleteSyslogSender", "Stop accepting syslog from an address or range",
            parameters: [.init(name: "id", location: .path, type: "integer", description: "the sender entry's id")], status: 204, schema: nil,
            use: apiDelete)
    }

    // MARK: page

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        try render(request: request, context: context)
    }

    func render(
        request: Request, context: StewardRequestContext, errors: [String: String] = [:], values: [String: String] = [:],
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let all = try hosts.all()
        let names = Dictionary(all.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let state = intake.status()
        let settings = intake.settings
        let data: [String: Any] = [
            "enabled": intake.enabled,
            "listening": state.listening.map { ViewNode(["listen_on": $0]) },
            "problems": state.problems.map { ViewNode(["problem": $0]) },
            "senders": try senders.all().map { sender in
                ViewNode([
                    "sender_id": sender.id, "sender_network": sender.network,
                    "sender_host": sender.hostID.flatMap { names[$0] } ?? "the host with the sender's address",
                    "sender_zone": sender.timeZone.isEmpty ? "the host's own" : sender.timeZone, "sender_comment": sender.comment,
                    "sender_by": sender.createdBy,
                ])
            },
            "counts": state.senders.map { entry in
                ViewNode([
                    "count_address": entry.address, "count_received": entry.counts.received, "count_stored": entry.counts.stored,
                    "count_refused": entry.counts.refused, "count_unattributed": entry.counts.unattributed, "count_damaged": entry.counts.damaged,
                    "count_dropped": entry.counts.dropped, "count_last": entry.counts.lastAt.map(RFC3339.display) ?? "",
                ])
            },
            "host_options": all.sorted { $0.name < $1.name }.map {
                ViewNode(["option_host": $0.name, "option_selected": $0.name == values["host"]])
            },
            "port": settings.port, "tls_port": settings.tlsPort,
            "errors": ViewNode(errors), "values": ViewNode(values), "has_errors": !errors.isEmpty,
            "admin": context.identity?.permissions.contains(.admin) ?? false,
        ]
        return area.pages.page("logs/syslog", title: "Syslog intake", section: "logs", data: data, request: request, context: context, status: status)
    }

    /// A sender from a form's or the API's fields: network, host (a name; empty for by address), time_zone, comment.
    func sender(network: String, host: String, timeZone: String, comment: String, hosts all: [Host]) throws -> SyslogSender {
        var sender = SyslogSender()
        sender.network = network.trimmingCharacters(in: .whitespaces)
        sender.timeZone = timeZone.trimmingCharacters(in: .whitespaces)
        sender.comment = comment.trimmingCharacters(in: .whitespaces)
        let hostName = host.trimmingCharacters(in: .whitespaces)
        if !hostName.isEmpty {
            guard let found = all.first(where: { $0.name == hostName }) else {
                var errors = sender.problems(hosts: all)
                errors["host"] = "no host is called \(hostName)"
                throw Problem.invalid(errors)
            }
            sender.hostID = found.id
        }
        return sender
    }

    @Sendable func createFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var values: [String: String] = [:]
        for key in ["network", "host", "time_zone", "comment"] { values[key] = form[key] ?? "" }
        let all = try hosts.all()
        do {
            let created = try senders.create(
                try sender(
                    network: values["network"]!, host: values["host"]!, timeZone: values["time_zone"]!, comment: values["comment"]!, hosts: all),
                hosts: all, by: context.actor, now: Date())
            intake.reload()
            return area.pages.redirect(to: "/logs/syslog", flash: Flash(.success, "Syslog from \(created.network) is accepted now."))
        } catch let problem as Problem {
            return try render(
                request: request, context: context, errors: problem.errors ?? ["network": problem.detail], values: values,
                status: .unprocessableContent)
        }
    }

    @Sendable func deleteFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try senders.delete(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such sender")
        }
        intake.reload()
        return area.pages.redirect(to: "/logs/syslog", flash: Flash(.success, "That sender's syslog is refused from now on."))
    }

    // MARK: API

    @Sendable func apiStatus(request: Request, context: StewardRequestContext) async throws -> Response {
        let names = Dictionary(try hosts.all().map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let state = intake.status()
        return try APIJSON.response(
            SyslogIntakeResource(
                port: intake.settings.port, tlsPort: intake.settings.tlsPort, listening: state.listening, problems: state.problems,
                senders: try senders.all().map { SyslogSenderResource($0, names: names) },
                traffic: state.senders.map { entry in
                    SyslogTrafficResource(
                        address: entry.address, received: entry.counts.received, stored: entry.counts.stored, refused: entry.counts.refused,
                        unattributed: entry.counts.unattributed, damaged: entry.counts.damaged, dropped: entry.counts.dropped,
                        lastAt: Nullable(entry.counts.lastAt.map(RFC3339.string)))
                }))
    }

    @Sendable func apiCreate(request: Request, context: StewardRequestContext) async throws -> Response {
        let input = try await APIInputDecoding.decode(SyslogSenderInput.self, from: request)
        var errors = APIInputDecoding.wrongFields(input)
        if input.network.given == nil { errors["network"] = "required: an address or CIDR range" }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let all = try hosts.all()
        let created = try senders.create(
            try sender(
                network: input.network.given ?? "", host: input.host.given ?? "", timeZone: input.timeZone.given ?? "",
                comment: input.comment.given ?? "", hosts: all), hosts: all, by: context.actor, now: Date())
        intake.reload()
        let names = Dictionary(all.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        return try APIJSON.response(SyslogSenderResource(created, names: names), status: .created)
    }

    @Sendable func apiDelete(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try senders.delete(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such sender")
        }
        intake.reload()
        return Response(status: .noContent)
    }
}

struct SyslogSenderInput: APIInput {
    var network: Patch<String> = .absent
    var host: Patch<String> = .absent
    var timeZone: Patch<String> = .absent
    var comment: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case network, host, comment
        case timeZone = "time_zone"
    }
}

struct SyslogSenderResource: Codable, Sendable {
    let id: Int64
    let network: String
    let host: Nullable<String>
    let timeZone: String
    let comment: String
    let createdBy: String
    let createdAt: String

    init(_ sender: SyslogSender, names: [Int64: String]) {
        id = sender.id
        network = sender.network
        host = Nullable(sender.hostID.flatMap { names[$0] })
        timeZone = sender.timeZone
        comment = sender.comment
        createdBy = sender.createdBy
        createdAt = RFC3339.string(milliseconds: sender.createdAt) ?? ""
    }
}

struct SyslogTrafficResource: Codable, Sendable {
    let address: String
    let received, stored, refused, unattributed, damaged, dropped: Int
    let lastAt: Nullable<String>
}

struct SyslogIntakeResource: Codable, Sendable {
    let port: Int
    let tlsPort: Int
    let listening: [String]
    let problems: [String]
    let senders: [SyslogSenderResource]
    let traffic: [SyslogTrafficResource]
}
