import ArgumentParser
import Foundation
import GRDB
import Logging
import NIOCore
import NIOSSL
import StewardKit

@main
struct Steward: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "steward",
        abstract: "Steward: a web administration server for Linux fleets.",
        subcommands: [
            Serve.self, Migrate.self, CheckConfig.self, RoleCommand.self, TokenCommand.self, SecondFactorCommand.self, InventoryCommand.self,
            RestoreSelf.self, RetentionCommand.self, Version.self,
        ],
        defaultSubcommand: Serve.self)
}

/// Options shared by `serve` and `check-config`: everything they accept as flags wins over steward.json and STEWARD_*.
struct ServerOptions: ParsableArguments {
    @Option(help: "Data directory (database, TLS certificate, keys). Default: /var/lib/steward as root.")
    var data: String?
    @Option(help: "Address to listen on (default 0.0.0.0, every IPv4 address).")
    var bind: String?
    @Option(help: "Port to listen on (default 10000).")
    var port: String?
    @Flag(name: .customLong("no-tls"), help: "Serve plain HTTP (for loopback or behind a TLS proxy).")
    var noTLS = false
    @Option(name: .customLong("external-url"), help: "Public base URL used in links, e.g. https://panel.example.com")
    var externalURL: String?
    @Option(help: "Directory holding Templates/, Public/ and migrations/.")
    var resources: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?
    @Option(name: .customLong("pam-service"), help: "PAM service for logins (default steward, i.e. /etc/pam.d/steward).")
    var pamService: String?

    func flagLayer() -> SettingsLayer {
        var layer = SettingsLayer(source: "command-line flags")
        if let bind { layer.values["bind"] = (bind, "--bind") }
        if let port { layer.values["port"] = (port, "--port") }
        if noTLS { layer.values["tls"] = ("false", "--no-tls") }
        if let externalURL { layer.values["external_url"] = (externalURL, "--external-url") }
        if let resources { layer.values["resources"] = (resources, "--resources") }
        if let logLevel { layer.values["log_level"] = (logLevel, "--log-level") }
        if let pamService { layer.values["pam_service"] = (pamService, "--pam-service") }
        return layer
    }

    func resolve() throws -> StewardConfiguration {
        try resolveConfiguration(dataFlag: data, flags: flagLayer())
    }
}

func resolveConfiguration(dataFlag: String?, flags: SettingsLayer) throws -> StewardConfiguration {
    let environment = ProcessInfo.processInfo.environment
    let dataDirectory: String
    let dataSource: String
    if let dataFlag {
        (dataDirectory, dataSource) = (dataFlag, "--data")
    } else if let fromEnvironment = environment["STEWARD_DATA"], !fromEnvironment.isEmpty {
        (dataDirectory, dataSource) = (fromEnvironment, "STEWARD_DATA")
    } else {
        (dataDirectory, dataSource) = (StewardConfiguration.defaultDataDirectory(), "default")
    }
    do {
        var layers: [SettingsLayer] = []
        do {
            if let file = try StewardConfiguration.fileLayer(dataDirectory: dataDirectory) { layers.append(file) }
        } catch {
            // A steward.json that is not JSON at all: still check the environment and flags, and report everything.
            var unreadable = SettingsLayer(source: error.source)
            unreadable.problems = error.all
            layers.append(unreadable)
        }
        layers.append(StewardConfiguration.environmentLayer(environment))
        layers.append(flags)
        var configuration = try StewardConfiguration.resolve(dataDirectory: dataDirectory, layers: layers)
        configuration.sources["data"] = dataSource
        return configuration
    } catch {
        throw Fatal(message: error.description, code: 78)
    }
}

/// A message for the operator and an exit status; printed without a stack trace.
struct Fatal: Error, CustomStringConvertible {
    let message: String
    var code: Int32 = 1
    var description: String { message }
}

func fail(_ error: any Error) -> ExitCode {
    let code = (error as? Fatal)?.code ?? 1
    LogOutput.write("steward: \(error)\n")
    return ExitCode(code)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the web server (the default command).")
    @OptionGroup var options: ServerOptions
    /// Set only by the root helper when it starts the web process: the helper's socket.
    @Option(name: .customLong("privsep-fd"), help: .hidden) var privsepDescriptor: Int32?

    func run() async throws {
        // A log pipe whose reader went away must not end the server (nginx ignores SIGPIPE for the same reason).
        LogOutput.ignoreBrokenPipe()
        let configuration: StewardConfiguration
        do { configuration = try options.resolve() } catch { throw fail(error) }
        let level = configuration.logLevel
        let format = configuration.logFormat
        LoggingSystem.bootstrap { StewardLogHandler(label: $0, level: level, format: format) }
        let logger = Logger(label: "steward")
        var helper: HelperClient?
        if let privsepDescriptor {
            // The web process: become steward before anything is opened or read.
            // The drop itself happened before main, before any thread existed (see CSpawn); check it held.
            do { try PrivilegeSeparation.verifyDropped() } catch { throw fail(error) }
            // Without its helper the web process can neither sign anyone in nor finish panel-host jobs; and a helper
            // that was killed must not leave it behind holding the data directory's lock.
            helper = HelperClient(descriptor: privsepDescriptor) { why in
                LogOutput.write("steward: the privileged helper is gone (\(why)); the web process stops\n")
                _exit(70)
            }
            logger.notice("web process running unprivileged", metadata: ["user": "\(PrivilegeSeparation.userName)", "uid": "\(getuid())"])
        } else if configuration.privilegeSeparation, getuid() == 0 {
            try await superviseWebProcess(configuration: configuration, logger: logger)
            return
        }
        // Connections are capped well below the open-file limit; raise it first so the caps have room.
        let descriptors = DescriptorLimit.raiseToHard()
        if descriptors.after != descriptors.before {
            logger.notice("raised the open-file limit to the hard limit", metadata: ["from": "\(descriptors.before)", "to": "\(descriptors.after)"])
        }
        let server: StewardServer
        let reservation: PortReservation
        do {
            reservation = try PortReservation(bind: configuration.bind, port: configuration.port)
            let directory = DataDirectory(path: configuration.dataDirectory)
            try directory.prepare()
            guard try directory.holdServeLock() else {
                throw Fatal(message: "another steward serve is already using \(directory.path) (it holds serve.lock); stop it first")
            }
            // Processes a killed predecessor left running end before any job is marked interrupted or started again.
            let groups = directory.path + "/process-groups"
            ProcessGroupRegistry.endLeftovers(file: groups, owner: getuid(), logger: logger)
            ProcessGroupRegistry.shared.record(to: groups)
            if let helper {
                server = try await StewardServer.build(
                    configuration: configuration, logger: logger, authenticator: HelperAuthenticator(client: helper),
                    accountStanding: { user in
                        guard case .standing(let name) = try? await helper.ask(.standing(user: user)) else { return .deleted }
                        return AccountStanding(name: name)
                    }, helper: helper)
            } else {
                server = try await StewardServer.build(configuration: configuration, logger: logger)
            }
        } catch {
            throw fail(error)
        }
        let setupToken: String?
        do { setupToken = try server.firstAdminSetupToken() } catch { throw fail(error) }
        let banner = Banner(server: server, setupToken: setupToken)
        do {
            try await server.run { channel in
                reservation.release()
                banner.print(port: channel.localAddress?.port)
            }
        } catch {
            throw fail(Fatal(message: "server stopped: \(error) (is port \(configuration.port) on \(configuration.bind) already in use?)"))
        }
    }
}

/// The root side of `steward serve` under privilege separation: make the system user, hand it the data directory,
/// start the web process as it, answer the web process's PAM and account requests, pass signals on, and end with it.
func superviseWebProcess(configuration: StewardConfiguration, logger: Logger) async throws {
    let pid: pid_t
    let helperSocket: Int32
    do {
        let directory = DataDirectory(path: configuration.dataDirectory)
        try directory.prepare()
        let account = try PrivilegeSeparation.ensureUser(home: configuration.dataDirectory, logger: logger)
        try PrivilegeSeparation.checkReachable(dataDirectory: configuration.dataDirectory, by: account)
        try PrivilegeSeparation.handOver(dataDirectory: configuration.dataDirectory, to: account, logger: logger)
        guard try directory.serveLockIsFree() else {
            throw Fatal(message: "another steward serve is already using \(directory.path) (it holds serve.lock); stop it first")
        }
        // What a killed helper left running as root (a panel-host playbook, a restic backup) ends before anything
        // starts; the list lives outside the data directory, which the unprivileged process can write.
        let groups = try PrivilegeSeparation.helperProcessGroupsFile(dataDirectory: directory.path)
        ProcessGroupRegistry.endLeftovers(file: groups, owner: 0, logger: logger)
        ProcessGroupRegistry.shared.record(to: groups)
        let (helperEnd, webEnd) = try PrivilegeSeparation.socketPair()
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "serve" { arguments.removeFirst() }
        pid = try PrivilegeSeparation.spawnWebProcess(arguments: ["serve"] + arguments, socket: webEnd)
        close(webEnd)
        helperSocket = helperEnd
        logger.notice("privileged helper started the web process", metadata: ["pid": "\(pid)", "user": "\(PrivilegeSeparation.userName)"])
    } catch {
        throw fail(error)
    }
    let helper = PrivilegedHelper(
        descriptor: helperSocket, pamService: configuration.pamService, dataDirectory: DataDirectory(path: configuration.dataDirectory), logger: logger)
    Thread.detachNewThread { helper.serve() }
    // SIGTERM and SIGINT go to the web process, which shuts down gracefully; the helper ends when it does.
    var sources: [any DispatchSourceSignal] = []
    for number in [SIGTERM, SIGINT, SIGHUP] {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { kill(pid, number) }
        source.resume()
        sources.append(source)
    }
    let status: Int32 = await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            continuation.resume(returning: status)
        }
    }
    withExtendedLifetime(sources) {}
    let signalled = status & 0x7f
    let code = signalled == 0 ? (status >> 8) & 0xff : 128 + signalled
    logger.notice("web process ended; the helper stops too", metadata: ["status": "\(code)"])
    if code != 0 { throw ExitCode(code) }
}

/// What an operator needs on the console after start: where to go and what was made for them.
struct Banner: Sendable {
    let configuration: StewardConfiguration
    let dataPath: String
    let tls: TLSMaterial?
    let applied: [String]
    let interrupted: [Int64]
    let setupToken: String?

    init(server: StewardServer, setupToken: String?) {
        self.setupToken = setupToken
        configuration = server.configuration
        dataPath = server.dataDirectory.path
        tls = server.tls
        applied = server.migrationReport.applied
        interrupted = server.interruptedAtStartup
    }

    func print(port: Int?) {
        var lines = ["", "Steward \(StewardVersion.current) is running.", "  Open:  \(configuration.publicBaseURL)/"]
        if configuration.bind == "0.0.0.0" || configuration.bind == "::" {
            lines.append("         (listening on all addresses, port \(port ?? configuration.port))")
        }
        lines.append("  Data:  \(dataPath)")
        if let tls {
            let origin =
                tls.generated
                ? "self-signed, generated now"
                : (configuration.tlsCertificatePath == nil ? "self-signed, from the data directory" : "operator-provided")
            lines.append("  TLS:   \(tls.certificatePath) (\(origin))")
            if let fingerprint = try? Self.fingerprint(tls.certificatePath) {
                lines.append("         SHA-256 fingerprint \(fingerprint); check it when the browser asks")
            }
        }
        if !applied.isEmpty {
            lines.append("  Database: applied \(applied.joined(separator: ", "))")
        }
        if !interrupted.isEmpty {
            lines.append("  Jobs:  marked \(interrupted.count) job(s) left running by the previous process as interrupted")
        }
        let pamFile = "/etc/pam.d/\(configuration.pamService)"
        lines.append("  Login: your Unix account, through PAM service \(configuration.pamService) (\(pamFile))")
        if !FileManager.default.fileExists(atPath: pamFile) {
            lines.append("         warning: \(pamFile) does not exist, so PAM falls back to /etc/pam.d/other; `make pam` installs it")
        }
        if let setupToken {
            lines.append("  Setup: nobody is an administrator yet. Open \(configuration.publicBaseURL)/setup, sign in with a Unix")
            lines.append("         account and give this one-time token (it works once, and only until the next restart):")
            lines.append("         \(setupToken)")
            lines.append("         Or run: \(Self.commandName()) role grant admin --user NAME --data \(dataPath)")
        }
        lines.append("")
        // Written straight to the descriptor: a piped stdout would otherwise hold the URL in a buffer.
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    /// How to call this binary from a shell: `steward` when that name on PATH is this binary, else its full path
    /// (`make run` starts .build/release/steward, which is not on PATH).
    static func commandName() -> String {
        let files = FileManager.default
        let me = (try? files.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where directory.hasPrefix("/") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("steward")
            if files.isExecutableFile(atPath: candidate.path), candidate.resolvingSymlinksInPath().path == me { return "steward" }
        }
        return me
    }

    static func fingerprint(_ path: String) throws -> String {
        guard let certificate = try NIOSSLCertificate.fromPEMFile(path).first else { return "" }
        return try sha256Hex(certificate.toDERBytes()).uppercased().chunked(2).joined(separator: ":")
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the database, then exit.")
    @Option(help: "Data directory.") var data: String?
    @Option(help: "Directory holding migrations/ (and Templates/, Public/).") var resources: String?

    func run() async throws {
        do {
            var flags = SettingsLayer(source: "command-line flags")
            if let resources { flags.values["resources"] = (resources, "--resources") }
            let configuration = try resolveConfiguration(dataFlag: data, flags: flags)
            let (_, directory, report) = try openDatabase(configuration, create: true)
            if report.applied.isEmpty {
                print("\(directory.databasePath) is up to date (\(report.alreadyApplied) migration(s) applied earlier)")
            } else {
                for file in report.applied { print("applied \(file)") }
                print("\(directory.databasePath) is up to date")
            }
            for file in report.edited { print("warning: \(file) changed after it was applied; migrations must never be edited") }
        } catch {
            throw fail(error)
        }
    }
}

/// Prepare the data directory and bring the database up to date, for commands that work on it directly.
func openDatabase(_ configuration: StewardConfiguration, create: Bool = false) throws -> (DatabasePool, DataDirectory, MigrationRunner.Report) {
    let directory = DataDirectory(path: configuration.dataDirectory)
    // Only migrate makes a data directory; the other commands need one that serve made.
    if create { try directory.prepare() } else { try directory.requireExisting() }
    let root = try ResourceLocator.locate(configured: configuration.resourcesDirectory)
    let database = try StewardDatabase.open(path: directory.databasePath)
    let report = try MigrationRunner.load(directory: root + "/migrations").migrate(database, databasePath: directory.databasePath)
    return (database, directory, report)
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the configuration and print the effective settings with their sources.")
    @OptionGroup var options: ServerOptions

    func run() async throws {
        let configuration: StewardConfiguration
        do { configuration = try options.resolve() } catch { throw fail(error) }
        var problems: [String] = []
        var resources: String?
        do {
            resources = try ResourceLocator.locate(configured: configuration.resourcesDirectory)
        } catch {
            problems.append(error.description)
        }
        var warnings: [String] = []
        if !FileManager.default.fileExists(atPath: "/etc/pam.d/" + configuration.pamService) {
            // A warning until sign-in uses it; then a missing service will stop startup.
            warnings.append(
                "PAM service file /etc/pam.d/\(configuration.pamService) does not exist; create it (make run installs /etc/pam.d/steward) or choose another with --pam-service"
            )
        }
        if let cert = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath, configuration.tls {
            do {
                _ = try TLSMaterial(certificatePath: cert, keyPath: key, generated: false).serverConfiguration()
            } catch {
                problems.append(String(describing: error))
            }
        }
        let rows = ConfigurationReport.rows(configuration, resources: resources)
        let width = rows.map(\.name.count).max() ?? 0
        for row in rows {
            print(row.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + row.value + "  (" + row.source + ")")
        }
        for warning in warnings { print("warning: " + warning) }
        guard problems.isEmpty else {
            throw fail(Fatal(message: problems.joined(separator: "\nsteward: "), code: 78))
        }
        print("configuration OK")
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("steward \(StewardVersion.current)") }
}

extension String {
    func chunked(_ size: Int) -> [String] {
        stride(from: 0, to: count, by: size).map { start in
            let from = index(startIndex, offsetBy: start)
            return String(self[from..<(index(from, offsetBy: size, limitedBy: endIndex) ?? endIndex)])
        }
    }
}
