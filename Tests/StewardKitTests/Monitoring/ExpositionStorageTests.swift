import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

/// What a scrape stores: a sample's own timestamp, and NaN and ±Inf kept apart from "no data" in the API.
@Suite("Exposition format: timestamps and special values as stored")
struct ExpositionStorageTests {
    /// A host whose allow-list keeps every series it exports.
    func exporter(_ harness: ServerHarness, _ name: String) throws -> StewardKit.Host {
        var settings = HostSettings()
        settings.name = name
        settings.address = "192.0.2.20"
        settings.metricsAllow = "*"
        return try harness.server.hosts.create(settings, by: .system, now: Date())
    }

    @Test("a sample with its own timestamp is stored at it; the same sample scraped again adds nothing and is no drop")
    func timestampsAreStored() async throws {
        let harness = try await ServerHarness()
        let host = try exporter(harness, "exporter-01")
        let collector = harness.server.collector
        let store = harness.server.metrics
        let tick = EpochMilliseconds.from(Date())
        let stamped = tick - 42_123
        let text = "# TYPE batch_last_success gauge\nbatch_last_success 1.5e9 \(stamped)\nqueue_depth 7\n"
        try collector.ingest(host: host, families: try PrometheusText.parse(text), time: tick, scrapeSeconds: 0.01)
        let batch = try #require(store.series(hostID: host.id, name: "batch_last_success").first)
        let queue = try #require(store.series(hostID: host.id, name: "queue_depth").first)
        #expect(store.latest(batch.id)?.time == stamped)
        #expect(store.latest(queue.id)?.time == tick)
        let droppedBefore = store.outOfOrder
        // The next scrape repeats the stamped sample: nothing new, and it is not counted as out of order.
        try collector.ingest(host: host, families: try PrometheusText.parse(text), time: tick + 10_000, scrapeSeconds: 0.01)
        #expect(store.latest(batch.id)?.time == stamped)
        #expect(store.latest(queue.id)?.time == tick + 10_000)
        #expect(store.outOfOrder == droppedBefore)
        // A changed value at an older time is out of order, as Prometheus counts it.
        let older = "batch_last_success 2 \(stamped - 1000)\n"
        try collector.ingest(host: host, families: try PrometheusText.parse(older), time: tick + 20_000, scrapeSeconds: 0.01)
        #expect(store.latest(batch.id)?.value == 1.5e9)
        #expect(store.outOfOrder == droppedBefore + 1)
    }

    @Test("NaN, +Inf and -Inf come back as \"NaN\", \"+Inf\" and \"-Inf\"; no data stays null")
    func specialValuesInTheAPI() async throws {
        let harness = try await ServerHarness()
        let host = try exporter(harness, "exporter-02")
        let tick = EpochMilliseconds.from(Date()) - 60_000
        let text = "odd{kind=\"nan\"} NaN\nodd{kind=\"up\"} +Inf\nodd{kind=\"down\"} -inf\nodd{kind=\"plain\"} 2.5\n"
        try harness.server.collector.ingest(host: host, families: try PrometheusText.parse(text), time: tick, scrapeSeconds: 0.01)
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/api/v1/metrics/series?host=exporter-02&name=odd", method: .get) { response in
                #expect(response.status == .ok)
                let body = try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
                var latest: [String: String] = [:]
                for item in body?["items"] as? [[String: Any]] ?? [] {
                    let kind = (item["labels"] as? [String: String])?["kind"] ?? "?"
                    latest[kind] = (item["latest_value"] as? String) ?? (item["latest_value"] as? NSNumber).map { "\($0.doubleValue)" } ?? "null"
                }
                #expect(latest == ["nan": "NaN", "up": "+Inf", "down": "-Inf", "plain": "2.5"])
            }
            // Range query of the last value per minute: the special values at their step, null before the first sample.
            try await client.execute(uri: "/api/v1/metrics/query?host=exporter-02&name=odd&fn=last&range=10m&step=1m", method: .get) { response in
                #expect(response.status == .ok)
                let decoded = try JSONDecoder().decode(MetricQueryResourceForTest.self, from: Data(String(buffer: response.body).utf8))
                var seen: [String: [SampleValue]] = [:]
                for series in decoded.series { seen[series.labels["kind"] ?? "?"] = series.points.map(\.value) }
                for (kind, expected) in [("nan", Double.nan), ("up", .infinity), ("down", -.infinity), ("plain", 2.5)] {
                    let values = try #require(seen[kind], "\(kind)")
                    #expect(values.contains(SampleValue(expected)), "\(kind): \(values)")
                    #expect(values.first == SampleValue(nil), "\(kind): no data before the sample is null")
                }
            }
        }
    }
}

/// The query result's shape as a client reads it.
struct MetricQueryResourceForTest: Decodable {
    struct Series: Decodable {
        let labels: [String: String]
        let points: [MetricQueryResource.Point]
    }
    let series: [Series]
}

/// PromQL over the API: an instant and a range query over two hosts' series, and refusals that name the field.
@Suite("PromQL API")
struct PromQLAPITests {
    @Test("instant and range queries, + and spaces as a script writes them, and refusals with positions")
    func queries() async throws {
        let harness = try await ServerHarness()
        let now = EpochMilliseconds.from(Date())
        for (name, load) in [("api-01", 0.5), ("api-02", 2.0)] {
            var settings = HostSettings()
            settings.name = name
            settings.address = "192.0.2.30"
            let host = try harness.server.hosts.create(settings, by: .system, now: Date())
            let ids = try harness.server.metrics.resolve(hostID: host.id, series: [("node_load1", "", .gauge)])
            for step in 0..<30 { harness.server.metrics.append(time: now - Int64(29 - step) * 10_000, series: ids, values: [load + Double(step)]) }
        }
        try await harness.test(as: [.viewer]) { client in
            // "node_load1 + 1 > 20", with the space as + and the plus as %2B, as a form or curl --data-urlencode writes it.
            try await client.execute(uri: "/api/v1/metrics/promql?query=node_load1+%2B+1+%3E+20", method: .get) { response in
                #expect(response.status == .ok)
                let body = try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
                #expect(body?["result_type"] as? String == "vector")
                let series = body?["series"] as? [[String: Any]] ?? []
                #expect(series.map { ($0["labels"] as? [String: String])?["host"] } == ["api-01", "api-02"])
                #expect(series.map { $0["value"] as? Double } == [30.5, 32])
            }
            try await client.execute(uri: "/api/v1/metrics/promql/range?query=max(node_load1)&range=2m&step=1m", method: .get) { response in
                #expect(response.status == .ok)
                let body = try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any]
                let points = ((body?["series"] as? [[String: Any]])?.first?["points"] as? [[Any]]) ?? []
                #expect(points.count == 3)
                #expect(points.last?.last as? Double == 31)
            }
            for (uri, field, words) in [
                ("/api/v1/metrics/promql?query=node_load1+%3E", "query", "at character"),
                ("/api/v1/metrics/promql?query=node_load1%5B5m%5D", "query", "instant vector"),
                ("/api/v1/metrics/promql?query=node_load1&time=yesterday", "time", "RFC 3339"),
                ("/api/v1/metrics/promql/range?query=node_load1&range=30d&step=1s", "step", "11000 steps"),
                // What the engine refuses is the query's fault, not the server's: 422 with the reason.
                ("/api/v1/metrics/promql?query=node_load1+%2F+ignoring(host,instance)+node_load1", "query", "many-to-many"),
            ] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .unprocessableContent, "\(uri)")
                    let body = String(buffer: response.body)
                    #expect(body.contains("\"\(field)\"") && body.contains(words), "\(uri): \(body)")
                }
            }
        }
    }

    @Test("a query's reads are bounded: too many series for its step count, or too many samples, are refused with how to narrow it")
    func budgets() throws {
        let source = MemorySource(
            series: (0..<40).map { index in
                (
                    labels: PromQL.Labels([("__name__", "node_load1"), ("instance", "web-\(index)")]),
                    points: (0..<100).map { PromQL.Point(time: Int64($0) * 10_000, value: Double($0)) }
                )
            })
        let expr = try PromQL.parse("sum(rate(node_load1[10m]))")
        let narrow = PromQL.LimitedSource(source, maxSeries: 40, maxSamples: 4000)
        #expect(throws: Never.self) { try PromQL.query(expr, source: narrow, at: 990_000) }
        let fewSeries = PromQL.LimitedSource(source, maxSeries: 39, maxSamples: 1_000_000)
        #expect { try PromQL.query(expr, source: fewSeries, at: 990_000) } throws: { error in
            "\(error)".contains("matches 40 series, over the 39") && "\(error)".contains("host=")
        }
        let fewSamples = PromQL.LimitedSource(source, maxSeries: 100, maxSamples: 1000)
        #expect { try PromQL.query(expr, source: fewSamples, at: 990_000) } throws: { error in
            "\(error)".contains("over 1000 samples")
        }
        #expect(PromQLController.limited(source, steps: 11_000).maxSeries == 500)
        #expect(PromQLController.limited(source, steps: 240).maxSeries == 20_833)
    }
}
