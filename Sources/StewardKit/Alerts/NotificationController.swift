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
                summary: "Add a webhook or email channel; secret and password are stored encrypted", tag: "alerts", requestSchema: "ChannelInput",
                replies: [.init(status: 201, description: "The channel", schema: "Channel")]))
        routes.post("/api/v1/alerts/channels", .admin, use: createChannel)
        docs.add(
            APIOperation(
                method: .put, path: "/api/v1/alerts/channels/{id}", operationID: "updateChannel",
                summary: "Change a channel (fields left out keep their value; secret or password null removes it)", tag: "alerts",
                parameters: [id], requestSchema: "ChannelInput", replies: [.init(status: 200, description: "The channel", schema: "Channel")]))
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
                tag: "alerts", requestSchema: "SilenceInput", replies: [.init(status: 201, description: "The silence", schema: "Silence")]))
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
                parameters: [.limit(default: 100, maximum: 1000)],
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
                requestSchema: "MaintenanceWindowInput", replies: [.init(status: 201, description: "The window", schema: "MaintenanceWindow")]))
        routes.post("/api/v1/alerts/maintenance", .operate, use: createWindow)
        docs.add(
            APIOperation(
                method: .delete, path: "/api/v1/alerts/maintenance/{id}", operationID: "deleteMaintenanceWindow", summary: "Remove a window",
                tag: "alerts", parameters: [id], replies: [.init(status: 204, description: "Removed", schema: nil)]))
        routes.delete("/api/v1/alerts/maintenance/:id", .operate, use: deleteWindow)
    }

    @Sendable func listChannels(request: Request, context: StewardRequestContext) async throws -> Response {
        try APIJSON.response(ItemList(items: try channels.all().map(ChannelResource.init)))
    }

    @Sendable func createChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        var channel = NotificationChannel()
        try await APIInputDecoding.decode(ChannelInput.self, from: request).apply(to: &channel)
        return try APIJSON.response(ChannelResource(try channels.save(channel, by: context.actor, now: Date())), status: .created)
    }

    func load(_ context: StewardRequestContext) throws -> NotificationChannel {
        guard let id = context.parameters.get("id", as: Int64.self), let channel = try channels.channel(id: id) else {
            throw HTTPError(.notFound, message: "there is no such channel")
        }
        return channel
    }

    @Sendable func updateChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        var channel = try load(context)
        try await APIInputDecoding.decode(ChannelInput.self, from: request).apply(to: &channel)
        return try APIJSON.response(ChannelResource(try channels.save(channel, by: context.actor, now: Date())))
    }

    @Sendable func deleteChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        _ = try channels.delete(id: try load(context).id, by: context.actor, now: Date())
        return Response(status: .noContent)
    }

    @Sendable func listSilences(request: Request, context: StewardRequestContext) async throws -> Response {
        let now = EpochMilliseconds.from(Date())
        return try APIJSON.response(ItemList(items: try silences.all().map { SilenceResource($0, now: now) }))
    }

    @Sendable func createSilence(request: Request, context: StewardRequestContext) async throws -> Response {
        let now = EpochMilliseconds.from(Date())
        var silence = try await APIInputDecoding.decode(SilenceInput.self, from: request).silence(now: now)
        silence.id = try silences.create(silence, by: context.actor, now: Date())
        silence.createdBy = context.actor.actor
        return try APIJSON.response(SilenceResource(silence, now: now), status: .created)
    }

    @Sendable func expireSilence(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try silences.expire(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such silence")
        }
        return Response(status: .noContent)
    }

    var windows: MaintenanceWindowStore { MaintenanceWindowStore(database: notifier.database) }

    @Sendable func listWindows(request: Request, context: StewardRequestContext) async throws -> Response {
        let now = Date()
        return try APIJSON.response(ItemList(items: try windows.all().map { MaintenanceWindowResource($0, now: now) }))
    }

    @Sendable func createWindow(request: Request, context: StewardRequestContext) async throws -> Response {
        var window = try await APIInputDecoding.decode(MaintenanceWindowInput.self, from: request).window()
        window.id = try windows.create(window, by: context.actor, now: Date())
        return try APIJSON.response(MaintenanceWindowResource(window, now: Date()), status: .created)
    }

    @Sendable func deleteWindow(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try windows.delete(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such maintenance window")
        }
        return Response(status: .noContent)
    }

    @Sendable func listDeliveries(request: Request, context: StewardRequestContext) async throws -> Response {
        var query = QueryInput(request)
        let limit = query.integer("limit", in: 1...1000, default: 100)
        try query.check()
        return try APIJSON.response(ItemList(items: try channels.deliveries(limit: limit)))
    }
}
