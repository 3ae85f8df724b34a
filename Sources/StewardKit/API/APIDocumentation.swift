import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// One documented API operation. Routes declare these as they register, so `/api/openapi.json` describes
/// exactly what exists; a test checks the router and the document agree.
public struct APIOperation: Sendable {
    public struct Parameter: Sendable {
        public enum Location: String, Sendable { case path, query }
        let name: String
        let location: Location
        let type: String
        let description: String
        var enumValues: [String]? = nil
        /// Bounds and a pattern, so a client (and a fuzzer) knows which values are accepted.
        var minimum: Int? = nil
        var maximum: Int? = nil
        var pattern: String? = nil
        var required: Bool? = nil
        var defaultValue: Int? = nil

        /// `limit`: a page size from 1 to `maximum`.
        static func limit(default value: Int, maximum: Int) -> Parameter {
            Parameter(
                name: "limit", location: .query, type: "integer", description: "at most this many (default \(value))", minimum: 1, maximum: maximum,
                defaultValue: value)
        }

        /// `cursor`: the id from the previous page's next link.
        static var cursor: Parameter {
            Parameter(
                name: "cursor", location: .query, type: "integer", description: "the cursor from the previous page's next link", minimum: 1,
                maximum: Int(Int64.max))
        }
    }
    public struct Reply: Sendable {
        let status: Int
        let description: String
        let schema: String?
        var contentType = "application/json"
    }
    let method: HTTPRequest.Method
    let path: String
    let operationID: String
    let summary: String
    let tag: String
    var parameters: [Parameter] = []
    var requestSchema: String? = nil
    var requestContentType = "application/json"
    var replies: [Reply]
}

/// Collects operations during route registration and renders the OpenAPI 3.1 document.
public final class APIDocumentation: Sendable {
    private let operations = Mutex<[APIOperation]>([])
    /// The rendered document: it is fixed once the routes are registered, so it is rendered once, not per request.
    private let rendered = Mutex<String?>(nil)

    public init() {}

    func add(_ operation: APIOperation) {
        operations.withLock { $0.append(operation) }
        rendered.withLock { $0 = nil }
    }

    /// A writer that registers each operation's route and documents it in one statement: `let api = docs.routes(routes,
    /// tag: "hosts")`, then `api(.get, "/api/v1/hosts/{id}", .view, "getHost", "Read one host", schema: "Host", use: show)`.
    func routes(_ routes: Routes, tag: String) -> APIRoutes { APIRoutes(routes: routes, docs: self, tag: tag) }

    /// Method and path of each documented operation, in the router's own "{id}" notation.
    public var routerPaths: [(method: String, path: String)] {
        operations.withLock { ops in ops.map { ($0.method.rawValue, $0.path) } }
    }

    /// The document as the server serves it and as docs/openapi.json holds it (a test keeps the two equal).
    public func documentText() throws -> String {
        if let text = rendered.withLock({ $0 }) { return text }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let text = String(decoding: try encoder.encode(document()), as: UTF8.self) + "\n"
        rendered.withLock { $0 = text }
        return text
    }

    public func document() -> JSONValue {
        var paths: [String: JSONValue] = [:]
        for op in operations.withLock({ $0 }) {
            var entry: JSONValue = ["operationId": .string(op.operationID), "summary": .string(op.summary), "tags": [.string(op.tag)]]
            if !op.parameters.isEmpty {
                entry["parameters"] = .array(op.parameters.map(Self.parameter))
            }
            if let request = op.requestSchema {
                entry["requestBody"] = [
                    "required": true, "content": .object([op.requestContentType: ["schema": APISchemas.ref(request)]]),
                ]
            }
            var responses: [String: JSONValue] = [:]
            for reply in op.replies {
                var response: JSONValue = ["description": .string(reply.description)]
                if let schema = reply.schema {
                    // A log stream or a file is a string; a structured reply (JSON, or a YAML rule file) names its schema.
                    let structured = ["application/json", "application/problem+json", "application/yaml; charset=utf-8"].contains(reply.contentType)
                    response["content"] = .object([reply.contentType: ["schema": structured ? APISchemas.ref(schema) : APISchemas.string]])
                }
                responses[String(reply.status)] = response
            }
            if op.path.hasPrefix("/api/v1") {
                responses["default"] = [
                    "description": "An error, as RFC 9457 problem details",
                    "content": ["application/problem+json": ["schema": APISchemas.ref("Problem")]],
                ]
            }
            entry["responses"] = .object(responses)
            paths[op.path, default: [:]][op.method.rawValue.lowercased()] = entry
        }
        let schemas = APISchemas.all.merging(MonitoringController.schemas) { a, _ in a }.merging(PromQLController.schemas) { a, _ in a }
            .merging(APISchemas.areas) { a, _ in a }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Steward API", "version": .string(StewardVersion.current),
                "description": "Administration API for a Linux fleet. Timestamps are RFC 3339 UTC; errors are application/problem+json.",
            ],
            "paths": .object(paths),
            "components": ["schemas": .object(schemas)],
        ]
    }

    private static func parameter(_ parameter: APIOperation.Parameter) -> JSONValue {
        var schema: JSONValue = ["type": .string(parameter.type)]
        if let values = parameter.enumValues { schema["enum"] = JSONValue(values) }
        if let minimum = parameter.minimum { schema["minimum"] = .integer(Int64(minimum)) }
        if let maximum = parameter.maximum { schema["maximum"] = .integer(Int64(maximum)) }
        if let pattern = parameter.pattern { schema["pattern"] = .string(pattern) }
        if let value = parameter.defaultValue { schema["default"] = .integer(Int64(value)) }
        return [
            "name": .string(parameter.name), "in": .string(parameter.location.rawValue),
            "required": .bool(parameter.required ?? (parameter.location == .path)),
            "description": .string(parameter.description), "schema": schema,
        ]
    }
}

/// JSON Schemas of the API's bodies.
enum APISchemas {
    static var timestamp: JSONValue { ["type": ["string", "null"], "format": "date-time"] }
    static var all: [String: JSONValue] {
        [
            "Problem": [
                "type": "object", "required": ["type", "title", "status", "detail"],
                "properties": [
                    "type": ["type": "string"], "title": ["type": "string"], "status": ["type": "integer"], "detail": ["type": "string"],
                    "errors": [
                        "type": "object", "additionalProperties": ["type": "string"], "description": "field -> what is wrong and what is allowed",
                    ],
                ],
            ],
            "Job": [
                "type": "object",
                "required": [
                    "cancel_requested_by", "created_at", "error", "finished_at", "host", "id", "kind", "links", "log_bytes", "log_truncated",
                    "params", "progress", "reason", "schedule_id", "started_at", "started_by", "state", "title",
                ],
                "properties": [
                    "id": ["type": "integer"], "kind": ["type": "string"], "title": ["type": "string"],
                    "state": ["type": "string", "enum": .choices(Job.State.self)],
                    "host": ["type": ["string", "null"]], "params": ["type": "object"], "started_by": ["type": "string"],
                    "reason": ["type": "string"],
                    "schedule_id": ["type": ["integer", "null"]],
                    "progress": [
                        "type": "object", "required": ["percent", "message"],
                        "properties": ["percent": ["type": ["number", "null"]], "message": ["type": "string"]],
                    ],
                    "error": ["type": ["string", "null"]], "cancel_requested_by": ["type": ["string", "null"]],
                    "log_bytes": ["type": "integer"], "log_truncated": ["type": "boolean"],
                    "created_at": timestamp, "started_at": timestamp, "finished_at": timestamp,
                    "links": ["type": "object", "additionalProperties": ["type": "string"]],
                ],
            ],
            "JobList": [
                "type": "object", "required": ["items", "next"],
                "properties": [
                    "items": ["type": "array", "items": ["$ref": "#/components/schemas/Job"]],
                    "next": ["type": ["string", "null"], "description": "URL of the next page, or null"],
                ],
            ],
            "Schedule": [
                "type": "object",
                "required": [
                    "catch_up", "concurrency", "cron", "enabled", "id", "jitter_seconds", "job_kind", "job_title", "last_fire_at", "last_job_id",
                    "last_outcome", "name", "next_due_at", "next_fire_at", "next_fire_times", "owner", "time_zone",
                ],
                "properties": [
                    "id": ["type": "integer"], "name": ["type": "string"], "cron": ["type": "string"], "time_zone": ["type": "string"],
                    "jitter_seconds": ["type": "integer"], "catch_up": ["type": "string", "enum": .choices(Schedule.CatchUp.self)],
                    "concurrency": ["type": "string", "enum": .choices(Schedule.Concurrency.self)],
                    "job_kind": ["type": "string"], "job_title": ["type": "string"], "owner": ["type": "string"], "enabled": ["type": "boolean"],
                    "last_fire_at": timestamp, "next_fire_at": timestamp, "next_due_at": timestamp,
                    "last_job_id": ["type": ["integer", "null"]], "last_outcome": ["type": ["string", "null"]],
                    "next_fire_times": ["type": "array", "items": ["type": "string", "format": "date-time"]],
                ],
            ],
            "ScheduleList": [
                "type": "object", "required": ["items", "next"],
                "properties": [
                    "items": ["type": "array", "items": ["$ref": "#/components/schemas/Schedule"]], "next": ["type": ["string", "null"]],
                ],
            ],
            "ScheduleUpdate": [
                "type": "object", "additionalProperties": false,
                "properties": [
                    "cron": ["type": "string"], "time_zone": ["type": "string"],
                    "jitter_seconds": ["type": "integer", "minimum": 0, "maximum": 86400],
                    "catch_up": ["type": "string", "enum": .choices(Schedule.CatchUp.self)],
                    "concurrency": ["type": "string", "enum": .choices(Schedule.Concurrency.self)], "enabled": ["type": "boolean"],
                ],
            ],
            "SchedulePreviewRequest": [
                "type": "object", "required": ["cron"], "additionalProperties": false,
                "properties": [
                    "cron": ["type": "string"], "time_zone": ["type": "string", "default": "UTC"],
                    "count": ["type": "integer", "minimum": 1, "maximum": 50],
                ],
            ],
            "SchedulePreview": [
                "type": "object", "required": ["next_fire_times"],
                "properties": ["next_fire_times": ["type": "array", "items": ["type": "string", "format": "date-time"]]],
            ],
            "OpenAPIDocument": [
                "type": "object", "required": ["openapi", "info", "paths", "components"],
                "properties": [
                    "openapi": ["type": "string"], "info": ["type": "object"], "paths": ["type": "object"], "components": ["type": "object"],
                ],
            ],
            "Health": ["type": "object", "properties": ["status": ["type": "string"], "version": ["type": "string"]]],
        ]
    }
}

/// Registers an API route and documents it together, so an operation cannot be served undocumented or documented
/// unserved; the path is written once, in the document's "{id}" notation.
struct APIRoutes {
    let routes: Routes
    let docs: APIDocumentation
    let tag: String

    func callAsFunction<Output: ResponseGenerator>(
        _ method: HTTPRequest.Method, _ path: String, _ permission: Permission, _ operation: String, _ summary: String,
        parameters: [APIOperation.Parameter] = [], request: String? = nil, requestContentType: String = "application/json", status: Int = 200,
        reply: String? = nil, schema: String?, contentType: String = "application/json", otherReplies: [APIOperation.Reply] = [],
        use handler: @escaping @Sendable (Request, StewardRequestContext) async throws -> Output
    ) {
        docs.add(
            APIOperation(
                method: method, path: path, operationID: operation, summary: summary, tag: tag, parameters: parameters, requestSchema: request,
                requestContentType: requestContentType,
                replies: [.init(status: status, description: reply ?? summary, schema: schema, contentType: contentType)] + otherReplies))
        let routerPath = path.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.hasPrefix("{") && segment.hasSuffix("}") ? ":" + segment.dropFirst().dropLast() : segment
        }.joined(separator: "/")
        routes.on(method, routerPath, permission, use: handler)
    }
}
