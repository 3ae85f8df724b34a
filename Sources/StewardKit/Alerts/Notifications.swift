import Crypto
import Foundation
import GRDB
import Logging
import ServiceLifecycle

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Where notifications go: a webhook (JSON, optional HMAC signature, Slack-compatible `text`), email over SMTP, or an
/// Alertmanager (its v2 API, with Steward's labels, so teams that route with Alertmanager keep doing so).
public struct NotificationChannel: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case webhook, email, alertmanager }
    public enum Security: String, Sendable, CaseIterable { case starttls, tls, none }

    public var id: Int64 = 0
    public var name = ""
    public var kind = Kind.webhook
    public var enabled = true
    public var minSeverity = AlertState.Severity.warning
    public var matchLabels = ""
    public var sendResolved = true
    public var groupWaitSeconds = 30
    public var groupIntervalSeconds = 300
    public var url = ""
    /// The HMAC secret (webhook) or bearer token (Alertmanager), in clear only in memory; sealed in the database.
    public var secret: String?
    public var smtpHost = ""
    public var smtpPort = 587
    public var smtpSecurity = Security.starttls
    public var smtpUser = ""
    public var password: String?
    public var mailFrom = ""
    public var mailTo = ""
    /// A PEM file of the CA that signed the SMTP server's certificate, when it is not a public one.
    public var smtpCAFile = ""

    public init() {}

    public func problems() -> [String: String] {
        var errors: [String: String] = [:]
        if name.isEmpty || name.count > 64 || !name.allSatisfy({ $0.isLetter || $0.isNumber || "-_. ".contains($0) }) {
            errors["name"] = "1 to 64 letters, digits, spaces, '-', '_' or '.'"
        }
        if let message = AlertRule.pairsProblem(matchLabels) { errors["match_labels"] = message }
        if !(0...3600).contains(groupWaitSeconds) { errors["group_wait_seconds"] = "from 0 to 3600" }
        if !(10...86400).contains(groupIntervalSeconds) { errors["group_interval_seconds"] = "from 10 to 86400" }
        switch kind {
        case .webhook:
            let components = URLComponents(string: url)
            if components?.scheme != "https" && components?.scheme != "http" || components?.host?.isEmpty != false {
                errors["url"] = "an http(s) URL such as https://hooks.example.com/steward"
            }
        case .alertmanager:
            let components = URLComponents(string: url)
            if components?.scheme != "https" && components?.scheme != "http" || components?.host?.isEmpty != false || components?.user != nil {
                errors["url"] = "the Alertmanager's http(s) address, such as http://alertmanager.example.com:9093 (a token goes in the secret)"
            }
            if !sendResolved { errors["send_resolved"] = "an Alertmanager learns that an alert ended only when told; keep it on" }
        case .email:
            if smtpHost.isEmpty || smtpHost.contains(where: { $0 == " " || $0 == "/" }) { errors["smtp_host"] = "the SMTP server's name or address" }
            if !(1...65535).contains(smtpPort) { errors["smtp_port"] = "1-65535 (587 for STARTTLS, 465 for TLS)" }
            if !Self.isAddress(mailFrom) { errors["mail_from"] = "one address, such as steward@example.com" }
            let recipients = mailTo.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if recipients.isEmpty || !recipients.allSatisfy(Self.isAddress) { errors["mail_to"] = "addresses separated by commas" }
            if smtpUser.contains(where: { $0 == "\n" || $0 == "\"" }) { errors["smtp_user"] = "no quotes or line breaks" }
            if !smtpCAFile.isEmpty, !smtpCAFile.hasPrefix("/") || !FileManager.default.isReadableFile(atPath: smtpCAFile) {
                errors["smtp_ca_file"] = "the absolute path of a readable PEM file on this server, or empty for the system's CAs"
            }
        }
        return errors
    }

    static func isAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@")
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".")
            && !text.contains(where: { $0.isWhitespace || "<>\"',;\\".contains($0) || !$0.isASCII })
    }

    /// Whether an alert with these labels and severity goes here when its rule names no route.
    func routes(labels: [(String, String)], severity: AlertState.Severity) -> Bool {
        guard enabled, severity >= minSeverity else { return false }
        return AlertRule.pairs(matchLabels).allSatisfy { wanted in labels.contains { $0.0 == wanted.0 && $0.1 == wanted.1 } }
    }
}

/// Channels in SQLite, with the secret and password sealed (AES-GCM, a key derived from DATA/secret.key).
public struct NotificationChannelStore: Sendable {
    let database: DatabasePool
    let sealer: SecretSealer

    public init(database: DatabasePool, masterKey: SymmetricKey) {
        self.database = database
        sealer = SecretSealer(masterKey: masterKey, purpose: "steward notification secret")
    }

    func seal(_ text: String?) throws -> Data? { try sealer.seal(text) }

    func open(_ data: Data?) -> String? { sealer.open(data) }

    func channel(_ row: Row) -> NotificationChannel {
        var channel = NotificationChannel()
        channel.id = row["id"]
        channel.name = row["name"]
        channel.kind = NotificationChannel.Kind(rawValue: row["kind"]) ?? .webhook
        if channel.kind == .webhook, row["webhook_format"] == "alertmanager" { channel.kind = .alertmanager }
        channel.enabled = row["enabled"]
        channel.minSeverity = AlertState.Severity(rawValue: row["min_severity"]) ?? .warning
        channel.matchLabels = row["match_labels"]
        channel.sendResolved = row["send_resolved"]
        channel.groupWaitSeconds = row["group_wait_seconds"]
        channel.groupIntervalSeconds = row["group_interval_seconds"]
        channel.url = row["url"]
        channel.secret = open(row["secret_sealed"])
        channel.smtpHost = row["smtp_host"]
        channel.smtpPort = row["smtp_port"]
        channel.smtpSecurity = NotificationChannel.Security(rawValue: row["smtp_security"]) ?? .starttls
        channel.smtpUser = row["smtp_user"]
        channel.password = open(row["password_sealed"])
        channel.mailFrom = row["mail_from"]
        channel.mailTo = row["mail_to"]
        channel.smtpCAFile = row["smtp_ca_file"]
        return channel
    }

    public func all() throws -> [NotificationChannel] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM notification_channels ORDER BY name").map(channel) }
    }

    public func channel(id: Int64) throws -> NotificationChannel? { try all().first { $0.id == id } }

    public func save(_ channel: NotificationChannel, by who: AuditActor, now: Date) throws -> NotificationChannel {
        let values: [(any DatabaseValueConvertible)?] = [
            channel.name, channel.kind == .alertmanager ? "webhook" : channel.kind.rawValue, channel.enabled, channel.minSeverity.rawValue,
            channel.matchLabels, channel.sendResolved,
            channel.groupWaitSeconds, channel.groupIntervalSeconds, channel.url, try seal(channel.secret), channel.smtpHost, channel.smtpPort,
            channel.smtpSecurity.rawValue, channel.smtpUser, try seal(channel.password), channel.mailFrom, channel.mailTo, channel.smtpCAFile,
            channel.kind == .alertmanager ? "alertmanager" : "steward",
        ]
        let columns = [
            "name", "kind", "enabled", "min_severity", "match_labels", "send_resolved", "group_wait_seconds", "group_interval_seconds", "url",
            "secret_sealed", "smtp_host", "smtp_port", "smtp_security", "smtp_user", "password_sealed", "mail_from", "mail_to",
            "smtp_ca_file", "webhook_format",
        ]
        let audit: [String: Any] = [
            "name": channel.name, "kind": channel.kind.rawValue, "url": channel.url, "smtp_host": channel.smtpHost, "mail_to": channel.mailTo,
            "min_severity": channel.minSeverity.rawValue, "match_labels": channel.matchLabels, "has_secret": channel.secret != nil,
            "has_password": channel.password != nil,
        ]
        let id = try database.write { db -> Int64 in
            if try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM notification_channels WHERE name = ? AND id != ?)", arguments: [channel.name, channel.id])
                == true
            {
                throw Problem.invalid(["name": "a channel named \"\(channel.name)\" exists"])
            }
            let now = EpochMilliseconds.from(now)
            if channel.id == 0 {
                try db.execute(
                    sql:
                        "INSERT INTO notification_channels (\(columns.joined(separator: ", ")), created_at, updated_at) VALUES (\(Array(repeating: "?", count: columns.count + 2).joined(separator: ", ")))",
                    arguments: StatementArguments(values + [now, now]))
                let id = db.lastInsertedRowID
                try AuditLog.append(db, by: who, action: "channel.create", target: "channel:\(channel.name)", after: audit, now: Date())
                return id
            }
            try db.execute(
                sql: "UPDATE notification_channels SET \(columns.map { "\($0) = ?" }.joined(separator: ", ")), updated_at = ? WHERE id = ?",
                arguments: StatementArguments(values + [now, channel.id]))
            try AuditLog.append(db, by: who, action: "channel.update", target: "channel:\(channel.name)", after: audit, now: Date())
            return channel.id
        }
        return try self.channel(id: id)!
    }

    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        guard let channel = try channel(id: id) else { return false }
        try database.write { db in
            try db.execute(sql: "DELETE FROM notification_channels WHERE id = ?", arguments: [id])
            try AuditLog.append(db, by: who, action: "channel.delete", target: "channel:\(channel.name)", now: now)
        }
        return true
    }
}

/// A silence: notifications for matching alerts are held back between its start and end. Matchers are
/// `rule=NAME`, `host=NAME`, `severity=warning|critical` or any rule label, all of which must match (`*` globs).
public struct Silence: Sendable, Equatable {
    public var id: Int64 = 0
    public var matchers = ""
    public var startsAt: Int64 = 0
    public var endsAt: Int64 = 0
    public var createdBy = ""
    public var comment = ""

    public init() {}

    public func problems() -> [String: String] {
        var errors: [String: String] = [:]
        let pairs = AlertRule.pairs(matchers)
        if pairs.isEmpty || pairs.count != matchers.split(separator: ",").count {
            errors["matchers"] = "name=value pairs separated by commas, e.g. host=web-01,rule=Filesystem almost full"
        }
        if endsAt <= startsAt { errors["ends_at"] = "must be after the start" }
        if comment.trimmingCharacters(in: .whitespaces).isEmpty { errors["comment"] = "say why (a ticket, a maintenance), so others know" }
        return errors
    }

    public func matches(rule: AlertRule, host: String, severity: AlertState.Severity?, at time: Int64) -> Bool {
        guard time >= startsAt, time < endsAt else { return false }
        let labels = rule.labelPairs
        return AlertRule.pairs(matchers).allSatisfy { key, pattern in
            let value: String?
            switch key {
            case "rule": value = rule.name
            case "host": value = host
            case "severity": value = severity?.rawValue
            default: value = labels.first { $0.0 == key }?.1
            }
            return value.map { MetricAllowList.matches(pattern, $0) } ?? false
        }
    }
}

public struct SilenceStore: Sendable {
    let database: DatabasePool

    public init(database: DatabasePool) { self.database = database }

    public func all() throws -> [Silence] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM silences ORDER BY ends_at DESC").map { row in
                var silence = Silence()
                silence.id = row["id"]
                silence.matchers = row["matchers"]
                silence.startsAt = row["starts_at"]
                silence.endsAt = row["ends_at"]
                silence.createdBy = row["created_by"]
                silence.comment = row["comment"]
                return silence
            }
        }
    }

    public func create(_ silence: Silence, by who: AuditActor, now: Date) throws -> Int64 {
        try database.write { db in
            try db.execute(
                sql: "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [silence.matchers, silence.startsAt, silence.endsAt, who.actor, silence.comment, EpochMilliseconds.from(now)])
            let id = db.lastInsertedRowID
            try AuditLog.append(
                db, by: who, action: "silence.create", target: "silence:\(id)",
                after: ["matchers": silence.matchers, "starts_at": silence.startsAt, "ends_at": silence.endsAt, "comment": silence.comment], now: now)
            return id
        }
    }

    /// Ending a silence sets its end to now; the record stays for the history.
    public func expire(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "UPDATE silences SET ends_at = MIN(ends_at, ?) WHERE id = ?", arguments: [EpochMilliseconds.from(now), id])
            guard db.changesCount > 0 else { return false }
            try AuditLog.append(db, by: who, action: "silence.expire", target: "silence:\(id)", now: now)
            return true
        }
    }
}

/// One message to one channel about one rule: what is happening, why, what to do, and a link.
/// A message about something other than an alert (a rollout awaiting approval, paused or done), sent through the
/// same channels.
public struct NotificationEvent: Sendable {
    public var kind: String
    public var subject: String
    public var text: String
    public var link: String
    public var severity: String
}

public struct NotificationMessage: Sendable {
    public struct Item: Sendable {
        public var host: String
        public var hostID: Int64
        public var state: String
        public var severity: String
        public var value: Double?
        public var since: Int64
        public var summary: String
        public var description: String
        /// The labels of the series the host's value came from (PromQL rules), for Alertmanager.
        public var labels: [(String, String)] = []
    }

    public var reason: String
    public var rule: AlertRule
    public var firing: [Item]
    public var resolved: [Item]
    public var baseURL: String
    /// Set for non-alert messages: its subject, text and link replace the alert's.
    public var event: NotificationEvent?

    public init(reason: String, rule: AlertRule, firing: [Item], resolved: [Item], baseURL: String) {
        self.reason = reason
        self.rule = rule
        self.firing = firing
        self.resolved = resolved
        self.baseURL = baseURL
    }

    public var status: String { event?.kind ?? (firing.isEmpty ? "resolved" : "firing") }
    public var link: String { event?.link ?? "\(baseURL)/alerts/rules/\(rule.id)" }

    public var worst: String {
        event?.severity
            ?? (firing.contains { $0.severity == "critical" }
                ? "critical" : firing.isEmpty ? "resolved" : firing.allSatisfy { $0.severity == "info" } ? "info" : "warning")
    }

    public var subject: String {
        if let event { return event.subject }
        return firing.isEmpty
            ? "[RESOLVED] \(rule.name): \(resolved.map(\.host).joined(separator: ", "))"
            : "[\(worst.uppercased()) x\(firing.count)] \(rule.name): \(firing.map(\.host).joined(separator: ", "))"
    }

    func threshold(_ severity: String) -> String {
        let value = severity == "critical" ? rule.critThreshold : rule.warnThreshold
        if value == nil, rule.source == PromQLRule.source, rule.warnThreshold == nil, rule.critThreshold == nil {
            return "its PromQL expression returned the host"
        }
        return value.map { "\(rule.comparison.display) \(MetricUnit.trim($0, digits: 2))" } ?? "-"
    }

    /// Plain text: the body of the email's text part and the webhook's Slack-compatible `text`.
    public var text: String {
        if let event { return event.text }
        var lines: [String] = [subject, ""]
        for item in firing {
            lines.append("What: \(item.summary)")
            lines.append(
                "Why: rule \"\(rule.name)\" is \(item.severity) (\(threshold(item.severity)); value \(item.value.map { MetricUnit.trim($0, digits: 2) } ?? "no data")), "
                    + "\(item.state) since \(RFC3339.display(EpochMilliseconds.date(item.since)))")
            if !item.description.isEmpty { lines.append("What to do: \(item.description)") }
            lines.append("Host: \(baseURL)/hosts/\(item.hostID)/metrics")
            lines.append("")
        }
        if !resolved.isEmpty { lines.append("Resolved: " + resolved.map(\.host).joined(separator: ", ")) }
        if !rule.runbookURL.isEmpty { lines.append("Runbook: \(rule.runbookURL)") }
        lines.append("Rule and history: \(link)")
        return lines.joined(separator: "\n")
    }

    /// The email's HTML part: every value escaped, so nothing a rule or host says can become markup.
    public var html: String {
        func e(_ text: String) -> String { SVGChart.escape(text) }
        if let event {
            return
                "<!doctype html><html><body><h2>\(e(event.subject))</h2><pre>\(e(event.text))</pre><p><a href=\"\(e(event.link))\">Open it</a></p></body></html>"
        }
        var body = "<!doctype html><html><body><h2>\(e(subject))</h2>"
        for item in firing {
            body += "<p><strong>What:</strong> \(e(item.summary))<br><strong>Why:</strong> rule “\(e(rule.name))” is \(e(item.severity)) "
            body +=
                "(\(e(threshold(item.severity))); value \(e(item.value.map { MetricUnit.trim($0, digits: 2) } ?? "no data"))), \(e(item.state)) since "
            body += "\(e(RFC3339.display(EpochMilliseconds.date(item.since))))"
            if !item.description.isEmpty { body += "<br><strong>What to do:</strong> \(e(item.description))" }
            body += "<br><a href=\"\(e("\(baseURL)/hosts/\(item.hostID)/metrics"))\">\(e(item.host)) metrics</a></p>"
        }
        if !resolved.isEmpty { body += "<p><strong>Resolved:</strong> \(e(resolved.map(\.host).joined(separator: ", ")))</p>" }
        if !rule.runbookURL.isEmpty { body += "<p><a href=\"\(e(rule.runbookURL))\">Runbook</a></p>" }
        body += "<p><a href=\"\(e(link))\">Rule and history</a></p></body></html>"
        return body
    }

    public var json: [String: Any] {
        if let event {
            return [
                "version": 1, "status": event.kind, "reason": reason, "severity": event.severity, "subject": event.subject, "text": event.text,
                "link": event.link,
            ]
        }
        func item(_ item: Item, _ state: String) -> [String: Any] {
            [
                "host": item.host, "host_id": item.hostID, "state": state, "severity": item.severity,
                "value": item.value.flatMap { $0.isFinite ? $0 : nil } ?? NSNull(),
                "since": RFC3339.string(milliseconds: item.since) ?? "", "summary": item.summary, "description": item.description,
                "link": "\(baseURL)/hosts/\(item.hostID)/metrics",
            ]
        }
        return [
            "version": 1, "status": status, "reason": reason, "severity": worst, "subject": subject, "text": text, "link": link,
            "rule": [
                "id": rule.id, "name": rule.name, "labels": Dictionary(rule.labelPairs, uniquingKeysWith: { a, _ in a }),
                "runbook_url": rule.runbookURL, "warn_threshold": rule.warnThreshold ?? NSNull(), "crit_threshold": rule.critThreshold ?? NSNull(),
            ],
            "alerts": firing.map { item($0, $0.state) } + resolved.map { item($0, "resolved") },
        ]
    }
}

public protocol NotificationSending: Sendable {
    func send(_ message: NotificationMessage, to channel: NotificationChannel) async throws
}

/// Sends for real: webhooks with URLSession, email with curl's SMTP client (an argv; the password goes in a 0600
/// config file that is deleted after, never on the command line).
public struct NotificationSender: NotificationSending {
    public let scratchDirectory: String

    public init(scratchDirectory: String) { self.scratchDirectory = scratchDirectory }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public func send(_ message: NotificationMessage, to channel: NotificationChannel) async throws {
        switch channel.kind {
        case .webhook: try await webhook(message, channel)
        case .email: try await email(message, channel)
        case .alertmanager: try await alertmanager(message, channel)
        }
    }

    /// The alerts of a message in Alertmanager's v2 form: a firing alert lasts until a repeat would have renewed it,
    /// a resolved one ends now.
    public static func alertmanagerAlerts(_ message: NotificationMessage, now: Date) -> [[String: Any]] {
        guard message.event == nil else { return [] }
        let rule = message.rule
        let lasting = TimeInterval(rule.repeatSeconds + 900)
        func alert(_ item: NotificationMessage.Item, resolved: Bool) -> [String: Any] {
            var labels: [String: String] = [:]
            for (key, value) in item.labels where key != "__name__" { labels[key] = value }
            for (key, value) in rule.labelPairs { labels[key] = value }
            labels["alertname"] = rule.name
            labels["severity"] = item.severity
            labels["host"] = item.host
            labels["instance"] = item.host
            var annotations = ["summary": item.summary]
            if !item.description.isEmpty { annotations["description"] = item.description }
            if !rule.runbookURL.isEmpty { annotations["runbook_url"] = rule.runbookURL }
            return [
                "labels": labels, "annotations": annotations,
                "startsAt": RFC3339.string(milliseconds: item.since) ?? RFC3339.string(now),
                "endsAt": RFC3339.string(resolved ? now : now.addingTimeInterval(lasting)),
                "generatorURL": "\(message.baseURL)/alerts/rules/\(rule.id)",
            ]
        }
        return message.firing.map { alert($0, resolved: false) } + message.resolved.map { alert($0, resolved: true) }
    }

    func alertmanager(_ message: NotificationMessage, _ channel: NotificationChannel) async throws {
        let alerts = Self.alertmanagerAlerts(message, now: Date())
        // Rollout and other events are not alerts: Alertmanager has nothing to route them by.
        guard !alerts.isEmpty else { return }
        let base = channel.url.hasSuffix("/") ? String(channel.url.dropLast()) : channel.url
        guard let url = URL(string: base + "/api/v2/alerts") else { throw Failure(description: "bad URL \(channel.url)") }
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = "POST"
        request.httpBody = try JSONSerialization.data(withJSONObject: alerts, options: [.sortedKeys, .withoutEscapingSlashes])
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Steward/\(StewardVersion.current)", forHTTPHeaderField: "User-Agent")
        if let token = channel.secret { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let session = URLSession(configuration: .ephemeral)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            let said = String(decoding: data.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(description: "Alertmanager \(base) answered HTTP \(status)\(said.isEmpty ? "" : ": " + said)")
        }
    }

    public static func signature(_ body: Data, secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + hexString(code)
    }

    func webhook(_ message: NotificationMessage, _ channel: NotificationChannel) async throws {
        guard let url = URL(string: channel.url) else { throw Failure(description: "bad URL \(channel.url)") }
        let body = try JSONSerialization.data(withJSONObject: message.json, options: [.sortedKeys, .withoutEscapingSlashes])
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = "POST"
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Steward/\(StewardVersion.current)", forHTTPHeaderField: "User-Agent")
        if let secret = channel.secret { request.setValue(Self.signature(body, secret: secret), forHTTPHeaderField: "X-Steward-Signature") }
        let session = URLSession(configuration: .ephemeral)
        defer { session.finishTasksAndInvalidate() }
        let (_, response) = try await session.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else { throw Failure(description: "\(channel.url) answered HTTP \(status)") }
    }

    func email(_ message: NotificationMessage, _ channel: NotificationChannel) async throws {
        let boundary = "steward-" + UUID().uuidString
        let recipients = channel.mailTo.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let subject = message.subject.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
        let encodedSubject = "=?UTF-8?B?\(Data(subject.utf8).base64EncodedString())?="
        var mail = "From: Steward <\(channel.mailFrom)>\r\nTo: \(recipients.joined(separator: ", "))\r\nSubject: \(encodedSubject)\r\n"
        mail += "Date: \(Self.rfc2822(Date()))\r\nMessage-ID: <\(UUID().uuidString)@steward>\r\nMIME-Version: 1.0\r\n"
        mail += "Content-Type: multipart/alternative; boundary=\"\(boundary)\"\r\n\r\n"
        mail += "--\(boundary)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        mail += Data(message.text.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        mail += "\r\n--\(boundary)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        mail += Data(message.html.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        mail += "\r\n--\(boundary)--\r\n"
        let scheme = channel.smtpSecurity == .tls ? "smtps" : "smtp"
        var argv = [
            "curl", "--silent", "--show-error", "--max-time", "30", "--url", "\(scheme)://\(channel.smtpHost):\(channel.smtpPort)",
            "--mail-from", channel.mailFrom,
        ]
        for recipient in recipients { argv += ["--mail-rcpt", recipient] }
        if channel.smtpSecurity == .starttls { argv.append("--ssl-reqd") }
        if !channel.smtpCAFile.isEmpty { argv += ["--cacert", channel.smtpCAFile] }
        argv += ["--upload-file", "-"]
        var configPath: String?
        if !channel.smtpUser.isEmpty {
            let path = scratchDirectory + "/curl-" + UUID().uuidString
            let escaped = (channel.smtpUser + ":" + (channel.password ?? "")).replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
            FileManager.default.createFile(atPath: path, contents: Data("user = \"\(escaped)\"\n".utf8), attributes: [.posixPermissions: 0o600])
            argv += ["--config", path]
            configPath = path
        }
        defer { if let configPath { try? FileManager.default.removeItem(atPath: configPath) } }
        let result = try await offload { [argv, mail] in try ShortCommand.run(argv, timeout: 40, input: mail) }
        guard result.status == 0 else {
            throw Failure(
                description: "SMTP \(channel.smtpHost):\(channel.smtpPort) refused: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    static func rfc2822(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }
}
