import Crypto
import Foundation
import GRDB
import Synchronization
import Testing

@testable import StewardKit

/// Prometheus rule files in and out: the project's own rule file in the shapes the published node-exporter packs use
/// (none of their files is copied here), the round trip of an export, and the templates.
@Suite struct PrometheusRulesTests {
    /// Every construct of the PromQL engine, in the shapes the node-exporter packs use.
    static let packShapes = #"""
          groups:
            - name: host-shapes
              rules:
                - alert: HostOutOfMemory
                  expr: (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 10) * on(instance) group_left (nodename) node_uname_info{nodename=~".+"}
                  for: 2m
                  labels:
                    severity: warning
                  annotations:
                    summary: Host out of memory (instance {{ $labels.instance }})
                    description: "Node memory is filling up (< 10% left)\n  VALUE = {{ $value }}\n  LABELS = {{ $labels }}"
                - alert: HostFilesystemFillingUp
                  expr: |
                    (
                      node_filesystem_avail_bytes{fstype!="", mountpoint!~"/run.*"} / node_filesystem_size_bytes{fstype!=""} * 100 < 40
                    and
                      predict_linear(node_filesystem_avail_bytes{fstype!=""}[6h], 4*3600) < 0
                    and
                      node_filesystem_readonly{fstype!=""} == 0
                    )
                  for: 0m
                  labels:
                    severity: critical
                  annotations:
                    summary: Filesystem is predicted to run out of space within the next 4 hours.
                    description: Filesystem on {{ $labels.device }}, mounted on {{ $labels.mountpoint }}, at {{ $labels.instance }} has only {{ printf "%.2f" $value }}% available space left and is filling up fast.
                - alert: HostHighCpuLoad
                  expr: 1 - avg without (cpu) (rate(node_cpu_seconds_total{mode="idle"}[2m])) > .80
                  for: 1h30m
                  keep_firing_for: 5m
                  labels: {severity: warning}
                  annotations: {summary: "CPU busy {{ $value | humanizePercentage }}"}
                - alert: HostHighCpuLoad
                  expr: 1 - avg without (cpu) (rate(node_cpu_seconds_total{mode="idle"}[2m])) > .95
                  for: 1h30m
                  keep_firing_for: 5m
                  labels: {severity: critical}
                  annotations: {summary: "CPU busy {{ $value | humanizePercentage }}"}
                - alert: HostNetworkReceiveErrors
                  expr: rate(node_network_receive_errs_total[2m]) / rate(node_network_receive_packets_total[2m]) > 0.01
                  for: 500ms
                  labels: {severity: info}
                  annotations: {summary: "{{ $labels.device }} errors"}
                - alert: HostClockNotSynchronising
                  expr: min_over_time(node_timex_sync_status[1m]) == 0 and node_timex_maxerror_seconds >= 16
                  labels: {severity: warning}
                - alert: HostUnusualDiskReadRate
                  expr: sum by (instance) (rate(node_disk_read_bytes_total[2m])) / 1024 / 1024 > 50 unless on (instance) node_load1 < 0.1
                  for: 1y
                  labels: {severity: warning}
                - alert: HostConntrackLimit
                  expr: node_nf_conntrack_entries / node_nf_conntrack_entries_limit > 0.8
                  for: 0s
                  labels: {severity: warning, job: node}
                - alert: HostCpuStealNoisyNeighbor
                  expr: avg by(instance) (rate(node_cpu_seconds_total{mode="steal"}[5m])) * 100 > 10
                  labels: {severity: warning}
                - alert: HostRebooted
                  expr: changes(node_boot_time_seconds[10m]) > 0 or increase(node_vmstat_oom_kill[5m]) != 0
                  labels: {severity: warning}
                - alert: ScrapeTargetGone
                  expr: absent(up{job="node"}) or up{job="node"} == 0 or idelta(node_context_switches_total[2m]) < 0 or delta(node_load1[5m]) > 5 or deriv(node_load1[5m]) > 1 or resets(node_cpu_seconds_total[5m]) > 3 or irate(node_forks_total[1m]) > 1e4
                  labels: {severity: critical}
                - alert: Bounded
                  expr: clamp_min(abs(node_load5 - node_load15), 0) > 4 or clamp_max(node_load1, 100) > 50 or vector(time()) < 0 or vector(scalar(count(up))) > 1e9 or label_replace(node_load1, "h", "$1", "instance", "(.*)") > 99
        """#

    @Test("the project's rule file in the packs' shapes imports, every rule, with thresholds and comparisons exactly")
    func importsThePackShapes() throws {
        let result = PrometheusImport.parse(Self.packShapes)
        #expect(result.failures.isEmpty, "\(result.failures)")
        // Twelve alerts, two of them one rule with both levels.
        #expect(result.rules.count == 11)
        let byName = Dictionary(uniqueKeysWithValues: result.rules.map { ($0.name, $0) })
        let memory = try #require(byName["HostOutOfMemory"])
        #expect(memory.source == "promql" && memory.warnThreshold == nil && memory.severity == .warning && memory.forSeconds == 120)
        #expect(memory.summary == "Host out of memory (instance {{ $labels.instance }})")
        let filling = try #require(byName["HostFilesystemFillingUp"])
        #expect(filling.severity == .critical && filling.forSeconds == 0 && filling.expression.contains("4*3600"))
        let cpu = try #require(byName["HostHighCpuLoad"])
        #expect(cpu.comparison == .gt && cpu.warnThreshold == 0.8 && cpu.critThreshold == 0.95)
        #expect(cpu.expression == #"1 - avg without (cpu) (rate(node_cpu_seconds_total{mode="idle"}[2m]))"#)
        #expect(cpu.forSeconds == 5400 && cpu.keepFiringSeconds == 300)
        let network = try #require(byName["HostNetworkReceiveErrors"])
        // info is a level of its own: a condition at severity info, with no label or warning left over.
        #expect(network.forSeconds == 1 && network.severity == .info && network.labels == "" && network.warnThreshold == nil)
        #expect(network.expression.hasSuffix("> 0.01"))
        #expect(!result.warnings.contains { $0.alert == "HostNetworkReceiveErrors" && $0.message.contains("severity") })
        #expect(byName["HostUnusualDiskReadRate"]?.forSeconds == 365 * 86400)
        let conntrack = try #require(byName["HostConntrackLimit"])
        #expect(conntrack.labels == "job=node" && conntrack.comparison == .gt)
        #expect(byName["HostRebooted"]?.warnThreshold == nil)
        // job matchers are taken out (Steward's series have none), with a warning that says so.
        let gone = try #require(byName["ScrapeTargetGone"])
        #expect(!gone.expression.contains("job") && gone.expression.hasPrefix("absent(up) or up == 0 or "))
        #expect(result.warnings.contains { $0.alert == "ScrapeTargetGone" && $0.message.contains(#"job="node" taken out"#) })
        for rule in result.rules {
            #expect(PromQLRule.problem(rule.expression) == nil, "\(rule.name): \(rule.expression)")
        }
    }

    @Test("refusals name the rule, the field and the construct")
    func refusals() {
        let file = """
            groups:
              - name: bad
                rules:
                  - alert: Unbalanced
                    expr: (node_load1 > 5
                  - alert: BareFor
                    expr: node_load1 > 5
                    for: 300
                  - alert: Subquery
                    expr: max_over_time(rate(node_forks_total[1m])[10m:1m]) > 5
                  - record: instance:load:ratio
                    expr: node_load1
                  - record: steward_host_up
                    expr: up
            """
        let result = PrometheusImport.parse(file)
        #expect(result.rules.isEmpty)
        #expect(result.failures.map(\.alert) == ["Unbalanced", "BareFor", "Subquery", "instance:load:ratio"])
        #expect(result.failures[0].message.hasPrefix("expr: at character"))
        #expect(result.failures[1].message.contains("300 has no unit; write 300s"))
        #expect(result.failures[2].message.contains("subqueries"))
        #expect(result.failures[2].path == "groups[0].rules[2]")
        #expect(result.skipped == ["steward_host_up"])
        #expect(PrometheusImport.parse("just: text").failures.first?.message.contains("not a Prometheus rule file") == true)
    }

    @Test("one name with two different expressions becomes two rules, with a warning")
    func sameNameDifferentExpressions() {
        let file = """
            groups:
              - name: twice
                rules:
                  - alert: DiskFillingUp
                    expr: predict_linear(node_filesystem_avail_bytes[6h], 24*3600) < 0
                    labels: {severity: warning}
                  - alert: DiskFillingUp
                    expr: predict_linear(node_filesystem_avail_bytes[6h], 4*3600) < 0
                    labels: {severity: critical}
            """
        let result = PrometheusImport.parse(file)
        #expect(result.rules.map(\.name) == ["DiskFillingUp", "DiskFillingUp (critical)"])
        #expect(result.warnings.contains { $0.message.contains("imported as DiskFillingUp (critical)") })
    }

    @Test("warnings for selectors that find nothing in Steward: the job label, a metric no host collects, a label the series lack")
    func reachability() {
        let warnings = PrometheusImport.reachability(
            #"up{job="node"} == 0 or node_power_supply_online > 80 or node_filesystem_avail_bytes{volume="x"} < 1 or node_load1{host!~"db.*"} > 2"#,
            labelsOf: { $0 == "node_filesystem_avail_bytes" ? ["device", "fstype", "mountpoint"] : nil },
            collected: { MetricAllowList.standard.allows(PrometheusText.Sample(name: $0, labels: [], value: 0)) })
        #expect(warnings.count == 4, "\(warnings)")
        #expect(warnings.contains { $0.contains("no job label") })
        #expect(warnings.contains { $0.contains("node_power_supply_online is not collected") })
        #expect(warnings.contains { $0.contains("up is not collected") })
        #expect(warnings.contains { $0.contains("has a volume label") })
    }

    @Test("export: recording rules for Steward's series, exact comparisons, and promtool accepts it")
    func exportPassesPromtool() throws {
        var custom = AlertRule()
        custom.name = "Idle CPU low on \"web\" hosts: {odd} names"
        custom.metric = "node_cpu_seconds_total"
        custom.matchers = "mode=idle,cpu=0"
        custom.aggregation = .rate
        custom.comparison = .lt
        custom.warnThreshold = 0.2
        custom.critThreshold = 0.05
        custom.forSeconds = 120
        custom.keepFiringSeconds = 60
        custom.scopeHosts = ["web-01", "web.02"]
        custom.labels = "team=ops,tier=\"front\""
        custom.summary = "{{host}}: idle {{value}} below {{threshold}}\nnext line with a \\ backslash"
        custom.runbookURL = "https://wiki.example.com/cpu"
        let imported = PrometheusImport.parse(Self.packShapes).rules
        let text = PrometheusRules.export(BuiltinAlerts.rules() + [custom] + imported)
        #expect(text.contains("alert: \"IdleCPULowOnWebHostsOddNames\""))
        #expect(text.contains(#"host=~\"web-01|web\\\\.02\""#))
        #expect(text.contains("[2m])) > 0.95\""))
        #expect(text.contains(") < 0.05\""))
        for record in HostSummary.names { #expect(text.contains("record: \(record)\n"), "\(record)") }
        #expect(!text.contains("job_failed"))  // state rules have no Prometheus form
        try Self.promtoolAccepts(text)
        try Self.promtoolAccepts(PrometheusRules.export([]))
    }

    static func promtoolAccepts(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let directory = TemporaryDirectory()
        let file = directory.path + "/steward-rules.yml"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        process.arguments = ["check", "rules", file]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && printed.contains("SUCCESS"), "\(printed)\n\(text)", sourceLocation: sourceLocation)
    }

    @Test("export then import finds every rule again: nothing new, nothing lost")
    func roundTrip() throws {
        let imported = PrometheusImport.parse(Self.packShapes).rules
        var strict = AlertRule()
        strict.name = "Zero is fine"
        strict.metric = "node_procs_blocked"
        strict.aggregation = .last
        strict.comparison = .gt
        strict.critThreshold = 0
        strict.summary = "{{host}}: {{value}} blocked"
        let originals = BuiltinAlerts.rules().filter { $0.source == "metric" } + imported + [strict]
        let again = PrometheusImport.parse(PrometheusRules.export(originals))
        #expect(again.failures.isEmpty, "\(again.failures)")
        #expect(Set(again.skipped) == Set(HostSummary.names))
        let byName = Dictionary(uniqueKeysWithValues: again.rules.map { ($0.name, $0) })
        #expect(again.rules.count == originals.count)
        for original in originals {
            let back = try #require(byName[original.name], "\(original.name)")
            #expect(PrometheusRules.alertEntries(back) == PrometheusRules.alertEntries(original), "\(original.name)")
        }
        // A strict > 0 stays strict: a value of 0 is not critical.
        let zero = try #require(byName["Zero is fine"])
        #expect(zero.comparison == .gt)
        #expect(AlertStateMachine.severity(of: 0, rule: zero, current: nil) == nil)
        #expect(AlertStateMachine.severity(of: 1, rule: zero, current: nil) == .critical)
    }

    @Test("Prometheus's template actions are rendered")
    func templates() {
        let data = PrometheusTemplate.Data(labels: ["instance": "web-01", "mountpoint": "/srv", "device": "sda1"], value: 12.3456)
        let cases: [(String, String)] = [
            ("{{ $labels.instance }} {{$labels.mountpoint}}", "web-01 /srv"),
            (#"{{ printf "%.2f" $value }}%"#, "12.35%"),
            ("{{ $value }}", "12.3456"),
            ("{{ $value | humanize }}", "12.35"),
            ("{{ 1234567 | humanize }}B", "1.235MB"),
            ("{{ 0.0123 | humanize }}", "12.3m"),
            ("{{ 2048 | humanize1024 }}B", "2kiB"),
            ("{{ 0.256 | humanizePercentage }}", "25.6%"),
            ("{{ 93784 | humanizeDuration }}", "1d 2h 3m 4s"),
            ("{{ $labels }}", "map[device:sda1 instance:web-01 mountpoint:/srv]"),
            ("a {{- $labels.device -}} b", "asda1b"),
            ("{{ $labels.device | toUpper }}", "SDA1"),
            (#"{{ printf "%s has %.0f" $labels.device $value }}"#, "sda1 has 12"),
            ("{{host}} stays for Steward", "{{host}} stays for Steward"),
            ("{{ template \"x\" }}", "{{ template \"x\" }}"),
        ]
        for (template, expected) in cases { #expect(PrometheusTemplate.render(template, data) == expected, "\(template)") }
        #expect(PrometheusTemplate.unsupported("{{ $value }} {{ range $x }}") == ["{{ range $x }}"])
        var rule = AlertRule()
        rule.name = "Disk"
        var state = AlertState(since: 0)
        state.value = 91
        state.labels = #"device="sda1",mountpoint="/srv""#
        #expect(
            AlertText.render("{{ $labels.instance }}:{{ $labels.mountpoint }} at {{value}}", rule: rule, hostName: "db-01", state: state)
                == "db-01:/srv at 91")
    }
}

/// PromQL rules evaluated by the alert evaluator over a real metric store.
@Suite struct PromQLRuleEvaluationTests {
    @Test("thresholds on an expression, conditions, strict comparisons, and the deciding series' labels")
    func evaluates() async throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        var made: [StewardKit.Host] = []
        for name in ["web-01", "web-02", "db-01"] {
            var settings = HostSettings()
            settings.name = name
            settings.address = "10.0.0.1"
            made.append(try hosts.create(settings, by: AuditActor(actor: "t"), now: Date()))
        }
        let metrics = try MetricStore(database: database)
        let clock = AlertEvaluatorTests.Clock()
        // Filesystems: web-01 has /srv at 95 % used, web-02 everything at 50 %, db-01 none.
        func ingest() throws {
            for (host, used) in [(made[0], [("/", 0.5), ("/srv", 0.95)]), (made[1], [("/", 0.5), ("/var", 0.5)])] {
                for (mount, fraction) in used {
                    let labels = PrometheusText.canonicalLabels([("mountpoint", mount), ("fstype", "ext4")])
                    let ids = try metrics.resolve(
                        hostID: host.id, series: [("node_filesystem_size_bytes", labels, .gauge), ("node_filesystem_avail_bytes", labels, .gauge)])
                    metrics.append(time: clock.milliseconds, series: ids, values: [1000, 1000 * (1 - fraction)])
                }
            }
        }
        let rules = AlertRuleStore(database: database)
        var threshold = AlertRule()
        threshold.name = "Used"
        threshold.source = PromQLRule.source
        threshold.expression = #"100 * (1 - node_filesystem_avail_bytes{fstype!="tmpfs"} / node_filesystem_size_bytes)"#
        threshold.comparison = .gt
        threshold.warnThreshold = 50
        threshold.critThreshold = 90
        threshold.summary = "{{ $labels.instance }}: {{ $labels.mountpoint }} {{ printf \"%.0f\" $value }}% used"
        let first = try rules.create(threshold, by: AuditActor(actor: "t"), now: Date())
        var condition = AlertRule()
        condition.name = "Nearly full"
        condition.source = PromQLRule.source
        condition.expression =
            "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1 and on (instance, mountpoint) node_filesystem_size_bytes > 0"
        condition.severity = .critical
        condition.summary = "{{ $labels.mountpoint }}"
        let second = try rules.create(condition, by: AuditActor(actor: "t"), now: Date())
        #expect(threshold.problems(knownSources: []).isEmpty && condition.problems(knownSources: []).isEmpty)
        let evaluator = try AlertEvaluator(
            database: database, hosts: hosts, metrics: metrics, sources: [], intervalSeconds: 15, logger: quietLogger,
            clock: { clock.now.withLock { $0 } })
        try ingest()
        try await evaluator.evaluate()
        let web1 = try #require(evaluator.state(rule: first.id, host: made[0].id))
        #expect(web1.phase == .firing && web1.severity == .critical && web1.value == 95)
        #expect(web1.labels.contains(#"mountpoint="/srv""#))
        #expect(AlertText.render(first.summary, rule: first, hostName: "web-01", state: web1) == "web-01: /srv 95% used")
        // 50 is not > 50: the strict comparison holds web-02 normal.
        #expect(evaluator.state(rule: first.id, host: made[1].id)?.phase == .normal)
        #expect(evaluator.state(rule: first.id, host: made[2].id)?.phase == .nodata)
        #expect(evaluator.state(rule: second.id, host: made[0].id)?.phase == .firing)
        #expect(evaluator.state(rule: second.id, host: made[0].id)?.severity == .critical)
        // A condition that returns nothing for a host is normal, not nodata.
        #expect(evaluator.state(rule: second.id, host: made[1].id)?.phase == .normal)
        #expect(evaluator.state(rule: second.id, host: made[2].id)?.phase == .normal)
        // The deciding labels survive a restart.
        let restarted = try AlertEvaluator(
            database: database, hosts: hosts, metrics: metrics, sources: [], intervalSeconds: 15, logger: quietLogger,
            clock: { clock.now.withLock { $0 } })
        #expect(restarted.state(rule: first.id, host: made[0].id)?.labels == web1.labels)
    }

    @Test("a PromQL rule's expression is checked: syntax with its position, type, and regexes that backtrack")
    func validation() {
        var rule = AlertRule()
        rule.name = "x"
        rule.source = PromQLRule.source
        rule.summary = "s"
        for (expression, expected) in [
            ("", "write a PromQL expression"), ("node_load1 >", "at character"), ("node_load1[5m]", "instant vector"),
            ("scalar(node_load1)", "instant vector"), (#"node_load1{instance=~"(a+)+"}"#, "the regex of instance"),
            (String(repeating: "(", count: 300) + "node_load1" + String(repeating: ")", count: 300), "nests more than 128 levels"),
            (Array(repeating: "node_load1", count: 300).joined(separator: " ^ "), "nests more than 128 levels"),
        ] {
            rule.expression = expression
            #expect(rule.problems(knownSources: [])["expression"]?.contains(expected) == true, "\(expression)")
        }
        rule.expression = "node_load1 > 4"
        #expect(rule.problems(knownSources: []).isEmpty)
        rule.comparison = .eq
        rule.warnThreshold = 1
        rule.warnClear = 2
        #expect(rule.problems(knownSources: [])["warn_clear"]?.contains("no clear level") == true)
    }
}

/// info, the third severity: stored in rules, states and channels (a real SQLite file with the migrations), routed only
/// to channels that ask for it, and exported and imported back as info.
@Suite struct InfoSeverityTests {
    @Test("an info rule is stored, fires at info, reaches only info channels, and round-trips through a rule file")
    func infoEndToEnd() throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let imported = PrometheusImport.parse(
            """
            groups:
              - name: g
                rules:
                  - alert: Reboots
                    expr: changes(node_boot_time_seconds[1h]) > 0
                    labels: {severity: info}
            """)
        #expect(imported.failures.isEmpty && imported.warnings.isEmpty, "\(imported.failures) \(imported.warnings)")
        let rule = try AlertRuleStore(database: database).create(try #require(imported.rules.first), by: AuditActor(actor: "t"), now: Date())
        #expect(rule.severity == .info && rule.warnThreshold == nil)
        #expect(try AlertRuleStore(database: database).rule(id: rule.id)?.severity == .info)
        #expect(AlertStateMachine.severity(of: 1, rule: rule, current: nil) == .info)
        // The state table takes it (its CHECK was widened in place).
        try database.write { db in
            try db.execute(sql: "INSERT INTO hosts (name, address, transport, created_at, updated_at) VALUES ('h', 'h', 'ssh', 0, 0)")
            try db.execute(
                sql: "INSERT INTO alert_states (rule_id, host_id, state, severity, since, evaluated_at) VALUES (?, ?, 'firing', 'info', 0, 0)",
                arguments: [rule.id, db.lastInsertedRowID])
        }
        #expect(throws: (any Error).self) {
            try database.write { db in try db.execute(sql: "UPDATE alert_states SET severity = 'minor'") }
        }
        // Channels: the default (warning and up) does not get it; one that asks for info does.
        let channels = NotificationChannelStore(database: database, masterKey: .init(size: .bits256))
        var quiet = NotificationChannel()
        quiet.name = "pager"
        quiet.url = "https://hooks.example.com/p"
        var chatty = quiet
        chatty.name = "chat"
        chatty.minSeverity = .info
        for channel in [quiet, chatty] { _ = try channels.save(channel, by: AuditActor(actor: "t"), now: Date()) }
        let stored = Dictionary(uniqueKeysWithValues: try channels.all().map { ($0.name, $0) })
        #expect(stored["chat"]?.minSeverity == .info)
        #expect(stored["pager"]?.routes(labels: [], severity: .info) == false)
        #expect(stored["chat"]?.routes(labels: [], severity: .info) == true)
        #expect(stored["pager"]?.routes(labels: [], severity: .warning) == true)
        #expect(stored["chat"]?.routes(labels: [], severity: .critical) == true)
        // Export writes severity: info; importing that file gives the same rule again.
        let exported = PrometheusRules.export([rule])
        #expect(exported.contains("severity: \"info\"") || exported.contains("severity: info"), "\(exported)")
        let again = PrometheusImport.parse(exported)
        #expect(again.rules.first?.severity == .info && again.rules.first?.expression == rule.expression)
    }
}
