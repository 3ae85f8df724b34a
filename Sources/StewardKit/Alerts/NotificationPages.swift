import Foundation
import Hummingbird

/// Browser pages for channels (Settings, admins), silences and maintenance windows (Alerts, operators).
struct NotificationPages {
    let area: AreaContext
    let channels: NotificationChannelStore
    let silences: SilenceStore
    let windows: MaintenanceWindowStore
    let sender: any NotificationSending
    let baseURL: String

    func addRoutes(to routes: Routes) {
        routes.get("/settings/channels", .admin, use: channelsPage)
        routes.post("/settings/channels", .admin, use: createChannel)
        routes.get("/settings/channels/:id", .admin, use: channelPage)
        routes.post("/settings/channels/:id", .admin, use: updateChannel)
        routes.post("/settings/channels/:id/delete", .admin, use: deleteChannel)
        routes.post("/settings/channels/:id/test", .admin, use: testChannel)
        routes.get("/alerts/silences", .view, use: silencesPage)
        routes.post("/alerts/silences", .operate, use: createSilence)
        routes.post("/alerts/silences/:id/expire", .operate, use: expireSilence)
        routes.post("/alerts/maintenance", .operate, use: createWindow)
        routes.post("/alerts/maintenance/:id/delete", .operate, use: deleteWindow)
    }

    // MARK: channels

    /// The form's fields as the API's JSON object; empty secret and password fields keep the stored ones.
    /// The form as the same input the API decodes: text fields trimmed, choices left out keep their value, and a
    /// ticked "remove" box clears the secret or password.
    static func input(from form: FormBody) -> ChannelInput {
        var input = ChannelInput()
        func text(_ key: String) -> Patch<String> { .value((form[key] ?? "").trimmingCharacters(in: .whitespaces)) }
        func number(_ key: ChannelInput.CodingKeys) -> Patch<Int> {
            let value = (form[key.rawValue] ?? "").trimmingCharacters(in: .whitespaces)
            return Int(value).map { .value($0) } ?? .invalid(field: key.rawValue, message: "must be an integer")
        }
        func choice<T: APIChoice>(_ key: String) -> Patch<T> {
            guard let value = form[key], !value.isEmpty else { return .absent }
            return T(rawValue: value).map { .value($0) } ?? .invalid(field: key, message: T.choiceText)
        }
        input.name = text("name")
        input.matchLabels = text("match_labels")
        input.url = text("url")
        input.smtpHost = text("smtp_host")
        input.smtpUser = text("smtp_user")
        input.mailFrom = text("mail_from")
        input.mailTo = text("mail_to")
        input.smtpCaFile = text("smtp_ca_file")
        input.kind = choice("kind")
        input.minSeverity = choice("min_severity")
        input.smtpSecurity = choice("smtp_security")
        input.groupWaitSeconds = number(.groupWaitSeconds)
        input.groupIntervalSeconds = number(.groupIntervalSeconds)
        input.smtpPort = number(.smtpPort)
        input.enabled = .value(form["enabled"] == "on")
        input.sendResolved = .value(form["send_resolved"] == "on")
        if let secret = form["secret"], !secret.isEmpty { input.secret = .value(secret) }
        if let password = form["password"], !password.isEmpty { input.password = .value(password) }
        if form["clear_secret"] == "on" { input.secret = .null }
        if form["clear_password"] == "on" { input.password = .null }
        return input
    }

    static func view(_ channel: NotificationChannel) -> [String: Any?] {
        [
            "id": channel.id, "name": channel.name, "webhook": channel.kind == .webhook, "email": channel.kind == .email,
            "alertmanager": channel.kind == .alertmanager,
            "enabled": channel.enabled, "critical_only": channel.minSeverity == .critical, "warning_up": channel.minSeverity == .warning,
            "info_too": channel.minSeverity == .info, "match_labels": channel.matchLabels,
            "send_resolved": channel.sendResolved, "group_wait_seconds": channel.groupWaitSeconds,
            "group_interval_seconds": channel.groupIntervalSeconds, "url": channel.url, "has_secret": channel.secret != nil,
            "smtp_host": channel.smtpHost, "smtp_port": channel.smtpPort, "starttls": channel.smtpSecurity == .starttls,
            "tls": channel.smtpSecurity == .tls, "plain": channel.smtpSecurity == .none, "smtp_user": channel.smtpUser,
            "has_password": channel.password != nil, "mail_from": channel.mailFrom, "mail_to": channel.mailTo,
            "smtp_ca_file": channel.smtpCAFile,
            "target": channel.kind == .email ? "\(channel.mailTo) via \(channel.smtpHost):\(channel.smtpPort)" : channel.url,
            "routing":
                (channel.minSeverity == .critical
                ? "critical only" : channel.minSeverity == .info ? "info, warning and critical" : "warning and critical")
                + (channel.matchLabels.isEmpty ? "" : ", labels \(channel.matchLabels)"),
        ]
    }

    func render(
        _ template: String, title: String, channel: NotificationChannel, errors: [String: String], request: Request,
        context: StewardRequestContext, status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let data: [String: Any] = [
            "channels": try channels.all().map { ViewNode(Self.view($0)) }, "form": ViewNode(Self.view(channel)), "errors": ViewNode(errors),
            "has_errors": !errors.isEmpty, "is_new": channel.id == 0,
        ]
        return area.pages.page(template, title: title, section: "settings", data: data, request: request, context: context, status: status)
    }

    @Sendable func channelsPage(request: Request, context: StewardRequestContext) async throws -> Response {
        var blank = NotificationChannel()
        blank.smtpPort = 587
        return try render("settings/channels", title: "Notification channels", channel: blank, errors: [:], request: request, context: context)
    }

    func load(_ context: StewardRequestContext) throws -> NotificationChannel {
        guard let id = context.parameters.get("id", as: Int64.self), let channel = try channels.channel(id: id) else {
            throw HTTPError(.notFound, message: "there is no such channel")
        }
        return channel
    }

    @Sendable func channelPage(request: Request, context: StewardRequestContext) async throws -> Response {
        let channel = try load(context)
        return try render("settings/channel", title: channel.name, channel: channel, errors: [:], request: request, context: context)
    }

    func save(_ request: Request, _ context: StewardRequestContext, base: NotificationChannel) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var channel = base
        do {
            try Self.input(from: form).apply(to: &channel)
            let saved = try channels.save(channel, by: context.actor, now: Date())
            return area.pages.redirect(to: "/settings/channels/\(saved.id)", flash: Flash(.success, "Saved channel \(saved.name)."))
        } catch let problem as Problem {
            return try render(
                base.id == 0 ? "settings/channels" : "settings/channel", title: base.id == 0 ? "Notification channels" : base.name, channel: channel,
                errors: problem.errors ?? ["name": problem.detail], request: request, context: context, status: .unprocessableContent)
        }
    }

    @Sendable func createChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        try await save(request, context, base: NotificationChannel())
    }

    @Sendable func updateChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        try await save(request, context, base: try load(context))
    }

    @Sendable func deleteChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        let channel = try load(context)
        _ = try channels.delete(id: channel.id, by: context.actor, now: Date())
        return area.pages.redirect(to: "/settings/channels", flash: Flash(.success, "Removed channel \(channel.name)."))
    }

    /// Send a test message now, through the real sender, and say what happened.
    @Sendable func testChannel(request: Request, context: StewardRequestContext) async throws -> Response {
        let channel = try load(context)
        var rule = AlertRule()
        rule.name = "Steward test message"
        rule.warnThreshold = 1
        rule.summary = "test"
        rule.description = "Sent from Settings → Notification channels by \(context.actor.actor). Nothing is wrong."
        let item = NotificationMessage.Item(
            host: "steward", hostID: 0, state: "firing", severity: "warning", value: 1, since: EpochMilliseconds.from(Date()),
            summary: "A test message for the channel \(channel.name)", description: rule.description)
        let message = NotificationMessage(reason: "test", rule: rule, firing: [item], resolved: [], baseURL: baseURL)
        do {
            try await sender.send(message, to: channel)
            return area.pages.redirect(
                to: "/settings/channels/\(channel.id)", flash: Flash(.success, "The test message was accepted by \(channel.name)."))
        } catch {
            return area.pages.redirect(to: "/settings/channels/\(channel.id)", flash: Flash(.error, "The test message failed: \(error)"))
        }
    }

    // MARK: silences and maintenance windows

    @Sendable func silencesPage(request: Request, context: StewardRequestContext) async throws -> Response {
        try renderSilences(request: request, context: context, errors: [:], values: [:])
    }

    func renderSilences(
        request: Request, context: StewardRequestContext, errors: [String: String], values: [String: String], status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let now = EpochMilliseconds.from(Date())
        let data: [String: Any] = [
            "silences": try silences.all().prefix(100).map { silence in
                ViewNode([
                    "id": silence.id, "matchers": silence.matchers, "comment": silence.comment, "created_by": silence.createdBy,
                    "starts": RFC3339.display(EpochMilliseconds.date(silence.startsAt)),
                    "ends": RFC3339.display(EpochMilliseconds.date(silence.endsAt)),
                    "active": silence.startsAt <= now && silence.endsAt > now, "ended": silence.endsAt <= now,
                ])
            },
            "windows": try windows.all().map { window in
                ViewNode([
                    "id": window.id, "name": window.name, "host_group": window.hostGroup, "cron": window.cron,
                    "duration": window.durationMinutes, "time_zone": window.timeZone, "open": window.isOpen(at: Date()), "comment": window.comment,
                    "has_comment": !window.comment.isEmpty,
                ])
            },
            "errors": ViewNode(errors), "values": ViewNode(values), "has_errors": !errors.isEmpty,
            "operator": context.identity?.permissions.contains(.operate) ?? false,
        ]
        return area.pages.page(
            "alerts/silences", title: "Silences and maintenance", section: "silences", data: data, request: request, context: context,
            status: status)
    }

    @Sendable func createSilence(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var silence = Silence()
        silence.matchers = (form["matchers"] ?? "").trimmingCharacters(in: .whitespaces)
        silence.comment = (form["comment"] ?? "").trimmingCharacters(in: .whitespaces)
        silence.startsAt = EpochMilliseconds.from(Date())
        var errors: [String: String] = [:]
        if let duration = TimeText.durationMilliseconds((form["duration"] ?? "").trimmingCharacters(in: .whitespaces)) {
            silence.endsAt = silence.startsAt + duration
        } else {
            errors["duration"] = "a duration such as 30m, 2h or 1d"
        }
        errors.merge(silence.problems().filter { $0.key != "ends_at" || errors["duration"] == nil }) { a, _ in a }
        guard errors.isEmpty else {
            var values: [String: String] = [:]
            for key in ["matchers", "comment", "duration"] { values[key] = form[key] ?? "" }
            return try renderSilences(request: request, context: context, errors: errors, values: values, status: .unprocessableContent)
        }
        _ = try silences.create(silence, by: context.actor, now: Date())
        return area.pages.redirect(
            to: "/alerts/silences",
            flash: Flash(.success, "Silenced \(silence.matchers) until \(RFC3339.display(EpochMilliseconds.date(silence.endsAt)))."))
    }

    @Sendable func expireSilence(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try silences.expire(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such silence")
        }
        return area.pages.redirect(to: "/alerts/silences", flash: Flash(.success, "The silence ended."))
    }

    @Sendable func createWindow(request: Request, context: StewardRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        var window = MaintenanceWindow()
        window.name = (form["window_name"] ?? "").trimmingCharacters(in: .whitespaces)
        window.hostGroup = (form["host_group"] ?? "").trimmingCharacters(in: .whitespaces)
        window.cron = (form["cron"] ?? "").trimmingCharacters(in: .whitespaces)
        let zone = (form["time_zone"] ?? "").trimmingCharacters(in: .whitespaces)
        window.timeZone = zone.isEmpty ? "UTC" : zone
        window.comment = (form["window_comment"] ?? "").trimmingCharacters(in: .whitespaces)
        var errors = window.problems()
        if let minutes = Int((form["duration_minutes"] ?? "").trimmingCharacters(in: .whitespaces)) {
            window.durationMinutes = minutes
            errors = window.problems()
        } else {
            errors["duration_minutes"] = "a whole number of minutes"
        }
        if errors.isEmpty {
            do {
                _ = try windows.create(window, by: context.actor, now: Date())
                return area.pages.redirect(to: "/alerts/silences", flash: Flash(.success, "Added the maintenance window \(window.name)."))
            } catch let problem as Problem {
                errors = problem.errors ?? ["name": problem.detail]
            }
        }
        var values: [String: String] = [:]
        for key in ["window_name", "host_group", "cron", "duration_minutes", "time_zone", "window_comment"] { values[key] = form[key] ?? "" }
        return try renderSilences(
            request: request, context: context,
            errors: Dictionary(uniqueKeysWithValues: errors.map { ($0.key == "name" ? "window_name" : $0.key, $0.value) }),
            values: values, status: .unprocessableContent)
    }

    @Sendable func deleteWindow(request: Request, context: StewardRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id", as: Int64.self), try windows.delete(id: id, by: context.actor, now: Date()) else {
            throw HTTPError(.notFound, message: "there is no such maintenance window")
        }
        return area.pages.redirect(to: "/alerts/silences", flash: Flash(.success, "Removed the maintenance window."))
    }
}
