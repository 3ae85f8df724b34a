import Foundation

/// Debian's Prometheus 2.42, started on a loopback port with a configuration and a data directory inside `directory`,
/// for differential tests. Prometheus unblocks its own signals, so terminate() stops it.
final class RealPrometheus {
    let port: Int
    let process = Process()

    static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus") }

    init(directory: String, config: String, arguments: [String] = []) throws {
        try config.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        port = try SyslogTests.freePort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        process.arguments =
            ["--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data", "--web.listen-address=127.0.0.1:\(port)"]
            + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
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
