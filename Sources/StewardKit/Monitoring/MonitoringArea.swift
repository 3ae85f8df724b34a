import Foundation

extension StewardArea {
    /// The dashboard and metrics: the fleet overview, host charts, the metrics API, and the stored series.
    static func monitoring(dashboard: MetricsDashboard, databasePath: String) -> StewardArea {
        StewardArea(
            name: "monitoring", navigation: [.init(position: 10, item: NavigationItem(key: "dashboard", title: "Dashboard", href: "/"))],
            dataClasses: [.metrics]
        ) { context in
            let monitoring = MonitoringController(dashboard: dashboard, pages: context.pages, docs: context.docs)
            monitoring.addRoutes(to: context.routes)
            DashboardController(
                jobs: context.runner.store, schedules: context.scheduler.store, fleet: monitoring, pages: context.pages, databasePath: databasePath,
                startedAt: Date()
            ).addRoutes(to: context.routes)
        }
    }
}
