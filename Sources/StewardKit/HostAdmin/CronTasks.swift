import Foundation
import HTTPTypes

/// One cron job as a host's crontab files hold it.
struct CronEntry: Codable, Sendable, Equatable {
    /// `crontab` for a user's own crontab, or the file: /etc/crontab, /etc/cron.d/NAME.
    var source: String
    var user: String
    /// Five fields or an @macro (@reboot included).
    var schedule: String
    var command: String
    /// The name Ansible's cron module gave it (its `#Ansible: NAME` line); entries with one can be changed from Steward.
    var name: String?
    /// Commented out under its Ansible name (the module's `disabled`).
    var disabled: Bool
}

/// A host's scheduled tasks reading: every crontab line that is a job, the host's time zone and its users.
struct CronListing: HostReadingBody, Equatable {
    var entries: [CronEntry]
    var timeZone: String
    var users: [String]
    var itemCount: Int { entries.count + users.count }

    static let kind = "cron"
    /// Every line of every crontab, prefixed with its file (user crontabs under /var/spool/cron on Debian and Red Hat
    /// alike); root reads them.
    static let crontabs = ["grep", "-r", "-H", "-s", "", "/var/spool/cron", "/etc/crontab", "/etc/cron.d"]

    /// `grep -r -H` output: `FILE:LINE`. User crontabs take their user from the file name; /etc/crontab and
    /// /etc/cron.d lines carry a user field after the schedule.
    static func parse(_ text: String) -> [CronEntry] {
        var entries: [CronEntry] = []
        var pendingName: [String: String] = [:]
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard let colon = raw.firstIndex(of: ":") else { continue }
            let file = String(raw[..<colon])
            let line = raw[raw.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            let system = file == "/etc/crontab" || file.hasPrefix("/etc/cron.d/")
            if line.hasPrefix("#Ansible: ") {
                pendingName[file] = String(line.dropFirst("#Ansible: ".count))
                continue
            }
            var body = Substring(line)
            var disabled = false
            let name = pendingName.removeValue(forKey: file)
            if body.hasPrefix("#") {
                guard name != nil else { continue }  // a comment, unless it is a disabled Ansible job
                body = body.dropFirst().drop(while: \.isWhitespace)
                disabled = true
            }
            guard !body.isEmpty, !isAssignment(body) else { continue }
            let fieldCount = body.hasPrefix("@") ? 1 : 5
            var words: [Substring] = []
            var rest = body
            while words.count < fieldCount + (system ? 1 : 0), !rest.isEmpty {
                let word = rest.prefix(while: { !$0.isWhitespace })
                words.append(word)
                rest = rest.dropFirst(word.count).drop(while: \.isWhitespace)
            }
            guard words.count == fieldCount + (system ? 1 : 0), !rest.isEmpty else { continue }
            let user = system ? String(words.removeLast()) : String(file.split(separator: "/").last ?? "")
            entries.append(
                CronEntry(
                    source: system ? HostText.clean(file, maxBytes: 300) : "crontab", user: HostText.clean(user, maxBytes: 64),
                    schedule: HostText.clean(words.joined(separator: " "), maxBytes: 200),
                    command: HostText.clean(String(rest), maxBytes: 2000), name: name.map { HostText.clean($0, maxBytes: 200) }, disabled: disabled))
        }
        return entries
    }

    /// `NAME=value` lines set the environment of the jobs after them.
    static func isAssignment(_ line: Substring) -> Bool {
        guard let equals = line.firstIndex(of: "=") else { return false }
        let name = line[..<equals].trimmingCharacters(in: .whitespaces)
        return !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } && !(name.first?.isNumber ?? true)
    }

    /// The next runs of an entry in the host's time zone, by Steward's own cron code (cronie's rules); @reboot and
    /// schedules Steward cannot parse have none.
    static func nextRuns(_ entry: CronEntry, zone: String, after now: Date, count: Int = 5) -> [Date] {
        guard !entry.disabled, let timeZone = TimeZone(identifier: zone), let expression = try? CronExpression(entry.schedule) else { return [] }
        return expression.nextFires(after: now, in: timeZone, count: count)
    }
}

/// Reads a host's crontabs now and keeps the reading.
struct CronReading: Sendable {
    let readings: HostReadings

    @discardableResult
    func refresh(_ host: Host, by who: AuditActor? = nil, now: Date = Date()) async throws -> HostReading<CronListing> {
        try await readings.refresh(host, by: who, now: now) { host in
            let reader = readings.reader
            let sudo = host.transport == .ssh && host.sshUser != "root" ? ["sudo", "-n"] : []
            let files = try await reader.run(host, sudo + CronListing.crontabs)
            let zone = try await reader.run(host, ["readlink", "/etc/localtime"])
            let users = try await reader.run(host, ["getent", "passwd"])
            let zoneName =
                zone.status == 0
                ? zone.stdout.components(separatedBy: "zoneinfo/").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "UTC" : "UTC"
            let listing = CronListing(
                entries: CronListing.parse(files.stdout), timeZone: TimeZone(identifier: zoneName) == nil ? "UTC" : zoneName,
                users: users.stdout.split(separator: "\n").compactMap { $0.split(separator: ":").first.map(String.init) })
            // grep exits 1 when no file has a line, and 2 when one of the places is missing; only no output at all
            // with an error is a failure.
            let failed = files.status > 1 && files.stdout.isEmpty
            return HostReading(
                hostID: host.id, readAt: now, body: listing,
                error: failed ? "the crontabs could not be read: " + HostText.reason(files, command: "grep") : nil)
        }
    }
}

/// A cron entry to create, change, disable or delete with `ansible.builtin.cron`, as queued (the `cron.change` job).
struct CronChange: HostJobChange, Equatable {
    var hostId: Int64
    var host: String
    var name: String
    var user: String
    /// minute hour day month weekday; empty to delete.
    var fields: [String]
    var job: String
    var disabled: Bool
    var delete: Bool

    static let kind = "cron.change"

    /// The job's command appears as its program only: the call is the job's reason, title and log, which viewers
    /// read; the audit row keeps all of it.
    var moduleCall: String {
        if delete { return "ansible.builtin.cron: name=\(name) user=\(user) state=absent" }
        return "ansible.builtin.cron: name=\(name) user=\(user) minute=\(fields[0]) hour=\(fields[1]) day=\(fields[2]) month=\(fields[3]) "
            + "weekday=\(fields[4]) disabled=\(disabled) job=\(HostSecrets.command(job, full: false))"
    }

    var variables: [String: JSONValue] {
        var entry: [String: JSONValue] = ["name": .string(name), "user": .string(user), "state": delete ? "absent" : "present"]
        if !delete {
            for (key, value) in zip(["minute", "hour", "day", "month", "weekday"], fields) { entry[key] = .string(value) }
            entry["job"] = .string(job)
            entry["disabled"] = .bool(disabled)
        }
        return ["steward_cron": .object(entry)]
    }
}

/// Checks a cron change field by field and builds its job.
struct CronChanges: Sendable {
    let store: HostReadingStore

    struct Input: Sendable {
        var name = ""
        var user = ""
        var minute = "", hour = "", day = "", month = "", weekday = ""
        var job = ""
        var disabled = false
        var delete = false
    }

    /// Text that would be a template to Ansible, a line break, or a control character.
    static func unsafe(_ text: String) -> Bool {
        text.contains("{{") || text.contains("{%") || text.contains("{#")
            || text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    func prepare(_ input: Input, on host: Host, by who: AuditActor) throws -> JobRequest {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to change its cron entries") }
        guard let reading = try store.latest(CronListing.self, kind: CronListing.kind, hostID: host.id), !reading.body.users.isEmpty else {
            throw Problem.invalid(["user": "\(host.name)'s scheduled tasks have not been read; read them first, so the user can be checked"])
        }
        var errors: [String: String] = [:]
        let name = input.name.trimmingCharacters(in: .whitespaces)
        if name.isEmpty || name.count > 100 || Self.unsafe(name) {
            errors["name"] = "a name for the entry, 1 to 100 characters, no {{ or {%; it is how the entry is found again"
        }
        if !reading.body.users.contains(input.user) {
            errors["user"] = "\(input.user) is not a user on \(host.name) (as of \(RFC3339.display(reading.readAt)))"
        }
        let existing = reading.body.entries.first { $0.name == name && $0.user == input.user && $0.source == "crontab" }
        if input.delete {
            if existing == nil, errors["name"] == nil { errors["name"] = "\(input.user)'s crontab on \(host.name) has no entry named \(name)" }
        } else {
            let fields = [input.minute, input.hour, input.day, input.month, input.weekday].map { $0.trimmingCharacters(in: .whitespaces) }
            do {
                _ = try CronExpression(fields.joined(separator: " "))
            } catch {
                errors[["minute", "hour", "day-of-month", "month", "day-of-week"].contains(error.field) ? Self.formField(error.field) : "minute"] =
                    error.message
            }
            if fields.contains(where: { $0.isEmpty || $0.contains(where: \.isWhitespace) }) {
                errors["minute"] = errors["minute"] ?? "each of minute, hour, day, month and weekday is one cron field"
            }
            let job = input.job.trimmingCharacters(in: .whitespaces)
            if job.isEmpty || job.utf8.count > 1000 || Self.unsafe(job) {
                errors["job"] = "the command, one line of at most 1000 bytes, without {{, {% or {#"
            }
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let change = CronChange(
            hostId: host.id, host: host.name, name: name, user: input.user,
            fields: input.delete
                ? [] : [input.minute, input.hour, input.day, input.month, input.weekday].map { $0.trimmingCharacters(in: .whitespaces) },
            job: input.job.trimmingCharacters(in: .whitespaces), disabled: input.disabled, delete: input.delete)
        let verb = input.delete ? "Delete" : existing == nil ? "Create" : "Change"
        var request = JobRequest(
            kind: CronChange.kind, title: "\(verb) cron entry \(name) of \(input.user) on \(host.name)",
            params: String(decoding: try JSONEncoder().encode(change), as: UTF8.self), host: host.name, startedBy: who.actor,
            reason: change.moduleCall,
            source: who.source)
        request.audit = JobAudit(
            by: who, action: "cron.\(verb.lowercased())",
            after: ["host": .string(host.name), "module_call": .string(change.moduleCall), "job": .string(change.job)])
        return request
    }

    static func formField(_ cronField: String) -> String {
        switch cronField {
        case "day-of-month": "day"
        case "day-of-week": "weekday"
        default: cronField
        }
    }
}

extension Engine {
    /// The `cron.change` job: Steward's cron playbook on the one host, then its crontabs read again.
    func cronChangeHandler(hosts: HostStore, cron: CronReading) -> JobHandler {
        hostChangeHandler(CronChange.self, hosts: hosts, playbook: BuiltinPlaybooks.cron, timeoutSeconds: 300) { host, change, _ in
            let reading = try await cron.refresh(host)
            let entry = reading.body.entries.first { $0.name == change.name && $0.user == change.user && $0.source == "crontab" }
            return "cron entry \(change.name) of \(change.user) on \(host.name): "
                + (entry.map { "\($0.disabled ? "disabled" : "active"), \($0.schedule) \(HostSecrets.command($0.command, full: false))" } ?? "absent")
                + " as of "
                + RFC3339.display(reading.readAt)
        }
    }
}
