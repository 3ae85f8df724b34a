import Foundation
import GRDB
import StewardKit

/// bench/logs: a journal export of `lines` lines from `hosts` hosts (what `journalctl -o json` prints, with the fields
/// journald writes), ingested through the collector's own parsing and store on one thread; the bytes the store takes
/// per line, index included, against the text of the same lines (`journalctl -o short`); and two searches (a rare word
/// across the fleet; one host's errors in one hour), p50 and p99, against grep over the short text and, when
/// systemd-journal-remote is installed, `journalctl --file --grep` over a journal file of the same lines, in the same
/// run. Goals: at least 50,000 lines/s ingested, at most 30 % of the text on disk, both searches p99 under 500 ms.
func benchLogs(_ options: Options) async throws {
    let total = options.int("lines", 10_000_000)
    let hostCount = options.int("hosts", 50)
    let runs = options.int("runs", 20)
    let work = options.string("work") ?? NSTemporaryDirectory() + "steward-bench-logs"
    try? FileManager.default.removeItem(atPath: work)
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { if options.string("work") == nil { try? FileManager.default.removeItem(atPath: work) } }
    say("steward-bench logs: \(total) journal lines from \(hostCount) hosts; machine: \(ProcessInfo.processInfo.activeProcessorCount) cores")

    // 1. The lines, as journalctl prints them: JSON for Steward, short text for grep, export format for journal-remote.
    let rare = "zebracorn"
    let json = work + "/journal.json"
    let short = work + "/journal.txt"
    let export = work + "/journal.export"
    let remote = ["/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    let started = Date()
    let (jsonBytes, shortBytes) = try writeJournal(
        lines: total, hosts: hostCount, rare: rare, json: json, short: short, export: remote == nil ? nil : export)
    say(
        String(
            format: "generated in %.1f s: JSON %.1f MiB, short text %.1f MiB (%.1f bytes a line)", Date().timeIntervalSince(started),
            Double(jsonBytes) / 1_048_576, Double(shortBytes) / 1_048_576, Double(shortBytes) / Double(total)))

    // 2. Ingest: the collector reads each host's journal 4 MB at a time (journalctl -o json after the stored cursor); a
    // host catching up, or an export being loaded, comes in reads that size. The bench parses the file in 4 MB pieces
    // and hands each host's lines to the store as one read once they add up to 4 MB of that host's JSON (the last
    // read of each host is smaller, and merged as the collector merges it), all on this thread.
    let path = work + "/steward.db"
    let database = try makeDatabase(path)
    let hosts = try addHosts(database, count: hostCount, prefix: "node")
    try checkpoint(database)
    let empty = fileSize(path)
    let store = LogStore(database: database)
    let (stored, ingestSeconds, parseSeconds) = try ingest(json, into: store, hosts: hosts, readBytes: 4 << 20, maxLines: total)
    try checkpoint(database)
    let onDisk = fileSize(path) - empty
    let figures = try store.figures()
    say(
        String(
            format:
                "ingest: %d lines in %.1f s of Steward's parsing and storing = %.0f lines/s on one thread (parsing %.1f s, storing %.1f s); goal at least 50,000: %@",
            stored, ingestSeconds, Double(stored) / ingestSeconds, parseSeconds, ingestSeconds - parseSeconds,
            Double(stored) / ingestSeconds >= 50_000 ? "met" : "NOT met"))
    // The steady state: every host read every few seconds, a hundred lines a read, each read a fresh block that is
    // merged later (read, merged and indexed again). Its rate, over the first million lines, into a database of its own.
    if options.int("small-reads", 1_000_000) > 0 {
        let smallPath = work + "/small-reads.db"
        let smallDatabase = try makeDatabase(smallPath)
        let smallHosts = try addHosts(smallDatabase, count: hostCount, prefix: "node")
        let (lines, seconds, parsing) = try ingest(
            json, into: LogStore(database: smallDatabase), hosts: smallHosts, readBytes: 80_000,
            maxLines: min(total, options.int("small-reads", 1_000_000)))
        say(
            String(
                format:
                    "ingest in small reads (about 100 lines a host a read, merged later): %d lines in %.1f s of parsing and storing = %.0f lines/s (parsing %.1f s, storing %.1f s)",
                lines, seconds, Double(lines) / seconds, parsing, seconds - parsing))
        try? FileManager.default.removeItem(atPath: smallPath)
    }
    say(
        String(
            format:
                "disk: %.1f MiB for %d lines = %.1f bytes a line, %.1f %% of the short text (%.1f %% of the JSON); blocks alone %.1f bytes a line; goal at most 30 %%: %@",
            Double(onDisk) / 1_048_576, figures.lines, Double(onDisk) / Double(figures.lines), 100 * Double(onDisk) / Double(shortBytes),
            100 * Double(onDisk) / Double(jsonBytes), Double(figures.blockBytes) / Double(figures.lines),
            Double(onDisk) <= 0.3 * Double(shortBytes) ? "met" : "NOT met"))

    // 3. Searches, against grep and journalctl over the same lines.
    let first = try await database.read { db in try Int64.fetchOne(db, sql: "SELECT min(start_ms) FROM log_blocks") ?? 0 }
    let last = try await database.read { db in try Int64.fetchOne(db, sql: "SELECT max(end_ms) FROM log_blocks") ?? 0 }
    var rareQuery = LogQuery(from: first, to: last)
    rareQuery.maxPriority = 7
    rareQuery.text = rare
    rareQuery.limit = 100
    let middle = first + (last - first) / 2
    var hostQuery = LogQuery(from: middle, to: middle + 3_600_000)
    hostQuery.hostIDs = [hosts[hosts.count / 2].id]
    hostQuery.maxPriority = 3
    hostQuery.limit = 100
    let rareHits = try store.search(rareQuery).hits.count
    let hostHits = try store.search(hostQuery).hits.count
    say("searches: the rare word finds \(rareHits) line(s); \(hosts[hosts.count / 2].name)'s errors in one hour: \(hostHits) line(s) (first page)")
    func time(_ label: String, _ body: () throws -> Void) rethrows {
        var samples: [Double] = []
        for _ in 0..<runs {
            let start = Date()
            try body()
            samples.append(Date().timeIntervalSince(start) * 1000)
        }
        samples.sort()
        let p50 = samples[samples.count / 2]
        let p99 = samples[min(samples.count - 1, Int((Double(samples.count) * 0.99).rounded(.up)) - 1)]
        say(String(format: "  %@: p50 %.1f ms, p99 %.1f ms", label, p50, p99))
    }
    try time("Steward, rare word (whole fleet, whole range)") { _ = try store.search(rareQuery) }
    try time("Steward, one host + priority err and worse + one hour") { _ = try store.search(hostQuery) }
    let hostName = hosts[hosts.count / 2].name
    try time("grep -F -c over the short text, rare word") { try runTool(["grep", "-F", "-c", rare, short]) }
    try time("grep -F -c over the short text, one host's lines") { try runTool(["grep", "-F", "-c", " \(hostName) ", short]) }
    if let remote {
        let journalFile = work + "/journal.journal"
        try runTool([remote, "--output=\(journalFile)", export])
        // journal-remote starts a new file every so often (journal@…journal): journalctl reads them all by a glob.
        let journalFiles = try FileManager.default.contentsOfDirectory(atPath: work).filter { $0.hasPrefix("journal") && $0.hasSuffix(".journal") }
        let journalBytes = journalFiles.reduce(Int64(0)) { $0 + fileSize(work + "/" + $1) }
        say("journal files: \(journalFiles.count), \(journalBytes / 1_048_576) MiB from systemd-journal-remote")
        let journalGlob = work + "/journal*.journal"
        try time("journalctl --file --grep, rare word") {
            _ = try runTool(["journalctl", "--file=\(journalGlob)", "--grep=\(rare)", "--no-pager", "-q"])
        }
        try time("journalctl --file _HOSTNAME= -p err, one hour") {
            try runTool([
                "journalctl", "--file=\(journalGlob)", "_HOSTNAME=\(hostName)", "--priority=0..3", "--no-pager", "-q",
                "--since=@\(middle / 1000)", "--until=@\(middle / 1000 + 3600)",
            ])
        }
    } else {
        say("  journalctl: systemd-journal-remote is not installed, so there is no journal file to search (make bench installs it)")
    }
}

/// Splits the journal JSON by host (each host's journalctl output, as the collector gets it) and hands each host's
/// JSON to Steward once `readBytes` of it have gathered: parsed (`LogLine.journalLines`) and stored as one read,
/// merging fresh blocks after a read as the collector does (the bench's clock is moved past the wait for followers).
/// Stops after `maxLines`. Returns the lines stored, and the seconds Steward spent parsing and storing (reading the
/// file and splitting it by host is the bench's own work, not timed).
func ingest(_ json: String, into store: LogStore, hosts: [StewardKit.Host], readBytes: Int, maxLines: Int) throws -> (Int, Double, Double) {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: json))
    defer { try? handle.close() }
    let ids = Dictionary(uniqueKeysWithValues: hosts.map { (Array("\"_HOSTNAME\":\"\($0.name)\"".utf8), $0.id) })
    let key = Array("\"_HOSTNAME\":\"".utf8)
    var carry = Data()
    var stored = 0
    var split = 0
    var parseSeconds = 0.0
    var storeSeconds = 0.0
    var pending: [Int64: [UInt8]] = [:]
    func read(_ host: Int64, last: Bool) throws {
        guard let waiting = pending[host], !waiting.isEmpty else { return }
        pending[host] = nil
        let parseStart = Date()
        let (lines, cursor, _) = LogLine.journalLines(String(decoding: waiting, as: UTF8.self))
        let storeStart = Date()
        parseSeconds += storeStart.timeIntervalSince(parseStart)
        try store.append(hostID: host, source: "journal", lines: lines, position: cursor)
        // A read below the collector's 4 MB cap is the host's last for now: the collector then merges what is fresh.
        if last || waiting.count < 4 << 20 {
            try store.compact(hostID: host, source: "journal", now: Date().addingTimeInterval(60))
        }
        storeSeconds += Date().timeIntervalSince(storeStart)
        stored += lines.count
    }
    while split < maxLines {
        let chunk = try handle.read(upToCount: 4 << 20) ?? Data()
        if chunk.isEmpty && carry.isEmpty { break }
        let data = [UInt8](carry + chunk)
        carry = Data()
        var start = 0
        while split < maxLines, let newline = data[start...].firstIndex(of: 0x0A) {
            let line = data[start...newline]
            start = newline + 1
            // The host's name, from the line's "_HOSTNAME":"..." (the generator writes it once a line).
            guard let at = line.firstRange(of: key), let close = line[at.upperBound...].firstIndex(of: 0x22),
                let host = ids[Array(line[at.lowerBound...close])]
            else { continue }
            pending[host, default: []].append(contentsOf: line)
            split += 1
            if pending[host]!.count >= readBytes { try read(host, last: false) }
        }
        carry = Data(data[start...])
        if chunk.isEmpty { break }
    }
    for host in hosts { try read(host.id, last: true) }
    return (stored, parseSeconds + storeSeconds, parseSeconds)
}

/// Run a comparison tool; a status other than `accepted` (grep -c exits 1 when nothing matched) fails the bench, so a
/// tool that broke cannot pass for a fast one.
@discardableResult
func runTool(_ argv: [String], accepted: Set<Int32> = [0]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
    process.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
    // Output to a pipe that is read to the end: GNU grep stops at its first match when its output is /dev/null, which
    // made grep -c look a hundred times faster than it is.
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    _ = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard accepted.contains(process.terminationStatus) else {
        throw BenchError("\(argv.joined(separator: " ")) exited with status \(process.terminationStatus)")
    }
    return process.terminationStatus
}

/// Journal lines with the fields journald writes, from a handful of realistic programs, in time order across hosts;
/// `rare` appears in ten lines. Returns the JSON and short-text sizes.
func writeJournal(lines total: Int, hosts: Int, rare: String, json: String, short: String, export: String?) throws -> (Int, Int) {
    _ = FileManager.default.createFile(atPath: json, contents: nil)
    _ = FileManager.default.createFile(atPath: short, contents: nil)
    let jsonOut = try FileHandle(forWritingTo: URL(fileURLWithPath: json))
    let shortOut = try FileHandle(forWritingTo: URL(fileURLWithPath: short))
    var exportOut: FileHandle?
    if let export {
        _ = FileManager.default.createFile(atPath: export, contents: nil)
        exportOut = try FileHandle(forWritingTo: URL(fileURLWithPath: export))
    }
    var random = Random(state: 20_261_206)
    // journald's ids are 128-bit, in hex: journal-remote refuses entries whose boot id is not.
    var bootIDs: [String: String] = [:]
    for number in 1...hosts { bootIDs["node-" + String(format: "%03d", number)] = String(format: "%08x6d1c4b7a9e2f3c5d%08x", number, number * 7919) }
    let start: Int64 = 1_796_000_000_000_000  // µs
    let step = Int64(7 * 86_400 * 1_000_000) / Int64(max(1, total))  // a week of lines
    let rareEvery = max(1, total / 10)
    let programs: [(unit: String, identifier: String, priority: ClosedRange<Int>)] = [
        ("ssh.service", "sshd", 5...6), ("nginx.service", "nginx", 6...6), ("cron.service", "CRON", 6...6), ("", "kernel", 3...6),
        ("init.scope", "systemd", 5...6), ("app.service", "app", 3...7), ("postgresql@15-main.service", "postgres", 4...6),
    ]
    var jsonBytes = 0
    var shortBytes = 0
    var jsonBuffer = ""
    var shortBuffer = ""
    var exportBuffer = ""
    for index in 0..<total {
        let time = start + Int64(index) * step
        let host = "node-" + String(format: "%03d", Int(random.next() % UInt64(hosts)) + 1)
        let program = programs[Int(random.next() % UInt64(programs.count))]
        let priority = random.int(program.priority)
        let pid = 300 + Int(random.next() % 60_000)
        let address = "10.\(random.int(0...255)).\(random.int(0...255)).\(random.int(1...254))"
        var message: String
        switch program.identifier {
        case "sshd":
            message =
                priority == 5
                ? "Failed password for invalid user admin from \(address) port \(random.int(1024...65535)) ssh2"
                : "Accepted publickey for deploy from \(address) port \(random.int(1024...65535)) ssh2: ED25519 SHA256:\(random.next())"
        case "nginx":
            message =
                "\(address) - - \"GET /api/v1/items/\(random.int(1...99999)) HTTP/1.1\" \([200, 200, 200, 304, 404, 500][random.int(0...5)]) \(random.int(100...90000)) \"-\" \"curl/7.88.1\""
        case "CRON": message = "(root) CMD (/usr/local/bin/backup --quiet > /dev/null 2>&1)"
        case "kernel":
            message =
                priority == 3
                ? "blk_update_request: I/O error, dev sda, sector \(random.int(1...99_999_999)) op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0"
                : "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies."
        case "systemd": message = "Started session-\(random.int(1...9999)).scope - Session \(random.int(1...9999)) of User deploy."
        case "postgres":
            message = "checkpoint complete: wrote \(random.int(1...9999)) buffers (\(random.int(0...99)).\(random.int(0...9))%); 0 WAL file(s) added"
        default:
            message =
                "request_id=\(String(random.next(), radix: 16)) method=GET path=/orders/\(random.int(1...99999)) status=\([200, 201, 404, 500][random.int(0...3)]) duration_ms=\(random.int(1...900))"
        }
        if index % rareEvery == rareEvery / 2 { message += " \(rare)" }
        var fields: [String: String] = [
            "__CURSOR":
                "s=6f1c0b2d8a9e4f3c9b7a6d5e4c3b2a19;i=\(String(index, radix: 16));b=\(host);m=\(String(time, radix: 16));t=\(String(time, radix: 16));x=\(String(random.next(), radix: 16))",
            "__REALTIME_TIMESTAMP": String(time), "__MONOTONIC_TIMESTAMP": String(time - start + 5_000_000), "_BOOT_ID": bootIDs[host]!,
            "_MACHINE_ID": "4c1d7a9e2b3f4a5c6d7e8f9012345678", "_HOSTNAME": host, "PRIORITY": String(priority), "SYSLOG_FACILITY": "3",
            "SYSLOG_IDENTIFIER": program.identifier, "MESSAGE": message, "_TRANSPORT": program.identifier == "kernel" ? "kernel" : "syslog",
        ]
        if !program.unit.isEmpty {
            fields["_SYSTEMD_UNIT"] = program.unit
            fields["_PID"] = String(pid)
            fields["_UID"] = "0"
            fields["_GID"] = "0"
            fields["_COMM"] = program.identifier.lowercased()
            fields["_EXE"] = "/usr/sbin/" + program.identifier.lowercased()
            fields["_CMDLINE"] = "/usr/sbin/\(program.identifier.lowercased()) -D"
            fields["_CAP_EFFECTIVE"] = "1ffffffffff"
            fields["_SYSTEMD_CGROUP"] = "/system.slice/\(program.unit)"
            fields["_SYSTEMD_SLICE"] = "system.slice"
            fields["_SYSTEMD_INVOCATION_ID"] = "9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e"
            fields["SYSLOG_PID"] = String(pid)
            fields["_SOURCE_REALTIME_TIMESTAMP"] = String(time - 3)
        }
        // Written by hand (JSONSerialization and DateFormatter made 2 million lines take 11 minutes).
        let sortedFields = fields.sorted { $0.key < $1.key }
        jsonBuffer += "{" + sortedFields.map { "\"\($0.key)\":\"\(jsonEscaped($0.value))\"" }.joined(separator: ",") + "}\n"
        let stamp = shortStamp(time / 1_000_000)
        shortBuffer += "\(stamp) \(host) \(program.identifier)\(program.unit.isEmpty ? "" : "[\(pid)]"): \(message)\n"
        if exportOut != nil {
            for (key, value) in sortedFields where key != "__CURSOR" { exportBuffer += "\(key)=\(value)\n" }
            exportBuffer += "\n"
        }
        if jsonBuffer.utf8.count > 8 << 20 || index == total - 1 {
            jsonBytes += jsonBuffer.utf8.count
            shortBytes += shortBuffer.utf8.count
            jsonOut.write(Data(jsonBuffer.utf8))
            shortOut.write(Data(shortBuffer.utf8))
            exportOut?.write(Data(exportBuffer.utf8))
            jsonBuffer = ""
            shortBuffer = ""
            exportBuffer = ""
        }
    }
    try jsonOut.close()
    try shortOut.close()
    try exportOut?.close()
    return (jsonBytes, shortBytes)
}

/// A JSON string's content: quotes, backslashes and control characters escaped.
func jsonEscaped(_ text: String) -> String {
    guard text.utf8.contains(where: { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 }) else { return text }
    var out = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out
}

/// "Dec 06 10:00:00" in UTC, as `journalctl -o short` writes a time (without a DateFormatter).
func shortStamp(_ seconds: Int64) -> String {
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    let civil = CivilDate(daysSinceEpoch: Int(seconds / 86_400))
    let (month, day) = (civil.month, civil.day)
    let second = Int(seconds % 86_400)
    func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
    return "\(months[month - 1]) \(two(day)) \(two(second / 3600)):\(two(second % 3600 / 60)):\(two(second % 60))"
}
