import Foundation
import GRDB

/// The state sources Steward evaluates besides the metric store, and the rule pack it installs on first start.
public enum BuiltinAlerts {
    /// Facts-based ages are cached per host until newer facts arrive (facts are gathered hourly).
    final class FactsCache: @unchecked Sendable {
        let lock = NSLock()
        var entries: [String: (gatheredAt: Int64, since: Int64?)] = [:]
    }

    /// Sources: the newest engine job on the host failed; security updates or a reboot pending since when; and the
    /// backup sources (each backup plan has its own two rules on them, see BackupAlerts).
    public static func sources(database: DatabasePool) -> [AlertSource] {
        let cache = FactsCache()
        return [
            AlertSource(name: "job_failed", description: "1 when the newest playbook or command that ran on the host failed or could not reach it") {
                host, _, _ in
                let status = try database.read { db in
                    try String.fetchOne(
                        db,
                        sql: """
                            SELECT r.status FROM job_host_results r JOIN jobs j ON j.id = r.job_id
                            WHERE r.host = ? AND j.state IN ('succeeded', 'failed') ORDER BY j.id DESC LIMIT 1
                            """, arguments: [host.name])
                }
                guard let status else { return .noData }
                return .value(status == "failed" || status == "unreachable" ? 1 : 0)
            },
            AlertSource(name: "security_updates_age_days", description: "days that security updates have been pending, by gathered facts") {
                host, _, now in try factsAge(database: database, cache: cache, host: host, kind: "security", now: now)
            },
            AlertSource(name: "reboot_required_age_days", description: "days that the host has needed a reboot, by gathered facts") {
                host, _, now in try factsAge(database: database, cache: cache, host: host, kind: "reboot", now: now)
            },
        ] + BackupAlerts.sources(database: database)
    }

    /// The panel host's data disk, as multiples of the reserve (disk_reserve_mb) still free; 0 right after a write
    /// failed for want of space. Other hosts have no value (their disks are watched through node_exporter).
    public static func panelDisk(_ disk: DiskSpace) -> AlertSource {
        AlertSource(name: "panel_data_disk_free_reserves", description: "free space on Steward's data disk, in multiples of disk_reserve_mb") {
            host, _, now in
            guard host.transport == .local, let ratio = disk.freeRatio(now: now) else { return .noData }
            return .value((ratio * 100).rounded() / 100)
        }
    }

    /// How long, in days, every facts record back from the newest has shown `kind` (security updates or reboot).
    static func factsAge(database: DatabasePool, cache: FactsCache, host: Host, kind: String, now: Int64) throws -> AlertObservation {
        let newest = try database.read { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(gathered_at) FROM host_facts WHERE host_id = ?", arguments: [host.id])
        }
        guard let newest else { return .noData }
        let key = "\(host.id):\(kind)"
        if let cached = cache.lock.withLock({ cache.entries[key] }), cached.gatheredAt == newest {
            return .value(cached.since.map { Double(now - $0) / 86_400_000 } ?? 0)
        }
        let rows = try database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT gathered_at, job_id, facts FROM host_facts WHERE host_id = ? ORDER BY gathered_at DESC LIMIT 2000",
                arguments: [host.id])
        }
        var since: Int64?
        for row in rows {
            guard let object = try? JSONSerialization.jsonObject(with: Data((row["facts"] as String).utf8)) as? [String: Any] else { break }
            let facts = HostFacts(object, gatheredAt: EpochMilliseconds.date(row["gathered_at"]), jobID: row["job_id"])
            let showing = kind == "security" ? !facts.securityUpdates.isEmpty : facts.rebootRequired
            guard showing else { break }
            since = row["gathered_at"]
        }
        cache.lock.withLock { cache.entries[key] = (newest, since) }
        return .value(since.map { Double(now - $0) / 86_400_000 } ?? 0)
    }

    /// The rule pack: installed once each (by key), then the operators' to edit or pause. Deleting is refused.
    public static func rules() -> [AlertRule] { metricRules() + LogAlerts.rules() }

    static func metricRules() -> [AlertRule] {
        func rule(_ key: String, _ name: String, configure: (inout AlertRule) -> Void) -> AlertRule {
            var rule = AlertRule()
            rule.builtin = key
            rule.name = name
            configure(&rule)
            return rule
        }
        return [
            rule("host_down", "Host down") {
                $0.metric = HostSummary.up
                $0.aggregation = .max
                $0.windowSeconds = 60
                $0.comparison = .below
                $0.critThreshold = 0.5
                $0.forSeconds = 60
                $0.noData = .ok
                $0.summary = "{{host}} is down: its metrics endpoint has not answered for over a minute"
                $0.description = """
                    Steward could not scrape {{host}} (see the host's state for the error). Check that the host is running \
                    and reachable, and that prometheus-node-exporter is running on it (systemctl status prometheus-node-exporter).
                    """
            },
            rule("filesystem_full", "Filesystem almost full") {
                $0.metric = HostSummary.filesystemPercent
                $0.aggregation = .avg
                $0.windowSeconds = 300
                $0.warnThreshold = 85
                $0.warnClear = 82
                $0.critThreshold = 90
                $0.critClear = 88
                $0.forSeconds = 300
                $0.summary = "{{host}}: the fullest filesystem is {{value}} % used"
                $0.description = """
                    A filesystem on {{host}} is over the {{threshold}} % threshold. Find what grew (du -xh --max-depth=2 on the \
                    mount point; journalctl --disk-usage), clear or move it, or grow the filesystem. The host's metrics page shows \
                    which mount point.
                    """
            },
            rule("filesystem_full_24h", "Filesystem predicted full within 24 h") {
                $0.metric = HostSummary.filesystemPercent
                $0.aggregation = .predictLinear
                $0.windowSeconds = 6 * 3600
                $0.horizonSeconds = 86400
                $0.warnThreshold = 100
                $0.forSeconds = 1800
                $0.noData = .ok
                $0.summary = "{{host}}: at the last 6 hours' rate, a filesystem fills within 24 hours (predicted {{value}} %)"
                $0.description = """
                    Usage on {{host}} is growing fast enough to reach 100 % within a day. Look for a runaway log or dump before \
                    it fills; the host's metrics page shows the trend.
                    """
            },
            rule("memory_saturation", "Memory saturation") {
                $0.metric = HostSummary.memoryPercent
                $0.windowSeconds = 300
                $0.warnThreshold = 90
                $0.warnClear = 85
                $0.critThreshold = 95
                $0.critClear = 92
                $0.forSeconds = 600
                $0.summary = "{{host}}: memory {{value}} % used"
                $0.description = """
                    {{host}} has little memory available; the kernel may start swapping or killing processes. Find the largest \
                    processes (ps aux --sort=-rss | head) and restart or limit them, or add memory.
                    """
            },
            rule("cpu_saturation", "CPU saturation") {
                $0.metric = HostSummary.loadPerCore
                $0.windowSeconds = 900
                $0.warnThreshold = 1.5
                $0.warnClear = 1.2
                $0.critThreshold = 3
                $0.critClear = 2.5
                $0.forSeconds = 900
                $0.summary = "{{host}}: load is {{value}} per core"
                $0.description = """
                    More work is queued on {{host}} than its CPUs can run, so requests wait. Check top for the busiest \
                    processes and for I/O wait; spread the load or add CPUs.
                    """
            },
            rule("panel_data_disk", "Steward's data disk almost full") {
                $0.source = "panel_data_disk_free_reserves"
                $0.comparison = .below
                $0.warnThreshold = 2
                $0.warnClear = 2.5
                $0.critThreshold = 1
                $0.critClear = 1.2
                $0.noData = .ok
                $0.summary = "{{host}}: Steward's data disk has {{value}} times its reserve free"
                $0.description = """
                    The file system holding Steward's data directory on {{host}} is running out of space. Below the reserve \
                    (disk_reserve_mb) /readyz fails; at zero, saving anything answers 507 while pages still read. Free space \
                    there (du -xh on the data directory's file system, journalctl --vacuum-size, old restic repositories) or \
                    grow it; Steward resumes writing by itself.
                    """
            },
            rule("job_failed", "Engine job failed") {
                $0.source = "job_failed"
                $0.warnThreshold = 1
                $0.noData = .ok
                $0.summary = "{{host}}: the newest playbook or command run on it failed"
                $0.description = """
                    The last engine job that touched {{host}} failed or could not reach it, so the host may not be in the state \
                    the config repo describes. Open the job from the host's page, fix the cause, and run it again; this clears \
                    when a later run succeeds.
                    """
            },
            rule("security_updates_pending", "Security updates pending over 7 days") {
                $0.source = "security_updates_age_days"
                $0.warnThreshold = 7
                $0.critThreshold = 30
                $0.noData = .ok
                $0.summary = "{{host}}: security updates have waited {{value}} days"
                $0.description = """
                    Security updates on {{host}} have been pending for over a week. Roll them out (Updates), canary first; \
                    the host's page lists the packages.
                    """
            },
            rule("reboot_required", "Reboot required over 7 days") {
                $0.source = "reboot_required_age_days"
                $0.warnThreshold = 7
                $0.critThreshold = 30
                $0.noData = .ok
                $0.summary = "{{host}}: has needed a reboot for {{value}} days"
                $0.description = """
                    {{host}} has installed updates (a kernel or libraries) that only take effect after a reboot. Schedule one \
                    in a maintenance window.
                    """
            },
        ]
    }

    /// Install each built-in rule whose key is not in the database yet.
    public static func ensure(_ store: AlertRuleStore, now: Date) throws {
        // Host-wide backup rules came before plans had rules of their own; each plan now has two, so these go.
        for legacy in try store.all() where legacy.builtin == "backup_failed" || legacy.builtin == "backup_missing" {
            _ = try store.delete(id: legacy.id, by: AuditActor(actor: "system"), now: now)
        }
        let present = Set(try store.all().compactMap(\.builtin))
        for rule in rules() where !present.contains(rule.builtin ?? "") {
            var named = rule
            if try store.all().contains(where: { $0.name == rule.name }) { named.name += " (built-in)" }
            _ = try store.create(named, by: AuditActor(actor: "system"), now: now)
        }
    }
}
