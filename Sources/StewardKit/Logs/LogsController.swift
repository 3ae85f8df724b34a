import Foundation
import GRDB
import HTTPTypes
import Hummingbird

/// The logs page (the fleet, or one host) and the logs API: the same filters, kept in the URL.
struct LogsController {
    let area: AreaContext
    let hosts: HostStore
    let store: LogStore
    let collector: JournalCollector
    /// A few log searches at once, each on a thread of its own (a search is CPU work that can take seconds).
    let searches = LogSearches()
    /// Open follow streams: a few per person, and a bound on all of them.
    let followers = LogFollowers()

    func addRoutes(to routes: Routes) {
        routes.get("/logs", .view, use: page)
        routes.post("/logs/collect", .operate, use: collectFromPage)
        routes.get("/logs/follow", .view, use: follow)
        // "What was logged then": from a host's page, an alert and a job, the lines around that time.
        routes.get("/logs/around", .view, use: around)
        routes.get("/hosts/:id/logs", .view) { _, context in
            guard let id = context.parameters.get("id", as: Int64.self), let host = try hosts.all().first(where: { $0.id == id }) else {
                throw HTTPError(.notFound, message: "no such host")
            }
            return area.pages.redirect(to: Self.link(host: host.name, range: "1h", priority: 6))
        }
        routes.get("/jobs/:id/logs", .view) { _, context in
            guard let id = context.parameters.get("id", as: Int64.self), let job = try area.runner.store.job(id: id) else {
                throw HTTPError(.notFound, message: "no such job")
            }
            let start = (job.startedAt ?? job.createdAt) - 5 * 60_000
            let end = (job.finishedAt ?? EpochMilliseconds.from(Date())) + 5 * 60_000
            return area.pages.redirect(to: Self.link(host: job.host, from: start, to: end, priority: 6))
        }
        let api = area.docs.routes(routes, tag: "logs")
        api(
            .get, "/api/v1/logs", .view, "searchLogs",
            "Log lines newest first, with the page's filters; lines of the panel host itself are for admins only",
            parameters: Self.parameters, schema: "LogPage", use: apiSearch)
        api(
            .get, "/api/v1/logs/stream", .view, "streamLogs",
            "Every matching line as NDJSON, newest first (at most 1,000,000); with follow=true, the lines stored from now on, as they arrive",
            parameters: Self.parameters.filter { $0.name != "before" && $0.name != "limit" } + [
                .init(name: "follow", location: .query, type: "boolean", description: "stream new lines as they are stored, until the client leaves")
            ], reply: "One LogLine object per line", schema: "ndjson", contentType: "application/x-ndjson", use: apiStream)
        api(
            .get, "/api/v1/logs/sources", .view, "logSources", "Where each host's journal was read to, when, and how the last read went",
            schema: "LogSourceList", use: apiSources)
    }

    static let parameters: [APIOperation.Parameter] = [
        .init(
            name: "range", location: .query, type: "string",
            description: "15m, 1h (default), 24h, 7d, boot (each host's current boot), or custom (from and to)",
            enumValues: LogFilter.Range.allCases.map(\.rawValue)),
        .init(name: "from", location: .query, type: "string", description: "RFC 3339 start, with range=custom"),
        .init(name: "to", location: .query, type: "string", description: "RFC 3339 end, with range=custom"),
        .init(
            name: "priority", location: .query, type: "integer", description: "this priority and more urgent, 0 (emerg) to 7 (debug); 3 by default",
            minimum: 0, maximum: 7),
        .init(name: "host", location: .query, type: "string", description: "a host's name"),
        .init(name: "group", location: .query, type: "string", description: "a host group's name"),
        .init(name: "unit", location: .query, type: "string", description: "a systemd unit, as journalctl -u matches it"),
        .init(name: "identifier", location: .query, type: "string", description: "a syslog identifier (the program's name)"),
        .init(name: "q", location: .query, type: "string", description: "text the message contains, ignoring case"),
        .init(name: "regex", location: .query, type: "string", description: "a regular expression the message matches"),
        .init(name: "before", location: .query, type: "string", description: "the previous page's next position"),
        .limit(default: 100, maximum: 1000),
    ]

    func filter(_ request: Request, context: StewardRequestContext, now: Date = Date()) throws -> (LogFilter, LogQuery, [Host]) {
        let filter = LogFilter(query: QueryInput(request).query, now: now)
        guard filter.errors.isEmpty else { throw Problem.invalid(filter.errors) }
        let all = try hosts.all()
        var chosen = all
        if !filter.host.isEmpty {
            guard let host = all.first(where: { $0.name == filter.host }) else { throw Problem.invalid(["host": "no host is called \(filter.host)"]) }
            chosen = [host]
        }
        if !filter.group.isEmpty {
            chosen = chosen.filter { $0.groups.contains(filter.group) }
            if chosen.isEmpty { throw Problem.invalid(["group": "no host is in a group called \(filter.group)"]) }
        }
        // The panel host's journal is Steward's own (its secrets among it): admins only.
        chosen = chosen.filter { HostSecrets.mayReadJournal(context, on: $0) }
        var query = filter.query
        query.hostIDs = chosen.map(\.id)
        if filter.range == .boot {
            // Each host's lines since its current boot began; a host whose boot is not known (no journal read yet, or
            // syslog only) keeps the last day.
            let boots = try store.currentBoots(chosen.map(\.id))
            query.boots = boots.mapValues(\.boot)
            let unknown = chosen.contains { boots[$0.id] == nil }
            query.from = min(boots.values.map(\.started).min() ?? query.to, unknown ? query.to - 86_400_000 : query.to)
        }
        return (filter, query, chosen)
    }

    // MARK: page

    @Sendable func page(request: Request, context: StewardRequestContext) async throws -> Response {
        let all = try hosts.all()
        let asked = LogFilter(query: QueryInput(request).query, now: Date())
        var data: [String: Any] = [
            "host_options": all.sorted { $0.name < $1.name }.map { ViewNode(["option_host": $0.name, "option_selected": $0.name == asked.host]) },
            "group_options": Array(Set(all.flatMap(\.groups))).sorted().map { ViewNode(["option_group": $0, "group_selected": $0 == asked.group]) },
            "operator": context.identity?.permissions.contains(.operate) ?? false,
        ]
        for range in LogFilter.Range.allCases { data["range_\(range.rawValue)"] = asked.range == range }
        data["priority_options"] = LogLine.priorityNames.enumerated().map {
            ViewNode(["value": $0.offset, "label": "\($0.offset) \($0.element)", "selected": $0.offset == asked.maxPriority])
        }
        do {
            let (filter, query, chosen) = try self.filter(request, context: context)
            data["filter"] = filter.view
            let store = self.store
            let page = try await searches.run { try store.search(query) }
            let names = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            data["lines"] = page.hits.map { hit -> ViewNode in
                let host = names[hit.hostID]
                return ViewNode([
                    "line_time": RFC3339.display(Date(timeIntervalSince1970: Double(hit.line.time) / 1_000_000)),
                    "line_host": host?.name ?? "?", "line_host_id": hit.hostID, "line_priority": hit.line.priorityName,
                    "line_severe": hit.line.priority <= 3, "line_unit": hit.line.unit, "line_identifier": hit.line.identifier,
                    "line_message": hit.line.message,
                    "line_fields": hit.line.fields.keys.sorted().map { ViewNode(["field_name": $0, "field_value": hit.line.fields[$0] ?? ""]) },
                    "line_boot": hit.line.boot, "line_pid": hit.line.pid.map(String.init),
                ])
            }
            data["has_lines"] = !page.hits.isEmpty
            data["partial"] = page.partial
            if let next = page.next { data["next_link"] = filter.link(before: next.text) }
            let buckets = 60
            let (counts, histogramPartial) = try await searches.run { try store.histogram(query, buckets: buckets) }
            data["histogram"] = LogHistogram.svg(counts: counts, from: query.from, to: query.to, markers: try markers(query, hosts: chosen))
            data["histogram_total"] = counts.reduce(0, +)
            data["histogram_partial"] = histogramPartial
            if chosen.count == 1, let host = chosen.first, !filter.host.isEmpty {
                data["journalctl"] = filter.journalctl(host: host)
            }
            data["sources"] = try sourceRows(chosen)
            data["alert_link"] = FormQuery.link(
                "/alerts/rules/new",
                [
                    URLQueryItem(name: "source", value: LogRuleQuery.source),
                    URLQueryItem(name: "log_query", value: LogRuleQuery.text(filter)),
                ])
            data["follow_url"] = FormQuery.link(
                "/logs/follow", filter.items + [URLQueryItem(name: "after", value: try store.followStart().text)])
        } catch let problem as Problem {
            data["errors"] = (problem.errors ?? ["filter": problem.detail]).sorted { $0.key < $1.key }.map {
                ViewNode(["field": $0.key, "message": $0.value])
            }
            data["filter"] = asked.view
        }
        return area.pages.page("logs/index", title: "Logs", section: "logs", data: data, request: request, context: context)
    }

    /// The logs page for a host (or every host) over a preset range or between two times, at a priority ceiling.
    static func link(host: String?, range: String? = nil, from: Int64? = nil, to: Int64? = nil, priority: Int) -> String {
        var items = [URLQueryItem(name: "priority", value: String(priority))]
        if let from, let to {
            items += [
                URLQueryItem(name: "range", value: "custom"), URLQueryItem(name: "from", value: RFC3339.string(EpochMilliseconds.date(from))),
                URLQueryItem(name: "to", value: RFC3339.string(EpochMilliseconds.date(to))),
            ]
        } else {
            items.append(URLQueryItem(name: "range", value: range ?? "1h"))
        }
        if let host, !host.isEmpty { items.append(URLQueryItem(name: "host", value: host)) }
        return FormQuery.link("/logs", items)
    }

    /// `/logs/around?host=NAME&at=MILLISECONDS`: the quarter hour either side of a moment (an alert's change).
    @Sendable func around(request: Request, context: StewardRequestContext) async throws -> Response {
        let query = QueryInput(request).query
        guard let at = query["at"].flatMap({ Int64($0) }), (0...7_258_118_400_000).contains(at) else {
            throw HTTPError(.badRequest, message: "at: milliseconds since the epoch, between 1970 and 2200")
        }
        return area.pages.redirect(to: Self.link(host: query["host"], from: at - 15 * 60_000, to: at + 15 * 60_000, priority: 6))
    }

    /// Jobs that ran on the chosen hosts in the range: "what changed" beside the lines.
    func markers(_ query: LogQuery, hosts: [Host]) throws -> [LogHistogram.Marker] {
        let jobs = try area.runner.store.database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT id, title, started_at, host FROM jobs WHERE started_at BETWEEN ? AND ? ORDER BY started_at DESC LIMIT 200",
                arguments: [query.from, query.to])
        }.filter { row in
            // A job on a host outside the view is not what changed here; a fleet-wide job (no one host) is.
            guard let host = row["host"] as String? else { return true }
            return hosts.contains { $0.name == host }
        }
        return jobs.map {
            LogHistogram.Marker(
                time: $0["started_at"], label: "job \($0["id"] as Int64): \($0["title"] as String)", link: "/jobs/\($0["id"] as Int64)")
        }
    }

    func sourceRows(_ chosen: [Host]) throws -> [ViewNode] {
        // Every host shows its journal, read or not; a host that sends syslog shows that source too.
        let states = Dictionary(grouping: try store.sources(), by: \.hostID)
        return chosen.sorted { $0.name < $1.name }.flatMap { host -> [ViewNode] in
            let known = states[host.id] ?? []
            let sources: [LogStore.SourceState?] = known.contains { $0.source == JournalCollector.source } ? known : [nil] + known.map { $0 }
            return sources.map { state in
                ViewNode([
                    "source_host": host.name, "source_kind": state?.source ?? JournalCollector.source,
                    "source_read": state?.readAt.map(RFC3339.display) ?? "not yet", "source_lines": state?.linesTotal ?? 0,
                    "source_error": state?.lastError ?? "", "source_failed": !(state?.lastError.isEmpty ?? true),
                ])
            }
        }
    }

    @Sendable func collectFromPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let name = form["host"] ?? ""
        let chosen = try hosts.all().filter { $0.enabled && (name.isEmpty || $0.name == name) && HostSecrets.mayReadJournal(context, on: $0) }
        var stored = 0
        for host in chosen { stored += (try? await collector.collect(host)) ?? 0 }
        let back = name.isEmpty ? "/logs" : "/logs?host=\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        return area.pages.redirect(to: back, flash: Flash(.success, "Read \(chosen.count) host(s) now: \(stored) new line(s)."))
    }

    /// One shared loop for both follow streams: matching lines after `cursor`, checked every second, for at most an
    /// hour (a browser reconnects where it stopped; a script asks again). `write` gets each line with its cursor, and
    /// nil now and then when nothing came, so a client that went away is noticed.
    static func followLoop(
        store: LogStore, query: LogQuery, from cursor: LogFollowCursor, write: (LogHit?, LogFollowCursor) async throws -> Void
    ) async throws {
        var after = cursor
        var quiet = 0
        let end = Date().addingTimeInterval(3600)
        while !Task.isCancelled, Date() < end {
            let frozen = after
            let (hits, next) = try await offload { try store.newer(query, after: frozen) }
            after = next
            for (hit, position) in hits { try await write(hit, position) }
            quiet = hits.isEmpty ? quiet + 1 : 0
            if quiet % 15 == 14 { try await write(nil, after) }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Follow mode for the page: Server-Sent Events, one `line` event per new matching line, each with its cursor as
    /// the event id (the browser sends the last one back when it reconnects).
    @Sendable func follow(request: Request, context: StewardRequestContext) async throws -> Response {
        var (_, query, _) = try filter(request, context: context)
        let resume = request.headers[HTTPField.Name("Last-Event-ID")!] ?? QueryInput(request).query["after"]
        guard let start = resume.flatMap(LogFollowCursor.init(text:)) else {
            throw Problem.invalid(["after": "where following starts (the page's follow button sends it)"])
        }
        query.from = 0
        query.to = .max
        query.before = nil
        let names = Dictionary(try hosts.all().map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let ticket = try await followers.enter(context.actor.actor)
        let store = self.store
        let frozen = query
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: .init { writer in
                defer { Task { await ticket.leave() } }
                try await writer.write(ByteBuffer(string: "retry: 3000\n\n"))
                try await Self.followLoop(store: store, query: frozen, from: start) { hit, cursor in
                    guard let hit else { return try await writer.write(ByteBuffer(string: ": still following\n\n")) }
                    let line = try APIJSON.string(LogLineResource(hit, host: names[hit.hostID] ?? ""))
                    try await writer.write(ByteBuffer(string: "event: line\nid: \(cursor.text)\ndata: \(line)\n\n"))
                }
                try await writer.finish(nil)
            })
    }

    // MARK: API

    @Sendable func apiStream(request: Request, context: StewardRequestContext) async throws -> Response {
        var input = QueryInput(request)
        let follow = input.flag("follow", default: false)
        try input.check()
        var (_, query, chosen) = try filter(request, context: context)
        let names = Dictionary(chosen.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let store = self.store
        let searches = self.searches
        query.limit = 1000
        let start = try store.followStart()
        let ticket = follow ? try await followers.enter(context.actor.actor) : nil
        let frozen = query
        return Response(
            status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-store"],
            body: .init { writer in
                defer { if let ticket { Task { await ticket.leave() } } }
                if follow {
                    var live = frozen
                    live.from = 0
                    live.to = .max
                    // No keep-alive line: NDJSON has no comments; a gone client is noticed at the next line.
                    try await Self.followLoop(store: store, query: live, from: start) { hit, _ in
                        guard let hit else { return }
                        try await writer.write(ByteBuffer(string: try APIJSON.string(LogLineResource(hit, host: names[hit.hostID] ?? "")) + "\n"))
                    }
                } else {
                    var page = frozen
                    var sent = 0
                    while sent < 1_000_000 {
                        let asked = page
                        let found = try await searches.run { try store.search(asked) }
                        for hit in found.hits {
                            try await writer.write(ByteBuffer(string: try APIJSON.string(LogLineResource(hit, host: names[hit.hostID] ?? "")) + "\n"))
                        }
                        sent += found.hits.count
                        guard let next = found.next else { break }
                        page.before = next
                    }
                }
                try await writer.finish(nil)
            })
    }

    @Sendable func apiSearch(request: Request, context: StewardRequestContext) async throws -> Response {
        let (_, query, chosen) = try filter(request, context: context)
        let store = self.store
        let page = try await searches.run { try store.search(query) }
        let names = Dictionary(chosen.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        return try APIJSON.response(LogPageResource(page: page, names: names))
    }

    @Sendable func apiSources(request: Request, context: StewardRequestContext) async throws -> Response {
        let all = try hosts.all().filter { HostSecrets.mayReadJournal(context, on: $0) }
        let names = Dictionary(all.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let items = try store.sources().compactMap { state -> LogSourceResource? in
            guard let name = names[state.hostID] else { return nil }
            return LogSourceResource(
                host: name, source: state.source, readAt: Nullable(state.readAt.map(RFC3339.string)), lines: state.linesTotal,
                error: Nullable(state.lastError.isEmpty ? nil : state.lastError))
        }
        return try APIJSON.response(ItemList(items: items))
    }
}

struct LogLineResource: Codable, Sendable {
    init(_ hit: LogHit, host: String) {
        self.host = host
        time = RFC3339.string(Date(timeIntervalSince1970: Double(hit.line.time) / 1_000_000))
        priority = hit.line.priority
        priorityName = hit.line.priorityName
        unit = hit.line.unit
        identifier = hit.line.identifier
        pid = Nullable(hit.line.pid)
        message = hit.line.message
        boot = hit.line.boot
        fields = hit.line.fields
        position = hit.position.text
    }

    let host: String
    let time: String
    let priority: Int
    let priorityName: String
    let unit: String
    let identifier: String
    let pid: Nullable<Int>
    let message: String
    let boot: String
    let fields: [String: String]
    let position: String
}

struct LogPageResource: Codable, Sendable {
    let items: [LogLineResource]
    let next: Nullable<String>
    let partial: Bool

    init(page: LogPage, names: [Int64: String]) {
        items = page.hits.map { LogLineResource($0, host: names[$0.hostID] ?? "") }
        next = Nullable(page.next?.text)
        partial = page.partial
    }
}

struct LogSourceResource: Codable, Sendable {
    let host: String
    let source: String
    let readAt: Nullable<String>
    let lines: Int
    let error: Nullable<String>
}

/// At most two log searches run at once (the reading gate's bound, each search its own key), each on a thread of its
/// own; the others wait their turn.
struct LogSearches: Sendable {
    let gate = ReadingGate(limit: 2)

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await gate.read(key: UUID().uuidString) { try await offload(body) }
    }
}

/// Follow streams: four per person and 64 in all; one more is a 429 that says so.
actor LogFollowers {
    private var open: [String: Int] = [:]
    static let perPerson = 4
    static let total = 64

    struct Ticket: Sendable {
        let owner: LogFollowers
        let person: String
        func leave() async { await owner.leave(person) }
    }

    func enter(_ person: String) throws -> Ticket {
        guard open[person, default: 0] < Self.perPerson, open.values.reduce(0, +) < Self.total else {
            throw Problem(
                status: .tooManyRequests,
                detail:
                    "too many log streams are open (\(Self.perPerson) per person, \(Self.total) in all); close one, or pause following in another tab"
            )
        }
        open[person, default: 0] += 1
        return Ticket(owner: self, person: person)
    }

    func leave(_ person: String) {
        open[person, default: 1] -= 1
        if open[person] == 0 { open[person] = nil }
    }
}
