import Foundation

extension StewardArea {
    /// Checks (HTTP(S) and TCP probes) and SLOs: objectives, error budgets, burn-rate alerts; rollouts read the budgets.
    static func slos(checks: CheckRunner, engine: SLOEngine, hosts: HostStore, metrics: MetricStore) -> StewardArea {
        StewardArea(
            name: "slos",
            navigation: [
                .init(position: 82, item: NavigationItem(key: "slos", title: "SLOs", href: "/slos")),
                .init(position: 84, item: NavigationItem(key: "checks", title: "Checks", href: "/checks")),
            ]
        ) { context, routes in
            ChecksController(area: context, store: checks.store, runner: checks, hosts: hosts, metrics: metrics, slos: engine).addRoutes(to: routes)
            SLOController(area: context, store: engine.store, engine: engine, checks: checks.store, hosts: hosts).addRoutes(to: routes)
        }
    }
}
