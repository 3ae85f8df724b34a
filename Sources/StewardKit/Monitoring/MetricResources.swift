import Foundation

// The metrics API's replies as Encodable types (the schemas are MonitoringController.schemas). Numbers that are not
// finite (NaN, ±Inf) are written as null: JSON has no other way to say them.

/// A finite value, or null.
func finiteOrNull(_ value: Double?) -> Nullable<Double> {
    Nullable(value.flatMap { $0.isFinite ? $0 : nil })
}

/// A stored series with its newest sample.
struct MetricSeriesResource: Encodable, Sendable {
    let id: Int64
    let hostId: Int64
    let host: String
    let name: String
    let labels: [String: String]
    let type: String
    let latestAt: Nullable<String>
    let latestValue: Nullable<Double>

    enum CodingKeys: String, CodingKey {
        case id, host, name, labels, type
        case hostId = "host_id"
        case latestAt = "latest_at"
        case latestValue = "latest_value"
    }
}

/// A range query's answer: each series' points as [time, value] pairs.
struct MetricQueryResource: Encodable, Sendable {
    struct Point: Encodable, Sendable {
        let time: String
        let value: Nullable<Double>

        func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(time)
            try container.encode(value)
        }
    }
    struct Series: Encodable, Sendable {
        let id: Int64
        let host: String
        let name: String
        let labels: [String: String]
        let points: [Point]
    }
    let resolution: String
    let stepSeconds: Double
    let function: String
    let from: String
    let to: String
    let series: [Series]

    enum CodingKeys: String, CodingKey {
        case resolution, function, from, to, series
        case stepSeconds = "step_seconds"
    }
}

/// The fleet overview: each host's newest gauges, and totals per group.
struct FleetSummaryResource: Encodable, Sendable {
    struct Filesystem: Encodable, Sendable {
        let mountpoint: String
        let device: String
        let fstype: String
        let sizeBytes: Double
        let usedBytes: Double
        let availableBytes: Double
        let usedPercent: Nullable<Double>

        enum CodingKeys: String, CodingKey {
            case mountpoint, device, fstype
            case sizeBytes = "size_bytes"
            case usedBytes = "used_bytes"
            case availableBytes = "available_bytes"
            case usedPercent = "used_percent"
        }

        init(_ filesystem: HostSummary.Filesystem) {
            mountpoint = filesystem.mountpoint
            device = filesystem.device
            fstype = filesystem.type
            sizeBytes = filesystem.sizeBytes
            usedBytes = filesystem.usedBytes
            availableBytes = filesystem.availableBytes
            usedPercent = finiteOrNull(filesystem.usedPercent)
        }
    }
    struct HostRow: Encodable, Sendable {
        let id: Int64
        let name: String
        let state: String
        let groups: [String]
        let tags: [String]
        let cpuPercent: Nullable<Double>
        let memoryPercent: Nullable<Double>
        let filesystemMaxPercent: Nullable<Double>
        let filesystemMax: Nullable<Filesystem>
        let loadPerCore: Nullable<Double>
        let networkBytesPerSecond: Nullable<Double>
        let lastSampleAt: Nullable<String>

        enum CodingKeys: String, CodingKey {
            case id, name, state, groups, tags
            case cpuPercent = "cpu_percent"
            case memoryPercent = "memory_percent"
            case filesystemMaxPercent = "filesystem_max_percent"
            case filesystemMax = "filesystem_max"
            case loadPerCore = "load_per_core"
            case networkBytesPerSecond = "network_bytes_per_second"
            case lastSampleAt = "last_sample_at"
        }

        init(_ row: FleetRow) {
            id = row.host.id
            name = row.host.name
            state = row.host.state.rawValue
            groups = row.host.groups
            tags = row.host.tags
            cpuPercent = finiteOrNull(row.value(HostSummary.cpuPercent))
            memoryPercent = finiteOrNull(row.value(HostSummary.memoryPercent))
            filesystemMaxPercent = finiteOrNull(row.value(HostSummary.filesystemPercent))
            filesystemMax = Nullable(row.fullestFilesystem.map(Filesystem.init))
            loadPerCore = finiteOrNull(row.value(HostSummary.loadPerCore))
            networkBytesPerSecond = finiteOrNull(row.value(HostSummary.networkBytes))
            lastSampleAt = Nullable(row.lastSample.flatMap { RFC3339.string(milliseconds: $0) })
        }
    }
    struct GroupRow: Encodable, Sendable {
        let name: String
        let hosts: Int
        let up: Int
        let down: Int
        let cpuPercentAvg: Nullable<Double>
        let memoryPercentAvg: Nullable<Double>
        let filesystemPercentMax: Nullable<Double>
        let filesystemMaxWhere: Nullable<String>
        let loadPerCoreMax: Nullable<Double>
        let networkBytesPerSecondTotal: Nullable<Double>

        enum CodingKeys: String, CodingKey {
            case name, hosts, up, down
            case cpuPercentAvg = "cpu_percent_avg"
            case memoryPercentAvg = "memory_percent_avg"
            case filesystemPercentMax = "filesystem_percent_max"
            case filesystemMaxWhere = "filesystem_max_where"
            case loadPerCoreMax = "load_per_core_max"
            case networkBytesPerSecondTotal = "network_bytes_per_second_total"
        }

        init(_ group: FleetGroup) {
            name = group.name
            hosts = group.hosts
            up = group.up
            down = group.down
            cpuPercentAvg = finiteOrNull(group.cpuAverage)
            memoryPercentAvg = finiteOrNull(group.memoryAverage)
            filesystemPercentMax = finiteOrNull(group.filesystemMax)
            filesystemMaxWhere = Nullable(group.filesystemMaxWhere)
            loadPerCoreMax = finiteOrNull(group.loadMax)
            networkBytesPerSecondTotal = finiteOrNull(group.networkTotal)
        }
    }
    let asOf: String
    let hosts: [HostRow]
    let groups: [GroupRow]

    enum CodingKeys: String, CodingKey {
        case hosts, groups
        case asOf = "as_of"
    }
}
