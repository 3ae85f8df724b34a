import Foundation

/// Matching lines over the range as bars, with the jobs that ran in it as marks that link to them: a burst of errors
/// next to a deploy answers "what changed?".
enum LogHistogram {
    struct Marker {
        let time: Int64
        let label: String
        let link: String
    }

    static func svg(counts: [Int], from: Int64, to: Int64, markers: [Marker], width: Double = 720, height: Double = 90) -> String {
        let left = 40.0
        let bottom = 18.0
        let plotWidth = width - left - 8
        let plotHeight = height - bottom - 6
        let peak = max(1, counts.max() ?? 1)
        let slot = plotWidth / Double(max(1, counts.count))
        let span = max(1, to - from)
        let total = counts.reduce(0, +)
        var svg = """
            <svg class="chart log-histogram" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" \
            aria-label="\(total) matching line(s) over time" xmlns="http://www.w3.org/2000/svg">\
            <title>\(total) matching line(s) over time</title>
            """
        svg += "<text class=\"tick\" x=\"\(SVGChart.number(left - 6))\" y=\"12\" text-anchor=\"end\">\(peak)</text>"
        svg += "<line class=\"frame\" x1=\"\(left)\" x2=\"\(SVGChart.number(width - 8))\" y1=\"\(SVGChart.number(6 + plotHeight))\" "
        svg += "y2=\"\(SVGChart.number(6 + plotHeight))\"/>"
        for (index, count) in counts.enumerated() where count > 0 {
            let barHeight = max(1, plotHeight * Double(count) / Double(peak))
            let start = from + Int64(Double(span) * Double(index) / Double(counts.count))
            svg +=
                "<rect class=\"bar\" x=\"\(SVGChart.number(left + Double(index) * slot + 0.5))\" y=\"\(SVGChart.number(6 + plotHeight - barHeight))\" "
            svg += "width=\"\(SVGChart.number(max(1, slot - 1)))\" height=\"\(SVGChart.number(barHeight))\">"
            svg += "<title>\(count) line(s) from \(SVGChart.escape(RFC3339.display(EpochMilliseconds.date(start))))</title></rect>"
        }
        for marker in markers where marker.time >= from && marker.time <= to {
            let x = SVGChart.number(left + plotWidth * Double(marker.time - from) / Double(span))
            svg += "<a href=\"\(SVGChart.escape(marker.link))\"><line class=\"job-marker\" x1=\"\(x)\" x2=\"\(x)\" y1=\"4\" "
            svg += "y2=\"\(SVGChart.number(6 + plotHeight))\"><title>\(SVGChart.escape(marker.label))</title></line></a>"
        }
        svg +=
            "<text class=\"tick\" x=\"\(left)\" y=\"\(SVGChart.number(height - 4))\">\(SVGChart.escape(RFC3339.display(EpochMilliseconds.date(from))))</text>"
        svg += "<text class=\"tick\" x=\"\(SVGChart.number(width - 8))\" y=\"\(SVGChart.number(height - 4))\" text-anchor=\"end\">"
        svg += "\(SVGChart.escape(RFC3339.display(EpochMilliseconds.date(to))))</text></svg>"
        return svg
    }
}
