import Foundation
import Logging
import ServiceLifecycle

/// Per-host figures derived at ingest, as Prometheus recording rules would: they make the fleet overview and the
/// built-in alert rules read one gauge per host instead of every CPU, filesystem and interface.
public enum HostSummary {
    public static let up = "steward_host_up"
    public static let scrapeSeconds = "steward_host_scrape_duration_seconds"
    public static let cpuPercent = "steward_host_cpu_percent"
    public static let memoryPercent = "steward_host_memory_percent"
    public static let swapPercent = "steward_host_swap_percent"
    public static let filesystemPercent = "steward_host_filesystem_max_percent"
    public static let loadPerCore = "steward_host_load_per_core"
    public static let networkBytes = "steward_host_network_bytes_per_second"
    public static let diskBytes = "steward_host_disk_bytes_per_second"

    public static let names = [up, scrapeSeconds, cpuPercent, memoryPercent, swapPercent, filesystemPercent, loadPerCore, networkBytes, diskBytes]

    /// Derived figures are kept to a precision people read (0.01 % or 0.001 of a load, whole bytes per second):
    /// more digits are noise that would cost the metric store 8 bytes a sample instead of one or two.
    public static func rounded(_ value: Double, digits: Int) -> Double {
        let factor = ChunkCodec.powersOfTen[digits]
        return (value * factor).rounded() / factor
    }

    /// One mounted filesystem as df shows it. Blocks reserved for root (ext4 keeps 5 % by default) are neither used
    /// nor available, so Use% is used / (used + available), not (size − available) / size, which counts them as used.
    public struct Filesystem: Sendable, Equatable {
        public var mountpoint: String
        public var device: String
        public var type: String
        public var sizeBytes: Double
        public var freeBytes: Double
        public var availableBytes: Double

        public init(mountpoint: String, device: String, type: String, sizeBytes: Double, freeBytes: Double, availableBytes: Double) {
            self.mountpoint = mountpoint
            self.device = device
            self.type = type
            self.sizeBytes = sizeBytes
            self.freeBytes = freeBytes
            self.availableBytes = availableBytes
        }

        /// df's Used: size − free (f_blocks − f_bfree).
        public var usedBytes: Double { max(0, sizeBytes - freeBytes) }

        /// df's Use%, a whole percent rounded up; nil when used + available is 0.
        public var usedPercent: Double? { HostSummary.dfPercent(used: usedBytes, available: availableBytes) }
    }

    /// df's Use%: 100 × used / (used + available) rounded up to a whole percent, in integers as coreutils computes it
    /// (a floating-point 21.000000000001 would round up to 22).
    public static func dfPercent(used: Double, available: Double) -> Double? {
        guard used.isFinite, available.isFinite, used >= 0, available >= 0 else { return nil }
        guard used < 0x1p62 / 100, available < 0x1p62 else {
            return used + available > 0 ? (100 * used / (used + available)).rounded(.up) : nil
        }
        let hundredfold = UInt64(used) * 100
        let total = UInt64(used) + UInt64(available)
        guard total > 0 else { return nil }
        return Double(hundredfold / total + (hundredfold % total == 0 ? 0 : 1))
    }

    /// The filesystems in node_exporter's series, without pseudo, in-memory and read-only image filesystems, each
    /// once: a bind mount (the same device with the same figures) counts at its shortest mount point, as df lists it.
    /// Without free bytes (an exporter or allow list that leaves them out) reserved blocks count as used.
    public static func filesystems(
        size: [PrometheusText.Sample], free: [PrometheusText.Sample], available: [PrometheusText.Sample]
    ) -> [Filesystem] {
        var freeBytes: [String: Double] = [:]
        var availableBytes: [String: Double] = [:]
        for sample in free { freeBytes[PrometheusText.canonicalLabels(sample.labels)] = sample.value }
        for sample in available { availableBytes[PrometheusText.canonicalLabels(sample.labels)] = sample.value }
        var result: [Filesystem] = []
        var seen: [String: Int] = [:]
        for sample in size where sample.value > 0 {
            let labels = PrometheusText.canonicalLabels(sample.labels)
            let mountpoint = sample.label("mountpoint") ?? ""
            let type = sample.label("fstype") ?? ""
            guard let spare = availableBytes[labels], !ProcCollector.skipsFilesystem(type: type, mountpoint: mountpoint) else { continue }
            let filesystem = Filesystem(
                mountpoint: mountpoint, device: sample.label("device") ?? "", type: type, sizeBytes: sample.value,
                freeBytes: freeBytes[labels] ?? spare, availableBytes: spare)
            let key = "\(filesystem.device)\u{0}\(filesystem.sizeBytes) \(filesystem.freeBytes) \(filesystem.availableBytes)"
            if let index = seen[key] {
                if mountpoint.count < result[index].mountpoint.count { result[index] = filesystem }
            } else {
                seen[key] = result.count
                result.append(filesystem)
            }
        }
        return result
    }

    /// The filesystem with the highest Use%; on a tie the first mount point in sort order, so `/` before `/srv`.
    public static func fullest(_ filesystems: [Filesystem]) -> Filesystem? {
        filesystems.compactMap { filesystem in filesystem.usedPercent.map { (filesystem: filesystem, percent: $0) } }
            .max { ($0.percent, $1.filesystem.mountpoint) < ($1.percent, $0.filesystem.mountpoint) }?.filesystem
    }

    /// Counter totals from the previous collection, for the rates.
    public struct Counters: Sendable {
        var time: Int64
        var cpuIdle: Double
        var cpuTotal: Double
        var network: Double
        var disk: Double
    }

    /// Derived gauges for one collection, and the counters the next one needs.
    public static func derive(_ families: [PrometheusText.Family], time: Int64, previous: Counters?) -> (values: [String: Double], counters: Counters)
    {
        var values: [String: Double] = [:]
        var byName: [String: [PrometheusText.Sample]] = [:]
        for family in families { for sample in family.samples { byName[sample.name, default: []].append(sample) } }
        func single(_ name: String) -> Double? { byName[name]?.first?.value }

        let cpu = byName["node_cpu_seconds_total"] ?? []
        let idle = cpu.filter { $0.label("mode") == "idle" }
        let cpuIdle = idle.reduce(0) { $0 + $1.value }
        let cpuTotal = cpu.filter { $0.label("mode") != "guest" && $0.label("mode") != "guest_nice" }.reduce(0) { $0 + $1.value }
        let cores = Set(idle.compactMap { $0.label("cpu") }).count
        if let total = single("node_memory_MemTotal_bytes"), let available = single("node_memory_MemAvailable_bytes"), total > 0 {
            values[memoryPercent] = 100 * (1 - available / total)
        }
        if let total = single("node_memory_SwapTotal_bytes"), let free = single("node_memory_SwapFree_bytes") {
            values[swapPercent] = total > 0 ? 100 * (1 - free / total) : 0
        }
        let mounts = filesystems(
            size: byName["node_filesystem_size_bytes"] ?? [], free: byName["node_filesystem_free_bytes"] ?? [],
            available: byName["node_filesystem_avail_bytes"] ?? [])
        if let percent = fullest(mounts)?.usedPercent { values[filesystemPercent] = percent }
        if let load = single("node_load1"), cores > 0 { values[loadPerCore] = load / Double(cores) }
        let network = ((byName["node_network_receive_bytes_total"] ?? []) + (byName["node_network_transmit_bytes_total"] ?? []))
            .filter { $0.label("device") != "lo" }.reduce(0) { $0 + $1.value }
        let disk = ((byName["node_disk_read_bytes_total"] ?? []) + (byName["node_disk_written_bytes_total"] ?? [])).reduce(0) { $0 + $1.value }
        let counters = Counters(time: time, cpuIdle: cpuIdle, cpuTotal: cpuTotal, network: network, disk: disk)
        if let previous, time > previous.time {
            let seconds = Double(time - previous.time) / 1000
            let busy = counters.cpuTotal - previous.cpuTotal
            if busy > 0, counters.cpuIdle >= previous.cpuIdle {
                values[cpuPercent] = min(100, max(0, 100 * (1 - (counters.cpuIdle - previous.cpuIdle) / busy)))
            }
            if network >= previous.network, !cpu.isEmpty || network > 0 { values[networkBytes] = (network - previous.network) / seconds }
            if disk >= previous.disk { values[diskBytes] = (disk - previous.disk) / seconds }
        }
        let precision: [String: Int] = [loadPerCore: 3, networkBytes: 0, diskBytes: 0]
        for (name, value) in values { values[name] = rounded(value, digits: precision[name] ?? 2) }
        return (values, counters)
    }
}

/// Collects every `metrics_interval_seconds`: the panel host (transport local) from /proc, every other enabled host
/// with a metrics URL by scraping it. Samples carry the tick's time, not the moment the answer came, so a 10 s
/// interval stores exact 10 s steps (as Prometheus's timestamp tolerance does). Each round ends with one flush.
public final class MetricCollector: Service, @unchecked Sendable {
    let store: MetricStore
    let hosts: HostStore
    let interval: Int64
    let scraper: MetricsScraper
    let proc: ProcCollector
    let logger: Logger
    private let lock = NSLock()
    private var counters: [Int64: HostSummary.Counters] = [:]
    private var failures: [Int64: Int] = [:]
    private var lastRound: (time: Int64, samples: Int, flushed: Int) = (0, 0, 0)
    /// Where kept samples are also sent, when remote-write endpoints are configured.
    public let remoteWrite: RemoteWrite?

    /// Consecutive failed scrapes before a host that was up is marked down.
    public static let failuresBeforeDown = 2

    public init(
        store: MetricStore, hosts: HostStore, intervalSeconds: Int, timeoutSeconds: Int, proc: ProcCollector = ProcCollector(),
        remoteWrite: RemoteWrite? = nil, logger: Logger
    ) {
        self.store = store
        self.remoteWrite = remoteWrite
        self.hosts = hosts
        interval = Int64(intervalSeconds) * 1000
        scraper = MetricsScraper(timeout: TimeInterval(timeoutSeconds))
        self.proc = proc
        self.logger = logger
    }

    public func run() async throws {
        // Graceful shutdown (SIGTERM) cancels the loop's sleep; a round in progress finishes first.
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                let now = EpochMilliseconds.from(Date())
                let tick = (now / interval + 1) * interval
                do {
                    try await Task.sleep(for: .milliseconds(tick - now))
                } catch { break }
                do {
                    try await collect(at: tick)
                } catch {
                    logger.error("metric collection failed", metadata: ["error": "\(error)"])
                }
            }
        }
        // Whatever the last round appended reaches the disk before the process exits.
        _ = try? await offload { [store] in try store.flush() }
    }

    /// One round: collect every host concurrently, ingest, flush, then update host states from the outcome.
    @discardableResult
    public func collect(at tick: Int64) async throws -> Int {
        let everyHost = try hosts.all()
        store.retainHosts(Set(everyHost.map(\.id)))
        let targets = everyHost.filter { $0.enabled && ($0.transport == .local || $0.metricsURL != nil) }
        let results = await withTaskGroup(of: (Host, Result<[PrometheusText.Family], any Error>, Double).self) { group in
            for host in targets {
                group.addTask { [proc, scraper] in
                    let started = Date()
                    do {
                        let families: [PrometheusText.Family]
                        if let url = host.metricsURL {
                            families = try await scraper.scrape(url)
                        } else {
                            families = try await offload { proc.collect() }
                        }
                        return (host, .success(families), Date().timeIntervalSince(started))
                    } catch {
                        return (host, .failure(error), Date().timeIntervalSince(started))
                    }
                }
            }
            var collected: [(Host, Result<[PrometheusText.Family], any Error>, Double)] = []
            for await result in group { collected.append(result) }
            return collected
        }
        var total = 0
        for (host, result, seconds) in results {
            switch result {
            case .success(let families):
                total += try ingest(host: host, families: families, time: tick, scrapeSeconds: seconds)
                try noteOutcome(host, error: nil)
            case .failure(let error):
                total += try ingest(host: host, families: [], time: tick, scrapeSeconds: seconds, up: false)
                try noteOutcome(host, error: error)
            }
        }
        let report = try await offload { [store] in try store.flush() }
        if let remoteWrite {
            do { try remoteWrite.persist() } catch { logger.error("remote write: queueing the round failed", metadata: ["error": "\(error)"]) }
        }
        lock.withLock { lastRound = (tick, total, report.chunks) }
        return total
    }

    /// Keep the allowed series, add the derived host gauges, and append them all at `time`. A sample that carries
    /// its own timestamp is stored at that time, as Prometheus stores it; a target that repeats a timestamp with the
    /// same value adds nothing.
    @discardableResult
    public func ingest(host: Host, families: [PrometheusText.Family], time: Int64, scrapeSeconds: Double, up: Bool = true) throws -> Int {
        let allow = MetricAllowList(text: host.metricsAllow)
        var entries: [(name: String, labels: String, type: PrometheusText.FamilyType)] = []
        var values: [Double] = []
        var times: [Int64] = []
        var seen: Set<String> = []
        for family in families {
            for sample in family.samples where allow.allows(sample) {
                let labels = PrometheusText.canonicalLabels(sample.labels)
                guard seen.insert(sample.name + "{" + labels + "}").inserted else { continue }
                entries.append((sample.name, labels, family.type == .histogram || family.type == .summary ? .untyped : family.type))
                values.append(sample.value)
                times.append(sample.timestamp ?? time)
            }
        }
        let previous = lock.withLock { counters[host.id] }
        var derived: [String: Double] = [HostSummary.up: up ? 1 : 0, HostSummary.scrapeSeconds: HostSummary.rounded(scrapeSeconds, digits: 4)]
        if up {
            let summary = HostSummary.derive(families, time: time, previous: previous)
            derived.merge(summary.values) { a, _ in a }
            lock.withLock { counters[host.id] = summary.counters }
        }
        for name in HostSummary.names where derived[name] != nil {
            entries.append((name, "", .gauge))
            values.append(derived[name]!)
            times.append(time)
        }
        let ids = try store.resolve(hostID: host.id, series: entries)
        let samples = (0..<ids.count).map { (ids[$0], times[$0], values[$0]) }
        guard let remoteWrite, remoteWrite.active else { return store.append(samples) }
        let kept = store.appendKeeping(samples)
        remoteWrite.enqueue(host: host.name, samples: kept.map { (entries[$0].name, entries[$0].labels, times[$0], values[$0]) })
        return kept.count
    }

    /// Scrapes decide up and down for hosts with a metrics URL: a success marks a down or unknown host up, and
    /// `failuresBeforeDown` failures in a row mark an up or unknown host down with the reason. An SSH finding
    /// (unreachable, such as a changed host key) is left for the connectivity check to clear.
    func noteOutcome(_ host: Host, error: (any Error)?) throws {
        let failed = lock.withLock { () -> Int in
            failures[host.id] = error == nil ? 0 : (failures[host.id] ?? 0) + 1
            return failures[host.id] ?? 0
        }
        if error == nil, host.state == .down || host.state == .unknown {
            try hosts.setState(id: host.id, .up, detail: host.metricsURL.map { "metrics from \($0)" } ?? "metrics from /proc", seen: Date())
        } else if let error, failed >= Self.failuresBeforeDown, host.state == .up || host.state == .unknown {
            try hosts.setState(id: host.id, .down, detail: "\(failed) scrapes in a row failed: \(error)", seen: nil)
        }
    }

    /// What the last round did, for the dashboard's footer and /metrics.
    public var lastRoundSummary: (time: Int64, samples: Int, flushed: Int) { lock.withLock { lastRound } }
}
