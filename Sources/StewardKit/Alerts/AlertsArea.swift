import Foundation
import GRDB

extension StewardArea {
    /// Alerts: rules and their evaluation, silences and maintenance windows, notification channels and deliveries.
    static func alerts(
        evaluator: AlertEvaluator, notifier: Notifier, channels: NotificationChannelStore, database: DatabasePool, baseURL: String
    ) -> StewardArea {
        StewardArea(
            name: "alerts",
            navigation: [
                .init(position: 70, item: NavigationItem(key: "alerts", title: "Alerts", href: "/alerts")),
                .init(position: 80, item: NavigationItem(key: "silences", title: "Silences", href: "/alerts/silences")),
            ], dataClasses: [.alertHistory, .notifications]
        ) { context in
            AlertsController(evaluator: evaluator, pages: context.pages, docs: context.docs).addRoutes(to: context.routes)
            let silences = SilenceStore(database: database)
            NotificationController(channels: channels, silences: silences, notifier: notifier, docs: context.docs).addRoutes(to: context.routes)
            NotificationPages(
                channels: channels, silences: silences, windows: MaintenanceWindowStore(database: database), sender: notifier.sender,
                baseURL: baseURL, pages: context.pages
            ).addRoutes(to: context.routes)
        }
    }
}
