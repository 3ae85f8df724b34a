import Foundation
import GRDB
import HTTPTypes
import Synchronization

/// A data class's policy: the one in force, and a saved change waiting out the grace window.
public struct DataRetentionRecord: Sendable, Equatable {
    public var dataClass: DataClass
    public var policy: DataRetention
    public var isDefault: Bool
    public var pending: DataRetention?
    public var pendingAt: Int64?
    public var pendingBy: String?
    public var updatedAt: Int64?
    public var updatedBy: String?
}

/// A legal hold: no deletion for a host (nil: every host) within a time range (nil ends: open).
public struct RetentionHold: Sendable, Equatable {
    public var id: Int64 = 0
    public var hostID: Int64?
    public var hostName: String?
    public var fromMS: Int64?
    public var toMS: Int64?
    public var reason = ""
    public var createdBy = ""
    public var createdAt: Int64 = 0

    public init() {}
}

/// What a policy would delete now.
public struct DataRetentionPreview: Sendable, Equatable {
    public struct Stage: Sendable, Equatable {
        public var label: String
        public var rows: Int
        public var bytes: Int64
    }
    public var dataClass: DataClass
    public var rows = 0
    public var bytes: Int64 = 0
    public var oldest: Int64?
    public var newest: Int64?
    public var stages: [Stage] = []
    /// Rows of the class now, and the share of them (or of their bytes, whichever is larger) the policy would remove.
    public var classRows = 0
    public var share = 0.0
}

/// What one enforcement run did.
public struct RetentionReport: Sendable {
    public var deleted: [DataClass: (rows: Int, bytes: Int64)] = [:]
    public var fileBefore: Int64 = 0
    public var fileAfter: Int64 = 0
    public var freedBytes: Int64 { max(0, fileBefore - fileAfter) }
}

/// Retention: policies per data class (with a grace window before changes apply), legal holds, previews, and the
/// enforcement job that deletes in small batches and hands the space back to the filesystem.
public final class RetentionService: Sendable {
    public static let kind = "retention.enforce"
    /// A change that would delete more than this share of a class needs the class's name typed as confirmation.
    public static let confirmShare = 0.25

    let database: DatabasePool
    let databasePath: String
    let graceMS: Int64
    let sessionIdleMS: Int64
    let batchSize: Int
    let pause: Duration
    /// Storage figures scan every page (dbstat); a page view within `storageCacheSeconds` of the last reuses them.
    let storageCache = Mutex<StorageFigures?>(nil)
    static let storageCacheSeconds: TimeInterval = 300

    public init(
        database: DatabasePool, databasePath: String, graceMinutes: Int, sessionIdleMinutes: Int, batchSize: Int = 2000,
        pause: Duration = .milliseconds(2)
    ) {
        self.database = database
        self.databasePath = databasePath
        graceMS = Int64(graceMinutes) * 60_000
        sessionIdleMS = Int64(sessionIdleMinutes) * 60_000
        self.batchSize = batchSize
        self.pause = pause
    }

    // MARK: policies

    public func policies() throws -> [DataRetentionRecord] {
        try database.read { db in try DataClass.allCases.map { try Self.record(db, $0) } }
    }

    public func policy(_ dataClass: DataClass) throws -> DataRetentionRecord {
        try database.read { db in try Self.record(db, dataClass) }
    }

    static func decode(_ text: String?) -> DataRetention? {
        text.flatMap { try? JSONDecoder().decode(DataRetention.self, from: Data($0.utf8)) }
    }

    static func encode(_ policy: DataRetention) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(policy)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func record(_ db: Database, _ dataClass: DataClass) throws -> DataRetentionRecord {
        let row = try Row.fetchOne(db, sql: "SELECT * FROM retention_policies WHERE data_class = ?", arguments: [dataClass.rawValue])
        let stored = decode(row?["policy"])
        return DataRetentionRecord(
            dataClass: dataClass, policy: stored ?? DataRetention.defaults(dataClass), isDefault: stored == nil, pending: decode(row?["pending"]),
            pendingAt: row?["pending_at"], pendingBy: row?["pending_by"], updatedAt: row?["updated_at"], updatedBy: row?["updated_by"])
    }

    /// Save a change. It takes effect after the grace window; until then the policy in force keeps applying and the
    /// change can be taken back. A change that would delete more than `confirmShare` of the class needs `confirm`
    /// equal to the class's name.
    @discardableResult
    public func save(_ dataClass: DataClass, _ policy: DataRetention, confirm: String?, by who: AuditActor, now: Date) throws
        -> DataRetentionRecord
    {
        let errors = policy.problems(for: dataClass)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        let preview = try self.preview(dataClass, policy, now: now)
        if preview.share > Self.confirmShare, confirm?.trimmingCharacters(in: .whitespaces) != dataClass.rawValue {
            throw Problem(
                status: .unprocessableContent,
                detail:
                    "this policy would delete \(preview.rows) row(s), \(Int((preview.share * 100).rounded())) % of \(dataClass.title.lowercased()); type \(dataClass.rawValue) to confirm",
                errors: ["confirm": "type \(dataClass.rawValue) to confirm deleting \(Int((preview.share * 100).rounded())) % of this data"])
        }
        let nowMS = EpochMilliseconds.from(now)
        let effective = nowMS + graceMS
        return try database.write { db in
            let before = try Self.record(db, dataClass)
            try db.execute(
                sql: """
                    INSERT INTO retention_policies (data_class, policy, pending, pending_at, pending_by, updated_at, updated_by)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (data_class) DO UPDATE SET pending = excluded.pending, pending_at = excluded.pending_at,
                        pending_by = excluded.pending_by, updated_at = excluded.updated_at, updated_by = excluded.updated_by
                    """,
                arguments: [
                    dataClass.rawValue, Self.encode(before.policy), Self.encode(policy), effective, who.actor, nowMS, who.actor,
                ])
            if graceMS == 0 { try Self.promote(db, dataClass, now: nowMS, by: who) }
            try AuditLog.append(
                db, by: who, action: "retention.update", target: "retention:\(dataClass.rawValue)",
                before: ["policy": before.policy.summary(for: dataClass)],
                after: [
                    "policy": policy.summary(for: dataClass), "effective_at": RFC3339.string(milliseconds: effective) ?? "",
                    "would_delete_rows": preview.rows, "would_delete_bytes": preview.bytes,
                ], now: now)
            return try Self.record(db, dataClass)
        }
    }

    /// Take back a saved change before it takes effect.
    public func discardPending(_ dataClass: DataClass, by who: AuditActor, now: Date) throws {
        try database.write { db in
            let record = try Self.record(db, dataClass)
            guard let pending = record.pending else {
                throw Problem(status: .conflict, detail: "\(dataClass.title) has no change waiting to take effect")
            }
            try db.execute(
                sql: "UPDATE retention_policies SET pending = NULL, pending_at = NULL, pending_by = NULL WHERE data_class = ?",
                arguments: [dataClass.rawValue])
            try AuditLog.append(
                db, by: who, action: "retention.undo", target: "retention:\(dataClass.rawValue)",
                before: ["pending": pending.summary(for: dataClass)], after: ["policy": record.policy.summary(for: dataClass)], now: now)
        }
    }

    static func promote(_ db: Database, _ dataClass: DataClass, now: Int64, by who: AuditActor) throws {
        try db.execute(
            sql: """
                UPDATE retention_policies SET policy = pending, pending = NULL, pending_at = NULL, pending_by = NULL
                WHERE data_class = ? AND pending IS NOT NULL AND pending_at <= ?
                """, arguments: [dataClass.rawValue, now])
    }

    /// Changes whose grace window has passed take effect (each recorded in the audit log).
    func promoteDue(now: Date) throws -> [DataClass] {
        let nowMS = EpochMilliseconds.from(now)
        return try database.write { db in
            var promoted: [DataClass] = []
            for dataClass in DataClass.allCases {
                let record = try Self.record(db, dataClass)
                guard let pending = record.pending, let at = record.pendingAt, at <= nowMS else { continue }
                try Self.promote(db, dataClass, now: nowMS, by: .system)
                try AuditLog.append(
                    db, by: .system, action: "retention.effective", target: "retention:\(dataClass.rawValue)",
                    before: ["policy": record.policy.summary(for: dataClass)],
                    after: ["policy": pending.summary(for: dataClass), "saved_by": record.pendingBy ?? ""], now: now)
                promoted.append(dataClass)
            }
            return promoted
        }
    }

    // MARK: preview

    func planner(_ dataClass: DataClass, _ policy: DataRetention, now: Date) -> RetentionPlanner {
        RetentionPlanner(dataClass: dataClass, policy: policy, now: EpochMilliseconds.from(now), sessionIdleMS: sessionIdleMS)
    }

    /// Exactly what `policy` would delete now: per stage and in total, with the oldest and newest affected time.
    public func preview(_ dataClass: DataClass, _ policy: DataRetention, now: Date) throws -> DataRetentionPreview {
        let planner = self.planner(dataClass, policy, now: now)
        return try database.read { db in
            var preview = DataRetentionPreview(dataClass: dataClass)
            for stage in try planner.stages(db) {
                let row = try Row.fetchOne(
                    db, sql: "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(t), MAX(t) FROM (\(stage.select))",
                    arguments: StatementArguments(stage.arguments))
                let rows: Int = row?[0] ?? 0
                let bytes: Int64 = row?[1] ?? 0
                preview.stages.append(.init(label: stage.label, rows: rows, bytes: bytes))
                preview.rows += rows
                preview.bytes += bytes
                if let oldest: Int64 = row?[2] { preview.oldest = min(preview.oldest ?? oldest, oldest) }
                if let newest: Int64 = row?[3] { preview.newest = max(preview.newest ?? newest, newest) }
            }
            let shape = planner.shape
            let totals = try Row.fetchOne(
                db, sql: "SELECT COUNT(*), COALESCE(SUM(\(shape.bytes)), 0) FROM \(shape.from)")
            preview.classRows = totals?[0] ?? 0
            let classBytes: Int64 = totals?[1] ?? 0
            let rowShare = preview.classRows > 0 ? Double(preview.rows) / Double(preview.classRows) : 0
            let byteShare = classBytes > 0 ? Double(preview.bytes) / Double(classBytes) : 0
            preview.share = min(1, max(rowShare, byteShare))
            return preview
        }
    }

    // MARK: enforcement

    /// Apply every policy in force: promote changes past their grace window, delete due rows in batches of
    /// `batchSize` (one short transaction each, so writers wait at most one batch), then return free pages to the
    /// filesystem. Each batch commits on its own, so a crash leaves a consistent database and the next run goes on.
    public func enforce(now: Date, log: @Sendable (String) async -> Void = { _ in }) async throws -> RetentionReport {
        var report = RetentionReport()
        report.fileBefore = StewardDatabase.sizeOnDisk(path: databasePath)
        for dataClass in try promoteDue(now: now) { await log("\(dataClass.title): the saved change took effect") }
        let checkpoints = try await SideCheckpoints.begin(database: database, path: databasePath)
        do {
            try await deleteAndVacuum(now: now, checkpoints: checkpoints, report: &report, log: log)
            try await checkpoints.end()
        } catch {
            try? await checkpoints.end()
            throw error
        }
        storageCache.withLock { $0 = nil }
        report.fileAfter = StewardDatabase.sizeOnDisk(path: databasePath)
        let deleted = report.deleted.map { (name: $0.key.rawValue, rows: $0.value.rows, bytes: $0.value.bytes) }
        let freed = report.freedBytes
        let before = report.fileBefore
        let after = report.fileAfter
        try await database.write { db in
            let summary = Dictionary(uniqueKeysWithValues: deleted.map { ($0.name, ["rows": $0.rows, "bytes": $0.bytes] as [String: Any]) })
            try AuditLog.append(
                db, by: .system, action: "retention.enforce", target: "retention",
                after: ["deleted": summary, "file_bytes_before": before, "file_bytes_after": after, "bytes_freed": freed], now: now)
        }
        await log("database file: \(ByteCount.text(before)) → \(ByteCount.text(after)) (\(ByteCount.text(freed)) freed)")
        return report
    }

    func deleteAndVacuum(
        now: Date, checkpoints: SideCheckpoints, report: inout RetentionReport, log: @Sendable (String) async -> Void
    ) async throws {
        for record in try policies() {
            try Task.checkCancellation()
            let started = EpochMilliseconds.from(Date())
            let planner = self.planner(record.dataClass, record.policy, now: now)
            let stages = try await database.read { db in try planner.stages(db) }
            var rows = 0
            var bytes: Int64 = 0
            var details: [String] = []
            if let prepare = record.dataClass.definition.beforeStages {
                let (database, policy) = (self.database, record.policy)
                if let done = try await offload({ try prepare(database, policy, now) }) { details.append(done) }
            }
            for stage in stages {
                let (stageRows, stageBytes) = try await run(stage, now: EpochMilliseconds.from(now), checkpoints: checkpoints)
                rows += stageRows
                bytes += stageBytes
                if stageRows > 0 { details.append("\(stage.label): \(stageRows) row(s), \(ByteCount.text(stageBytes))") }
            }
            report.deleted[record.dataClass] = (rows, bytes)
            await log(
                "\(record.dataClass.title) (\(record.policy.summary(for: record.dataClass))): "
                    + (details.isEmpty ? "nothing due" : details.joined(separator: "; ")))
            let detail = details.joined(separator: "; ")
            let dataClass = record.dataClass
            let (totalRows, totalBytes) = (rows, bytes)
            try await database.write { db in
                try db.execute(
                    sql:
                        "INSERT INTO retention_runs (data_class, started_at, ended_at, rows_deleted, bytes_deleted, detail) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [dataClass.rawValue, started, EpochMilliseconds.from(Date()), totalRows, totalBytes, detail])
            }
        }
        await log("returning free pages to the filesystem")
        let started = ContinuousClock.now
        let pages = try await vacuum(checkpoints: checkpoints)
        let took = (ContinuousClock.now - started).components
        let seconds = Double(took.seconds) + Double(took.attoseconds) / 1e18
        await log("\(pages) free page(s) returned in \(String(format: "%.1f", seconds)) s")
        try await checkpoints.finish()
    }

    /// Delete a stage's due rows, one batch per transaction. Batches are sized by time: each aims at `batchTarget`
    /// of holding the write lock, so a writer waiting behind one never waits long, whatever the rows cost.
    func run(_ stage: RetentionStage, now: Int64, checkpoints: SideCheckpoints) async throws -> (Int, Int64) {
        var rows = 0
        var bytes: Int64 = 0
        var limit = min(batchSize, 200)
        while true {
            try Task.checkCancellation()
            let batchLimit = limit
            let started = ContinuousClock.now
            let (count, size) = try await database.write { db -> (Int, Int64) in
                for sql in stage.before { try db.execute(sql: sql) }
                let batch = try Row.fetchAll(
                    db, sql: stage.select + " LIMIT ?", arguments: StatementArguments(stage.arguments + [batchLimit.databaseValue]))
                var size: Int64 = 0
                // A statement with `?2` also takes `now` (the summary step's log_pruned_at).
                let statements = try stage.statements.map { (try db.cachedStatement(sql: $0), $0.contains("?2")) }
                for row in batch {
                    let key: [(any DatabaseValueConvertible)?] = (0..<stage.keyCount).map { row[$0] as DatabaseValue }
                    for (statement, takesNow) in statements {
                        try statement.execute(arguments: StatementArguments(key + (takesNow ? [now] : [])))
                    }
                    size += row["bytes"] as Int64? ?? 0
                }
                for sql in stage.after { try db.execute(sql: sql) }
                return (batch.count, size)
            }
            rows += count
            bytes += size
            if count < batchLimit { return (rows, bytes) }
            limit = Self.resized(limit, took: ContinuousClock.now - started, within: min(10, batchSize)...batchSize)
            await checkpoints.tick()
            try await Task.sleep(for: pause)
        }
    }

    /// How long one batch (or vacuum step) should hold the write lock.
    static let batchTarget: Duration = .milliseconds(25)

    /// The next batch's size after one that took `took`: halved when it held the lock over twice the target, grown by
    /// half when it held it under half.
    static func resized(_ size: Int, took: Duration, within bounds: ClosedRange<Int>) -> Int {
        if took > batchTarget * 2 { return max(bounds.lowerBound, size / 2) }
        if took < batchTarget / 2 { return min(bounds.upperBound, size + max(1, size / 2)) }
        return size
    }

    /// Hand free pages back in steps sized by time like the delete batches: moving a page from the end of a large file
    /// means reading it and rewriting its parent's pointer, so 256 pages took 60 to 120 ms on a 2 GB file. Returns how
    /// many pages went back.
    func vacuum(checkpoints: SideCheckpoints) async throws -> Int {
        var pages = 32
        var returned = 0
        while true {
            let step = pages
            let started = ContinuousClock.now
            let (before, remaining) = try await database.writeWithoutTransaction { db -> (Int, Int) in
                let before = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
                try db.execute(sql: "PRAGMA incremental_vacuum(\(step))")
                return (before, try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0)
            }
            returned += before - remaining
            if remaining == 0 { return returned }
            pages = Self.resized(pages, took: ContinuousClock.now - started, within: 8...1024)
            await checkpoints.tick()
            try await Task.sleep(for: pause)
        }
    }

    public func handler() -> JobHandler {
        { [self] context in
            try await context.progress(5, "applying retention policies")
            let report = try await enforce(now: Date()) { line in await context.log(line) }
            let rows = report.deleted.values.reduce(0) { $0 + $1.rows }
            try await context.progress(100, "\(rows) row(s) deleted, \(ByteCount.text(report.freedBytes)) freed")
        }
    }

    /// The built-in hourly schedule, created once.
    public static func ensureSchedule(_ store: ScheduleStore, now: Date) throws {
        guard try store.schedule(named: "Enforce retention") == nil else { return }
        _ = try store.create(
            name: "Enforce retention",
            settings: ScheduleSettings(cron: "41 * * * *", timeZone: "UTC", jitterSeconds: 120, catchUp: .one, concurrency: .forbid),
            jobKind: kind, jobTitle: "Enforce retention policies", owner: "system", now: now)
    }

    // MARK: holds

    public func holds() throws -> [RetentionHold] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT r.*, h.name AS host_name FROM retention_holds r LEFT JOIN hosts h ON h.id = r.host_id WHERE r.released_at IS NULL ORDER BY r.id"
            ).map { row in
                var hold = RetentionHold()
                hold.id = row["id"]
                hold.hostID = row["host_id"]
                hold.hostName = row["host_name"]
                hold.fromMS = row["from_ms"]
                hold.toMS = row["to_ms"]
                hold.reason = row["reason"]
                hold.createdBy = row["created_by"]
                hold.createdAt = row["created_at"]
                return hold
            }
        }
    }

    @discardableResult
    public func addHold(_ hold: RetentionHold, by who: AuditActor, now: Date) throws -> Int64 {
        var errors: [String: String] = [:]
        if hold.reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { errors["reason"] = "say why the data is held (case, ticket)" }
        if let from = hold.fromMS, let to = hold.toMS, from > to { errors["to"] = "the end must not be before the start" }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return try database.write { db in
            try db.execute(
                sql: "INSERT INTO retention_holds (host_id, from_ms, to_ms, reason, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [hold.hostID, hold.fromMS, hold.toMS, hold.reason, who.actor, EpochMilliseconds.from(now)])
            let id = db.lastInsertedRowID
            try AuditLog.append(
                db, by: who, action: "retention.hold", target: "retention_hold:\(id)",
                after: [
                    "host": hold.hostName ?? "every host", "from": hold.fromMS.flatMap { RFC3339.string(milliseconds: $0) } ?? "open",
                    "to": hold.toMS.flatMap { RFC3339.string(milliseconds: $0) } ?? "open", "reason": hold.reason,
                ], now: now)
            return id
        }
    }

    public func releaseHold(_ id: Int64, by who: AuditActor, now: Date) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE retention_holds SET released_at = ?, released_by = ? WHERE id = ? AND released_at IS NULL",
                arguments: [EpochMilliseconds.from(now), who.actor, id])
            guard db.changesCount == 1 else { throw Problem.notFound("legal hold \(id)") }
            try AuditLog.append(db, by: who, action: "retention.release", target: "retention_hold:\(id)", now: now)
        }
    }

    /// Event-based retention for failed jobs: acknowledging a failure starts its retention clock.
    public func acknowledge(job id: Int64, by who: AuditActor, now: Date) throws {
        try database.write { db in
            guard let state = try String.fetchOne(db, sql: "SELECT state FROM jobs WHERE id = ?", arguments: [id]) else {
                throw Problem.notFound("job \(id)")
            }
            guard state == "failed" || state == "interrupted" else {
                throw Problem(status: .conflict, detail: "job \(id) is \(state); only failed or interrupted jobs are acknowledged")
            }
            try db.execute(
                sql: "UPDATE jobs SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ? AND acknowledged_at IS NULL",
                arguments: [EpochMilliseconds.from(now), who.actor, id])
            if db.changesCount == 1 { try AuditLog.append(db, by: who, action: "job.acknowledge", target: "job:\(id)", now: now) }
        }
    }
}

/// While enforcement runs, the write connection does not checkpoint inside its own commits (`wal_autocheckpoint` 0): such
/// a checkpoint copies a thousand pages back into the file while every other writer waits for the lock. Instead, about
/// once a second, a connection of its own runs a PASSIVE checkpoint, which takes no lock, so writers go on beside it;
/// then the write connection copies back the little that arrived meanwhile. That short second step matters: a log whose
/// every frame is copied starts over at the next write, while one that writers keep appending to during unlocked
/// checkpoints never does (it grew to 2.4 GB on the benchmark's 2 GB file). `end()` gives the write connection its
/// automatic checkpoints back.
final class SideCheckpoints: Sendable {
    let database: DatabasePool
    let side: DatabaseQueue?
    let last = Mutex(ContinuousClock.now)
    static let every: Duration = .seconds(1)
    static let automaticPages = 1000

    private init(database: DatabasePool, side: DatabaseQueue?) {
        self.database = database
        self.side = side
    }

    static func begin(database: DatabasePool, path: String) async throws -> SideCheckpoints {
        var configuration = Configuration()
        configuration.busyMode = .immediateError
        // Without a side connection (it could not be opened), the write connection keeps checkpointing by itself.
        guard let side = try? DatabaseQueue(path: path, configuration: configuration) else {
            return SideCheckpoints(database: database, side: nil)
        }
        try await database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        return SideCheckpoints(database: database, side: side)
    }

    /// A checkpoint if the last was over a second ago. A checkpoint that fails is left to the next one.
    func tick() async {
        let due = last.withLock { last -> Bool in
            guard ContinuousClock.now - last >= Self.every else { return false }
            last = ContinuousClock.now
            return true
        }
        guard due, side != nil else { return }
        _ = try? await passive()
        _ = try? await database.writeWithoutTransaction { db in try db.checkpoint(.passive) }
    }

    /// A PASSIVE checkpoint on the side connection; whether every frame of the log is now in the database file.
    func passive() async throws -> Bool {
        guard let side else { return false }
        let (frames, copied) = try await side.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        return frames == copied
    }

    /// Copy the log back beside the writers, then empty it with TRUNCATE on the write connection, which by then has
    /// little left to copy. The file shrinks to the pages the vacuum left.
    func finish() async throws {
        _ = try? await passive()
        try await database.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    func end() async throws {
        guard side != nil else { return }
        try await database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.automaticPages)")
        }
    }
}
