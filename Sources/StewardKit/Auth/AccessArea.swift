import Foundation
import GRDB
import Logging

extension StewardArea {
    /// Signing in and access: PAM login and second factors, sessions, tokens, roles, sign-in blocks, and the settings pages.
    static func access(
        _ services: AccessServices, configuration: StewardConfiguration, resources: String, database: DatabasePool, logger: Logger
    ) -> StewardArea {
        StewardArea(
            name: "access", navigation: [.init(position: 140, item: NavigationItem(key: "settings", title: "Settings", href: "/settings"))],
            dataClasses: [.sessions]
        ) { context, routes in
            SettingsController(area: context, configuration: configuration, resources: resources, database: database)
                .addRoutes(to: routes)
            LoginController(area: context, services: services, logger: logger).addRoutes(to: routes)
            AccountController(area: context, services: services).addRoutes(to: routes)
            AccessSettingsController(area: context, services: services).addRoutes(to: routes)
        }
    }
}
