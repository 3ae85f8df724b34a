import Foundation
import GRDB

/// One host's row on the fleet overview: its newest derived gauges and the last hour of each.
public struct FleetRow: Sendable {
    public var host: Host
    public var values: [String: Double]
    public var history: [String: [Double?]]
    public var lastSample: Int64?
    /// The filesystem behind the fullest-filesystem figure, from the newest filesystem series.
    public var fullestFilesystem: HostSummary.Filesystem?

    public func value(_ name: String) -> Double? { values[name] }
}

/// Totals for a host group (or the whole fleet).
public struct FleetGroup: Sendable {
    public var name: String
    public var hosts = 0
    public var up = 0
    public var down = 0
    public var cpuAverage: Double?
    public var memoryAverage: Double?
    public var filesystemMax: Double?
    /// "host:/mount" of the fullest filesystem.
    public var filesystemMaxWhere: String?
    public var loadMax: Double?
    public var networkTotal: Double?
    var cpuCount = 0
    var memoryCount = 0
}

/// A chart of a host dashboard with the series it drew.
public struct HostChart: Sendable {
    public var key: String
    public var chart: SVGChart
}

/// Reads the store for the dashboards: the fleet overview from the derived host gauges, and a host's charts with
/// the jobs that touched it as annotations.
public struct MetricsDashboard: Sendable {
    public let store: MetricStore
    public let hosts: HostStore
    public let database: DatabasePool
    public var retention = MetricRetention()

    public init(store: MetricStore, hosts: HostStore, database: DatabasePool) {
        self.store = store
        self.hosts = hosts
        self.database = database
    }

    /// The gauges the overview shows, in column order.
    public static let overviewColumns: [(key: String, series: String, title: String, unit: MetricUnit)] = [
        ("cpu", HostSummary.cpuPercent, "CPU", .percent),
        ("memory", HostSummary.memoryPercent, "Memory", .percent),
        ("filesystem", HostSummary.filesystemPercent, "Fullest filesystem", .percent),
        ("load", HostSummary.loadPerCore, "Load per core", .plain),
        ("network", HostSummary.networkBytes, "Network", .bytesPerSecond),
    ]

    public static let ranges: [(key: String, milliseconds: Int64)] = [
        ("1h", 3_600_000), ("6h", 6 * 3_600_000), ("24h", 86_400_000), ("7d", 7 * 86_400_000), ("30d", 30 * 86_400_000),
    ]

    public func fleet(now: Int64, group: String? = nil, tag: String? = nil, sparkMinutes: Int = 60) throws -> (rows: [FleetRow], groups: [FleetGroup])
    {
        let all = try hosts.all().filter { host in
            (group == nil || host.groups.contains(group!)) && (tag == nil || host.tags.contains(tag!))
        }
        let from = now - Int64(sparkMinutes) * 60_000
        var rows: [FleetRow] = []
        for host in all {
            var row = FleetRow(host: host, values: [:], history: [:])
            for column in Self.overviewColumns {
                guard let series = store.series(hostID: host.id, name: column.series, labels: "") else { continue }
                if let latest = store.latest(series.id), latest.time >= now - 10 * 60_000 {
                    row.values[column.series] = latest.value
                    row.lastSample = max(row.lastSample ?? 0, latest.time)
                }
                let range = try MetricQuery.evaluate(store, series: series, function: .avg, from: from, to: now, step: 60_000, resolution: .minute)
                row.history[column.series] = range.values
            }
            row.fullestFilesystem = HostSummary.fullest(filesystems(hostID: host.id, now: now))
            rows.append(row)
        }
        var groups: [String: FleetGroup] = [:]
        var everyone = FleetGroup(name: "all hosts")
        for row in rows {
            for name in row.host.groups { groups[name, default: FleetGroup(name: name)].add(row) }
            everyone.add(row)
        }
        return (rows, [everyone] + groups.values.sorted { $0.name < $1.name })
    }

    /// A host's filesystems as df shows them, from its newest filesystem series (none older than ten minutes); empty
    /// for a host without recent metrics. The fleet overview and the host page both read them here.
    public func filesystems(hostID: Int64, now: Int64) -> [HostSummary.Filesystem] {
        func newest(_ name: String) -> [PrometheusText.Sample] {
            store.series(hostID: hostID, name: name).compactMap { series in
                guard let latest = store.latest(series.id), latest.time >= now - 10 * 60_000 else { return nil }
                return PrometheusText.Sample(name: name, labels: series.labelPairs, value: latest.value)
            }
        }
        return HostSummary.filesystems(
            size: newest("node_filesystem_size_bytes"), free: newest("node_filesystem_free_bytes"),
            available: newest("node_filesystem_avail_bytes"))
    }

    /// Jobs that touched a host (or any host, when nil) in [from, to], leaving out the routine ones.
    public func annotations(hostName: String?, from: Int64, to: Int64) throws -> [ChartAnnotation] {
        let routine = [HostCheck.kind, DatabaseMaintenance.kind, Engine.factsKind, RolloutService.planKind]
        return try database.read { db in
            var sql = """
                SELECT j.id, j.kind, j.title, j.state, COALESCE(j.started_at, j.created_at) AS at FROM jobs j
                WHERE COALESCE(j.started_at, j.created_at) BETWEEN ? AND ? AND j.kind NOT IN (\(routine.map { _ in "?" }.joined(separator: ", ")))
                """
            var arguments: [any DatabaseValueConvertible] = [from, to] + routine
            if let hostName {
                sql += " AND (j.host = ? OR EXISTS (SELECT 1 FROM job_host_results r WHERE r.job_id = j.id AND r.host = ?))"
                arguments += [hostName, hostName]
            }
            sql += " ORDER BY at LIMIT 300"
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map { row in
                let id: Int64 = row["id"]
                let state: String = row["state"]
                return ChartAnnotation(
                    time: row["at"], label: "Job #\(id) \(row["title"] as String) (\(row["kind"] as String), \(state))", href: "/jobs/\(id)",
                    failed: state == "failed" || state == "interrupted")
            }
        }
    }

    /// The host dashboard's charts over the last `range` milliseconds.
    public func charts(for host: Host, range: Int64, now: Int64) throws -> (charts: [HostChart], resolution: MetricResolution, step: Int64) {
        let step = MetricQuery.step(for: range)
        let from = now - range
        let resolution = MetricQuery.resolution(from: from, step: step, now: now, retention: retention)
        let annotations = try self.annotations(hostName: host.name, from: from, to: now)
        func evaluate(_ series: MetricSeries, _ function: MetricFunction) throws -> MetricRange {
            try MetricQuery.evaluate(store, series: series, function: function, from: from, to: now, step: step, resolution: resolution)
        }
        let times = MetricQuery.grid(from: from, to: now, step: step)
        func chart(_ key: String, _ title: String, _ unit: MetricUnit, _ lines: [ChartLine]) -> HostChart {
            var chart = SVGChart(title: title, unit: unit, times: times, step: step, lines: lines)
            chart.annotations = annotations
            return HostChart(key: key, chart: chart)
        }
        func gauge(_ name: String, _ label: String) throws -> ChartLine? {
            guard let series = store.series(hostID: host.id, name: name, labels: "") else { return nil }
            return ChartLine(name: label, values: try evaluate(series, .avg).values)
        }
        var charts: [HostChart] = []
        charts.append(chart("cpu", "CPU busy", .percent, [try gauge(HostSummary.cpuPercent, "busy")].compactMap { $0 }))
        charts.append(
            chart(
                "load", "Load average", .plain,
                try [("node_load1", "1 min"), ("node_load5", "5 min"), ("node_load15", "15 min")].compactMap { try gauge($0.0, $0.1) }))
        charts.append(
            chart(
                "memory", "Memory and swap used", .percent,
                try [(HostSummary.memoryPercent, "memory"), (HostSummary.swapPercent, "swap")].compactMap { try gauge($0.0, $0.1) }))
        var filesystems: [ChartLine] = []
        for size in store.series(hostID: host.id, name: "node_filesystem_size_bytes") {
            guard let available = store.series(hostID: host.id, name: "node_filesystem_avail_bytes", labels: size.labels) else { continue }
            let total = try evaluate(size, .avg).values
            let spare = try evaluate(available, .avg).values
            // df's Use%, as the fleet overview shows it; without free bytes, reserved blocks count as used.
            let freeSeries = store.series(hostID: host.id, name: "node_filesystem_free_bytes", labels: size.labels)
            let free = try freeSeries.map { try evaluate($0, .avg).values } ?? spare
            let used = zip(total, zip(free, spare)).map { bytes, rest -> Double? in
                guard let bytes, let free = rest.0, let spare = rest.1, bytes > 0 else { return nil }
                return HostSummary.dfPercent(used: max(0, bytes - free), available: spare)
            }
            filesystems.append(ChartLine(name: size.label("mountpoint") ?? size.labels, values: used))
        }
        charts.append(chart("filesystems", "Filesystems used", .percent, filesystems))
        var disks: [ChartLine] = []
        for (name, verb) in [("node_disk_read_bytes_total", "read"), ("node_disk_written_bytes_total", "written")] {
            for series in store.series(hostID: host.id, name: name) {
                disks.append(ChartLine(name: "\(series.label("device") ?? "?") \(verb)", values: try evaluate(series, .rate).values))
            }
        }
        charts.append(chart("disk", "Disk I/O", .bytesPerSecond, disks))
        var network: [ChartLine] = []
        for (name, verb) in [("node_network_receive_bytes_total", "in"), ("node_network_transmit_bytes_total", "out")] {
            for series in store.series(hostID: host.id, name: name) where series.label("device") != "lo" {
                network.append(ChartLine(name: "\(series.label("device") ?? "?") \(verb)", values: try evaluate(series, .rate).values))
            }
        }
        charts.append(chart("network", "Network", .bytesPerSecond, network))
        return (charts, resolution, step)
    }
}

extension FleetGroup {
    mutating func add(_ row: FleetRow) {
        hosts += 1
        if row.host.state == .up { up += 1 }
        if row.host.state == .down || row.host.state == .unreachable { down += 1 }
        func average(_ current: Double?, _ value: Double?, _ count: Int) -> Double? {
            guard let value else { return current }
            guard let current else { return value }
            return current + (value - current) / Double(count)
        }
        cpuCount += row.value(HostSummary.cpuPercent) == nil ? 0 : 1
        memoryCount += row.value(HostSummary.memoryPercent) == nil ? 0 : 1
        cpuAverage = average(cpuAverage, row.value(HostSummary.cpuPercent), cpuCount)
        memoryAverage = average(memoryAverage, row.value(HostSummary.memoryPercent), memoryCount)
        if let value = row.value(HostSummary.filesystemPercent), value > (filesystemMax ?? -1) {
            filesystemMax = value
            filesystemMaxWhere = row.host.name + (row.fullestFilesystem.map { ":" + $0.mountpoint } ?? "")
        }
        if let value = row.value(HostSummary.loadPerCore) { loadMax = max(loadMax ?? value, value) }
        if let value = row.value(HostSummary.networkBytes) { networkTotal = (networkTotal ?? 0) + value }
    }
}
