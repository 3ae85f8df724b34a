import Foundation
import GRDB
import Testing

@testable import StewardKit

/// Seeded data, a fixed clock, and the real enforcer on a real SQLite file.
@Suite("retention policies: each kind against seeded data", .serialized)
struct RetentionTests {
    static let now = utc("2026-06-01T00:00:00Z")
    static let day: Int64 = 86_400_000

    static func ago(_ days: Double) -> Int64 { EpochMilliseconds.from(now) - Int64(days * Double(day)) }

    struct Fixture {
        let directory = TemporaryDirectory()
        let database: DatabasePool
        let service: RetentionService
        let hostID: Int64
        let otherHostID: Int64

        init(grace: Int = 0, batchSize: Int = 7) throws {
            database = try makeDatabase(directory)
            service = RetentionService(
                database: database, databasePath: directory.path + "/steward.db", graceMinutes: grace, sessionIdleMinutes: 30,
                batchSize: batchSize, pause: .zero)
            (hostID, otherHostID) = try database.write { db in
                try db.execute(sql: "INSERT INTO hosts (name, address, transport, created_at, updated_at) VALUES ('web-01', 'web-01', 'ssh', 0, 0)")
                let web = db.lastInsertedRowID
                try db.execute(sql: "INSERT INTO hosts (name, address, transport, created_at, updated_at) VALUES ('db-01', 'db-01', 'ssh', 0, 0)")
                let other = db.lastInsertedRowID
                try db.execute(sql: "INSERT INTO host_groups (name, created_at, updated_at) VALUES ('databases', 0, 0)")
                try db.execute(sql: "INSERT INTO host_group_members (host_id, group_id) VALUES (?, ?)", arguments: [other, db.lastInsertedRowID])
                return (web, other)
            }
        }

        func audit(_ action: String, target: String = "x", daysAgo: Double) throws -> Int64 {
            try database.write { db in
                try db.execute(
                    sql: "INSERT INTO audit_events (at, actor, action, target) VALUES (?, 'alice', ?, ?)",
                    arguments: [RetentionTests.ago(daysAgo), action, target])
                return db.lastInsertedRowID
            }
        }

        func job(
            kind: String = "playbook.run", state: String = "succeeded", host: String? = nil, daysAgo: Double, logBytes: Int = 100,
            acknowledgedDaysAgo: Double? = nil
        ) throws -> Int64 {
            try database.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO jobs (kind, title, state, host, started_by, created_at, started_at, finished_at, log_bytes, acknowledged_at)
                        VALUES (?, 'seeded', ?, ?, 'alice', ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        kind, state, host, RetentionTests.ago(daysAgo), RetentionTests.ago(daysAgo), RetentionTests.ago(daysAgo), logBytes,
                        acknowledgedDaysAgo.map { RetentionTests.ago($0) },
                    ])
                let id = db.lastInsertedRowID
                var seq = 0
                var remaining = logBytes
                while remaining > 0 {
                    let size = min(remaining, 65_536)
                    try db.execute(
                        sql: "INSERT INTO job_log_chunks (job_id, seq, at, data) VALUES (?, ?, ?, ?)",
                        arguments: [id, seq, RetentionTests.ago(daysAgo), Data(repeating: UInt8(seq % 251), count: size)])
                    seq += 1
                    remaining -= size
                }
                try db.execute(
                    sql: "INSERT INTO job_task_events (job_id, seq, at, host, task, status, detail) VALUES (?, 1, ?, 'web-01', 'Ping', 'ok', '{}')",
                    arguments: [id, RetentionTests.ago(daysAgo)])
                return id
            }
        }

        func ids(_ table: String, _ key: String = "id") throws -> Set<Int64> {
            try database.read { db in Set(try Int64.fetchAll(db, sql: "SELECT \(key) FROM \(table)")) }
        }

        func save(_ dataClass: DataClass, _ policy: DataRetention, confirm: String? = nil) throws {
            try service.save(dataClass, policy, confirm: confirm ?? dataClass.rawValue, by: AuditActor(actor: "alice"), now: RetentionTests.now)
        }

        func enforce(at date: Date = RetentionTests.now) async throws -> RetentionReport {
            try await service.enforce(now: date)
        }
    }

    @Test("logs: blocks past the age go with their index documents; debug-only blocks go sooner by a priority rule; a held host keeps its lines")
    func logsTimeSelectiveAndHold() async throws {
        let fixture = try Fixture()
        let store = LogStore(database: fixture.database)
        func lines(_ daysAgo: Double, priority: Int, word: String) -> [LogLine] {
            let time = RetentionTests.ago(daysAgo) * 1000
            return (0..<20).map { LogLine(time: time + Int64($0) * 1_000_000, priority: priority, identifier: "app", message: "\(word) line \($0)") }
        }
        try store.append(hostID: fixture.hostID, source: "journal", lines: lines(40, priority: 3, word: "ancient"), position: "a")
        try store.append(hostID: fixture.hostID, source: "journal", lines: lines(10, priority: 3, word: "recent"), position: "b")
        try store.append(hostID: fixture.hostID, source: "journal", lines: lines(10, priority: 7, word: "chatter"), position: "c")
        try store.append(hostID: fixture.otherHostID, source: "journal", lines: lines(40, priority: 3, word: "evidence"), position: "d")
        var hold = RetentionHold()
        hold.hostID = fixture.otherHostID
        hold.reason = "incident 42"
        _ = try fixture.service.addHold(hold, by: AuditActor(actor: "alice"), now: RetentionTests.now)
        try fixture.save(.logs, DataRetention(kind: .time, maxAgeDays: 30, rules: [RetentionRule(field: "priority", pattern: "debug", days: 3)]))
        _ = try await fixture.enforce()
        func found(_ word: String) throws -> Int {
            var query = LogQuery(from: 0, to: EpochMilliseconds.from(RetentionTests.now))
            query.maxPriority = 7
            query.text = word
            return try store.search(query).hits.count
        }
        #expect(try found("ancient") == 0 && found("chatter") == 0, "past 30 days, and debug past 3 days")
        #expect(try found("recent") == 20 && found("evidence") == 20, "young enough, and held")
        let documents = try await fixture.database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM log_search WHERE log_search MATCH 'ancient OR chatter'")
        }
        #expect(documents == 0, "the index forgot the removed blocks")
    }

    @Test("logs: a unit rule keeps that unit's lines a year and a debug rule drops debug lines in 3 days, though each read mixed them with others")
    func logsByUnit() async throws {
        let fixture = try Fixture()
        let store = LogStore(database: fixture.database)
        try fixture.save(
            .logs,
            DataRetention(
                kind: .time, maxAgeDays: 30,
                rules: [RetentionRule(field: "unit", pattern: "ssh.service", days: 365), RetentionRule(field: "priority", pattern: "debug", days: 3)])
        )
        // Reads 40 days old: sshd, nginx and debug chatter in the same reads, as a journal gives them.
        let start = RetentionTests.ago(40) * 1000
        for read in 0..<4 {
            var lines: [LogLine] = []
            for index in 0..<90 {
                let kind = index % 3
                let words = ["sshd session", "nginx request", "nginx debug detail"][kind]
                lines.append(
                    LogLine(
                        time: start + Int64(read * 90 + index) * 1_000_000, priority: kind == 2 ? 7 : 6,
                        unit: kind == 0 ? "ssh.service" : "nginx.service", identifier: kind == 0 ? "sshd" : "nginx",
                        message: words + " \(read)-\(index)"))
            }
            try store.append(hostID: fixture.hostID, source: "journal", lines: lines, position: "c\(read)")
        }
        // Merged minutes after those reads, as the collector does.
        #expect(try store.compact(hostID: fixture.hostID, source: "journal", maxAge: 0, now: Date().addingTimeInterval(60)) == 4)
        // Recent debug lines from nginx, mixed in with its requests, merged in their turn.
        let recent = RetentionTests.ago(5) * 1000
        var recentLines: [LogLine] = []
        for index in 0..<40 {
            let debug = index % 2 == 0
            let message = (debug ? "nginx debug recent " : "nginx request recent ") + String(index)
            recentLines.append(
                LogLine(
                    time: recent + Int64(index) * 1_000_000, priority: debug ? 7 : 6, unit: "nginx.service", identifier: "nginx", message: message))
        }
        try store.append(hostID: fixture.hostID, source: "journal", lines: recentLines, position: "c9")
        #expect(try store.compact(hostID: fixture.hostID, source: "journal", maxAge: 0, now: Date().addingTimeInterval(60)) == 1)
        _ = try await fixture.enforce()
        func found(_ words: String) throws -> Int {
            var query = LogQuery(from: 0, to: EpochMilliseconds.from(Date()) + 86_400_000)
            query.maxPriority = 7
            query.text = words
            query.limit = 1000
            return try store.search(query).hits.count
        }
        #expect(try found("sshd session") == 120, "a year for ssh.service")
        #expect(try found("nginx request") == 20, "30 days for the rest")
        #expect(try found("nginx debug") == 0, "3 days for debug lines")
    }

    @Test("time-based with selective rules: role changes outlive page-level events; a legal hold stops deletion; nothing else deletes audit events")
    func auditTimeSelectiveAndHold() async throws {
        let fixture = try Fixture()
        let role = try fixture.audit("role.grant", daysAgo: 400)
        let oldRole = try fixture.audit("role.revoke", daysAgo: 1200)
        let update = try fixture.audit("host.update", daysAgo: 400)
        let held = try fixture.audit("host.update", target: "host:web-01", daysAgo: 500)
        let recent = try fixture.audit("job.start", daysAgo: 10)
        let login = try fixture.audit("login.success", daysAgo: 366)
        var hold = RetentionHold()
        hold.hostID = fixture.hostID
        hold.reason = "case 42"
        try fixture.service.addHold(hold, by: AuditActor(actor: "alice"), now: Self.now)

        let preview = try fixture.service.preview(.audit, DataRetention.defaults(.audit), now: Self.now)
        #expect(preview.rows == 2 && preview.oldest == Self.ago(1200) && preview.newest == Self.ago(400))
        _ = try await fixture.enforce()
        let left = try fixture.ids("audit_events")
        #expect(left.isSuperset(of: [role, held, recent, login]))
        #expect(!left.contains(update) && !left.contains(oldRole))
        // The application still cannot delete audit events itself.
        let database = fixture.database
        #expect(throws: DatabaseError.self) {
            try database.write { (db: Database) in try db.execute(sql: "DELETE FROM audit_events WHERE id = ?", arguments: [recent]) }
        }
        let events = try AuditLog.events(fixture.database, action: "retention.enforce")
        #expect(events.count == 1 && events[0].after?.contains("\"audit\"") == true)
    }

    @Test("size-based: the oldest deliveries go until the class fits; pending deliveries stay")
    func notificationsBySize() async throws {
        let fixture = try Fixture()
        let payload = String(repeating: "x", count: 200_000)
        var ids: [Int64] = []
        for age in (1...10).reversed() {
            ids.append(
                try await fixture.database.write { db in
                    try db.execute(
                        sql: """
                            INSERT INTO notification_deliveries (channel_name, rule_name, status, reason, created_at, subject, payload)
                            VALUES ('ops', 'r', ?, 'firing', ?, 's', ?)
                            """, arguments: [age == 10 ? "pending" : "sent", Self.ago(Double(age)), payload])
                    return db.lastInsertedRowID
                })
        }
        let policy = DataRetention(kind: .size, maxBytes: 1_048_576)
        let preview = try fixture.service.preview(.notifications, policy, now: Self.now)
        // Five rows of ~200 kB fit in 1 MiB; the sixth newest and older go, except the pending one.
        #expect(preview.rows == 4, "\(preview)")
        try fixture.save(.notifications, policy)
        _ = try await fixture.enforce()
        #expect(try fixture.ids("notification_deliveries") == Set(ids.suffix(5) + [ids[0]]))
    }

    @Test("event-based job logs: unacknowledged failures stay, acknowledged ones age from the acknowledgement, the newest good backup's job stays")
    func jobEvents() async throws {
        let fixture = try Fixture()
        let unacknowledged = try fixture.job(state: "failed", daysAgo: 400)
        let acknowledged = try fixture.job(state: "failed", daysAgo: 400, acknowledgedDaysAgo: 20)
        let acknowledgedRecently = try fixture.job(state: "failed", daysAgo: 400, acknowledgedDaysAgo: 2)
        let old = try fixture.job(daysAgo: 40)
        let recent = try fixture.job(daysAgo: 5)
        let running = try fixture.job(state: "running", daysAgo: 400)
        let olderBackup = try fixture.job(kind: "backup.run", daysAgo: 300)
        let newestBackup = try fixture.job(kind: "backup.run", daysAgo: 200)
        try await fixture.database.write { db in
            try db.execute(sql: "UPDATE jobs SET finished_at = NULL WHERE id = ?", arguments: [running])
            try db.execute(
                sql: "INSERT INTO backup_runs (job_id, kind, started_at, snapshot_id) VALUES (?, 'backup', 0, 'aa'), (?, 'backup', 0, 'bb')",
                arguments: [olderBackup, newestBackup])
        }
        try fixture.save(.jobLogs, DataRetention(kind: .time, maxAgeDays: 30, failedDays: 10, keepFailedUntilAcknowledged: true))
        _ = try await fixture.enforce()
        let left = try fixture.ids("jobs")
        #expect(left == [unacknowledged, acknowledgedRecently, recent, running, newestBackup], "\(left)")
        #expect(!left.contains(acknowledged) && !left.contains(old) && !left.contains(olderBackup))
        // Their logs and task events went with them.
        #expect(try fixture.ids("job_log_chunks", "job_id") == [unacknowledged, acknowledgedRecently, recent, running, newestBackup])
    }

    @Test("tiered job logs: full output, then the summary only, then nothing")
    func jobTiers() async throws {
        let fixture = try Fixture()
        let fresh = try fixture.job(daysAgo: 10, logBytes: 5000)
        let middle = try fixture.job(daysAgo: 100, logBytes: 5000)
        let gone = try fixture.job(daysAgo: 400, logBytes: 5000)
        let failedMiddle = try fixture.job(state: "failed", daysAgo: 100, logBytes: 5000)
        let preview = try fixture.service.preview(.jobLogs, DataRetention.defaults(.jobLogs), now: Self.now)
        #expect(preview.stages.map(\.rows) == [1, 1], "\(preview.stages)")
        _ = try await fixture.enforce()
        #expect(try fixture.ids("jobs") == [fresh, middle, failedMiddle])
        #expect(try fixture.ids("job_log_chunks", "job_id") == [fresh, failedMiddle], "failed jobs keep their output for a year by default")
        let pruned = try await fixture.database.read { db in
            try Row.fetchOne(
                db, sql: "SELECT log_pruned_at, log_bytes, (SELECT COUNT(*) FROM job_task_events WHERE job_id = ?) AS events FROM jobs WHERE id = ?",
                arguments: [middle, middle])
        }
        #expect(
            pruned?["log_pruned_at"] as Int64? == EpochMilliseconds.from(Self.now) && pruned?["log_bytes"] as Int64? == 0
                && pruned?["events"] as Int? == 0)
        #expect(!(try fixture.ids("jobs")).contains(gone))
    }

    @Test("alert history keeps what belongs to a firing alert; sessions go as soon as they end; facts keep each host's newest")
    func eventsAndEnded() async throws {
        let fixture = try Fixture()
        let (firing, resolved, recent) = try await fixture.database.write { db -> (Int64, Int64, Int64) in
            try db.execute(
                sql:
                    "INSERT INTO alert_rules (name, source, summary, created_at, updated_at, updated_by) VALUES ('disk', 'metric', 's', 0, 0, 'alice')"
            )
            let rule = db.lastInsertedRowID
            try db.execute(
                sql: "INSERT INTO alert_states (rule_id, host_id, state, severity, since, evaluated_at) VALUES (?, ?, 'firing', 'critical', 0, 0)",
                arguments: [rule, fixture.hostID])
            func history(_ host: Int64, _ days: Double) throws -> Int64 {
                try db.execute(
                    sql:
                        "INSERT INTO alert_history (rule_id, host_id, host_name, from_state, to_state, at) VALUES (?, ?, 'h', 'pending', 'firing', ?)",
                    arguments: [rule, host, RetentionTests.ago(days)])
                return db.lastInsertedRowID
            }
            return (try history(fixture.hostID, 500), try history(fixture.otherHostID, 500), try history(fixture.otherHostID, 5))
        }
        try await fixture.database.write { db in
            for (id, created, seen, expires, revoked) in [
                ("active", 0.01, 0.001, -0.4, nil), ("revoked", 0.5, 0.4, -0.1, 0.3), ("idle", 0.2, 0.1, -0.3, nil), ("expired", 1.0, 0.6, 0.5, nil),
            ] as [(String, Double, Double, Double, Double?)] {
                try db.execute(
                    sql:
                        "INSERT INTO sessions (id_hash, user_name, created_at, last_seen_at, expires_at, csrf_token, revoked_at) VALUES (?, 'alice', ?, ?, ?, 'c', ?)",
                    arguments: [id, Self.ago(created), Self.ago(seen), Self.ago(expires), revoked.map { Self.ago($0) }])
            }
            for (host, days) in [(fixture.hostID, 200.0), (fixture.hostID, 100.0), (fixture.otherHostID, 300.0)] {
                try db.execute(
                    sql: "INSERT INTO host_facts (host_id, gathered_at, facts) VALUES (?, ?, '{}')", arguments: [host, Self.ago(days)])
            }
        }
        _ = try await fixture.enforce()
        #expect(try fixture.ids("alert_history") == [firing, recent])
        #expect(!(try fixture.ids("alert_history")).contains(resolved))
        let sessions = try await fixture.database.read { db in try String.fetchAll(db, sql: "SELECT id_hash FROM sessions") }
        #expect(sessions == ["active"])
        let facts = try await fixture.database.read { db in try Row.fetchAll(db, sql: "SELECT host_id, gathered_at FROM host_facts ORDER BY host_id")
        }
        #expect(facts.map { [$0[0] as Int64, $0[1] as Int64] } == [[fixture.hostID, Self.ago(100)], [fixture.otherHostID, Self.ago(300)]])
    }

    @Test("tiered metrics: raw samples past 7 days go, and the 1-minute and 1-hour rollups over that time are unchanged")
    func metricTiers() async throws {
        let fixture = try Fixture()
        let store = try MetricStore(database: fixture.database)
        let series = try store.resolve(hostID: fixture.hostID, series: [(name: "load1", labels: "", type: .gauge)], now: Self.now)
        let id = try #require(series.first)
        let start = Self.ago(10)
        var samples: [(series: Int64, time: Int64, value: Double)] = []
        var time = start
        while time < EpochMilliseconds.from(Self.now) {
            samples.append((id, time, Double((time / 60_000) % 97) / 10))
            time += 30_000
        }
        _ = store.append(samples)
        _ = try store.flush()
        let oldFrom = start
        let oldTo = Self.ago(8)
        let minuteBefore = try store.rollups(id, .minute, from: oldFrom, to: oldTo)
        let hourBefore = try store.rollups(id, .hour, from: oldFrom, to: oldTo)
        #expect(try store.raw(id, from: oldFrom, to: oldTo).times.count > 1000)
        #expect(minuteBefore.count > 1000 && hourBefore.count > 20)

        let minuteChunks = "SELECT COUNT(*) FROM metric_chunks WHERE resolution = 60000"
        #expect(try await fixture.database.read { db in try Int.fetchOne(db, sql: minuteChunks) } == 0)
        let edgeBefore = try store.rollups(id, .minute, from: Self.ago(7.1), to: Self.ago(6.9))

        let report = try await fixture.enforce()
        #expect(report.deleted[.metrics]?.rows ?? 0 > 0)
        // The 1-minute rollups of what went were written first; across the 7-day edge they read as before.
        #expect(try await fixture.database.read { db in try Int.fetchOne(db, sql: minuteChunks) } ?? 0 > 0)
        #expect(try store.rollups(id, .minute, from: Self.ago(7.1), to: Self.ago(6.9)) == edgeBefore)
        #expect(try store.raw(id, from: oldFrom, to: Self.ago(7.1)).times.isEmpty, "raw samples older than 7 days are gone")
        #expect(try store.raw(id, from: Self.ago(6.9), to: Self.ago(6)).times.count > 1000, "the last 7 days stay raw")
        #expect(try store.rollups(id, .minute, from: oldFrom, to: oldTo) == minuteBefore)
        #expect(try store.rollups(id, .hour, from: oldFrom, to: oldTo) == hourBefore)
        // The query layer reads the rollups for that range and still answers.
        let reopened = try MetricStore(database: fixture.database)
        #expect(try reopened.rollups(id, .minute, from: oldFrom, to: oldTo) == minuteBefore)
    }

    @Test("a change waits out the grace window, can be taken back, needs confirmation above the threshold, and then applies")
    func graceUndoAndConfirmation() async throws {
        let fixture = try Fixture(grace: 120)
        for age in [10.0, 20, 40, 50] { _ = try fixture.audit("host.update", daysAgo: age) }
        let aggressive = DataRetention(kind: .time, maxAgeDays: 15)
        #expect(throws: Problem.self) {
            try fixture.service.save(.audit, aggressive, confirm: nil, by: AuditActor(actor: "alice"), now: Self.now)
        }
        do {
            try fixture.service.save(.audit, aggressive, confirm: "nope", by: AuditActor(actor: "alice"), now: Self.now)
        } catch let problem as Problem {
            #expect(problem.errors?["confirm"]?.contains("75 %") == true, "\(problem)")
        }
        try fixture.save(.audit, aggressive)
        var record = try fixture.service.policy(.audit)
        #expect(record.pending == aggressive && record.policy == DataRetention.defaults(.audit))
        _ = try await fixture.enforce(at: Self.now.addingTimeInterval(3600))
        #expect(try fixture.ids("audit_events").count >= 4, "nothing is deleted under the new policy inside the grace window")
        try fixture.service.discardPending(.audit, by: AuditActor(actor: "bob"), now: Self.now)
        record = try fixture.service.policy(.audit)
        #expect(record.pending == nil)
        try fixture.save(.audit, aggressive)
        _ = try await fixture.enforce(at: Self.now.addingTimeInterval(2 * 3600 + 1))
        #expect(try fixture.service.policy(.audit).policy == aggressive)
        let actions = try AuditLog.events(fixture.database, limit: 50).map(\.action)
        #expect(actions.contains("retention.undo") && actions.contains("retention.effective") && actions.contains("retention.update"))
        let remaining = try await fixture.database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_events WHERE action = 'host.update'")
        }
        #expect(remaining == 1)
    }

    @Test("full keeps everything; a time-range hold on every host protects what falls inside it, and releasing it lets retention go on")
    func fullAndTimeRangeHold() async throws {
        let fixture = try Fixture()
        let inside = try fixture.job(daysAgo: 200)
        let outside = try fixture.job(daysAgo: 500)
        let unrelated = try fixture.audit("host.update", daysAgo: 800)
        try fixture.save(.audit, DataRetention(kind: .full))
        var hold = RetentionHold()
        hold.fromMS = Self.ago(250)
        hold.toMS = Self.ago(150)
        hold.reason = "audit of last spring"
        let holdID = try fixture.service.addHold(hold, by: AuditActor(actor: "alice"), now: Self.now)
        _ = try await fixture.enforce()
        #expect(try fixture.ids("jobs") == [inside])
        #expect(!(try fixture.ids("jobs")).contains(outside))
        #expect(try fixture.ids("audit_events").contains(unrelated), "a full policy deletes nothing")
        try fixture.service.releaseHold(holdID, by: AuditActor(actor: "alice"), now: Self.now)
        _ = try await fixture.enforce()
        #expect(try fixture.ids("jobs") == [inside] && (try fixture.ids("job_log_chunks", "job_id")).isEmpty, "now reduced to its summary")
    }

    @Test("policies are checked: kinds per class, tier order, rule fields")
    func validation() {
        #expect(DataRetention(kind: .tiered, tierDays: [7, 90]).problems(for: .metrics)["tier_days"] != nil)
        #expect(DataRetention(kind: .tiered, tierDays: [90, 7, 730]).problems(for: .metrics)["tier_days"]?.contains("at least as long") == true)
        #expect(DataRetention(kind: .time, maxAgeDays: 5).problems(for: .metrics)["kind"] != nil)
        #expect(DataRetention(kind: .size, maxBytes: 10).problems(for: .audit)["max_bytes"] != nil)
        #expect(
            DataRetention(kind: .time, maxAgeDays: 5, rules: [RetentionRule(field: "severity", pattern: "critical", days: 1)]).problems(for: .audit)[
                "rules[0].field"] != nil)
        for dataClass in DataClass.allCases { #expect(DataRetention.defaults(dataClass).problems(for: dataClass).isEmpty, "\(dataClass)") }
    }

    @Test("after enforcement the database file is smaller")
    func fileShrinks() async throws {
        let fixture = try Fixture(batchSize: 50)
        for age in 0..<60 { _ = try fixture.job(daysAgo: Double(age) + 400, logBytes: 300_000) }
        _ = try await fixture.database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        let report = try await fixture.enforce()
        #expect(report.deleted[.jobLogs]?.rows == 60)
        #expect(report.fileBefore > 15_000_000 && report.fileAfter < report.fileBefore / 4, "\(report.fileBefore) -> \(report.fileAfter)")
        let size = try FileManager.default.attributesOfItem(atPath: fixture.directory.path + "/steward.db")[.size] as? Int ?? 0
        #expect(size < 5_000_000)
        let log = try FileManager.default.attributesOfItem(atPath: fixture.directory.path + "/steward.db-wal")[.size] as? Int ?? -1
        #expect(log < 100_000, "the closing checkpoint empties the write-ahead log; only the run's audit entry follows it (\(log) bytes)")
        let automatic = try await fixture.database.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") }
        #expect(automatic == 1000, "the write connection checkpoints by itself again after the run")
    }

    @Test("batches and vacuum steps are sized by the time the last one held the lock")
    func batchSizing() {
        #expect(RetentionService.resized(200, took: .milliseconds(80), within: 10...2000) == 100)
        #expect(RetentionService.resized(200, took: .milliseconds(25), within: 10...2000) == 200)
        #expect(RetentionService.resized(200, took: .milliseconds(5), within: 10...2000) == 300)
        #expect(RetentionService.resized(1900, took: .milliseconds(5), within: 10...2000) == 2000)
        #expect(RetentionService.resized(12, took: .milliseconds(500), within: 10...2000) == 10)
        #expect(RetentionService.resized(1, took: .milliseconds(1), within: 1...3) == 2)
    }
}
