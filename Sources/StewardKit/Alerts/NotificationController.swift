import Foundation
import GRDB
import Hummingbird

/// Channels (admin), silences (operator) and the delivery log (viewer), over the API.
struct NotificationController {
    let area: AreaContext
    let channels: NotificationChannelStore
    let silences: SilenceStore
    let notifier: Notifier

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "alerts")
        let id = APIOperation.Parameter(name: "id", location: .path, type: "integer", description: "id")
        api(
            .get, "/api/v1/alerts/channels", .view, "listChannels", "Notification channels (secrets never shown)", schema: "ChannelList",
            use: listChannels)
        api(
            .post, "/api/v1/alerts/channels", .admin, "createChannel", "Add a webhook or email channel; secret and password are stored encrypted",
            request: "ChannelInput", status: 201, schema: "Channel", use: createChannel)
        api(
            .put, "/api/v1/alerts/channels/{id}", .admin, "updateChannel",
            "Change a channel (fields left out keep their value; secret or password null removes it)", parameters: [id], request: "ChannelInput",
            schema: "Channel", use: updateChannel)
        api(
            .delete, "/api/v1/alerts/channels/{id}", .admin, "deleteChannel", "Remove a channel", parameters: [id], status: 204, schema: nil,
            use: deleteChannel)
        api(.get, "/api/v1/alerts/silences", .view, "listSilences", "Silences, newest end first", schema: "SilenceList", use: listSilences)
        api(
            .post, "/api/v1/alerts/silences", .operate, "createSilence",
            "Mute notifications for matching alerts (rule=, host=, severity=, or a rule label) from starts_at to ends_at", request: "SilenceInput",
            status: 201, schema: "Silence", use: createSilence)
        api(
            .delete, "/api/v1/alerts/silences/{id}", .operate, "expireSilence", "End a silence now", parameters: [id], status: 204, schema: nil,
            use: expireSilence)
        api(
            .get, "/api/v1/alerts/deliveries", .view, "listDeliveries", "The delivery log: every notification, its attempts and errors",
            parameters: [.limit(default: 100, maximum: 1000)], schema: "DeliveryList", use: listDeliveries)
        api(
            .get, "/api/v1/alerts/maintenance", .view, "listMaintenanceWindows",
            "Recurring maintenance windows per host group, and whether each is open now", schema: "MaintenanceList", use: listWindows)
        api(
            .post, "/api/v1/alerts/maintenance", .operate, "createMaintenanceWindow",
            "Add a window: name, host_group, cron (when it opens), duration_minutes, time_zone, comment", request: "MaintenanceWindowInput",
            status: 201, schema: "MaintenanceWindow", use: createWindow)
        api(
            .delete, "/api/v1/alerts/maintenance/{id}", .operate, "deleteMaintenanceWindow", "Remove a window", parameters: [id], status: 204,
            schema: nil, use: deleteWindow)
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
