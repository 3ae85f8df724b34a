import Foundation
import GRDB

extension StewardArea {
    /// Pending updates across the fleet.
    static func updates(database: DatabasePool, hosts: HostStore) -> StewardArea {
        StewardArea(name: "updates", navigation: [.init(position: 40, item: NavigationItem(key: "updates", title: "Updates", href: "/updates"))]) {
            context, routes in
            UpdatesController(area: context, database: database, hosts: hosts)
                .addRoutes(to: routes)
        }
    }

    /// Update rollouts: proposals planned in check mode, approvals, waves and rollbacks.
    static func rollouts(_ service: RolloutService) -> StewardArea {
        StewardArea(
            name: "rollouts", jobs: service.handlers(),
            navigation: [.init(position: 50, item: NavigationItem(key: "rollouts", title: "Rollouts", href: "/rollouts"))]
        ) { context, routes in
            RolloutAPI(area: context, service: service).addRoutes(to: routes)
            RolloutPages(area: context, service: service).addRoutes(to: routes)
        }
    }
}
