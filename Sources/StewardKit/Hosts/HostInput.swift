import Foundation

/// A host's fields as a client sends them, from a JSON body or the host form: both become this input, and `apply`
/// is the one place that normalises them (names, groups and tags lowercased, text trimmed), so the two paths
/// cannot disagree. Fields left out keep their value.
struct HostInput: APIInput {
    var name: Patch<String> = .absent
    var address: Patch<String> = .absent
    var transport: Patch<Host.Transport> = .absent
    var sshPort: Patch<Int> = .absent
    var sshUser: Patch<String> = .absent
    var become: Patch<Host.Become> = .absent
    var groups: Patch<[String]> = .absent
    var tags: Patch<[String]> = .absent
    var variables: Patch<String> = .absent
    var metricsUrl: Patch<String> = .absent
    var metricsAllow: Patch<[String]> = .absent
    var notes: Patch<String> = .absent
    var enabled: Patch<Bool> = .absent

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, address, transport, become, groups, tags, variables, notes, enabled
        case sshPort = "ssh_port"
        case sshUser = "ssh_user"
        case metricsUrl = "metrics_url"
        case metricsAllow = "metrics_allow"
    }

    init() {}

    /// The add/edit host form: every field is present; groups and tags are lists separated by commas or spaces, the
    /// metric allow list is one name per line (empty or the standard list: the default), the box is ticked or not.
    init(form: FormBody) {
        name = .value(form["name"] ?? "")
        address = .value(form["address"] ?? "")
        transport = .value(form["transport"] == "local" ? .local : .ssh)
        sshPort = .value(Int((form["ssh_port"] ?? "").trimmingCharacters(in: .whitespaces)) ?? 0)
        sshUser = .value(form["ssh_user"] ?? "")
        become = .value(form["become"] == "sudo" ? .sudo : .none)
        groups = .value(HostSettings.list(form["groups"] ?? ""))
        tags = .value(HostSettings.list(form["tags"] ?? ""))
        variables = .value(form["variables"] ?? "")
        metricsUrl = .value(form["metrics_url"] ?? "")
        let allow = (form["metrics_allow"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        metricsAllow =
            allow.isEmpty || MetricAllowList(text: allow) == .standard
            ? .null : .value(allow.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) })
        notes = .value(form["notes"] ?? "")
        enabled = .value(form["enabled"] == "on" || form["enabled"] == "1")
    }

    /// Copy what was sent onto the settings; wrong types are reported per field.
    func apply(to settings: inout HostSettings) throws {
        var errors = APIInputDecoding.wrongFields(self)
        func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespaces) }
        name.assign(CodingKeys.name.rawValue, &errors) { settings.name = trimmed($0).lowercased() }
        address.assign(CodingKeys.address.rawValue, &errors) { settings.address = trimmed($0) }
        transport.assign(CodingKeys.transport.rawValue, &errors) { settings.transport = $0 }
        sshPort.assign(CodingKeys.sshPort.rawValue, &errors) { settings.sshPort = $0 }
        sshUser.assign(CodingKeys.sshUser.rawValue, &errors) { settings.sshUser = trimmed($0) }
        become.assign(CodingKeys.become.rawValue, &errors) { settings.become = $0 }
        groups.assign(CodingKeys.groups.rawValue, &errors) { settings.groups = $0.map { trimmed($0).lowercased() } }
        tags.assign(CodingKeys.tags.rawValue, &errors) { settings.tags = $0.map { trimmed($0).lowercased() } }
        variables.assign(CodingKeys.variables.rawValue, &errors) { settings.variables = $0 }
        if let url = metricsUrl.orNil { settings.metricsURL = url.map(trimmed)?.nilIfEmpty }
        if let allow = metricsAllow.orNil { settings.metricsAllow = allow.flatMap { $0.isEmpty ? nil : $0.joined(separator: "\n") } }
        notes.assign(CodingKeys.notes.rawValue, &errors) { settings.notes = $0 }
        enabled.assign(CodingKeys.enabled.rawValue, &errors) { settings.enabled = $0 }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }
}

extension Host.Transport: APIChoice {}
extension Host.Become: APIChoice {}

extension HostSettings {
    /// What is wrong with these settings for a new host (`replacing` nil) or for an existing one.
    func problems(replacing host: Host?) -> [String: String] {
        var errors = problems()
        if let host, host.transport == .local, transport != .local { errors["transport"] = "localhost always uses the local transport" }
        return errors
    }
}
