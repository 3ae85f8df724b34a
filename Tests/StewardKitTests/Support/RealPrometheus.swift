import Foundation

@testable import StewardKit

/// A Go server of Debian's (Prometheus, VictoriaMetrics) on a loopback port. Go unblocks its own signals, so
/// terminate() stops it, cleanly, with what it holds on disk. Sendable so it can be stopped from a thread of its own;
/// a test uses it from one task at a time.
class GoServer: @unchecked Sendable {
    let port: Int
    let process = Process()

    init(executable: String, arguments: [String], port: Int) throws {
        self.port = port
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    /// Stop it and wait for it to exit on a thread of its own: a Go server may take seconds to write out what it
    /// holds, and the tests running beside this one share the cooperative pool's few threads.
    func stopped() async throws {
        try await offload { [self] in stop() }
    }

    deinit { stop() }
}

/// Debian's Prometheus 2.42, started with a configuration and a data directory inside `directory`, for differential
/// tests.
final class RealPrometheus: GoServer {
    static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus") }

    /// Started on `port` when given (a restart over the same data), else on a free one.
    init(directory: String, config: String, arguments: [String] = [], port: Int? = nil) throws {
        try config.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        let port = try port ?? SyslogTests.freePort()
        try super.init(
            executable: "/usr/bin/prometheus",
            arguments: [
                "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data", "--web.listen-address=127.0.0.1:\(port)",
            ]
                + arguments, port: port)
    }
}

/// A python3 child of a test (a web server, a proxy). Test children start with SIGTERM blocked, which python keeps,
/// so it is stopped with SIGKILL.
final class PythonChild {
    let process = Process()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// Debian's VictoriaMetrics (single node), a remote-write receiver at /api/v1/write.
final class RealVictoriaMetrics: GoServer {
    static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/victoria-metrics") }

    init(directory: String, port: Int? = nil) throws {
        let port = try port ?? SyslogTests.freePort()
        // No search latency offset: what was written is searchable at once.
        try super.init(
            executable: "/usr/bin/victoria-metrics",
            arguments: [
                "-storageDataPath=\(directory)", "-httpListenAddr=127.0.0.1:\(port)", "-retentionPeriod=100y", "-search.latencyOffset=0s",
                "-loggerLevel=ERROR",
            ], port: port)
    }
}
