import Foundation
import Testing

@testable import StewardKit

@Suite struct PrometheusRulesTests {
    @Test func exportPassesPromtoolCheckRules() throws {
        var custom = AlertRule()
        custom.name = "Idle CPU low on \"web\" hosts: {odd} names"
        custom.metric = "node_cpu_seconds_total"
        custom.matchers = "mode=idle,cpu=0"
        custom.aggregation = .rate
        custom.comparison = .below
        custom.warnThreshold = 0.2
        custom.critThreshold = 0.05
        custom.forSeconds = 120
        custom.keepFiringSeconds = 60
        custom.scopeHosts = ["web-01", "web.02"]
        custom.labels = "team=ops,tier=\"front\""
        custom.summary = "{{host}}: idle {{value}} below {{threshold}}\nnext line with a \\ backslash"
        custom.runbookURL = "https://wiki.example.com/cpu"
        let text = PrometheusRules.export(BuiltinAlerts.rules() + [custom])
        #expect(text.contains("alert: \"IdleCPULowOnWebHostsOddNames\""))
        #expect(text.contains(#"host=~\"web-01|web\\\\.02\""#))
        #expect(text.contains("predict_linear(steward_host_filesystem_max_percent[21600s], 86400) >= 100"))
        #expect(!text.contains("job_failed"))  // state rules have no Prometheus form
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
        #expect(process.terminationStatus == 0, "\(printed)\n\(text)")
        #expect(printed.contains("SUCCESS"))
        #expect(PrometheusRules.export([]).contains("rules: []"))
    }

    @Test func importReadsTheSupportedSubsetAndExplainsTheRest() {
        var original = AlertRule()
        original.name = "RootDiskFree"
        original.metric = "node_filesystem_avail_bytes"
        original.matchers = "mountpoint=/"
        original.aggregation = .min
        original.windowSeconds = 600
        original.comparison = .below
        original.warnThreshold = 2e9
        original.critThreshold = 5e8
        original.forSeconds = 300
        original.scopeHosts = ["web-01", "web.02"]
        original.labels = "team=ops"
        original.summary = "{{host}}: {{value}} bytes free"
        original.runbookURL = "https://wiki.example.com/disk"
        let exported = PrometheusRules.export([original])
        let (rules, failures) = PrometheusImport.parse(exported)
        #expect(failures.isEmpty, "\(failures)")
        let imported = try? #require(rules.first)
        #expect(rules.count == 1)
        #expect(imported?.name == "RootDiskFree" && imported?.metric == original.metric && imported?.matchers == "mountpoint=/")
        #expect(imported?.aggregation == .min && imported?.windowSeconds == 600 && imported?.comparison == .below)
        #expect(imported?.warnThreshold == 2e9 && imported?.critThreshold == 5e8 && imported?.forSeconds == 300)
        #expect(
            imported?.scopeHosts == ["web-01", "web.02"] && imported?.labels == "team=ops" && imported?.summary == "{{host}}: {{value}} bytes free")
        #expect(imported?.runbookURL == "https://wiki.example.com/disk")

        let mixed = """
            groups:
              - name: mixed
                rules:
                  - record: job:up:sum
                    expr: sum(up)
                  - alert: HighLoad
                    expr: node_load1 > 4
                    labels: {severity: critical}
                  - alert: Ratio
                    expr: sum by (instance) (rate(errors_total[5m])) / sum by (instance) (rate(requests_total[5m])) > 0.05
                  - alert: NotEth0
                    expr: rate(node_network_receive_bytes_total{device!="eth0"}[5m]) > 1e6
                  - alert: Predict
                    expr: predict_linear(steward_host_filesystem_max_percent[6h], 86400) >= 100
                    for: 30m
            """
        let result = PrometheusImport.parse(mixed)
        #expect(result.rules.map(\.name) == ["HighLoad", "Predict"])
        #expect(result.rules.first?.critThreshold == 4 && result.rules.first?.aggregation == .last)
        #expect(
            result.rules.last?.aggregation == .predictLinear && result.rules.last?.horizonSeconds == 86400 && result.rules.last?.forSeconds == 1800)
        #expect(result.failures.map(\.alert) == ["job:up:sum", "Ratio", "NotEth0"])
        #expect(result.failures[1].message.contains("unsupported expression") && result.failures[1].path == "groups[0].rules[2]")
        #expect(result.failures[2].message.contains("negative matchers"))
        #expect(PrometheusImport.parse("just: text").failures.first?.message.contains("not a Prometheus rule file") == true)
    }
}
