import Foundation

/// What an install or a removal would do on one host, from the package manager's own simulation in the rollout's plan
/// report: the changes approvers see, and the reason the plan cannot go ahead there ("" when it can).
enum PackagePlan {
    /// An install: apt's `apt-get -s install` lines (the named packages and the dependencies they bring, or an `E:`
    /// line when a name or version is not offered); on dnf, each named package not installed with the newest version
    /// the repositories offer, and pinned versions only where a repository offers them.
    static func install(_ packages: [String], report: [String: Any]) -> ([PendingUpdate], String) {
        let pins = packages.filter { $0.contains("=") }
        let names = packages.filter { !$0.contains("=") }
        if report["pkg_mgr"] as? String == "dnf" {
            let offered = report["dnf_offered"] as? [String] ?? []
            let installedLines = report["dnf_installed"] as? [String] ?? []
            let (pinned, missingPins) = PendingUpdate.dnfPins(pins, offered: offered, installed: installedLines)
            let installed = PendingUpdate.rpmVersions(installedLines)
            let available = offered.compactMap { PendingUpdate.parseDnf($0, security: []) }
            var changes = pinned
            var missing = missingPins
            for name in names where installed[name] == nil {
                // dnf lists versions oldest first; the last one is what an install takes.
                if let newest = available.last(where: { $0.package == name }) {
                    changes.append(newest)
                } else {
                    missing.append(name)
                }
            }
            return (changes, missing.isEmpty ? "" : cannotInstall(missing.joined(separator: ", "), pinned: !missingPins.isEmpty))
        }
        let lines = report["pinned"] as? [String] ?? []
        let changes = lines.compactMap(PendingUpdate.parseApt)
        if let error = lines.first(where: { $0.hasPrefix("E:") }) {
            return (changes, cannotInstall(error, pinned: !pins.isEmpty))
        }
        // A conflict would make apt remove packages to install these: an install never does that (apt-get --no-remove).
        let removed = lines.compactMap(PendingUpdate.parseAptRemoval).map(\.package)
        if !removed.isEmpty {
            return (
                changes, "installing this here would remove \(removed.joined(separator: ", ")) (a conflict); Steward's installs never remove packages"
            )
        }
        return (changes, "")
    }

    static func cannotInstall(_ what: String, pinned: Bool) -> String {
        pinned
            ? "the package manager cannot install the pinned version here (\(what)); rolling back needs that version in a repository"
            : "the package manager cannot install this here (\(what)); check the name, or add a repository that offers it"
    }

    /// A removal: apt's `apt-get -s remove` lines for the named packages installed here (`Remv NAME [VERSION]`,
    /// including every package that depends on them and goes too); on dnf, the named packages rpm reports installed.
    /// A host without any of them has nothing to do. A removal that takes an essential package, or one Steward needs
    /// to reach the host, is refused in the plan.
    static func removal(_ packages: [String], report: [String: Any]) -> ([PendingUpdate], String) {
        let changes: [PendingUpdate]
        let lines: [String]
        if report["pkg_mgr"] as? String == "dnf" {
            lines = []
            let installed = PendingUpdate.rpmVersions(report["dnf_installed"] as? [String] ?? [])
            let simulated = PendingUpdate.dnfRemovals(report["dnf_removal"] as? [String] ?? [])
            // dnf's own answer when it gave one; the named packages rpm reports otherwise.
            changes =
                simulated.isEmpty
                ? packages.compactMap { name in
                    installed[name].map { PendingUpdate(package: name, current: $0, candidate: "", origin: "", security: false) }
                } : simulated
        } else {
            lines = report["removals"] as? [String] ?? []
            changes = lines.compactMap(PendingUpdate.parseAptRemoval)
        }
        if let error = lines.first(where: { $0.hasPrefix("E:") }) {
            return (changes, "the package manager cannot remove this here (\(error))")
        }
        if lines.contains(where: { $0.hasPrefix("WARNING:") && $0.contains("essential") }) {
            return (changes, "this removal would take essential packages with it; Steward does not remove those")
        }
        if let needed = changes.first(where: { Rollout.reachNeeds.contains(String($0.package.prefix { $0 != ":" })) }) {
            return (
                changes,
                "removing \(packages.joined(separator: ", ")) here would also remove \(needed.package), which Steward needs to reach and change the host"
            )
        }
        return (changes, "")
    }
}

extension PendingUpdate {
    /// `dnf --assumeno remove` output: the rows under "Removing:", "Removing dependent packages:" and "Removing unused
    /// dependencies:" (` name  arch  version  repository  size`; a long name sits alone on its line, the rest follows).
    static func dnfRemovals(_ lines: [String]) -> [PendingUpdate] {
        var result: [PendingUpdate] = []
        var inside = false
        var pending: String?
        for line in lines {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("Removing"), trimmed.hasSuffix(":") {
                inside = true
                continue
            }
            if !line.hasPrefix(" ") || trimmed.isEmpty {
                inside = false
                continue
            }
            guard inside else { continue }
            var fields = trimmed.split(whereSeparator: \.isWhitespace).map(String.init)
            if fields.count == 1 {
                pending = fields[0]
                continue
            }
            if let name = pending {
                fields.insert(name, at: 0)
                pending = nil
            }
            guard fields.count >= 3, fields[2].first?.isNumber == true else { continue }
            result.append(PendingUpdate(package: fields[0], current: fields[2], candidate: "", origin: "", security: false))
        }
        return result
    }

    /// `apt-get -s remove` lines: `Remv name [version]` (the version may be absent). Other lines are nil. A removal is a
    /// change from the installed version to none.
    static func parseAptRemoval(_ line: String) -> PendingUpdate? {
        guard line.hasPrefix("Remv ") else { return nil }
        let words = line.dropFirst(5).split(separator: " ", omittingEmptySubsequences: true)
        guard let name = words.first, Rollout.packageProblem(String(name)) == nil || name.contains(":") else { return nil }
        var version = ""
        if words.count > 1, words[1].first == "[", let close = words[1].firstIndex(of: "]") {
            version = String(words[1][words[1].index(after: words[1].startIndex)..<close])
        }
        return PendingUpdate(package: String(name), current: version, candidate: "", origin: "", security: false)
    }
}
