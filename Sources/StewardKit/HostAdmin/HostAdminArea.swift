import Foundation

extension StewardArea {
    /// Everyday host administration: what runs on each host and across the fleet, read from the hosts in seconds, and
    /// changes to it as audited engine jobs.
    static func hostAdmin(hosts: HostStore, keys: HostKeyStore, readings: HostReadingStore, engine: Engine) -> StewardArea {
        let services = ServiceReading(reader: HostReader(keys: keys), store: readings)
        return StewardArea(
            name: "host administration",
            jobs: [ServiceChange.kind: engine.serviceChangeHandler(hosts: hosts, services: services)],
            navigation: [.init(position: 25, item: NavigationItem(key: "services", title: "Services", href: "/services"))]
        ) { context, routes in
            ServicesController(area: context, hosts: hosts, services: services).addRoutes(to: routes)
        }
    }
}
