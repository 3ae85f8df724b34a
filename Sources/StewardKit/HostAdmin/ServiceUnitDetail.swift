import Foundation
import HTTPTypes

/// One unit in detail, as `systemctl status` would show it: its properties from `systemctl show` and its newest
/// journal lines, read from the host when the unit's page opens.
struct UnitDetail: Sendable {
    /// The properties the unit page shows, in this order, with their labels.
    static let properties: [(key: String, label: String)] = [
        ("Description", "Description"), ("LoadState", "Loaded"), ("FragmentPath", "Unit file"), ("UnitFileState", "Enabled"),
        ("UnitFilePreset", "Vendor preset"), ("ActiveState", "Active"), ("SubState", "Sub-state"), ("Result", "Last result"),
        ("ActiveEnterTimestamp", "Active since"), ("StateChangeTimestamp", "State changed"), ("MainPID", "Main PID"),
        ("ExecMainStartTimestamp", "Main process started"), ("NRestarts", "Restarts"), ("TasksCurrent", "Tasks"),
        ("MemoryCurrent", "Memory (bytes)"), ("CPUUsageNSec", "CPU time (ns)"), ("Names", "Names"), ("Documentation", "Documentation"),
        ("Requires", "Requires"), ("Wants", "Wants"), ("WantedBy", "Wanted by"), ("After", "After"), ("TriggeredBy", "Triggered by"),
        ("Triggers", "Triggers"), ("NextElapseUSecRealtime", "Next run"), ("LastTriggerUSec", "Last run"), ("CanStart", "Can start"),
        ("CanStop", "Can stop"), ("CanReload", "Can reload"),
    ]
    static let journalLines = 50

    var unit: String
    /// Property -> value, for the properties the host knows (empty values and systemd's "[not set]" left out).
    var values: [String: String]
    var journal: [String]
    /// Why the journal could not be read, in the host's words.
    var journalError: String?
    var readAt: Date

    /// `systemctl show` prints KEY=VALUE lines; a value may itself hold "=".
    static func parseShow(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals])
            let value = HostText.clean(String(line[line.index(after: equals)...]), maxBytes: 2000)
            guard !value.isEmpty, value != "[not set]", !key.isEmpty else { continue }
            values[key] = value
        }
        return values
    }

    static func showCommand(_ unit: String) -> [String] {
        ["env", "LC_ALL=C", "systemctl", "show", "--no-pager", "--property=" + properties.map(\.key).joined(separator: ","), "--", unit]
    }

    /// The journal needs root or the systemd-journal group: over SSH as another user it goes through `sudo -n`, as
    /// the engine's jobs do.
    static func journalCommand(_ unit: String, on host: Host) -> [String] {
        let words = ["env", "LC_ALL=C", "journalctl", "--unit=" + unit, "--lines=\(journalLines)", "--no-pager", "--output=short-iso", "--quiet"]
        return host.transport == .ssh && host.sshUser != "root" ? ["sudo", "-n"] + words : words
    }

    static func read(_ unit: String, on host: Host, with reader: HostReader, now: Date = Date()) async throws -> UnitDetail {
        let show = try await reader.run(host, showCommand(unit), maxBytes: 256 << 10)
        guard show.status == 0 else {
            throw Problem(status: .badGateway, detail: "\(host.name) could not show \(unit): " + ServiceReading.reason(show))
        }
        let journal = try await reader.run(host, journalCommand(unit, on: host), maxBytes: 256 << 10)
        let lines = journal.stdout.split(whereSeparator: \.isNewline).suffix(journalLines).map { HostText.clean(String($0), maxBytes: 2000) }
        return UnitDetail(
            unit: unit, values: parseShow(show.stdout), journal: lines, journalError: journal.status == 0 ? nil : ServiceReading.reason(journal),
            readAt: now)
    }
}
