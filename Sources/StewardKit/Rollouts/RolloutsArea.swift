import Foundation
import GRDB

extension StewardArea {
    /// Pending updates across the fleet.
    static func updates(database: DatabasePool, hosts: HostStore) -> StewardArea {
        StewardArea(name: "updates", navigation: [.init(position: 40, item: NavigationItem(key: "updates", title: "Updates", href: "/updates"))]) {
            context in
            UpdatesController(database: database, hosts: hosts, scheduler: context.scheduler, pages: context.pages, docs: context.docs)
                .addRoutes(to: context.routes)
        }
    }

    /// Update rollouts: proposals planned in check mode, approvals, waves and rollbacks.
    static func rollouts(_ service: RolloutService) -> StewardArea {
        StewardArea(
            name: "rollouts", jobs: service.handlers(),
            navigation: [.init(position: 50, item: NavigationItem(key: "rollouts", title: "Rollouts", href: "/rollouts"))]
        ) { context in
            RolloutAPI(service: service, jobs: context.runner, docs: context.docs).addRoutes(to: context.routes)
            RolloutPages(service: service, jobs: context.runner, pages: context.pages).addRoutes(to: context.routes)
        }
    }
}
