import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore

/// The Jobs pages and `/api/v1/jobs`.
struct JobController {
    /// The shared plumbing; job lists are answered from `area.responses`, encoded once per change of the jobs table.
    let area: AreaContext

    var store: JobStore { area.runner.store }
    var feed: JobFeed { JobFeed(store: area.runner.store, events: area.runner.events) }

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "jobs")
        routes.get("/jobs", .view, use: listPage)
        routes.get("/jobs/:id", .view, use: showPage)
        routes.get("/jobs/:id/events", .view, use: eventStream)
        routes.get("/jobs/:id/log.txt", .view, use: rawLog)
        routes.post("/jobs/:id/cancel", .operate, use: cancelFromPage)

        let idParameter = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "job id")
        api(
            .get, "/api/v1/jobs", .view, "listJobs", "List jobs, newest first",
            parameters: [
                .init(
                    name: "state", location: .query, type: "string", description: "only jobs in this state",
                    enumValues: Job.State.allCases.map(\.rawValue)),
                .init(name: "kind", location: .query, type: "string", description: "only jobs of this kind"),
                .init(name: "host", location: .query, type: "string", description: "only jobs for this host"),
                .limit(default: 50, maximum: 200), .cursor,
            ], schema: "JobList", use: apiList)
        api(.get, "/api/v1/jobs/{id}", .view, "getJob", "Read one job", parameters: [idParameter], schema: "Job", use: apiShow)
        api(
            .post, "/api/v1/jobs/{id}/cancel", .operate, "cancelJob",
            "Cancel a queued or running job; a running job's whole process group is stopped", parameters: [idParameter], status: 202,
            reply: "Cancellation requested; the job as it is now", schema: "Job", use: apiCancel)
        api(
            .get, "/api/v1/jobs/{id}/log", .view, "streamJobLog",
            "The job's output as NDJSON: stored chunks, then live events until the job ends (follow=false stops after the stored ones)",
            parameters: [
                idParameter,
                .init(name: "follow", location: .query, type: "boolean", description: "keep streaming while the job runs (default true)"),
                .init(
                    name: "after", location: .query, type: "integer", description: "resume after this chunk sequence number", minimum: 0,
                    maximum: Int(Int64.max)),
            ], reply: "One JSON object per line: {type: log|progress|end, ...}", schema: "ndjson", contentType: "application/x-ndjson", use: apiLog)
    }

    // MARK: pages

    @Sendable func listPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = JobFilter()
        var problems: [String] = []
        if let state = query["state"].map(String.init), !state.isEmpty {
            if let parsed = Job.State(rawValue: state) { filter.state = parsed } else { problems.append("unknown state \"\(state)\"") }
        }
        filter.kind = query["kind"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        filter.host = query["host"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        filter.before = query["cursor"].flatMap { Int64($0) }
        let jobs = try store.list(filter)
        let counts = try store.countsByState()
        var nextLink: String?
        if jobs.count == filter.limit, let last = jobs.last {
            nextLink = Self.link("/jobs", filter: filter, cursor: last.id)
        }
        let data: [String: Any?] = [
            "jobs": jobs.map(Self.view),
            "empty": jobs.isEmpty,
            "filter_kind": filter.kind ?? "", "filter_host": filter.host ?? "",
            "states": Job.State.allCases.map { ViewNode(["value": $0.rawValue, "selected": $0 == filter.state, "count": counts[$0] ?? 0]) },
            "kinds": (try store.distinctKinds()).map { ViewNode(["value": $0, "selected": $0 == filter.kind]) },
            "filtered": filter.state != nil || filter.kind != nil || filter.host != nil,
            "next_link": nextLink, "problems": problems,
            "operator": context.identity?.permissions.contains(.operate) ?? false,
        ]
        return area.pages.page("jobs/list", title: "Jobs", section: "jobs", data: data.compactMapValues { $0 }, request: request, context: context)
    }

    @Sendable func showPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let job = try loadJob(context)
        let shownBytes = 1 << 20
        var chunks = try store.logChunks(id: job.id)
        var trimmed = false
        var total = chunks.reduce(0) { $0 + $1.data.count }
        while total > shownBytes, chunks.count > 1 {
            total -= chunks.removeFirst().data.count
            trimmed = true
        }
        var data = Self.values(job)
        data["log"] = chunks.map(\.text).joined()
        data["log_trimmed"] = trimmed
        data["last_seq"] = chunks.last?.seq ?? 0
        let results = try Engine.results(store.database, job: job.id)
        data["has_results"] = !results.isEmpty
        data["results"] = results.map { result in
            ViewNode([
                "host": result.host, "status": result.status, "ok": result.ok, "changed": result.changed, "failed": result.failed,
                "unreachable": result.unreachable, "skipped": result.skipped, "message": result.message,
                "badge": ["failed": "failed", "unreachable": "failed", "changed": "running", "ok": "succeeded"][result.status] ?? "cancelled",
            ])
        }
        let kept = try store.bookkeeping(id: job.id)
        let tasks = try Engine.taskEvents(store.database, job: job.id, limit: 2000)
        data["config_commit"] = kept.configCommit
        // Event-based retention: a failure is kept until acknowledged (when the policy says so); pruned logs say so.
        data["acknowledgeable"] = (job.state == .failed || job.state == .interrupted) && kept.acknowledgedAt == nil
        data["acknowledged"] = kept.acknowledgedAt.map { "\(kept.acknowledgedBy ?? "") at \(RFC3339.display(EpochMilliseconds.date($0)))" }
        data["log_pruned"] = kept.logPrunedAt.map { RFC3339.display(EpochMilliseconds.date($0)) }
        data["tasks"] = tasks.map { event in
            ViewNode(["host": event.host, "task": event.task, "status": event.status, "detail": event.detail])
        }
        return area.pages.page(
            "jobs/show", title: "Job \(job.id): \(job.title)", section: "jobs", data: ["job": ViewNode(data)], request: request, context: context)
    }

    @Sendable func rawLog(request: Request, context: StewardRequestContext) async throws -> Response {
        let job = try loadJob(context)
        let chunks = try store.logChunks(id: job.id)
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/plain; charset=utf-8",
                .contentDisposition: "attachment; filename=\"steward-job-\(job.id).log\"",
            ],
            body: .init(contentsOf: chunks.map { ByteBuffer(bytes: $0.data) }))
    }

    @Sendable func cancelFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let job = try loadJob(context)
        guard !job.state.isFinished else {
            return area.pages.redirect(
                to: "/jobs/\(job.id)", flash: Flash(.warning, "Job \(job.id) already ended (\(job.state.rawValue)); nothing to cancel."))
        }
        try await area.runner.cancel(id: job.id, by: context.actor)
        return area.pages.redirect(
            to: "/jobs/\(job.id)", flash: Flash(.success, "Cancellation of job \(job.id) requested; its processes are being stopped."))
    }

    /// Server-Sent Events for the job page; each event's data is JSON so any byte in the output survives intact.
    @Sendable func eventStream(request: Request, context: StewardRequestContext) async throws -> Response {
        let job = try loadJob(context)
        let after =
            request.headers[HTTPField.Name("Last-Event-ID")!].flatMap { Int64($0) }
            ?? request.uri.queryParameters["after"].flatMap { Int64($0) } ?? 0
        let events = withKeepalive(feed.events(job: job.id, afterSeq: after))
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: .init { writer in
                try await writer.write(ByteBuffer(string: "retry: 3000\n\n"))
                for await event in events {
                    try await writer.write(ByteBuffer(string: Self.sse(event)))
                }
                try await writer.finish(nil)
            })
    }

    // MARK: API

    @Sendable func apiList(request: Request, context: StewardRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = JobFilter()
        var errors: [String: String] = [:]
        if let state = query["state"].map(String.init) {
            if let parsed = Job.State(rawValue: state) {
                filter.state = parsed
            } else {
                errors["state"] = "must be one of " + Job.State.allCases.map(\.rawValue).joined(separator: ", ")
            }
        }
        filter.kind = query["kind"].map(String.init)
        filter.host = query["host"].map(String.init)
        if let limit = query["limit"] {
            if let value = Int(limit), (1...200).contains(value) {
                filter.limit = value
            } else {
                errors["limit"] = "must be an integer from 1 to 200"
            }
        }
        if let cursor = query["cursor"] {
            if let value = Int64(cursor), value > 0 {
                filter.before = value
            } else {
                errors["cursor"] = "must be the cursor from a previous page's next link"
            }
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return try area.responses.json(for: request, tables: ["jobs"]) {
            let jobs = try store.list(filter)
            let next = jobs.count == filter.limit ? jobs.last.map { Self.link("/api/v1/jobs", filter: filter, cursor: $0.id) } : nil
            return ByteBuffer(bytes: try APIJSON.encode(JobListResource(items: jobs.map(JobResource.init), next: Nullable(next))))
        }
    }

    @Sendable func apiShow(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(JobResource(try loadJob(context)))
    }

    @Sendable func apiCancel(request: Request, context: StewardRequestContext) async throws -> Response {
        let job = try loadJob(context)
        guard !job.state.isFinished else {
            throw Problem(status: .conflict, detail: "job \(job.id) already ended (\(job.state.rawValue)); nothing to cancel")
        }
        let updated = try await area.runner.cancel(id: job.id, by: context.actor) ?? job
        return try APIJSON.response(JobResource(updated), status: .accepted)
    }

    @Sendable func apiLog(request: Request, context: StewardRequestContext) async throws -> Response {
        let job = try loadJob(context)
        var query = QueryInput(request)
        let follow = query.flag("follow", default: true)
        let after = Int64(query.integer("after", in: 0...Int.max, default: 0))
        try query.check()
        let feed = self.feed
        let store = self.store
        return Response(
            status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-store"],
            body: .init { writer in
                if follow {
                    for await event in feed.events(job: job.id, afterSeq: after) {
                        try await writer.write(ByteBuffer(string: Self.ndjson(event)))
                    }
                } else {
                    for chunk in try store.logChunks(id: job.id, after: after) {
                        try await writer.write(ByteBuffer(string: Self.ndjson(.log(chunk))))
                    }
                }
                try await writer.finish(nil)
            })
    }

    // MARK: helpers

    func loadJob(_ context: StewardRequestContext) throws -> Job {
        guard let id = context.parameters.get("id", as: Int64.self) else { throw HTTPError(.notFound) }
        guard let job = try store.job(id: id) else {
            throw HTTPError(.notFound, message: "job \(id) does not exist")
        }
        return job
    }

    static func link(_ base: String, filter: JobFilter, cursor: Int64) -> String {
        var items = [URLQueryItem(name: "cursor", value: String(cursor))]
        if let state = filter.state { items.append(.init(name: "state", value: state.rawValue)) }
        if let kind = filter.kind { items.append(.init(name: "kind", value: kind)) }
        if let host = filter.host { items.append(.init(name: "host", value: host)) }
        if filter.limit != 50 { items.append(.init(name: "limit", value: String(filter.limit))) }
        return FormQuery.link(base, items)
    }

    static func view(_ job: Job) -> ViewNode { ViewNode(values(job)) }

    static func values(_ job: Job) -> [String: Any?] {
        [
            "id": job.id, "kind": job.kind, "title": job.title, "state": job.state.rawValue, "host": job.host,
            "started_by": job.startedBy, "reason": job.reason, "error": job.error, "active": !job.state.isFinished,
            "created": DisplayTime.text(job.createdAt), "created_iso": RFC3339.string(milliseconds: job.createdAt) ?? "",
            "started": job.startedAt.map(DisplayTime.text), "finished": job.finishedAt.map(DisplayTime.text),
            "duration": DisplayTime.duration(from: job.startedAt, to: job.finishedAt),
            "progress_percent": job.progressPercent.map { Int($0.rounded()) }, "progress_message": job.progressMessage,
            // Plain strings for table cells: a section over a String or Int costs the renderer a failing cast per row.
            "progress_text": job.progressPercent.map { "\(Int($0.rounded()))%" } ?? "",
            "host_label": job.host ?? "panel", "host_class": job.host == nil ? "muted" : "",
            "log_bytes": job.logBytes, "log_truncated": job.logTruncated, "schedule_id": job.scheduleID,
        ]
    }

    /// One event of a job's live log, as the NDJSON and SSE streams send it.
    struct EventLine: Codable, Sendable {
        let type: String
        var seq: Int64?
        var at: String?
        var text: String?
        var percent: Nullable<Double>?
        var message: String?
        var state: String?
    }

    static func eventObject(_ event: JobEvent) -> (name: String, id: Int64?, body: EventLine) {
        switch event {
        case .log(let chunk):
            return ("log", chunk.seq, EventLine(type: "log", seq: chunk.seq, at: RFC3339.string(milliseconds: chunk.at) ?? "", text: chunk.text))
        case .progress(let percent, let message):
            return ("progress", nil, EventLine(type: "progress", percent: Nullable(percent), message: message))
        case .finished(let state):
            return ("end", nil, EventLine(type: "end", state: state.rawValue))
        }
    }

    static func jsonLine(_ body: EventLine) -> String {
        String(decoding: (try? APIJSON.encode(body)) ?? Data("{}".utf8), as: UTF8.self)
    }

    static func ndjson(_ event: JobEvent) -> String { jsonLine(eventObject(event).body) + "\n" }

    static func sse(_ event: JobEvent?) -> String {
        guard let event else { return ": keepalive\n\n" }
        let object = eventObject(event)
        return (object.id.map { "id: \($0)\n" } ?? "") + "event: \(object.name)\ndata: \(jsonLine(object.body))\n\n"
    }
}

/// Interleave a nil every 15 s so proxies and browsers keep an idle event stream open.
func withKeepalive(_ events: AsyncStream<JobEvent>) -> AsyncStream<JobEvent?> {
    AsyncStream { continuation in
        let forward = Task {
            for await event in events { continuation.yield(event) }
            continuation.finish()
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(15))
                if !Task.isCancelled { continuation.yield(nil) }
            }
        }
        continuation.onTermination = { _ in
            forward.cancel()
            ticker.cancel()
        }
    }
}

/// Times on pages: UTC, unambiguous, sortable; the browser script adds the local rendering.
enum DisplayTime {
    static func text(_ milliseconds: Int64) -> String { RFC3339.display(EpochMilliseconds.date(milliseconds)) }

    static func duration(from start: Int64?, to end: Int64?) -> String? {
        guard let start else { return nil }
        let seconds = Int(((end ?? EpochMilliseconds.from(Date())) - start) / 1000)
        // Past an hour the seconds are noise.
        return DurationText.exact(seconds: seconds < 3600 ? seconds : seconds / 60 * 60)
    }
}
