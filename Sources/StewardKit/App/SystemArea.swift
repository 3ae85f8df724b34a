import Foundation
import GRDB

extension StewardArea {
    /// The panel itself: health and readiness, its own metrics, the API document, and search across every area.
    static func system(
        database: DatabasePool, databasePath: String, metrics: HTTPMetrics, collector: MetricCollector?, disk: DiskSpace?,
        shedding: LoadShedding?, hosts: HostStore
    ) -> StewardArea {
        StewardArea(name: "system") { context, routes in
            SystemController(
                area: context, database: database, databasePath: databasePath, jobs: context.runner.store, metrics: metrics,
                collector: collector, disk: disk, shedding: shedding
            ).addRoutes(to: routes)
            SearchController(area: context, database: database, hosts: hosts).addRoutes(to: routes)
        }
    }
}
