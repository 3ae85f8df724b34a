import Foundation

/// Good and total events over some span.
public struct SLOEvents: Sendable, Equatable {
    public var good: Double
    public var total: Double

    public init(good: Double = 0, total: Double = 0) {
        self.good = good
        self.total = total
    }

    public var bad: Double { max(0, total - good) }
    /// The share of bad events, or nil without events.
    public var errorRatio: Double? { total > 0 ? bad / total : nil }

    static func - (a: SLOEvents, b: SLOEvents) -> SLOEvents { SLOEvents(good: a.good - b.good, total: a.total - b.total) }
    static func + (a: SLOEvents, b: SLOEvents) -> SLOEvents { SLOEvents(good: a.good + b.good, total: a.total + b.total) }
}

/// The error-budget arithmetic, as the SRE workbook writes it.
public enum SLOMath {
    /// The burn-rate windows the alerts read, in ms, by name.
    public static let windows: [(name: String, milliseconds: Int64)] = [
        ("5m", 300_000), ("30m", 1_800_000), ("1h", 3_600_000), ("2h", 7_200_000), ("6h", 21_600_000), ("1d", 86_400_000),
        ("3d", 259_200_000),
    ]

    /// A multi-window burn-rate alert: both windows must burn faster than `factor`.
    public struct AlertPair: Sendable, Equatable {
        public var long: String
        public var short: String
        public var factor: Double
        public var severity: AlertState.Severity
        /// The share of a 30-day budget this pair spends before it fires (for the alert's text).
        public var budgetShare: String
    }

    /// Page on 2 % of a month's budget in an hour or 5 % in six hours; ticket on 10 % in a day or 10 % in three days.
    public static let pairs: [AlertPair] = [
        AlertPair(long: "1h", short: "5m", factor: 14.4, severity: .critical, budgetShare: "2 % of the budget in 1 hour"),
        AlertPair(long: "6h", short: "30m", factor: 6, severity: .critical, budgetShare: "5 % of the budget in 6 hours"),
        AlertPair(long: "1d", short: "2h", factor: 3, severity: .warning, budgetShare: "10 % of the budget in 1 day"),
        AlertPair(long: "3d", short: "6h", factor: 1, severity: .warning, budgetShare: "10 % of the budget in 3 days"),
    ]

    /// How many times faster than the objective allows the budget burns: 1 spends it exactly over the window.
    public static func burnRate(_ events: SLOEvents, budgetRatio: Double) -> Double? {
        guard let ratio = events.errorRatio, budgetRatio > 0 else { return nil }
        return ratio / budgetRatio
    }

    /// The budget left over the window, as a share of the whole: 1 untouched, 0 spent, below 0 overspent. Without events
    /// nothing is spent.
    public static func remaining(_ events: SLOEvents, budgetRatio: Double) -> Double {
        guard events.total > 0, budgetRatio > 0 else { return 1 }
        return 1 - events.bad / (budgetRatio * events.total)
    }

    /// Seconds until the budget is spent at a burn rate, over a window of `windowMilliseconds`; nil when it is not
    /// burning, 0 when it is already spent.
    public static func timeLeft(remaining: Double, burnRate: Double?, windowMilliseconds: Int64) -> Double? {
        guard remaining > 0 else { return 0 }
        guard let burnRate, burnRate > 0 else { return nil }
        return remaining * Double(windowMilliseconds) / 1000 / burnRate
    }

    /// The first of the UTC month holding `time`, and the first of the next.
    public static func month(containing time: Int64) -> (start: Int64, end: Int64) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = EpochMilliseconds.date(time)
        let parts = calendar.dateComponents([.year, .month], from: date)
        let start = calendar.date(from: parts)!
        let end = calendar.date(byAdding: .month, value: 1, to: start)!
        return (EpochMilliseconds.from(start), EpochMilliseconds.from(end))
    }

    /// Where the SLO's window starts at `time` (a minute boundary for rolling windows) and how long it is in all.
    public static func window(_ window: SLO.Window, at time: Int64) -> (start: Int64, length: Int64) {
        if let length = window.rollingMilliseconds { return (minute(time) - length, length) }
        let month = month(containing: time)
        return (month.start, month.end - month.start)
    }

    public static func minute(_ time: Int64) -> Int64 { time - ((time % 60_000) + 60_000) % 60_000 }

    /// Which alert pair fires, given each window's burn rate: the first page pair, else the first ticket pair.
    public static func firing(_ burn: [String: Double]) -> AlertPair? {
        pairs.first { pair in (burn[pair.long] ?? 0) > pair.factor && (burn[pair.short] ?? 0) > pair.factor }
    }
}

/// Where an SLO stands at one moment.
public struct SLOStatus: Sendable {
    public var slo: SLO
    public var at: Int64
    /// Events over the SLO's window.
    public var events: SLOEvents
    public var windowStart: Int64
    public var windowLength: Int64
    /// Events over each burn-rate window, by name.
    public var windows: [String: SLOEvents]
    public var problem: String?
    /// The hosts whose rollouts respect this SLO's budget.
    public var coveredHostIDs: Set<Int64> = []

    /// The share of good events over the window, as a percentage; nil without events.
    public var achieved: Double? { events.total > 0 ? events.good / events.total * 100 : nil }
    public var remaining: Double { SLOMath.remaining(events, budgetRatio: slo.budgetRatio) }
    public var spent: Bool { remaining <= 0 }
    public var burnRates: [String: Double] { windows.compactMapValues { SLOMath.burnRate($0, budgetRatio: slo.budgetRatio) } }
    /// Time left at the last hour's burn rate.
    public var timeLeftSeconds: Double? {
        SLOMath.timeLeft(remaining: remaining, burnRate: burnRates["1h"], windowMilliseconds: windowLength)
    }
    public var firing: SLOMath.AlertPair? { SLOMath.firing(burnRates) }
}
