import Foundation
import Testing

@testable import StewardKit

@Suite("Cron expressions")
struct CronExpressionTests {
    let utcZone = TimeZone(identifier: "UTC")!
    let berlin = TimeZone(identifier: "Europe/Berlin")!
    let newYork = TimeZone(identifier: "America/New_York")!
    let havana = TimeZone(identifier: "America/Havana")!

    func fires(_ expression: String, after: String, in zone: TimeZone, count: Int) throws -> [String] {
        try CronExpression(expression).nextFires(after: utc(after), in: zone, count: count).compactMap(iso)
    }

    @Test("lists, ranges, steps and names")
    func fieldSyntax() throws {
        let expression = try CronExpression("0,30 9-17/4 * JAN-MAR mon-fri")
        #expect(expression.minutes == [0, 30])
        #expect(expression.hours == [9, 13, 17])
        #expect(expression.months == [1, 2, 3])
        #expect(expression.daysOfWeek == [1, 2, 3, 4, 5])
        #expect(try CronExpression("*/20 * * * *").minutes == [0, 20, 40])
        #expect(try CronExpression("5/20 * * * *").minutes == [5, 25, 45])
        #expect(try CronExpression("0 0 * * 7").daysOfWeek == [0])
        #expect(try CronExpression("0 0 * * SUN,SAT").daysOfWeek == [0, 6])
    }

    @Test("cronie syntax: a day-of-week range may end at Sunday, and a step may be longer than its range")
    func cronieSyntax() throws {
        #expect(try CronExpression("0 0 * * SAT-SUN").daysOfWeek == [0, 6])
        #expect(try CronExpression("0 0 * * FRI-SUN").daysOfWeek == [0, 5, 6])
        #expect(try CronExpression("0 0 * * 6-0").daysOfWeek == [0, 6])
        #expect(try CronExpression("0 0 * * mon-sun").daysOfWeek == [0, 1, 2, 3, 4, 5, 6])
        #expect(try CronExpression("0 0 * * 5-7/2").daysOfWeek == [0, 5])
        // A step longer than the range keeps only the range's first value.
        #expect(try CronExpression("*/60 * * * *").minutes == [0])
        #expect(try CronExpression("*/90 * * * *").minutes == [0])
        #expect(try CronExpression("0 */24 * * *").hours == [0])
        #expect(try CronExpression("5/90 10-20/30 * * *").minutes == [5])
        #expect(try CronExpression("5/90 10-20/30 * * *").hours == [10])
        #expect(try CronExpression("*/9223372036854775807 * * * *").minutes == [0])
        #expect(try CronExpression("5/9223372036854775807 * * * *").minutes == [5])
        #expect(
            try fires("0 9 * * SAT-SUN", after: "2027-03-01T00:00:00Z", in: utcZone, count: 3) == [
                "2027-03-06T09:00:00Z", "2027-03-07T09:00:00Z", "2027-03-13T09:00:00Z",
            ])
        #expect(try fires("0 */24 * * *", after: "2027-03-01T00:00:00Z", in: utcZone, count: 2) == ["2027-03-02T00:00:00Z", "2027-03-03T00:00:00Z"])
    }

    @Test("a minute or hour field starting with * makes a wildcard job, as cronie's MIN_STAR and HR_STAR do")
    func wildcardJobs() throws {
        for expression in ["*/15 * * * *", "30 * 28 3 *", "0 */2 * * *", "*/60 * * * *", "0 */24 * * *", "* 2 * * *", "@hourly"] {
            #expect(try CronExpression(expression).wildcardTime, "\(expression)")
        }
        for expression in ["30 2 * * *", "0-59 0-23 * * *", "0,30 1 * * *", "@daily", "@weekly", "@monthly", "@yearly"] {
            #expect(try CronExpression(expression).wildcardTime == false, "\(expression)")
        }
    }

    @Test("macros expand to their five-field meaning")
    func macros() throws {
        #expect(try fires("@hourly", after: "2026-05-01T10:20:00Z", in: utcZone, count: 2) == ["2026-05-01T11:00:00Z", "2026-05-01T12:00:00Z"])
        #expect(try fires("@daily", after: "2026-05-01T10:20:00Z", in: utcZone, count: 1) == ["2026-05-02T00:00:00Z"])
        #expect(try fires("@weekly", after: "2026-05-01T10:20:00Z", in: utcZone, count: 1) == ["2026-05-03T00:00:00Z"])
        #expect(try fires("@monthly", after: "2026-05-01T10:20:00Z", in: utcZone, count: 1) == ["2026-06-01T00:00:00Z"])
        #expect(try fires("@yearly", after: "2026-05-01T10:20:00Z", in: utcZone, count: 1) == ["2027-01-01T00:00:00Z"])
        #expect(try fires("@annually", after: "2026-05-01T10:20:00Z", in: utcZone, count: 1) == ["2027-01-01T00:00:00Z"])
    }

    @Test("next fire is strictly after the given instant")
    func strictlyAfter() throws {
        #expect(try fires("30 10 * * *", after: "2026-05-01T10:30:00Z", in: utcZone, count: 1) == ["2026-05-02T10:30:00Z"])
        #expect(try fires("30 10 * * *", after: "2026-05-01T10:29:59Z", in: utcZone, count: 1) == ["2026-05-01T10:30:00Z"])
    }

    @Test("Europe/Berlin spring forward: a fixed time in the gap runs once at the end of the gap; a wildcard job skips it")
    func berlinSpringForward() throws {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z.
        #expect(
            try fires("30 2 * * *", after: "2026-03-28T12:00:00Z", in: berlin, count: 3) == [
                "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z",
            ])
        // Every 15 minutes is a wildcard job: 02:00-02:45 do not exist and do not run; 03:00 CEST runs as usual.
        #expect(
            try fires("*/15 * * * *", after: "2026-03-29T00:30:00Z", in: berlin, count: 4) == [
                "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z", "2026-03-29T01:30:00Z",
            ])
    }

    @Test("Europe/Berlin fall back: a repeated fixed time runs once, at its first occurrence; a wildcard job runs in both")
    func berlinFallBack() throws {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00Z; 02:30 happens at 00:30Z and 01:30Z.
        #expect(
            try fires("30 2 * * *", after: "2026-10-24T12:00:00Z", in: berlin, count: 2) == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
        #expect(
            try fires("*/30 * * * *", after: "2026-10-25T00:00:00Z", in: berlin, count: 4) == [
                "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z",
            ])
        // Asked from inside the repeated hour, the already-passed first occurrence is not run again.
        #expect(try fires("30 2 * * *", after: "2026-10-25T01:10:00Z", in: berlin, count: 1) == ["2026-10-26T01:30:00Z"])
    }

    @Test("America/New_York spring forward and fall back")
    func newYorkTransitions() throws {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00Z.
        #expect(try fires("30 2 * * *", after: "2026-03-07T12:00:00Z", in: newYork, count: 2) == ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"])
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST at 06:00Z; 01:30 happens at 05:30Z and 06:30Z.
        #expect(try fires("30 1 * * *", after: "2026-10-31T12:00:00Z", in: newYork, count: 2) == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"])
        // Hourly is a wildcard job: 01:00 runs at 01:00 EDT and again at 01:00 EST, as with cronie.
        #expect(
            try fires("0 * * * *", after: "2026-11-01T04:30:00Z", in: newYork, count: 3) == [
                "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z",
            ])
    }

    @Test("cronie DST rules, Europe/Berlin 2027: spring forward at 01:00Z on March 28, fall back at 01:00Z on October 31")
    func cronieBerlin2027() throws {
        // Wildcard hour: 02:30 CET does not exist and does not run; there is no extra run at 01:00Z.
        #expect(
            try fires("30 * 28 3 *", after: "2027-03-27T22:00:00Z", in: berlin, count: 4) == [
                "2027-03-27T23:30:00Z", "2027-03-28T00:30:00Z", "2027-03-28T01:30:00Z", "2027-03-28T02:30:00Z",
            ])
        #expect(try fires("30 2 * * *", after: "2027-03-27T12:00:00Z", in: berlin, count: 2) == ["2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z"])
        #expect(
            try fires("*/15 * * * *", after: "2027-03-28T00:30:00Z", in: berlin, count: 3) == [
                "2027-03-28T00:45:00Z", "2027-03-28T01:00:00Z", "2027-03-28T01:15:00Z",
            ])
        #expect(
            try fires("0 */2 * * *", after: "2027-03-27T22:30:00Z", in: berlin, count: 3) == [
                "2027-03-27T23:00:00Z", "2027-03-28T02:00:00Z", "2027-03-28T04:00:00Z",
            ])
        // Only the missing hour matches, so March 28 has no run at all.
        #expect(try fires("*/20 2 * * *", after: "2027-03-27T12:00:00Z", in: berlin, count: 1) == ["2027-03-29T00:00:00Z"])
        // Fall back: 02:00-02:59 happens at 00:00Z-00:59Z (CEST) and again at 01:00Z-01:59Z (CET).
        #expect(try fires("30 2 * * *", after: "2027-10-30T12:00:00Z", in: berlin, count: 2) == ["2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"])
        #expect(
            try fires("*/30 * * * *", after: "2027-10-31T00:00:00Z", in: berlin, count: 4) == [
                "2027-10-31T00:30:00Z", "2027-10-31T01:00:00Z", "2027-10-31T01:30:00Z", "2027-10-31T02:00:00Z",
            ])
        #expect(
            try fires("0 */2 * * *", after: "2027-10-30T21:00:00Z", in: berlin, count: 4) == [
                "2027-10-30T22:00:00Z", "2027-10-31T00:00:00Z", "2027-10-31T01:00:00Z", "2027-10-31T03:00:00Z",
            ])
        // Asked from inside the second pass: the fixed job waits for tomorrow, the wildcard job runs at 02:30 CET.
        #expect(try fires("30 2 * * *", after: "2027-10-31T01:10:00Z", in: berlin, count: 1) == ["2027-11-01T01:30:00Z"])
        #expect(try fires("30 * * * *", after: "2027-10-31T01:10:00Z", in: berlin, count: 1) == ["2027-10-31T01:30:00Z"])
    }

    @Test("cronie DST rules, America/New_York 2027: spring forward at 07:00Z on March 14, fall back at 06:00Z on November 7")
    func cronieNewYork2027() throws {
        #expect(try fires("30 2 * * *", after: "2027-03-13T12:00:00Z", in: newYork, count: 2) == ["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z"])
        #expect(
            try fires("30 * 14 3 *", after: "2027-03-14T05:00:00Z", in: newYork, count: 3) == [
                "2027-03-14T05:30:00Z", "2027-03-14T06:30:00Z", "2027-03-14T07:30:00Z",
            ])
        #expect(
            try fires("0 */2 * * *", after: "2027-03-14T04:30:00Z", in: newYork, count: 3) == [
                "2027-03-14T05:00:00Z", "2027-03-14T08:00:00Z", "2027-03-14T10:00:00Z",
            ])
        // Fall back: no two-hour hole; 01:00 runs at 01:00 EDT and at 01:00 EST.
        #expect(
            try fires("0 * 7 11 *", after: "2027-11-07T03:30:00Z", in: newYork, count: 5) == [
                "2027-11-07T04:00:00Z", "2027-11-07T05:00:00Z", "2027-11-07T06:00:00Z", "2027-11-07T07:00:00Z", "2027-11-07T08:00:00Z",
            ])
        #expect(try fires("30 1 * * *", after: "2027-11-06T12:00:00Z", in: newYork, count: 2) == ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"])
        #expect(
            try fires("*/15 1 * * *", after: "2027-11-06T12:00:00Z", in: newYork, count: 9) == [
                "2027-11-07T05:00:00Z", "2027-11-07T05:15:00Z", "2027-11-07T05:30:00Z", "2027-11-07T05:45:00Z",
                "2027-11-07T06:00:00Z", "2027-11-07T06:15:00Z", "2027-11-07T06:30:00Z", "2027-11-07T06:45:00Z", "2027-11-08T06:00:00Z",
            ])
        #expect(
            try fires("0 */2 * * *", after: "2027-11-07T03:30:00Z", in: newYork, count: 3) == [
                "2027-11-07T04:00:00Z", "2027-11-07T07:00:00Z", "2027-11-07T09:00:00Z",
            ])
        for expression in ["@hourly", "*/60 * * * *", "*/90 * * * *"] {
            #expect(
                try fires(expression, after: "2027-11-07T04:30:00Z", in: newYork, count: 3) == [
                    "2027-11-07T05:00:00Z", "2027-11-07T06:00:00Z", "2027-11-07T07:00:00Z",
                ], "\(expression)")
        }
    }

    @Test("0 */24 is a wildcard job and 0 0 is not, which shows where DST changes at midnight (America/Havana 2027)")
    func midnightTransitions() throws {
        // November 7: 01:00 CDT falls back to 00:00 CST at 05:00Z, so midnight happens twice.
        #expect(
            try fires("0 */24 * * *", after: "2027-11-06T12:00:00Z", in: havana, count: 3) == [
                "2027-11-07T04:00:00Z", "2027-11-07T05:00:00Z", "2027-11-08T05:00:00Z",
            ])
        #expect(try fires("0 0 * * *", after: "2027-11-06T12:00:00Z", in: havana, count: 2) == ["2027-11-07T04:00:00Z", "2027-11-08T05:00:00Z"])
        // March 14: 00:00 CST jumps to 01:00 CDT at 05:00Z, so midnight does not happen.
        #expect(try fires("0 */24 * * *", after: "2027-03-13T12:00:00Z", in: havana, count: 2) == ["2027-03-15T04:00:00Z", "2027-03-16T04:00:00Z"])
        #expect(try fires("0 0 * * *", after: "2027-03-13T12:00:00Z", in: havana, count: 2) == ["2027-03-14T05:00:00Z", "2027-03-15T04:00:00Z"])
    }

    @Test("February 29 fires only in leap years")
    func leapDay() throws {
        #expect(try fires("0 12 29 2 *", after: "2026-03-01T00:00:00Z", in: utcZone, count: 2) == ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"])
    }

    @Test("day-of-month and day-of-week both restricted: either matches (Vixie OR rule)")
    func vixieOrRule() throws {
        let days = try fires("0 0 13 * FRI", after: "2026-11-01T00:00:00Z", in: utcZone, count: 6).map { String($0.prefix(10)) }
        #expect(days == ["2026-11-06", "2026-11-13", "2026-11-20", "2026-11-27", "2026-12-04", "2026-12-11"])
        // A field starting with * counts as unrestricted, so this is AND: odd days that are Mondays.
        let both = try fires("0 0 */2 * MON", after: "2026-01-01T00:00:00Z", in: utcZone, count: 4).map { String($0.prefix(10)) }
        #expect(both == ["2026-01-05", "2026-01-19", "2026-02-09", "2026-02-23"])
    }

    @Test(
        "invalid expressions name the bad field",
        arguments: [
            ("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day-of-month"), ("* * * 13 *", "month"),
            ("* * * * 8", "day-of-week"), ("* * * FOO *", "month"), ("*/0 * * * *", "minute"), ("5-1 * * * *", "minute"),
            ("* * *", "expression"), ("@reboot", "expression"), ("0 0 30 2 *", "day-of-month"), ("1,,2 * * * *", "minute"),
            ("* x * * *", "hour"), ("* * * * MON-", "day-of-week"), ("0 0 * * 1/2/3", "day-of-week"), ("5-0 * * * *", "minute"),
            ("* 22-2 * * *", "hour"), ("* * * * FRI-MON", "day-of-week"), ("* * * * 5-0/2", "day-of-week"),
            ("*/99999999999999999999 * * * *", "minute"),
        ])
    func invalid(expression: String, field: String) {
        #expect {
            try CronExpression(expression)
        } throws: { error in
            guard let parse = error as? CronExpression.ParseError else { return false }
            return parse.field == field && !parse.message.isEmpty
        }
    }

    @Test("an out-of-range value says what is allowed")
    func messagesSayWhatIsAllowed() {
        #expect {
            try CronExpression("0 0 * 13 *")
        } throws: { error in
            String(describing: error) == "month: 13 is out of range; allowed: 1-12 or JAN-DEC"
        }
    }

    @Test("schedule timing rejects unknown zones and bad jitter per field")
    func timingValidation() {
        #expect {
            try ScheduleTiming(cron: "61 * * * *", timeZone: "Mars/Olympus", jitterSeconds: -1)
        } throws: { error in
            guard let invalid = error as? ScheduleTiming.Invalid else { return false }
            return Set(invalid.fields.keys) == ["cron", "time_zone", "jitter_seconds"] && invalid.fields["time_zone"]!.contains("IANA")
        }
    }
}
