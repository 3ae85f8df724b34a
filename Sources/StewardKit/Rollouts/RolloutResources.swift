import Foundation

// The rollouts API's bodies as typed values: one input that the JSON body and the form both become, and the
// replies as Encodable types (the schemas in APISchemas+Areas.swift describe them).

extension Rollout.What: APIChoice {}
extension Rollout.WaveKind: APIChoice {}
extension Rollout.Reboot: APIChoice {}

/// A rollout's fields as a client sends them. Fields left out keep their value (a new rollout's defaults, or what an
/// edit started from); `apply` is the one place that copies them onto the rollout.
struct RolloutInput: APIInput {
    var title: Patch<String> = .absent
    var what: Patch<Rollout.What> = .absent
    var packages: Patch<[String]> = .absent
    var playbook: Patch<String> = .absent
    var commit: Patch<String> = .absent
    var targets: Patch<[String]> = .absent
    var tags: Patch<[String]> = .absent
    var canary: Patch<Int> = .absent
    var waveKind: Patch<Rollout.WaveKind> = .absent
    var waveSize: Patch<Int> = .absent
    var pauseSeconds: Patch<Int> = .absent
    var maxFailurePercent: Patch<Int> = .absent
    var reboot: Patch<Rollout.Reboot> = .absent
    var window: Patch<Int64> = .absent
    var approvalsRequired: Patch<Int> = .absent
    var expiresHours: Patch<Int> = .absent
    var checkUrl: Patch<String> = .absent
    var settleSeconds: Patch<Int> = .absent
    var slos: Patch<[String]> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case title, what, packages, playbook, commit, targets, tags, canary, reboot, window, slos
        case waveKind = "wave_kind"
        case waveSize = "wave_size"
        case pauseSeconds = "pause_seconds"
        case maxFailurePercent = "max_failure_percent"
        case approvalsRequired = "approvals_required"
        case expiresHours = "expires_hours"
        case checkUrl = "check_url"
        case settleSeconds = "settle_seconds"
    }

    init() {}

    /// The new/edit rollout form: lists are separated by lines, commas or spaces; an empty number field keeps its value;
    /// a number field that is not a whole number is a wrong field, named as the form shows it.
    init(form: FormBody) {
        func list(_ key: String) -> [String] { (form[key] ?? "").split(whereSeparator: { $0.isNewline || $0 == "," || $0 == " " }).map(String.init) }
        func choice<T: APIChoice>(_ key: String, _ fallback: T) -> Patch<T> {
            let text = form[key] ?? fallback.rawValue
            return T(rawValue: text).map(Patch.value) ?? .invalid(field: key, message: T.choiceText)
        }
        func number(_ key: CodingKeys) -> Patch<Int> {
            let text = (form[key.rawValue] ?? "").trimmingCharacters(in: .whitespaces)
            if text.isEmpty { return .absent }
            return Int(text).map(Patch.value) ?? .invalid(field: key.rawValue, message: "must be a whole number")
        }
        title = .value(form["title"] ?? "")
        what = choice("what", Rollout.What.security)
        packages = .value(list("packages"))
        playbook = .value(form["playbook"] ?? "")
        commit = .value(form["commit"] ?? "")
        targets = .value(list("targets"))
        tags = .value(list("tags"))
        waveKind = choice("wave_kind", Rollout.WaveKind.count)
        reboot = choice("reboot", Rollout.Reboot.never)
        checkUrl = .value(form["check_url"] ?? "")
        slos = .value((form["slos"] ?? "").split(whereSeparator: { $0.isNewline || $0 == "," }).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty })
        canary = number(.canary)
        waveSize = number(.waveSize)
        pauseSeconds = number(.pauseSeconds)
        maxFailurePercent = number(.maxFailurePercent)
        approvalsRequired = number(.approvalsRequired)
        expiresHours = number(.expiresHours)
        settleSeconds = number(.settleSeconds)
        // The window menu: a window's id, or empty for none (an edit may clear it).
        window = (form["window"]).flatMap(Int64.init).map(Patch.value) ?? .null
    }

    /// Copy what was sent onto the rollout; returns each wrong field with what it must be. The rollout's own rules
    /// (Rollout.validate) run when it is saved.
    func apply(to rollout: inout Rollout, now: Date = Date()) -> [String: String] {
        var errors = APIInputDecoding.wrongFields(self)
        title.assign(CodingKeys.title.rawValue, &errors) { rollout.title = $0.trimmingCharacters(in: .whitespaces) }
        what.assign(CodingKeys.what.rawValue, &errors) { rollout.what = $0 }
        packages.assign(CodingKeys.packages.rawValue, &errors) { rollout.packages = $0 }
        playbook.assign(CodingKeys.playbook.rawValue, &errors) { rollout.playbook = $0 }
        commit.assign(CodingKeys.commit.rawValue, &errors) { rollout.playbookCommit = $0 }
        targets.assign(CodingKeys.targets.rawValue, &errors) { rollout.targets = $0 }
        tags.assign(CodingKeys.tags.rawValue, &errors) { rollout.tags = $0 }
        canary.assign(CodingKeys.canary.rawValue, &errors) { rollout.canary = $0 }
        waveKind.assign(CodingKeys.waveKind.rawValue, &errors) { rollout.waveKind = $0 }
        waveSize.assign(CodingKeys.waveSize.rawValue, &errors) { rollout.waveSize = $0 }
        pauseSeconds.assign(CodingKeys.pauseSeconds.rawValue, &errors) { rollout.pauseSeconds = $0 }
        maxFailurePercent.assign(CodingKeys.maxFailurePercent.rawValue, &errors) { rollout.maxFailurePercent = $0 }
        reboot.assign(CodingKeys.reboot.rawValue, &errors) { rollout.reboot = $0 }
        if let window = window.orNil { rollout.windowID = window }
        approvalsRequired.assign(CodingKeys.approvalsRequired.rawValue, &errors) { rollout.approvalsRequired = $0 }
        var expiresHours: Int?
        self.expiresHours.assign(CodingKeys.expiresHours.rawValue, &errors) { expiresHours = $0 }
        if let hours = expiresHours {
            if (1...24 * 30).contains(hours) {
                rollout.expiresAt = EpochMilliseconds.from(now) + Int64(hours) * 3_600_000
            } else {
                errors[CodingKeys.expiresHours.rawValue] = "from 1 to 720 hours"
            }
        }
        checkUrl.assign(CodingKeys.checkUrl.rawValue, &errors) { rollout.checkURL = $0 }
        settleSeconds.assign(CodingKeys.settleSeconds.rawValue, &errors) { rollout.settleSeconds = $0 }
        slos.assign(CodingKeys.slos.rawValue, &errors) { rollout.slos = $0 }
        return errors
    }
}

/// The body of an approval or a denial: a reason (required to deny, which the service checks).
struct RolloutDecisionInput: APIInput {
    var reason: Patch<String> = .absent
    /// Approve as a security or urgent change: waves start even while an SLO's error budget is spent.
    var urgent: Patch<Bool> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable { case reason, urgent }
}

/// A rollout in a list.
struct RolloutSummaryResource: Codable, Sendable {
    let id: Int64
    let title, what, state, stateDetail, requestedBy: String
    let revision: Int
    let createdAt, expiresAt: String
    let currentWave: Int
    let link: String

    init(_ rollout: Rollout) {
        id = rollout.id
        title = rollout.title
        what = rollout.what.rawValue
        state = rollout.state.rawValue
        stateDetail = rollout.stateDetail
        requestedBy = rollout.requestedBy
        revision = rollout.revision
        createdAt = RFC3339.string(milliseconds: rollout.createdAt) ?? ""
        expiresAt = RFC3339.string(milliseconds: rollout.expiresAt) ?? ""
        currentWave = rollout.currentWave
        link = "/rollouts/\(rollout.id)"
    }
}

/// A rollout with its plan, approvals, waves and per-host results: the summary's fields and these, in one object.
struct RolloutResource: Codable, Sendable {
    struct PlanItem: Codable, Sendable {
        let host, diff, problem: String
        let packages: [PendingUpdate]
    }
    struct ApprovalItem: Codable, Sendable {
        let revision: Int
        let actor, decision, reason, at: String
        let urgent: Bool
    }
    /// An SLO's error budget (percent left) when a wave started and when it ended, and what it burned.
    struct WaveBudget: Codable, Sendable {
        let before: Double
        let after, burned: Nullable<Double>
    }
    struct WaveItem: Codable, Sendable {
        let number: Int
        let hosts: [String]
        let jobId: Nullable<Int64>
        let state, gate: String
        let startedAt, finishedAt: Nullable<String>
        let budget: [String: WaveBudget]
    }
    struct ResultItem: Codable, Sendable {
        let host: String
        let wave: Int
        let status: String
        let rebooted: Bool
        let detail: String
        let packages: [RolloutResult.Change]
    }

    /// What a rollout shows beyond its summary, written into the same object.
    struct Details: Codable, Sendable {
        let packages: [String]
        let playbook, commit: String
        let targets, tags: [String]
        let canary: Int
        let waveKind: String
        let waveSize, pauseSeconds, maxFailurePercent: Int
        let reboot: String
        let window: Nullable<Int64>
        let approvalsRequired: Int
        let checkUrl: String
        let settleSeconds: Int
        let slos: [String]
        let planJobId: Nullable<Int64>
        let plannedAt: Nullable<String>
        let planStale: Bool
        let rollbackOf: Nullable<Int64>
        let finishedAt: Nullable<String>
        let plan: [PlanItem]
        let approvals: [ApprovalItem]
        let waves: [WaveItem]
        let results: [ResultItem]
    }

    let summary: RolloutSummaryResource
    let details: Details

    init(_ rollout: Rollout, service: RolloutService) throws {
        summary = RolloutSummaryResource(rollout)
        let plan = try service.plan(rollout.id).map { PlanItem(host: $0.host, diff: $0.diff, problem: $0.problem, packages: $0.changes) }
        let approvals = try service.approvals(rollout.id).map {
            ApprovalItem(
                revision: $0.revision, actor: $0.actor, decision: $0.decision, reason: $0.reason, at: RFC3339.string(milliseconds: $0.at) ?? "",
                urgent: $0.urgent)
        }
        let waves = try service.waves(rollout.id).map {
            WaveItem(
                number: $0.number, hosts: $0.hosts, jobId: Nullable($0.jobID), state: $0.state, gate: $0.gate,
                startedAt: Nullable(RFC3339.string(milliseconds: $0.startedAt)), finishedAt: Nullable(RFC3339.string(milliseconds: $0.finishedAt)),
                budget: $0.budgets)
        }
        let results = try service.results(rollout.id).map {
            ResultItem(host: $0.host, wave: $0.wave, status: $0.status, rebooted: $0.rebooted, detail: $0.detail, packages: $0.changes)
        }
        details = Details(
            packages: rollout.packages, playbook: rollout.playbook, commit: rollout.playbookCommit, targets: rollout.targets, tags: rollout.tags,
            canary: rollout.canary, waveKind: rollout.waveKind.rawValue, waveSize: rollout.waveSize, pauseSeconds: rollout.pauseSeconds,
            maxFailurePercent: rollout.maxFailurePercent, reboot: rollout.reboot.rawValue, window: Nullable(rollout.windowID),
            approvalsRequired: rollout.approvalsRequired, checkUrl: rollout.checkURL, settleSeconds: rollout.settleSeconds,
            slos: rollout.slos, planJobId: Nullable(rollout.planJobID), plannedAt: Nullable(RFC3339.string(milliseconds: rollout.plannedAt)),
            planStale: try service.planIsStale(rollout), rollbackOf: Nullable(rollout.rollbackOf),
            finishedAt: Nullable(RFC3339.string(milliseconds: rollout.finishedAt)), plan: plan, approvals: approvals, waves: waves, results: results)
    }

    init(from decoder: any Decoder) throws {
        summary = try RolloutSummaryResource(from: decoder)
        details = try Details(from: decoder)
    }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        try details.encode(to: encoder)
    }
}

/// A rollout just proposed, with the check-mode job that plans it.
struct RolloutCreatedResource: Codable, Sendable {
    let rollout: RolloutResource
    let planJob: JobResource

    enum CodingKeys: String, CodingKey { case planJob = "plan_job" }

    init(rollout: RolloutResource, planJob: JobResource) {
        self.rollout = rollout
        self.planJob = planJob
    }

    init(from decoder: any Decoder) throws {
        rollout = try RolloutResource(from: decoder)
        planJob = try decoder.container(keyedBy: CodingKeys.self).decode(JobResource.self, forKey: .planJob)
    }

    func encode(to encoder: any Encoder) throws {
        try rollout.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(planJob, forKey: .planJob)
    }
}
