import Foundation
import Testing

@testable import StewardKit

/// A hook runs through argv-only steps; each step is seen here as the runner sees it.
@Suite("hook scripts run without a shell command line")
struct HookScriptTests {
    final class Recorder: ProcessRunning, @unchecked Sendable {
        let real = LocalProcessRunner()
        let lock = NSLock()
        var argvs: [[String]] = []
        func run(_ command: ProcessCommand, output: @escaping @Sendable (Data) async -> Void) async throws -> ProcessOutcome {
            lock.withLock { argvs.append(command.argv) }
            return try await real.run(command, output: output)
        }
    }

    static func run(_ text: String, environment: [String: String] = [:]) async throws -> (ProcessOutcome, String, [[String]]) {
        let recorder = Recorder()
        let collected = StewardKit.Collected()
        let hook = HookScript(text: text) { argv, extra in ProcessCommand(argv, environment: ResticTarget.baseEnvironment().merging(extra) { $1 }) }
        let outcome = try await hook.run(environment: environment, runner: recorder) { collected.append($0) }
        return (outcome, String(decoding: collected.data, as: UTF8.self), recorder.lock.withLock { recorder.argvs })
    }

    @Test("a script without #! runs under sh, sees its environment, and its private directory is removed")
    func plainScript() async throws {
        let (outcome, output, argvs) = try await Self.run("echo \"result=$STEWARD_BACKUP_RESULT\"; echo 'quote'\"'\"' and $(x)'\n", environment: ["STEWARD_BACKUP_RESULT": "failed"])
        #expect(outcome.succeeded)
        #expect(output == "result=failed\nquote' and $(x)\n")
        #expect(argvs.map { $0.first } == ["mktemp", "tee", "chmod", "/bin/sh", "rm"])
        #expect(!argvs.contains { $0.contains("-c") })
        let directory = try #require(argvs.last?.last)
        #expect(directory.hasPrefix("/tmp/steward-hook."))
        #expect(!FileManager.default.fileExists(atPath: directory))
    }

    @Test("a script with #! runs as itself; its exit status is the hook's, and the directory goes even when it fails")
    func failingScript() async throws {
        let (outcome, output, argvs) = try await Self.run("#!/bin/sh\necho $0 >&2\nexit 3\n")
        #expect(outcome.termination == .exited(3))
        #expect(output.hasSuffix("/hook\n"))
        #expect(argvs[3].count == 1 && argvs[3][0].hasSuffix("/hook"))
        #expect(!FileManager.default.fileExists(atPath: try #require(argvs.last?.last)))
    }
}
