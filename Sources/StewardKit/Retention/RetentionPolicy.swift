import Foundation

/// The kinds of data Steward keeps that grow, each under one retention policy. Each is described by the area that
/// keeps it (`RetentionClassDefinition`); this list only names them, as they are stored.
public enum DataClass: String, CaseIterable, Sendable, Codable {
    case metrics
    case jobLogs = "job_logs"
    case audit
    case alertHistory = "alert_history"
    case notifications = "notification_deliveries"
    case sessions
    case facts = "host_facts"
    case logs
}

/// One selective rule: rows whose `field` matches one of the comma-separated globs (`*`, `?`) are kept `days` instead
/// of the policy's age (for tiered policies, instead of the first tier's).
public struct RetentionRule: Codable, Equatable, Sendable {
    public var field: String
    public var pattern: String
    public var days: Double

    public init(field: String, pattern: String, days: Double) {
        self.field = field
        self.pattern = pattern
        self.days = days
    }

    var globs: [String] { pattern.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
}

/// How long one data class lives. Holds and the event-based protections apply on top of every kind.
public struct DataRetention: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// Keep everything.
        case full
        /// Delete what is older than `maxAgeDays`.
        case time
        /// Delete the oldest until the class is under `maxBytes`.
        case size
        /// Age through `tierDays` (metrics: raw → 1-minute → 1-hour → gone; job logs: full → summary → gone).
        case tiered
    }

    public var kind: Kind
    public var maxAgeDays: Double?
    public var maxBytes: Int64?
    public var tierDays: [Double]?
    public var rules: [RetentionRule]
    /// Event-based: keep what is tied to a firing alert (its history rows; the raw metrics of its hosts).
    public var keepWhileFiring: Bool
    /// Job logs: failed jobs keep their full output this long (from the end of the job, or from its acknowledgement).
    public var failedDays: Double?
    /// Job logs: a failed job's output is never reduced or deleted before someone acknowledges the failure.
    public var keepFailedUntilAcknowledged: Bool

    public init(
        kind: Kind, maxAgeDays: Double? = nil, maxBytes: Int64? = nil, tierDays: [Double]? = nil, rules: [RetentionRule] = [],
        keepWhileFiring: Bool = false, failedDays: Double? = nil, keepFailedUntilAcknowledged: Bool = false
    ) {
        self.kind = kind
        self.maxAgeDays = maxAgeDays
        self.maxBytes = maxBytes
        self.tierDays = tierDays
        self.rules = rules
        self.keepWhileFiring = keepWhileFiring
        self.failedDays = failedDays
        self.keepFailedUntilAcknowledged = keepFailedUntilAcknowledged
    }

    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        kind = try values.decode(Kind.self, forKey: .kind)
        maxAgeDays = try values.decodeIfPresent(Double.self, forKey: .maxAgeDays)
        maxBytes = try values.decodeIfPresent(Int64.self, forKey: .maxBytes)
        tierDays = try values.decodeIfPresent([Double].self, forKey: .tierDays)
        rules = try values.decodeIfPresent([RetentionRule].self, forKey: .rules) ?? []
        keepWhileFiring = try values.decodeIfPresent(Bool.self, forKey: .keepWhileFiring) ?? false
        failedDays = try values.decodeIfPresent(Double.self, forKey: .failedDays)
        keepFailedUntilAcknowledged = try values.decodeIfPresent(Bool.self, forKey: .keepFailedUntilAcknowledged) ?? false
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case maxAgeDays = "max_age_days"
        case maxBytes = "max_bytes"
        case tierDays = "tier_days"
        case rules
        case keepWhileFiring = "keep_while_firing"
        case failedDays = "failed_days"
        case keepFailedUntilAcknowledged = "keep_failed_until_acknowledged"
    }

    /// Audit actions kept longest by default: sign-ins, roles, tokens, sessions, second factors, setup.
    public static let securityActions = "login*,logout,access.*,role.*,token.*,session.*,totp.*,setup*,throttle.*"

    /// Steward's defaults, shown in the UI: metrics raw 7 days, 1-minute 90 days, 1-hour 2 years; job logs 90 days in
    /// full, failed ones 1 year, summaries to 1 year; audit 1 year, security events 3 years; sessions as soon as they
    /// end; alert history 1 year; notification deliveries 90 days; facts history 90 days.
    public static func defaults(_ dataClass: DataClass) -> DataRetention { dataClass.definition.defaults }

    /// Field → what is wrong, for a policy proposed for `dataClass`.
    public func problems(for dataClass: DataClass) -> [String: String] {
        var errors: [String: String] = [:]
        if !dataClass.kinds.contains(kind) {
            errors["kind"] = "\(dataClass.title) can use: " + dataClass.kinds.map(\.rawValue).joined(separator: ", ")
        }
        func days(_ value: Double?, _ field: String, minimum: Double = 0) {
            guard let value else {
                errors[field] = "a number of days is needed"
                return
            }
            if !value.isFinite || value < minimum || value > 36_500 { errors[field] = "between \(Int(minimum)) and 36500 days" }
        }
        switch kind {
        case .full: break
        case .time: days(maxAgeDays, "max_age_days")
        case .size:
            if (maxBytes ?? 0) < 1_048_576 { errors["max_bytes"] = "at least 1048576 bytes (1 MiB)" }
        case .tiered:
            let tiers = tierDays ?? []
            if tiers.count != dataClass.tierNames.count {
                errors["tier_days"] = "\(dataClass.tierNames.count) ages in days: " + dataClass.tierNames.joined(separator: ", ")
            } else if tiers.contains(where: { !$0.isFinite || $0 < 1 || $0 > 36_500 }) {
                errors["tier_days"] = "each tier between 1 and 36500 days"
            } else if zip(tiers, tiers.dropFirst()).contains(where: { $0 > $1 }) {
                errors["tier_days"] = "each tier must last at least as long as the one before (" + dataClass.tierNames.joined(separator: " ≤ ") + ")"
            }
        }
        for (index, rule) in rules.enumerated() {
            if !dataClass.ruleFields.contains(rule.field) {
                errors["rules[\(index)].field"] =
                    dataClass.ruleFields.isEmpty
                    ? "\(dataClass.title) has no selective rules" : "one of " + dataClass.ruleFields.joined(separator: ", ")
            }
            if rule.globs.isEmpty || rule.pattern.count > 500 { errors["rules[\(index)].pattern"] = "one or more globs, comma-separated" }
            if !rule.days.isFinite || rule.days < 0 || rule.days > 36_500 { errors["rules[\(index)].days"] = "between 0 and 36500 days" }
        }
        if let failed = failedDays, !failed.isFinite || failed < 0 || failed > 36_500 { errors["failed_days"] = "between 0 and 36500 days" }
        if dataClass != .jobLogs && (failedDays != nil || keepFailedUntilAcknowledged) {
            errors["failed_days"] = "only job logs have failed-job settings"
        }
        return errors
    }

    /// One line for lists and audit entries.
    public func summary(for dataClass: DataClass) -> String {
        var parts: [String]
        switch kind {
        case .full: parts = ["keep everything"]
        case .time: parts = [dataClass == .sessions && (maxAgeDays ?? 0) == 0 ? "delete as soon as they end" : "\(Self.days(maxAgeDays ?? 0))"]
        case .size: parts = ["at most \(ByteCount.text(maxBytes ?? 0)), oldest first"]
        case .tiered:
            parts = zip(dataClass.tierNames, tierDays ?? []).map { "\($0.0) \(Self.days($0.1))" }
        }
        if let failed = failedDays { parts.append("failed jobs' output \(Self.days(failed))") }
        if keepFailedUntilAcknowledged { parts.append("failed jobs kept until acknowledged") }
        for rule in rules { parts.append("\(rule.field) \(rule.pattern): \(Self.days(rule.days))") }
        if keepWhileFiring { parts.append("kept while an alert fires") }
        return parts.joined(separator: "; ")
    }

    static func days(_ value: Double) -> String {
        if value >= 365, value.truncatingRemainder(dividingBy: 365) == 0 { return "\(Int(value / 365)) year(s)" }
        return value == value.rounded() ? "\(Int(value)) day(s)" : String(format: "%.2f day(s)", value)
    }
}

/// Byte counts as people read them (binary units), the charts' own formatting.
public enum ByteCount {
    public static func text(_ bytes: Int64) -> String { MetricUnit.binary(Double(bytes), suffix: "") }
}
