import Foundation

// The retention API's bodies as typed values (the schemas in APISchemas+Areas.swift describe them).

/// A policy body: the policy's fields, plus `confirm` (the data class's name) for a change that deletes a lot.
struct RetentionPolicyInput: Decodable, Sendable {
    let policy: DataRetention
    let confirm: String?

    enum CodingKeys: String, CodingKey { case confirm }

    init(from decoder: any Decoder) throws {
        policy = try DataRetention(from: decoder)
        confirm = try? decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .confirm)
    }

    /// Read a request body: not an object is a 400; a field of the wrong type is named, with what a policy holds.
    static func decode(from data: Data) throws -> RetentionPolicyInput {
        guard (try? JSONDecoder().decode([String: JSONValue].self, from: data)) != nil else {
            throw Problem.badRequest("the body must be a JSON object of a retention policy: kind, max_age_days, max_bytes, tier_days, rules")
        }
        do {
            return try JSONDecoder().decode(RetentionPolicyInput.self, from: data)
        } catch let error as DecodingError {
            throw Problem.invalid([
                field(of: error): "kind is full, time, size or tiered; ages are numbers of days; rules are {field, pattern, days}"
            ])
        }
    }

    static func field(of error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): key.stringValue
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            context.codingPath.map(\.stringValue).joined(separator: ".").nilIfEmpty ?? "kind"
        @unknown default: "policy"
        }
    }
}

/// A policy as the API shows it: every field present, null where it does not apply.
struct DataRetentionResource: Codable, Sendable {
    let kind: String
    let rules: [RetentionRule]
    let maxAgeDays: Nullable<Double>
    let maxBytes: Nullable<Int64>
    let tierDays: Nullable<[Double]>
    let keepWhileFiring: Bool
    let failedDays: Nullable<Double>
    let keepFailedUntilAcknowledged: Bool

    init(policy: DataRetention) {
        kind = policy.kind.rawValue
        rules = policy.rules
        maxAgeDays = Nullable(policy.maxAgeDays)
        maxBytes = Nullable(policy.maxBytes)
        tierDays = Nullable(policy.tierDays)
        keepWhileFiring = policy.keepWhileFiring
        failedDays = Nullable(policy.failedDays)
        keepFailedUntilAcknowledged = policy.keepFailedUntilAcknowledged
    }
}

/// A data class's policy in force, its default, and a change waiting out the grace window.
struct DataRetentionRecordResource: Codable, Sendable {
    let dataClass, title: String
    let policy: DataRetentionResource
    let summary: String
    let isDefault: Bool
    let `default`: DataRetentionResource
    let pending: Nullable<DataRetentionResource>
    let pendingSummary, pendingAt, pendingBy: Nullable<String>
    let kinds, ruleFields, tierNames: [String]

    init(_ record: DataRetentionRecord) {
        dataClass = record.dataClass.rawValue
        title = record.dataClass.title
        policy = DataRetentionResource(policy: record.policy)
        summary = record.policy.summary(for: record.dataClass)
        isDefault = record.isDefault
        self.default = DataRetentionResource(policy: DataRetention.defaults(record.dataClass))
        pending = Nullable(record.pending.map(DataRetentionResource.init))
        pendingSummary = Nullable(record.pending.map { $0.summary(for: record.dataClass) })
        pendingAt = Nullable(record.pendingAt.flatMap(RFC3339.string))
        pendingBy = Nullable(record.pendingBy)
        kinds = record.dataClass.kinds.map(\.rawValue)
        ruleFields = record.dataClass.ruleFields
        tierNames = record.dataClass.tierNames
    }
}

/// What a policy would delete now.
struct DataRetentionPreviewResource: Codable, Sendable {
    struct Stage: Codable, Sendable {
        let label: String
        let rows: Int
        let bytes: Int64
    }
    let dataClass: String
    let rows: Int
    let bytes: Int64
    let oldest, newest: Nullable<String>
    let classRows: Int
    let share: Double
    let needsConfirmation: Bool
    let stages: [Stage]

    init(_ preview: DataRetentionPreview) {
        dataClass = preview.dataClass.rawValue
        rows = preview.rows
        bytes = preview.bytes
        oldest = Nullable(preview.oldest.flatMap(RFC3339.string))
        newest = Nullable(preview.newest.flatMap(RFC3339.string))
        classRows = preview.classRows
        share = (preview.share * 1000).rounded() / 1000
        needsConfirmation = preview.share > RetentionService.confirmShare
        stages = preview.stages.map { Stage(label: $0.label, rows: $0.rows, bytes: $0.bytes) }
    }
}

/// Storage per data class, growth, and when the disk fills.
struct StorageFiguresResource: Codable, Sendable {
    struct Entry: Codable, Sendable {
        let dataClass, title: String
        let rows: Int
        let bytes: Int64
        let rowsLastWeek: Int
        let bytesPerDay: Double
        let oldest: Nullable<String>
    }
    let classes: [Entry]
    let databaseBytes, freeBytes, filesystemBytes: Int64
    let bytesPerDay: Double
    let readAt: String
    let daysUntilFull: Nullable<Double>

    enum CodingKeys: String, CodingKey {
        case classes, databaseBytes, freeBytes, filesystemBytes, bytesPerDay, readAt, daysUntilFull
    }

    init(_ figures: StorageFigures) {
        classes = figures.entries.map {
            Entry(
                dataClass: $0.dataClass.rawValue, title: $0.dataClass.title, rows: $0.rows, bytes: $0.bytes, rowsLastWeek: $0.rowsLastWeek,
                bytesPerDay: $0.bytesPerDay.rounded(), oldest: Nullable($0.oldest.flatMap(RFC3339.string)))
        }
        databaseBytes = figures.databaseBytes
        freeBytes = figures.freeBytes
        filesystemBytes = figures.filesystemBytes
        bytesPerDay = figures.bytesPerDay.rounded()
        readAt = RFC3339.string(figures.readAt)
        daysUntilFull = Nullable(figures.daysUntilFull.map { ($0 * 10).rounded() / 10 })
    }
}

/// A legal hold in force.
struct LegalHoldResource: Codable, Sendable {
    let id: Int64
    let host, from, to: Nullable<String>
    let reason, createdBy: String
    let createdAt: Nullable<String>

    init(_ hold: RetentionHold) {
        id = hold.id
        host = Nullable(hold.hostName)
        from = Nullable(hold.fromMS.flatMap(RFC3339.string))
        to = Nullable(hold.toMS.flatMap(RFC3339.string))
        reason = hold.reason
        createdBy = hold.createdBy
        createdAt = Nullable(RFC3339.string(milliseconds: hold.createdAt))
    }
}

/// The reply to acknowledging a failed job.
struct JobAcknowledgement: Codable, Sendable {
    let id: Int64
    let acknowledged: Bool
}

/// A new legal hold: a host (or none for every host), a time range (either end open) and the reason.
struct LegalHoldInput: APIInput {
    var host: Patch<String> = .absent
    var from: Patch<String> = .absent
    var to: Patch<String> = .absent
    var reason: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case host, from, to, reason }
}
