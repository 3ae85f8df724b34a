import Foundation

/// A schedule as the API shows it, with its next five fire times.
struct ScheduleResource: Codable, Sendable {
    let id: Int64
    let name, cron, timeZone: String
    let jitterSeconds: Int
    let catchUp, concurrency, jobKind, jobTitle, owner: String
    let enabled: Bool
    let lastFireAt, nextFireAt, nextDueAt: Nullable<String>
    let lastJobId: Nullable<Int64>
    let lastOutcome: Nullable<String>
    let nextFireTimes: [String]

    init(_ schedule: Schedule) {
        id = schedule.id
        name = schedule.name
        cron = schedule.cron
        timeZone = schedule.timeZone
        jitterSeconds = schedule.jitterSeconds
        catchUp = schedule.catchUp.rawValue
        concurrency = schedule.concurrency.rawValue
        jobKind = schedule.jobKind
        jobTitle = schedule.jobTitle
        owner = schedule.owner
        enabled = schedule.enabled
        lastFireAt = Nullable(RFC3339.string(milliseconds: schedule.lastFireAt))
        nextFireAt = Nullable(RFC3339.string(milliseconds: schedule.nextFireAt))
        nextDueAt = Nullable(RFC3339.string(milliseconds: schedule.nextDueAt))
        lastJobId = Nullable(schedule.lastJobID)
        lastOutcome = Nullable(schedule.lastOutcome)
        nextFireTimes = ScheduleController.nextFires(schedule).map(RFC3339.string)
    }
}

/// `PATCH /api/v1/schedules/{id}`: the timing fields to change; fields left out keep their value.
struct ScheduleInput: APIInput {
    var cron: Patch<String> = .absent
    var timeZone: Patch<String> = .absent
    var jitterSeconds: Patch<Int> = .absent
    var catchUp: Patch<String> = .absent
    var concurrency: Patch<String> = .absent
    var enabled: Patch<Bool> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case cron, concurrency, enabled
        case timeZone = "time_zone"
        case jitterSeconds = "jitter_seconds"
        case catchUp = "catch_up"
    }

    func apply(to settings: inout ScheduleSettings) throws {
        var errors = APIInputDecoding.wrongFields(self)
        cron.assign(CodingKeys.cron.rawValue, &errors) { settings.cron = $0 }
        timeZone.assign(CodingKeys.timeZone.rawValue, &errors) { settings.timeZone = $0 }
        jitterSeconds.assign(CodingKeys.jitterSeconds.rawValue, &errors) { settings.jitterSeconds = $0 }
        enabled.assign(CodingKeys.enabled.rawValue, &errors) { settings.enabled = $0 }
        var choices: [String: String] = [:]
        catchUp.assign(CodingKeys.catchUp.rawValue, &errors) { text in
            if let value = Schedule.CatchUp(rawValue: text) { settings.catchUp = value } else { choices["catch_up"] = "must be none or one" }
        }
        concurrency.assign(CodingKeys.concurrency.rawValue, &errors) { text in
            if let value = Schedule.Concurrency(rawValue: text) {
                settings.concurrency = value
            } else {
                choices["concurrency"] = "must be forbid, replace or allow"
            }
        }
        errors.merge(choices) { first, _ in first }
        errors.merge(ScheduleController.timingErrors(settings) ?? [:]) { first, _ in first }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }
}

/// `POST /api/v1/schedules/preview`: when a cron expression would fire.
struct SchedulePreviewInput: APIInput {
    var cron: Patch<String> = .absent
    var timeZone: Patch<String> = .absent
    var count: Patch<Int> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case cron, count
        case timeZone = "time_zone"
    }
}

/// The next fire times of a previewed expression.
struct SchedulePreviewResource: Codable, Sendable {
    let nextFireTimes: [String]

    enum CodingKeys: String, CodingKey { case nextFireTimes = "next_fire_times" }
}
