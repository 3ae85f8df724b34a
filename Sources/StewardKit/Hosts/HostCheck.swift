import Foundation

/// The `hosts.check` job: for every enabled host, check its SSH host key against the trusted one, then try a
/// login. Sets each host up / down / unreachable with the time it was last seen. A changed key marks the host
/// unreachable with both fingerprints, and nothing connects to it.
public enum HostCheck {
    public static let kind = "hosts.check"
    public static let scheduleName = "Host connectivity check"

    public static func handler(hosts: HostStore, keys: HostKeyStore) -> JobHandler {
        { context in
            let all = try hosts.all().filter(\.enabled)
            for (index, host) in all.enumerated() {
                try Task.checkCancellation()
                try await context.progress(Double(index) * 100 / Double(max(all.count, 1)), "checking \(host.name)")
                let (state, detail) = try await check(host, keys: keys)
                try hosts.setState(id: host.id, state, detail: detail, seen: state == .up ? Date() : nil)
                await context.log("\(host.name): \(state.rawValue)\(detail.map { " (\($0))" } ?? "")")
            }
            try await context.progress(100, "checked \(all.count) host(s)")
        }
    }

    /// One host: key verdict first, then a real login that runs `true`.
    static func check(_ host: Host, keys: HostKeyStore) async throws -> (Host.State, String?) {
        guard host.transport == .ssh else { return (.up, "local transport") }
        let verdict = try await keys.scan(host, now: Date())
        switch verdict {
        case .unreachable(let detail):
            return (.down, detail)
        case .unconfirmed, .changed:
            return (.unreachable, verdict.message)
        case .trusted:
            let result = try await ShortCommand.output(
                ["ssh"] + keys.identity.sshOptions() + ["-p", String(host.sshPort), "-l", host.sshUser, "--", host.address, "true"], timeout: 30)
            if result.status == 0 { return (.up, nil) }
            let reason = result.stderr.split(separator: "\n").last.map(String.init) ?? "ssh exited \(result.status)"
            return (.unreachable, "SSH login as \(host.sshUser) failed: \(reason)")
        }
    }

    public static func ensureSchedule(_ store: ScheduleStore, now: Date) throws {
        guard try store.schedule(named: scheduleName) == nil else { return }
        _ = try store.create(
            name: scheduleName,
            settings: ScheduleSettings(cron: "*/5 * * * *", timeZone: "UTC", jitterSeconds: 30, catchUp: .none, concurrency: .forbid),
            jobKind: kind, jobTitle: "Check host connectivity and host keys", owner: "system", now: now)
    }
}
