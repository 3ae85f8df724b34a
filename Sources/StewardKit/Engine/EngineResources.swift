import Foundation

/// `POST /api/v1/adhoc`: a command as an argv list (never a shell string) and the hosts or groups it goes to.
struct AdhocInput: APIInput {
    var command: Patch<[String]> = .absent
    var targets: Patch<[String]> = .absent
    var reason: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case command, targets, reason }

    /// The command and targets, or a 422 that says what to send instead.
    func checked() throws -> (command: [String], targets: [String]) {
        var errors = APIInputDecoding.wrongFields(self)
        if errors["command"] != nil || command.given == nil {
            errors["command"] = "a list of strings, like [\"systemctl\", \"status\", \"nginx\"]; a single string is not accepted"
        }
        if (targets.given ?? []).isEmpty { errors["targets"] = "one host or group name at least; ad-hoc commands never default to every host" }
        guard errors.isEmpty, let command = command.given, let targets = targets.given else { throw Problem.invalid(errors) }
        return (command, targets)
    }
}

/// One host's outcome of a job, with its tasks in order.
struct HostResultResource: Codable, Sendable {
    struct Task: Codable, Sendable {
        let task, status: String
        /// The task's result as the engine reported it, or null.
        let detail: Nullable<JSONValue>
    }
    let host, status: String
    let ok, changed, failed, unreachable, skipped: Int
    let message: Nullable<String>
    let tasks: [Task]

    init(_ result: HostResult, events: [TaskEvent]) {
        host = result.host
        status = result.status
        ok = result.ok
        changed = result.changed
        failed = result.failed
        unreachable = result.unreachable
        skipped = result.skipped
        message = Nullable(result.message)
        tasks = events.map { Task(task: $0.task, status: $0.status, detail: Nullable($0.detail.map(JSONValue.init(text:)))) }
    }
}

/// `POST /api/v1/playbooks/run`: a playbook under playbooks/, where (default: its own hosts line), and time limits.
struct PlaybookRunInput: APIInput {
    var playbook: Patch<String> = .absent
    var targets: Patch<[String]> = .absent
    var timeoutSeconds: Patch<Int> = .absent
    var taskTimeoutSeconds: Patch<Int> = .absent
    var reason: Patch<String> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case playbook, targets, reason
        case timeoutSeconds = "timeout_seconds"
        case taskTimeoutSeconds = "task_timeout_seconds"
    }

    /// The run, or a 422 naming each wrong field.
    func run() throws -> PlaybookRun {
        var errors = APIInputDecoding.wrongFields(self)
        var run = PlaybookRun(playbook: playbook.given ?? "")
        if playbook.given == nil { errors["playbook"] = "a path such as playbooks/ping.yml" }
        if let list = targets.given {
            if list.allSatisfy({ HostValidation.name($0) == nil || HostValidation.groupName($0) == nil }) {
                run.targets = list
            } else {
                errors["targets"] = "a list of host or group names"
            }
        }
        if let seconds = timeoutSeconds.given {
            if (10...86_400).contains(seconds) { run.timeoutSeconds = seconds } else { errors["timeout_seconds"] = "10 to 86400" }
        }
        if let seconds = taskTimeoutSeconds.given {
            if (0...86_400).contains(seconds) { run.taskTimeoutSeconds = seconds } else { errors["task_timeout_seconds"] = "0 to 86400" }
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return run
    }
}
