import Foundation
import GRDB
import Logging
import Testing

@testable import StewardKit

@Suite("Log files under /var/log: read as they grow, through rotation and truncation, each line once, and nothing outside /var/log")
struct LogFileTests {
    @Test("a line's time, program and priority from what files hold: syslog, nginx, access logs, level words")
    func lines() {
        let now = ISO8601DateFormatter().date(from: "2026-12-06T12:00:00Z")!
        func line(_ text: String) -> LogLine {
            LogFileReader.line(ArraySlice(Array(text.utf8)), path: "/var/log/app.log", zone: TimeZone(identifier: "UTC")!, now: now)
        }
        let syslog = line("Dec  6 11:59:01 web1 CRON[4242]: (root) CMD (run-parts /etc/cron.hourly)")
        #expect(
            syslog.identifier == "CRON" && syslog.pid == 4242 && syslog.priority == 6 && syslog.message == "(root) CMD (run-parts /etc/cron.hourly)")
        #expect(syslog.time == 1_796_558_341_000_000 && syslog.fields["STEWARD_FILE"] == "/var/log/app.log")
        let nginx = line("2026/12/06 11:58:00 [error] 812#812: *1 connect() failed (111: Connection refused) while connecting to upstream")
        #expect(nginx.priority == 3 && nginx.time == 1_796_558_280_000_000 && nginx.identifier == "app.log")
        let app = line("2026-12-06 11:57:00,250 WARN  [pool-1] retrying in 5 s")
        #expect(app.priority == 4 && app.time == 1_796_558_220_250_000)
        let access = line("203.0.113.9 - - [06/Dec/2026:11:56:00 +0100] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/7.88\"")
        #expect(access.time == 1_796_554_560_000_000 && access.priority == 6, "an access line names no level: info")
        let crit = line("crit: the database is gone")
        #expect(crit.priority == 2 && crit.fields["STEWARD_FILE_TIME"] == "read" && crit.time == 1_796_558_400_000_000)
        #expect(line("an error occurred while nothing was wrong").priority == 6, "a level word in running text is not a level")
    }

    @Test("a host's answer is checked: offsets and inodes out of range, paths it was not asked for, and files gone")
    func hostileOutput() {
        let data = Data("one\ntwo\n".utf8).base64EncodedString()
        let output = [
            #"{"path":"/var/log/a.log","inode":1,"start":9223372036854775807,"data":"\#(data)"}"#,
            #"{"path":"/var/log/a.log","inode":-4,"start":0,"data":"\#(data)"}"#,
            #"{"path":"/etc/shadow","inode":1,"start":0,"data":"\#(data)"}"#,
            #"{"path":"/var/log/old.log","gone":true}"#,
            #"{"path":"/var/log/b.log","inode":7,"start":10,"data":"\#(data)"}"#,
        ].joined(separator: "\n")
        let read = LogFileReader.parse(
            output, position: ["/var/log/old.log": [3, 100], "/var/log/a.log": [1, 5]], zone: TimeZone(identifier: "UTC")!, now: Date())
        #expect(read.lines.map(\.message) == ["one", "two"])
        #expect(read.position == ["/var/log/a.log": [1, 5], "/var/log/b.log": [7, 18]])
    }

    @Test("path rules: under /var/log only, patterns in the file name only")
    func paths() {
        for (path, fine) in [
            ("/var/log/nginx/error.log", true), ("/var/log/nginx/*.log", true), ("/var/log/syslog", true), ("/etc/shadow", false),
            ("/var/log/../../etc/shadow", false), ("/var/log/*/access.log", false), ("/var/log/", false), ("var/log/x", false),
            ("/var/logx/y", false), ("/var/log//x", false),
        ] {
            var file = LogFileSource()
            file.path = path
            #expect(file.problems(groups: []).isEmpty == fine, "\(path)")
        }
    }

    /// A directory under /var/log of the test's own, removed afterwards.
    final class Directory {
        let path = "/var/log/steward-test-\(UUID().uuidString.prefix(8))"
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func append(_ name: String, _ text: String) throws {
            let url = URL(fileURLWithPath: path + "/" + name)
            if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
            let handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
            try handle.close()
        }
    }

    @Test(
        "the panel host's files, read for real: growth, a line waiting for its end, logrotate's rename, copytruncate, a pattern, and a link out of /var/log refused",
        .enabled(if: getuid() == 0, "writes under /var/log")
    )
    func reading() async throws {
        let directory = try Directory()
        let harness = try await ServerHarness()
        let server = harness.server
        let panel = try #require(try server.hosts.all().first { $0.transport == .local })
        let files = LogFileStore(database: server.database)
        let collector = JournalCollector(
            store: server.logs, hosts: server.hosts, reader: HostReader(keys: server.engine.keys), files: files, intervalSeconds: 0,
            logger: quietLogger)
        for path in [directory.path + "/app.log", directory.path + "/*.txt", directory.path + "/escape.log"] {
            var file = LogFileSource()
            file.path = path
            _ = try files.create(file, groups: [], by: .system, now: Date())
        }
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/escape.log", withDestinationPath: "/etc/passwd")
        func messages() throws -> [String] {
            var query = LogQuery(from: 0, to: EpochMilliseconds.from(Date()) + 86_400_000)
            query.maxPriority = 7
            query.hostIDs = [panel.id]
            query.limit = 1000
            return try server.logs.search(query).hits.filter { $0.line.fields["_TRANSPORT"] == "file" }.map(\.line.message).sorted()
        }
        try directory.append("app.log", "one\ntwo\nthree\n")
        try directory.append("a.txt", "alpha\n")
        try directory.append("a.txt.1", "rotated by name, not read\n")
        _ = await collector.readFiles(panel)
        #expect(try messages() == ["alpha", "one", "three", "two"])
        let state = try #require(try server.logs.sources().first { $0.source == "file" })
        #expect(state.lastError.contains("escape.log: not a regular file under /var/log"), "\(state.lastError)")

        // Growth, with a last line still being written: it waits for its end.
        try directory.append("app.log", "four\nfi")
        _ = await collector.readFiles(panel)
        #expect(try messages().contains("four") && !(try messages().contains { $0.hasPrefix("fi") }))
        // logrotate: the line is finished, the file renamed away, a new one started; the old one's end is read first.
        try directory.append("app.log", "ve\n")
        try FileManager.default.moveItem(atPath: directory.path + "/app.log", toPath: directory.path + "/app.log.1")
        try directory.append("app.log", "six\nseven\n")
        _ = await collector.readFiles(panel)
        #expect(try messages() == ["alpha", "five", "four", "one", "seven", "six", "three", "two"])
        // copytruncate: the file is emptied in place and written again from its start.
        try "".write(toFile: directory.path + "/app.log", atomically: false, encoding: .utf8)
        try directory.append("app.log", "eight\n")
        _ = await collector.readFiles(panel)
        _ = await collector.readFiles(panel)
        #expect(try messages() == ["alpha", "eight", "five", "four", "one", "seven", "six", "three", "two"], "every line once")
    }
}
