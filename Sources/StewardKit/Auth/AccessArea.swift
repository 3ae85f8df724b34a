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
        ) { context in
            SettingsController(configuration: configuration, resources: resources, database: database, pages: context.pages)
                .addRoutes(to: context.routes)
            LoginController(services: services, pages: context.pages, logger: logger).addRoutes(to: context.routes)
            AccountController(services: services, pages: context.pages).addRoutes(to: context.routes)
            AccessSettingsController(services: services, pages: context.pages, docs: context.docs).addRoutes(to: context.routes)
        }
    }
}
