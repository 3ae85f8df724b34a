import Foundation

extension StewardArea {
    /// Everyday host administration: what runs on each host and across the fleet, read from the hosts in seconds.
    static func hostAdmin(hosts: HostStore, keys: HostKeyStore, readings: HostReadingStore) -> StewardArea {
        StewardArea(
            name: "host administration",
            navigation: [.init(position: 25, item: NavigationItem(key: "services", title: "Services", href: "/services"))]
        ) { context, routes in
            ServicesController(
                area: context, hosts: hosts, services: ServiceReading(reader: HostReader(keys: keys), store: readings)
            ).addRoutes(to: routes)
        }
    }
}
