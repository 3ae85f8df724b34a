import Foundation
import Logging
import Synchronization

/// The process groups this process has started and not yet seen end, kept in a file so the next start can end
/// whatever a killed Steward left running (an ansible run and its children, a restic backup): otherwise a job that
/// was marked interrupted could still be working, and a rerun would overlap it.
///
/// Each line is "PGID STARTTIME": the leader's start time in clock ticks since boot (/proc/PID/stat field 22), so a
/// group id that the kernel has since handed to another program is never mistaken for ours.
public final class ProcessGroupRegistry: Sendable {
    public static let shared = ProcessGroupRegistry()

    struct State {
        var file: String?
        var groups: [pid_t: UInt64] = [:]
    }
    private let state = Mutex(State())

    /// Start recording into `file` (made 0600; its directory must exist).
    public func record(to file: String) {
        state.withLock { $0.file = file }
        save()
    }

    func started(_ pgid: pid_t) {
        guard let ticks = Self.startTicks(pgid) else { return }
        let recording = state.withLock { state -> Bool in
            state.groups[pgid] = ticks
            return state.file != nil
        }
        if recording { save() }
    }

    func ended(_ pgid: pid_t) {
        let recording = state.withLock { state -> Bool in
            state.groups[pgid] = nil
            return state.file != nil
        }
        if recording { save() }
    }

    private func save() {
        let (file, text): (String?, String) = state.withLock { state in
            (state.file, state.groups.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)\n" }.joined())
        }
        guard let file else { return }
        let temporary = file + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { return }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        rename(temporary, file)
    }

    /// The start time of process `pid` in clock ticks since boot, nil when there is no such process.
    static func startTicks(_ pid: pid_t) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name (which may hold spaces) start at field 3; the start time is field 22.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// Processes in group `pgid`, with their owners and start times.
    static func members(of pgid: pid_t) -> [(pid: pid_t, uid: uid_t, start: UInt64)] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var found: [(pid_t, uid_t, UInt64)] = []
        for entry in entries {
            guard let pid = pid_t(entry), let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = text.lastIndex(of: ")")
            else { continue }
            let fields = text[text.index(after: close)...].split(separator: " ")
            // Zombies have ended already; only their parent can clear them.
            guard fields.count > 19, fields[0] != "Z", pid_t(fields[2]) == pgid, let start = UInt64(fields[19]) else { continue }
            guard let facts = FileFacts("/proc/\(pid)") else { continue }
            found.append((pid, facts.owner, start))
        }
        return found
    }

    /// End the groups a previous run recorded in `file` and still running: SIGTERM, up to `grace`, then SIGKILL.
    /// Only processes owned by `owner` (when given) that started no earlier than the recorded leader are touched.
    /// Returns what was ended, for the log.
    @discardableResult
    public static func endLeftovers(
        file: String, owner: uid_t? = nil, grace: Duration = .seconds(5), logger: Logger? = nil
    ) -> [pid_t] {
        // The list must be the owner's own: a list someone else could write must not choose what gets killed.
        guard let facts = FileFacts(file) else { return [] }
        if let owner, facts.owner != owner || !facts.isRegularFile {
            logger?.warning("ignoring a process group list that is not this user's own file", metadata: ["file": "\(file)"])
            unlink(file)
            return []
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [] }
        var ended: [pid_t] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let pgid = pid_t(parts[0]), pgid > 1, let ticks = UInt64(parts[1]) else { continue }
            // The leader must be the one recorded, or gone with members that started after it did (the kernel
            // does not hand out a live group's id, so those are still its members).
            if let leaderStart = startTicks(pgid), leaderStart != ticks { continue }
            let members = members(of: pgid).filter { $0.start >= ticks && (owner == nil || $0.uid == owner) }
            guard !members.isEmpty else { continue }
            logger?.warning(
                "ending processes a previous Steward left running", metadata: ["process_group": "\(pgid)", "processes": "\(members.map(\.pid))"])
            for member in members { kill(member.pid, SIGTERM) }
            let deadline = ContinuousClock.now + grace
            let alive = { Set(Self.members(of: pgid).map(\.pid)).intersection(members.map(\.pid)) }
            while ContinuousClock.now < deadline, !alive().isEmpty {
                usleep(50_000)
            }
            for pid in alive() { kill(pid, SIGKILL) }
            ended.append(pgid)
        }
        unlink(file)
        return ended
    }
}
