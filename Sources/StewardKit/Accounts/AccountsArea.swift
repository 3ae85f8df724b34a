import Foundation

extension StewardArea {
    /// Unix users and groups across the fleet: per host, in bulk, and as desired state in the config repository.
    static func accounts(service: AccountService, engine: Engine, hosts: HostStore, lock: RepositoryLock) -> StewardArea {
        StewardArea(
            name: "accounts", navigation: [.init(position: 30, item: NavigationItem(key: "accounts", title: "Users", href: "/accounts"))]
        ) { context in
            AccountsController(service: service, hosts: hosts, jobs: context.runner, pages: context.pages, docs: context.docs)
                .addRoutes(to: context.routes)
            DesiredAccountsController(
                engine: engine, boundary: service.boundary, jobs: context.runner, lock: lock, pages: context.pages, docs: context.docs
            ).addRoutes(to: context.routes)
        }
    }
}
