import Foundation

/// A hook script run on a host in four argv-only steps, so no part of it (nor any path it lands in) is ever read
/// as a command line: a private directory from mktemp -d, the script copied into it from standard input by tee,
/// chmod 0700, then the script itself (under sh when it has no #! line), and the directory removed whatever happened.
struct HookScript: Sendable {
    let text: String
    /// Builds the command for one step on the hook's host: locally, or through ssh for a fleet host.
    let make: @Sendable (_ argv: [String], _ environment: [String: String]) -> ProcessCommand

    /// The script's outcome; its output goes to `streamed` as it comes.
    func run(
        environment: [String: String], runner: any ProcessRunning, streamed: @escaping @Sendable (Data) async -> Void
    ) async throws -> ProcessOutcome {
        let created = try await quiet(["mktemp", "-d", "/tmp/steward-hook.XXXXXXXX"], runner: runner)
        guard created.outcome.succeeded else { throw JobFailure("making a private directory for the hook \(created.outcome.summary)") }
        let directory = String(decoding: created.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard directory.hasPrefix("/tmp/steward-hook."), !directory.contains("/../"), !directory.contains("\n") else {
            throw JobFailure("mktemp answered \(directory), not a directory under /tmp")
        }
        let path = directory + "/hook"
        do {
            let outcome = try await body(path: path, environment: environment, runner: runner, streamed: streamed)
            _ = try? await quiet(["rm", "-rf", "--", directory], runner: runner)
            return outcome
        } catch {
            _ = try? await quiet(["rm", "-rf", "--", directory], runner: runner)
            throw error
        }
    }

    private func body(
        path: String, environment: [String: String], runner: any ProcessRunning, streamed: @escaping @Sendable (Data) async -> Void
    ) async throws -> ProcessOutcome {
        let copied = try await quiet(["tee", "--", path], runner: runner, input: Data(text.utf8))
        guard copied.outcome.succeeded else { throw JobFailure("copying the hook to its host \(copied.outcome.summary)") }
        let made = try await quiet(["chmod", "0700", "--", path], runner: runner)
        guard made.outcome.succeeded else { throw JobFailure("making the hook executable \(made.outcome.summary)") }
        let argv = text.hasPrefix("#!") ? [path] : ["/bin/sh", "--", path]
        return try await runner.run(make(argv, environment), output: streamed)
    }

    private func quiet(_ argv: [String], runner: any ProcessRunning, input: Data? = nil) async throws -> (outcome: ProcessOutcome, output: Data) {
        var command = make(argv, [:])
        command.timeout = .seconds(120)
        command.input = input
        let collected = Collected()
        let outcome = try await runner.run(command) { data in collected.append(data) }
        return (outcome, collected.data)
    }
}
