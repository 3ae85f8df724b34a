import Foundation
import Testing

@testable import StewardKit

@Suite struct SVGChartTests {
    let times: [Int64] = (1...12).map { 1_790_000_000_000 + Int64($0) * 300_000 }

    @Test func chartHasAxesUnitsLegendHoverValuesAndMarkers() throws {
        var chart = SVGChart(
            title: "Network <eth0>", unit: .bytesPerSecond, times: times, step: 300_000,
            lines: [
                ChartLine(name: "eth0 in", values: times.indices.map { $0 == 5 ? nil : Double($0) * 1024 * 1024 }),
                ChartLine(name: "eth0 \"out\"", values: times.indices.map { _ in 2048 }),
            ])
        chart.annotations = [ChartAnnotation(time: times[3], label: "Job #7 Patch <web>", href: "/jobs/7", failed: true)]
        chart.thresholds = [ChartThreshold(value: 8 * 1024 * 1024, label: "warning", level: "warning")]
        let svg = chart.render()
        #expect(svg.hasPrefix("<svg class=\"chart\""))
        #expect(svg.contains("<title>Network &lt;eth0&gt;</title>"))
        // The y axis is labelled in the unit, at round binary steps.
        #expect(svg.contains(">0 B/s</text>"))
        #expect(svg.contains("MiB/s</text>"))
        // The x axis shows clock times for a range under two days.
        #expect(svg.contains(">\(SVGChart.timeLabel(times[0] - 300_000, span: 1))</text>"))
        // One hover column per step, each titled with every line's value there; the gap says so.
        let hover = svg.components(separatedBy: "<g class=\"hover\">")[1].components(separatedBy: "</g>")[0]
        #expect(hover.components(separatedBy: "<rect ").count - 1 == times.count)
        #expect(hover.contains("eth0 in: no data"))
        #expect(hover.contains("eth0 &quot;out&quot;: 2 KiB/s"))
        // The gap breaks the line into two paths' worth of moves.
        let path = try #require(svg.components(separatedBy: "class=\"line s0\" d=\"").dropFirst().first?.components(separatedBy: "\"").first)
        #expect(path.components(separatedBy: "M").count - 1 == 2)
        // The job marker links to the job and says what it was.
        #expect(svg.contains("<a class=\"annotation annotation-failed\" href=\"/jobs/7\"><title>Job #7 Patch &lt;web&gt; at "))
        #expect(svg.contains("class=\"threshold threshold-warning\""))
        // The legend names each line with its last value.
        #expect(svg.contains("eth0 in <tspan class=\"muted\">11 MiB/s</tspan>"))
        #expect(!svg.contains("<script"))
    }

    @Test func ticksAreRoundAndCoverTheRange() {
        #expect(SVGChart.ticks(low: 0, high: 100) == [0, 25, 50, 75, 100])
        #expect(SVGChart.ticks(low: 0, high: 7) == [0, 2, 4, 6, 8])
        let binary = SVGChart.ticks(low: 0, high: 5 * 1_048_576, binary: true)
        #expect(binary.allSatisfy { $0.truncatingRemainder(dividingBy: 1_048_576) == 0 })
        #expect(MetricUnit.percent.format(12.34) == "12 %")
        #expect(MetricUnit.percent.format(3.21) == "3.2 %")
        #expect(MetricUnit.bytes.format(1536) == "1.5 KiB")
        #expect(MetricUnit.bytesPerSecond.format(0.5) == "0.5 B/s")
        #expect(MetricUnit.plain.format(1234) == "1.23k")
        #expect(MetricUnit.seconds.format(0.25) == "250 ms")
    }

    @Test func sparklineDescribesItself() {
        let svg = Sparkline.render([1, 2, nil, 40], unit: .percent, label: "web-01 CPU")
        #expect(svg.contains("<title>web-01 CPU: last 40 %, lowest 1 %, highest 40 %</title>"))
        #expect(Sparkline.render([], unit: .percent, label: "x").contains("no data"))
    }
}
