import Foundation
import GRDB

// Channels, silences, maintenance windows and deliveries as the API shows and accepts them.

/// A channel; secrets are never shown, only whether one is set.
struct ChannelResource: Codable, Sendable {
    let id: Int64
    let name, kind: String
    let enabled: Bool
    let minSeverity, matchLabels: String
    let sendResolved: Bool
    let groupWaitSeconds, groupIntervalSeconds: Int
    let url: String
    let hasSecret: Bool
    let smtpHost: String
    let smtpPort: Int
    let smtpSecurity, smtpUser: String
    let hasPassword: Bool
    let mailFrom, mailTo, smtpCaFile: String

    init(_ channel: NotificationChannel) {
        id = channel.id
        name = channel.name
        kind = channel.kind.rawValue
        enabled = channel.enabled
        minSeverity = channel.minSeverity.rawValue
        matchLabels = channel.matchLabels
        sendResolved = channel.sendResolved
        groupWaitSeconds = channel.groupWaitSeconds
        groupIntervalSeconds = channel.groupIntervalSeconds
        url = channel.url
        hasSecret = channel.secret != nil
        smtpHost = channel.smtpHost
        smtpPort = channel.smtpPort
        smtpSecurity = channel.smtpSecurity.rawValue
        smtpUser = channel.smtpUser
        hasPassword = channel.password != nil
        mailFrom = channel.mailFrom
        mailTo = channel.mailTo
        smtpCaFile = channel.smtpCAFile
    }
}

/// The fields of a channel a client may send; left out keeps the value, and `secret` or `password` null (or empty)
/// removes it. The settings form builds the same input from its fields.
struct ChannelInput: APIInput {
    var name: Patch<String> = .absent
    var kind: Patch<NotificationChannel.Kind> = .absent
    var enabled: Patch<Bool> = .absent
    var minSeverity: Patch<AlertState.Severity> = .absent
    var matchLabels: Patch<String> = .absent
    var sendResolved: Patch<Bool> = .absent
    var groupWaitSeconds: Patch<Int> = .absent
    var groupIntervalSeconds: Patch<Int> = .absent
    var url: Patch<String> = .absent
    var secret: Patch<String> = .absent
    var smtpHost: Patch<String> = .absent
    var smtpPort: Patch<Int> = .absent
    var smtpSecurity: Patch<NotificationChannel.Security> = .absent
    var smtpUser: Patch<String> = .absent
    var password: Patch<String> = .absent
    var mailFrom: Patch<String> = .absent
    var mailTo: Patch<String> = .absent
    var smtpCaFile: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, kind, enabled, url, secret, password
        case minSeverity = "min_severity"
        case matchLabels = "match_labels"
        case sendResolved = "send_resolved"
        case groupWaitSeconds = "group_wait_seconds"
        case groupIntervalSeconds = "group_interval_seconds"
        case smtpHost = "smtp_host"
        case smtpPort = "smtp_port"
        case smtpSecurity = "smtp_security"
        case smtpUser = "smtp_user"
        case mailFrom = "mail_from"
        case mailTo = "mail_to"
        case smtpCaFile = "smtp_ca_file"
    }

    init() {}

    /// Copy what was sent onto a channel, then check the whole channel.
    func apply(to channel: inout NotificationChannel) throws {
        var errors = APIInputDecoding.wrongFields(self)
        name.assign(CodingKeys.name.rawValue, &errors) { channel.name = $0 }
        kind.assign(CodingKeys.kind.rawValue, &errors) { channel.kind = $0 }
        enabled.assign(CodingKeys.enabled.rawValue, &errors) { channel.enabled = $0 }
        minSeverity.assign(CodingKeys.minSeverity.rawValue, &errors) { channel.minSeverity = $0 }
        matchLabels.assign(CodingKeys.matchLabels.rawValue, &errors) { channel.matchLabels = $0 }
        sendResolved.assign(CodingKeys.sendResolved.rawValue, &errors) { channel.sendResolved = $0 }
        groupWaitSeconds.assign(CodingKeys.groupWaitSeconds.rawValue, &errors) { channel.groupWaitSeconds = $0 }
        groupIntervalSeconds.assign(CodingKeys.groupIntervalSeconds.rawValue, &errors) { channel.groupIntervalSeconds = $0 }
        url.assign(CodingKeys.url.rawValue, &errors) { channel.url = $0 }
        if let value = secret.orNil { channel.secret = value?.isEmpty == false ? value : nil }
        smtpHost.assign(CodingKeys.smtpHost.rawValue, &errors) { channel.smtpHost = $0 }
        smtpPort.assign(CodingKeys.smtpPort.rawValue, &errors) { channel.smtpPort = $0 }
        smtpSecurity.assign(CodingKeys.smtpSecurity.rawValue, &errors) { channel.smtpSecurity = $0 }
        smtpUser.assign(CodingKeys.smtpUser.rawValue, &errors) { channel.smtpUser = $0 }
        if let value = password.orNil { channel.password = value?.isEmpty == false ? value : nil }
        mailFrom.assign(CodingKeys.mailFrom.rawValue, &errors) { channel.mailFrom = $0 }
        mailTo.assign(CodingKeys.mailTo.rawValue, &errors) { channel.mailTo = $0 }
        smtpCaFile.assign(CodingKeys.smtpCaFile.rawValue, &errors) { channel.smtpCAFile = $0 }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let problems = channel.problems()
        guard problems.isEmpty else { throw Problem.invalid(problems) }
    }
}

/// A silence, and whether it mutes now.
struct SilenceResource: Codable, Sendable {
    let id: Int64
    let matchers, startsAt, endsAt, createdBy, comment: String
    let active: Bool

    init(_ silence: Silence, now: Int64) {
        id = silence.id
        matchers = silence.matchers
        startsAt = RFC3339.string(milliseconds: silence.startsAt) ?? ""
        endsAt = RFC3339.string(milliseconds: silence.endsAt) ?? ""
        createdBy = silence.createdBy
        comment = silence.comment
        active = silence.endsAt > now && silence.startsAt <= now
    }
}

/// A new silence: matchers and a comment, from `starts_at` (default now) to `ends_at` or for `duration`.
struct SilenceInput: APIInput {
    var matchers: Patch<String> = .absent
    var comment: Patch<String> = .absent
    var startsAt: Patch<String> = .absent
    var endsAt: Patch<String> = .absent
    var duration: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case matchers, comment, duration
        case startsAt = "starts_at"
        case endsAt = "ends_at"
    }

    func silence(now: Int64) throws -> Silence {
        var silence = Silence()
        var errors = APIInputDecoding.wrongFields(self)
        silence.matchers = matchers.given ?? ""
        silence.comment = comment.given ?? ""
        silence.startsAt = now
        if let text = startsAt.given {
            if let time = TimeText.milliseconds(text) { silence.startsAt = time } else { errors["starts_at"] = "an RFC 3339 time" }
        }
        if let text = endsAt.given {
            if let time = TimeText.milliseconds(text) { silence.endsAt = time } else { errors["ends_at"] = "an RFC 3339 time" }
        } else if let text = duration.given, let milliseconds = TimeText.durationMilliseconds(text) {
            silence.endsAt = silence.startsAt + milliseconds
        } else {
            errors["ends_at"] = "give ends_at (RFC 3339) or duration (e.g. 2h)"
        }
        errors.merge(silence.problems()) { a, _ in a }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return silence
    }
}

/// A recurring maintenance window, and whether it is open now.
struct MaintenanceWindowResource: Codable, Sendable {
    let id: Int64
    let name, hostGroup, cron: String
    let durationMinutes: Int
    let timeZone: String
    let enabled: Bool
    let comment: String
    let openNow: Bool

    init(_ window: MaintenanceWindow, now: Date) {
        id = window.id
        name = window.name
        hostGroup = window.hostGroup
        cron = window.cron
        durationMinutes = window.durationMinutes
        timeZone = window.timeZone
        enabled = window.enabled
        comment = window.comment
        openNow = window.isOpen(at: now)
    }
}

/// A new maintenance window.
struct MaintenanceWindowInput: APIInput {
    var name: Patch<String> = .absent
    var hostGroup: Patch<String> = .absent
    var cron: Patch<String> = .absent
    var durationMinutes: Patch<Int> = .absent
    var timeZone: Patch<String> = .absent
    var enabled: Patch<Bool> = .absent
    var comment: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, cron, enabled, comment
        case hostGroup = "host_group"
        case durationMinutes = "duration_minutes"
        case timeZone = "time_zone"
    }

    func window() throws -> MaintenanceWindow {
        var window = MaintenanceWindow()
        var errors = APIInputDecoding.wrongFields(self)
        window.name = name.given ?? ""
        window.hostGroup = hostGroup.given ?? ""
        window.cron = cron.given ?? ""
        window.timeZone = timeZone.given ?? "UTC"
        window.comment = comment.given ?? ""
        if let value = durationMinutes.given { window.durationMinutes = value }
        if let value = enabled.given { window.enabled = value }
        errors.merge(window.problems()) { a, _ in a }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return window
    }
}

/// One notification in the delivery log.
struct DeliveryResource: Codable, Sendable {
    let id: Int64
    let channel, rule, status, reason: String
    let attempts: Int
    let subject, createdAt: String
    let sentAt, error, nextAttemptAt: Nullable<String>
}

extension NotificationChannelStore {
    /// The newest deliveries first.
    func deliveries(limit: Int) throws -> [DeliveryResource] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM notification_deliveries ORDER BY id DESC LIMIT ?", arguments: [limit]).map { row in
                DeliveryResource(
                    id: row["id"], channel: row["channel_name"], rule: row["rule_name"], status: row["status"], reason: row["reason"],
                    attempts: row["attempts"], subject: row["subject"], createdAt: RFC3339.string(milliseconds: row["created_at"]) ?? "",
                    sentAt: Nullable(RFC3339.string(milliseconds: row["sent_at"])), error: Nullable(row["error"] as String?),
                    nextAttemptAt: Nullable(RFC3339.string(milliseconds: row["next_attempt_at"])))
            }
        }
    }
}
