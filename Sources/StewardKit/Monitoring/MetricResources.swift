import Foundation

// The metrics API's replies as Encodable types (the schemas are MonitoringController.schemas). A sample's value is a
// JSON number, or "NaN", "+Inf" or "-Inf" as Prometheus's API writes them; null is "no data". Computed summaries
// (percentages, averages) that are not finite are null.

/// A finite value, or null.
func finiteOrNull(_ value: Double?) -> Nullable<Double> {
    Nullable(value.flatMap { $0.isFinite ? $0 : nil })
}

/// A stored sample's value in JSON: a number; NaN and ±Inf as the strings "NaN", "+Inf" and "-Inf"; no data as null.
struct SampleValue: Codable, Sendable, Equatable {
    let value: Double?

    init(_ value: Double?) { self.value = value }

    static let schema: JSONValue = [
        "anyOf": [["type": "number"], ["type": "string", "enum": ["NaN", "+Inf", "-Inf"]], ["type": "null"]],
        "description": "a number; \"NaN\", \"+Inf\" or \"-Inf\" for those values; null where there is no data",
    ]

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch value {
        case nil: try container.encodeNil()
        case let value? where value.isNaN: try container.encode("NaN")
        case let value? where value.isInfinite: try container.encode(value > 0 ? "+Inf" : "-Inf")
        case let value?: try container.encode(value)
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            value = nil
        } else if let number = try? container.decode(Double.self) {
            value = number
        } else {
            switch try container.decode(String.self) {
            case "NaN": value = .nan
            case "+Inf": value = .infinity
            case "-Inf": value = -.infinity
            case let other:
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(other)\" is not a sample value")
            }
        }
    }

    static func == (a: SampleValue, b: SampleValue) -> Bool { a.value?.bitPattern == b.value?.bitPattern }
}

/// A stored series with its newest sample.
struct MetricSeriesResource: Codable, Sendable {
    let id, hostId: Int64
    let host, name: String
    let labels: [String: String]
    let type: String
    let latestAt: Nullable<String>
    let latestValue: SampleValue
}

/// A range query's answer: each series' points as [time, value] pairs.
struct MetricQueryResource: Codable, Sendable {
    struct Point: Codable, Sendable {
        let time: String
        let value: SampleValue

        init(time: String, value: SampleValue) {
            self.time = time
            self.value = value
        }

        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            time = try container.decode(String.self)
            value = try container.decode(SampleValue.self)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(time)
            try container.encode(value)
        }
    }
    struct Series: Codable, Sendable {
        let id: Int64
        let host, name: String
        let labels: [String: String]
        let points: [Point]
    }
    let resolution: String
    let stepSeconds: Double
    let function, from, to: String
    let series: [Series]
}

/// The fleet overview: each host's newest gauges, and totals per group.
struct FleetSummaryResource: Codable, Sendable {
    struct Filesystem: Codable, Sendable {
        let mountpoint, device, fstype: String
        let sizeBytes, usedBytes, availableBytes: Double
        let usedPercent: Nullable<Double>

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
    struct HostRow: Codable, Sendable {
        let id: Int64
        let name, state: String
        let groups, tags: [String]
        let cpuPercent, memoryPercent, filesystemMaxPercent: Nullable<Double>
        let filesystemMax: Nullable<Filesystem>
        let loadPerCore, networkBytesPerSecond: Nullable<Double>
        let lastSampleAt: Nullable<String>

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
    struct GroupRow: Codable, Sendable {
        let name: String
        let hosts, up, down: Int
        let cpuPercentAvg, memoryPercentAvg, filesystemPercentMax: Nullable<Double>
        let filesystemMaxWhere: Nullable<String>
        let loadPerCoreMax, networkBytesPerSecondTotal: Nullable<Double>

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
        case hosts, groups, asOf
    }
}
