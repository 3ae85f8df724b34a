import Foundation

extension StewardArea {
    /// The dashboard and metrics: the fleet overview, host charts, the metrics API, the stored series, and where they
    /// are also sent (remote write).
    static func monitoring(dashboard: MetricsDashboard, databasePath: String, remoteWrite: RemoteWrite) -> StewardArea {
        StewardArea(
            name: "monitoring", navigation: [.init(position: 10, item: NavigationItem(key: "dashboard", title: "Dashboard", href: "/"))],
            dataClasses: [.metrics]
        ) { context, routes in
            let monitoring = MonitoringController(area: context, dashboard: dashboard)
            monitoring.addRoutes(to: routes)
            RemoteWriteController(area: context, remoteWrite: remoteWrite).addRoutes(to: routes)
            DashboardController(
                area: context, jobs: context.runner.store, schedules: context.scheduler.store, fleet: monitoring, databasePath: databasePath,
                startedAt: Date()
            ).addRoutes(to: routes)
        }
    }
}
