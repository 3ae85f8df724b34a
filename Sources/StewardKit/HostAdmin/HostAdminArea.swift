import Foundation
import Hummingbird

extension StewardArea {
    /// Everyday host administration: what runs on each host and across the fleet, read from the hosts in seconds, and
    /// changes to it as audited engine jobs.
    static func hostAdmin(hosts: HostStore, keys: HostKeyStore, readings: HostReadingStore, engine: Engine) -> StewardArea {
        let gate = ReadingGate()
        let reader = HostReader(keys: keys)
        let services = ServiceReading(reader: reader, store: readings, gate: gate)
        let processes = ProcessReading(readings: HostReadings(reader: reader, store: readings, gate: gate))
        let overview = OverviewReading(readings: HostReadings(reader: reader, store: readings, gate: gate))
        return StewardArea(
            name: "host administration",
            jobs: [
                ServiceChange.kind: engine.serviceChangeHandler(hosts: hosts, services: services),
                ProcessSignal.kind: engine.processSignalHandler(hosts: hosts, processes: processes),
            ],
            navigation: [.init(position: 25, item: NavigationItem(key: "services", title: "Services", href: "/services"))]
        ) { context, routes in
            ServicesController(area: context, hosts: hosts, services: services).addRoutes(to: routes)
            ProcessesController(area: context, hosts: hosts, processes: processes).addRoutes(to: routes)
            OverviewController(area: context, hosts: hosts, overview: overview, database: readings.database).addRoutes(to: routes)
        }
    }
}

/// What the host administration controllers share: the host named in the path.
protocol HostScopedController {
    var hosts: HostStore { get }
}

extension HostScopedController {
    /// Read a host again from its page and go back to it, saying what came of it.
    func refreshAndReturn<Body: HostReadingBody>(
        _ host: Host, to path: String, pages: PageRenderer, success: (HostReading<Body>) -> String,
        read: () async throws -> HostReading<Body>
    ) async throws -> Response {
        do {
            let reading = try await read()
            let flash = reading.error.map { Flash(.warning, "Read \(host.name), but: \($0)") } ?? Flash(.success, success(reading))
            return pages.redirect(to: path, flash: flash)
        } catch let problem as Problem {
            return pages.redirect(to: path, flash: Flash(.error, problem.detail))
        }
    }

    func host(_ context: StewardRequestContext) throws -> Host {
        guard let id = context.parameters.get("id", as: Int64.self), let host = try hosts.host(id: id) else { throw Problem.notFound("host") }
        return host
    }
}
