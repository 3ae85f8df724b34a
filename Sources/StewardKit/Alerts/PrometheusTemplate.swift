import Foundation

/// The part of Prometheus's alert templates (Go's text/template with Prometheus's functions) that rule packs use in
/// summaries and descriptions: `{{ $labels.name }}`, `{{ $value }}`, `{{ $labels }}`, pipelines into `humanize`,
/// `humanize1024`, `humanizePercentage`, `humanizeDuration`, `printf`, `toUpper`, `toLower` and `title`, and `{{-`
/// / `-}}` trimming. An action outside this part is left as written, and `unsupported` names it for the importer.
public enum PrometheusTemplate {
    public struct Data {
        public var labels: [String: String]
        public var value: Double?

        public init(labels: [String: String], value: Double?) {
            self.labels = labels
            self.value = value
        }
    }

    /// Actions that have `{{ ... }}` with a `$` or a `.`-field in them: Prometheus's, not Steward's `{{host}}` words.
    static func actions(_ text: String) -> [(range: Range<String.Index>, body: String)] {
        var found: [(Range<String.Index>, String)] = []
        var searchFrom = text.startIndex
        while let open = text.range(of: "{{", range: searchFrom..<text.endIndex),
            let close = text.range(of: "}}", range: open.upperBound..<text.endIndex)
        {
            let body = String(text[open.upperBound..<close.lowerBound])
            found.append((open.lowerBound..<close.upperBound, body))
            searchFrom = close.upperBound
        }
        return found
    }

    /// Whether an action is written in Go's template language (Steward's own words are bare: `{{host}}`).
    static func isGoAction(_ body: String) -> Bool {
        let trimmed = body.trimmingCharacters(in: .whitespaces)
        return trimmed.hasPrefix("-") || trimmed.hasSuffix("-") || trimmed.contains("$") || trimmed.hasPrefix(".") || trimmed.contains(" ")
            || trimmed.contains("\"")
    }

    /// The actions of a text that `render` cannot evaluate, as written.
    public static func unsupported(_ text: String) -> [String] {
        actions(text).filter { isGoAction($0.body) && evaluate($0.body, Data(labels: [:], value: 1)) == nil }.map { "{{\($0.body)}}" }
    }

    /// The text with every action it can evaluate replaced; others stay as written.
    public static func render(_ text: String, _ data: Data) -> String {
        var result = ""
        var cursor = text.startIndex
        var trimNext = false
        for (range, body) in actions(text) where isGoAction(body) {
            var before = String(text[cursor..<range.lowerBound])
            if trimNext { before = String(before.drop { $0.isWhitespace }) }
            let trimmedBody = body.trimmingCharacters(in: .whitespaces)
            if trimmedBody.hasPrefix("- ") || trimmedBody == "-" { before = String(before.reversed().drop { $0.isWhitespace }.reversed()) }
            trimNext = trimmedBody.hasSuffix(" -")
            result += before
            if let value = evaluate(body, data) { result += value } else { result += String(text[range]) }
            cursor = range.upperBound
        }
        var rest = String(text[cursor...])
        if trimNext { rest = String(rest.drop { $0.isWhitespace }) }
        return result + rest
    }

    /// A pipeline's output, or nil when it uses something outside the supported part.
    static func evaluate(_ body: String, _ data: Data) -> String? {
        var inner = body.trimmingCharacters(in: .whitespaces)
        if inner.hasPrefix("- ") { inner.removeFirst(2) }
        if inner.hasSuffix(" -") { inner.removeLast(2) }
        var current: Value?
        for command in splitPipeline(inner) {
            var words = tokenize(command)
            guard !words.isEmpty else { return nil }
            let head = words.removeFirst()
            if let operand = operand(head, data), words.isEmpty {
                current = operand
                continue
            }
            var arguments: [Value] = []
            for word in words {
                guard let argument = operand(word, data) else { return nil }
                arguments.append(argument)
            }
            if let piped = current { arguments.append(piped) }
            guard let result = call(head, arguments) else { return nil }
            current = result
        }
        return current?.text
    }

    enum Value {
        case number(Double)
        case text(String)
        case labels([String: String])

        var text: String {
            switch self {
            case .number(let value): goFloat(value)
            case .text(let value): value
            case .labels(let map): "map[" + map.keys.sorted().map { "\($0):\(map[$0]!)" }.joined(separator: " ") + "]"
            }
        }

        var number: Double? {
            switch self {
            case .number(let value): value
            case .text(let value): Double(value)
            case .labels: nil
            }
        }
    }

    static func operand(_ word: String, _ data: Data) -> Value? {
        if word == "$value" || word == ".Value" { return data.value.map(Value.number) ?? .number(.nan) }
        if word == "$labels" || word == ".Labels" { return .labels(data.labels) }
        for prefix in ["$labels.", ".Labels."] where word.hasPrefix(prefix) {
            return .text(data.labels[String(word.dropFirst(prefix.count))] ?? "")
        }
        if word.hasPrefix("\""), word.hasSuffix("\""), word.count >= 2 {
            return .text(String(word.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\n", with: "\n"))
        }
        if let number = Double(word) { return .number(number) }
        return nil
    }

    static func call(_ name: String, _ arguments: [Value]) -> Value? {
        switch name {
        case "humanize": return arguments.count == 1 ? arguments[0].number.map { .text(humanize($0)) } : nil
        case "humanize1024": return arguments.count == 1 ? arguments[0].number.map { .text(humanize1024($0)) } : nil
        case "humanizePercentage": return arguments.count == 1 ? arguments[0].number.map { .text(format("%.4g", $0 * 100) + "%") } : nil
        case "humanizeDuration": return arguments.count == 1 ? arguments[0].number.map { .text(humanizeDuration($0)) } : nil
        case "toUpper": return arguments.count == 1 ? .text(arguments[0].text.uppercased()) : nil
        case "toLower": return arguments.count == 1 ? .text(arguments[0].text.lowercased()) : nil
        case "title": return arguments.count == 1 ? .text(arguments[0].text.capitalized) : nil
        case "printf":
            guard case .text(let pattern)? = arguments.first else { return nil }
            return printf(pattern, Array(arguments.dropFirst())).map(Value.text)
        default: return nil
        }
    }

    /// Go's fmt verbs that templates use: %s, %v, %d, %f, %e, %g with flags, width and precision, and %%.
    static func printf(_ pattern: String, _ arguments: [Value]) -> String? {
        var out = ""
        var index = 0
        var characters = Array(pattern)[...]
        while let character = characters.popFirst() {
            guard character == "%" else {
                out.append(character)
                continue
            }
            var spec = "%"
            while let next = characters.first, "+-# 0123456789.".contains(next) { spec.append(characters.removeFirst()) }
            guard let verb = characters.popFirst() else { return nil }
            if verb == "%" {
                out += "%"
                continue
            }
            guard index < arguments.count else { return nil }
            let argument = arguments[index]
            index += 1
            switch verb {
            case "f", "F", "e", "E", "g", "G":
                guard let number = argument.number else { return nil }
                out += number.isFinite ? format(spec + String(verb), number) : goFloat(number)
            case "d":
                guard let number = argument.number, number.isFinite else { return nil }
                out += format(spec + "lld", Int64(number.rounded(.towardZero)))
            case "s", "v", "q":
                out += verb == "q" ? "\"\(argument.text)\"" : argument.text
            default: return nil
            }
        }
        return out
    }

    static func format(_ spec: String, _ argument: any CVarArg) -> String { String(format: spec, argument) }

    /// Go's %v of a float64: the shortest representation, with an exponent from 1e21 up.
    static func goFloat(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e21 { return String(format: "%.0f", value) }
        // Both write the shortest digits that read back, with an exponent below 1e-4 ("1e-05").
        return "\(value)"
    }

    /// Prometheus's humanize: SI prefixes, four significant digits.
    static func humanize(_ value: Double) -> String {
        guard value != 0, value.isFinite else { return format("%.4g", value) }
        if abs(value) >= 1 {
            var scaled = value
            var prefix = ""
            for next in ["k", "M", "G", "T", "P", "E", "Z", "Y"] where abs(scaled) >= 1000 {
                scaled /= 1000
                prefix = next
            }
            return format("%.4g", scaled) + prefix
        }
        var scaled = value
        var prefix = ""
        for next in ["m", "u", "n", "p", "f", "a", "z", "y"] where abs(scaled) < 1 {
            scaled *= 1000
            prefix = next
        }
        return format("%.4g", scaled) + prefix
    }

    static func humanize1024(_ value: Double) -> String {
        guard abs(value) >= 1, value.isFinite else { return format("%.4g", value) }
        var scaled = value
        var prefix = ""
        for next in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] where abs(scaled) >= 1024 {
            scaled /= 1024
            prefix = next
        }
        return format("%.4g", scaled) + prefix
    }

    /// Prometheus's humanizeDuration: "1d 2h 3m 4s", or ms/us/ns below a second.
    static func humanizeDuration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return format("%.4g", seconds) }
        if seconds == 0 { return "0s" }
        if abs(seconds) < 1 {
            var scaled = seconds
            var unit = "s"
            for next in ["ms", "us", "ns", "ps"] where abs(scaled) < 1 {
                scaled *= 1000
                unit = next
            }
            return format("%.4g", scaled) + unit
        }
        let sign = seconds < 0 ? "-" : ""
        let total = abs(seconds)
        let days = Int(total) / 86400
        let hours = Int(total) / 3600 % 24
        let minutes = Int(total) / 60 % 60
        let rest = total.truncatingRemainder(dividingBy: 60)
        var parts: [String] = []
        if days > 0 { parts.append("\(days)d") }
        if hours > 0 { parts.append("\(hours)h") }
        if minutes > 0 { parts.append("\(minutes)m") }
        if rest != 0 { parts.append(format("%.4g", rest) + "s") }
        return sign + parts.joined(separator: " ")
    }

    /// A pipeline's commands, split at `|` outside quotes.
    static func splitPipeline(_ text: String) -> [String] { split(text, at: "|").map { $0.trimmingCharacters(in: .whitespaces) } }

    /// A command's words: quoted strings kept whole.
    static func tokenize(_ text: String) -> [String] { split(text, at: " ").filter { !$0.isEmpty } }

    /// The text split at a separator outside double quotes (a backslash escapes the next character).
    static func split(_ text: String, at separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in text {
            if escaped {
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if character == separator, !quoted {
                parts.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        parts.append(current)
        return parts
    }
}
