import Foundation

extension StewardArea {
    /// Backups: repositories, plans (whose schedules and alert rules they own), runs, restores and retention.
    static func backups(_ service: BackupService) -> StewardArea {
        StewardArea(
            name: "backups", jobs: service.handlers(),
            navigation: [.init(position: 60, item: NavigationItem(key: "backups", title: "Backups", href: "/backups"))]
        ) { context in
            BackupAPI(service: service, scheduler: context.scheduler, jobs: context.runner, docs: context.docs).addRoutes(to: context.routes)
            BackupPages(service: service, scheduler: context.scheduler, jobs: context.runner, pages: context.pages).addRoutes(to: context.routes)
        }
    }
}
