import Foundation
import Hummingbird

/// The fleet overview (on the dashboard), the host dashboard, and the metrics API.
struct MonitoringController {
    let area: AreaContext
    let dashboard: MetricsDashboard

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "metrics")
        routes.get("/hosts/:id/metrics", .view, use: hostPage)
        let hostParameter = APIOperation.Parameter(name: "host", location: .query, type: "string", description: "host id or name")
        api(
            .get, "/api/v1/metrics/series", .view, "listSeries", "Stored series, with their newest sample",
            parameters: [
                hostParameter, .init(name: "name", location: .query, type: "string", description: "metric name"),
                .limit(default: 500, maximum: 5000), .cursor,
            ], schema: "MetricSeriesList", use: apiSeries)
        api(
            .get, "/api/v1/metrics/query", .view, "queryRange",
            "One value per step for each matching series; the resolution (raw, 1m, 1h) follows the step and range",
            parameters: [
                hostParameter, .init(name: "name", location: .query, type: "string", description: "metric name (or give series)"),
                .init(name: "series", location: .query, type: "string", description: "comma-separated series ids"),
                .init(name: "match", location: .query, type: "string", description: "label=value filters, comma-separated"),
                .init(
                    name: "fn", location: .query, type: "string", description: "aggregation per step (default avg; rate for counters)",
                    enumValues: MetricFunction.allCases.map(\.rawValue)),
                .init(name: "range", location: .query, type: "string", description: "how far back from now, e.g. 1h, 7d (default 1h)"),
                .init(name: "from", location: .query, type: "string", description: "RFC 3339 time or epoch seconds (instead of range)"),
                .init(name: "to", location: .query, type: "string", description: "RFC 3339 time or epoch seconds (default now)"),
                .init(name: "step", location: .query, type: "string", description: "e.g. 15s, 5m, 1h (default: about 240 steps)"),
            ], schema: "MetricQueryResult", use: apiQuery)
        api(
            .get, "/api/v1/metrics/fleet", .view, "fleetSummary",
            "Every host's state and newest CPU, memory, fullest filesystem, load per core and network, with group totals",
            parameters: [
                .init(name: "group", location: .query, type: "string", description: "only hosts in this group"),
                .init(name: "tag", location: .query, type: "string", description: "only hosts with this tag"),
            ], schema: "FleetSummary", use: apiFleet)
        PromQLController(area: area, dashboard: dashboard).addRoutes(api)
    }

    static var schemas: [String: JSONValue] {
        let point: JSONValue = [
            "type": "array", "prefixItems": [["type": "string", "format": "date-time"], SampleValue.schema],
        ]
        let labels: JSONValue = ["type": "object", "additionalProperties": ["type": "string"]]
        let number = APISchemas.nullable("number")
        return [
            "MetricSeriesList": [
                "type": "object", "required": ["items", "next"],
                "properties": [
                    "items": [
                        "type": "array",
                        "items": [
                            "type": "object", "required": ["id", "host_id", "host", "name", "labels", "type", "latest_at", "latest_value"],
                            "properties": [
                                "id": ["type": "integer"], "host_id": ["type": "integer"], "host": ["type": "string"], "name": ["type": "string"],
                                "labels": labels, "type": ["type": "string"], "latest_at": APISchemas.timestamp,
                                "latest_value": SampleValue.schema,
                            ],
                        ],
                    ],
                    "next": ["type": ["string", "null"]],
                ],
            ],
            "MetricQueryResult": [
                "type": "object", "required": ["from", "function", "resolution", "series", "step_seconds", "to"],
                "properties": [
                    "resolution": ["type": "string", "enum": JSONValue(MetricResolution.allCases.map(\.label))], "step_seconds": ["type": "number"],
                    "from": ["type": "string", "format": "date-time"], "to": ["type": "string", "format": "date-time"],
                    "function": ["type": "string"],
                    "series": [
                        "type": "array",
                        "items": [
                            "type": "object", "required": ["id", "host", "name", "labels", "points"],
                            "properties": [
                                "id": ["type": "integer"], "host": ["type": "string"], "name": ["type": "string"], "labels": labels,
                                "points": ["type": "array", "items": point],
                            ],
                        ],
                    ],
                ],
            ],
            "FleetSummary": [
                "type": "object", "required": ["hosts", "groups", "as_of"],
                "properties": [
                    "hosts": APISchemas.arrayOf(
                        APISchemas.record([
                            "id": APISchemas.integer, "name": APISchemas.string, "state": APISchemas.string, "groups": APISchemas.strings,
                            "tags": APISchemas.strings, "cpu_percent": number, "memory_percent": number, "filesystem_max_percent": number,
                            "filesystem_max": APISchemas.nullOr(
                                APISchemas.record([
                                    "mountpoint": APISchemas.string, "device": APISchemas.string, "fstype": APISchemas.string,
                                    "size_bytes": APISchemas.number, "used_bytes": APISchemas.number, "available_bytes": APISchemas.number,
                                    "used_percent": number,
                                ])),
                            "load_per_core": number, "network_bytes_per_second": number, "last_sample_at": APISchemas.timestamp,
                        ])),
                    "groups": APISchemas.arrayOf(
                        APISchemas.record([
                            "name": APISchemas.string, "hosts": APISchemas.integer, "up": APISchemas.integer, "down": APISchemas.integer,
                            "cpu_percent_avg": number, "memory_percent_avg": number, "filesystem_percent_max": number,
                            "filesystem_max_where": APISchemas.nullable("string"), "load_per_core_max": number,
                            "network_bytes_per_second_total": number,
                        ])),
                    "as_of": ["type": "string", "format": "date-time"],
                ],
            ],
        ]
    }

    // MARK: pages

    @Sendable func hostPage(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), let host = try dashboard.hosts.host(id: id) else {
            throw HTTPError(.notFound, message: "there is no such host")
        }
        let rangeKey = request.uri.queryParameters["range"].map(String.init) ?? "1h"
        guard let range = MetricsDashboard.ranges.first(where: { $0.key == rangeKey }) else {
            throw HTTPError(.badRequest, message: "range must be one of " + MetricsDashboard.ranges.map(\.key).joined(separator: ", "))
        }
        let now = EpochMilliseconds.from(Date())
        let result = try dashboard.charts(for: host, range: range.milliseconds, now: now)
        let data: [String: Any] = [
            "host": HostController.view(host),
            "ranges": MetricsDashboard.ranges.map { ViewNode(["key": $0.key, "current": $0.key == rangeKey]) },
            "range": rangeKey, "resolution": result.resolution.label, "step": Self.durationText(result.step),
            "charts": result.charts.map { chart in
                ViewNode([
                    "key": chart.key, "title": chart.chart.title, "svg": chart.chart.render(),
                    "empty": chart.chart.lines.allSatisfy { $0.values.allSatisfy { $0 == nil } },
                ])
            },
            "refresh": range.milliseconds <= 6 * 3_600_000,
            "no_source": host.transport != .local && host.metricsURL == nil,
        ]
        return area.pages.page("hosts/metrics", title: "\(host.name) metrics", section: "hosts", data: data, request: request, context: context)
    }

    /// The fleet part of the dashboard page: rows, sorting, filters and group totals.
    func fleetView(_ query: [String: String]) throws -> [String: Any] {
        let group = query["group"].flatMap { $0.isEmpty ? nil : $0 }
        let tag = query["tag"].flatMap { $0.isEmpty ? nil : $0 }
        let sort = query["sort"] ?? "name"
        let descending = query["order"] == "desc"
        let now = EpochMilliseconds.from(Date())
        let fleet = try dashboard.fleet(now: now, group: group, tag: tag)
        let everyHost = try dashboard.hosts.all()
        var rows = fleet.rows
        let column = MetricsDashboard.overviewColumns.first { $0.key == sort }
        rows.sort { a, b in
            if let column {
                // Hosts without a value sort last either way.
                let x = a.value(column.series)
                let y = b.value(column.series)
                if x != y {
                    guard let x else { return false }
                    guard let y else { return true }
                    return descending ? x > y : x < y
                }
            } else if sort == "state", a.host.state != b.host.state {
                return descending ? a.host.state.rawValue > b.host.state.rawValue : a.host.state.rawValue < b.host.state.rawValue
            } else if sort == "name", descending {
                return a.host.name > b.host.name
            }
            return a.host.name < b.host.name
        }
        func link(sort key: String) -> String {
            var items = ["sort=\(key)"]
            if key == sort, !descending { items.append("order=desc") }
            if let group { items.append("group=\(Self.encode(group))") }
            if let tag { items.append("tag=\(Self.encode(tag))") }
            return "/?" + items.joined(separator: "&") + "#fleet"
        }
        let headers =
            [("name", "Host"), ("state", "State")] + MetricsDashboard.overviewColumns.map { ($0.key, $0.title) }
        return [
            "fleet_rows": rows.map { row in
                ViewNode([
                    "id": row.host.id, "name": row.host.name, "state": row.host.state.rawValue, "state_detail": row.host.stateDetail ?? "",
                    "groups": row.host.groups.joined(separator: ", "),
                    "cells": MetricsDashboard.overviewColumns.map { column in
                        let value = row.value(column.series)
                        let detail = column.key == "filesystem" ? row.fullestFilesystem.map(Self.filesystemDetail) : nil
                        return ViewNode([
                            "text": value.map(column.unit.format) ?? "–", "sort": value.map { String($0) } ?? "", "mount_detail": detail,
                            "spark": Sparkline.render(row.history[column.series] ?? [], unit: column.unit, label: "\(row.host.name) \(column.title)"),
                            "hot": (column.unit == .percent && (value ?? 0) >= 90) || (column.key == "load" && (value ?? 0) >= 1.5),
                        ])
                    },
                ])
            },
            "fleet_empty": rows.isEmpty,
            "fleet_headers": headers.map { key, title in
                ViewNode([
                    "title": title, "href": link(sort: key), "current": key == sort, "arrow": descending ? "▼" : "▲",
                    "aria_sort": key == sort ? (descending ? "descending" : "ascending") : "none",
                ])
            },
            "fleet_groups": fleet.groups.map { group in
                ViewNode([
                    "name": group.name, "hosts": group.hosts, "up": group.up, "down": group.down, "has_down": group.down > 0,
                    "cpu": group.cpuAverage.map(MetricUnit.percent.format) ?? "–",
                    "memory": group.memoryAverage.map(MetricUnit.percent.format) ?? "–",
                    "filesystem": Self.filesystemText(group),
                    "load": group.loadMax.map(MetricUnit.plain.format) ?? "–",
                    "network": group.networkTotal.map(MetricUnit.bytesPerSecond.format) ?? "–",
                    "href": group.name == "all hosts" ? "/#fleet" : "/?group=\(Self.encode(group.name))#fleet",
                ])
            },
            "group_options": Set(everyHost.flatMap(\.groups)).sorted().map { ViewNode(["value": $0, "selected": $0 == group]) },
            "tag_options": Set(everyHost.flatMap(\.tags)).sorted().map { ViewNode(["value": $0, "selected": $0 == tag]) },
            "fleet_sort": sort, "fleet_order": descending ? "desc" : "asc", "fleet_filtered": group != nil || tag != nil,
        ]
    }

    /// "/ · 25 GiB used of 252 GiB, 70 GiB available": df's Mounted on, Used, Size and Avail (Use% is Used ÷ (Used + Avail)).
    static func filesystemDetail(_ filesystem: HostSummary.Filesystem) -> String {
        let used = MetricUnit.bytes.format(filesystem.usedBytes)
        let size = MetricUnit.bytes.format(filesystem.sizeBytes)
        return "\(filesystem.mountpoint) · \(used) used of \(size), \(MetricUnit.bytes.format(filesystem.availableBytes)) available"
    }

    /// A group's fullest filesystem with where it is: "91 % (db-01:/var)".
    static func filesystemText(_ group: FleetGroup) -> String {
        guard let percent = group.filesystemMax else { return "–" }
        return MetricUnit.percent.format(percent) + (group.filesystemMaxWhere.map { " (\($0))" } ?? "")
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(["&", "=", "+", "#"])) ?? text
    }

    static func durationText(_ milliseconds: Int64) -> String { DurationText.exact(seconds: Int(milliseconds / 1000)) }

    // MARK: API

    func resolveHost(_ text: String?) throws -> Host? {
        guard let text, !text.isEmpty else { return nil }
        if let id = Int64(text), let host = try dashboard.hosts.host(id: id) { return host }
        guard let host = try dashboard.hosts.host(named: text) else {
            throw Problem.invalid(["host": "there is no host with id or name \"\(text)\""])
        }
        return host
    }

    @Sendable func apiSeries(request: Request, context: StewardRequestContext) async throws -> Response {
        var input = QueryInput(request)
        let limit = input.integer("limit", in: 1...5000, default: 500)
        let cursor = input.cursor() ?? 0
        try input.check()
        let query = request.uri.queryParameters
        let host = try resolveHost(query["host"].map(String.init))
        let name = query["name"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let names = Dictionary(uniqueKeysWithValues: try dashboard.hosts.all().map { ($0.id, $0.name) })
        let matching = dashboard.store.series(hostID: host?.id, name: name).filter { $0.id > cursor }.sorted { $0.id < $1.id }
        let page = matching.prefix(limit)
        let items = page.map { series in
            let latest = dashboard.store.latest(series.id)
            return MetricSeriesResource(
                id: series.id, hostId: series.hostID, host: names[series.hostID] ?? "", name: series.name,
                labels: Dictionary(series.labelPairs, uniquingKeysWith: { a, _ in a }), type: series.type.rawValue,
                latestAt: Nullable(latest.map { RFC3339.string(milliseconds: $0.time) ?? "" }), latestValue: SampleValue(latest?.value))
        }
        var next: String?
        if matching.count > limit, let last = page.last {
            var items = ["limit=\(limit)", "cursor=\(last.id)"]
            if let host { items.append("host=\(host.id)") }
            if let name { items.append("name=\(Self.encode(name))") }
            next = "/api/v1/metrics/series?" + items.joined(separator: "&")
        }
        return try APIJSON.response(CursorPage(items: items, next: Nullable(next)))
    }

    @Sendable func apiQuery(request: Request, context: StewardRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        func text(_ key: String) -> String? { query[Substring(key)].map(String.init).flatMap { $0.isEmpty ? nil : $0 } }
        var errors: [String: String] = [:]
        let now = EpochMilliseconds.from(Date())
        var to = now
        if let value = text("to") {
            if let parsed = TimeText.milliseconds(value) {
                to = parsed
            } else {
                errors["to"] = "use an RFC 3339 time (2026-11-21T10:00:00Z) or epoch seconds"
            }
        }
        var from = to - 3_600_000
        if let value = text("from") {
            if let parsed = TimeText.milliseconds(value) { from = parsed } else { errors["from"] = "use an RFC 3339 time or epoch seconds" }
        } else if let value = text("range") {
            if let parsed = TimeText.durationMilliseconds(value) {
                from = to - parsed
            } else {
                errors["range"] = "use a duration such as 1h, 6h, 7d or 30d"
            }
        }
        if from >= to { errors["from"] = errors["from"] ?? "must be before to" }
        if to - from > 800 * 86_400_000 { errors["range"] = "at most 800 days per query" }
        var step = MetricQuery.step(for: to - from)
        if let value = text("step") {
            if let parsed = TimeText.durationMilliseconds(value), parsed >= 1000 {
                step = parsed
            } else {
                errors["step"] = "use a duration of at least 1s, such as 15s, 5m or 1h"
            }
        }
        if (to - from) / max(step, 1) > 11_000 { errors["step"] = "the range holds over 11000 steps of this size; use a larger step" }
        var function = MetricFunction.avg
        if let value = text("fn") {
            if let parsed = MetricFunction(rawValue: value) {
                function = parsed
            } else {
                errors["fn"] = "one of " + MetricFunction.allCases.map(\.rawValue).joined(separator: ", ")
            }
        }
        var matchers: [(String, String)] = []
        for item in (text("match") ?? "").split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else {
                errors["match"] = "write label filters as label=value, comma-separated (mode=idle,cpu=0)"
                break
            }
            matchers.append((String(parts[0]).trimmingCharacters(in: .whitespaces), String(parts[1]).trimmingCharacters(in: .whitespaces)))
        }
        var host: Host?
        do { host = try resolveHost(text("host")) } catch let problem as Problem { errors.merge(problem.errors ?? [:]) { a, _ in a } }
        var selected: [MetricSeries] = []
        if let ids = text("series") {
            for item in ids.split(separator: ",") {
                guard let id = Int64(item), let series = dashboard.store.series(id: id) else {
                    errors["series"] = "\"\(item)\" is not a stored series id; see /api/v1/metrics/series"
                    break
                }
                selected.append(series)
            }
        } else if let name = text("name") {
            selected = dashboard.store.series(hostID: host?.id, name: name)
        } else {
            errors["name"] = "give a metric name (and optionally host and match), or series ids"
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        selected = selected.filter { series in matchers.allSatisfy { series.label($0.0) == $0.1 } }
        guard selected.count <= 500 else {
            throw Problem.invalid(["name": "\(selected.count) series match; narrow the query with host or match (at most 500)"])
        }
        let resolution = MetricQuery.resolution(from: from, step: step, now: now, retention: dashboard.retention)
        let names = Dictionary(uniqueKeysWithValues: try dashboard.hosts.all().map { ($0.id, $0.name) })
        var results: [MetricQueryResource.Series] = []
        for series in selected {
            let range = try MetricQuery.evaluate(
                dashboard.store, series: series, function: function, from: from, to: to, step: step, resolution: resolution)
            results.append(
                MetricQueryResource.Series(
                    id: series.id, host: names[series.hostID] ?? "", name: series.name,
                    labels: Dictionary(series.labelPairs, uniquingKeysWith: { a, _ in a }),
                    points: zip(range.times, range.values).map {
                        MetricQueryResource.Point(time: RFC3339.string(milliseconds: $0) ?? "", value: SampleValue($1))
                    }
                ))
        }
        return try APIJSON.response(
            MetricQueryResource(
                resolution: resolution.label, stepSeconds: Double(step) / 1000, function: function.rawValue,
                from: RFC3339.string(milliseconds: from) ?? "", to: RFC3339.string(milliseconds: to) ?? "", series: results))
    }

    @Sendable func apiFleet(request: Request, context: StewardRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let now = EpochMilliseconds.from(Date())
        let fleet = try dashboard.fleet(
            now: now, group: query["group"].map(String.init).flatMap { $0.isEmpty ? nil : $0 },
            tag: query["tag"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }, sparkMinutes: 0)
        return try APIJSON.response(
            FleetSummaryResource(
                asOf: RFC3339.string(milliseconds: now) ?? "", hosts: fleet.rows.map(FleetSummaryResource.HostRow.init),
                groups: fleet.groups.map(FleetSummaryResource.GroupRow.init)))
    }
}
