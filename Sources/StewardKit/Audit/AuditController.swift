import Foundation
import GRDB
import HTTPTypes
import Hummingbird

/// The Audit page and `/api/v1/audit`, for administrators and auditors.
struct AuditController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let database: any DatabaseReader

    func addRoutes(to routes: Routes) {
        let endpoint = area.docs.routes(routes, tag: "audit")
        routes.get("/audit", .audit, use: page)
        endpoint(
            .get, "/api/v1/audit", .audit, "listAuditEvents", "Audit events, newest first",
            parameters: [
                .init(name: "user", location: .query, type: "string", description: "only events by this user"),
                .init(name: "action", location: .query, type: "string", description: "an action, or a prefix ending in * (login.*)"),
                .init(name: "target", location: .query, type: "string", description: "a target, or a prefix ending in * (user:*)"),
                .init(
                    name: "since", location: .query, type: "string", description: "RFC 3339 time or YYYY-MM-DD (UTC), inclusive",
                    pattern: Self.timePattern),
                .init(
                    name: "until", location: .query, type: "string", description: "RFC 3339 time or YYYY-MM-DD (UTC), exclusive",
                    pattern: Self.timePattern),
                .limit(default: 100, maximum: 500), .cursor,
            ], schema: "AuditList", use: api)
    }

    /// The filter from query parameters, or the fields that are wrong and why.
    static func filter(_ request: Request) -> (AuditFilter, [String: String]) {
        // As forms write them (a plus is a space), as every other page reads its query.
        let query = QueryInput(request).query
        var filter = AuditFilter()
        var errors: [String: String] = [:]
        func text(_ name: String) -> String? { query[name].flatMap { $0.isEmpty ? nil : $0 } }
        filter.actor = text("user")
        filter.action = text("action")
        filter.target = text("target")
        for (name, keyPath) in [("since", \AuditFilter.since), ("until", \AuditFilter.until)] {
            guard let value = text(name) else { continue }
            if let date = parseTime(value) { filter[keyPath: keyPath] = date } else { errors[name] = "use YYYY-MM-DD or an RFC 3339 time" }
        }
        if let limit = text("limit") {
            if let number = Int(limit), (1...500).contains(number) { filter.limit = number } else { errors["limit"] = "a number from 1 to 500" }
        }
        if let cursor = text("cursor") {
            if let id = Int64(cursor), id > 0 { filter.beforeID = id } else { errors["cursor"] = "the cursor from a next link" }
        }
        return (filter, errors)
    }

    /// What parseTime reads, for the document: a date, a date with a time, or an RFC 3339 time (the parser decides);
    /// empty is the same as left out.
    static let timePattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?$"

    static func parseTime(_ text: String) -> Date? {
        if let date = ISO8601DateFormatter().date(from: text) { return date }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        for format in ["yyyy-MM-dd", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }

    static func nextLink(_ base: String, request: Request, events: [AuditEvent], limit: Int) -> String? {
        guard events.count == limit, let last = events.last else { return nil }
        var items = FormQuery.decode(request.uri.query).filter { $0.name != "cursor" }.map { URLQueryItem(name: $0.name, value: $0.value) }
        items.append(URLQueryItem(name: "cursor", value: String(last.id)))
        return FormQuery.link(base, items)
    }

    /// An audit row's before/after JSON as the page shows it: an epoch-millisecond time under a time key (`at`,
    /// `expires_at`, `next_fire_at`, ...; a number or a string of digits, as some stores write column values)
    /// reads as the pages' other times, with the stored value kept in parentheses:
    /// `"expires_at":"2026-12-06 01:20:00 UTC (1796520000000)"`. Everything else, and the stored row, is unchanged.
    static func displayJSON(_ json: String) -> String {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)),
            let data = try? APIJSON.encode(readableTimes(value, key: nil))
        else { return json }
        return String(decoding: data, as: UTF8.self)
    }

    static func readableTimes(_ value: JSONValue, key: String?) -> JSONValue {
        switch value {
        case .object(let members): return .object(Dictionary(uniqueKeysWithValues: members.map { ($0, readableTimes($1, key: $0)) }))
        case .array(let items): return .array(items.map { readableTimes($0, key: nil) })
        case .integer(let number) where key.map(isTimeKey) == true && plausibleMilliseconds.contains(number):
            return .string("\(DisplayTime.text(number)) (\(number))")
        case .string(let text) where key.map(isTimeKey) == true && text.count <= 15 && text.allSatisfy({ ("0"..."9").contains($0) }):
            guard let number = Int64(text), plausibleMilliseconds.contains(number) else { return value }
            return .string("\(DisplayTime.text(number)) (\(number))")
        default: return value
        }
    }

    /// Keys whose integer values are epoch milliseconds.
    static func isTimeKey(_ key: String) -> Bool {
        key == "at" || key.hasSuffix("_at") || ["expires", "since", "until"].contains(key)
    }

    /// 2000-01-01 to 2100-01-01 in epoch milliseconds: a number outside this (seconds, a count) is left as it is.
    static let plausibleMilliseconds: ClosedRange<Int64> = 946_684_800_000...4_102_444_800_000

    @Sendable func page(request: Request, context: Context) async throws -> Response {
        let (filter, errors) = Self.filter(request)
        let events = errors.isEmpty ? try AuditLog.events(database, filter) : []
        let query = QueryInput(request).query
        var data: [String: Any] = [
            "events": events.map { event in
                ViewNode([
                    "id": event.id, "at": RFC3339.display(EpochMilliseconds.date(event.at)), "at_iso": RFC3339.string(milliseconds: event.at),
                    "actor": event.actor, "source": event.source, "action": event.action, "target": event.target,
                    "before": event.before.map(Self.displayJSON), "after": event.after.map(Self.displayJSON), "request_id": event.requestID,
                ])
            },
            "none": events.isEmpty,
        ]
        for name in ["user", "action", "target", "since", "until"] { data["q_\(name)"] = query[name] ?? "" }
        if !errors.isEmpty { data["error"] = errors.keys.sorted().map { "\($0): \(errors[$0]!)" }.joined(separator: "; ") }
        if let next = Self.nextLink("/audit", request: request, events: events, limit: filter.limit) { data["next"] = next }
        return area.pages.page(
            "audit/list", title: "Audit log", section: "audit", data: data, request: request, context: context,
            status: errors.isEmpty ? .ok : .badRequest)
    }

    @Sendable func api(request: Request, context: Context) async throws -> Response {
        let (filter, errors) = Self.filter(request)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let events = try AuditLog.events(database, filter)
        return try APIJSON.response(
            CursorPage(
                items: events.map(AuditEventResource.init),
                next: Nullable(Self.nextLink("/api/v1/audit", request: request, events: events, limit: filter.limit))))
    }
}

/// An audit event; `before` and `after` are the JSON the change recorded.
struct AuditEventResource: Codable, Sendable {
    let id: Int64
    let at, actor: String
    let source: Nullable<String>
    let action, target: String
    let before, after: Nullable<JSONValue>
    let requestId: Nullable<String>

    init(_ event: AuditEvent) {
        id = event.id
        at = RFC3339.string(milliseconds: event.at) ?? ""
        actor = event.actor
        source = Nullable(event.source)
        action = event.action
        target = event.target
        before = Nullable(event.before.map { JSONValue(text: $0) })
        after = Nullable(event.after.map { JSONValue(text: $0) })
        requestId = Nullable(event.requestID)
    }
}
