import Crypto
import Foundation
import GRDB
import Logging
import Synchronization
import Testing

@testable import StewardKit

@Suite("Remote write: the wire format")
struct RemoteWriteFormatTests {
    @Test("snappy: every literal length form and long matches decompress to the input, and label-heavy requests shrink")
    func snappyRoundTrips() throws {
        var random = SplitMix(seed: 23)
        var inputs: [[UInt8]] = []
        for size in [0, 1, 7, 8, 59, 60, 61, 255, 256, 257, 65_535, 65_536, 70_000, 300_000] {
            inputs.append((0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            inputs.append((0..<size).map { UInt8($0 % 7) })
        }
        // Text with repeats near and far (over 64 KiB apart), and a run longer than one copy element.
        var text = Array(String(repeating: "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} ", count: 3000).utf8)
        text += (0..<70_000).map { _ in UInt8(truncatingIfNeeded: random.next()) } + text.prefix(5000)
        inputs.append(text)
        inputs.append([UInt8](repeating: 0x41, count: 1000))
        for input in inputs {
            let compressed = Snappy.compress(input)
            #expect(try Snappy.decompress(compressed) == input, "\(input.count) bytes")
        }
        let request = RemoteWriteProtocol.encode(
            (0..<200).map { index in
                RemoteWriteProtocol.Series(
                    labels: [("__name__", "node_network_receive_bytes_total"), ("device", "eth\(index % 4)"), ("instance", "web-\(index / 4)")],
                    samples: [(1_796_000_000_000 + Int64(index), Double(index) * 1.5)])
            })
        #expect(Snappy.compress(request).count * 4 < request.count, "\(Snappy.compress(request).count) of \(request.count) bytes")
        #expect(throws: Snappy.Corrupt.self) { try Snappy.decompress([5, 0x0A, 0x61]) }
        #expect(throws: Snappy.Corrupt.self) { try Snappy.decompress([4, 0x02, 0x05, 0x00]) }
    }

    @Test("protobuf: labels, negative and large timestamps, NaN and infinities read back bit for bit; requests concatenate")
    func protobufRoundTrips() throws {
        let series = [
            RemoteWriteProtocol.Series(
                labels: RemoteWriteProtocol.sortedLabels([("instance", "db-1"), ("__name__", "up"), ("mountpoint", "/srv/дані"), ("empty", "")]),
                samples: [(-3_982_045, .nan), (0, .infinity), (1_796_629_739_999, -.infinity), (Int64.max, 0.1 + 0.2)]),
            RemoteWriteProtocol.Series(labels: [("__name__", "x")], samples: [(1, -0.0)]),
        ]
        #expect(series[0].labels.map(\.0) == ["__name__", "instance", "mountpoint"])
        let one = RemoteWriteProtocol.encode([series[0]])
        let two = RemoteWriteProtocol.encode([series[1]])
        #expect(try RemoteWriteProtocol.decode(RemoteWriteProtocol.encode(series)) == series)
        #expect(try RemoteWriteProtocol.decode(one + two) == series)
        #expect(throws: RemoteWriteProtocol.DecodeError.self) { try RemoteWriteProtocol.decode(Array(one.dropLast(3))) }
    }

    @Test("endpoint validation names the field: URL credentials, missing token or password, line breaks")
    func validation() {
        var endpoint = RemoteWriteEndpoint()
        endpoint.name = "central"
        endpoint.url = "http://user:pw@prom:9090/api/v1/write"
        #expect(endpoint.problems()["url"]?.contains("no credentials in the URL") == true)
        endpoint.url = "ftp://prom/api/v1/write"
        #expect(endpoint.problems()["url"] != nil)
        endpoint.url = "https://prom.example.com/api/v1/write"
        #expect(endpoint.problems().isEmpty)
        endpoint.auth = .bearer
        #expect(endpoint.problems()["secret"] != nil)
        endpoint.secret = "abc\r\nX-Evil: 1"
        #expect(endpoint.problems()["secret"] == "no line breaks")
        endpoint.auth = .basic
        endpoint.secret = "pw"
        #expect(endpoint.problems()["username"] != nil)
        endpoint.username = "steward"
        #expect(endpoint.problems().isEmpty)
        #expect(endpoint.authorization == "Basic " + Data("steward:pw".utf8).base64EncodedString())
    }
}

@Suite("Remote write: the queue, retries and restarts")
struct RemoteWriteQueueTests {
    /// A receiver that answers each request with the next status of a script (then 200), and keeps each request's
    /// headers and body in a directory, numbered.
    static let receiver = #"""
        import http.server, json, os, sys
        port, folder, script = int(sys.argv[1]), sys.argv[2], [int(s) for s in sys.argv[3].split(",") if s]
        count = [0]
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = script[count[0]] if count[0] < len(script) else 200
                count[0] += 1
                with open(os.path.join(folder, "%03d.bin" % count[0]), "wb") as f:
                    f.write(body)
                with open(os.path.join(folder, "%03d.json" % count[0]), "w") as f:
                    json.dump({"status": status, "headers": dict(self.headers)}, f)
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(b"out of bounds" if status == 400 else b"")
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """#

    static func batches(_ database: DatabasePool) throws -> Int? {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM remote_write_batches") }
    }

    static func sealedSecret(_ database: DatabasePool) throws -> Data? {
        try database.read { db in try Data.fetchOne(db, sql: "SELECT secret_sealed FROM remote_write_endpoints") }
    }

    /// Whether something accepts TCP connections on the port.
    static func listening(_ port: Int) -> Bool {
        let socket = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    struct Received {
        var status: Int
        var headers: [String: String]
        var series: [RemoteWriteProtocol.Series]
    }

    static func received(_ folder: String) throws -> [Received] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }.sorted()
        return try names.map { name in
            let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))) as! [String: Any]
            let body = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name.replacingOccurrences(of: ".json", with: ".bin")))
            return Received(
                status: meta["status"] as! Int, headers: meta["headers"] as! [String: String],
                series: try RemoteWriteProtocol.decode(Snappy.decompress(Array(body))))
        }
    }

    static func samples(_ batch: Int, count: Int = 3) -> [(name: String, labels: String, time: Int64, value: Double)] {
        (0..<count).map { index in ("steward_test_value", #"slot="\#(index)""#, 1_796_000_000_000 + Int64(batch) * 10_000, Double(batch * 10 + index))
        }
    }

    @Test("idle, the sending loop turns about once a second, also when a stored batch woke it and when it runs again after a stop")
    func idleLoopWaits() async throws {
        let directory = TemporaryDirectory()
        let remote = try RemoteWrite(database: try makeDatabase(directory), masterKey: .init(size: .bits256), logger: quietLogger)
        // A loop that raced a fresh wait on its wake-up stream against a one-second sleep ended the stream when the
        // sleep first won, and then turned thousands of times a second.
        // Bounds are in turns per elapsed second, never in wall time, so a loaded machine only makes turns rarer.
        var endpoint = RemoteWriteEndpoint()
        endpoint.name = "nobody-listens"
        endpoint.url = "http://127.0.0.1:1/api/v1/write"  // tcpmux: nothing listens, so a post is refused at once
        for pass in 0..<2 {
            let before = remote.rounds
            let started = ContinuousClock.now
            let loop = Task { try await remote.run() }
            if pass == 0 { _ = try remote.save(endpoint, by: AuditActor(actor: "t"), now: Date()) }  // wakes the loop
            remote.enqueue(host: "web-1", samples: Self.samples(pass))
            try remote.persist()  // wakes it again; the post is refused, and retried a second or more later
            let turned = try await waitUntil { remote.rounds - before >= 4 }
            try await Task.sleep(for: .seconds(1))  // room for a spinning loop to show itself
            loop.cancel()
            _ = try? await loop.value
            let elapsed = Double((ContinuousClock.now - started).components.seconds) + 1
            let turns = remote.rounds - before
            // At most: the first turn, one per wake-up, one a second, and one woken by a sleeper that ended as a
            // wake-up came.
            #expect(turned && Double(turns) <= elapsed + 4, "\(turns) turns in about \(elapsed) s")
        }
        #expect(try remote.statuses()[0].endpoint.requestsRetried >= 1, "the loop did try to send")
    }

    @Test("5xx and 429 are retried with backoff and the same samples; another 4xx is counted as rejected and not sent again")
    func retrySemantics() async throws {
        let directory = TemporaryDirectory()
        let folder = directory.path + "/received"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Self.receiver.write(toFile: directory.path + "/receiver.py", atomically: true, encoding: .utf8)
        let port = try SyslogTests.freePort()
        let receiver = try PythonChild([directory.path + "/receiver.py", String(port), folder, "503,503,429,200,400"])
        defer { receiver.stop() }
        let database = try makeDatabase(directory)
        var settings = RemoteWrite.Settings()
        settings.minimumBackoff = 0.2
        settings.maximumBackoff = 0.5
        settings.timeoutSeconds = 10
        let remote = try RemoteWrite(database: database, masterKey: .init(size: .bits256), settings: settings, logger: quietLogger)
        #expect(!remote.active)
        remote.enqueue(host: "web-1", samples: Self.samples(0))
        try remote.persist()
        #expect(try Self.batches(database) == 0, "queued with no endpoint")
        var endpoint = RemoteWriteEndpoint()
        endpoint.name = "central"
        endpoint.url = "http://127.0.0.1:\(port)/api/v1/write"
        endpoint.auth = .bearer
        endpoint.secret = "tok-1"
        endpoint = try remote.save(endpoint, by: AuditActor(actor: "t"), now: Date())
        #expect(remote.active)
        let sealed = try Self.sealedSecret(database)
        #expect(sealed != nil && !String(decoding: sealed!, as: UTF8.self).contains("tok-1"))
        let ready = try await waitUntil { Self.listening(port) }
        #expect(ready)

        for batch in 1...3 { remote.enqueue(host: "web-1", samples: Self.samples(batch)) }
        try remote.persist()
        // Four requests: 503, 503, 429 (Retry-After: 1) and 200, each with batches 1 to 3 in one request. The bound is
        // generous: with the whole suite running, the two cores' task threads can be held for seconds by other tests.
        let delivered = try await waitUntil {
            await remote.sendRound(now: Date())
            return try remote.all()[0].samplesSent == 9
        }
        #expect(delivered)
        remote.enqueue(host: "web-1", samples: Self.samples(4))
        try remote.persist()
        await remote.sendRound(now: Date())
        remote.enqueue(host: "web-1", samples: Self.samples(5))
        try remote.persist()
        await remote.sendRound(now: Date())

        let requests = try Self.received(folder)
        #expect(requests.map(\.status) == [503, 503, 429, 200, 400, 200])
        guard requests.count == 6 else { return }
        let first = requests[0].series
        #expect(requests[1...3].allSatisfy { $0.series == first }, "a retry sends the same samples")
        #expect(first.count == 9)
        #expect(first.map { $0.samples[0].value } == [10, 11, 12, 20, 21, 22, 30, 31, 32], "in order")
        #expect(first[0].labels.map { "\($0.0)=\($0.1)" } == ["__name__=steward_test_value", "instance=web-1", "slot=0"])
        #expect(requests[4].series.map { $0.samples[0].value } == [40, 41, 42])
        #expect(requests[5].series.map { $0.samples[0].value } == [50, 51, 52], "the rejected batch is not sent again")
        for request in requests {
            #expect(request.headers["Content-Encoding"] == "snappy")
            #expect(request.headers["Content-Type"] == "application/x-protobuf")
            #expect(request.headers["X-Prometheus-Remote-Write-Version"] == "0.1.0")
            #expect(request.headers["Authorization"] == "Bearer tok-1")
        }
        let state = try remote.statuses()[0]
        #expect(state.endpoint.samplesSent == 12)
        #expect(state.endpoint.samplesRejected == 3)
        #expect(state.endpoint.requestsRetried == 3)
        #expect(state.endpoint.lastError == "HTTP 400: out of bounds")
        #expect(state.pendingSamples == 0 && state.lagSeconds == 0)
        #expect(try Self.batches(database) == 0, "sent batches are deleted")
    }

    @Test("the queue survives a restart: batches stored while the receiver is down reach it from a new process's queue")
    func survivesRestart() async throws {
        let directory = TemporaryDirectory()
        let folder = directory.path + "/received"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Self.receiver.write(toFile: directory.path + "/receiver.py", atomically: true, encoding: .utf8)
        let port = try SyslogTests.freePort()
        let key = SymmetricKey(data: Data(repeating: 7, count: 32))
        do {
            let database = try makeDatabase(directory)
            let remote = try RemoteWrite(database: database, masterKey: key, logger: quietLogger)
            var endpoint = RemoteWriteEndpoint()
            endpoint.name = "down"
            endpoint.url = "http://127.0.0.1:\(port)/api/v1/write"
            endpoint.auth = .basic
            endpoint.username = "steward"
            endpoint.secret = "s3cret"
            _ = try remote.save(endpoint, by: AuditActor(actor: "t"), now: Date())
            for batch in 1...4 { remote.enqueue(host: "db-1", samples: Self.samples(batch)) }
            try remote.persist()
            await remote.sendRound(now: Date())
            let state = try remote.statuses()[0]
            #expect(state.endpoint.requestsRetried == 1)
            #expect(state.endpoint.lastError.contains("did not answer"))
            #expect(state.pendingSamples == 12 && state.pendingBatches == 4)
            #expect(state.retryAt != nil)
        }
        // A new process: the same database and key, the receiver up now.
        let receiver = try PythonChild([directory.path + "/receiver.py", String(port), folder, ""])
        defer { receiver.stop() }
        #expect(try await waitUntil { Self.listening(port) })
        let database = try makeDatabase(directory)
        let remote = try RemoteWrite(database: database, masterKey: key, logger: quietLogger)
        #expect(remote.active)
        await remote.sendRound(now: Date())
        let requests = try Self.received(folder)
        #expect(requests.count == 1)
        #expect(requests.first?.series.map { $0.samples[0].value } == [10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42])
        #expect(requests.first?.headers["Authorization"] == "Basic " + Data("steward:s3cret".utf8).base64EncodedString())
        #expect(try remote.statuses()[0].pendingSamples == 0)
    }

    @Test("batches older than the backlog limit are dropped and counted; a new endpoint starts at the newest batch")
    func backlogLimit() async throws {
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        var settings = RemoteWrite.Settings()
        settings.maximumBacklog = 60_000
        let remote = try RemoteWrite(database: database, masterKey: .init(size: .bits256), settings: settings, logger: quietLogger)
        var endpoint = RemoteWriteEndpoint()
        endpoint.name = "gone"
        endpoint.url = "http://127.0.0.1:9/api/v1/write"
        endpoint = try remote.save(endpoint, by: AuditActor(actor: "t"), now: Date())
        let start = Date()
        remote.enqueue(host: "a", samples: Self.samples(1))
        try remote.persist(now: start)
        remote.enqueue(host: "a", samples: Self.samples(2, count: 5))
        try remote.persist(now: start.addingTimeInterval(50))
        var later = RemoteWriteEndpoint()
        later.name = "later"
        later.url = "http://127.0.0.1:9/api/v1/write"
        later = try remote.save(later, by: AuditActor(actor: "t"), now: start.addingTimeInterval(55))
        #expect(try remote.statuses().first { $0.endpoint.name == "later" }?.pendingSamples == 0, "history is not replayed")
        try remote.trim(now: start.addingTimeInterval(70))
        let gone = try remote.statuses(now: start.addingTimeInterval(70)).first { $0.endpoint.name == "gone" }!
        #expect(gone.endpoint.samplesDropped == 3)
        #expect(gone.pendingSamples == 5)
        #expect((gone.lagSeconds - 20).magnitude < 0.01)
    }
}

/// Steward collects a real node_exporter for three minutes and writes to a real Prometheus 2.42 (its remote-write
/// receiver) and a real VictoriaMetrics. Both receivers are stopped for two minutes in the middle and started again on
/// the same data. Afterwards each holds exactly the samples Steward stores: every series, every timestamp, every
/// value, counted and compared.
@Suite("Remote write: Prometheus and VictoriaMetrics hold what Steward holds")
struct RemoteWriteReceiverTests {
    typealias Samples = [String: [(time: Int64, value: Double)]]

    static func key(_ labels: [(String, String)]) -> String {
        RemoteWriteProtocol.sortedLabels(labels).map { "\($0.0)=\($0.1)" }.joined(separator: ",")
    }

    /// What Steward stores for the host, keyed as remote write labels it.
    static func stewardSamples(_ store: MetricStore, hostID: Int64, host: String) throws -> Samples {
        var result: Samples = [:]
        for series in store.series(hostID: hostID) {
            var labels = series.labelPairs.map { $0.0 == "instance" ? ("exported_instance", $0.1) : $0 }
            labels += [("__name__", series.name), ("instance", host)]
            let raw = try store.raw(series.id, from: 0, to: .max)
            result[key(labels)] = zip(raw.times, raw.values).map { ($0, $1) }
        }
        return result
    }

    /// Every raw sample Prometheus holds for the instance: a range selector over the whole run, evaluated at its end.
    static func prometheusSamples(_ port: Int, host: String) throws -> Samples {
        let query = ExpositionDifferentialTests.encoded(#"{instance="\#(host)"}[30m]"#)
        let data = try PromQLTests().get(port, "/api/v1/query?query=\(query)")
        let answer = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        var result: Samples = [:]
        for item in (answer?["data"] as? [String: Any])?["result"] as? [[String: Any]] ?? [] {
            let labels = (item["metric"] as? [String: String] ?? [:]).map { ($0.key, $0.value) }
            result[key(labels)] = (item["values"] as? [[Any]] ?? []).map { pair in
                (Int64(((pair[0] as? Double ?? 0) * 1000).rounded()), Double(pair[1] as? String ?? "") ?? .nan)
            }
        }
        return result
    }

    /// Every raw sample VictoriaMetrics holds for the instance, through its export API (one JSON object a line).
    static func victoriaSamples(_ port: Int, host: String) throws -> Samples {
        let match = ExpositionDifferentialTests.encoded(#"{instance="\#(host)"}"#)
        let data = try PromQLTests().get(port, "/api/v1/export?match[]=\(match)")
        var result: Samples = [:]
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            let item = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] ?? [:]
            let labels = (item["metric"] as? [String: String] ?? [:]).map { ($0.key, $0.value) }
            let times = (item["timestamps"] as? [NSNumber] ?? []).map(\.int64Value)
            let values = (item["values"] as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue ?? Double($0 as? String ?? "") ?? .nan }
            result[key(labels), default: []] += zip(times, values).map { ($0, $1) }
        }
        for (key, samples) in result { result[key] = samples.sorted { $0.time < $1.time } }
        return result
    }

    /// The differences between what Steward holds and what a receiver holds. Values are compared exactly, or to
    /// `digits` significant digits: VictoriaMetrics stores a value as a decimal mantissa and exponent, and keeps
    /// 803.6320000000001 (what node_exporter writes for 803632 ms) as 803.632.
    static func differences(_ ours: Samples, _ theirs: Samples, digits: Double? = nil) -> [String] {
        func same(_ a: Double, _ b: Double) -> Bool {
            if a == b || a.isNaN && b.isNaN { return true }
            guard let digits else { return false }
            return (a - b).magnitude <= max(a.magnitude, b.magnitude) * pow(10, -digits)
        }
        var found: [String] = []
        for key in Set(ours.keys).union(theirs.keys).sorted() {
            let a = ours[key] ?? []
            let b = theirs[key] ?? []
            if a.count != b.count || !zip(a, b).allSatisfy({ $0.time == $1.time && same($0.value, $1.value) }) {
                let first = zip(a, b).first { $0.time != $1.time || !same($0.value, $1.value) }
                found.append("\(key): Steward \(a.count) samples, receiver \(b.count); first difference \(String(describing: first))")
            }
        }
        return found
    }

    @Test("after three minutes with both receivers stopped for two, both hold every sample Steward stored, nothing lost")
    func nothingLost() async throws {
        guard RealPrometheus.installed, RealVictoriaMetrics.installed else {
            Issue.record("Debian's prometheus and victoria-metrics are not installed (make test installs them)")
            return
        }
        let directory = TemporaryDirectory()
        let exporter = try NodeExporter()
        _ = try await exporter.ready()
        try FileManager.default.createDirectory(atPath: directory.path + "/prometheus", withIntermediateDirectories: true)
        let config = "global: {scrape_interval: 1m}\n"
        let receiverFlags = ["--web.enable-remote-write-receiver"]
        var prometheus = try RealPrometheus(directory: directory.path + "/prometheus", config: config, arguments: receiverFlags)
        var victoria = try RealVictoriaMetrics(directory: directory.path + "/victoria")
        defer {
            prometheus.stop()
            victoria.stop()
        }
        let helper = PromQLTests()
        func bothReady() async throws -> Bool {
            try await waitUntil {
                (try? helper.get(prometheus.port, "/-/ready")) != nil && (try? helper.get(victoria.port, "/health")) != nil
            }
        }
        #expect(try await bothReady())

        let database = try makeDatabase(directory)
        let hosts = HostStore(database: database)
        var settings = HostSettings()
        settings.name = "node-a"
        settings.address = "127.0.0.1"
        settings.metricsURL = exporter.url
        let host = try hosts.create(settings, by: AuditActor(actor: "t"), now: Date())
        let metrics = try MetricStore(database: database)
        let remote = try RemoteWrite(database: database, masterKey: SymmetricKey(size: .bits256), logger: quietLogger)
        for (name, port) in [("prometheus", prometheus.port), ("victoria", victoria.port)] {
            var endpoint = RemoteWriteEndpoint()
            endpoint.name = name
            endpoint.url = "http://127.0.0.1:\(port)/api/v1/write"
            _ = try remote.save(endpoint, by: AuditActor(actor: "t"), now: Date())
        }
        let collector = MetricCollector(
            store: metrics, hosts: hosts, intervalSeconds: 2, timeoutSeconds: 5, remoteWrite: remote, logger: quietLogger)
        let collecting = Task {
            while !Task.isCancelled {
                _ = try? await collector.collect(at: EpochMilliseconds.from(Date()))
                try? await Task.sleep(for: .seconds(2))
            }
        }
        let sending = Task { try await remote.run() }
        defer {
            collecting.cancel()
            sending.cancel()
        }

        let started = ContinuousClock.now
        try await Task.sleep(for: .seconds(40))
        try await prometheus.stopped()
        try await victoria.stopped()
        let stoppedAt = ContinuousClock.now
        try await Task.sleep(for: .seconds(20))
        let during = try remote.statuses()
        #expect(during.allSatisfy { $0.pendingSamples > 0 && $0.endpoint.requestsRetried > 0 }, "the queue holds what the receivers missed")
        try await Task.sleep(until: stoppedAt + .seconds(120))
        prometheus = try RealPrometheus(directory: directory.path + "/prometheus", config: config, arguments: receiverFlags, port: prometheus.port)
        victoria = try RealVictoriaMetrics(directory: directory.path + "/victoria", port: victoria.port)
        #expect(try await bothReady())
        try await Task.sleep(until: started + .seconds(180))
        collecting.cancel()
        _ = await collecting.result
        try remote.persist()

        // Within the longest backoff (30 s) and a few rounds of sending, both have caught up.
        let caughtUp = try await waitUntil { try remote.statuses().allSatisfy { $0.pendingSamples == 0 } }
        let behind = try remote.statuses().map { "\($0.endpoint.name): \($0.pendingSamples) pending, \($0.endpoint.lastError)" }
        #expect(caughtUp, "\(behind)")
        let ours = try Self.stewardSamples(metrics, hostID: host.id, host: "node-a")
        let total = ours.values.reduce(0) { $0 + $1.count }
        #expect(ours.count > 50 && total > ours.count * 60, "\(ours.count) series, \(total) samples")
        for state in try remote.statuses() {
            #expect(state.endpoint.samplesSent == Int64(total), "\(state.endpoint.name)")
            #expect(state.endpoint.samplesRejected == 0 && state.endpoint.samplesDropped == 0, "\(state.endpoint.name): \(state.endpoint.lastError)")
        }
        // VictoriaMetrics makes what it received searchable within a few seconds.
        var prometheusDifferences: [String] = []
        var victoriaDifferences: [String] = []
        _ = try await waitUntil {
            prometheusDifferences = Self.differences(ours, try Self.prometheusSamples(prometheus.port, host: "node-a"))
            victoriaDifferences = Self.differences(ours, try Self.victoriaSamples(victoria.port, host: "node-a"), digits: 15)
            return prometheusDifferences.isEmpty && victoriaDifferences.isEmpty
        }
        #expect(prometheusDifferences.isEmpty, "Prometheus: \(prometheusDifferences.count) series differ: \(prometheusDifferences.prefix(5))")
        #expect(victoriaDifferences.isEmpty, "VictoriaMetrics: \(victoriaDifferences.count) series differ: \(victoriaDifferences.prefix(5))")
    }
}
