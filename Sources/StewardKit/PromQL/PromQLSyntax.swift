import Foundation

/// PromQL as Prometheus 2.42 reads it, for alert rules and charts over Steward's own store: the syntax tree, the
/// lexer and the parser. What Steward does not evaluate (subqueries, the `@` modifier, histogram functions, ...) is
/// refused by name and position, never misread.
public enum PromQL {
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        /// The position in the expression, counted in characters from 0.
        public var position: Int
        public var message: String
        public var description: String { "at character \(position + 1): \(message)" }
    }

    public enum MatchOp: String, Sendable {
        case equal = "="
        case notEqual = "!="
        case regex = "=~"
        case notRegex = "!~"
    }

    public struct Matcher: Sendable, CustomStringConvertible {
        public var name: String
        public var op: MatchOp
        public var value: String
        /// The regex, anchored at both ends as Prometheus anchors it.
        let pattern: NSRegularExpression?

        public init(name: String, op: MatchOp, value: String) throws {
            self.name = name
            self.op = op
            self.value = value
            if op == .regex || op == .notRegex {
                pattern = try NSRegularExpression(pattern: PromQL.anchored(value))
            } else {
                pattern = nil
            }
        }

        public func matches(_ text: String) -> Bool {
            switch op {
            case .equal: text == value
            case .notEqual: text != value
            case .regex, .notRegex:
                (pattern!.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil) == (op == .regex)
            }
        }

        public var description: String { "\(name)\(op.rawValue)\(PromQL.quoted(value))" }
    }

    public struct Selector: Sendable {
        public var name: String?
        public var matchers: [Matcher]
        public var offset: Int64 = 0
        /// For a range selector (`x[5m]`), the range in milliseconds.
        public var range: Int64?

        /// Every matcher, the metric name as `__name__`.
        public var allMatchers: [Matcher] {
            (name.map { [try! Matcher(name: "__name__", op: .equal, value: $0)] } ?? []) + matchers
        }
    }

    public enum Grouping: Sendable {
        case by([String])
        case without([String])
    }

    public enum Cardinality: Sendable {
        case oneToOne
        case manyToOne([String])
        case oneToMany([String])
    }

    /// How two vectors' samples are paired: `on (...)` or `ignoring (...)`, and `group_left/right`.
    public struct VectorMatching: Sendable {
        public var on = false
        public var labels: [String] = []
        public var cardinality: Cardinality = .oneToOne
    }

    public enum BinaryOp: String, Sendable, CaseIterable {
        case add = "+", sub = "-", mul = "*", div = "/", mod = "%", pow = "^", atan2
        case eql = "==", neq = "!=", gtr = ">", lss = "<", gte = ">=", lte = "<="
        case and, or, unless

        var isComparison: Bool { [.eql, .neq, .gtr, .lss, .gte, .lte].contains(self) }
        /// Arithmetic drops the metric name; atan2 keeps it (as Prometheus 2.42 does).
        var dropsName: Bool { [.add, .sub, .mul, .div, .mod, .pow].contains(self) }
        var isSet: Bool { [.and, .or, .unless].contains(self) }
        /// Binding strength, higher binds tighter.
        var precedence: Int {
            switch self {
            case .or: 1
            case .and, .unless: 2
            case .eql, .neq, .gtr, .lss, .gte, .lte: 3
            case .add, .sub: 4
            case .mul, .div, .mod, .atan2: 5
            case .pow: 6
            }
        }
    }

    public enum ValueType: String, Sendable {
        case scalar, vector, matrix, string
    }

    public indirect enum Expr: Sendable {
        case number(Double)
        case string(String)
        case selector(Selector)
        case call(String, [Expr])
        case aggregate(String, parameter: Expr?, grouping: Grouping?, Expr)
        case binary(BinaryOp, Expr, Expr, returnBool: Bool, matching: VectorMatching?)
        case negate(Expr)
        case paren(Expr)

        public var type: ValueType {
            switch self {
            case .number: .scalar
            case .string: .string
            case .selector(let selector): selector.range == nil ? .vector : .matrix
            case .call(let name, _): PromQL.functions[name]?.returns ?? .vector
            case .aggregate: .vector
            case .binary(_, let lhs, let rhs, _, _): lhs.type == .scalar && rhs.type == .scalar ? .scalar : .vector
            case .negate(let inner), .paren(let inner): inner.type
            }
        }
    }

    /// A function's argument types (the last `optional` of them may be left out) and result.
    struct Signature {
        var arguments: [ValueType]
        var optional = 0
        var returns: ValueType = .vector
    }

    static let functions: [String: Signature] = {
        var table: [String: Signature] = [:]
        for name in ["rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets", "absent_over_time", "present_over_time"] {
            table[name] = Signature(arguments: [.matrix])
        }
        for kind in ["avg", "min", "max", "sum", "count", "last", "stddev", "stdvar"] { table[kind + "_over_time"] = Signature(arguments: [.matrix]) }
        table["quantile_over_time"] = Signature(arguments: [.scalar, .matrix])
        table["predict_linear"] = Signature(arguments: [.matrix, .scalar])
        for name in ["abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "timestamp", "sort", "sort_desc", "absent"] {
            table[name] = Signature(arguments: [.vector])
        }
        table["round"] = Signature(arguments: [.vector, .scalar], optional: 1)
        table["clamp"] = Signature(arguments: [.vector, .scalar, .scalar])
        table["clamp_min"] = Signature(arguments: [.vector, .scalar])
        table["clamp_max"] = Signature(arguments: [.vector, .scalar])
        table["time"] = Signature(arguments: [], returns: .scalar)
        table["vector"] = Signature(arguments: [.scalar])
        table["scalar"] = Signature(arguments: [.vector], returns: .scalar)
        table["label_replace"] = Signature(arguments: [.vector, .string, .string, .string, .string])
        for name in ["day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year"] {
            table[name] = Signature(arguments: [.vector], optional: 1)
        }
        return table
    }()

    /// Prometheus functions Steward does not evaluate: named when refused.
    static let unsupportedFunctions: Set<String> = [
        "histogram_quantile", "histogram_count", "histogram_sum", "histogram_fraction", "holt_winters", "count_values", "mad_over_time",
        "label_join",
    ]

    static let aggregations: Set<String> = ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile"]

    /// A label regex anchored at both ends as Prometheus 2.42 (RE2) anchors it: `.` does not match a line feed, `$`
    /// only the very end; Go's `(?P<name>` is ICU's `(?<name>`.
    static func anchored(_ pattern: String) -> String {
        "\\A(?:" + pattern.replacingOccurrences(of: "(?P<", with: "(?<") + ")\\z"
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A duration as Prometheus writes one: units from y (365 days) down to ms, each at most once and largest first
    /// (`1h30m`, `500ms`, `0s`); a bare `0` is zero. Milliseconds, or nil.
    public static func duration(_ text: some StringProtocol) -> Int64? {
        if text == "0" { return 0 }
        let units: [(String, Int64)] = [
            ("y", 365 * 86_400_000), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
        ]
        var rest = Substring(text)
        var total: Int64 = 0
        var next = 0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 15, let number = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.hasPrefix("ms") ? "ms" : String(rest.prefix(1))
            guard let index = units.firstIndex(where: { $0.0 == unit }), index >= next else { return nil }
            rest = rest.dropFirst(unit.count)
            let (product, overflow) = number.multipliedReportingOverflow(by: units[index].1)
            guard !overflow, total <= Int64.max - product else { return nil }
            total += product
            next = index + 1
        }
        return total
    }

    /// A duration as Prometheus prints one (`1h30m`, `0s`).
    public static func formatDuration(_ milliseconds: Int64) -> String {
        guard milliseconds > 0 else { return "0s" }
        var rest = milliseconds
        var out = ""
        for (unit, size) in [
            ("y", Int64(365 * 86_400_000)), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
        ]
        where rest >= size {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        return out
    }
}

extension PromQL {
    enum TokenKind: Equatable {
        case identifier(String)
        case number(Double)
        case string(String)
        case duration(Int64)
        case punctuation(String)
        case end
    }

    struct Token {
        var kind: TokenKind
        var position: Int
    }

    /// Splits an expression into tokens. A duration is a token only right after `[`, `:` or `offset`, where
    /// Prometheus expects one.
    static func tokens(_ text: String) throws(ParseError) -> [Token] {
        let characters = Array(text.unicodeScalars)
        var tokens: [Token] = []
        var index = 0
        func fail(_ message: String, at position: Int? = nil) -> ParseError { ParseError(position: position ?? index, message: message) }
        var braces = 0
        func wantsDuration() -> Bool {
            guard let last = tokens.last else { return false }
            // offset -5m
            if case .punctuation("-") = last.kind, tokens.count >= 2, case .identifier(let name) = tokens[tokens.count - 2].kind {
                return name.lowercased() == "offset"
            }
            if case .punctuation(let text) = last.kind { return text == "[" || text == ":" }
            if case .identifier(let name) = last.kind { return name.lowercased() == "offset" }
            return false
        }
        while index < characters.count {
            let character = characters[index]
            if character == " " || character == "\t" || character == "\n" || character == "\r" {
                index += 1
                continue
            }
            if character == "#" {
                while index < characters.count, characters[index] != "\n" { index += 1 }
                continue
            }
            let start = index
            if character == "\"" || character == "'" || character == "`" {
                index += 1
                var value = String.UnicodeScalarView()
                var closed = false
                while index < characters.count {
                    let next = characters[index]
                    index += 1
                    if next == character {
                        closed = true
                        break
                    }
                    if character != "`", next == "\\" {
                        guard index < characters.count else { break }
                        let escape = characters[index]
                        index += 1
                        switch escape {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        case "a": value.append("\u{07}")
                        case "b": value.append("\u{08}")
                        case "f": value.append("\u{0C}")
                        case "v": value.append("\u{0B}")
                        case "\\": value.append(escape)
                        // Only the string's own quote may be escaped.
                        case "\"", "'":
                            guard escape == character else { throw fail("unknown escape \\\(escape) in a string", at: index - 2) }
                            value.append(escape)
                        case "u", "U", "x":
                            let length = escape == "u" ? 4 : escape == "U" ? 8 : 2
                            guard index + length <= characters.count,
                                let code = UInt32(String(String.UnicodeScalarView(characters[index..<(index + length)])), radix: 16),
                                let scalar = Unicode.Scalar(code)
                            else { throw fail("a \\\(escape) escape needs \(length) hexadecimal digits", at: index - 2) }
                            value.append(scalar)
                            index += length
                        default:
                            if ("0"..."7").contains(escape), index + 2 <= characters.count,
                                let code = UInt32(String(String.UnicodeScalarView(characters[(index - 1)..<(index + 2)])), radix: 8),
                                let scalar = Unicode.Scalar(code)
                            {
                                value.append(scalar)
                                index += 2
                            } else {
                                throw fail("unknown escape \\\(escape) in a string", at: index - 2)
                            }
                        }
                    } else {
                        if character != "`", next == "\n" { throw fail("a string cannot run over a line end", at: start) }
                        value.append(next)
                    }
                }
                guard closed else { throw fail("a string is not closed", at: start) }
                tokens.append(Token(kind: .string(String(value)), position: start))
                continue
            }
            if character == ":", case .duration = tokens.last?.kind {
                // A subquery's step ([5m:1m]), refused by the parser by name.
                tokens.append(Token(kind: .punctuation(":"), position: start))
                index += 1
                continue
            }
            let isWord = { (c: Unicode.Scalar) in c == "_" || c == ":" || (c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c))) }
            if wantsDuration(), ("0"..."9").contains(character) {
                while index < characters.count, characters[index].isASCII, isWord(characters[index]), characters[index] != ":" { index += 1 }
                let text = String(String.UnicodeScalarView(characters[start..<index]))
                guard let value = duration(text) else { throw fail("\(text) is not a duration (write it as 5m, 1h30m, 500ms)", at: start) }
                tokens.append(Token(kind: .duration(value), position: start))
                continue
            }
            if ("0"..."9").contains(character) || (character == "." && index + 1 < characters.count && ("0"..."9").contains(characters[index + 1])) {
                while index < characters.count,
                    characters[index].isASCII
                        && (characters[index].properties.isAlphabetic || ("0"..."9").contains(characters[index]) || characters[index] == "."
                            || ((characters[index] == "+" || characters[index] == "-") && "eE".unicodeScalars.contains(characters[index - 1])
                                && !String(String.UnicodeScalarView(characters[start..<index])).lowercased().hasPrefix("0x")))
                {
                    index += 1
                }
                let text = String(String.UnicodeScalarView(characters[start..<index]))
                let value: Double?
                if text.lowercased().hasPrefix("0x") {
                    value = UInt64(text.dropFirst(2), radix: 16).map(Double.init)
                } else if text.count > 1, text.hasPrefix("0"), text.allSatisfy(\.isNumber) {
                    // Octal, or (08, 09) decimal, as Go's ParseInt then ParseFloat read it.
                    value = UInt64(text, radix: 8).map(Double.init) ?? Double(text)
                } else {
                    value = Double(text)
                }
                guard let value else {
                    if duration(text) != nil {
                        throw fail("\(text) is a duration where a number is expected (write seconds, as 300 or 5*60)", at: start)
                    }
                    throw fail("\(text) is not a number", at: start)
                }
                tokens.append(Token(kind: .number(value), position: start))
                continue
            }
            if isWord(character) {
                while index < characters.count, isWord(characters[index]) { index += 1 }
                let word = String(String.UnicodeScalarView(characters[start..<index]))
                // Inside braces every word is a label name (x{nan="1"}).
                switch braces > 0 ? "" : word.lowercased() {
                case "inf": tokens.append(Token(kind: .number(.infinity), position: start))
                case "nan": tokens.append(Token(kind: .number(.nan), position: start))
                default: tokens.append(Token(kind: .identifier(word), position: start))
                }
                continue
            }
            let two = index + 1 < characters.count ? String(String.UnicodeScalarView([character, characters[index + 1]])) : ""
            if ["==", "!=", ">=", "<=", "=~", "!~"].contains(two) {
                tokens.append(Token(kind: .punctuation(two), position: start))
                index += 2
                continue
            }
            if character == "{" { braces += 1 }
            if character == "}" { braces = max(0, braces - 1) }
            if "(){}[],=+-*/%^<>:@".unicodeScalars.contains(character) {
                tokens.append(Token(kind: .punctuation(String(character)), position: start))
                index += 1
                continue
            }
            throw fail("unexpected character \(String(character))")
        }
        tokens.append(Token(kind: .end, position: characters.count))
        return tokens
    }
}
