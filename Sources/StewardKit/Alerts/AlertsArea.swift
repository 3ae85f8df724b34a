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
        ) { context, routes in
            AlertsController(area: context, evaluator: evaluator).addRoutes(to: routes)
            let silences = SilenceStore(database: database)
            NotificationController(area: context, channels: channels, silences: silences, notifier: notifier).addRoutes(to: routes)
            NotificationPages(
                area: context, channels: channels, silences: silences, windows: MaintenanceWindowStore(database: database), sender: notifier.sender,
                baseURL: baseURL
            ).addRoutes(to: routes)
        }
    }
}
