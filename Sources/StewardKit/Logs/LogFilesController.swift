import Foundation
import Hummingbird

/// The log files page and API: which files under /var/log are read on which host group, and how each host's last read
/// of them went.
struct LogFilesController {
    let area: AreaContext
    let hosts: HostStore
    let files: LogFileStore
    let store: LogStore

    func addRoutes(to routes: Routes) {
        routes.get("/logs/files", .view, use: page)
        routes.post("/logs/files", .admin, use: createFromPage)
        routes.post("/logs/files/:id/delete", .admin, use: deleteFromPage)
        let api = area.docs.routes(routes, tag: "logs")
        api(
            .get, "/api/v1/logs/files", .view, "listLogFiles", "Files under /var/log read on each host group's hosts", schema: "LogFileList",
            use: apiList)
        api(
            .post, "/api/v1/logs/files", .admin, "createLogFile",
            "Read a file (or a pattern of files) under /var/log on every host of a group, following rotation", request: "LogFileInput", status: 201,
            schema: "LogFile", use: apiCreate)
        api(
            .delete, "/api/v1/logs/files/{id}", .admin, "deleteLogFile", "Stop reading a file (what was read stays)",
            parameters: [.init(name: "id", location: .path, type: "integer", description: "the entry's id")], status: 204, schema: nil,
            use: apiDelete)
    }

    func groups() throws -> [String] { try hosts.groups().map(\.name) }

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        try render(request: request, context: context)
    }

    func render(
        request: Request, context: StewardRequestContext, errors: [String: String] = [:], values: [String: String] = [:],
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let all = try hosts.all()
        let states = try store.sources().filter { $0.source == JournalCollector.fileSource }
        let names = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let data: [String: Any] = [
            "files": try files.all().map { file in
                ViewNode([
                    "file_id": file.id, "file_path": file.path, "file_group": file.hostGroup.isEmpty ? "every host" : file.hostGroup,
                    "file_hosts": all.filter { $0.enabled && file.applies(to: $0) }.count, "file_comment": file.comment,
                ])
            },
            "reads": states.compactMap { state -> ViewNode? in
                guard let host = names[state.hostID], HostSecrets.mayReadJournal(context, on: host) else { return nil }
                return ViewNode([
                    "read_host": host.name, "read_at": state.readAt.map(RFC3339.display) ?? "not yet", "read_lines": state.linesTotal,
                    "read_error": state.lastError, "read_failed": !state.lastError.isEmpty,
                ])
            },
            "group_options": try groups().map { ViewNode(["option_group": $0, "option_selected": $0 == values["host_group"]]) },
            "errors": ViewNode(errors), "values": ViewNode(values), "has_errors": !errors.isEmpty,
            "admin": context.identity?.permissions.contains(.admin) ?? false,
        ]
        return area.pages.page("logs/files", title: "Log files", section: "logs", data: data, request: request, context: context, status: status)
    }

    func file(path: String, group: String, comment: String) -> LogFileSource {
        var file = LogFileSource()
        file.path = path
        file.hostGroup = group
        file.comment = comment.trimmingCharacters(in: .whitespaces)
        return file
    }

    @Sendable func createFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var values: [String: String] = [:]
        for key in ["path", "host_group", "comment"] { values[key] = form[key] ?? "" }
        do {
            let created = try files.create(
                file(path: values["path"]!, group: values["host_group"]!, comment: values["comment"]!), groups: try groups(), by: context.actor,
                now: Date())
            return area.pages.redirect(
                to: "/logs/files", flash: Flash(.success, "\(created.path) is read from the next collection round (its last megabyte first)."))
        } catch let problem as Problem {
            return try render(
                request: request, context: context, errors: problem.errors ?? ["path": problem.detail], values: values, status: .unprocessableContent)
        }
    }

    @Sendable func deleteFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try files.delete(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such log file entry")
        }
        return area.pages.redirect(to: "/logs/files", flash: Flash(.success, "That file is no longer read; what was read stays."))
    }

    @Sendable func apiList(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(ItemList(items: try files.all().map(LogFileResource.init)))
    }

    @Sendable func apiCreate(request: Request, context: StewardRequestContext) async throws -> Response {
        let input = try await APIInputDecoding.decode(LogFileInput.self, from: request)
        var errors = APIInputDecoding.wrongFields(input)
        if input.path.given == nil { errors["path"] = "required: a file under /var/log" }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let created = try files.create(
            file(path: input.path.given ?? "", group: input.hostGroup.given ?? "", comment: input.comment.given ?? ""), groups: try groups(),
            by: context.actor, now: Date())
        return try APIJSON.response(LogFileResource(created), status: .created)
    }

    @Sendable func apiDelete(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try files.delete(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such log file entry")
        }
        return Response(status: .noContent)
    }
}

struct LogFileInput: APIInput {
    var path: Patch<String> = .absent
    var hostGroup: Patch<String> = .absent
    var comment: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case path, comment
        case hostGroup = "host_group"
    }
}

struct LogFileResource: Codable, Sendable {
    let id: Int64
    let path, hostGroup, comment, createdBy, createdAt: String

    init(_ file: LogFileSource) {
        id = file.id
        path = file.path
        hostGroup = file.hostGroup
        comment = file.comment
        createdBy = file.createdBy
        createdAt = RFC3339.string(milliseconds: file.createdAt) ?? ""
    }
}
