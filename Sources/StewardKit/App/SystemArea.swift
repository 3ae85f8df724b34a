import Foundation
import GRDB

extension StewardArea {
    /// The panel itself: health and readiness, its own metrics, the API document, and search across every area.
    static func system(
        database: DatabasePool, databasePath: String, metrics: HTTPMetrics, collector: MetricCollector?, disk: DiskSpace?,
        shedding: LoadShedding?, hosts: HostStore
    ) -> StewardArea {
        StewardArea(name: "system") { context in
            SystemController(
                database: database, databasePath: databasePath, jobs: context.runner.store, metrics: metrics, docs: context.docs,
                collector: collector, disk: disk, shedding: shedding
            ).addRoutes(to: context.routes)
            SearchController(database: database, hosts: hosts, pages: context.pages).addRoutes(to: context.routes)
        }
    }
}
