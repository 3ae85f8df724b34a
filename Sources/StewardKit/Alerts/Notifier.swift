import Foundation
import GRDB
import Logging
import ServiceLifecycle

/// Turns alert states into messages: routes each rule's alerts to channels, holds them back while silenced or
/// inhibited, groups per channel and rule (wait `group_wait` after the first change, then at most once per
/// `group_interval`), repeats firing alerts every rule's `repeat_seconds`, says when they resolve, and delivers with
/// retries and backoff, recording every attempt in notification_deliveries.
public final class Notifier: Service, @unchecked Sendable {
    let database: DatabasePool
    let evaluator: AlertEvaluator
    let channels: NotificationChannelStore
    let silences: SilenceStore
    let sender: any NotificationSending
    let baseURL: String
    let clock: @Sendable () -> Date
    let logger: Logger
    /// Attempts before a delivery is marked failed, and the first retry delay (doubling each time).
    public static let maxAttempts = 6
    public static let firstRetrySeconds: Int64 = 10

    public init(
        database: DatabasePool, evaluator: AlertEvaluator, channels: NotificationChannelStore, sender: any NotificationSending, baseURL: String,
        logger: Logger, clock: @escaping @Sendable () -> Date = Date.init
    ) {
        self.database = database
        self.evaluator = evaluator
        self.channels = channels
        silences = SilenceStore(database: database)
        self.sender = sender
        self.baseURL = baseURL
        self.logger = logger
        self.clock = clock
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: .seconds(5))
                } catch { break }
                do {
                    try await tick()
                } catch {
                    logger.error("notification round failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// One round: queue what is due, then deliver what is pending.
    public func tick() async throws {
        try queue()
        try await deliver()
    }

    struct Group {
        var firstChangeAt: Int64?
        var lastSentAt: Int64?
        var lastFiring: String
    }

    /// Decide, per channel and rule, whether a message is due, and queue it as a pending delivery.
    public func queue() throws {
        let now = EpochMilliseconds.from(clock())
        let rules = try evaluator.rules.all()
        let hosts = Dictionary(uniqueKeysWithValues: try evaluator.hosts.all().map { ($0.id, $0) })
        let activeSilences = try silences.all().filter { $0.endsAt > now && $0.startsAt <= now }
        let openWindows = try MaintenanceWindowStore(database: database).all().filter { $0.isOpen(at: EpochMilliseconds.date(now)) }
        let groupsInMaintenance = Set(openWindows.map(\.hostGroup))
        let allChannels = try channels.all().filter(\.enabled)
        let states = evaluator.allStates()
        // Inhibition: where "Host down" fires for a host, that host's other alerts are held back.
        let hostDown = rules.first { $0.builtin == "host_down" }
        let downHosts = Set(
            states.filter { $0.rule == hostDown?.id && ($0.state.phase == .firing || $0.state.phase == .recovering) }.map(\.host))
        var groups = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM notification_groups").reduce(into: [String: Group]()) { result, row in
                result["\(row["channel_id"] as Int64):\(row["rule_id"] as Int64)"] = Group(
                    firstChangeAt: row["first_change_at"], lastSentAt: row["last_sent_at"], lastFiring: row["last_firing"])
            }
        }
        var writes: [(channel: NotificationChannel, rule: AlertRule, group: Group, message: NotificationMessage?)] = []
        for rule in rules {
            let ruleStates = states.filter { $0.rule == rule.id }
            let named = rule.route.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            for channel in allChannels {
                var items: [NotificationMessage.Item] = []
                var keys: [String] = []
                for entry in ruleStates where entry.state.phase == .firing || entry.state.phase == .recovering {
                    guard let host = hosts[entry.host], let severity = entry.state.severity else { continue }
                    let routed = named.isEmpty ? channel.routes(labels: rule.labelPairs, severity: severity) : named.contains(channel.name)
                    guard routed else { continue }
                    if activeSilences.contains(where: { $0.matches(rule: rule, host: host.name, severity: severity, at: now) }) { continue }
                    if !groupsInMaintenance.isDisjoint(with: host.groups) { continue }
                    if rule.id != hostDown?.id, downHosts.contains(host.id) { continue }
                    keys.append("\(host.id):\(severity.rawValue)")
                    items.append(
                        NotificationMessage.Item(
                            host: host.name, hostID: host.id, state: entry.state.phase.rawValue, severity: severity.rawValue,
                            value: entry.state.value,
                            since: entry.state.activeSince ?? entry.state.since,
                            summary: AlertText.render(rule.summary, rule: rule, hostName: host.name, state: entry.state),
                            description: AlertText.render(rule.description, rule: rule, hostName: host.name, state: entry.state),
                            labels: PrometheusText.labels(fromCanonical: entry.state.labels)))
                }
                let key = "\(channel.id):\(rule.id)"
                var group = groups[key] ?? Group(firstChangeAt: nil, lastSentAt: nil, lastFiring: "")
                let firingKey = keys.sorted().joined(separator: ",")
                let previous = Set(group.lastFiring.split(separator: ",").map(String.init))
                let current = Set(keys)
                var reason: String?
                if firingKey != group.lastFiring {
                    if group.firstChangeAt == nil { group.firstChangeAt = now }
                    let waited = now - (group.firstChangeAt ?? now) >= Int64(channel.groupWaitSeconds) * 1000
                    let spaced = group.lastSentAt.map { now - $0 >= Int64(channel.groupIntervalSeconds) * 1000 } ?? true
                    if waited && spaced { reason = group.lastFiring.isEmpty ? "new" : current.isEmpty ? "resolved" : "changed" }
                } else if !current.isEmpty, let last = group.lastSentAt, now - last >= Int64(rule.repeatSeconds) * 1000 {
                    reason = "repeat"
                }
                guard let reason else {
                    if groups[key] == nil && group.firstChangeAt != nil || groups[key]?.firstChangeAt != group.firstChangeAt {
                        writes.append((channel, rule, group, nil))
                    }
                    groups[key] = group
                    continue
                }
                let gone = previous.compactMap { entry -> NotificationMessage.Item? in
                    let hostID = Int64(entry.split(separator: ":")[0]) ?? 0
                    guard !current.contains(where: { $0.hasPrefix("\(hostID):") }), let host = hosts[hostID] else { return nil }
                    return NotificationMessage.Item(
                        host: host.name, hostID: hostID, state: "resolved", severity: String(entry.split(separator: ":").last ?? ""), value: nil,
                        since: now, summary: "", description: "")
                }
                group.firstChangeAt = nil
                group.lastFiring = firingKey
                group.lastSentAt = now
                groups[key] = group
                if items.isEmpty && (gone.isEmpty || !channel.sendResolved) {
                    writes.append((channel, rule, group, nil))
                    continue
                }
                let message = NotificationMessage(
                    reason: reason, rule: rule, firing: items, resolved: channel.sendResolved ? gone : [], baseURL: baseURL)
                writes.append((channel, rule, group, message))
            }
        }
        guard !writes.isEmpty else { return }
        try database.write { db in
            for write in writes {
                try db.execute(
                    sql: """
                        INSERT INTO notification_groups (channel_id, rule_id, first_change_at, last_sent_at, last_firing) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (channel_id, rule_id) DO UPDATE SET first_change_at = excluded.first_change_at,
                            last_sent_at = excluded.last_sent_at, last_firing = excluded.last_firing
                        """,
                    arguments: [write.channel.id, write.rule.id, write.group.firstChangeAt, write.group.lastSentAt, write.group.lastFiring])
                guard let message = write.message else { continue }
                let payload = try JSONSerialization.data(withJSONObject: message.json, options: [.sortedKeys, .withoutEscapingSlashes])
                try db.execute(
                    sql: """
                        INSERT INTO notification_deliveries (channel_id, channel_name, rule_id, rule_name, status, reason, attempts, next_attempt_at,
                                                             created_at, subject, payload)
                        VALUES (?, ?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?)
                        """,
                    arguments: [
                        write.channel.id, write.channel.name, write.rule.id, write.rule.name, message.reason, now, now, message.subject,
                        String(decoding: payload, as: UTF8.self),
                    ])
            }
        }
    }

    /// Send every pending delivery that is due; a failure is retried after 10 s, 20 s, 40 s... and marked failed
    /// after `maxAttempts`.
    public func deliver() async throws {
        let now = EpochMilliseconds.from(clock())
        let due = try database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM notification_deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT 100",
                arguments: [now])
        }
        guard !due.isEmpty else { return }
        let allChannels = Dictionary(uniqueKeysWithValues: try channels.all().map { ($0.id, $0) })
        let rules = Dictionary(uniqueKeysWithValues: try evaluator.rules.all().map { ($0.id, $0) })
        for row in due {
            let id: Int64 = row["id"]
            let attempts: Int = row["attempts"] + 1
            var error: String?
            if let channelID = row["channel_id"] as Int64?, let channel = allChannels[channelID], let rule = rules[row["rule_id"] as Int64? ?? 0] {
                let message = Self.message(fromPayload: row["payload"], rule: rule, baseURL: baseURL)
                do {
                    try await sender.send(message, to: channel)
                } catch let failure {
                    error = "\(failure)"
                }
            } else {
                error = "the channel or rule was deleted"
            }
            let finished = error == nil || attempts >= Self.maxAttempts || row["channel_id"] as Int64? == nil
            let next = now + Self.firstRetrySeconds * 1000 * Int64(1 << min(attempts - 1, 10))
            let outcome = error
            try await database.write { db in
                try db.execute(
                    sql: "UPDATE notification_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, sent_at = ?, error = ? WHERE id = ?",
                    arguments: [
                        outcome == nil ? "sent" : finished ? "failed" : "pending", attempts, finished ? nil : next, outcome == nil ? now : nil,
                        outcome,
                        id,
                    ])
            }
            if let error {
                logger.warning("notification delivery failed", metadata: ["delivery": "\(id)", "attempt": "\(attempts)", "error": "\(error)"])
            }
        }
    }

    /// Rebuild the message a delivery recorded, so a retry sends exactly what was queued.
    static func message(fromPayload payload: String, rule: AlertRule, baseURL: String) -> NotificationMessage {
        let object = (try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]) ?? [:]
        let alerts = object["alerts"] as? [[String: Any]] ?? []
        func item(_ entry: [String: Any]) -> NotificationMessage.Item {
            let hostID = (entry["host_id"] as? NSNumber)?.int64Value ?? 0
            let since = (entry["since"] as? String).flatMap(TimeText.milliseconds) ?? 0
            return NotificationMessage.Item(
                host: entry["host"] as? String ?? "", hostID: hostID, state: entry["state"] as? String ?? "",
                severity: entry["severity"] as? String ?? "",
                value: entry["value"] as? Double, since: since, summary: entry["summary"] as? String ?? "",
                description: entry["description"] as? String ?? "")
        }
        return NotificationMessage(
            reason: object["reason"] as? String ?? "", rule: rule, firing: alerts.filter { $0["state"] as? String != "resolved" }.map(item),
            resolved: alerts.filter { $0["state"] as? String == "resolved" }.map(item), baseURL: baseURL)
    }
}
