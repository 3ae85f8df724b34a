import Foundation

extension StewardArea {
    /// Hosts: the inventory and its groups, SSH trust, the reachability check on its schedule, and the facts history.
    static func hosts(store: HostStore, keys: HostKeyStore, dashboard: MetricsDashboard) -> StewardArea {
        StewardArea(
            name: "hosts", jobs: [HostCheck.kind: HostCheck.handler(hosts: store, keys: keys)],
            schedules: [{ try HostCheck.ensureSchedule($0, now: $1) }],
            navigation: [
                .init(position: 20, item: NavigationItem(key: "hosts", title: "Hosts", href: "/hosts")),
                .init(position: 120, item: NavigationItem(key: "ssh", title: "SSH identity", href: "/hosts/ssh")),
            ], dataClasses: [.facts]
        ) { context, routes in
            HostController(
                area: context, store: store, keys: keys,
                dashboard: dashboard
            ).addRoutes(to: routes)
        }
    }
}
