import Foundation
import GRDB

/// One package with a newer version available, as the package manager's simulation reports it.
public struct PendingUpdate: Sendable, Equatable, Codable {
    public var package: String
    /// The installed version; empty for a package the upgrade would newly install.
    public var current: String
    public var candidate: String
    /// Where the new version comes from: apt's origin and suite (Debian-Security:12/stable-security), or dnf's repo.
    public var origin: String
    /// A security update: the origin or pocket says so (bookworm-security, jammy-security, a dnf security advisory).
    public var security: Bool

    /// `apt-get -s` lines: `Inst name [current] (candidate origin:version/suite [arch]) [...]`. Other lines are nil.
    public static func parseApt(_ line: String) -> PendingUpdate? {
        guard line.hasPrefix("Inst ") else { return nil }
        let rest = line.dropFirst(5)
        guard let nameEnd = rest.firstIndex(of: " ") else { return nil }
        let package = String(rest[..<nameEnd])
        var tail = rest[nameEnd...].drop { $0 == " " }
        var current = ""
        if tail.first == "[", let close = tail.firstIndex(of: "]") {
            current = String(tail[tail.index(after: tail.startIndex)..<close])
            tail = tail[tail.index(after: close)...].drop { $0 == " " }
        }
        guard tail.first == "(", let close = tail.firstIndex(of: ")") else { return nil }
        var inside = tail[tail.index(after: tail.startIndex)..<close]
        if let bracket = inside.lastIndex(of: "[") { inside = inside[..<bracket] }
        let words = inside.split(separator: " ", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let candidate = words.first, !candidate.isEmpty else { return nil }
        let origin = words.count > 1 ? words[1] : ""
        return PendingUpdate(package: package, current: current, candidate: candidate, origin: origin, security: isSecurity(origin))
    }

    /// `dnf -q check-update` lines: `name.arch  version  repo`; `security` names the packages a security advisory covers.
    public static func parseDnf(_ line: String, security: Set<String>) -> PendingUpdate? {
        let fields = line.split(whereSeparator: \.isWhitespace)
        guard fields.count == 3, let dot = fields[0].lastIndex(of: "."), fields[1].first?.isNumber == true else { return nil }
        let package = String(fields[0][..<dot])
        return PendingUpdate(
            package: package, current: "", candidate: String(fields[1]), origin: String(fields[2]),
            security: security.contains(package) || isSecurity(String(fields[2])))
    }

    static func isSecurity(_ origin: String) -> Bool { origin.lowercased().contains("security") }

    /// `rpm -q --qf '%{NAME} [EPOCH:]VERSION-RELEASE'` lines as name → version; "package X is not installed" is left out.
    static func rpmVersions(_ lines: [String]) -> [String: String] {
        Dictionary(
            lines.compactMap { line -> (String, String)? in
                let fields = line.split(whereSeparator: \.isWhitespace)
                return fields.count == 2 && fields[1].first?.isNumber == true ? (String(fields[0]), String(fields[1])) : nil
            }, uniquingKeysWith: { first, _ in first })
    }

    /// Pinned `name=version` packages on a dnf host (a rollback): a change for each version some repository offers
    /// (`dnf list --showduplicates --available` lines), and the pins no repository offers.
    public static func dnfPins(_ pins: [String], offered: [String], installed: [String]) -> (updates: [PendingUpdate], missing: [String]) {
        let current = rpmVersions(installed)
        let available = offered.compactMap { parseDnf($0, security: []) }
        var updates: [PendingUpdate] = []
        var missing: [String] = []
        for pin in pins {
            let parts = pin.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            if let match = available.first(where: { $0.package == parts[0] && $0.candidate == parts[1] }) {
                updates.append(
                    PendingUpdate(package: parts[0], current: current[parts[0]] ?? "", candidate: parts[1], origin: match.origin, security: false))
            } else {
                missing.append(pin)
            }
        }
        return (updates, missing)
    }

    /// Every pending update in a host's output: apt's simulation lines, and dnf's check-update lines with the
    /// packages its security advisories name (`ADVISORY SEVERITY/Sec. NAME-VERSION-RELEASE.ARCH`) and the installed
    /// versions rpm reports for them (`NAME [EPOCH:]VERSION-RELEASE`, the form dnf prints).
    public static func parse(apt: [String], dnf: [String], dnfSecurity: [String], dnfInstalled: [String] = []) -> [PendingUpdate] {
        let advised = Set(
            dnfSecurity.compactMap { line -> String? in
                let parts = line.split(whereSeparator: \.isWhitespace).last?.split(separator: "-") ?? []
                return parts.count >= 3 ? parts.dropLast(2).joined(separator: "-") : nil
            })
        let installed = rpmVersions(dnfInstalled)
        return apt.compactMap(parseApt)
            + dnf.compactMap { line in
                parseDnf(line, security: advised).map { update in
                    var update = update
                    update.current = installed[update.package] ?? ""
                    return update
                }
            }
    }
}

/// The fleet's pending updates from each host's newest facts.
public struct PendingUpdatesReport: Sendable {
    public struct HostRow: Sendable {
        public var host: Host
        public var gatheredAt: Date?
        public var updates: [PendingUpdate]
        public var rebootRequired: Bool
        /// Days that security updates have been pending, by the facts history.
        public var securityAgeDays: Double?
        public var securityCount: Int { updates.filter(\.security).count }
    }
    public var hosts: [HostRow]

    /// Each package with the hosts that would take it, security updates first, then by how many hosts.
    public var packages: [(package: String, security: Bool, hosts: [(host: String, current: String, candidate: String, origin: String)])] {
        var byName: [String: [(String, String, String, String)]] = [:]
        var security: [String: Bool] = [:]
        for row in hosts {
            for update in row.updates {
                byName[update.package, default: []].append((row.host.name, update.current, update.candidate, update.origin))
                security[update.package] = (security[update.package] ?? false) || update.security
            }
        }
        return byName.map { (package: $0.key, security: security[$0.key] ?? false, hosts: $0.value.sorted { $0.0 < $1.0 }) }
            .sorted { ($0.security ? 0 : 1, -$0.hosts.count, $0.package) < ($1.security ? 0 : 1, -$1.hosts.count, $1.package) }
    }

    /// Security-update ages per host, cached until newer facts arrive (shared with the alert source).
    static let ages = BuiltinAlerts.FactsCache()

    public static func build(database: DatabasePool, hosts: [Host], now: Date = Date()) throws -> PendingUpdatesReport {
        var rows: [HostRow] = []
        for host in hosts where host.enabled {
            let facts = try HostFacts.latest(database, hostID: host.id)
            var age: Double?
            if let facts, facts.pendingUpdates.contains(where: \.security),
                case .value(let days) = try BuiltinAlerts.factsAge(
                    database: database, cache: ages, host: host, kind: "security", now: EpochMilliseconds.from(now))
            {
                age = days
            }
            rows.append(
                HostRow(
                    host: host, gatheredAt: facts?.gatheredAt, updates: facts?.pendingUpdates ?? [], rebootRequired: facts?.rebootRequired ?? false,
                    securityAgeDays: age))
        }
        return PendingUpdatesReport(hosts: rows)
    }
}
