import Foundation

extension StewardArea {
    /// Backups: repositories, plans (whose schedules and alert rules they own), runs, restores and retention.
    static func backups(_ service: BackupService) -> StewardArea {
        StewardArea(
            name: "backups", jobs: service.handlers(),
            navigation: [.init(position: 60, item: NavigationItem(key: "backups", title: "Backups", href: "/backups"))]
        ) { context, routes in
            BackupAPI(area: context, service: service).addRoutes(to: routes)
            BackupPages(area: context, service: service).addRoutes(to: routes)
        }
    }
}
