import Foundation
import GRDB
import Hummingbird

/// Channels (admin), silences (operator) and the delivery log (viewer), over the API.
struct NotificationController {
    let channels: NotificationChannelStore
    let silences: SilenceStore
    let notifier: Notifier
    let docs: APIDocumentation

    func addRoutes(to routes: Routes) {
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "id")
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts/channels", operationID: "listChannels", summary: "Notification channels (secrets never shown)",
                tag: "alerts", replies: [.init(status: 200, description: "Channels", schema: "ChannelList")]))
        routes.get("/api/v1/alerts/channels", .view, use: listChannels)
        docs.add(
            APIOperation(
                method: .post, path: "/api/v1/alerts/channels", operationID: "createChannel",
                summary: "Add a webhook or email channel; secret and password are stored encrypted", tag: "alerts", requestSchema: "Channel",
                replies: [.init(status: 201, description: "The channel", schema: "Channel")]))
        routes.post("/api/v1/alerts/channels", .admin, use: createChannel)
        docs.add(
            APIOperation(
                method: .put, path: "/api/v1/alerts/channels/{id}", operationID: "updateChannel",
                summary: "Change a channel (fields left out keep their value; secret or password null removes it)", tag: "alerts",
                parameters: [id], requestSchema: "Channel", replies: [.init(status: 200, description: "The channel", schema: "Channel")]))
        routes.put("/api/v1/alerts/channels/:id", .admin, use: updateChannel)
        docs.add(
            APIOperation(
                method: .delete, path: "/api/v1/alerts/channels/{id}", operationID: "deleteChannel", summary: "Remove a channel", tag: "alerts",
                parameters: [id], replies: [.init(status: 204, description: "Removed", schema: nil)]))
        routes.delete("/api/v1/alerts/channels/:id", .admin, use: deleteChannel)
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts/silences", operationID: "listSilences", summary: "Silences, newest end first", tag: "alerts",
                replies: [.init(status: 200, description: "Silences", schema: "SilenceList")]))
        routes.get("/api/v1/alerts/silences", .view, use: listSilences)
        docs.add(
            APIOperation(
                method: .post, path: "/api/v1/alerts/silences", operationID: "createSilence",
                summary: "Mute notifications for matching alerts (rule=, host=, severity=, or a rule label) from starts_at to ends_at",
                tag: "alerts", requestSchema: "Silence", replies: [.init(status: 201, description: "The silence", schema: "Silence")]))
        routes.post("/api/v1/alerts/silences", .operate, use: createSilence)
        docs.add(
            APIOperation(
                method: .delete, path: "/api/v1/alerts/silences/{id}", operationID: "expireSilence", summary: "End a silence now", tag: "alerts",
                parameters: [id], replies: [.init(status: 204, description: "Ended", schema: nil)]))
        routes.delete("/api/v1/alerts/silences/:id", .operate, use: expireSilence)
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts/deliveries", operationID: "listDeliveries",
                summary: "The delivery log: every notification, its attempts and errors", tag: "alerts",
                parameters: [.init(name: "limit", location: .query, type: "integer", description: "at most this many (default 100)")],
                replies: [.init(status: 200, description: "Deliveries", schema: "DeliveryList")]))
        routes.get("/api/v1/alerts/deliveries", .view, use: listDeliveries)
        docs.add(
            APIOperation(
                method: .get, path: "/api/v1/alerts/maintenance", operationID: "listMaintenanceWindows",
                summary: "Recurring maintenance windows per host group, and whether each is open now", tag: "alerts",
                replies: [.init(status: 200, description: "Windows", schema: "MaintenanceList")]))
        routes.get("/api/v1/alerts/maintenance", .view, use: listWindows)
        docs.add(
            APIOperation(
                method: .post, path: "/api/v1/alerts/maintenance", operationID: "createMaintenanceWindow",
                summary: "Add a window: name, host_group, cron (when it opens), duration_minutes, time_zone, comment", tag: "alerts",
                requestSchema: "MaintenanceWindow", replies: [.init(status: 201, description: "The window", schema: "MaintenanceWindow")]))
        routes.post("/api/v1/alerts/maintenance", .operate, use: createWindow)
        docs.add(
            APIOperation(
                method: .delete, path: "/api/v1/alerts/maintenance/{id}", operationID: "deleteMaintenanceWindow", summary: "Remove a window",
                tag: "alerts", parameters: [id], replies: [.init(status: 204, description: "Removed", schema: nil)]))
        routes.delete("/api/v1/alerts/maintenance/:id", .operate, use: deleteWindow)
    }

    static var schemas: [String: Any] {
        [
            "Channel": ["type": "object"], "ChannelList": ["type": "object", "properties": ["items": ["type": "array"]]],
            "Silence": ["type": "object"], "SilenceList": ["type": "object", "properties": ["items": ["type": "array"]]],
            "DeliveryList": ["type": "object", "properties": ["items": ["type": "array"]]],
            "MaintenanceWindow": ["type": "object"], "MaintenanceList": ["type": "object", "properties": ["items": ["type": "array"]]],
        ]
    }

    static func resource(_ channel: NotificationChannel) -> [String: Any] {
        [
            "id": channel.id, "name": channel.name, "kind": channel.kind.rawValue, "enabled": channel.enabled,
            "min_severity": channel.minSeverity.rawValue, "match_labels": channel.matchLabels, "send_resolved": channel.sendResolved,
            "group_wait_seconds": channel.groupWaitSeconds, "group_interval_seconds": channel.groupIntervalSeconds, "url": channel.url,
            "has_secret": channel.secret != nil, "smtp_host": channel.smtpHost, "smtp_port": channel.smtpPort,
            "smtp_security": channel.smtpSecurity.rawValue, "smtp_user": channel.smtpUser, "has_password": channel.password != nil,
            "mail_from": channel.mailFrom, "mail_to": channel.mailTo, "smtp_ca_file": channel.smtpCAFile,
        ]
    }

    static func apply(_ object: [String: Any], to channel: inout NotificationChannel) throws {
        var errors: [String: String] = [:]
        let known: Set<String> = [
            "name", "kind", "enabled", "min_severity", "match_labels", "send_resolved", "group_wait_seconds", "group_interval_seconds", "url",
            "secret", "smtp_host", "smtp_port", "smtp_security", "smtp_user", "password", "mail_from", "mail_to", "smtp_ca_file",
        ]
        for key in object.keys where !known.contains(key) { errors[key] = "unknown field; accepted: " + known.sorted().joined(separator: ", ") }
        func string(_ key: String) -> String? {
            guard let value = object[key], !(value is NSNull) else { return nil }
            if let text = value as? String { return text }
            errors[key] = "must be a string"
            return nil
        }
        func integer(_ key: String) -> Int? {
            guard let value = object[key] else { return nil }
            if !HostController.isBoolean(value), let number = value as? Int { return number }
            errors[key] = "must be an integer"
            return nil
        }
        func flag(_ key: String) -> Bool? {
            guard let value = object[key] else { return nil }
            if HostController.isBoolean(value), let flag = value as? Bool { return flag }
            errors[key] = "must be true or false"
            return nil
        }
        if let value = string("name") { channel.name = value }
        if let value = string("kind") {
            if let kind = NotificationChannel.Kind(rawValue: value) { channel.kind = kind } else { errors["kind"] = "webhook or email" }
        }
        if let value = flag("enabled") { channel.enabled = value }
        if let value = string("min_severity") {
            if let severity = AlertState.Severity(rawValue: value) {
                channel.minSeverity = severity
            } else {
                errors["min_severity"] = "warning or critical"
            }
        }
        if let value = string("match_labels") { channel.matchLabels = value }
        if let value = flag("send_resolved") { channel.sendResolved = value }
        if let value = integer("group_wait_seconds") { channel.groupWaitSeconds = value }
        if let value = integer("group_interval_seconds") { channel.groupIntervalSeconds = value }
        if let value = string("url") { channel.url = value }
        if object["secret"] is NSNull { channel.secret = nil } else if let value = string("secret") { channel.secret = value.isEmpty ? nil : value }
        if let value = string("smtp_host") { channel.smtpHost = value }
        if let value = integer("smtp_port") { channel.smtpPort = value }
        if let value = string("smtp_security") {
            if let security = NotificationChannel.Security(rawValue: value) {
                channel.smtpSecurity = security
            } else {
                errors["smtp_security"] = "starttls, tls or none"
            }
        }
        if let value = string("smtp_user") { channel.smtpUser = value }
        if object["password"] is NSNull {
            channel.password = nil
        } else if let value = string("password") {
            channel.password = value.isEmpty ? nil : value
        }
        if let value = string("mail_from") { channel.mailFrom = value }
        if let value = string("mail_to") { channel.mailTo = value }
        if let value = string("smtp_ca_file") { channel.smtpCAFile = value }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let problems = channel.problems()
        guard problems.isEmpty else { throw Problem.invalid(problems) }
    }

    @Sendable func listChannels(request: Request, context: StewardRequestContext) async throws -> Response {
        try JSONResponse.make(object: ["items": try channels.all().map(Self.resource)])
    }

    @Sendable func createChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        var channel = NotificationChannel()
        try Self.apply(try await JSONResponse.object(from: request, what: "fields"), to: &channel)
        return try JSONResponse.make(object: Self.resource(try channels.save(channel, by: context.actor, now: Date())), status: .created)
    }

    func load(_ context: StewardRequestContext) throws -> NotificationChannel {
        guard let id = context.parameters.get("id", as: Int64.self), let channel = try channels.channel(id: id) else {
            throw HTTPError(.notFound, message: "there is no such channel")
        }
        return channel
    }

    @Sendable func updateChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        var channel = try load(context)
        try Self.apply(try await JSONResponse.object(from: request, what: "fields"), to: &channel)
        return try JSONResponse.make(object: Self.resource(try channels.save(channel, by: context.actor, now: Date())))
    }

    @Sendable func deleteChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        _ = try channels.delete(id: try load(context).id, by: context.actor, now: Date())
        return Response(status: .noContent)
    }

    static func silenceResource(_ silence: Silence) -> [String: Any] {
        [
            "id": silence.id, "matchers": silence.matchers, "starts_at": RFC3339.string(milliseconds: silence.startsAt) ?? "",
            "ends_at": RFC3339.string(milliseconds: silence.endsAt) ?? "", "created_by": silence.createdBy, "comment": silence.comment,
            "active": silence.endsAt > EpochMilliseconds.from(Date()) && silence.startsAt <= EpochMilliseconds.from(Date()),
        ]
    }

    @Sendable func listSilences(request: Request, context: StewardRequestContext) async throws -> Response {
        try JSONResponse.make(object: ["items": try silences.all().map(Self.silenceResource)])
    }

    @Sendable func createSilence(request: Request, context: StewardRequestContext) async throws -> Response {
        let object = try await JSONResponse.object(from: request, what: "fields")
        var silence = Silence()
        var errors: [String: String] = [:]
        silence.matchers = object["matchers"] as? String ?? ""
        silence.comment = object["comment"] as? String ?? ""
        let now = EpochMilliseconds.from(Date())
        silence.startsAt = now
        if let text = object["starts_at"] as? String {
            if let time = MonitoringController.time(text) { silence.startsAt = time } else { errors["starts_at"] = "an RFC 3339 time" }
        }
        if let text = object["ends_at"] as? String {
            if let time = MonitoringController.time(text) { silence.endsAt = time } else { errors["ends_at"] = "an RFC 3339 time" }
        } else if let text = object["duration"] as? String, let duration = MonitoringController.duration(text) {
            silence.endsAt = silence.startsAt + duration
        } else {
            errors["ends_at"] = "give ends_at (RFC 3339) or duration (e.g. 2h)"
        }
        errors.merge(silence.problems()) { a, _ in a }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        silence.id = try silences.create(silence, by: context.actor, now: Date())
        silence.createdBy = context.actor.actor
        return try JSONResponse.make(object: Self.silenceResource(silence), status: .created)
    }

    @Sendable func expireSilence(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try silences.expire(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such silence")
        }
        return Response(status: .noContent)
    }

    var windows: MaintenanceWindowStore { MaintenanceWindowStore(database: notifier.database) }

    static func windowResource(_ window: MaintenanceWindow) -> [String: Any] {
        [
            "id": window.id, "name": window.name, "host_group": window.hostGroup, "cron": window.cron, "duration_minutes": window.durationMinutes,
            "time_zone": window.timeZone, "enabled": window.enabled, "comment": window.comment, "open_now": window.isOpen(at: Date()),
        ]
    }

    @Sendable func listWindows(request: Request, context: StewardRequestContext) async throws -> Response {
        try JSONResponse.make(object: ["items": try windows.all().map(Self.windowResource)])
    }

    @Sendable func createWindow(request: Request, context: StewardRequestContext) async throws -> Response {
        let object = try await JSONResponse.object(from: request, what: "fields")
        var window = MaintenanceWindow()
        var errors: [String: String] = [:]
        let known: Set<String> = ["name", "host_group", "cron", "duration_minutes", "time_zone", "enabled", "comment"]
        for key in object.keys where !known.contains(key) { errors[key] = "unknown field; accepted: " + known.sorted().joined(separator: ", ") }
        window.name = object["name"] as? String ?? ""
        window.hostGroup = object["host_group"] as? String ?? ""
        window.cron = object["cron"] as? String ?? ""
        window.timeZone = object["time_zone"] as? String ?? "UTC"
        window.comment = object["comment"] as? String ?? ""
        if let value = object["duration_minutes"] {
            if !HostController.isBoolean(value), let minutes = value as? Int {
                window.durationMinutes = minutes
            } else {
                errors["duration_minutes"] = "must be an integer"
            }
        }
        errors.merge(window.problems()) { a, _ in a }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        window.id = try windows.create(window, by: context.actor, now: Date())
        return try JSONResponse.make(object: Self.windowResource(window), status: .created)
    }

    @Sendable func deleteWindow(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try windows.delete(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such maintenance window")
        }
        return Response(status: .noContent)
    }

    @Sendable func listDeliveries(request: Request, context: StewardRequestContext) async throws -> Response {
        let limit = min(max(request.uri.queryParameters["limit"].flatMap { Int($0) } ?? 100, 1), 1000)
        let rows = try notifier.database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM notification_deliveries ORDER BY id DESC LIMIT ?", arguments: [limit])
        }
        let items = rows.map { row -> [String: Any] in
            [
                "id": row["id"] as Int64, "channel": row["channel_name"] as String, "rule": row["rule_name"] as String,
                "status": row["status"] as String, "reason": row["reason"] as String, "attempts": row["attempts"] as Int,
                "subject": row["subject"] as String, "created_at": RFC3339.string(milliseconds: row["created_at"]) ?? "",
                "sent_at": orNull(RFC3339.string(milliseconds: row["sent_at"])), "error": orNull(row["error"] as String?),
                "next_attempt_at": orNull(RFC3339.string(milliseconds: row["next_attempt_at"])),
            ]
        }
        return try JSONResponse.make(object: ["items": items])
    }
}
