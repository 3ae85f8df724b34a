import Foundation
import HTTPTypes

/// A systemd unit as it should be on the hosts of some groups, kept in the config repo as services/NAME.yml:
///
///     unit: nginx.service
///     state: started        # or stopped
///     enabled: true
///     apply_to: [web]
struct DesiredService: Sendable, Equatable {
    static let directory = "services/"

    var unit: String
    /// started or stopped.
    var state: String
    var enabled: Bool
    var applyTo: [String]

    /// The file name: the unit's name without its type when that is .service (nginx.service -> services/nginx.yml).
    var name: String { unit.hasSuffix(".service") ? String(unit.dropLast(".service".count)) : unit }
    var path: String { Self.directory + name + ".yml" }

    var yaml: String {
        "# Desired state of the systemd unit \(unit), kept by Steward.\nunit: \(unit)\nstate: \(state)\nenabled: \(enabled)\n"
            + "apply_to: [" + applyTo.joined(separator: ", ") + "]\n"
    }

    static func isDefinition(_ path: String) -> Bool {
        path.hasPrefix(directory) && path.hasSuffix(".yml") && !path.dropFirst(directory.count).contains("/")
    }

    /// Field errors: the unit's name, the state, and the groups.
    func problems() -> [String: String] {
        var errors: [String: String] = [:]
        if !UnitGuard.isUnitName(unit) { errors["unit"] = "a systemd unit name, such as nginx.service" }
        if !["started", "stopped"].contains(state) { errors["state"] = "started or stopped" }
        if applyTo.isEmpty || applyTo.contains(where: { HostValidation.groupName($0) != nil && HostValidation.name($0) != nil }) {
            errors["apply_to"] = "list the host groups (or hosts) the unit is kept on, like [web]"
        }
        return errors
    }

    static func parse(_ text: String) throws(AccountError) -> DesiredService {
        let object = try DesiredUser.mapping(text)
        let enabled: Bool
        switch object["enabled"] {
        case let flag as Bool: enabled = flag
        case let word as String: enabled = ["true", "yes"].contains(word.lowercased())
        default: enabled = true
        }
        let service = DesiredService(
            unit: object["unit"] as? String ?? "", state: object["state"] as? String ?? "started", enabled: enabled,
            applyTo: (object["apply_to"] as? [Any])?.compactMap { "\($0)" } ?? [])
        let errors = service.problems()
        guard errors.isEmpty else { throw AccountError(errors: errors) }
        return service
    }

    static func from(fields: (String) -> String?) -> DesiredService {
        DesiredService(
            unit: (fields("unit") ?? "").trimmingCharacters(in: .whitespaces), state: fields("state") ?? "started",
            enabled: ["true", "on", "yes"].contains(fields("enabled") ?? "true"), applyTo: HostSettings.list(fields("apply_to") ?? ""))
    }

    /// How a host's newest services reading differs from the definition, in words; empty when it matches.
    func drift(in reading: HostReading<ServiceListing>?) -> [String] {
        guard let reading, reading.body.itemCount > 0 else { return ["services not read yet"] }
        guard let found = reading.body.units.first(where: { $0.unit == unit }) else { return ["\(unit) is not on the host"] }
        var differences: [String] = []
        let running = ["active", "reloading", "activating"].contains(found.active)
        if state == "started" && !running { differences.append("\(found.active), should be started") }
        if state == "stopped" && running { differences.append("\(found.active), should be stopped") }
        let isEnabled = ["enabled", "enabled-runtime", "alias"].contains(found.enabled)
        if enabled != isEnabled && !["static", "generated", "indirect", "transient"].contains(found.enabled) {
            differences.append("\(found.enabled.isEmpty ? "no unit file" : found.enabled), should be \(enabled ? "enabled" : "disabled")")
        }
        return differences
    }

    /// service.yml's input: the unit, its state and whether it starts at boot, in one module call.
    var variables: [String: JSONValue] {
        ["steward_service": ["name": .string(unit), "state": .string(state), "enabled": .bool(enabled)]]
    }
}

/// Making the drifting hosts match a definition, as queued (the `service.converge` job).
struct ServiceConvergence: Codable, Sendable, Equatable {
    var path: String
    var unit: String
    var state: String
    var enabled: Bool
    var hostIds: [Int64]

    static let kind = "service.converge"

    var desired: DesiredService { DesiredService(unit: unit, state: state, enabled: enabled, applyTo: []) }
    var moduleCall: String { "ansible.builtin.systemd_service: name=\(unit) state=\(state) enabled=\(enabled)" }
}

extension Engine {
    /// The `service.converge` job: Steward's service playbook on the drifting hosts, then their services read again and
    /// what still drifts said per host.
    func serviceConvergeHandler(hosts: HostStore, services: ServiceReading) -> JobHandler {
        { context in
            let convergence = try JSONDecoder().decode(ServiceConvergence.self, from: Data(context.job.params.utf8))
            let targets = try convergence.hostIds.compactMap { try hosts.host(id: $0) }.filter(\.enabled)
            guard !targets.isEmpty else { throw JobFailure("none of the hosts is there and enabled any more") }
            await context.log("converge \(convergence.path): \(convergence.moduleCall)")
            var run = PlaybookRun(playbook: BuiltinPlaybooks.service, targets: targets.map(\.name))
            run.builtin = BuiltinPlaybooks.service
            run.timeoutSeconds = 1800
            run.variables = String(decoding: try JSONEncoder().encode(convergence.desired.variables), as: UTF8.self)
            let failure = await Self.attempt { try await execute(run, context) }
            for host in targets {
                do {
                    let reading = try await services.refresh(host)
                    let drift = convergence.desired.drift(in: reading)
                    await context.log("\(host.name): " + (drift.isEmpty ? "matches \(convergence.path)" : drift.joined(separator: "; ")))
                } catch {
                    await context.log("\(host.name): reading its services again failed: \(error)")
                }
            }
            if let failure { throw failure }
        }
    }
}
