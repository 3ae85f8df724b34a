import Foundation
import Hummingbird

extension StewardArea {
    /// Everyday host administration: what runs on each host and across the fleet, read from the hosts in seconds, and
    /// changes to it as audited engine jobs.
    static func hostAdmin(
        hosts: HostStore, keys: HostKeyStore, readings: HostReadingStore, engine: Engine, metrics: MetricStore, lock: RepositoryLock
    ) -> StewardArea {
        let gate = ReadingGate()
        let reader = HostReader(keys: keys)
        let services = ServiceReading(reader: reader, store: readings, gate: gate)
        let processes = ProcessReading(readings: HostReadings(reader: reader, store: readings, gate: gate))
        let overview = OverviewReading(readings: HostReadings(reader: reader, store: readings, gate: gate))
        let packages = PackageReading(readings: HostReadings(reader: reader, store: readings, gate: gate))
        let cron = CronReading(readings: HostReadings(reader: reader, store: readings, gate: gate))
        let system = DisksNetworkReading(readings: HostReadings(reader: reader, store: readings, gate: gate))
        return StewardArea(
            name: "host administration",
            jobs: [
                ServiceChange.kind: engine.serviceChangeHandler(hosts: hosts, services: services),
                ProcessSignal.kind: engine.processSignalHandler(hosts: hosts, processes: processes),
                PackageChange.kind: engine.packageChangeHandler(hosts: hosts, packages: packages),
                CronChange.kind: engine.cronChangeHandler(hosts: hosts, cron: cron),
                ServiceConvergence.kind: engine.serviceConvergeHandler(hosts: hosts, services: services),
            ],
            navigation: [
                .init(position: 25, item: NavigationItem(key: "services", title: "Services", href: "/services")),
                .init(position: 26, item: NavigationItem(key: "packages", title: "Packages", href: "/packages")),
                .init(position: 27, item: NavigationItem(key: "cron", title: "Scheduled tasks", href: "/cron")),
            ]
        ) { context, routes in
            DesiredServicesController(area: context, engine: engine, lock: lock, store: readings).addRoutes(to: routes)
            ServicesController(area: context, hosts: hosts, services: services).addRoutes(to: routes)
            ProcessesController(area: context, hosts: hosts, processes: processes).addRoutes(to: routes)
            PackagesController(area: context, hosts: hosts, packages: packages).addRoutes(to: routes)
            CronController(area: context, hosts: hosts, cron: cron).addRoutes(to: routes)
            DisksNetworkController(area: context, hosts: hosts, reading: system, metrics: metrics).addRoutes(to: routes)
            OverviewController(area: context, hosts: hosts, overview: overview, database: readings.database).addRoutes(to: routes)
        }
    }
}

/// What the host administration controllers share: the host named in the path.
protocol HostScopedController {
    var hosts: HostStore { get }
}

/// Text from hosts that can hold secrets (command lines with passwords in their arguments) is shown in full to
/// operators and admins (to admins only on the panel host); others see a command's program only. Journal lines are
/// for every viewer on fleet hosts and for admins on the panel host.
enum HostSecrets {
    /// On the panel host, where Steward itself runs, only admins: its processes and journal are Steward's own secrets.
    static func mayRead(_ context: StewardRequestContext, on host: Host) -> Bool {
        host.transport == .local ? context.isAdmin : context.identity?.permissions.contains(.operate) ?? false
    }

    /// Journal lines, on a unit's page and in the central logs: anyone who may view the fleet reads its hosts' logs
    /// (as the logs issue asks); the panel host's journal is Steward's own, and its secrets with it: admins only.
    static func mayReadJournal(_ context: StewardRequestContext, on host: Host) -> Bool {
        host.transport == .local ? context.isAdmin : context.identity?.permissions.contains(.view) ?? false
    }

    static func command(_ text: String, full: Bool) -> String {
        guard !full else { return text }
        let program = text.prefix { !$0.isWhitespace }
        return program.count == text.count ? text : program + " …"
    }
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

    /// Queue a change from a page: to the job's page when it is queued, back to `back` with what to fix when not.
    func queueAndShow(_ back: String, pages: PageRenderer, failure: String, _ queue: () async throws -> Job) async throws -> Response {
        do {
            let job = try await queue()
            return pages.redirect(to: "/jobs/\(job.id)", flash: Flash(.success, "Started \"\(job.title)\" as job \(job.id)."))
        } catch let problem as Problem {
            let detail = problem.errors.map(ServicesController.describe) ?? problem.detail
            return pages.redirect(to: back, flash: Flash(.error, "\(failure): " + detail))
        }
    }

    func host(_ context: StewardRequestContext) throws -> Host {
        guard let id = context.parameters.get("id", as: Int64.self), let host = try hosts.host(id: id) else { throw Problem.notFound("host") }
        return host
    }
}

/// A change to one host that a job carries out with one of Steward's playbooks (a unit action, a signal, a package
/// change): what the job's params hold.
protocol HostJobChange: Codable, Sendable {
    var hostId: Int64 { get }
    var host: String { get }
    /// The module call, for the job log and the audit row.
    var moduleCall: String { get }
    /// The playbook's input, written to its vars file.
    var variables: [String: JSONValue] { get }
}

extension Engine {
    /// The job of a host change: the playbook on the one host, then `afterwards` (the host read again, so every page
    /// shows the new state, and a log line that says it). A failed run still reads the host again, then fails the job.
    func hostChangeHandler<Change: HostJobChange>(
        _ type: Change.Type, hosts: HostStore, playbook: String, timeoutSeconds: Int,
        afterwards: @escaping @Sendable (Host, Change, JobContext) async throws -> String
    ) -> JobHandler {
        { context in
            let change = try JSONDecoder().decode(Change.self, from: Data(context.job.params.utf8))
            guard let host = try hosts.host(id: change.hostId), host.enabled else {
                throw JobFailure("the host \(change.host) is gone or disabled since the change was asked for")
            }
            await context.log("module call: \(change.moduleCall)")
            var run = PlaybookRun(playbook: playbook, targets: [host.name])
            run.builtin = playbook
            run.timeoutSeconds = timeoutSeconds
            run.variables = String(decoding: try JSONEncoder().encode(change.variables), as: UTF8.self)
            let failure = await Self.attempt { try await execute(run, context) }
            do {
                await context.log(try await afterwards(host, change, context))
            } catch {
                await context.log("reading \(host.name) again failed: \(error)")
            }
            if let failure { throw failure }
        }
    }
}
