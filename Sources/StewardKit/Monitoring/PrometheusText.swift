import Foundation

/// The Prometheus text exposition format (version 0.0.4), as node_exporter serves it: HELP and TYPE lines, label
/// values with `\\`, `\"` and `\n` escapes, NaN and ±Inf, optional millisecond timestamps, and the `_bucket`,
/// `_sum`, `_count` samples of histograms and summaries grouped under their family.
public enum PrometheusText {
    public enum FamilyType: String, Sendable {
        case counter, gauge, histogram, summary, untyped
    }

    public struct Sample: Sendable, Equatable {
        public var name: String
        public var labels: [(String, String)]
        public var value: Double
        public var timestamp: Int64?

        public init(name: String, labels: [(String, String)], value: Double, timestamp: Int64? = nil) {
            self.name = name
            self.labels = labels
            self.value = value
            self.timestamp = timestamp
        }

        public func label(_ name: String) -> String? { labels.first { $0.0 == name }?.1 }

        public static func == (a: Sample, b: Sample) -> Bool {
            a.name == b.name && a.labels.elementsEqual(b.labels, by: { $0 == $1 }) && a.timestamp == b.timestamp
                && a.value.bitPattern == b.value.bitPattern
        }
    }

    public struct Family: Sendable {
        public var name: String
        public var type: FamilyType
        public var help: String?
        public var samples: [Sample]
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// A scrape's bytes: as `parse(_:)`, and a line Prometheus would read as HELP, TYPE or a sample must be UTF-8
    /// (Prometheus 2.42 refuses a label value or a HELP text that is not; a plain comment may hold anything).
    public static func parse(data: some Collection<UInt8>) throws(ParseError) -> [Family] {
        var lineNumber = 0
        var text = ""
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            guard let decoded = String(validating: line, as: UTF8.self) else {
                let content = line.drop { $0 == 0x20 || $0 == 0x09 }
                if content.first == 0x23, !isHelpOrType(String(decoding: content, as: UTF8.self)) {
                    text += "#\n"
                    continue
                }
                throw ParseError(line: lineNumber, message: "the line is not valid UTF-8")
            }
            text += decoded
            text += "\n"
        }
        return try parse(String(text.dropLast()))
    }

    /// `# HELP name ...` or `# TYPE name ...`, spaces between # and the keyword optional.
    static func isHelpOrType(_ line: String) -> Bool { metaLine(Substring(line)) != nil }

    /// The keyword and the rest of a HELP or TYPE line (`#`, optional blanks, the keyword, at least one blank).
    static func metaLine(_ line: Substring) -> (keyword: String, rest: Substring)? {
        guard line.first == "#" else { return nil }
        let afterHash = line.dropFirst().drop { $0 == " " || $0 == "\t" }
        for keyword in ["HELP", "TYPE"] where afterHash.hasPrefix(keyword) {
            let rest = afterHash.dropFirst(4)
            guard let first = rest.first, first == " " || first == "\t" else { return nil }
            return (keyword, rest.drop { $0 == " " || $0 == "\t" })
        }
        return nil
    }

    /// Every family in document order. Samples without a TYPE line become untyped families of their own name.
    public static func parse(_ text: String) throws(ParseError) -> [Family] {
        var families: [Family] = []
        var index: [String: Int] = [:]
        var lineNumber = 0
        func family(named name: String) -> Int {
            if let existing = index[name] { return existing }
            families.append(Family(name: name, type: .untyped, help: nil, samples: []))
            index[name] = families.count - 1
            return families.count - 1
        }
        // Lines end at a line feed byte ("\r\n" is one Character to Swift, and Prometheus does not take a carriage
        // return as a line's end).
        for rawView in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false) {
            let rawLine = Substring(rawView)
            lineNumber += 1
            let line = rawLine.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty { continue }
            // Prometheus reads a comment after blanks, but not a sample.
            if line.first != "#", line.startIndex != rawLine.startIndex {
                throw ParseError(line: lineNumber, message: "a sample line must not begin with a blank")
            }
            if line.first == "#" {
                guard let (keyword, body) = metaLine(line) else { continue }
                let nameEnd = body.firstIndex { $0 == " " || $0 == "\t" } ?? body.endIndex
                let name = String(body[..<nameEnd])
                guard isMetricName(name) else { throw ParseError(line: lineNumber, message: "\"\(name)\" is not a metric name") }
                let rest = String(body[nameEnd...].dropFirst())
                let position = family(named: name)
                if keyword == "HELP" {
                    families[position].help = unescape(rest)
                } else {
                    guard let type = FamilyType(rawValue: rest.trimmingCharacters(in: .whitespaces)) else {
                        throw ParseError(line: lineNumber, message: "unknown metric type \"\(rest)\" for \(name)")
                    }
                    // Prometheus 2.42 also takes a TYPE line after the family's samples.
                    families[position].type = type
                }
                continue
            }
            let sample = try parseSample(Substring(line), line: lineNumber)
            families[family(named: familyName(of: sample.name, families: families, index: index))].samples.append(sample)
        }
        return families
    }

    /// `_bucket`, `_sum`, `_count` (and `_created`) belong to the histogram or summary family they extend.
    static func familyName(of name: String, families: [Family], index: [String: Int]) -> String {
        if index[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count", "_created"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let position = index[base], families[position].type == .histogram || families[position].type == .summary {
                return base
            }
        }
        return name
    }

    static func isMetricName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || first == ":" || isLetter(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || $0 == ":" || isLetter($0) || ("0"..."9").contains($0) }
    }

    static func isLabelName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || isLetter(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || isLetter($0) || ("0"..."9").contains($0) }
    }

    private static func isLetter(_ scalar: Unicode.Scalar) -> Bool { ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) }

    static func parseSample(_ line: Substring, line number: Int) throws(ParseError) -> Sample {
        let utf8 = Array(line.utf8)
        var position = 0
        func skipSpaces() { while position < utf8.count, utf8[position] == 0x20 || utf8[position] == 0x09 { position += 1 } }
        skipSpaces()
        let nameStart = position
        while position < utf8.count, utf8[position] != 0x7B, utf8[position] != 0x20, utf8[position] != 0x09 { position += 1 }
        let name = String(decoding: utf8[nameStart..<position], as: UTF8.self)
        guard isMetricName(name) else { throw ParseError(line: number, message: "\"\(name)\" is not a metric name") }
        var labels: [(String, String)] = []
        skipSpaces()
        if position < utf8.count, utf8[position] == 0x7B {
            position += 1
            while true {
                skipSpaces()
                guard position < utf8.count else { throw ParseError(line: number, message: "labels of \(name) are not closed with }") }
                if utf8[position] == 0x7D {
                    position += 1
                    break
                }
                let labelStart = position
                while position < utf8.count, utf8[position] != 0x3D, utf8[position] != 0x20, utf8[position] != 0x09 { position += 1 }
                let label = String(decoding: utf8[labelStart..<position], as: UTF8.self)
                guard isLabelName(label) else { throw ParseError(line: number, message: "\"\(label)\" is not a label name in \(name)") }
                skipSpaces()
                guard position < utf8.count, utf8[position] == 0x3D else {
                    throw ParseError(line: number, message: "label \(label) of \(name) has no = sign")
                }
                position += 1
                skipSpaces()
                guard position < utf8.count, utf8[position] == 0x22 else {
                    throw ParseError(line: number, message: "the value of label \(label) must be in double quotes")
                }
                position += 1
                var value: [UInt8] = []
                var closed = false
                while position < utf8.count {
                    let byte = utf8[position]
                    position += 1
                    if byte == 0x5C {
                        guard position < utf8.count else { break }
                        let escaped = utf8[position]
                        position += 1
                        switch escaped {
                        case 0x6E: value.append(0x0A)
                        case 0x5C, 0x22: value.append(escaped)
                        // Prometheus keeps any other escape as written.
                        default: value += [0x5C, escaped]
                        }
                    } else if byte == 0x22 {
                        closed = true
                        break
                    } else {
                        value.append(byte)
                    }
                }
                guard closed else { throw ParseError(line: number, message: "the value of label \(label) is not closed with a quote") }
                guard label != "__name__", !labels.contains(where: { $0.0 == label }) else {
                    throw ParseError(line: number, message: "label \(label) is given twice in \(name)")
                }
                labels.append((label, String(decoding: value, as: UTF8.self)))
                skipSpaces()
                if position < utf8.count, utf8[position] == 0x2C {
                    position += 1
                } else if position >= utf8.count {
                    throw ParseError(line: number, message: "labels of \(name) are not closed with }")
                } else if utf8[position] != 0x7D {
                    throw ParseError(line: number, message: "expected , or } after label \(label) of \(name)")
                }
            }
        }
        skipSpaces()
        let valueStart = position
        while position < utf8.count, utf8[position] != 0x20, utf8[position] != 0x09 { position += 1 }
        let valueText = String(decoding: utf8[valueStart..<position], as: UTF8.self)
        guard let value = parseValue(valueText) else {
            throw ParseError(line: number, message: "\"\(valueText)\" is not a sample value for \(name) (a number, NaN, +Inf or -Inf)")
        }
        skipSpaces()
        var timestamp: Int64?
        if position < utf8.count {
            let text = String(decoding: utf8[position...], as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let parsed = Int64(text) else {
                throw ParseError(line: number, message: "\"\(text)\" is not a timestamp in milliseconds for \(name)")
            }
            timestamp = parsed
        }
        return Sample(name: name, labels: labels, value: value, timestamp: timestamp)
    }

    /// A sample value as Go's strconv.ParseFloat reads it (which Prometheus uses): decimal or hexadecimal (with a p
    /// exponent) numbers, and inf, infinity and nan in any case (a sign before inf only).
    static func parseValue(_ text: String) -> Double? {
        // Prometheus keeps to the float syntax before Go 1.13: no p exponent, no underscores.
        guard !text.contains(where: { $0 == "p" || $0 == "P" || $0 == "_" }) else { return nil }
        let lower = text.lowercased()
        switch lower {
        case "nan": return .nan
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: break
        }
        var rest = Substring(lower)
        if rest.first == "+" || rest.first == "-" { rest = rest.dropFirst() }
        let hex = rest.hasPrefix("0x")
        if hex { rest = rest.dropFirst(2) }
        let isDigit: (Character) -> Bool = { hex ? $0.isHexDigit : ($0 >= "0" && $0 <= "9") }
        let mantissa = rest.prefix { isDigit($0) || $0 == "." }
        guard mantissa.filter({ $0 == "." }).count <= 1, mantissa.contains(where: isDigit) else { return nil }
        rest = rest.dropFirst(mantissa.count)
        if let marker = rest.first {
            guard marker == (hex ? "p" : "e") else { return nil }
            rest = rest.dropFirst()
            if rest.first == "+" || rest.first == "-" { rest = rest.dropFirst() }
            guard !rest.isEmpty, rest.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        } else if hex {
            // Go wants the exponent of a hexadecimal float.
            return nil
        }
        return Double(text)
    }

    /// HELP text escapes: `\\` and `\n` (quotes are literal there).
    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var result = ""
        var escaping = false
        for character in text {
            if escaping {
                switch character {
                case "n": result.append("\n")
                case "\\": result.append("\\")
                default:
                    result.append("\\")
                    result.append(character)
                }
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                result.append(character)
            }
        }
        if escaping { result.append("\\") }
        return result
    }

    /// The canonical text of a label set: sorted by name, values escaped as in the exposition format.
    public static func canonicalLabels(_ labels: [(String, String)]) -> String {
        labels.sorted { $0.0 < $1.0 }.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",")
    }

    public static func escapeLabelValue(_ value: String) -> String {
        var result = ""
        for character in value {
            switch character {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }

    /// Parse a canonical label text back into pairs.
    public static func labels(fromCanonical text: String) -> [(String, String)] {
        guard !text.isEmpty, let sample = try? parseSample(Substring("x{\(text)} 0"), line: 0) else { return [] }
        return sample.labels
    }
}
