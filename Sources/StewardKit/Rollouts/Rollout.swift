import Foundation
import GRDB

/// An update rollout: what changes, where, in which waves, under which approval policy.
public struct Rollout: Sendable, Equatable {
    /// What changes: pending updates (security or all), upgrades of named packages, installing or removing named
    /// packages, or a playbook from the config repo.
    public enum What: String, Sendable, CaseIterable {
        case security, all, packages, install, remove, playbook

        /// The kinds that name their packages.
        public var namesPackages: Bool { [.packages, .install, .remove].contains(self) }
        /// Installing or removing software is an admin's decision, as it is on one host.
        public var needsAdmin: Bool { self == .install || self == .remove }
        /// Stored as `what` and `package_action` (install and remove are package rollouts with their own action).
        var storage: (what: String, action: String) {
            switch self {
            case .install, .remove: ("packages", rawValue)
            case .packages: ("packages", "upgrade")
            default: (rawValue, "upgrade")
            }
        }
        init?(what: String, action: String) {
            self.init(rawValue: what == "packages" && action != "upgrade" ? action : what)
        }
    }
    public enum WaveKind: String, Sendable, CaseIterable { case count, percent }
    public enum Reboot: String, Sendable, CaseIterable {
        case never
        case whenRequired = "when_required"
        case always
    }
    public enum State: String, Sendable, CaseIterable {
        case planning
        case planFailed = "plan_failed"
        case awaitingApproval = "awaiting_approval"
        case approved, running, paused, succeeded, failed, aborted, denied, expired

        public var isFinished: Bool { [.succeeded, .failed, .aborted, .denied, .expired].contains(self) }
        /// Before it runs, a rollout may still be changed (which resets its approvals).
        public var isEditable: Bool { [.planning, .planFailed, .awaitingApproval, .approved].contains(self) }
    }

    public var id: Int64 = 0
    public var title = ""
    public var what = What.security
    public var packages: [String] = []
    public var playbook = ""
    public var playbookCommit = ""
    public var targets: [String] = []
    public var tags: [String] = []
    public var canary = 1
    public var waveKind = WaveKind.count
    public var waveSize = 1
    public var pauseSeconds = 0
    public var maxFailurePercent = 0
    public var reboot = Reboot.never
    public var windowID: Int64?
    public var approvalsRequired = 1
    public var expiresAt: Int64 = 0
    public var checkURL = ""
    public var settleSeconds = 60
    /// SLOs whose error budgets the rollout respects besides those covering each wave's hosts.
    public var slos: [String] = []
    public var state = State.planning
    public var stateDetail = ""
    public var revision = 1
    public var requestedBy = ""
    public var planJobID: Int64?
    public var plannedAt: Int64?
    public var planFactsAt: Int64?
    public var currentWave = 0
    public var gateStartedAt: Int64?
    public var rollbackOf: Int64?
    public var createdAt: Int64 = 0
    public var updatedAt: Int64 = 0
    public var finishedAt: Int64?

    public init() {}

    init(row: Row) {
        id = row["id"]
        title = row["title"]
        what = What(what: row["what"], action: row["package_action"] ?? "upgrade") ?? .security
        packages = JSONText.strings(row["packages"])
        playbook = row["playbook"]
        playbookCommit = row["playbook_commit"]
        targets = JSONText.strings(row["targets"])
        tags = JSONText.strings(row["tags"])
        canary = row["canary"]
        waveKind = WaveKind(rawValue: row["wave_kind"]) ?? .count
        waveSize = row["wave_size"]
        pauseSeconds = row["pause_seconds"]
        maxFailurePercent = row["max_failure_percent"]
        reboot = Reboot(rawValue: row["reboot"]) ?? .never
        windowID = row["window_id"]
        approvalsRequired = row["approvals_required"]
        expiresAt = row["expires_at"]
        checkURL = row["check_url"]
        settleSeconds = row["settle_seconds"]
        slos = JSONText.strings(row["slos"])
        state = State(rawValue: row["state"]) ?? .failed
        stateDetail = row["state_detail"]
        revision = row["revision"]
        requestedBy = row["requested_by"]
        planJobID = row["plan_job_id"]
        plannedAt = row["planned_at"]
        planFactsAt = row["plan_facts_at"]
        currentWave = row["current_wave"]
        gateStartedAt = row["gate_started_at"]
        rollbackOf = row["rollback_of"]
        createdAt = row["created_at"]
        updatedAt = row["updated_at"]
        finishedAt = row["finished_at"]
    }

    /// A Debian or RPM package name, optionally pinned to a version (`name=version`, for rollbacks). Nothing else
    /// gets through: the Webmin CVE-2022-36446 payload `u=1337;$(whoami);` is refused here, and names travel as
    /// list items to the package module in any case.
    public static func packageProblem(_ text: String) -> String? {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts[0]
        let nameOK =
            (2...128).contains(name.count) && name.first.map { $0.isASCII && ($0.isLowercase || $0.isNumber) } == true
            && name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || "+-._".contains($0)) }
            // apt reads a trailing - or _ as "remove" or "purge".
            && !name.hasSuffix("-") && !name.hasSuffix("_")
        guard nameOK else {
            return "\"\(text)\" is not a package name: lowercase letters, digits and + - . _, starting with a letter or digit"
        }
        if parts.count == 2 {
            let version = parts[1]
            let versionOK =
                (1...128).contains(version.count) && version.first?.isNumber == true
                && version.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.~:_".contains($0)) }
                && !version.hasSuffix("-") && !version.hasSuffix("_")
            if !versionOK { return "\"\(text)\" has a version Steward does not accept: digits first, then letters, digits and + - . ~ : _" }
        }
        return nil
    }

    /// What Steward needs on a host to reach it and run the engine there: a rollout never removes these, named or as
    /// a consequence of another removal.
    public static let reachNeeds: Set<String> = [
        "openssh-server", "openssh-sshd", "sudo", "python3", "python3-minimal", "libpython3-stdlib", "platform-python", "systemd", "apt", "dpkg",
        "dnf", "rpm", "steward",
    ]

    /// Field errors; empty when the rollout can be saved.
    public func problems(now: Int64) -> [String: String] {
        var errors: [String: String] = [:]
        if title.trimmingCharacters(in: .whitespaces).isEmpty || title.count > 200 {
            errors["title"] = "give the rollout a title of 1 to 200 characters"
        }
        switch what {
        case .packages, .install, .remove:
            if packages.isEmpty { errors["packages"] = "name at least one package" }
            if packages.count > 200 { errors["packages"] = "at most 200 packages" }
            if let problem = packages.lazy.compactMap(Self.packageProblem).first { errors["packages"] = problem }
            if what == .remove, errors["packages"] == nil {
                if let pinned = packages.first(where: { $0.contains("=") }) {
                    errors["packages"] = "\"\(pinned)\": a removal names packages without a version"
                } else if let needed = packages.first(where: Self.reachNeeds.contains) {
                    errors["packages"] =
                        "Steward reaches and changes hosts through \(needed); removing it would cut every target off. Remove it by hand on a host you mean to give up"
                }
            }
        case .playbook:
            if playbook.isEmpty { errors["playbook"] = "choose a playbook from the config repo" }
            if !playbookCommit.isEmpty, !(7...64).contains(playbookCommit.count) || !playbookCommit.allSatisfy(\.isHexDigit) {
                errors["playbook_commit"] = "a commit is 7 to 64 hex digits (empty for the newest)"
            }
        case .security, .all:
            if !packages.isEmpty { errors["packages"] = "packages are named only when what is packages, install or remove" }
        }
        if targets.isEmpty && tags.isEmpty { errors["targets"] = "choose hosts, groups or tags" }
        if !(0...1000).contains(canary) { errors["canary"] = "from 0 to 1000 hosts" }
        if waveKind == .percent, !(1...100).contains(waveSize) { errors["wave_size"] = "a percentage from 1 to 100" }
        if waveKind == .count, !(1...10_000).contains(waveSize) { errors["wave_size"] = "from 1 to 10000 hosts" }
        if !(0...86_400).contains(pauseSeconds) { errors["pause_seconds"] = "from 0 to 86400 seconds" }
        if !(0...100).contains(maxFailurePercent) { errors["max_failure_percent"] = "from 0 to 100 percent" }
        if !(0...10).contains(approvalsRequired) { errors["approvals_required"] = "from 0 to 10 approvers" }
        if !(0...86_400).contains(settleSeconds) { errors["settle_seconds"] = "from 0 to 86400 seconds" }
        if expiresAt <= now { errors["expires_hours"] = "the approval window must end in the future" }
        if !checkURL.isEmpty {
            let url = URL(string: checkURL)
            if url?.scheme.map({ ["http", "https"].contains($0) }) != true || url?.host == nil {
                errors["check_url"] = "an http:// or https:// URL, or empty for no HTTP check"
            }
        }
        return errors
    }

    /// The waves: the canary first, then batches by count or percentage of all hosts.
    public static func waves(hosts: [String], canary: Int, kind: WaveKind, size: Int) -> [[String]] {
        guard !hosts.isEmpty else { return [] }
        var waves: [[String]] = []
        var rest = hosts[...]
        if canary > 0 {
            waves.append(Array(rest.prefix(canary)))
            rest = rest.dropFirst(canary)
        }
        let batch = kind == .count ? size : max(1, Int((Double(hosts.count) * Double(size) / 100).rounded(.up)))
        while !rest.isEmpty {
            waves.append(Array(rest.prefix(batch)))
            rest = rest.dropFirst(batch)
        }
        return waves
    }
}

/// One host's line of the plan.
public struct RolloutPlanItem: Sendable, Equatable {
    public var host: String
    public var changes: [PendingUpdate]
    public var diff: String
    public var problem: String
}

/// One host's outcome in the rollout.
public struct RolloutResult: Sendable, Equatable {
    public struct Change: Sendable, Equatable, Codable {
        public var package: String
        public var from: String
        public var to: String
    }
    public var host: String
    public var wave: Int
    public var status: String
    public var changes: [Change]
    public var rebooted: Bool
    public var detail: String
}
