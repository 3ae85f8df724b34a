import Foundation

/// How a chart's values are written on its axis, legend and hover text.
public enum MetricUnit: String, Sendable {
    case percent, bytes, bytesPerSecond, perSecond, seconds, plain

    public func format(_ value: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "NaN" : (value > 0 ? "+Inf" : "-Inf") }
        switch self {
        case .percent: return Self.trim(value, digits: abs(value) < 10 ? 1 : 0) + " %"
        case .bytes: return Self.binary(value, suffix: "")
        case .bytesPerSecond: return Self.binary(value, suffix: "/s")
        case .perSecond: return Self.decimal(value) + "/s"
        case .seconds:
            if abs(value) < 1, value != 0 { return Self.trim(value * 1000, digits: 1) + " ms" }
            return Self.trim(value, digits: 2) + " s"
        case .plain: return Self.decimal(value)
        }
    }

    static func trim(_ value: Double, digits: Int) -> String {
        var text = String(format: "%.\(digits)f", value)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text == "-0" ? "0" : text
    }

    static func binary(_ value: Double, suffix: String) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var scaled = value
        var index = 0
        while abs(scaled) >= 1024, index < units.count - 1 {
            scaled /= 1024
            index += 1
        }
        return trim(scaled, digits: abs(scaled) < 10 ? (index == 0 && abs(scaled) >= 1 ? 0 : 1) : 0) + " " + units[index] + suffix
    }

    static func decimal(_ value: Double) -> String {
        let units = ["", "k", "M", "G", "T"]
        var scaled = value
        var index = 0
        while abs(scaled) >= 1000, index < units.count - 1 {
            scaled /= 1000
            index += 1
        }
        return trim(scaled, digits: abs(scaled) < 10 ? 2 : 1) + units[index]
    }
}

/// One line on a chart: `values[i]` belongs to the chart's `times[i]`; nil leaves a gap.
public struct ChartLine: Sendable {
    public var name: String
    public var values: [Double?]

    public init(name: String, values: [Double?]) {
        self.name = name
        self.values = values
    }
}

/// A marker for something that happened: a job, linked to its page.
public struct ChartAnnotation: Sendable {
    public var time: Int64
    public var label: String
    public var href: String
    public var failed: Bool

    public init(time: Int64, label: String, href: String, failed: Bool = false) {
        self.time = time
        self.label = label
        self.href = href
        self.failed = failed
    }
}

/// A horizontal line, such as an alert rule's warning or critical threshold.
public struct ChartThreshold: Sendable {
    public var value: Double
    public var label: String
    public var level: String

    public init(value: Double, label: String, level: String) {
        self.value = value
        self.label = label
        self.level = level
    }
}

/// A line chart rendered as SVG on the server: axes with units, a legend with each line's last value, job markers,
/// thresholds, and the values at every step in `<title>` elements, which browsers show on hover.
public struct SVGChart: Sendable {
    public var title: String
    public var unit: MetricUnit
    public var times: [Int64]
    public var step: Int64
    public var lines: [ChartLine]
    public var annotations: [ChartAnnotation] = []
    public var thresholds: [ChartThreshold] = []
    public var fixedMinimum: Double? = 0
    public var fixedMaximum: Double?
    public var width = 720.0
    public var height = 220.0

    public init(title: String, unit: MetricUnit, times: [Int64], step: Int64, lines: [ChartLine]) {
        self.title = title
        self.unit = unit
        self.times = times
        self.step = step
        self.lines = lines
        if unit == .percent { fixedMaximum = 100 }
    }

    static let left = 64.0
    static let right = 12.0
    static let top = 14.0
    static let bottom = 26.0
    static let legendRow = 18.0
    public static let palette = 8

    /// Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten.
    public static func ticks(low: Double, high: Double, count: Int = 5, binary: Bool = false) -> [Double] {
        guard high > low, high.isFinite, low.isFinite else { return [low] }
        let rough = (high - low) / Double(max(count - 1, 1))
        let base = binary && rough >= 1024 ? pow(1024, floor(log(rough) / log(1024))) : pow(10, floor(log10(rough)))
        let multiples: [Double] = binary && rough >= 1024 ? [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] : [1, 2, 2.5, 5, 10]
        let stepSize = (multiples.map { $0 * base }.first { $0 >= rough }) ?? rough
        var result: [Double] = []
        var value = (low / stepSize).rounded(.down) * stepSize
        // The last tick is the first at or above `high`, so the top line is always labelled.
        while result.count < 20 {
            if value >= low - stepSize * 1e-9 { result.append(value) }
            if value >= high - stepSize * 1e-9 { break }
            value += stepSize
        }
        return result
    }

    static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    static func number(_ value: Double) -> String { String(format: "%.1f", value) }

    static func timeLabel(_ milliseconds: Int64, span: Int64) -> String {
        let text = RFC3339.display(EpochMilliseconds.date(milliseconds))  // "2026-11-21 14:30:32 UTC"
        let parts = text.split(separator: " ")
        guard parts.count >= 2 else { return text }
        if span > 2 * 86_400_000 { return String(parts[0].dropFirst(5)) }  // "11-21"
        return String(parts[1].prefix(5))  // "14:30"
    }

    public func render() -> String {
        let legendColumns = 3
        let legendRows = (lines.count + legendColumns - 1) / legendColumns
        let totalHeight = height + Double(legendRows) * Self.legendRow + 6
        let plotWidth = width - Self.left - Self.right
        let plotHeight = height - Self.top - Self.bottom
        let start = (times.first ?? 0) - step
        let end = times.last ?? 1
        let span = max(end - start, 1)
        let finite = lines.flatMap { $0.values.compactMap { $0 } }.filter(\.isFinite) + thresholds.map(\.value)
        var low = min(fixedMinimum ?? finite.min() ?? 0, finite.min() ?? 0)
        var high = max(fixedMaximum ?? 0, finite.max() ?? 1)
        if high <= low { high = low + 1 }
        let binary = unit == .bytes || unit == .bytesPerSecond
        let ticks = Self.ticks(low: low, high: high, binary: binary)
        low = min(low, ticks.first ?? low)
        high = max(high, ticks.last ?? high)
        func x(_ time: Int64) -> Double { Self.left + Double(time - start) / Double(span) * plotWidth }
        func y(_ value: Double) -> Double { Self.top + (1 - (value - low) / (high - low)) * plotHeight }

        let summary = lines.map { line in "\(line.name): \(line.values.last { $0 != nil }.flatMap { $0 }.map(unit.format) ?? "no data")" }
            .joined(separator: "; ")
        var svg = """
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(totalHeight))" role="img" aria-label="\(Self.escape(title))" \
            xmlns="http://www.w3.org/2000/svg"><title>\(Self.escape(title))</title><desc>\(Self.escape(summary))</desc>
            """
        svg += "<g class=\"axis\">"
        for tick in ticks {
            let position = Self.number(y(tick))
            svg +=
                "<line class=\"grid\" x1=\"\(Self.number(Self.left))\" x2=\"\(Self.number(width - Self.right))\" y1=\"\(position)\" y2=\"\(position)\"/>"
            svg += "<text class=\"tick\" x=\"\(Self.number(Self.left - 6))\" y=\"\(Self.number(y(tick) + 4))\" text-anchor=\"end\">"
            svg += "\(Self.escape(unit.format(tick)))</text>"
        }
        let labelCount = max(2, min(7, Int(plotWidth / 100)))
        for index in 0..<labelCount {
            let time = start + span * Int64(index) / Int64(labelCount - 1)
            let anchor = index == 0 ? "start" : index == labelCount - 1 ? "end" : "middle"
            svg += "<text class=\"tick\" x=\"\(Self.number(x(time)))\" y=\"\(Self.number(height - 8))\" text-anchor=\"\(anchor)\">"
            svg += "\(Self.timeLabel(time, span: span))</text>"
        }
        svg += "<line class=\"frame\" x1=\"\(Self.number(Self.left))\" x2=\"\(Self.number(Self.left))\" y1=\"\(Self.number(Self.top))\" "
        svg += "y2=\"\(Self.number(height - Self.bottom))\"/>"
        svg += "<line class=\"frame\" x1=\"\(Self.number(Self.left))\" x2=\"\(Self.number(width - Self.right))\" "
        svg += "y1=\"\(Self.number(height - Self.bottom))\" y2=\"\(Self.number(height - Self.bottom))\"/></g>"

        for threshold in thresholds {
            let position = Self.number(y(threshold.value))
            svg += "<g class=\"threshold threshold-\(Self.escape(threshold.level))\"><title>\(Self.escape(threshold.label)): "
            svg += "\(Self.escape(unit.format(threshold.value)))</title><line x1=\"\(Self.number(Self.left))\" "
            svg += "x2=\"\(Self.number(width - Self.right))\" y1=\"\(position)\" y2=\"\(position)\"/></g>"
        }

        for (index, line) in lines.enumerated() {
            var path = ""
            var drawing = false
            var lonely: [(Double, Double)] = []
            for (slot, value) in line.values.enumerated() {
                guard slot < times.count, let value, value.isFinite else {
                    drawing = false
                    continue
                }
                let point = "\(Self.number(x(times[slot]))),\(Self.number(y(value)))"
                path += (drawing ? " L" : " M") + point
                let nextMissing = slot + 1 >= line.values.count || line.values[slot + 1] == nil
                if !drawing, nextMissing { lonely.append((x(times[slot]), y(value))) }
                drawing = true
            }
            if !path.isEmpty {
                svg += "<path class=\"line s\(index % Self.palette)\" d=\"\(path.dropFirst())\"/>"
            }
            for (px, py) in lonely {
                svg += "<circle class=\"dot s\(index % Self.palette)\" cx=\"\(Self.number(px))\" cy=\"\(Self.number(py))\" r=\"2\"/>"
            }
        }

        for annotation in annotations where annotation.time >= start && annotation.time <= end {
            let position = Self.number(x(annotation.time))
            svg += "<a class=\"annotation\(annotation.failed ? " annotation-failed" : "")\" href=\"\(Self.escape(annotation.href))\">"
            svg += "<title>\(Self.escape(annotation.label)) at \(RFC3339.display(EpochMilliseconds.date(annotation.time)))</title>"
            svg += "<line x1=\"\(position)\" x2=\"\(position)\" y1=\"\(Self.number(Self.top))\" y2=\"\(Self.number(height - Self.bottom))\"/>"
            svg += "<path d=\"M\(position),\(Self.number(Self.top)) l-5,-8 h10 z\"/></a>"
        }

        // Hover columns: one per step, each titled with the time and every line's value there.
        if !times.isEmpty {
            svg += "<g class=\"hover\">"
            let columnWidth = plotWidth / Double(max(times.count, 1))
            for (slot, time) in times.enumerated() {
                var text = RFC3339.display(EpochMilliseconds.date(time))
                for line in lines {
                    let value = slot < line.values.count ? line.values[slot] : nil
                    text += "\n\(line.name): \(value.map(unit.format) ?? "no data")"
                }
                svg += "<rect x=\"\(Self.number(x(time) - columnWidth))\" y=\"\(Self.number(Self.top))\" width=\"\(Self.number(columnWidth))\" "
                svg += "height=\"\(Self.number(plotHeight))\"><title>\(Self.escape(text))</title></rect>"
            }
            svg += "</g>"
        }

        svg += "<g class=\"legend\">"
        let columnWidth = (width - Self.left) / Double(legendColumns)
        for (index, line) in lines.enumerated() {
            let column = Double(index % legendColumns)
            let row = Double(index / legendColumns)
            let lx = Self.left + column * columnWidth
            let ly = height + row * Self.legendRow + 4
            let last = line.values.last { $0 != nil }.flatMap { $0 }.map(unit.format) ?? "no data"
            svg += "<rect class=\"swatch s\(index % Self.palette)\" x=\"\(Self.number(lx))\" y=\"\(Self.number(ly))\" width=\"10\" height=\"10\"/>"
            svg += "<text x=\"\(Self.number(lx + 14))\" y=\"\(Self.number(ly + 9))\">\(Self.escape(line.name)) "
            svg += "<tspan class=\"muted\">\(Self.escape(last))</tspan></text>"
        }
        svg += "</g></svg>"
        return svg
    }
}

/// A small line for a table cell, with the range and last value in its `<title>`.
public enum Sparkline {
    public static func render(_ values: [Double?], unit: MetricUnit, label: String, width: Double = 96, height: Double = 22) -> String {
        let finite = values.compactMap { $0 }.filter(\.isFinite)
        guard let low = finite.min(), let high = finite.max() else {
            return
                "<svg class=\"spark\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(SVGChart.escape(label)): no data\"></svg>"
        }
        let floor = unit == .percent ? Swift.min(0, low) : low
        let ceiling = unit == .percent ? Swift.max(100, high) : Swift.max(high, floor + 1e-9)
        var path = ""
        var drawing = false
        for (index, value) in values.enumerated() {
            guard let value, value.isFinite else {
                drawing = false
                continue
            }
            let px = values.count > 1 ? Double(index) / Double(values.count - 1) * (width - 2) + 1 : width / 2
            let py = 1 + (1 - (value - floor) / (ceiling - floor)) * (height - 2)
            path += (drawing ? " L" : " M") + "\(SVGChart.number(px)),\(SVGChart.number(py))"
            drawing = true
        }
        let text = "\(label): last \(unit.format(finite.last ?? 0)), lowest \(unit.format(low)), highest \(unit.format(high))"
        return """
            <svg class="spark" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(SVGChart.escape(text))">\
            <title>\(SVGChart.escape(text))</title><path d="\(path.dropFirst())"/></svg>
            """
    }
}
