import Foundation

/// Where one rule stands for one host.
public struct AlertState: Sendable, Equatable {
    public enum Phase: String, Sendable, CaseIterable { case normal, pending, firing, recovering, nodata, error }
    /// info (shown, sent only to channels that ask for it), warning, critical; in that order.
    public enum Severity: String, Sendable, CaseIterable, Comparable {
        case info, warning, critical

        var rank: Int {
            switch self {
            case .info: 0
            case .warning: 1
            case .critical: 2
            }
        }

        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
    }

    public var phase = Phase.normal
    public var severity: Severity?
    public var value: Double?
    /// When the current phase began.
    public var since: Int64
    /// When the condition began to hold (pending), kept while firing.
    public var activeSince: Int64?
    /// The last evaluation at which the condition held (keep_firing_for counts from here).
    public var lastConditionAt: Int64?
    public var evaluatedAt: Int64
    public var detail: String?
    /// The labels of the series that gave `value` (PromQL rules), as `name="value",...`; "" otherwise.
    public var labels = ""

    public init(since: Int64) {
        self.since = since
        evaluatedAt = since
    }

    /// Pending, firing or recovering: the alert is live.
    public var isActive: Bool { phase == .pending || phase == .firing || phase == .recovering }

    /// Whether a change from `old` to this state belongs in the history.
    func differs(from old: AlertState) -> Bool { phase != old.phase || severity != old.severity }
}

/// What one evaluation saw for a rule and a host.
public enum AlertObservation: Sendable, Equatable {
    case value(Double)
    /// A PromQL rule without thresholds returned nothing for the host: it is not alerting.
    case clear
    case noData
    case failure(String)
    /// A source that decides the level itself (an SLO's burn-rate pairs): the severity, or nil for none, and the value
    /// shown with it.
    case level(AlertState.Severity?, Double)
}

/// The state machine: normal → pending → firing (warning | critical) → recovering → normal, plus nodata and error.
public enum AlertStateMachine {
    /// The severity a value has, given the severity it had: a level is entered at its threshold and left only past
    /// its clear level, so a value hovering at the threshold does not flap.
    public static func severity(of value: Double, rule: AlertRule, current: AlertState.Severity?) -> AlertState.Severity? {
        func holds(_ threshold: Double?, _ clear: Double?, active: Bool) -> Bool {
            guard let threshold else { return false }
            let clearLevel = clear ?? threshold
            switch rule.comparison.upward {
            case true?: return rule.comparison.holds(value, threshold) || (active && value > clearLevel && clearLevel < threshold)
            case false?: return rule.comparison.holds(value, threshold) || (active && value < clearLevel && clearLevel > threshold)
            case nil: return rule.comparison.holds(value, threshold)
            }
        }
        // A PromQL rule without thresholds: whatever its expression returns is alerting.
        if rule.source == PromQLRule.source, rule.warnThreshold == nil, rule.critThreshold == nil { return rule.severity }
        if holds(rule.critThreshold, rule.critClear, active: current == .critical) { return .critical }
        if holds(rule.warnThreshold, rule.warnClear, active: current != nil) { return .warning }
        // A rule with only a critical level: the warning clear level does not apply.
        return nil
    }

    public static func next(_ state: AlertState, _ observation: AlertObservation, rule: AlertRule, now: Int64) -> AlertState {
        var next = state
        next.evaluatedAt = now
        next.detail = nil
        let severity: AlertState.Severity?
        switch observation {
        case .failure(let message):
            if state.phase != .error {
                next.phase = .error
                next.since = now
            }
            next.detail = message
            next.value = nil
            return next
        case .noData:
            next.value = nil
            switch rule.noData {
            case .keep:
                return next
            case .ok:
                severity = nil
            case .alerting:
                severity = .critical
                next.detail = "no data"
            case .nodata:
                if state.phase != .nodata {
                    next.phase = .nodata
                    next.since = now
                }
                next.severity = nil
                next.activeSince = nil
                return next
            }
        case .value(let value):
            next.value = value
            severity = self.severity(of: value, rule: rule, current: state.isActive ? state.severity : nil)
        case .clear:
            next.value = nil
            severity = nil
        case .level(let level, let value):
            next.value = value
            severity = level
        }
        if let severity {
            next.lastConditionAt = now
            next.severity = severity
            switch state.phase {
            case .normal, .nodata, .error:
                next.activeSince = now
                next.phase = rule.forSeconds == 0 ? .firing : .pending
                next.since = now
            case .pending:
                if now - (state.activeSince ?? now) >= Int64(rule.forSeconds) * 1000 {
                    next.phase = .firing
                    next.since = now
                }
            case .firing:
                break
            case .recovering:
                next.phase = .firing
                next.since = now
            }
        } else {
            switch state.phase {
            case .normal:
                break
            case .pending, .nodata, .error:
                next.phase = .normal
                next.since = now
                next.severity = nil
                next.activeSince = nil
            case .firing:
                if rule.keepFiringSeconds > 0 {
                    next.phase = .recovering
                    next.since = now
                } else {
                    next.phase = .normal
                    next.since = now
                    next.severity = nil
                    next.activeSince = nil
                }
            case .recovering:
                if now - (state.lastConditionAt ?? now) >= Int64(rule.keepFiringSeconds) * 1000 {
                    next.phase = .normal
                    next.since = now
                    next.severity = nil
                    next.activeSince = nil
                }
            }
        }
        return next
    }
}
