import Foundation
import GRDB

extension StewardArea {
    /// The audit log: who changed what, when, from where.
    static func audit(database: DatabasePool) -> StewardArea {
        StewardArea(
            name: "audit", navigation: [.init(position: 130, item: NavigationItem(key: "audit", title: "Audit", href: "/audit", permission: .audit))],
            dataClasses: [.audit]
        ) { context, routes in
            AuditController(area: context, database: database).addRoutes(to: routes)
        }
    }
}
