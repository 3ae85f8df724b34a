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
}
