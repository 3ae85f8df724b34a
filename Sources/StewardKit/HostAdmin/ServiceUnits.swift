import Foundation

/// One systemd unit as a host reported it: `systemctl list-units --all` for the loaded ones, and
/// `systemctl list-unit-files` for whether it is enabled (and for installed units that are not loaded, other than
/// aliases, such as a disabled service that has not run since boot). `unit` is the full name (`ssh.service`, `getty@tty1.service`);
/// `load` is loaded, not-found, masked, ... (empty for a unit file that is not loaded); `active` is active, inactive,
/// failed, activating, deactivating or reloading; `sub` is the type's own state (running, exited, dead, listening,
/// waiting, mounted, ...); `enabled` is enabled, disabled, static, masked, indirect, generated, alias, ... (empty when
/// the unit has no unit file).
struct ServiceUnit: Codable, Sendable, Equatable {
    var unit, load, active, sub, description, enabled: String
    /// A timer's next and last elapse (`systemctl list-timers`), when it has them.
    var nextRun: Date?
    var lastRun: Date?

    /// The part after the last dot: service, socket, timer, mount, target, ...
    var type: String { unit.split(separator: ".").last.map(String.init) ?? "" }
}

/// A host's services reading: what `systemctl` printed, parsed.
struct ServiceListing: HostReadingBody, Equatable {
    var units: [ServiceUnit]
    var itemCount: Int { units.count }

    static let kind = "services"
    /// The two commands, as argv words (with a fixed locale, so states are the English words the parser knows).
    static let listUnits = ["env", "LC_ALL=C", "systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager", "--full"]
    static let listUnitFiles = ["env", "LC_ALL=C", "systemctl", "list-unit-files", "--no-legend", "--no-pager", "--full"]
    static let listTimers = ["env", "LC_ALL=C", "systemctl", "list-timers", "--all", "--output=json", "--no-pager"]

    /// `list-timers --output=json`: one object per timer with `unit`, and `next` and `last` in microseconds since the
    /// epoch (0 or null when there is none). Returns unit -> (next, last); text that is not that shape gives nothing.
    static func parseTimers(_ text: String) -> [String: (next: Date?, last: Date?)] {
        struct Entry: Decodable {
            let unit: String
            let next: Double?
            let last: Double?
        }
        guard let entries = try? JSONDecoder().decode([Entry].self, from: Data(text.utf8)) else { return [:] }
        func date(_ micros: Double?) -> Date? { micros.flatMap { $0 > 0 ? Date(timeIntervalSince1970: $0 / 1_000_000) : nil } }
        var result: [String: (next: Date?, last: Date?)] = [:]
        for entry in entries { result[entry.unit] = (date(entry.next), date(entry.last)) }
        return result
    }

    /// Each timer's next and last run on its unit.
    mutating func attach(timers: [String: (next: Date?, last: Date?)]) {
        for index in units.indices {
            guard let runs = timers[units[index].unit] else { continue }
            units[index].nextRun = runs.next
            units[index].lastRun = runs.last
        }
    }

    /// `list-units --plain --no-legend` lines: UNIT LOAD ACTIVE SUB DESCRIPTION (the description may hold spaces).
    /// A leading status mark (● or *) that some versions print is skipped; a line with fewer than four columns is not
    /// a unit and is left out.
    static func parseUnits(_ text: String) -> [ServiceUnit] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            var rest = Substring(line).drop(while: \.isWhitespace)
            if rest.hasPrefix("●") || rest.hasPrefix("*") { rest = rest.dropFirst().drop(while: \.isWhitespace) }
            var columns: [String] = []
            while columns.count < 4, !rest.isEmpty {
                let word = rest.prefix(while: { !$0.isWhitespace })
                columns.append(String(word))
                rest = rest.dropFirst(word.count).drop(while: \.isWhitespace)
            }
            // A name outside systemd's alphabet never came from systemd: left out, so none reaches a page or a job.
            guard columns.count == 4, UnitGuard.isUnitName(columns[0]) else { return nil }
            return ServiceUnit(
                unit: columns[0], load: HostText.clean(columns[1], maxBytes: 32), active: HostText.clean(columns[2], maxBytes: 32),
                sub: HostText.clean(columns[3], maxBytes: 32), description: HostText.clean(rest.trimmingCharacters(in: .whitespaces), maxBytes: 500),
                enabled: "")
        }
    }

    /// `list-unit-files --no-legend` lines: UNIT-FILE STATE [PRESET]. Returns unit file -> state.
    static func parseUnitFiles(_ text: String) -> [String: String] {
        var states: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let columns = line.split(whereSeparator: \.isWhitespace)
            guard columns.count >= 2, UnitGuard.isUnitName(String(columns[0])) else { continue }
            states[String(columns[0])] = HostText.clean(String(columns[1]), maxBytes: 32)
        }
        return states
    }

    /// Loaded units with their enabled state (an instance `getty@tty1.service` takes its template's,
    /// `getty@.service`), plus unit files that are not loaded, as inactive. Sorted by name.
    static func merge(units: [ServiceUnit], files: [String: String]) -> ServiceListing {
        var byName: [String: ServiceUnit] = [:]
        for var unit in units {
            unit.enabled = files[unit.unit] ?? files[templateName(unit.unit)] ?? ""
            byName[unit.unit] = unit
        }
        // An alias (Debian's sshd.service for ssh.service, the dbus-org.* names) is another name of a unit listed already.
        for (file, state) in files where byName[file] == nil && !file.contains("@.") && state != "alias" {
            byName[file] = ServiceUnit(unit: file, load: "", active: "inactive", sub: "dead", description: "", enabled: state)
        }
        return ServiceListing(units: byName.values.sorted { $0.unit < $1.unit })
    }

    /// `getty@tty1.service` -> `getty@.service`; other names unchanged.
    static func templateName(_ unit: String) -> String {
        guard let at = unit.firstIndex(of: "@"), let dot = unit.lastIndex(of: "."), at < dot else { return unit }
        return String(unit[...at]) + String(unit[dot...])
    }
}

/// Which units a view shows.
struct ServiceFilter: Sendable {
    enum State: String, CaseIterable, Sendable {
        case all, active, inactive, failed
    }
    var state: State = .all
    /// A unit type (service, socket, timer, ...), or "all".
    var type = "service"
    /// Part of the name or description, any case.
    var text = ""

    func matches(_ unit: ServiceUnit) -> Bool {
        switch state {
        case .all: break
        case .active: guard unit.active == "active" || unit.active == "reloading" || unit.active == "activating" else { return false }
        case .inactive: guard unit.active == "inactive" else { return false }
        case .failed: guard unit.active == "failed" else { return false }
        }
        if type != "all" && unit.type != type { return false }
        if !text.isEmpty && !unit.unit.localizedCaseInsensitiveContains(text) && !unit.description.localizedCaseInsensitiveContains(text) {
            return false
        }
        return true
    }
}

/// Reads a host's services now and keeps the reading.
struct ServiceReading: Sendable {
    let reader: HostReader
    let store: HostReadingStore
    var gate = ReadingGate()

    /// The three commands, then one stored reading (see `HostReadings.refresh`: failures keep the last good units).
    @discardableResult
    func refresh(_ host: Host, by who: AuditActor? = nil, now: Date = Date()) async throws -> HostReading<ServiceListing> {
        try await HostReadings(reader: reader, store: store, gate: gate).refresh(host, by: who, now: now) { try await read($0, now: now) }
    }

    private func read(_ host: Host, now: Date) async throws -> HostReading<ServiceListing> {
        let units = try await reader.run(host, ServiceListing.listUnits)
        var listing = ServiceListing(units: [])
        var error: String?
        if units.status == 0 {
            let files = try await reader.run(host, ServiceListing.listUnitFiles)
            listing = ServiceListing.merge(
                units: ServiceListing.parseUnits(units.stdout), files: files.status == 0 ? ServiceListing.parseUnitFiles(files.stdout) : [:])
            if files.status != 0 { error = "enabled states unknown: " + Self.reason(files) }
            // Older systemd has no JSON output for timers: their runs are then left out, and nothing else.
            let timers = try await reader.run(host, ServiceListing.listTimers)
            if timers.status == 0 { listing.attach(timers: ServiceListing.parseTimers(timers.stdout)) }
            if units.truncated || files.truncated || timers.truncated {
                error = "systemctl printed more than \(HostReader.maxOutputBytes >> 20) MB; the rest was left out"
            }
        } else {
            error = Self.reason(units)
        }
        return HostReading(hostID: host.id, readAt: now, body: listing, error: error)
    }

    static func reason(_ output: ShortCommand.Output) -> String { HostText.reason(output, command: "systemctl") }
}
