import Foundation

/// The filter of a `log_lines` alert rule: the logs page's own filters, written as its address writes them
/// (`identifier=sshd&q=invalid user&priority=6`; `%` escapes as in an address, `%26` for a `&` in a value, while `+`
/// stays a plus, as a regex needs it). The rule's scope says which hosts and
/// its window how far back, so host, group and time are not part of it.
enum LogRuleQuery {
    static let source = "log_lines"
    static let allowed = ["q", "regex", "unit", "identifier", "priority"]

    /// The filter's fields, or what is wrong with it.
    static func fields(_ text: String) -> Result<[String: String], Problem> {
        var fields: [String: String] = [:]
        for item in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                String($0).removingPercentEncoding
            }
            guard parts.count == 2, let key = parts[0], let value = parts[1] else {
                return .failure(Problem.invalid(["log_query": "write name=value pairs joined by &, as the logs page's address does"]))
            }
            guard allowed.contains(key) else {
                return .failure(
                    Problem.invalid([
                        "log_query":
                            "\(key) is not a filter here: use \(allowed.joined(separator: ", ")) (the rule's scope and window choose the hosts and the time)"
                    ]))
            }
            guard fields[key] == nil else { return .failure(Problem.invalid(["log_query": "\(key) is given twice"])) }
            fields[key] = value
        }
        return .success(fields)
    }

    static func query(_ text: String, from: Int64, to: Int64) -> LogQuery? {
        guard case .success(let fields) = fields(text) else { return nil }
        let filter = LogFilter(query: fields, now: Date())
        guard filter.errors.isEmpty else { return nil }
        var query = filter.query
        query.from = from
        query.to = to
        query.before = nil
        return query
    }

    static func problem(_ text: String) -> String? {
        switch fields(text) {
        case .failure(let problem): return problem.errors?["log_query"] ?? problem.detail
        case .success(let fields):
            let errors = LogFilter(query: fields, now: Date()).errors
            return errors.isEmpty ? nil : errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
        }
    }

    /// A rule's filter from the logs page's filters (those a rule keeps), with `%` and `&` in values escaped.
    static func text(_ filter: LogFilter) -> String {
        let pairs = [
            ("priority", String(filter.maxPriority)), ("unit", filter.unit), ("identifier", filter.identifier), ("q", filter.text),
            ("regex", filter.regexText),
        ]
        return pairs.filter { !$0.1.isEmpty }.map {
            "\($0.0)=" + $0.1.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "&", with: "%26")
        }.joined(separator: "&")
    }

    /// The logs page showing a rule's lines on one host, around a moment.
    static func link(_ rule: AlertRule, host: String, at: Int64) -> String {
        var items = (try? fields(rule.logQuery).get())?.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) } ?? []
        items += [
            URLQueryItem(name: "host", value: host), URLQueryItem(name: "range", value: "custom"),
            URLQueryItem(name: "from", value: RFC3339.string(EpochMilliseconds.date(at - Int64(rule.windowSeconds) * 1000 - 60_000))),
            URLQueryItem(name: "to", value: RFC3339.string(EpochMilliseconds.date(at + 60_000))),
        ]
        return FormQuery.link("/logs", items)
    }
}

/// Alerts from logs: the `log_lines` source counts each host's matching lines in the rule's window (one pass over the
/// window's blocks per rule and cycle, for every host at once), and the built-in pack that uses it.
enum LogAlerts {
    final class Memo: @unchecked Sendable {
        let lock = NSLock()
        var at: Int64 = -1
        var counts: [String: [Int64: Int]] = [:]
        var reading: Set<Int64> = []
    }

    /// The pack's filters by key: a built-in rule reads the panel host's lines only while its filter is still this.
    static let packQueries = Dictionary(uniqueKeysWithValues: rules().compactMap { rule in rule.builtin.map { ($0, rule.logQuery) } })

    static func source(store: LogStore) -> AlertSource {
        let memo = Memo()
        return AlertSource(
            name: LogRuleQuery.source,
            description: "how many of the host's log lines match the rule's log filter within its window (no data: no log read from the host yet)"
        ) { host, rule, now in
            // The panel host's logs are an admin's: a rule someone wrote (or a built-in rule whose filter someone
            // changed) could probe them through its value, a regex narrowed a character at a time, or through how long
            // counting takes. Only the pack's own filters count its lines; every other rule leaves it out of the search.
            let trusted = rule.builtin.flatMap { packQueries[$0] } == rule.logQuery
            let key = "\(trusted)|\(rule.logQuery)|\(rule.windowSeconds)"
            let cached = memo.lock.withLock { () -> (counts: [Int64: Int]?, reading: Set<Int64>?) in
                if memo.at != now {
                    memo.at = now
                    memo.counts = [:]
                    memo.reading = []
                    return (nil, nil)
                }
                return (memo.counts[key], memo.reading.isEmpty ? nil : memo.reading)
            }
            let reading = try cached.reading ?? Set(store.sources().filter { $0.readAt != nil }.map(\.hostID))
            guard var query = LogRuleQuery.query(rule.logQuery, from: now - Int64(rule.windowSeconds) * 1000, to: now) else {
                return .failure("the log filter cannot be read: \(LogRuleQuery.problem(rule.logQuery) ?? "")")
            }
            // The panel host's logs are an admin's: a rule someone wrote could probe them through its value (a regex
            // narrowed a character at a time), so only the built-in rules, whose filters Steward wrote, count them.
            if host.transport == .local, !trusted { return .noData }
            if !trusted, cached.counts == nil {
                let panel = try store.panelHostIDs()
                query.hostIDs = try store.hostIDs().filter { !panel.contains($0) }
            }
            guard let counts = try cached.counts ?? store.counts(query) else {
                return .failure("counting took longer than \(Int(LogStore.searchSeconds)) s; narrow the rule's filter or its window")
            }
            memo.lock.withLock {
                if memo.at == now {
                    memo.counts[key] = counts
                    memo.reading = reading
                }
            }
            guard reading.contains(host.id) else { return .noData }
            return .value(Double(counts[host.id] ?? 0))
        }
    }

    /// The pack: each counts lines in a window and warns before it pages; hosts whose logs are not read stay quiet.
    static func rules() -> [AlertRule] {
        func rule(_ key: String, _ name: String, query: String, window: Int, warn: Double?, crit: Double?, configure: (inout AlertRule) -> Void)
            -> AlertRule
        {
            var rule = AlertRule()
            rule.builtin = key
            rule.name = name
            rule.source = LogRuleQuery.source
            rule.logQuery = query
            rule.aggregation = .last
            rule.windowSeconds = window
            rule.warnThreshold = warn
            rule.critThreshold = crit
            rule.noData = .ok
            configure(&rule)
            return rule
        }
        return [
            rule(
                "log_ssh_auth_failures", "SSH authentication failures",
                query:
                    "priority=6&regex=Failed (password|publickey|keyboard-interactive/pam|none) for |Invalid user |pam_unix%5C(sshd:auth%5C): authentication failure",
                window: 600, warn: 20, crit: 200
            ) {
                $0.summary = "{{host}}: {{value}} failed SSH logins in 10 minutes"
                $0.description = """
                    sshd on {{host}} refused {{value}} logins in the last 10 minutes ({{threshold}} is the threshold). A few are \
                    someone mistyping; hundreds are a password-guessing run. Open the logs link to see the source addresses and \
                    user names. If the host is reachable from the internet: allow keys only (PasswordAuthentication no in \
                    /etc/ssh/sshd_config), limit who may connect (AllowUsers, a firewall rule) or ban repeat offenders (fail2ban). \
                    If the addresses are your own: a script or a monitor is using a stale password or key.
                    """
            },
            rule(
                "log_oom_kill", "Processes killed for want of memory",
                query: "priority=6&regex=Out of memory: Killed process|oom-kill:|killed by the OOM killer", window: 900, warn: 1, crit: 5
            ) {
                $0.summary = "{{host}}: {{value}} OOM kills in 15 minutes"
                $0.description = """
                    The kernel on {{host}} ran out of memory and killed processes {{value}} times in the last 15 minutes. The \
                    logs link names each process and its size. Find what grew (the host's memory chart, ps aux --sort=-rss), then \
                    give the service a memory limit (MemoryMax= in its unit) so it alone is stopped, fix its leak, or add memory \
                    or swap. Killed services may not have come back: check their units.
                    """
            },
            rule(
                "log_kernel_io_errors", "Disk I/O errors in the kernel log",
                query:
                    "identifier=kernel&priority=6&regex=I/O error|Buffer I/O error|blk_update_request: .*error|critical medium error|EXT4-fs error|XFS .*(metadata I/O error|Corruption)|end_request: I/O error",
                window: 900, warn: 1, crit: 20
            ) {
                $0.summary = "{{host}}: {{value}} disk I/O errors in 15 minutes"
                $0.description = """
                    The kernel on {{host}} reported {{value}} I/O errors in the last 15 minutes: a disk, its cable or its \
                    controller is failing, or a filesystem is damaged. The logs link names the device. Check the disk's health \
                    (smartctl -a /dev/DEVICE), make sure the host's latest backup is good (Backups), and plan to replace the disk \
                    before it fails; a filesystem error needs fsck at the next maintenance window.
                    """
            },
            rule(
                "log_failed_units", "Services failing (systemd)",
                query: "identifier=systemd&priority=6&regex=: Failed with result '|Failed to start ", window: 600, warn: 1, crit: 10
            ) {
                $0.summary = "{{host}}: {{value}} unit failures in 10 minutes"
                $0.description = """
                    systemd on {{host}} reported {{value}} failed starts or units ending in failure in the last 10 minutes. The \
                    logs link names the units; the host's Services tab shows their state and last lines. Look at the unit's own \
                    log (journalctl -u UNIT -b), fix the cause, and restart it. A unit that keeps failing is also restarting in a \
                    loop: its failures keep this alert firing.
                    """
            },
        ]
    }
}
