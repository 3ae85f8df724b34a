import Foundation

/// The logs page's and API's filters as the URL carries them, checked, with the search they make, the link to the
/// next page, and the `journalctl` command that shows the same lines on one host.
struct LogFilter {
    enum Range: String, CaseIterable {
        case m15 = "15m"
        case h1 = "1h"
        case h24 = "24h"
        case d7 = "7d"
        /// Each host's current boot (the controller narrows the range to it).
        case boot
        case custom

        var seconds: Int64? {
            switch self {
            case .m15: 900
            case .h1: 3600
            case .h24: 86_400
            case .d7: 7 * 86_400
            case .boot, .custom: nil
            }
        }
    }

    var range = Range.h1
    var from: Int64 = 0
    var to: Int64 = 0
    var fromText = ""
    var toText = ""
    var maxPriority = 3
    var host = ""
    var group = ""
    var unit = ""
    var identifier = ""
    var text = ""
    var regexText = ""
    var regex: NSRegularExpression?
    var before: LogPosition?
    var limit = 100
    var errors: [String: String] = [:]

    init(query given: [String: String], now: Date) {
        // An empty value is a field left blank (the form sends every field): the same as leaving it out.
        let query = given.filter { !$0.value.isEmpty }
        let nowMS = EpochMilliseconds.from(now)
        if let text = query["range"] {
            if let value = Range(rawValue: text) { range = value } else { errors["range"] = "one of 15m, 1h, 24h, 7d, boot or custom" }
        }
        fromText = query["from"] ?? ""
        toText = query["to"] ?? ""
        if range == .custom {
            let start = Self.time(fromText)
            let end = toText.isEmpty ? nowMS : Self.time(toText)
            if start == nil { errors["from"] = "a time such as 2026-12-06T09:30:00Z (or 2026-12-06T09:30, read as UTC)" }
            if end == nil { errors["to"] = "a time such as 2026-12-06T10:30:00Z, or empty for now" }
            if let start, let end, start > end { errors["to"] = "the end comes before the start" }
            // Years 1970 to 2200: anything else is a typing slip, and far-apart bounds would overflow the arithmetic.
            for (name, value) in [("from", start), ("to", end)] {
                if let value, !(0...7_258_118_400_000).contains(value) { errors[name] = "a time between 1970 and 2200" }
            }
            from = start ?? nowMS - 3_600_000
            to = end ?? nowMS
        } else {
            to = nowMS
            from = nowMS - (range.seconds ?? 3600) * 1000
        }
        if let text = query["priority"] {
            if let value = Int(text), (0...7).contains(value) {
                maxPriority = value
            } else {
                errors["priority"] = "a priority from 0 (emerg) to 7 (debug)"
            }
        }
        host = query["host"] ?? ""
        group = query["group"] ?? ""
        unit = query["unit"] ?? ""
        identifier = query["identifier"] ?? ""
        text = String((query["q"] ?? "").prefix(500))
        regexText = query["regex"] ?? ""
        if !regexText.isEmpty {
            if regexText.count > 500 {
                errors["regex"] = "at most 500 characters"
            } else if let problem = Self.backtrackingProblem(regexText) {
                errors["regex"] = problem
            } else {
                do { regex = try NSRegularExpression(pattern: regexText, options: [.caseInsensitive]) } catch {
                    errors["regex"] = "not a regular expression Steward can read: \(error.localizedDescription)"
                }
            }
        }
        if let text = query["before"] {
            if let position = LogPosition(text: text) { before = position } else { errors["before"] = "the next position of a previous page" }
        }
        if let text = query["limit"] {
            if let value = Int(text), (1...1000).contains(value) { limit = value } else { errors["limit"] = "must be 1 to 1000" }
        }
    }

    /// A repeated group that itself repeats, such as `(a+)+` or `(\w*)*`, can take a backtracking engine longer than
    /// the age of the universe on one line: refused, with what to write instead.
    static func backtrackingProblem(_ pattern: String) -> String? {
        // Per open group: does it hold a quantifier, does it hold alternatives, and the open-ended repeats (* and +)
        // one path through it meets (in its current alternative, and the most of its finished ones).
        var stack: [(quantified: Bool, alternatives: Bool, repeats: Int, mostRepeats: Int)] = [(false, false, 0, 0)]
        var escaped = false
        var inClass = false
        var closedQuantified = false
        var closedAlternatives = false
        // Repeats met one after another on one path: alternatives are not a sequence, so (a.+|b.+) counts one.
        func pathRepeats() -> Int { stack.reduce(0) { $0 + $1.repeats } }
        let tooMany = "more than four open-ended repeats (* or +) in a row can run for ages on a long line; narrow the pattern"
        for character in pattern {
            defer {
                if character != ")" {
                    closedQuantified = false
                    closedAlternatives = false
                }
            }
            if escaped {
                escaped = false
                continue
            }
            switch character {
            case "\\": escaped = true
            case "[": inClass = true
            case "]": inClass = false
            case "(" where !inClass: stack.append((false, false, 0, 0))
            case "|" where !inClass:
                stack[stack.count - 1].alternatives = true
                stack[stack.count - 1].mostRepeats = max(stack[stack.count - 1].mostRepeats, stack[stack.count - 1].repeats)
                stack[stack.count - 1].repeats = 0
            case ")" where !inClass:
                let group = stack.count > 1 ? stack.removeLast() : (quantified: false, alternatives: false, repeats: 0, mostRepeats: 0)
                if group.quantified { stack[stack.count - 1].quantified = true }
                stack[stack.count - 1].repeats += max(group.mostRepeats, group.repeats)
                if pathRepeats() > 4 { return tooMany }
                closedQuantified = group.quantified
                closedAlternatives = group.alternatives
                continue
            case "+", "*", "{":
                if inClass { break }
                if closedQuantified {
                    return "a repeated group with repeats inside it (such as (a+)+) can run for ages; write the inner repeat once, as a+"
                }
                if closedAlternatives {
                    return "a repeated group of alternatives (such as (a|ab)*) can run for ages; match the alternatives once, or use the text search"
                }
                if character != "{" { stack[stack.count - 1].repeats += 1 }
                if pathRepeats() > 4 { return tooMany }
                stack[stack.count - 1].quantified = true
            default: break
            }
        }
        return nil
    }

    static func time(_ text: String) -> Int64? {
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = parser.date(from: text) ?? ISO8601DateFormatter().date(from: text) { return EpochMilliseconds.from(date) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        for format in ["yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return EpochMilliseconds.from(date) }
        }
        return nil
    }

    var query: LogQuery {
        var query = LogQuery(from: from, to: to)
        query.maxPriority = maxPriority
        query.units = unit.isEmpty ? [] : [unit]
        query.identifiers = identifier.isEmpty ? [] : [identifier]
        query.text = text
        query.regex = regex
        query.before = before
        query.limit = limit
        return query
    }

    /// The filters as query items, without the page position.
    var items: [URLQueryItem] {
        var items = [URLQueryItem(name: "range", value: range.rawValue), URLQueryItem(name: "priority", value: String(maxPriority))]
        if range == .custom {
            items.append(URLQueryItem(name: "from", value: fromText))
            items.append(URLQueryItem(name: "to", value: toText))
        }
        for (name, value) in [("host", host), ("group", group), ("unit", unit), ("identifier", identifier), ("q", text), ("regex", regexText)]
        where !value.isEmpty {
            items.append(URLQueryItem(name: name, value: value))
        }
        return items
    }

    func link(before position: String) -> String {
        FormQuery.link("/logs", items + [URLQueryItem(name: "before", value: position)])
    }

    var view: ViewNode {
        ViewNode([
            "from": fromText, "to": toText, "host": host, "group": group, "unit": unit, "identifier": identifier, "q": text, "regex": regexText,
            "custom": range == .custom,
        ])
    }

    /// The command that shows these lines on the host itself (the text search as --grep, which is a regex there).
    func journalctl(host: Host) -> String {
        var words = ["journalctl", "--priority=0..\(maxPriority)"]
        if range == .custom {
            words.append("--since=\(RFC3339.display(EpochMilliseconds.date(from)))")
            if !toText.isEmpty { words.append("--until=\(RFC3339.display(EpochMilliseconds.date(to)))") }
        } else if range == .boot {
            words.append("--boot")
        } else {
            words.append("--since=-\(range.rawValue.replacingOccurrences(of: "15m", with: "15min"))")
        }
        if !unit.isEmpty { words.append("--unit=\(unit)") }
        if !identifier.isEmpty { words.append("--identifier=\(identifier)") }
        if !regexText.isEmpty {
            words.append("--grep=\(regexText)")
        } else if !text.isEmpty {
            // The same phrase of words: a word boundary first, anything but letters and digits between them.
            let phrase = LogQuery.words(text).map(NSRegularExpression.escapedPattern(for:)).joined(separator: "\\W+")
            words.append("--grep=\\b\(phrase)")
            words.append("--case-sensitive=false")
        }
        let command = words.map(HostReader.quoteForRemoteShell).joined(separator: " ")
        guard host.transport != .local else { return command }
        // ssh hands its words to the remote shell after the local shell took one layer of quotes: quoted twice.
        return "ssh " + HostReader.quoteForRemoteShell("\(host.sshUser)@\(host.address)") + " -- " + HostReader.quoteForRemoteShell(command)
    }
}
