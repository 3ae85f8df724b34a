import Foundation

extension StewardArea {
    /// Central logs: every host's journal, pulled over SSH with no agent, searchable and filterable in one place.
    static func logs(store: LogStore, hosts: HostStore, collector: JournalCollector, syslog: SyslogIntake) -> StewardArea {
        StewardArea(
            name: "logs",
            navigation: [.init(position: 28, item: NavigationItem(key: "logs", title: "Logs", href: "/logs"))], dataClasses: [.logs]
        ) { context, routes in
            LogsController(area: context, hosts: hosts, store: store, collector: collector).addRoutes(to: routes)
            SyslogController(area: context, hosts: hosts, intake: syslog).addRoutes(to: routes)
            LogFilesController(area: context, hosts: hosts, files: collector.files ?? LogFileStore(database: store.database), store: store).addRoutes(
                to: routes)
        }
    }
}
