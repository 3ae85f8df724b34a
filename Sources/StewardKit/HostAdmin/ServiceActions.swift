import Foundation
import HTTPTypes

/// What can be done to a unit, and the `ansible.builtin.systemd_service` arguments that do it.
enum UnitAction: String, CaseIterable, Codable, Sendable {
    case start, stop, restart, reload, enable, disable, mask, unmask

    var moduleArguments: [String: JSONValue] {
        switch self {
        case .start: ["state": "started"]
        case .stop: ["state": "stopped"]
        case .restart: ["state": "restarted"]
        case .reload: ["state": "reloaded"]
        case .enable: ["enabled": true]
        case .disable: ["enabled": false]
        case .mask: ["masked": true]
        case .unmask: ["masked": false]
        }
    }

    var title: String { rawValue.prefix(1).uppercased() + rawValue.dropFirst() }
}

/// A change to one unit on one host, as queued (the `service.change` job's params).
struct ServiceChange: HostJobChange, Equatable {
    var hostId: Int64
    var host: String
    var unit: String
    var action: UnitAction

    static let kind = "service.change"
    static let module = "ansible.builtin.systemd_service"

    /// The module call in the words an administrator would write in a task, for the job title's detail and the audit.
    var moduleCall: String {
        let arguments = action.moduleArguments.sorted { $0.key < $1.key }.map { key, value in
            switch value {
            case .bool(let flag): "\(key)=\(flag)"
            case .string(let text): "\(key)=\(text)"
            default: key
            }
        }
        return "\(Self.module): name=\(unit) " + arguments.joined(separator: " ")
    }

    var variables: [String: JSONValue] {
        var service = action.moduleArguments
        service["name"] = .string(unit)
        return ["steward_service": .object(service)]
    }
}

/// Which units need more than an operator, and which changes need the unit's name typed to confirm them.
enum UnitGuard {
    /// The SSH daemon's names: without it the host cannot be reached again.
    static let sshUnits: Set<String> = ["ssh.service", "sshd.service", "ssh.socket", "sshd.socket"]

    static func isSteward(_ unit: String) -> Bool { unit.hasPrefix("steward") }

    /// Services that open a root shell without a login or stop the host serving.
    static let powerful: Set<String> = [
        "debug-shell.service", "rescue.service", "emergency.service", "systemd-networkd.service", "NetworkManager.service", "networking.service",
        "systemd-logind.service", "dbus.service", "dbus-broker.service",
    ]

    /// Why a unit is an admin's to change, or nil for a regular unit: sshd anywhere, Steward's own units anywhere, units
    /// that open a root shell or cut the host off (debug-shell, rescue, networking, logind, dbus), units that are not a
    /// service, socket or timer (targets, mounts, devices), and every unit of the panel host (Steward runs there: an
    /// operator's restart of the wrong unit is an outage).
    static func adminReason(_ unit: String, on host: Host) -> String? {
        if sshUnits.contains(unit) { return "\(unit) is how Steward reaches \(host.name)" }
        if powerful.contains(unit) { return "\(unit) gives a root shell or takes the host out of service" }
        let type = unit.split(separator: ".").last.map(String.init) ?? ""
        if !["service", "socket", "timer"].contains(type) { return "a .\(type) unit changes the host itself (mounts, targets, devices, slices)" }
        if isSteward(unit) { return "\(unit) is one of Steward's own units" }
        if host.transport == .local { return "\(host.name) is the panel host, where Steward itself runs" }
        return nil
    }

    /// Stopping, disabling or masking sshd cuts the host off; stopping, restarting, disabling or masking Steward on the
    /// panel host takes the panel down with the job that asked.
    static func needsConfirmation(_ action: UnitAction, _ unit: String, on host: Host) -> Bool {
        if sshUnits.contains(unit) { return [.stop, .disable, .mask].contains(action) }
        if isSteward(unit) && host.transport == .local { return [.stop, .restart, .disable, .mask].contains(action) }
        return false
    }

    /// systemd's unit-name alphabet (letters, digits, `:-_.\@`), 1 to 255 characters, with a type after the last
    /// dot. Names outside it never came from systemd, and none of them can carry template or shell syntax.
    static func isUnitName(_ name: String) -> Bool {
        guard (1...255).contains(name.utf8.count), let dot = name.lastIndex(of: "."), dot != name.startIndex,
            name[name.index(after: dot)...].count > 0
        else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || ":-_.\\@".unicodeScalars.contains($0)) }
    }
}

/// Checks a requested unit change against the host's newest reading and the asker's role, and builds its job.
struct ServiceChanges: Sendable {
    let store: HostReadingStore

    struct Request: Sendable {
        var unit: String
        var action: String
        var confirm: String?
    }

    /// Problems name the field: `unit` not on the host as of its newest reading, `action` not one of the eight,
    /// `confirm` missing or not the unit's name. A regular operator asking for a guarded unit is a 403.
    func prepare(_ input: Request, on host: Host, by who: AuditActor, isAdmin: Bool) throws -> JobRequest {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to change its services") }
        var errors: [String: String] = [:]
        let action = UnitAction(rawValue: input.action)
        if action == nil { errors["action"] = "must be one of " + UnitAction.allCases.map(\.rawValue).joined(separator: ", ") }
        let reading = try store.latest(ServiceListing.self, kind: ServiceListing.kind, hostID: host.id)
        if !UnitGuard.isUnitName(input.unit) {
            errors["unit"] = "is not a systemd unit name (letters, digits and :-_.\\@, with a type such as .service)"
        } else if let reading, !reading.body.units.isEmpty {
            if !reading.body.units.contains(where: { $0.unit == input.unit }) {
                errors["unit"] = "\(input.unit) is not a unit on \(host.name) as of \(RFC3339.display(reading.readAt)); read its services again"
            }
        } else {
            errors["unit"] = "\(host.name)'s services have not been read; read them first, so the unit can be checked against what the host has"
        }
        guard errors.isEmpty, let action else { throw Problem.invalid(errors) }
        if let reason = UnitGuard.adminReason(input.unit, on: host), !isAdmin {
            throw Problem(status: .forbidden, detail: "Only an admin may \(action.rawValue) \(input.unit) on \(host.name): \(reason).")
        }
        if UnitGuard.needsConfirmation(action, input.unit, on: host), input.confirm != input.unit {
            throw Problem.invalid([
                "confirm": "type the unit's name, \(input.unit), to confirm that you mean to \(action.rawValue) it on \(host.name)"
            ])
        }
        let change = ServiceChange(hostId: host.id, host: host.name, unit: input.unit, action: action)
        var request = JobRequest(
            kind: ServiceChange.kind, title: "\(action.title) \(input.unit) on \(host.name)",
            params: String(decoding: try JSONEncoder().encode(change), as: UTF8.self), host: host.name, startedBy: who.actor,
            reason: change.moduleCall, source: who.source)
        request.audit = JobAudit(
            by: who, action: "service.\(action.rawValue)",
            after: [
                "host": .string(host.name), "unit": .string(input.unit), "module": .string(ServiceChange.module),
                "arguments": .object(change.variables["steward_service"].flatMap { if case .object(let o) = $0 { o } else { nil } } ?? [:]),
            ])
        return request
    }
}

extension Engine {
    /// The `service.change` job: Steward's service playbook on the one host, then the host's services read again.
    func serviceChangeHandler(hosts: HostStore, services: ServiceReading) -> JobHandler {
        hostChangeHandler(ServiceChange.self, hosts: hosts, playbook: BuiltinPlaybooks.service, timeoutSeconds: 600) { host, change, _ in
            let reading = try await services.refresh(host)
            guard let unit = reading.body.units.first(where: { $0.unit == change.unit }) else {
                return "\(change.unit) is not in \(host.name)'s services now" + (reading.error.map { ": \($0)" } ?? "")
            }
            return "\(change.unit) on \(host.name) is now \(unit.active) (\(unit.sub)), \(unit.enabled.isEmpty ? "no unit file" : unit.enabled)"
        }
    }
}
