import Foundation

/// A 5-field cron expression (minute hour day-of-month month day-of-week) or an @macro, with Vixie cron semantics as
/// cronie implements them.
///
/// When both day-of-month and day-of-week are restricted (neither field starts with `*`), a day matches if either
/// matches, as Vixie cron does. Fire times are computed in an IANA time zone the way cronie's crond runs jobs when that
/// zone is its local time (`main` and `find_jobs` in cron.c). A job whose minute or hour field starts with `*` is a
/// wildcard job: it does not run for times a spring-forward skips, and it runs again while a fall-back repeats local
/// time. Any other job is a fixed-time job: a time in a spring-forward gap runs once, at the first valid instant after
/// the gap; a repeated time runs once, at its first occurrence.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let dayOfMonthStar: Bool
    let dayOfWeekStar: Bool
    /// The minute or hour field starts with `*` (cronie's MIN_STAR / HR_STAR), which decides how DST changes treat it.
    let wildcardTime: Bool
    // Sorted copies for the search loop.
    let sortedHours: [Int]
    let sortedMinutes: [Int]

    public var description: String { text }

    /// A field-level error; `field` is the cron field's name so the UI and API can point at it.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let field: String
        public let message: String
        public var description: String { "\(field): \(message)" }
    }

    static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    public init(_ text: String) throws(ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var source = trimmed
        if trimmed.hasPrefix("@") {
            guard let expanded = Self.macros[trimmed.lowercased()] else {
                throw ParseError(
                    field: "expression",
                    message: "unknown macro \(trimmed); use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly")
            }
            source = expanded
        }
        let fields = source.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(
                field: "expression",
                message:
                    "expected 5 fields (minute hour day-of-month month day-of-week) or an @macro, got \(fields.count) field\(fields.count == 1 ? "" : "s")"
            )
        }
        self.text = trimmed
        minutes = try Self.parseField(fields[0], name: "minute", range: 0...59, names: [])
        hours = try Self.parseField(fields[1], name: "hour", range: 0...23, names: [])
        daysOfMonth = try Self.parseField(fields[2], name: "day-of-month", range: 1...31, names: [])
        months = try Self.parseField(fields[3], name: "month", range: 1...12, names: Self.monthNames, namesStart: 1)
        // 7 is another name for Sunday.
        let weekdays = try Self.parseField(fields[4], name: "day-of-week", range: 0...7, names: Self.dayNames, sundayEndsRange: true)
        daysOfWeek = Set(weekdays.map { $0 % 7 })
        dayOfMonthStar = fields[2].hasPrefix("*")
        dayOfWeekStar = fields[4].hasPrefix("*")
        wildcardTime = fields[0].hasPrefix("*") || fields[1].hasPrefix("*")
        sortedHours = hours.sorted()
        sortedMinutes = minutes.sorted()
        if !months.contains(where: { month in daysOfMonth.contains { $0 <= Self.maxDays(month) } }) && !dayOfMonthStar && dayOfWeekStar {
            throw ParseError(
                field: "day-of-month",
                message: "day \(daysOfMonth.sorted().map(String.init).joined(separator: ",")) never occurs in the chosen month(s)")
        }
    }

    static func maxDays(_ month: Int) -> Int { month == 2 ? 29 : [4, 6, 9, 11].contains(month) ? 30 : 31 }

    static func parseField(
        _ field: String, name: String, range: ClosedRange<Int>, names: [String], namesStart: Int = 0, sundayEndsRange: Bool = false
    ) throws(ParseError) -> Set<Int> {
        var values = Set<Int>()
        let allowed = "\(range.lowerBound)-\(range.upperBound)" + (names.isEmpty ? "" : " or \(names.first!)-\(names.last!)")
        for part in field.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw ParseError(field: name, message: "empty list item in \"\(field)\"") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw ParseError(field: name, message: "\"\(part)\" has more than one /") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed > 0 else {
                    throw ParseError(field: name, message: "step \"\(pieces[1])\" in \"\(part)\" must be a positive integer")
                }
                // As in cronie, a step longer than the range is allowed (*/90 in minutes is minute 0 only); capping it
                // keeps the same values and keeps the stride from overflowing.
                step = min(parsed, range.count)
            }
            let base = pieces[0]
            var low: Int
            var high: Int
            if base == "*" {
                low = range.lowerBound
                high = range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash], field: name, range: range, names: names, namesStart: namesStart, allowed: allowed)
                high = try value(base[base.index(after: dash)...], field: name, range: range, names: names, namesStart: namesStart, allowed: allowed)
                // As in cronie, a day-of-week range may end at Sunday written as 0 or SUN: SAT-SUN, FRI-SUN, 6-0.
                if sundayEndsRange && high == 0 && low > 0 && pieces.count == 1 { high = 7 }
                guard low <= high else {
                    let hint =
                        sundayEndsRange && high == 0
                        ? "with a step, end the range at 7 for Sunday (for example 5-7/2)" : "write the smaller value first"
                    throw ParseError(field: name, message: "range \"\(base)\" runs backwards; \(hint)")
                }
            } else {
                low = try value(base, field: name, range: range, names: names, namesStart: namesStart, allowed: allowed)
                // Vixie: "a/n" means from a to the end of the range in steps of n.
                high = pieces.count == 2 ? range.upperBound : low
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    static func value(_ text: Substring, field: String, range: ClosedRange<Int>, names: [String], namesStart: Int, allowed: String) throws(ParseError)
        -> Int
    {
        if let number = Int(text) {
            guard range.contains(number) else { throw ParseError(field: field, message: "\(number) is out of range; allowed: \(allowed)") }
            return number
        }
        if let index = names.firstIndex(of: text.uppercased()) { return index + namesStart }
        throw ParseError(field: field, message: "\"\(text)\" is not a number or name; allowed: \(allowed)")
    }

    func matchesDay(year: Int, month: Int, day: Int) -> Bool {
        guard months.contains(month) else { return false }
        let domMatch = daysOfMonth.contains(day)
        let dowMatch = daysOfWeek.contains(CivilDate.weekday(year: year, month: month, day: day))
        if dayOfMonthStar || dayOfWeekStar { return domMatch && dowMatch }
        return domMatch || dowMatch
    }

    /// Whether a local wall-clock minute (seconds since the epoch as if UTC) matches all five fields.
    func matches(local: Int64) -> Bool {
        let civil = CivilDate(daysSinceEpoch: Int(floorDiv(local, 86400)))
        let minuteOfDay = Int((local - Int64(civil.daysSinceEpoch) * 86400) / 60)
        return hours.contains(minuteOfDay / 60) && minutes.contains(minuteOfDay % 60)
            && matchesDay(year: civil.year, month: civil.month, day: civil.day)
    }

    /// The first fire time strictly after `instant`, or nil if none within `horizonYears` (e.g. Feb 30).
    public func nextFire(after instant: Date, in zone: TimeZone, horizonYears: Int = 30) -> Date? {
        let afterSeconds = Int64(instant.timeIntervalSince1970.rounded(.down))
        let first = firstOccurrence(after: afterSeconds, in: zone, horizonYears: horizonYears)
        // A wildcard job also runs while a fall-back repeats local time, and such a run can come before `first`.
        let repeated = wildcardTime ? firstRepeat(after: afterSeconds, before: first ?? afterSeconds + 2 * 86400, in: zone) : nil
        return (repeated ?? first).map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    /// The first matching local time after `afterSeconds`, taken at its first occurrence. A time in a spring-forward
    /// gap runs at the end of the gap, unless this is a wildcard job: cronie's crond skips it then.
    func firstOccurrence(after afterSeconds: Int64, in zone: TimeZone, horizonYears: Int) -> Int64? {
        // Start from the local wall-clock minute of `afterSeconds`, a little earlier so an overlap's first occurrence is considered.
        let startLocal = afterSeconds + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(afterSeconds)))) - 3 * 3600
        var civil = CivilDate(daysSinceEpoch: Int(floorDiv(startLocal, 86400)))
        let startMinuteOfDay = Int((startLocal - Int64(civil.daysSinceEpoch) * 86400) / 60)
        var firstDay = true
        let lastYear = civil.year + horizonYears
        while civil.year <= lastYear {
            if !months.contains(civil.month) {
                civil = civil.firstOfNextMonth()
                firstDay = false
                continue
            }
            if matchesDay(year: civil.year, month: civil.month, day: civil.day) {
                for hour in sortedHours {
                    for minute in sortedMinutes {
                        let minuteOfDay = hour * 60 + minute
                        if firstDay && minuteOfDay < startMinuteOfDay { continue }
                        let local = Int64(civil.daysSinceEpoch) * 86400 + Int64(minuteOfDay) * 60
                        let fire: Int64
                        if let earliest = Self.occurrences(ofLocal: local, in: zone).first {
                            fire = earliest
                        } else if wildcardTime {
                            continue
                        } else {
                            fire = Self.gapEnd(forLocal: local, in: zone)
                        }
                        if fire > afterSeconds { return fire }
                    }
                }
            }
            civil = civil.next()
            firstDay = false
        }
        return nil
    }

    /// The first run strictly after `afterSeconds` and before `limit` that a fall-back gives a wildcard job: while the
    /// clocks go over the repeated local times again, cronie's crond runs wildcard jobs (and only those) for each.
    func firstRepeat(after afterSeconds: Int64, before limit: Int64, in zone: TimeZone) -> Int64? {
        // Look from a day earlier, so that asking from inside a repeated hour still finds the transition that began it.
        var cursor = Date(timeIntervalSince1970: TimeInterval(afterSeconds - 86400))
        while let transition = zone.nextDaylightSavingTimeTransition(after: cursor), transition > cursor {
            let at = Int64(transition.timeIntervalSince1970.rounded())
            guard at < limit else { return nil }
            let offsetBefore = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(at - 1))))
            let offsetAfter = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(at))))
            if offsetBefore > offsetAfter {
                // From `at` the clocks show at + offsetAfter, and local times up to at + offsetBefore come round again.
                var local = floorDiv(at + offsetAfter + 59, 60) * 60
                while local < at + offsetBefore {
                    let fire = local - offsetAfter
                    if fire >= limit { return nil }
                    if fire > afterSeconds && matches(local: local) { return fire }
                    local += 60
                }
            }
            cursor = transition.addingTimeInterval(1)
        }
        return nil
    }

    /// The next `count` fire times after `instant`.
    public func nextFires(after instant: Date, in zone: TimeZone, count: Int) -> [Date] {
        var result: [Date] = []
        var cursor = instant
        while result.count < count, let next = nextFire(after: cursor, in: zone) {
            result.append(next)
            cursor = next
        }
        return result
    }

    /// The instants at which a local wall-clock time (seconds since the epoch as if UTC) happens: one normally, two in
    /// a fall-back overlap (earlier first), none in a spring-forward gap.
    static func occurrences(ofLocal local: Int64, in zone: TimeZone) -> [Int64] {
        let before = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(local - 86400))))
        let after = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(local + 86400))))
        var valid: [Int64] = []
        for offset in Set([before, after]) {
            let candidate = local - offset
            if Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(candidate)))) == offset { valid.append(candidate) }
        }
        return valid.sorted()
    }

    /// The first valid instant after the spring-forward gap that swallowed the local wall-clock time `local`.
    static func gapEnd(forLocal local: Int64, in zone: TimeZone) -> Int64 {
        let before = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(local - 86400))))
        let after = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(local + 86400))))
        // The transition itself is the first valid instant after the gap.
        let searchFrom = Date(timeIntervalSince1970: TimeInterval(local - max(before, after) - 1))
        if let transition = zone.nextDaylightSavingTimeTransition(after: searchFrom) {
            return Int64(transition.timeIntervalSince1970)
        }
        return local - after
    }
}

func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

/// A proleptic Gregorian date, computed without Calendar so the search loop stays cheap.
public struct CivilDate: Equatable, Sendable {
    public let year: Int
    public let month: Int
    public let day: Int
    public let daysSinceEpoch: Int

    init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.daysSinceEpoch = Self.days(year: year, month: month, day: day)
    }

    public init(daysSinceEpoch z0: Int) {
        // Howard Hinnant's civil_from_days.
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (m <= 2 ? 1 : 0)
        month = m
        day = d
        daysSinceEpoch = z0
    }

    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// 0 = Sunday.
    static func weekday(year: Int, month: Int, day: Int) -> Int {
        let days = Self.days(year: year, month: month, day: day)
        return ((days % 7) + 11) % 7
    }

    func next() -> CivilDate { CivilDate(daysSinceEpoch: daysSinceEpoch + 1) }

    func firstOfNextMonth() -> CivilDate {
        month == 12 ? CivilDate(year: year + 1, month: 1, day: 1) : CivilDate(year: year, month: month + 1, day: 1)
    }
}
