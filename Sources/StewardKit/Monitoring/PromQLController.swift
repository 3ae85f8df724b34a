import Foundation
import Hummingbird

/// PromQL over Steward's metric store for scripts and charts: an instant query and a range query. A series' labels
/// are its own, `__name__`, and `host` and `instance` (its host's name). Values are numbers, or "NaN", "+Inf", "-Inf".
struct PromQLController {
    let area: AreaContext
    let dashboard: MetricsDashboard

    func addRoutes(_ api: APIRoutes) {
        let query = APIOperation.Parameter(
            name: "query", location: .query, type: "string", description: "a PromQL expression, e.g. rate(node_cpu_seconds_total{mode=\"idle\"}[5m])",
            required: true)
        api(
            .get, "/api/v1/metrics/promql", .view, "promqlQuery", "A PromQL expression's value at one time",
            parameters: [query, .init(name: "time", location: .query, type: "string", description: "RFC 3339 time or epoch seconds (default now)")],
            schema: "PromQLInstant", use: instant)
        api(
            .get, "/api/v1/metrics/promql/range", .view, "promqlRange", "A PromQL expression evaluated at each step, as series (what a chart draws)",
            parameters: [
                query, .init(name: "from", location: .query, type: "string", description: "RFC 3339 time or epoch seconds (default: to less range)"),
                .init(name: "to", location: .query, type: "string", description: "RFC 3339 time or epoch seconds (default now)"),
                .init(name: "range", location: .query, type: "string", description: "how far back from to, e.g. 1h, 7d (default 1h)"),
                .init(name: "step", location: .query, type: "string", description: "e.g. 15s, 5m (default: about 240 steps)"),
            ], schema: "PromQLRange", use: range)
    }

    static var schemas: [String: JSONValue] {
        let labels: JSONValue = ["type": "object", "additionalProperties": ["type": "string"]]
        let time: JSONValue = ["type": "string", "format": "date-time"]
        return [
            "PromQLInstant": [
                "type": "object", "required": ["result_type", "time", "series"],
                "properties": [
                    "result_type": ["type": "string", "enum": ["vector", "scalar"]], "time": time,
                    "series": [
                        "type": "array",
                        "items": [
                            "type": "object", "required": ["labels", "value"], "properties": ["labels": labels, "value": SampleValue.schema],
                        ],
                    ],
                ],
            ],
            "PromQLRange": [
                "type": "object", "required": ["from", "to", "step_seconds", "series"],
                "properties": [
                    "from": time, "to": time, "step_seconds": ["type": "number"],
                    "series": [
                        "type": "array",
                        "items": [
                            "type": "object", "required": ["labels", "points"],
                            "properties": [
                                "labels": labels,
                                "points": ["type": "array", "items": ["type": "array", "prefixItems": [time, SampleValue.schema]]],
                            ],
                        ],
                    ],
                ],
            ],
        ]
    }

    struct Instant: Codable {
        struct Series: Codable {
            let labels: [String: String]
            let value: SampleValue
        }
        let resultType: String
        let time: String
        let series: [Series]
    }

    struct RangeResult: Codable {
        struct Series: Codable {
            let labels: [String: String]
            let points: [MetricQueryResource.Point]
        }
        let from, to: String
        let stepSeconds: Double
        let series: [Series]
    }

    /// The expression, checked as a rule's is (syntax with its position, regexes that backtrack), or the field errors.
    static func expression(_ query: [String: String], _ errors: inout [String: String]) -> PromQL.Expr? {
        guard let text = query["query"], !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            errors["query"] = "give a PromQL expression, e.g. node_load1 or rate(node_network_receive_bytes_total[5m])"
            return nil
        }
        if let problem = PromQLRule.problem(text), !problem.contains("an alert needs") {
            errors["query"] = problem
            return nil
        }
        return try? PromQL.parse(text)
    }

    var source: MetricStoreSource {
        get throws {
            MetricStoreSource(
                store: dashboard.store, hostNames: Dictionary(try dashboard.hosts.all().map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a }))
        }
    }

    /// What one API query may read: 20 million samples, and series enough for 5 million points in the answer (at
    /// least 500 series a selector).
    static func limited(_ source: any PromQL.Source, steps: Int) -> PromQL.LimitedSource {
        PromQL.LimitedSource(source, maxSeries: max(500, 5_000_000 / max(steps, 1)), maxSamples: 20_000_000)
    }

    /// Run a query off the event loop; what the engine refuses (a budget, duplicate label sets) is the query's fault.
    static func answer<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await offload(body)
        } catch let error as PromQL.EvaluationError {
            throw Problem.invalid(["query": error.description])
        }
    }

    static func labels(_ labels: PromQL.Labels) -> [String: String] {
        Dictionary(labels.pairs.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    @Sendable func instant(request: Request, context: StewardRequestContext) async throws -> Response {
        let query = QueryInput(request).query
        var errors: [String: String] = [:]
        let expr = Self.expression(query, &errors)
        var time = EpochMilliseconds.from(Date())
        if let text = query["time"], !text.isEmpty {
            if let parsed = TimeText.milliseconds(text) { time = parsed } else { errors["time"] = "use an RFC 3339 time or epoch seconds" }
        }
        guard errors.isEmpty, let expr else { throw Problem.invalid(errors) }
        if expr.type == .matrix || expr.type == .string {
            throw Problem.invalid(["query": "the expression gives a \(expr.type.rawValue); ask for an instant vector or a number"])
        }
        let source = Self.limited(try self.source, steps: 1)
        let value = try await Self.answer { [time] in try PromQL.query(expr, source: source, at: time) }
        let series: [Instant.Series]
        let kind: String
        switch value {
        case .scalar(let number):
            kind = "scalar"
            series = [Instant.Series(labels: [:], value: SampleValue(number))]
        case .vector(let samples):
            kind = "vector"
            series = samples.sorted { $0.labels.description < $1.labels.description }.map {
                Instant.Series(labels: Self.labels($0.labels), value: SampleValue($0.value))
            }
        default:
            throw Problem.invalid(["query": "the expression does not give an instant vector or a number"])
        }
        return try APIJSON.response(Instant(resultType: kind, time: RFC3339.string(milliseconds: time) ?? "", series: series))
    }

    @Sendable func range(request: Request, context: StewardRequestContext) async throws -> Response {
        let query = QueryInput(request).query
        var errors: [String: String] = [:]
        let expr = Self.expression(query, &errors)
        var to = EpochMilliseconds.from(Date())
        if let text = query["to"], !text.isEmpty {
            if let parsed = TimeText.milliseconds(text) { to = parsed } else { errors["to"] = "use an RFC 3339 time or epoch seconds" }
        }
        var from = to - 3_600_000
        if let text = query["from"], !text.isEmpty {
            if let parsed = TimeText.milliseconds(text) { from = parsed } else { errors["from"] = "use an RFC 3339 time or epoch seconds" }
        } else if let text = query["range"], !text.isEmpty {
            if let parsed = TimeText.durationMilliseconds(text) {
                from = to - parsed
            } else {
                errors["range"] = "use a duration such as 1h, 7d or 30d"
            }
        }
        if from >= to { errors["from"] = errors["from"] ?? "must be before to" }
        var step = MetricQuery.step(for: to - from)
        if let text = query["step"], !text.isEmpty {
            if let parsed = TimeText.durationMilliseconds(text), parsed >= 1000 {
                step = parsed
            } else {
                errors["step"] = "a duration of at least 1s"
            }
        }
        if (to - from) / max(step, 1) > 11_000 { errors["step"] = "the range holds over 11000 steps of this size; use a larger step" }
        guard errors.isEmpty, let expr else { throw Problem.invalid(errors) }
        if expr.type == .matrix || expr.type == .string {
            throw Problem.invalid(["query": "the expression gives a \(expr.type.rawValue); a range query needs an instant vector or a number"])
        }
        let source = Self.limited(try self.source, steps: Int((to - from) / max(step, 1)) + 1)
        let series = try await Self.answer { [from, to, step] in try PromQL.rangeQuery(expr, source: source, from: from, to: to, step: step) }
        return try APIJSON.response(
            RangeResult(
                from: RFC3339.string(milliseconds: from) ?? "", to: RFC3339.string(milliseconds: to) ?? "", stepSeconds: Double(step) / 1000,
                series: series.map { entry in
                    RangeResult.Series(
                        labels: Self.labels(entry.labels),
                        points: entry.points.map {
                            MetricQueryResource.Point(time: RFC3339.string(milliseconds: $0.time) ?? "", value: SampleValue($0.value))
                        }
                    )
                }))
    }
}
