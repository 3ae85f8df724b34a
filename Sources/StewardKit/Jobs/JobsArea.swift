import Foundation
import GRDB

extension StewardArea {
    /// Jobs and their logs, the database's own maintenance job on its schedule, and the schedules page.
    static func jobs(database: DatabasePool, databasePath: String) -> StewardArea {
        StewardArea(
            name: "jobs", jobs: [DatabaseMaintenance.kind: DatabaseMaintenance.handler(database: database, path: databasePath)],
            schedules: [{ try DatabaseMaintenance.ensureSchedule($0, now: $1) }],
            navigation: [
                .init(position: 90, item: NavigationItem(key: "jobs", title: "Jobs", href: "/jobs")),
                .init(position: 100, item: NavigationItem(key: "schedules", title: "Schedules", href: "/schedules")),
            ], dataClasses: [.jobLogs]
        ) { context, routes in
            JobController(area: context).addRoutes(
                to: routes)
            ScheduleController(area: context).addRoutes(to: routes)
        }
    }
}
