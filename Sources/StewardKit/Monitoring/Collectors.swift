import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Reads the panel host's own figures from /proc and statvfs, under node_exporter's series names, so the panel host
/// and every scraped host are charted and alerted on alike.
public struct ProcCollector: Sendable {
    public var root: String
    /// USER_HZ: /proc/stat counts CPU time in these ticks.
    public var ticksPerSecond: Double

    public init(root: String = "/proc", ticksPerSecond: Double = Double(sysconf(Int32(_SC_CLK_TCK)))) {
        self.root = root
        self.ticksPerSecond = ticksPerSecond > 0 ? ticksPerSecond : 100
    }

    /// Kernel pseudo filesystems (df leaves these out too), memory-backed ones (the memory gauge covers them), and
    /// read-only images, which are always full: node_exporter's default exclusions plus tmpfs, ramfs and lxcfs.
    static let pseudoFilesystems: Set<String> = [
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs", "fusectl", "hugetlbfs",
        "mqueue", "nsfs", "proc", "procfs", "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs",
        "tmpfs", "tracefs", "fuse.lxcfs", "fuse.gvfsd-fuse", "efivarfs", "erofs", "iso9660",
    ]

    /// Whether a mount stays out of the filesystem series. An overlay is a container's layers over a filesystem that is
    /// counted where it is mounted, except at `/`, where it is the container's own root and the only figure there is.
    static func skipsFilesystem(type: String, mountpoint: String?) -> Bool {
        pseudoFilesystems.contains(type) || (type == "overlay" && mountpoint != "/")
    }

    public func collect() -> [PrometheusText.Family] {
        var families: [PrometheusText.Family] = []
        func add(_ name: String, _ type: PrometheusText.FamilyType, _ samples: [([(String, String)], Double)]) {
            guard !samples.isEmpty else { return }
            families.append(
                PrometheusText.Family(
                    name: name, type: type, help: nil, samples: samples.map { PrometheusText.Sample(name: name, labels: $0.0, value: $0.1) }))
        }
        let stat = read("stat")
        let modes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
        var cpu: [([(String, String)], Double)] = []
        for line in stat.split(separator: "\n") where line.hasPrefix("cpu") && !line.hasPrefix("cpu ") {
            let fields = line.split(separator: " ")
            let number = String(fields[0].dropFirst(3))
            for (offset, mode) in modes.enumerated() where offset + 1 < fields.count {
                cpu.append(([("cpu", number), ("mode", mode)], (Double(fields[offset + 1]) ?? 0) / ticksPerSecond))
            }
        }
        add("node_cpu_seconds_total", .counter, cpu)
        for line in stat.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let value = Double(fields[1]) else { continue }
            switch fields[0] {
            case "btime": add("node_boot_time_seconds", .gauge, [([], value)])
            case "ctxt": add("node_context_switches_total", .counter, [([], value)])
            case "procs_running": add("node_procs_running", .gauge, [([], value)])
            case "procs_blocked": add("node_procs_blocked", .gauge, [([], value)])
            default: break
            }
        }
        let load = read("loadavg").split(separator: " ")
        if load.count >= 3 {
            add("node_load1", .gauge, [([], Double(load[0]) ?? 0)])
            add("node_load5", .gauge, [([], Double(load[1]) ?? 0)])
            add("node_load15", .gauge, [([], Double(load[2]) ?? 0)])
        }
        let wanted: Set<Substring> = ["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree"]
        for line in read("meminfo").split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            guard fields.count >= 2, wanted.contains(fields[0]), let value = Double(fields[1]) else { continue }
            let bytes = fields.count >= 3 && fields[2] == "kB" ? value * 1024 : value
            add("node_memory_\(fields[0])_bytes", .gauge, [([], bytes)])
        }
        var sizes: [([(String, String)], Double)] = []
        var available: [([(String, String)], Double)] = []
        var free: [([(String, String)], Double)] = []
        var seenMounts: Set<String> = []
        for line in read("mounts").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            let device = Self.unescapeMount(String(fields[0]))
            let mountpoint = Self.unescapeMount(String(fields[1]))
            let type = String(fields[2])
            guard !Self.skipsFilesystem(type: type, mountpoint: mountpoint), seenMounts.insert(mountpoint).inserted else { continue }
            var info = statvfs()
            guard statvfs(mountpoint, &info) == 0, info.f_blocks > 0 else { continue }
            let labels = [("device", device), ("fstype", type), ("mountpoint", mountpoint)]
            let fragment = Double(info.f_frsize)
            sizes.append((labels, Double(info.f_blocks) * fragment))
            available.append((labels, Double(info.f_bavail) * fragment))
            free.append((labels, Double(info.f_bfree) * fragment))
        }
        add("node_filesystem_size_bytes", .gauge, sizes)
        add("node_filesystem_avail_bytes", .gauge, available)
        add("node_filesystem_free_bytes", .gauge, free)
        var reads: [([(String, String)], Double)] = []
        var writes: [([(String, String)], Double)] = []
        var busy: [([(String, String)], Double)] = []
        for line in read("diskstats").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 14 else { continue }
            let device = String(fields[2])
            guard Self.isWholeDisk(device) else { continue }
            reads.append(([("device", device)], (Double(fields[5]) ?? 0) * 512))
            writes.append(([("device", device)], (Double(fields[9]) ?? 0) * 512))
            busy.append(([("device", device)], (Double(fields[12]) ?? 0) / 1000))
        }
        add("node_disk_read_bytes_total", .counter, reads)
        add("node_disk_written_bytes_total", .counter, writes)
        add("node_disk_io_time_seconds_total", .counter, busy)
        var received: [([(String, String)], Double)] = []
        var transmitted: [([(String, String)], Double)] = []
        var receiveErrors: [([(String, String)], Double)] = []
        var transmitErrors: [([(String, String)], Double)] = []
        for line in read("net/dev").split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let device = line[..<colon].trimmingCharacters(in: .whitespaces)
            let fields = line[line.index(after: colon)...].split(separator: " ")
            guard fields.count >= 16 else { continue }
            received.append(([("device", device)], Double(fields[0]) ?? 0))
            receiveErrors.append(([("device", device)], Double(fields[2]) ?? 0))
            transmitted.append(([("device", device)], Double(fields[8]) ?? 0))
            transmitErrors.append(([("device", device)], Double(fields[10]) ?? 0))
        }
        add("node_network_receive_bytes_total", .counter, received)
        add("node_network_transmit_bytes_total", .counter, transmitted)
        add("node_network_receive_errs_total", .counter, receiveErrors)
        add("node_network_transmit_errs_total", .counter, transmitErrors)
        return families
    }

    private func read(_ name: String) -> String { (try? String(contentsOfFile: root + "/" + name, encoding: .utf8)) ?? "" }

    /// node_exporter's default: whole disks only, no partitions, loop, ram or floppy devices.
    static func isWholeDisk(_ device: String) -> Bool {
        if device.hasPrefix("loop") || device.hasPrefix("ram") || device.hasPrefix("fd") || device.hasPrefix("zram") { return false }
        let scalars = Array(device.unicodeScalars)
        let endsInDigit = scalars.last.map { ("0"..."9").contains($0) } ?? false
        for prefix in ["sd", "vd", "hd", "xvd"] where device.hasPrefix(prefix) { return !endsInDigit }
        if device.hasPrefix("nvme") || device.hasPrefix("mmcblk") { return !device.dropFirst(4).contains("p") }
        return true
    }

    /// /proc/mounts writes space, tab, newline and backslash as octal escapes.
    static func unescapeMount(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == 0x5C, index + 3 < utf8.count,
                let value = UInt8(String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Fetches a host's metrics URL (node_exporter) with a deadline.
public struct MetricsScraper: Sendable {
    public var timeout: TimeInterval
    public var maximumBytes: Int

    public init(timeout: TimeInterval = 5, maximumBytes: Int = 16 << 20) {
        self.timeout = timeout
        self.maximumBytes = maximumBytes
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public func scrape(_ url: String) async throws -> [PrometheusText.Family] {
        guard let target = URL(string: url), target.scheme == "http" || target.scheme == "https" else {
            throw Failure(description: "\(url) is not an http(s) URL")
        }
        var request = URLRequest(url: target, timeoutInterval: timeout)
        request.setValue("text/plain;version=0.0.4", forHTTPHeaderField: "Accept")
        request.setValue("Steward/\(StewardVersion.current)", forHTTPHeaderField: "User-Agent")
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await session.data(for: request)
        } catch {
            throw Failure(description: "\(url) did not answer within \(Int(timeout)) s: \(error.localizedDescription)")
        }
        guard let http = response as? HTTPURLResponse, (200..<300).contains(http.statusCode) else {
            throw Failure(description: "\(url) answered HTTP \((response as? HTTPURLResponse)?.statusCode ?? 0), not 2xx")
        }
        guard data.count <= maximumBytes else { throw Failure(description: "\(url) sent \(data.count) bytes, over the \(maximumBytes) limit") }
        do {
            return try PrometheusText.parse(data: data)
        } catch {
            throw Failure(description: "\(url) is not Prometheus text format: \(error)")
        }
    }
}

/// Which scraped series are kept: metric names or globs (`node_memory_*`), one per line, plus filters that drop
/// pseudo filesystems and the loopback device as node_exporter's own defaults would.
public struct MetricAllowList: Sendable, Equatable {
    public var patterns: [String]

    /// node_exporter's usual series: what the dashboards and the built-in alert rules read.
    public static let defaultPatterns = [
        "node_cpu_seconds_total", "node_load1", "node_load5", "node_load15",
        "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes", "node_memory_MemFree_bytes", "node_memory_Buffers_bytes",
        "node_memory_Cached_bytes", "node_memory_SwapTotal_bytes", "node_memory_SwapFree_bytes",
        "node_filesystem_size_bytes", "node_filesystem_avail_bytes", "node_filesystem_free_bytes",
        "node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_disk_io_time_seconds_total",
        "node_network_receive_bytes_total", "node_network_transmit_bytes_total", "node_network_receive_errs_total",
        "node_network_transmit_errs_total", "node_boot_time_seconds", "node_procs_running", "node_procs_blocked",
        "node_context_switches_total",
        // What the published node-exporter alert packs read, so an imported pack finds its series.
        "node_bonding_active", "node_bonding_slaves", "node_disk_io_time_weighted_seconds_total", "node_disk_read_time_seconds_total",
        "node_disk_reads_completed_total", "node_disk_write_time_seconds_total", "node_disk_writes_completed_total",
        "node_edac_correctable_errors_total", "node_edac_uncorrectable_errors_total", "node_filefd_allocated", "node_filefd_maximum",
        "node_filesystem_device_error", "node_filesystem_files", "node_filesystem_files_free", "node_filesystem_readonly",
        "node_hwmon_temp_alarm", "node_hwmon_temp_celsius", "node_hwmon_temp_crit_alarm_celsius", "node_hwmon_temp_max_celsius",
        "node_md_disks", "node_md_disks_required", "node_network_receive_packets_total", "node_network_speed_bytes",
        "node_network_transmit_packets_total", "node_nf_conntrack_entries", "node_nf_conntrack_entries_limit", "node_systemd_unit_state",
        "node_textfile_scrape_error", "node_timex_maxerror_seconds", "node_timex_offset_seconds", "node_timex_sync_status", "node_uname_info",
        "node_vmstat_oom_kill", "node_vmstat_pgmajfault",
    ]

    public static let standard = MetricAllowList(patterns: defaultPatterns)

    public init(patterns: [String]) { self.patterns = patterns }

    /// One pattern per line; blank lines and `#` comments ignored. nil or empty text means the default list.
    public init(text: String?) {
        let lines = (text ?? "").split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        patterns = lines.isEmpty ? Self.defaultPatterns : lines
    }

    /// A problem with the text, or nil when every line is a metric name, optionally with `*` wildcards.
    public static func problem(_ text: String) -> String? {
        for line in text.split(whereSeparator: \.isNewline).map({ $0.trimmingCharacters(in: .whitespaces) })
        where !line.isEmpty && !line.hasPrefix("#") {
            guard PrometheusText.isMetricName(line.replacingOccurrences(of: "*", with: "x")) else {
                return "\"\(line)\" is not a metric name; use names such as node_load1, with * as a wildcard (node_memory_*)"
            }
        }
        return text.utf8.count > 8192 ? "the list is limited to 8192 bytes" : nil
    }

    public func allows(_ sample: PrometheusText.Sample) -> Bool {
        guard patterns.contains(where: { Self.matches($0, sample.name) }) else { return false }
        if let type = sample.label("fstype"), ProcCollector.skipsFilesystem(type: type, mountpoint: sample.label("mountpoint")) { return false }
        if sample.name.hasPrefix("node_network_"), sample.label("device") == "lo" { return false }
        return true
    }

    static func matches(_ pattern: String, _ name: String) -> Bool {
        guard pattern.contains("*") else { return pattern == name }
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
        var rest = Substring(name)
        for (index, part) in parts.enumerated() {
            if index == 0 {
                guard rest.hasPrefix(part) else { return false }
                rest = rest.dropFirst(part.count)
            } else if index == parts.count - 1 {
                return part.isEmpty || rest.hasSuffix(part)
            } else if let range = rest.range(of: part) {
                rest = rest[range.upperBound...]
            } else {
                return false
            }
        }
        return rest.isEmpty
    }
}
