import Crypto
import Foundation
import GRDB
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import UnixSignals

/// Everything `steward serve` runs, wired by hand: database, job runner, scheduler, routes and the HTTP server.
public struct StewardServer {
    public let configuration: StewardConfiguration
    public let dataDirectory: DataDirectory
    public let resources: String
    public let database: DatabasePool
    public let jobs: JobRunner
    public let scheduler: Scheduler
    public let router: Router<StewardRequestContext>
    public let docs: APIDocumentation
    public let routeTable: RouteTable
    public let access: AccessServices
    public let hosts: HostStore
    public let engine: Engine
    public let metrics: MetricStore
    public let collector: MetricCollector
    public let logs: LogStore
    public let journals: JournalCollector
    public let syslog: SyslogIntake
    public let alerts: AlertEvaluator
    public let notifier: Notifier
    public let rolloutDriver: RolloutDriver
    public let checkRunner: CheckRunner
    public let sloEngine: SLOEngine
    public let tls: TLSMaterial?
    public let migrationReport: MigrationRunner.Report
    public let interruptedAtStartup: [Int64]
    /// Open connections and the caps on them (SECURITY.md class 15).
    public let connections: ConnectionCounts
    /// Request gates per route class, shared with the network-thread fast path.
    public let shedding: LoadShedding
    let logger: Logger

    /// Open and prepare everything; nothing listens until `run()`.
    public static func build(
        configuration: StewardConfiguration, logger: Logger, clock: any SchedulerClock = SystemClock(),
        processes: any ProcessRunning = LocalProcessRunner(), extraJobHandlers: [String: JobHandler] = [:],
        authenticator: (any PasswordAuthenticating)? = nil, groupsOf: @escaping @Sendable (String) -> [String] = UnixAccounts.groups(of:),
        throttlePolicy: LoginThrottlePolicy = LoginThrottlePolicy(),
        accountStanding: @escaping @Sendable (String) async -> AccountStanding = { AccountStanding.read(user: $0) },
        helper: HelperClient? = nil
    ) async throws -> StewardServer {
        let dataDirectory = DataDirectory(path: configuration.dataDirectory)
        try dataDirectory.prepare()
        let resources = try ResourceLocator.locate(configured: configuration.resourcesDirectory)
        let database: DatabasePool
        do {
            database = try StewardDatabase.open(path: dataDirectory.databasePath)
            let limit = Duration.seconds(configuration.startupCheckSeconds)
            if configuration.startupCheckSeconds > 0,
                try StewardDatabase.quickCheck(database, path: dataDirectory.databasePath, limit: limit) == .outOfTime
            {
                logger.warning(
                    "the database check at start ran out of time and was skipped; the nightly check covers it",
                    metadata: ["limit_seconds": "\(configuration.startupCheckSeconds)"])
            }
        } catch var damage as DatabaseDamage {
            damage.newestBackup = await SelfBackup.newestSnapshotNote(dataDirectory: dataDirectory)
            throw damage
        }
        let report = try MigrationRunner.load(directory: resources + "/migrations").migrate(database, databasePath: dataDirectory.databasePath)
        for file in report.applied { logger.notice("applied migration", metadata: ["file": "\(file)"]) }
        for file in report.edited {
            logger.warning("a landed migration was edited after it ran; migrations must not change", metadata: ["file": "\(file)"])
        }
        // API reads that scripts repeat (the hosts and jobs lists) are answered from encoded bytes until their tables change.
        let tableVersions = TableVersions(tables: ["hosts", "host_groups", "host_group_members", "jobs"])
        database.add(transactionObserver: tableVersions, extent: .databaseLifetime)
        let responses = ResponseCache(versions: tableVersions)
        let secret = try dataDirectory.secretKey()
        let disk = DiskSpace(path: dataDirectory.path, reserveMB: configuration.diskReserveMB)
        let tls = configuration.tls ? try TLSMaterial.prepare(configuration: configuration, dataDirectory: dataDirectory) : nil

        let sshIdentity = SSHIdentity(dataDirectory: dataDirectory)
        try sshIdentity.prepare()
        let hostStore = HostStore(database: database)
        let hostKeys = HostKeyStore(database: database, identity: sshIdentity)
        let repository = ConfigRepository(dataDirectory: dataDirectory)
        try repository.prepare()
        var engine = Engine(database: database, hosts: hostStore, keys: hostKeys, repository: repository, dataDirectory: dataDirectory)
        // Under privilege separation the panel host's own work goes to the root helper.
        engine.panel = helper
        try engine.prepare()
        let scheduleWake = ScheduleWake()
        let backups = BackupService(
            store: BackupStore(database: database, sealer: SecretSealer(masterKey: secret, purpose: "steward backup repository password")),
            hosts: hostStore, identity: sshIdentity, dataDirectory: dataDirectory,
            runner: helper.map { PanelAwareRunner(helper: $0) as any ProcessRunning } ?? LocalProcessRunner(),
            sensitive: SensitivePaths(
                dataDirectory: dataDirectory.path, tlsKeyPath: configuration.tlsKeyPath, extra: configuration.sensitivePaths),
            schedules: scheduleWake)
        // One channel store and one sender for the rollouts' approval mails and the alert notifier.
        let channelStore = NotificationChannelStore(database: database, masterKey: secret)
        let sender = NotificationSender(scratchDirectory: dataDirectory.path)
        let rollouts = RolloutService(
            database: database, engine: engine, hosts: hostStore, channels: channelStore, sender: sender, baseURL: configuration.publicBaseURL)
        let retention = RetentionService(
            database: database, databasePath: dataDirectory.databasePath, graceMinutes: configuration.retentionGraceMinutes,
            sessionIdleMinutes: configuration.sessionIdleMinutes)
        let metricStore = try MetricStore(database: database)
        let remoteWrite = try RemoteWrite(database: database, masterKey: secret, logger: logger)
        let collector = MetricCollector(
            store: metricStore, hosts: hostStore, intervalSeconds: configuration.metricsIntervalSeconds,
            timeoutSeconds: configuration.scrapeTimeoutSeconds, remoteWrite: remoteWrite, logger: logger)
        let logStore = LogStore(database: database)
        let journals = JournalCollector(
            store: logStore, hosts: hostStore, reader: HostReader(keys: hostKeys), files: LogFileStore(database: database),
            readings: HostReadingStore(database: database), intervalSeconds: configuration.logsIntervalSeconds, logger: logger)
        var syslogSettings = SyslogIntake.Settings()
        syslogSettings.bind = configuration.bind
        syslogSettings.port = configuration.syslogPort
        syslogSettings.tlsPort = configuration.syslogTLSPort
        syslogSettings.tls = try tls?.serverConfiguration()
        let syslog = SyslogIntake(
            store: logStore, senders: SyslogSenderStore(database: database), hosts: hostStore, readings: HostReadingStore(database: database),
            settings: syslogSettings, logger: logger)
        let metricsDashboard = MetricsDashboard(store: metricStore, hosts: hostStore, database: database)
        try BuiltinAlerts.ensure(AlertRuleStore(database: database), now: clock.now())
        let checkRunner = CheckRunner(store: CheckStore(database: database), metrics: metricStore, hosts: hostStore, remoteWrite: remoteWrite, logger: logger)
        let sloEngine = SLOEngine(
            database: database, metrics: metricStore, hosts: hostStore, intervalSeconds: configuration.alertIntervalSeconds,
            collectionIntervalSeconds: configuration.metricsIntervalSeconds, logger: logger)
        let alertEvaluator = try AlertEvaluator(
            database: database, hosts: hostStore, metrics: metricStore,
            sources: BuiltinAlerts.sources(database: database) + [BuiltinAlerts.panelDisk(disk), LogAlerts.source(store: logStore),
                SLOAlerts.source(engine: sloEngine),
            ],
            intervalSeconds: configuration.alertIntervalSeconds, logger: logger)
        let notifier = Notifier(
            database: database, evaluator: alertEvaluator, channels: channelStore, sender: sender, baseURL: configuration.publicBaseURL,
            logger: logger)
        let access = AccessServices(
            sessions: SessionStore(
                database: database, idleTimeout: TimeInterval(configuration.sessionIdleMinutes * 60),
                absoluteLifetime: TimeInterval(configuration.sessionLifetimeHours * 3600)),
            tokens: APITokenStore(database: database), roles: RoleStore(database: database),
            secondFactors: SecondFactorStore(database: database, masterKey: secret),
            throttle: LoginThrottle(database: database, policy: throttlePolicy),
            authenticator: authenticator ?? PAMAuthenticator(service: configuration.pamService), setup: SetupToken(),
            secureCookies: configuration.tls, groupsOf: groupsOf,
            standings: AccountStandingCache(maximumAge: TimeInterval(configuration.accountRecheckSeconds), lookup: accountStanding))
        let accountService = AccountService(engine: engine, boundary: RoleBoundary(roles: access.roles, groupsOf: groupsOf))
        let repositoryLock = RepositoryLock()
        let metrics = HTTPMetrics()
        // Overload sheds per route class, before any session lookup or database read; Public/ files are answered first.
        let staticAssets = StaticAssets(directory: resources + "/Public")
        let staticPaths = Set(staticAssets.assets.keys)
        let shedding = LoadShedding(configuration: configuration, isStatic: { staticPaths.contains($0) })

        // Each area says what it brings; putting them together refuses a job kind, navigation entry or data class that
        // two areas claim, and a data class nobody keeps.
        let assembly = try AreaAssembly(
            [
                .monitoring(dashboard: metricsDashboard, databasePath: dataDirectory.databasePath, remoteWrite: remoteWrite),
                .hosts(store: hostStore, keys: hostKeys, dashboard: metricsDashboard),
                .hostAdmin(
                    hosts: hostStore, keys: hostKeys, readings: HostReadingStore(database: database), engine: engine, metrics: metricStore,
                    lock: repositoryLock),
                .accounts(service: accountService, engine: engine, hosts: hostStore, lock: repositoryLock),
                .logs(store: logStore, hosts: hostStore, collector: journals, syslog: syslog),
                .updates(database: database, hosts: hostStore), .rollouts(rollouts), .backups(backups),
                .slos(checks: checkRunner, engine: sloEngine, hosts: hostStore, metrics: metricStore),
                .alerts(
                    evaluator: alertEvaluator, notifier: notifier, channels: channelStore, database: database, baseURL: configuration.publicBaseURL),
                .jobs(database: database, databasePath: dataDirectory.databasePath),
                .engine(engine, repository: repository, database: database, lock: repositoryLock),
                .audit(database: database),
                .access(access, configuration: configuration, resources: resources, database: database, logger: logger),
                .retention(retention, hosts: hostStore, remoteWrite: remoteWrite),
                .system(
                    database: database, databasePath: dataDirectory.databasePath, metrics: metrics, collector: collector, disk: disk,
                    shedding: shedding, hosts: hostStore),
            ], extraJobs: extraJobHandlers)
        let jobStore = JobStore(database: database)
        let runner = JobRunner(
            store: jobStore, events: JobEvents(), handlers: assembly.handlers, processes: processes, concurrency: configuration.jobConcurrency,
            logCap: configuration.jobLogCapBytes, shutdownGrace: .seconds(configuration.shutdownGraceSeconds), logger: logger)
        let interrupted = try await runner.recoverAfterRestart()
        let scheduleStore = ScheduleStore(database: database)
        try assembly.ensureSchedules(scheduleStore, now: clock.now())
        try hostStore.ensureLocalhost(now: clock.now())
        await SelfBackup.ensure(service: backups, dataDirectory: dataDirectory, logger: logger, now: clock.now())
        let scheduler = Scheduler(store: scheduleStore, jobs: runner, clock: clock, logger: logger)
        scheduleWake.attach(scheduler)

        var pages = try await PageRenderer(
            templatesDirectory: resources + "/Templates", navigation: assembly.navigation, secureCookies: configuration.tls, signingKey: secret)
        // Firing alerts counted beside Alerts in the navigation, on every page, so nobody has to go looking.
        pages.navigationCounts = { [database] in ["alerts": (try? AlertSummary.firingCount(database)) ?? 0] }
        let docs = APIDocumentation()
        let router = Router(context: StewardRequestContext.self)
        let routeTable = RouteTable()
        let routes = Routes(router: router, table: routeTable)
        router.add(middleware: ClientAddressMiddleware(trustedProxies: configuration.trustedProxies))
        router.add(middleware: RequestObservationMiddleware(metrics: metrics, logger: logger))
        // Before anything else answers: a request for another host name is refused (DNS rebinding, SECURITY.md 17).
        let allowlist = HostAllowlist(configuration: configuration)
        router.add(middleware: HostCheckMiddleware(allowlist: allowlist))
        router.add(middleware: SecurityHeadersMiddleware(tls: configuration.tls))
        router.add(middleware: LoadSheddingMiddleware(shedding: shedding))
        router.add(middleware: staticAssets)
        router.add(middleware: IdentityMiddleware(services: access))
        router.add(middleware: ErrorPageMiddleware(pages: pages, disk: disk, logger: logger, routes: routeTable))
        router.add(middleware: OriginCheckMiddleware(allowlist: allowlist))
        router.add(
            middleware: FileMiddleware(
                resources + "/Public", cacheControl: .init([(MediaType(type: .any), [.maxAge(3600)])]), searchForIndexHtml: false, logger: logger))
        router.add(middleware: AuthorizationMiddleware(table: routeTable, services: access, logger: logger))
        assembly.addRoutes(AreaContext(runner: runner, scheduler: scheduler, pages: pages, docs: docs, responses: responses), to: routes)
        let rolloutDriver = RolloutDriver(service: rollouts, jobs: runner, evaluator: alertEvaluator, slos: sloEngine, logger: logger)
        // Two areas answering one route would leave one of them dead: refuse to start, naming it.
        if let route = routeTable.duplicates.first { throw DuplicateRoute(route: route) }

        return StewardServer(
            configuration: configuration, dataDirectory: dataDirectory, resources: resources, database: database, jobs: runner, scheduler: scheduler,
            router: router, docs: docs, routeTable: routeTable, access: access, hosts: hostStore, engine: engine, metrics: metricStore,
            collector: collector, logs: logStore, journals: journals, syslog: syslog, alerts: alertEvaluator, notifier: notifier,
            rolloutDriver: rolloutDriver, checkRunner: checkRunner, sloEngine: sloEngine,
            tls: tls,
            migrationReport: report,
            interruptedAtStartup: interrupted, connections: ConnectionCounts(limits: .from(configuration)), shedding: shedding,
            logger: logger)
    }

    /// While nobody holds admin, a fresh one-time setup token for /setup; nil once an administrator exists.
    public func firstAdminSetupToken() throws -> String? {
        guard try !access.roles.hasAdmin() else {
            access.setup.discard()
            return nil
        }
        return access.setup.issue()
    }

    static func origin(_ url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else { return nil }
        return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }

    /// The HTTP(S) application; tests drive this with HummingbirdTesting.
    public func makeApplication(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        let counts = connections
        let guardLogger = logger
        let shedding = self.shedding
        let allowlist = HostAllowlist(configuration: configuration)
        let useTLS = configuration.tls
        let http1 = HTTPServerBuilder.http1(
            configuration: .init(
                additionalChannelHandlers: [
                    ConnectionGuardHandler(counts: counts, logger: guardLogger),
                    FastPathHandler(shedding: shedding, allowlist: allowlist, securityHeaders: SecurityHeadersMiddleware.fields(tls: useTLS)),
                ],
                idleTimeout: counts.limits.idleTimeout))
        let server: HTTPServerBuilder = try tls.map { try .tls(http1, tlsConfiguration: try $0.serverConfiguration()) } ?? http1
        return Application(
            router: router, server: server,
            // A deep accept queue (the kernel caps it at somaxconn): a connection burst must not drop a client's SYN,
            // which costs it a one-second retransmit.
            configuration: .init(address: .hostname(configuration.bind, port: configuration.port), serverName: nil, backlog: 4096),
            onServerRunning: { channel in
                // Accept many connections per wake-up rather than NIO's default few: under a flood the accept queue
                // otherwise backs up (over 1,000 waiting were measured) and a new client waits seconds to be seen.
                _ = try? await channel.setOption(ChannelOptions.maxMessagesPerRead, value: 256).get()
                await onServerRunning(channel)
            }, logger: logger)
    }

    /// Serve until SIGTERM/SIGINT: then stop accepting, end live streams, give jobs their grace, checkpoint the WAL.
    public func run(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) async throws {
        let app = try makeApplication(onServerRunning: onServerRunning)
        // Services stop in reverse order, each after the one behind it has ended: background work first, then the
        // jobs' grace period while pages and the API still answer (people can watch jobs finish), then live streams,
        // then HTTP, then the final checkpoint.
        let jobs = self.jobs
        let logger = self.logger
        let hurry = SignalCounter(signals: [SIGTERM, SIGINT]) { count in
            guard count == 2 else { return }
            logger.notice("second stop signal: ending the jobs' grace period now")
            Task { await jobs.hurry() }
        }
        defer { hurry.stop() }
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: DatabaseCheckpoint(database: database, logger: logger)),
                    .init(service: app),
                    .init(service: StreamCloser(events: jobs.events)),
                    .init(service: jobs),
                    .init(service: scheduler),
                    .init(service: collector),
                    .init(service: collector.remoteWrite!),
                    .init(service: journals),
                    .init(service: syslog),
                    .init(service: alerts),
                    .init(service: notifier),
                    .init(service: rolloutDriver),
                    .init(service: checkRunner),
                    .init(service: sloEngine),
                    .init(service: MemoryTrimmer(connections: connections)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// Counts SIGTERM/SIGINT beside ServiceLifecycle's own handling (which acts on the first only).
final class SignalCounter: @unchecked Sendable {
    private var sources: [any DispatchSourceSignal] = []
    private let lock = NSLock()
    private var count = 0
    private var first: ContinuousClock.Instant?

    init(signals: [Int32], onSignal: @escaping @Sendable (Int) -> Void) {
        for number in signals {
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                // One stop can arrive twice at once (systemd signals the whole cgroup, and the root helper passes
                // its own on): only a signal a second or more after the first counts as the operator insisting.
                let now = ContinuousClock.now
                let count: Int? = self.lock.withLock {
                    if let first = self.first, now - first < .seconds(1) { return nil }
                    if self.first == nil { self.first = now }
                    self.count += 1
                    return self.count
                }
                if let count { onSignal(count) }
            }
            source.resume()
            sources.append(source)
        }
    }

    func stop() { for source in sources { source.cancel() } }
}

/// Shuts down last: a final WAL checkpoint so the database file is complete on its own.
struct DatabaseCheckpoint: Service {
    let database: DatabasePool
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        do {
            try await database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            logger.notice("database checkpointed; shutdown complete")
        } catch {
            logger.error("final WAL checkpoint failed; SQLite will recover from the WAL on next start", metadata: ["error": "\(error)"])
        }
    }
}

/// Shuts down first: ends live job streams so open browser tabs do not hold the server's shutdown.
struct StreamCloser: Service {
    let events: JobEvents

    func run() async throws {
        try? await gracefulShutdown()
        events.closeAll()
    }
}

/// Two handlers were registered for one method and path.
public struct DuplicateRoute: Error, CustomStringConvertible {
    public let route: String
    public var description: String { "two handlers were registered for the route \(route)" }
}
