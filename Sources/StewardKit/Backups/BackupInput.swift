import Foundation

/// Plan and repository fields as a form or a JSON body submits them. Fields that are absent keep the base value, so
/// the same reader serves create, edit and PATCH.
struct BackupInput {
    let string: (String) -> String?
    let list: (String) -> [String]?
    let flag: (String) -> Bool?
    /// Fields of a JSON body whose value has the wrong shape (an object where a number belongs), by name.
    var typeErrors: [String: String] = [:]

    static let listFields: Set<String> = ["paths", "excludes", "pre_hook", "post_hook"]
    static let flagFields: Set<String> = ["prune_after_run", "paused"]
    static let scalarFields: Set<String> = Set(
        ["alert_after_hours", "host", "keep_within", "name", "repository", "verify_read_data_subset"] + RetentionPolicy.fields
            + ["backup", "verify", "prune"].flatMap { ["\($0)_cron", "\($0)_time_zone", "\($0)_jitter_seconds", "\($0)_catch_up"] })

    init(form: FormBody, checkboxes: [String]) {
        string = { form[$0] }
        list = { key in form[key].map { $0.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }
        flag = { key in checkboxes.contains(key) ? form[key] == "on" : nil }
    }

    init(json: [String: JSONValue]) {
        string = { key in
            switch json[key] {
            case .string(let text)?: text
            case .integer(let number)?: String(number)
            // 3 and 3.0 are the same number in JSON; either is a whole number here.
            case .number(let number)?: number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
            case .null?: ""
            default: nil
            }
        }
        list = { key in
            switch json[key] {
            case .array(let items)?: items.map(\.text)
            case .string(let text)?: text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
            default: nil
            }
        }
        // true and false; 1 and 0 too, as clients that send numbers for flags were always understood.
        flag = { key in
            switch json[key] {
            case .bool(let value)?: value
            case .integer(let value)? where value == 0 || value == 1: value == 1
            default: nil
            }
        }
        for (key, shape) in json where Self.listFields.contains(key) || Self.flagFields.contains(key) || Self.scalarFields.contains(key) {
            switch (shape, Self.listFields.contains(key), Self.flagFields.contains(key)) {
            case (.array(let items), true, _):
                if !items.allSatisfy({ if case .string = $0 { true } else { false } }) { typeErrors[key] = "must be a list of strings" }
            case (.string, true, _): break
            case (_, true, _): typeErrors[key] = "must be a list of strings, or one string with an item per line"
            case (.bool, _, true): break
            case (_, _, true): typeErrors[key] = "must be true or false"
            case (.object, _, _), (.array, _, _), (.bool, _, _): typeErrors[key] = "must be a number or a string"
            default: break
            }
        }
    }

    /// The plan and timing after applying these fields, plus errors for fields that are not even the right type.
    func apply(to base: BackupPlan, timing baseTiming: BackupPlanTiming, hosts: HostStore) throws -> (BackupPlan, BackupPlanTiming, [String: String])
    {
        var plan = base
        var timing = baseTiming
        var errors = typeErrors
        if let name = string("name") { plan.name = name.trimmingCharacters(in: .whitespaces) }
        if let host = string("host"), !host.isEmpty {
            if let found = try Int64(host).flatMap({ try hosts.host(id: $0) }) ?? hosts.host(named: host) {
                plan.hostID = found.id
            } else {
                errors["host"] = "no host \(host); give a host's id or name"
            }
        }
        if let text = string("repository"), !text.isEmpty {
            if let id = Int64(text) { plan.repositoryID = id } else { errors["repository"] = "give the repository's id" }
        }
        if let paths = list("paths") { plan.paths = paths }
        if let excludes = list("excludes") { plan.excludes = excludes }
        if let hook = list("pre_hook") { plan.preHook = hook }
        if let hook = list("post_hook") { plan.postHook = hook }
        for (field, keyPath) in [
            ("keep_last", \RetentionPolicy.last), ("keep_hourly", \.hourly), ("keep_daily", \.daily), ("keep_weekly", \.weekly),
            ("keep_monthly", \.monthly), ("keep_yearly", \.yearly),
        ] as [(String, WritableKeyPath<RetentionPolicy, Int?>)] {
            guard let text = string(field)?.trimmingCharacters(in: .whitespaces) else { continue }
            if text.isEmpty {
                plan.retention[keyPath: keyPath] = nil
            } else if let value = Int(text) {
                plan.retention[keyPath: keyPath] = value
            } else {
                errors[field] = "must be a whole number (empty for no rule)"
            }
        }
        if let within = string("keep_within") { plan.retention.within = within.trimmingCharacters(in: .whitespaces) }
        if let prune = flag("prune_after_run") { plan.pruneAfterRun = prune }
        if let paused = flag("paused") { plan.paused = paused }
        if let subset = string("verify_read_data_subset") { plan.verifyReadDataSubset = subset.trimmingCharacters(in: .whitespaces) }
        if let text = string("alert_after_hours") {
            if let hours = Int(text.trimmingCharacters(in: .whitespaces)) {
                plan.alertAfterHours = hours
            } else {
                errors["alert_after_hours"] = "must be a whole number of hours"
            }
        }
        timing.backup = schedule("backup", base: timing.backup, errors: &errors) ?? timing.backup
        if let cron = string("verify_cron") {
            timing.verify =
                cron.trimmingCharacters(in: .whitespaces).isEmpty
                ? nil : schedule("verify", base: timing.verify ?? BackupPlanTiming().verify!, errors: &errors)
        }
        if let cron = string("prune_cron") {
            let base = timing.prune ?? ScheduleSettings(cron: "0 5 * * *", timeZone: timing.backup.timeZone, jitterSeconds: 600, catchUp: .one)
            timing.prune = cron.trimmingCharacters(in: .whitespaces).isEmpty ? nil : schedule("prune", base: base, errors: &errors)
        }
        return (plan, timing, errors)
    }

    func schedule(_ prefix: String, base: ScheduleSettings, errors: inout [String: String]) -> ScheduleSettings? {
        var settings = base
        if let cron = string("\(prefix)_cron") { settings.cron = cron.trimmingCharacters(in: .whitespaces) }
        if let zone = string("\(prefix)_time_zone") {
            settings.timeZone = zone.trimmingCharacters(in: .whitespaces).isEmpty ? "UTC" : zone.trimmingCharacters(in: .whitespaces)
        }
        if let text = string("\(prefix)_jitter_seconds") {
            if let jitter = Int(text.trimmingCharacters(in: .whitespaces)) {
                settings.jitterSeconds = jitter
            } else {
                errors["\(prefix)_jitter_seconds"] = "must be a whole number of seconds"
            }
        }
        if let text = string("\(prefix)_catch_up") {
            if let value = Schedule.CatchUp(rawValue: text) { settings.catchUp = value } else { errors["\(prefix)_catch_up"] = "choose none or one" }
        }
        return settings
    }
}
