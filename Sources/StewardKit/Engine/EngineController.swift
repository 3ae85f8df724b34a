import Foundation
import GRDB
import HTTPTypes
import Hummingbird

/// Starting playbook runs and reading their per-host results (`/api/v1/playbooks`, `/api/v1/jobs/{id}/hosts`).
struct EngineController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let engine: Engine

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "engine")
        api(.get, "/api/v1/playbooks", .view, "listPlaybooks", "Playbooks in the config repo, and its commit", schema: "PlaybookList", use: apiList)
        api(
            .post, "/api/v1/playbooks/run", .operate, "runPlaybook", "Run a playbook from the config repo on hosts or groups, as a job",
            request: "PlaybookRun", status: 202, schema: "Job", use: apiRun)
        let idParameter = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "job id")
        api(
            .get, "/api/v1/jobs/{id}/hosts", .view, "jobHostResults", "Per-host results of a playbook job, with each task's outcome",
            parameters: [idParameter], schema: "HostResults", use: apiResults)
        api(
            .post, "/api/v1/adhoc", .admin, "runAdhoc",
            "Run one command (an argv list, never a shell string) on hosts or groups through the engine; admins only", request: "AdhocRun",
            status: 202, schema: "Job", use: apiAdhoc)
        routes.post("/hosts/:id/facts", .operate, use: gatherFacts)
        routes.get("/hosts/command", .admin, use: commandPage)
        routes.post("/hosts/command", .admin, use: commandFromPage)
    }

    @Sendable func apiList(request: Request, context: Context) async throws -> Response {
        try APIJSON.response(PlaybookList(items: try engine.repository.playbooks(), commit: try engine.repository.head()))
    }

    @Sendable func apiRun(request: Request, context: Context) async throws -> Response {
        let input = try await APIInputDecoding.decode(PlaybookRunInput.self, from: request, limit: 1 << 16)
        let run = try input.run()
        var jobRequest: JobRequest
        do {
            jobRequest = try engine.request(run, startedBy: context.actor.actor, reason: input.reason.given ?? "started through the API")
        } catch let error as AccessError {
            throw Problem.invalid([error.message.contains("playbook") ? "playbook" : "targets": error.message])
        }
        jobRequest.source = context.clientAddress
        let job = try await area.runner.enqueue(jobRequest)
        return try APIJSON.response(JobResource(job), status: .accepted)
    }

    /// Facts for one host now, instead of waiting for the hourly schedule.
    @Sendable func gatherFacts(request: Request, context: Context) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), let host = try engine.hosts.host(id: id) else {
            throw HTTPError(.notFound, message: "there is no such host")
        }
        do {
            var jobRequest = try engine.request(
                PlaybookRun(playbook: "playbooks/facts.yml", targets: [host.name]), startedBy: context.actor.actor,
                reason: "facts requested on the host page")
            jobRequest.source = context.clientAddress
            let job = try await area.runner.enqueue(jobRequest)
            return area.pages.redirect(to: "/jobs/\(job.id)")
        } catch let error as AccessError {
            return area.pages.redirect(to: "/hosts/\(host.id)", flash: Flash(.error, error.message))
        }
    }

    @Sendable func commandPage(request: Request, context: Context) async throws -> Response {
        let target = request.uri.queryParameters["target"].map(String.init) ?? ""
        return area.pages.page(
            "hosts/command", title: "Run a command", section: "hosts", data: ["targets": target], request: request, context: context)
    }

    /// The form: targets separated by commas, the command one argument per line (so nothing is ever split by a shell).
    @Sendable func commandFromPage(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let targets = HostSettings.list(form["targets"] ?? "")
        let command = (form["arguments"] ?? "").replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: true)
            .map(String.init)
        var run = PlaybookRun(playbook: "", targets: targets)
        run.command = command
        run.timeoutSeconds = 600
        do {
            guard !targets.isEmpty else { throw AccessError("name at least one host or group; a command never goes to every host by default") }
            var jobRequest = try engine.request(run, startedBy: context.actor.actor, reason: "ad-hoc command from the Hosts page")
            jobRequest.source = context.clientAddress
            jobRequest.audit = Self.adhocAudit(context.actor, command: command, targets: targets)
            let job = try await area.runner.enqueue(jobRequest)
            return area.pages.redirect(to: "/jobs/\(job.id)")
        } catch let error as AccessError {
            return area.pages.page(
                "hosts/command", title: "Run a command", section: "hosts",
                data: ["targets": form["targets"] ?? "", "arguments": form["arguments"] ?? "", "error": error.message], request: request,
                context: context,
                status: .unprocessableContent)
        }
    }

    /// The ad-hoc command's own audit row, written with the job.
    static func adhocAudit(_ actor: AuditActor, command: [String], targets: [String]) -> JobAudit {
        JobAudit(
            by: actor, action: "adhoc.run",
            after: ["command": .array(command.map(JSONValue.string)), "targets": .array(targets.map(JSONValue.string))])
    }

    @Sendable func apiAdhoc(request: Request, context: Context) async throws -> Response {
        let input = try await APIInputDecoding.decode(AdhocInput.self, from: request, limit: 1 << 16)
        let (command, targets) = try input.checked()
        var run = PlaybookRun(playbook: "", targets: targets)
        run.command = command
        run.timeoutSeconds = 600
        var jobRequest: JobRequest
        do {
            jobRequest = try engine.request(run, startedBy: context.actor.actor, reason: input.reason.given ?? "ad-hoc command")
        } catch let error as AccessError {
            throw Problem.invalid([error.message.contains("command") ? "command" : "targets": error.message])
        }
        jobRequest.source = context.clientAddress
        jobRequest.audit = Self.adhocAudit(context.actor, command: command, targets: targets)
        let job = try await area.runner.enqueue(jobRequest)
        return try APIJSON.response(JobResource(job), status: .accepted)
    }

    @Sendable func apiResults(request: Request, context: Context) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try area.runner.store.job(id: id) != nil else {
            throw Problem.notFound("that job")
        }
        let results = try Engine.results(engine.database, job: id)
        let events = Dictionary(grouping: try Engine.taskEvents(engine.database, job: id), by: \.host)
        return try APIJSON.response(ItemList(items: results.map { HostResultResource($0, events: events[$0.host] ?? []) }))
    }
}

/// The playbooks in the config repository at its newest commit.
struct PlaybookList: Codable, Sendable {
    let items: [String]
    let commit: String
}
