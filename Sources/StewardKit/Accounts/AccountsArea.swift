import Foundation

extension StewardArea {
    /// Unix users and groups across the fleet: per host, in bulk, and as desired state in the config repository.
    static func accounts(service: AccountService, engine: Engine, hosts: HostStore, lock: RepositoryLock) -> StewardArea {
        StewardArea(
            name: "accounts", navigation: [.init(position: 30, item: NavigationItem(key: "accounts", title: "Users", href: "/accounts"))]
        ) { context, routes in
            AccountsController(area: context, service: service, hosts: hosts)
                .addRoutes(to: routes)
            DesiredAccountsController(
                area: context, engine: engine, boundary: service.boundary, lock: lock
            ).addRoutes(to: routes)
        }
    }
}
