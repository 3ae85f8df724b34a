import Foundation
import GRDB
import Hummingbird

/// One search box for everything a panel user looks for by name: hosts, host groups and tags, Unix users and groups
/// on the hosts (from their facts), jobs, pending packages, alert rules, backup plans, schedules and the settings
/// pages. Matching is a case-insensitive substring; each kind shows its first `perKind` hits and how many there were.
struct SearchController {
    let area: AreaContext
    let database: DatabasePool
    let hosts: HostStore
    static let perKind = 20

    /// Pages found by their title or a word people use for them, with the permission a user needs to open them.
    static let places: [(title: String, href: String, words: String, permission: Permission)] = [
        ("Dashboard", "/", "fleet overview home", .view),
        ("Hosts", "/hosts", "machines servers inventory", .view),
        ("Host groups", "/hosts/groups", "groups inventory", .view),
        ("Add hosts in bulk", "/hosts/bulk", "import csv", .operate),
        ("Run a command on hosts", "/hosts/command", "ad-hoc shell", .operate),
        ("SSH identity", "/hosts/ssh", "key known_hosts fingerprint trust", .view),
        ("Users and groups (fleet)", "/accounts", "accounts unix users passwd", .view),
        ("Users as code", "/accounts/desired", "desired definitions drift", .view),
        ("Batch user changes", "/accounts/batch", "csv import accounts", .operate),
        ("Updates", "/updates", "packages patches security apt dnf", .view),
        ("Rollouts", "/rollouts", "updates approvals waves canary", .view),
        ("Backups", "/backups", "restic repositories plans snapshots restore", .view),
        ("Alerts", "/alerts", "rules firing notifications", .view),
        ("Silences and maintenance windows", "/alerts/silences", "mute maintenance", .view),
        ("Jobs", "/jobs", "runs output history", .view),
        ("Schedules", "/schedules", "cron timers", .view),
        ("Config repo", "/config", "git playbooks configuration as code", .view),
        ("Audit log", "/audit", "who changed what history", .audit),
        ("Settings", "/settings", "configuration", .view),
        ("Storage and retention", "/settings/storage", "retention disk space policies holds", .view),
        ("Notification channels", "/settings/channels", "email smtp webhook", .admin),
        ("Roles", "/settings/roles", "permissions admin operator grant", .admin),
        ("Sessions", "/settings/sessions", "signed in", .admin),
        ("API tokens", "/settings/tokens", "rest scripts", .admin),
        ("Sign-in blocks", "/settings/blocks", "throttling login lockout", .admin),
        ("Your account", "/account", "second factor totp password tokens", .signedIn),
    ]

    func addRoutes(to routes: Routes) {
        routes.get("/search", .view, use: search)
    }

    struct Hit {
        var title: String
        var href: String
        var detail: String
    }

    @Sendable func search(request: Request, context: StewardRequestContext) async throws -> Response {
        let query = FormBody(query: request)["q"] ?? ""
        let needle = query.trimmingCharacters(in: .whitespacesAndNewlines)
        var groups: [ViewNode] = []
        var total = 0
        if needle.count > 200 {
            return area.pages.page(
                "search", title: "Search", section: "",
                data: ["search_query": String(needle.prefix(200)), "problem": "Search for at most 200 characters."], request: request,
                context: context, status: .unprocessableContent)
        }
        if !needle.isEmpty {
            let granted = context.identity?.permissions ?? []
            for (kind, hits) in try find(needle, permissions: granted) where !hits.isEmpty {
                total += hits.count
                groups.append(
                    ViewNode([
                        "kind": kind, "count": hits.count, "more": hits.count > Self.perKind ? hits.count - Self.perKind : 0,
                        "has_more": hits.count > Self.perKind,
                        "hits": hits.prefix(Self.perKind).map { ViewNode(["hit_title": $0.title, "hit_href": $0.href, "hit_detail": $0.detail]) },
                    ]))
            }
        }
        return area.pages.page(
            "search", title: needle.isEmpty ? "Search" : "Search: \(needle)", section: "",
            data: [
                "search_query": needle, "searched": !needle.isEmpty, "kinds": groups, "total": total, "nothing": !needle.isEmpty && groups.isEmpty,
            ], request: request, context: context)
    }

    /// Every kind's hits, in the order the page lists them.
    func find(_ needle: String, permissions: Set<Permission>) throws -> [(String, [Hit])] {
        func has(_ text: String) -> Bool { text.range(of: needle, options: [.caseInsensitive, .diacriticInsensitive]) != nil }
        let allHosts = try hosts.all()
        var hostHits: [Hit] = []
        var tagHits: [String: Int] = [:]
        for host in allHosts {
            if has(host.name) || has(host.address) {
                hostHits.append(
                    Hit(
                        title: host.name, href: "/hosts/\(host.id)",
                        detail: [host.address, host.groups.joined(separator: ", ")].filter { !$0.isEmpty }.joined(separator: " · ")))
            }
            for tag in host.tags where has(tag) { tagHits[tag, default: 0] += 1 }
        }
        let groupHits =
            try hosts.groups().filter { has($0.name) }.map {
                Hit(title: $0.name, href: "/hosts?group=\(MonitoringController.encode($0.name))", detail: "\($0.hostCount) host(s)")
            }
            + tagHits.keys.sorted().map {
                Hit(title: "tag: \($0)", href: "/hosts?tag=\(MonitoringController.encode($0))", detail: "\(tagHits[$0]!) host(s)")
            }
        // Unix accounts and pending packages, from each host's newest facts.
        var users: [String: [(Host, Int)]] = [:]
        var unixGroups: [String: [Host]] = [:]
        var packages: [String: [(Host, PendingUpdate)]] = [:]
        for host in allHosts {
            guard let facts = try HostFacts.latest(database, hostID: host.id) else { continue }
            for (name, entry) in facts.passwd where has(name) || has(entry.gecos) { users[name, default: []].append((host, entry.uid)) }
            for name in facts.groupMembers.keys where has(name) { unixGroups[name, default: []].append(host) }
            for update in facts.pendingUpdates where has(update.package) { packages[update.package, default: []].append((host, update)) }
        }
        func hostList(_ list: [Host]) -> String {
            let names = list.map(\.name).sorted()
            return names.prefix(5).joined(separator: ", ") + (names.count > 5 ? " and \(names.count - 5) more" : "")
        }
        let userHits = users.keys.sorted().map { name -> Hit in
            let places = users[name]!
            let uids = Set(places.map(\.1)).sorted().map(String.init).joined(separator: ", ")
            return Hit(
                title: name, href: places.count == 1 ? "/hosts/\(places[0].0.id)/accounts" : "/accounts",
                detail: "uid \(uids) on \(hostList(places.map(\.0)))")
        }
        let unixGroupHits = unixGroups.keys.sorted().map { name -> Hit in
            let places = unixGroups[name]!
            return Hit(title: name, href: places.count == 1 ? "/hosts/\(places[0].id)/accounts" : "/accounts", detail: "on \(hostList(places))")
        }
        let packageHits = packages.keys.sorted().map { name -> Hit in
            let places = packages[name]!
            let security = places.contains { $0.1.security }
            let versions = Set(places.map { "\($0.1.current.isEmpty ? "new" : $0.1.current) → \($0.1.candidate)" }).sorted().joined(separator: "; ")
            return Hit(title: name, href: "/updates", detail: (security ? "security · " : "") + "\(versions) on \(hostList(places.map(\.0)))")
        }
        let jobHits = try JobStore(database: database).search(needle, limit: Self.perKind + 1).map { job in
            Hit(title: "#\(job.id) \(job.title)", href: "/jobs/\(job.id)", detail: "\(job.state.rawValue) · \(job.kind)")
        }
        let ruleHits = try AlertRuleStore(database: database).all().filter { has($0.name) || has($0.summary) }.map {
            Hit(title: $0.name, href: "/alerts/rules/\($0.id)", detail: $0.summary)
        }
        let planHits = try BackupStore.planNames(database).filter { has($0.name) }.map {
            Hit(title: $0.name, href: "/backups/plans/\($0.id)", detail: "backup plan")
        }
        let scheduleHits = try ScheduleStore(database: database).all().filter { has($0.name) }.map {
            Hit(title: $0.name, href: "/schedules", detail: "\($0.cron) (\($0.timeZone))")
        }
        let placeHits = Self.places.filter { permissions.contains($0.permission) && (has($0.title) || has($0.words) || has($0.href)) }.map {
            Hit(title: $0.title, href: $0.href, detail: $0.href)
        }
        return [
            ("Pages", placeHits), ("Hosts", hostHits), ("Host groups and tags", groupHits), ("Unix users", userHits),
            ("Unix groups", unixGroupHits), ("Pending packages", packageHits), ("Jobs", jobHits), ("Alert rules", ruleHits),
            ("Backup plans", planHits), ("Schedules", scheduleHits),
        ]
    }
}
