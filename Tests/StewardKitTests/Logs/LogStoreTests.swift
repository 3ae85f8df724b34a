import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import StewardKit

@Suite("Central logs: journal lines, blocks, search and paging")
struct LogStoreTests {
    /// A journal line as `journalctl -o json` prints it.
    static func journalJSON(
        cursor: String, time: Int64, priority: Int? = 6, unit: String? = "ssh.service", identifier: String? = "sshd", pid: Int? = 812,
        message: Any = "Accepted publickey for deploy from 10.0.0.5 port 51234 ssh2", extra: [String: Any] = [:]
    ) -> String {
        var object: [String: Any] = [
            "__CURSOR": cursor, "__REALTIME_TIMESTAMP": String(time), "__MONOTONIC_TIMESTAMP": "1234", "_BOOT_ID": "b00t",
            "_HOSTNAME": "web1", "_TRANSPORT": "syslog", "MESSAGE": message,
        ]
        if let priority { object["PRIORITY"] = String(priority) }
        if let unit { object["_SYSTEMD_UNIT"] = unit }
        if let identifier { object["SYSLOG_IDENTIFIER"] = identifier }
        if let pid { object["_PID"] = String(pid) }
        object.merge(extra) { _, new in new }
        return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test("journal JSON: binary and repeated fields, a null message, no priority, and a last line cut short")
    func journalParsing() {
        let lines = [
            Self.journalJSON(cursor: "s=1", time: 1_790_000_000_000_000),
            Self.journalJSON(cursor: "s=2", time: 1_790_000_000_100_000, message: Array("caf\u{e9} \u{1b}[1m".utf8).map(Int.init)),
            Self.journalJSON(
                cursor: "s=3", time: 1_790_000_000_200_000, priority: nil, unit: nil, identifier: "kernel", pid: nil, message: NSNull(),
                extra: ["TAG": ["a", "b"]]),
            Self.journalJSON(
                cursor: "s=4", time: 1_790_000_000_300_000, priority: 3, unit: "init.scope", identifier: "systemd", pid: 1,
                message: "nginx.service: Failed with result 'exit-code'.", extra: ["UNIT": "nginx.service"]),
        ]
        let cut = Self.journalJSON(cursor: "s=5", time: 1_790_000_000_400_000)
        let output = lines.joined(separator: "\n") + "\n" + cut.prefix(cut.count / 2)
        let (parsed, cursor, skipped) = LogLine.journalLines(output)
        #expect(parsed.count == 4 && cursor == "s=4" && skipped == 1, "the half line is left for the next read")
        #expect(parsed[0].unit == "ssh.service" && parsed[0].identifier == "sshd" && parsed[0].pid == 812 && parsed[0].priority == 6)
        #expect(parsed[0].fields["_HOSTNAME"] == "web1" && parsed[0].fields["__CURSOR"] == nil && parsed[0].fields["MESSAGE"] == nil)
        #expect(parsed[1].message.hasPrefix("café"))
        #expect(parsed[2].priority == 6 && parsed[2].message.contains("too large") && parsed[2].fields["TAG"] == "a\nb")
        #expect(parsed[3].belongs(to: "nginx.service") && parsed[3].belongs(to: "init.scope") && !parsed[3].belongs(to: "ssh.service"))
        let long = LogLine.journal(
            try! JSONSerialization.jsonObject(
                with: Data(Self.journalJSON(cursor: "s=9", time: 1, message: String(repeating: "é", count: 20_000)).utf8)) as! [String: Any])
        #expect(long?.line.message.hasSuffix(" [cut]") == true && (long?.line.message.utf8.count ?? 0) < LogLine.maxMessageBytes + 10)
    }

    @Test("a block deflates to a fraction of its lines and inflates to the same lines")
    func codec() throws {
        let lines = (0..<600).map { index in
            LogLine(
                time: 1_790_000_000_000_000 + Int64(index) * 1000, priority: index % 8, unit: "app\(index % 5).service", identifier: "app",
                pid: 1000 + index, message: "request \(index) served in \(index % 97) ms for client 10.0.\(index % 250).\(index % 7)",
                boot: "b00t", fields: ["_COMM": "app", "_TRANSPORT": "stdout"])
        }
        let (data, raw) = try LogBlockCodec.encode(lines)
        #expect(try LogBlockCodec.decode(data) == lines)
        #expect(data.count * 3 < raw, "\(data.count) of \(raw) bytes")
        #expect(throws: LogBlockCodec.Failure.self) { try LogBlockCodec.decode(Data([0x78, 0x9c, 1, 2, 3])) }
        // Blocks of format 1 (JSON lines, as stored before) still read, and take more room than format 2.
        let encoder = JSONEncoder()
        var json = Data()
        for line in lines { json += try encoder.encode(line) + Data([0x0A]) }
        let old = try LogBlockCodec.deflate(json)
        #expect(try LogBlockCodec.decode(old) == lines)
        #expect(data.count < old.count, "format 2: \(data.count) bytes, format 1: \(old.count)")
    }

    @Test("format 2 keeps every value exactly: numbers that are not canonical stay text, huge ones, times, sequences, no pid")
    func codecValues() throws {
        var merged = LogLine(
            time: 1_796_000_000_123_456, priority: 7, unit: "", identifier: "", pid: nil, message: "", boot: "",
            fields: [
                "A": "007", "B": "-5", "C": "0", "D": "-0", "E": "+3", "F": "18446744073709551615", "G": "1796000000123453", "H": "-1796000000123453",
                "I": "9223372036854775807", "J": "é\u{0}\n\"", "K": "", "L": "12.5",
            ])
        merged.seq = 0
        merged.seqIndex = 511
        let other = LogLine(time: 5, priority: 0, unit: "ü.service", identifier: "x", pid: 0, message: "m\nn", boot: "b", fields: ["A": "007"])
        let lines = [merged, other, merged]
        let (data, _) = try LogBlockCodec.encode(lines)
        let back = try LogBlockCodec.decode(data)
        #expect(back == lines && back[0].seq == 0 && back[0].seqIndex == 511 && back[1].seq == nil && back[1].pid == 0)
        // Strings Swift takes for equal ("é" written as one character, or as e and an accent) come back byte for byte.
        let forms = ["caf\u{e9}", "cafe\u{301}", "caf\u{e9}", "cafe\u{301}"].map { LogLine(time: 1, priority: 6, message: $0, fields: ["F": $0]) }
        let formsBack = try LogBlockCodec.decode(try LogBlockCodec.encode(forms).data)
        #expect(formsBack.map { Array($0.message.utf8) } == forms.map { Array($0.message.utf8) })
        #expect(formsBack.map { Array($0.fields["F"]!.utf8) } == forms.map { Array($0.message.utf8) })
        // A damaged body (a string index past the table, a count past the block) is an error, not a crash.
        var raw = [UInt8](try LogBlockCodec.inflate(data))
        raw[1] = 0xFF
        raw.insert(0x7F, at: 2)
        #expect(throws: LogBlockCodec.Failure.self) { try LogBlockCodec.decode(try LogBlockCodec.deflate(Data(raw))) }
    }

    @Test("journalctl's JSON read by hand gives what Foundation's parser gives: escapes, surrogates, bytes, repeats, null")
    func quickJSON() throws {
        let samples = [
            Self.journalJSON(cursor: "s=1", time: 1_790_000_000_000_000, message: "tab\tquote\" back\\ slash/ é \u{1F600} \u{1}"),
            Self.journalJSON(cursor: "s=2", time: 1_790_000_000_000_001, message: Array("caf\u{e9}".utf8).map(Int.init)),
            Self.journalJSON(cursor: "s=3", time: 1_790_000_000_000_002, message: NSNull(), extra: ["TAG": ["a", "b"], "BIN": [[1, 2], [3]]]),
            #"{"__CURSOR":"s=4","__REALTIME_TIMESTAMP":"1790000000000003","MESSAGE":"\u00e9\ud83d\ude00\/\b\f\r","PRIORITY":"3"}"#,
            #" { "__CURSOR" : "s=5" , "__REALTIME_TIMESTAMP" : "1790000000000004" , "MESSAGE" : [] } "#,
        ]
        for sample in samples {
            let quick = try #require(JournalJSON.object(Substring(sample).utf8), "\(sample)")
            let slow = try #require(try JSONSerialization.jsonObject(with: Data(sample.utf8)) as? [String: Any])
            let now: Int64 = 1_790_000_000_000_000
            #expect(LogLine.journal(pairs: quick, now: now)?.line == LogLine.journal(slow, now: now)?.line, "\(sample)")
        }
        // What the quick reader does not take goes to Foundation's: numbers, booleans, nested objects, bad escapes.
        for odd in [#"{"__CURSOR":"s","A":1}"#, #"{"A":true}"#, #"{"A":{"B":"c"}}"#, #"{"A":"\x"}"#, #"{"A":"b"} x"#, #"{"A":"b""#] {
            #expect(JournalJSON.object(Substring(odd).utf8) == nil, "\(odd)")
        }
    }

    static func fleetLines(host: Int, count: Int, start: Int64) -> [LogLine] {
        (0..<count).map { index in
            let time = start + Int64(index) * 1_000_000 + Int64(host) * 1000
            let priority = [6, 6, 6, 5, 4, 3, 6, 7][index % 8]
            let unit = ["ssh.service", "nginx.service", "cron.service", "init.scope"][index % 4]
            var fields: [String: String] = ["_COMM": "x"]
            if unit == "init.scope" { fields["UNIT"] = "nginx.service" }
            let message =
                index % 500 == 7
                ? "kernel: blk_update_request: I/O error, dev sda, sector \(index) zebracorn"
                : "\(unit) line \(index) on host \(host): \(priority <= 3 ? "Failed password for root from 203.0.113.\(index % 255)" : "ok")"
            return LogLine(
                time: time, priority: priority, unit: unit, identifier: unit.replacingOccurrences(of: ".service", with: ""), pid: 100 + index,
                message: message, boot: "b\(host)", fields: fields)
        }
    }

    @Test(
        "search: priority, unit as journalctl -u sees it, text through the block index, regex, hosts, newest first, and pages that neither skip nor repeat"
    )
    func search() async throws {
        let harness = try await ServerHarness()
        let store = LogStore(database: harness.server.database)
        var ids: [Int64] = []
        for name in ["web1", "web2", "db1"] {
            var settings = HostSettings()
            settings.name = name
            settings.address = "127.0.0.1"
            ids.append(try harness.server.hosts.create(settings, by: .system, now: Date()).id)
        }
        let start: Int64 = 1_790_000_000_000_000
        var all: [(Int64, LogLine)] = []
        for (index, id) in ids.enumerated() {
            let lines = Self.fleetLines(host: index, count: 3000, start: start)
            // In three reads, as the collector stores them, each with its cursor.
            for (part, slice) in [lines[0..<1000], lines[1000..<2500], lines[2500...]].enumerated() {
                try store.append(hostID: id, source: "journal", lines: Array(slice), position: "c\(part)")
            }
            all += lines.map { (id, $0) }
        }
        #expect(try store.position(hostID: ids[0], source: "journal") == "c2")
        // The start's database check passes over the new tables (SQLite 3.40 once flagged log_block_names falsely).
        #expect(try await harness.server.database.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") } == ["ok"])
        #expect(try store.sources().first { $0.hostID == ids[1] }?.linesTotal == 3000)
        let figures = try store.figures()
        #expect(figures.lines == 9000 && figures.blockBytes * 4 < figures.rawBytes, "\(figures)")

        var query = LogQuery(from: start / 1000, to: start / 1000 + 4_000_000)
        query.limit = 250
        func expected(_ keep: (Int64, LogLine) -> Bool) -> [String] {
            all.filter { keep($0.0, $0.1) }.sorted { $0.1.time > $1.1.time }.map { "\($0.0)/\($0.1.time)" }
        }
        func pages(_ query: LogQuery) throws -> [String] {
            var query = query
            var seen: [String] = []
            while true {
                let page = try store.search(query)
                seen += page.hits.map { "\($0.hostID)/\($0.line.time)" }
                guard let next = page.next else { return seen }
                query.before = next
            }
        }
        // Error and worse, the default: every host, newest first, across pages.
        #expect(try pages(query) == expected { $1.priority <= 3 })
        query.maxPriority = 7
        query.units = ["nginx.service"]
        #expect(try pages(query) == expected { $1.unit == "nginx.service" || $1.fields["UNIT"] == "nginx.service" })
        query.units = []
        query.text = "ZEBRACORN"
        // The reads of 1000 and 1500 lines made blocks of at least half a block (one of 1000, two of 750), written
        // merged at once; the read of 500 waits in a fresh block, which is not indexed: the search reads each of them.
        let kinds = try await harness.server.database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT compacted, count(*) AS n, sum(line_count) AS lines FROM log_blocks GROUP BY compacted ORDER BY compacted")
        }
        #expect(kinds.map { [$0["compacted"], $0["n"], $0["lines"]] as [Int] } == [[0, 3, 1500], [1, 9, 7500]])
        let fresh = try store.search(query)
        #expect(fresh.hits.map { "\($0.hostID)/\($0.line.time)" } == expected { $1.message.contains("zebracorn") })
        var absent = query
        absent.text = "unicornfish"
        #expect(try store.search(absent).blocksRead == 3, "the fresh blocks only: the index rules out the merged ones")
        // Once merged, the index finds the blocks that hold the word.
        for id in ids { try store.compact(hostID: id, source: "journal", maxAge: 0, now: Date().addingTimeInterval(60)) }
        let rare = try store.search(query)
        #expect(rare.hits.map { "\($0.hostID)/\($0.line.time)" } == expected { $1.message.contains("zebracorn") })
        #expect(try store.search(absent).blocksRead == 0, "every block is merged and indexed now")
        query.text = "failed password for ROOT from 203.0.113.7"
        #expect(try pages(query) == expected { $1.message.lowercased().contains("failed password for root from 203.0.113.7") })
        query.text = ""
        query.regex = try NSRegularExpression(pattern: "sector [0-9]+7 ", options: [])
        query.hostIDs = [ids[2]]
        #expect(
            try pages(query) == expected { id, line in id == ids[2] && line.message.range(of: "sector [0-9]+7 ", options: .regularExpression) != nil }
        )
        query.regex = nil
        query.hostIDs = [ids[1]]
        query.from = start / 1000 + 1_000_000
        query.to = start / 1000 + 1_099_999
        query.maxPriority = 4
        let window = expected { id, line in id == ids[1] && line.priority <= 4 && (1_000_000...1_099_999).contains(line.time / 1000 - start / 1000) }
        #expect(try pages(query) == window && !window.isEmpty)
        let (counts, partial) = try store.histogram(query, buckets: 10)
        #expect(counts.reduce(0, +) == window.count && !partial)
    }

    @Test("small reads are merged into full blocks once followers had them; the index forgets the merged blocks; following sends each line once")
    func compaction() async throws {
        let harness = try await ServerHarness()
        let store = LogStore(database: harness.server.database)
        var settings = HostSettings()
        settings.name = "web1"
        settings.address = "127.0.0.1"
        let id = try harness.server.hosts.create(settings, by: .system, now: Date()).id
        let start: Int64 = 1_790_000_000_000_000
        let lines = Self.fleetLines(host: 0, count: 300, start: start)
        let stored = Date(timeIntervalSinceNow: -120)
        var query = LogQuery(from: 0, to: .max)
        query.maxPriority = 7
        let followed = try store.followStart()
        for batch in stride(from: 0, to: 300, by: 10) {
            try store.append(hostID: id, source: "journal", lines: Array(lines[batch..<batch + 10]), position: "c\(batch)", now: stored)
        }
        // A follower that took the first 95 lines, then paused.
        let (first, _) = try store.newer(query, after: followed)
        #expect(first.count == 300 && first.map(\.hit.line.time) == lines.map(\.time))
        let paused = first[94].cursor
        // Fewer than a block's lines, and the oldest not yet ten minutes old: nothing to merge.
        #expect(try store.compact(hostID: id, source: "journal") == 0)
        #expect(try store.compact(hostID: id, source: "journal", maxAge: 60) == 30)
        let blocks = try await harness.server.database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, line_count, compacted FROM log_blocks WHERE host_id = ?", arguments: [id])
        }
        #expect(blocks.count == 1 && blocks[0]["line_count"] as Int == 300 && blocks[0]["compacted"] as Int == 1)
        let indexed = try await harness.server.database.read { db in
            try Int64.fetchAll(db, sql: "SELECT rowid FROM log_search WHERE log_search MATCH 'zebracorn'")
        }
        #expect(indexed == [blocks[0]["id"] as Int64], "the merged blocks' documents are gone from the index")
        #expect(try store.search(query).hits.count == 100 && (try store.histogram(query, buckets: 1)).counts == [300])
        // Resuming after the merge: the 205 lines after the pause, once, in the order they were stored; then a new read.
        let (rest, end) = try store.newer(query, after: paused)
        #expect(rest.map(\.hit.line.time) == lines[95...].map(\.time))
        #expect(try store.newer(query, after: end).hits.isEmpty)
        #expect(LogFollowCursor(text: paused.text) == paused && LogFollowCursor(text: end.text) == end && LogFollowCursor(text: "-1.0") == nil)
        try store.append(
            hostID: id, source: "journal", lines: [LogLine(time: start + 999_000_000, priority: 3, message: "after the merge")], position: "d")
        #expect(try store.newer(query, after: end).hits.map(\.hit.line.message) == ["after the merge"])
        // Paging positions hold across a merge too: they are the lines' sequences, not the blocks'.
        var paging = LogQuery(from: start / 1000, to: start / 1000 + 400_000)
        paging.maxPriority = 7
        paging.limit = 50
        #expect(try store.search(paging).hits.first?.position.block ?? 0 < blocks[0]["id"] as Int64)
    }

    @Test("a block's index document: the words with a letter, once each, in order; ASCII read on bytes gives what Character gives")
    func indexDocument() {
        let messages = [
            "Failed password for root from 203.0.113.7 port 22 ssh2", "naïve café 42 x_y-z", "tab\there CRLF\r\nnext", "über-ssh über ssh",
            "ÀB 12ab ab12 1e5 0x1F", "emoji 🙂ok done", "Failed again for root", "e\u{301}cole école", "",
        ]
        let lines = messages.map { LogLine(time: 0, priority: 6, message: $0) }
        // What every format 2 block was indexed with: Character's letters and digits (kept exact, to take documents out).
        var seen = Set<Substring>()
        var words: [Substring] = []
        for text in messages + ["sshd", "ssh.service"] {
            for word in text.split(whereSeparator: { !$0.isLetter && !$0.isNumber })
            where word.contains(where: \.isLetter) && seen.insert(word).inserted {
                words.append(word)
            }
        }
        #expect(LogStore.searchBody(lines[...], names: ["sshd", "ssh.service"]) == words.joined(separator: " "))
        #expect(LogStore.searchBody(lines[...], names: []).hasPrefix("Failed password for root from port ssh2 naïve café x y z tab here CRLF next"))
    }

    @Test("a database from before fresh blocks left the index: their documents leave it, merged blocks' stay and still leave on delete")
    func freshDocumentsMigrated() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/steward.db"
        let pool = try StewardDatabase.open(path: path)
        let all = try MigrationRunner.load(directory: repositoryRoot + "/migrations")
        try MigrationRunner(migrations: all.migrations.filter { $0.version < 28 }).migrate(pool, databasePath: path)
        try pool.write { db in
            try db.execute(sql: "INSERT INTO hosts (name, address, created_at, updated_at) VALUES ('web1', '127.0.0.1', 0, 0)")
            let host = db.lastInsertedRowID
            for (compacted, word) in [(0, "freshword"), (1, "mergedword")] {
                let (data, raw) = try LogBlockCodec.encode([LogLine(time: 1_000_000, priority: 6, message: "a \(word) line")])
                try db.execute(
                    sql: """
                        INSERT INTO log_blocks (host_id, source, start_ms, end_ms, line_count, priorities, min_priority, raw_bytes, data, stored_at, compacted)
                        VALUES (?, 'journal', 1000, 1000, 1, 64, 6, ?, ?, 0, ?)
                        """, arguments: [host, raw, data, compacted])
                try db.execute(
                    sql: "INSERT INTO log_search (rowid, body) VALUES (?, steward_log_search_body(?))", arguments: [db.lastInsertedRowID, data])
            }
        }
        try all.migrate(pool, databasePath: path)
        func found(_ word: String) throws -> [Int64] {
            try pool.read { db in try Int64.fetchAll(db, sql: "SELECT rowid FROM log_search WHERE log_search MATCH ?", arguments: [word]) }
        }
        #expect(try found("freshword").isEmpty && found("line").count == 1 && found("mergedword").count == 1)
        try pool.write { db in try db.execute(sql: "DELETE FROM log_blocks") }
        #expect(try found("line").isEmpty && found("mergedword").isEmpty)
    }

    @Test(
        "a hostile host's journal: far-future and negative times, too many fields, odd names and huge values are held to bounds; catastrophic regexes are refused"
    )
    func bounds() throws {
        let now: Int64 = 1_790_000_000_000_000
        var fields: [String: Any] = [:]
        for index in 0..<500 { fields["F\(index)"] = String(repeating: "x", count: 5000) }
        fields["lower_case"] = "no"
        fields["_SYSTEMD_UNIT"] = String(repeating: "u", count: 5000)
        for claimed in [Int64.max, -5, now + 2 * 86_400_000_000] {
            let json = Self.journalJSON(cursor: "s=1", time: claimed, extra: fields)
            let line = try #require(LogLine.journal(try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any], now: now)?.line)
            #expect(line.time == now && line.fields["STEWARD_CLAIMED_TIMESTAMP"] == String(claimed))
            #expect(line.fields.count <= LogLine.maxFields + 1 && line.fields["lower_case"] == nil)
            #expect(line.fields.values.allSatisfy { $0.utf8.count <= LogLine.maxFieldBytes + 6 } && line.unit.utf8.count <= 262)
        }
        for bad in ["(a+)+$", "(\\w*)*x", "((ab)+)+", "(x+x+)+y", "(a|b+)*c", "(\\d|\\d|\\d)*x", ".*.*.*.*.*x", "(a|ab)+c", "x(.*a.*b|c)(.*d.*e.*f)"]
        {
            #expect(LogFilter.backtrackingProblem(bad) != nil, "\(bad)")
        }
        for fine in [
            "(a+)", "Failed (password|publickey) for", "[(+]+", "\\(a+\\)+", "sector [0-9]+7 ", "(ab)+c", "(a+)?b",
            // Alternatives are not a sequence: one repeat per path.
            "(/dev/)?(mmcblk.p.+|nvme.+|rbd.+|sd.+|vd.+|xvd.+|dm-.+|md.+|dasd.+)",
        ] {
            #expect(LogFilter.backtrackingProblem(fine) == nil, "\(fine)")
        }
        #expect(LogFilter(query: ["range": "custom", "from": "99999-01-01T00:00:00Z"], now: Date()).errors["from"] != nil)
        #expect(LogPosition(text: "5-1-2") != nil && LogPosition(text: "-5-1-2") == nil)
    }

    @Test("the logs page and API: filters in the URL, the panel host's lines for admins only, and wrong filters named")
    func pageAndAPI() async throws {
        let harness = try await ServerHarness()
        let store = LogStore(database: harness.server.database)
        let web = try ServiceActionsTests.readHost(harness, name: "web1")
        let panel = try #require(try harness.server.hosts.all().first { $0.transport == .local })
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        try store.append(
            hostID: web.id, source: "journal",
            lines: [
                LogLine(time: now - 60_000_000, priority: 3, unit: "nginx.service", identifier: "nginx", pid: 42, message: "upstream timed out <b>"),
                LogLine(time: now - 30_000_000, priority: 6, unit: "ssh.service", identifier: "sshd", message: "Accepted publickey for deploy"),
            ], position: "w1")
        try store.append(
            hostID: panel.id, source: "journal",
            lines: [LogLine(time: now - 10_000_000, priority: 2, identifier: "steward", message: "panel secret")],
            position: "p1")
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/logs", method: .get) { response in
                let page = text(response)
                #expect(response.status == .ok && page.contains("upstream timed out &lt;b&gt;") && !page.contains("panel secret"))
                #expect(!page.contains("Accepted publickey"), "info is below the default error-and-worse")
            }
            try await client.execute(uri: "/api/v1/logs?priority=7&host=web1", method: .get) { response in
                let items = try json(response)["items"] as? [[String: Any]] ?? []
                #expect(items.map { $0["message"] as? String } == ["Accepted publickey for deploy", "upstream timed out <b>"])
                #expect(items.first?["host"] as? String == "web1" && items.last?["pid"] as? Int == 42)
            }
            try await client.execute(uri: "/logs?host=web1&priority=7&unit=ssh.service", method: .get) { response in
                let page = text(response)
                #expect(page.contains("Accepted publickey") && !page.contains("upstream timed out"))
                #expect(page.contains("journalctl --priority=0..7 --since=-1h --unit=ssh.service"), "the same lines on the host itself")
            }
            try await client.execute(uri: "/api/v1/logs/sources", method: .get) { response in
                let items = try json(response)["items"] as? [[String: Any]] ?? []
                #expect(items.compactMap { $0["host"] as? String } == ["web1"], "the panel host's source is an admin's")
            }
            try await client.execute(uri: "/logs/around?host=web1&at=-9223372036854775808", method: .get) { response in
                #expect(response.status == .badRequest)
            }
            try await client.execute(uri: "/api/v1/logs?regex=(unclosed&priority=9&range=2d", method: .get) { response in
                let errors = try json(response)["errors"] as? [String: String] ?? [:]
                #expect(response.status == .unprocessableContent && Set(errors.keys) == ["regex", "priority", "range"])
            }
        }
        try await harness.test(as: [.admin]) { client in
            try await client.execute(uri: "/api/v1/logs?priority=2", method: .get) { response in
                let items = try json(response)["items"] as? [[String: Any]] ?? []
                #expect(items.map { $0["message"] as? String } == ["panel secret"])
            }
        }
    }

    @Test("this boot: each host's current boot from its journal (wall clock less time since boot), its lines only, and journalctl --boot")
    func thisBoot() async throws {
        let harness = try await ServerHarness()
        let store = LogStore(database: harness.server.database)
        let web = try ServiceActionsTests.readHost(harness, name: "web1")
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let bootStart = now - 600_000_000
        // Two boots in one read: the old one's last lines, then the new one's first (10 minutes ago), in the
        // journal's JSON with its monotonic clock.
        let output = [
            Self.journalJSON(
                cursor: "s=1", time: now - 3_600_000_000, priority: 3, message: "old boot failure",
                extra: ["_BOOT_ID": "old", "__MONOTONIC_TIMESTAMP": "86400000000"]),
            Self.journalJSON(
                cursor: "s=2", time: bootStart + 2_000_000, priority: 3, message: "new boot failure",
                extra: ["_BOOT_ID": "new", "__MONOTONIC_TIMESTAMP": "2000000"]),
        ].joined(separator: "\n")
        let (lines, cursor, _) = LogLine.journalLines(output)
        try store.append(hostID: web.id, source: "journal", lines: lines, position: cursor)
        let boots = try store.currentBoots([web.id])
        #expect(boots[web.id]?.boot == "new" && boots[web.id]?.started == bootStart / 1000)
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/api/v1/logs?host=web1&range=boot", method: .get) { response in
                let items = try json(response)["items"] as? [[String: Any]] ?? []
                #expect(items.map { $0["message"] as? String } == ["new boot failure"])
            }
            try await client.execute(uri: "/api/v1/logs?host=web1&range=24h", method: .get) { response in
                let items = try json(response)["items"] as? [[String: Any]] ?? []
                #expect(items.count == 2)
            }
            try await client.execute(uri: "/logs?host=web1&range=boot", method: .get) { response in
                let page = text(response)
                #expect(page.contains("journalctl --priority=0..3 --boot") && page.contains("<option value=\"boot\" selected>this boot</option>"))
            }
        }
    }
}
