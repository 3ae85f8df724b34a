import Foundation
import HTTPTypes

/// One installed package.
struct InstalledPackage: Codable, Sendable, Equatable {
    var name, version, arch: String
    /// Held back from upgrades (apt-mark hold, dnf versionlock).
    var held: Bool
}

/// A host's installed packages, and which manager keeps them.
struct PackageListing: HostReadingBody, Equatable {
    enum Manager: String, Codable, Sendable {
        case apt, dnf
    }
    var manager: Manager
    var packages: [InstalledPackage]
    var itemCount: Int { packages.count }

    static let kind = "packages"

    /// The package manager a host uses, from its os-release (ID and ID_LIKE): the Debian family uses apt, the Red Hat
    /// family dnf.
    static func manager(osRelease text: String) -> Manager? {
        var words: [String] = []
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("ID=") || line.hasPrefix("ID_LIKE=") {
            let value = line.split(separator: "=", maxSplits: 1).last.map(String.init) ?? ""
            words += value.trimmingCharacters(in: CharacterSet(charactersIn: "\"'")).split(separator: " ").map(String.init)
        }
        if words.contains(where: { ["debian", "ubuntu"].contains($0) }) { return .apt }
        if words.contains(where: { ["fedora", "rhel", "centos", "rocky", "almalinux"].contains($0) }) { return .dnf }
        return nil
    }

    static let dpkgQuery = ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n"]
    static let aptHolds = ["apt-mark", "showhold"]
    static let rpmQuery = ["rpm", "-qa", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"]

    /// `dpkg-query` lines: name, version, architecture and status; only installed ones (status `i` or `h` first).
    static func parseDpkg(_ text: String, held: Set<String>) -> [InstalledPackage] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 4, isPackageName(fields[0]), fields[3].hasPrefix("ii") || fields[3].hasPrefix("hi") else { return nil }
            return InstalledPackage(
                name: fields[0], version: HostText.clean(fields[1], maxBytes: 128), arch: HostText.clean(fields[2], maxBytes: 32),
                held: held.contains(fields[0]) || fields[3].hasPrefix("h"))
        }.sorted { $0.name < $1.name }
    }

    /// `rpm -qa --qf` lines: name, version-release, architecture.
    static func parseRpm(_ text: String, held: Set<String>) -> [InstalledPackage] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: "\t").map(String.init)
            guard fields.count == 3, isPackageName(fields[0]) else { return nil }
            return InstalledPackage(
                name: fields[0], version: HostText.clean(fields[1], maxBytes: 128), arch: HostText.clean(fields[2], maxBytes: 32),
                held: held.contains(fields[0]))
        }.sorted { $0.name < $1.name }
    }

    /// Debian's and RPM's package-name alphabet: a letter or digit, then letters, digits and `.+_-`; at most 128.
    static func isPackageName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, (1...128).contains(name.utf8.count), CharacterSet.alphanumerics.contains(first) else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || ".+_-".unicodeScalars.contains($0)) }
    }

    /// A search of the host's repositories by name.
    static func searchCommand(_ term: String, manager: Manager) -> [String] {
        switch manager {
        case .apt: ["env", "LC_ALL=C", "apt-cache", "search", "--names-only", "--", term]
        case .dnf: ["env", "LC_ALL=C", "dnf", "-q", "repoquery", "--qf", "%{name} %{version}-%{release} %{summary}", "*\(term)*"]
        }
    }

    struct Found: Codable, Sendable, Equatable {
        var name, version, summary: String
    }

    /// `apt-cache search` lines are `name - summary`; the dnf query's are name, version and summary, space-separated.
    static func parseSearch(_ text: String, manager: Manager) -> [Found] {
        var seen = Set<String>()
        return text.split(whereSeparator: \.isNewline).compactMap { line -> Found? in
            let found: Found?
            switch manager {
            case .apt:
                guard let dash = line.range(of: " - ") else { return nil }
                found = Found(name: String(line[..<dash.lowerBound]), version: "", summary: String(line[dash.upperBound...]))
            case .dnf:
                let fields = line.split(separator: " ", maxSplits: 2).map(String.init)
                found = fields.count == 3 ? Found(name: fields[0], version: fields[1], summary: fields[2]) : nil
            }
            guard var result = found, isPackageName(result.name), seen.insert(result.name).inserted else { return nil }
            result.summary = HostText.clean(result.summary, maxBytes: 300)
            return result
        }
    }
}

/// Reads a host's installed packages now and keeps the reading.
struct PackageReading: Sendable {
    let readings: HostReadings

    func manager(of host: Host) async throws -> PackageListing.Manager? {
        let release = try await readings.reader.run(host, ["cat", "/etc/os-release"])
        return release.status == 0 ? PackageListing.manager(osRelease: release.stdout) : nil
    }

    @discardableResult
    func refresh(_ host: Host, by who: AuditActor? = nil, now: Date = Date()) async throws -> HostReading<PackageListing> {
        try await readings.refresh(host, by: who, now: now) { host in
            guard let manager = try await manager(of: host) else {
                return HostReading(
                    hostID: host.id, readAt: now, body: PackageListing(manager: .apt, packages: []),
                    error: "its /etc/os-release names neither the Debian nor the Red Hat family, so Steward does not know its package manager")
            }
            let reader = readings.reader
            let query = try await reader.run(host, manager == .apt ? PackageListing.dpkgQuery : PackageListing.rpmQuery, timeout: 30)
            let holds = try await reader.run(host, manager == .apt ? PackageListing.aptHolds : ["dnf", "-q", "versionlock", "list"])
            // A versionlock line is name-epoch:version...; the name is what comes before the version's dash.
            let held = Set(
                holds.status == 0
                    ? holds.stdout.split(whereSeparator: \.isNewline).map { line in
                        manager == .apt
                            ? String(line) : String(line.split(separator: ":").first?.split(separator: "-").dropLast().joined(separator: "-") ?? "")
                    } : [])
            let packages = manager == .apt ? PackageListing.parseDpkg(query.stdout, held: held) : PackageListing.parseRpm(query.stdout, held: held)
            let error = query.status == 0 ? nil : HostText.reason(query, command: manager == .apt ? "dpkg-query" : "rpm")
            return HostReading(hostID: host.id, readAt: now, body: PackageListing(manager: manager, packages: packages), error: error)
        }
    }

    /// The host's repositories searched now (at most 200 results).
    /// Through the reading gate, like every read: the same search on a host runs once at a time, and at most eight reads
    /// across the fleet.
    func search(_ term: String, on host: Host) async throws -> (manager: PackageListing.Manager, found: [PackageListing.Found]) {
        try await readings.gate.read(key: "\(host.id)/search/\(term)") { try await searchNow(term, on: host) }
    }

    private func searchNow(_ term: String, on host: Host) async throws -> (manager: PackageListing.Manager, found: [PackageListing.Found]) {
        guard let manager = try await manager(of: host) else { throw Problem(status: .conflict, detail: "\(host.name)'s package manager is unknown") }
        let output = try await readings.reader.run(host, PackageListing.searchCommand(term, manager: manager), timeout: 30, maxBytes: 2 << 20)
        guard output.status == 0 || manager == .dnf else {
            throw Problem(
                status: .badGateway, detail: "\(host.name) could not search its repositories: " + HostText.reason(output, command: "apt-cache"))
        }
        return (manager, Array(PackageListing.parseSearch(output.stdout, manager: manager).prefix(200)))
    }
}

/// A change to one package on one host, as queued (the `package.change` job's params).
struct PackageChange: HostJobChange, Equatable {
    enum Action: String, Codable, CaseIterable, Sendable {
        case install, remove, hold, unhold
    }
    var hostId: Int64
    var host: String
    var name: String
    var action: Action

    static let kind = "package.change"
    /// Packages Steward needs on a host to reach and manage it: removing one needs its name typed.
    static let needed: Set<String> = ["openssh-server", "sudo", "python3", "python3-minimal"]

    var moduleCall: String {
        switch action {
        case .install: "ansible.builtin.apt/dnf: name=\(name) state=present"
        case .remove: "ansible.builtin.apt/dnf: name=\(name) state=absent"
        case .hold: "ansible.builtin.dpkg_selections: name=\(name) selection=hold (dnf: versionlock add)"
        case .unhold: "ansible.builtin.dpkg_selections: name=\(name) selection=install (dnf: versionlock delete)"
        }
    }

    var variables: [String: JSONValue] {
        var package: [String: JSONValue] = ["name": .string(name)]
        switch action {
        case .install: package["state"] = "present"
        case .remove: package["state"] = "absent"
        case .hold: package["hold"] = true
        case .unhold: package["hold"] = false
        }
        return ["steward_package": .object(package)]
    }
}

/// Checks a package change against the host's reading (or, to install, its repositories), and builds its job.
struct PackageChanges: Sendable {
    let packages: PackageReading

    func prepare(name: String, action actionText: String, confirm: String?, on host: Host, by who: AuditActor) async throws -> JobRequest {
        guard host.enabled else { throw Problem(status: .conflict, detail: "\(host.name) is disabled; enable it to change its packages") }
        var errors: [String: String] = [:]
        let action = PackageChange.Action(rawValue: actionText)
        if action == nil { errors["action"] = "must be one of " + PackageChange.Action.allCases.map(\.rawValue).joined(separator: ", ") }
        if !PackageListing.isPackageName(name) {
            errors["name"] = "is not a package name (a letter or digit, then letters, digits and .+_-)"
        }
        guard errors.isEmpty, let action else { throw Problem.invalid(errors) }
        let reading = try packages.readings.store.latest(PackageListing.self, kind: PackageListing.kind, hostID: host.id)
        let installed = reading?.body.packages.first { $0.name == name }
        switch action {
        case .install:
            let (_, found) = try await packages.search(name, on: host)
            if !found.contains(where: { $0.name == name }) {
                errors["name"] = "\(name) is not in \(host.name)'s repositories (searched just now)"
            } else if installed != nil {
                errors["name"] =
                    "\(name) is installed on \(host.name) already (as of \(reading.map { RFC3339.display($0.readAt) } ?? "its last reading"))"
            }
        case .remove, .hold, .unhold:
            guard let reading, reading.body.itemCount > 0 else {
                throw Problem.invalid(["name": "\(host.name)'s packages have not been read; read them first"])
            }
            if installed == nil {
                errors["name"] = "\(name) is not installed on \(host.name) as of \(RFC3339.display(reading.readAt)); read its packages again"
            }
            if action == .remove, PackageChange.needed.contains(name), confirm != name {
                errors["confirm"] = "Steward needs \(name) to reach \(host.name): type its name, \(name), to remove it anyway"
            }
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let change = PackageChange(hostId: host.id, host: host.name, name: name, action: action)
        var request = JobRequest(
            kind: PackageChange.kind,
            title: "\(action.rawValue.prefix(1).uppercased() + action.rawValue.dropFirst()) package \(name) on \(host.name)",
            params: String(decoding: try JSONEncoder().encode(change), as: UTF8.self), host: host.name, startedBy: who.actor,
            reason: change.moduleCall,
            source: who.source)
        request.audit = JobAudit(
            by: who, action: "package.\(action.rawValue)",
            after: ["host": .string(host.name), "package": .string(name), "module_call": .string(change.moduleCall)])
        return request
    }
}

extension Engine {
    /// The `package.change` job: Steward's packages playbook on the one host, then its packages read again.
    func packageChangeHandler(hosts: HostStore, packages: PackageReading) -> JobHandler {
        hostChangeHandler(PackageChange.self, hosts: hosts, playbook: BuiltinPlaybooks.packages, timeoutSeconds: 1800) { host, change, _ in
            let reading = try await packages.refresh(host)
            let now = reading.body.packages.first { $0.name == change.name }
            return "\(change.name) on \(host.name): " + (now.map { "\($0.version)\($0.held ? ", held" : "")" } ?? "not installed") + " as of "
                + RFC3339.display(reading.readAt)
        }
    }
}
