import Foundation

/// Steward's metric store as PromQL reads it. A series' labels are its own, `__name__`, and `host` and `instance`
/// set to its host's name (unless the series has its own): rules written for Prometheus group by `instance`.
public struct MetricStoreSource: PromQL.Source, Sendable {
    let store: MetricStore
    let hostNames: [Int64: String]

    public init(store: MetricStore, hostNames: [Int64: String]) {
        self.store = store
        self.hostNames = hostNames
    }

    public func labels(_ series: MetricSeries) -> PromQL.Labels {
        let host = hostNames[series.hostID] ?? String(series.hostID)
        return PromQL.Labels([("host", host), ("instance", host)] + series.labelPairs + [("__name__", series.name)])
    }

    public func series(matching matchers: [PromQL.Matcher]) throws -> [(id: Int64, labels: PromQL.Labels)] {
        let name = matchers.first { $0.name == "__name__" && $0.op == .equal }?.value
        return store.series(name: name).compactMap { series in
            let labels = labels(series)
            return matchers.allSatisfy({ $0.matches(labels[$0.name] ?? "") }) ? (series.id, labels) : nil
        }
    }

    public func points(_ id: Int64, from: Int64, to: Int64) throws -> [PromQL.Point] {
        let raw = try store.raw(id, from: from, to: to)
        return zip(raw.times, raw.values).map { PromQL.Point(time: $0, value: $1) }
    }
}
