import Foundation
import GRDB

/// What a log search asks for. Every filter is optional except the time range and the priority ceiling.
public struct LogQuery: Sendable {
    public var hostIDs: [Int64]?
    /// Milliseconds since the epoch, inclusive.
    public var from: Int64
    public var to: Int64
    /// Lines of this priority and more urgent (3: "error and worse").
    public var maxPriority = 3
    public var units: [String] = []
    public var identifiers: [String] = []
    /// Lines containing this phrase (see `words`).
    public var text = "" { didSet { textWords = Self.words(text) } }
    var textWords: [String] = []
    public var regex: NSRegularExpression?
    public var limit = 100
    /// Paging: only lines older than this position (from the previous page's `next`).
    public var before: LogPosition?
    /// "This boot": a host's lines of this boot only (hosts not listed keep every line in the range).
    public var boots: [Int64: String] = [:]

    public init(from: Int64, to: Int64) {
        self.from = from
        self.to = to
    }

    /// A text search is a phrase of words, as a full-text index sees them: letters and digits, case and accents
    /// ignored; the last word may be the start of a longer one ("203.0.113.7" finds 203.0.113.7 and 203.0.113.70).
    /// Anything else (part of a word, punctuation) is what the regex is for.
    static func words(_ text: String) -> [String] {
        text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil).split { !$0.isLetter && !$0.isNumber }.map(String.init)
    }

    /// FTS5 terms of the text: every word with a letter in it required, the last as a prefix. The index finds the
    /// blocks; each line is then matched against the phrase. Numbers alone are not in the index (see `searchBody`): a
    /// search for 203.0.113.7 reads every block in its range and time instead.
    var searchTerms: String? {
        let words = Self.words(text)
        let indexed = words.enumerated().filter { LogStore.indexed($0.element) }
        guard !indexed.isEmpty else { return nil }
        return indexed.map { "\"\($0.element)\"" + ($0.offset == words.count - 1 ? "*" : "") }.joined(separator: " AND ")
    }

    static func phrase(_ words: [String], in message: String) -> Bool {
        let line = Self.words(message)
        guard !words.isEmpty, line.count >= words.count else { return words.isEmpty }
        for start in 0...(line.count - words.count) {
            var found = true
            for (offset, word) in words.enumerated() {
                let candidate = line[start + offset]
                if offset == words.count - 1 ? !candidate.hasPrefix(word) : candidate != word {
                    found = false
                    break
                }
            }
            if found { return true }
        }
        return false
    }

    func matches(_ line: LogLine, host: Int64) -> Bool {
        guard line.priority <= maxPriority else { return false }
        if let boot = boots[host], line.boot != boot { return false }
        let time = line.time / 1000
        guard time >= from, time <= to else { return false }
        if !units.isEmpty, !units.contains(where: line.belongs(to:)) { return false }
        if !identifiers.isEmpty, !identifiers.contains(line.identifier) { return false }
        if !textWords.isEmpty, !Self.phrase(textWords, in: line.message) { return false }
        if let regex, regex.firstMatch(in: line.message, range: NSRange(line.message.startIndex..., in: line.message)) == nil { return false }
        return true
    }
}

/// Where a line stands in the newest-first order: its time, then its block and place in it.
public struct LogPosition: Sendable, Equatable, Comparable {
    public var time: Int64
    public var block: Int64
    public var index: Int

    public static func < (a: LogPosition, b: LogPosition) -> Bool { (a.time, a.block, a.index) < (b.time, b.block, b.index) }

    public var text: String { "\(time)-\(block)-\(index)" }
    public init(time: Int64, block: Int64, index: Int) {
        self.time = time
        self.block = block
        self.index = index
    }
    public init?(text: String) {
        let words = text.split(separator: "-", omittingEmptySubsequences: false)
        let parts = words.compactMap { Int64($0) }
        guard words.count == 3, parts.count == 3, parts.allSatisfy({ $0 >= 0 }) else { return nil }
        self.init(time: parts[0], block: parts[1], index: Int(parts[2]))
    }
}

/// A follower's place: the sequence of the last line it was sent (the block a read stored it in) and its place there.
public struct LogFollowCursor: Sendable, Equatable, Comparable {
    public var seq: Int64
    public var index: Int

    public static func < (a: LogFollowCursor, b: LogFollowCursor) -> Bool { (a.seq, a.index) < (b.seq, b.index) }
    public var text: String { "\(seq).\(index == .max ? "end" : String(index))" }
    public init(seq: Int64, index: Int) {
        self.seq = seq
        self.index = index
    }
    public init?(text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let seq = Int64(parts[0]), seq >= 0 else { return nil }
        if parts[1] == "end" {
            self.init(seq: seq, index: .max)
        } else if let index = Int(parts[1]), index >= 0 {
            self.init(seq: seq, index: index)
        } else {
            return nil
        }
    }
}

public struct LogHit: Sendable {
    public var hostID: Int64
    public var position: LogPosition
    public var line: LogLine
}

public struct LogPage: Sendable {
    public var hits: [LogHit]
    /// The position to continue from, when there may be older lines.
    public var next: LogPosition?
    /// Blocks opened, and whether the search stopped at its work limit before the range was covered.
    public var blocksRead: Int
    public var partial: Bool
}

/// The central log store: blocks of lines per host and source, compressed, with a full-text index per block and the
/// read position of each source kept in the same transaction as the lines it produced (nothing read twice or lost).
public struct LogStore: Sendable {
    let database: DatabasePool
    /// A block closes at this many lines or raw bytes.
    static let blockLines = 1024
    static let blockBytes = 512 << 10
    /// How long a block stays as a read stored it before it may be merged (following polls every second).
    static let followWindow: TimeInterval = 30
    /// The longest one search or histogram works before it answers with what it found (marked partial).
    static let searchSeconds: TimeInterval = 3
    /// The most blocks one search opens before it answers with what it found.
    static let maxBlocksPerSearch = 4000

    public init(database: DatabasePool) { self.database = database }

    /// Lines in blocks of at most `blockLines` lines or `blockBytes` bytes, in time order, the lines shared evenly
    /// between the blocks (5,000 lines make five blocks of 1,000, not four full ones and a small one). Slices of one
    /// array: the lines are not copied.
    static func chunks(_ lines: [LogLine]) -> [ArraySlice<LogLine>] {
        var ordered = lines
        if !lines.indices.dropFirst().allSatisfy({ lines[$0 - 1].time <= lines[$0].time }) { ordered.sort { $0.time < $1.time } }
        var total = 0
        for index in ordered.indices { total += ordered[index].message.utf8.count + 64 }
        let count = max((ordered.count + blockLines - 1) / blockLines, (total + blockBytes - 1) / blockBytes, 1)
        let perBlock = (ordered.count + count - 1) / count
        var blocks: [ArraySlice<LogLine>] = []
        var start = 0
        var bytes = 0
        for index in ordered.indices {
            bytes += ordered[index].message.utf8.count + 64
            if index + 1 - start >= perBlock || bytes >= Self.blockBytes {
                blocks.append(ordered[start...index])
                start = index + 1
                bytes = 0
            }
        }
        if start < ordered.count { blocks.append(ordered[start...]) }
        return blocks
    }

    /// The units (as `journalctl -u` matches them) and identifiers of a block's lines, in a fixed order: the index's
    /// document can then be written again exactly, to take it out.
    static func names(_ block: ArraySlice<LogLine>) -> [(kind: String, name: String)] {
        var units = Set<String>()
        var identifiers = Set<String>()
        var previous: (unit: String, identifier: String)?
        for index in block.indices {
            let unit = block[index].unit
            let identifier = block[index].identifier
            let fields = block[index].fields
            // Neighbouring lines mostly come from the same program.
            if let previous, previous.unit == unit, previous.identifier == identifier, fields["UNIT"] == nil, fields["USER_UNIT"] == nil {
                continue
            }
            previous = (unit, identifier)
            for name in [unit, fields["UNIT"] ?? "", fields["USER_UNIT"] ?? ""] where !name.isEmpty { units.insert(name) }
            if !identifier.isEmpty { identifiers.insert(identifier) }
        }
        return identifiers.sorted().map { (kind: "identifier", name: $0) } + units.sorted().map { (kind: "unit", name: $0) }
    }

    static func insert(_ db: Database, hostID: Int64, source: String, block: ArraySlice<LogLine>, compacted: Bool, now: Int64) throws {
        // A fresh block lives minutes, until merged: it is deflated fast and left out of the index (searches read every
        // fresh block of their range instead). Merged blocks take zlib's level 4: level 6 makes them 6 % smaller at 1.4
        // times the time (measured on the bench's lines).
        let (data, raw) = try LogBlockCodec.encode(block, level: compacted ? 4 : 1)
        var seqLow = Int64.max
        var seqHigh = Int64.min
        var mask = 0
        for index in block.indices {
            mask |= 1 << block[index].priority
            if let seq = block[index].seq {
                seqLow = min(seqLow, seq)
                seqHigh = max(seqHigh, seq)
            }
        }
        try db.execute(
            sql: """
                INSERT INTO log_blocks (host_id, source, start_ms, end_ms, line_count, priorities, min_priority, raw_bytes, data, stored_at, compacted,
                    seq_low, seq_high)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                hostID, source, block.first!.time / 1000, block.last!.time / 1000, block.count, mask, mask.trailingZeroBitCount, raw, data,
                now, compacted, seqLow == .max ? 0 : seqLow, seqHigh == .min ? 0 : seqHigh,
            ])
        let id = db.lastInsertedRowID
        // A block as a read stored it: its lines' sequence is its own id.
        if seqLow == .max { try db.execute(sql: "UPDATE log_blocks SET seq_low = id, seq_high = id WHERE id = ?", arguments: [id]) }
        let names = Self.names(block)
        for name in names {
            try db.execute(sql: "INSERT INTO log_block_names (block_id, kind, name) VALUES (?, ?, ?)", arguments: [id, name.kind, name.name])
        }
        if compacted {
            try db.execute(
                sql: "INSERT INTO log_search (rowid, body) VALUES (?, ?)", arguments: [id, Self.searchBody(block, names: names.map(\.name))])
        }
    }

    /// Take a block out: its row, its names (cascade) and, for a merged block, its index document (the trigger
    /// log_blocks_unindex).
    static func remove(_ db: Database, id: Int64) throws {
        try db.execute(sql: "DELETE FROM log_blocks WHERE id = ?", arguments: [id])
    }

    /// `steward_log_search_body(data)`: a block's index document, rebuilt exactly as it was written.
    static let searchBodyFunction = DatabaseFunction("steward_log_search_body", argumentCount: 1, pure: true) { values in
        guard let data = Data.fromDatabaseValue(values[0]) else { return nil }
        let (lines, format) = try LogBlockCodec.decodeWithFormat(data)
        return Self.searchBody(lines[...], names: Self.names(lines[...]).map(\.name), format: format)
    }

    /// Whether a block holds at least half of what a block may (it would gain little from being merged).
    static func standsAlone(_ block: ArraySlice<LogLine>) -> Bool {
        var bytes = 0
        for index in block.indices { bytes += block[index].message.utf8.count + 64 }
        return block.count * 2 >= blockLines || bytes * 2 >= blockBytes
    }

    /// Lines sorted as a merge sorts them for the retention rules (see `LogsRetention.key`); one group without rules.
    static func groups(_ lines: [LogLine], rules: [RetentionRule]) -> [[LogLine]] {
        guard !rules.isEmpty else { return [lines] }
        let groups = Dictionary(grouping: lines) { LogsRetention.key($0, rules: rules) }
        return groups.keys.sorted().map { groups[$0]! }
    }

    /// Store lines read from a host's source, and where that source now stands, in one transaction. A large read (a
    /// host catching up, a busy one) fills blocks: those holding at least half a block are written as merged blocks at
    /// once, sorted by the retention rules as a merge would sort them, so their lines are encoded and indexed once. The
    /// rest wait as fresh blocks for `compact`.
    public func append(hostID: Int64, source: String, lines: [LogLine], position: String?, now: Date = Date()) throws {
        let stamp = EpochMilliseconds.from(now)
        try database.write { db in
            var rest: [LogLine] = []
            var bytes = 0
            for index in lines.indices { bytes += lines[index].message.utf8.count + 64 }
            if lines.count * 2 >= Self.blockLines || bytes * 2 >= Self.blockBytes {
                for group in Self.groups(lines, rules: try LogsRetention.rules(db)) {
                    for block in Self.chunks(group) {
                        if Self.standsAlone(block) {
                            try Self.insert(db, hostID: hostID, source: source, block: block, compacted: true, now: stamp)
                        } else {
                            rest += block
                        }
                    }
                }
            } else {
                rest = lines
            }
            for block in Self.chunks(rest) { try Self.insert(db, hostID: hostID, source: source, block: block, compacted: false, now: stamp) }
            try db.execute(
                sql: """
                    INSERT INTO log_sources (host_id, source, position, read_at, lines_total, last_error) VALUES (?, ?, ?, ?, ?, '')
                    ON CONFLICT (host_id, source) DO UPDATE SET position = coalesce(?, position), read_at = excluded.read_at,
                        lines_total = lines_total + excluded.lines_total, last_error = ''
                    """,
                arguments: [hostID, source, position ?? "", EpochMilliseconds.from(now), lines.count, position])
            // The newest line's boot is the host's current one.
            var newest: Int?
            for index in lines.indices where !lines[index].boot.isEmpty && lines[index].bootStarted != nil {
                if newest.map({ lines[$0].time < lines[index].time }) ?? true { newest = index }
            }
            if let newest {
                try db.execute(
                    sql: "UPDATE log_sources SET boot_id = ?, boot_started_ms = ? WHERE host_id = ? AND source = ?",
                    arguments: [lines[newest].boot, lines[newest].bootStarted! / 1000, hostID, source])
            }
        }
    }

    /// Each host's current boot and when it began, as its journal last said.
    public func currentBoots(_ hostIDs: [Int64]) throws -> [Int64: (boot: String, started: Int64)] {
        try database.read { db in
            var boots: [Int64: (boot: String, started: Int64)] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT host_id, boot_id, boot_started_ms FROM log_sources WHERE boot_id != '' AND boot_started_ms IS NOT NULL")
            where hostIDs.contains(row["host_id"]) {
                boots[row["host_id"]] = (row["boot_id"], row["boot_started_ms"])
            }
            return boots
        }
    }

    /// A read every few seconds stores small blocks, which compress poorly and index one document each: once a host's
    /// fresh blocks hold a full block's lines, or the oldest is `maxAge` old, they are merged into full blocks (new ids,
    /// marked compacted, so following does not send their lines again). Returns the blocks merged.
    @discardableResult
    public func compact(hostID: Int64, source: String, maxAge: TimeInterval = 600, now: Date = Date()) throws -> Int {
        let stamp = EpochMilliseconds.from(now)
        return try database.write { db in
            // Blocks stay as stored for `followWindow` first, so anyone following has seen them.
            let fresh = try Row.fetchAll(
                db,
                sql:
                    "SELECT id, line_count, stored_at FROM log_blocks WHERE host_id = ? AND source = ? AND compacted = 0 AND stored_at <= ? ORDER BY id",
                arguments: [hostID, source, stamp - Int64(Self.followWindow * 1000)])
            let total = fresh.reduce(0) { $0 + ($1["line_count"] as Int) }
            // A lone block is merged too once it is old: retention rules need its lines sorted into blocks of their own.
            guard let oldest = fresh.map({ $0["stored_at"] as Int64 }).min(),
                (fresh.count > 1 && total >= Self.blockLines) || stamp - oldest >= Int64(maxAge * 1000)
            else { return 0 }
            let rules = try LogsRetention.rules(db)
            var lines: [LogLine] = []
            for row in fresh {
                let id: Int64 = row["id"]
                guard let data = try Data.fetchOne(db, sql: "SELECT data FROM log_blocks WHERE id = ?", arguments: [id]) else { continue }
                let block = try LogBlockCodec.decode(data)
                try Self.remove(db, id: id)
                lines += block.enumerated().map { index, line in
                    var line = line
                    line.seq = id
                    line.seqIndex = index
                    return line
                }
            }
            // Lines a retention rule names (a unit, a program, a priority) go in blocks of their own, which the rule then
            // matches exactly; the rest stay together.
            for group in Self.groups(lines, rules: rules) {
                for block in Self.chunks(group) {
                    try Self.insert(db, hostID: hostID, source: source, block: block, compacted: true, now: stamp)
                }
            }
            return fresh.count
        }
    }

    /// A block's index document. Format 2 blocks index each word with a letter in it once: numbers alone (ports,
    /// sizes, ids, counters) are most of the distinct words in logs and most of an index's size, and a search for one
    /// reads the blocks of its range instead. Format 1 blocks were indexed with every message whole, and are taken out
    /// of the index the same way.
    static func searchBody(_ lines: ArraySlice<LogLine>, names: [String], format: UInt8 = LogBlockCodec.format) -> String {
        guard format >= 2 else { return (lines.map(\.message) + names).joined(separator: "\n") }
        var seen = Set<String>()
        var body: [UInt8] = []
        body.reserveCapacity(lines.count * 32)
        func add(_ word: String) {
            guard seen.insert(word).inserted else { return }
            if !body.isEmpty { body.append(0x20) }
            body.append(contentsOf: word.utf8)
        }
        func words(_ text: String) {
            var text = text
            // Most lines are ASCII: their words are runs of ASCII letters and digits, found on the bytes (the same words
            // as Character's isLetter and isNumber give, at a tenth of the cost). Other lines take the general path.
            let done = text.withUTF8 { bytes -> Bool in
                guard !bytes.contains(where: { $0 >= 0x80 }) else { return false }
                var start = 0
                var letter = false
                for index in 0...bytes.count {
                    let byte = index < bytes.count ? bytes[index] : 0x20
                    let isLetter = (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A
                    if isLetter || (byte >= 0x30 && byte <= 0x39) {
                        letter = letter || isLetter
                        continue
                    }
                    if letter { add(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)) }
                    start = index + 1
                    letter = false
                }
                return true
            }
            if !done {
                for word in text.split(whereSeparator: { !$0.isLetter && !$0.isNumber }) where indexed(word) { add(String(word)) }
            }
        }
        for index in lines.indices { words(lines[index].message) }
        for name in names { words(name) }
        return String(decoding: body, as: UTF8.self)
    }

    /// Whether the index holds a word: one with a letter in it.
    static func indexed(_ word: some StringProtocol) -> Bool { word.contains(where: \.isLetter) }

    /// A failed read of a source: its position stays where it was.
    public func recordFailure(hostID: Int64, source: String, error: String, now: Date = Date()) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO log_sources (host_id, source, read_at, last_error) VALUES (?, ?, ?, ?)
                    ON CONFLICT (host_id, source) DO UPDATE SET read_at = excluded.read_at, last_error = excluded.last_error
                    """,
                arguments: [hostID, source, EpochMilliseconds.from(now), error])
        }
    }

    public struct SourceState: Sendable {
        public var hostID: Int64
        public var source: String
        public var position: String
        public var readAt: Date?
        public var linesTotal: Int
        public var lastError: String
    }

    public func sources() throws -> [SourceState] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM log_sources ORDER BY host_id, source").map { row in
                SourceState(
                    hostID: row["host_id"], source: row["source"], position: row["position"],
                    readAt: (row["read_at"] as Int64?).map(EpochMilliseconds.date), linesTotal: row["lines_total"], lastError: row["last_error"])
            }
        }
    }

    public func position(hostID: Int64, source: String) throws -> String {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT position FROM log_sources WHERE host_id = ? AND source = ?", arguments: [hostID, source]) ?? ""
        }
    }

    /// The blocks that can hold matching lines, newest end first; or, after a block, the blocks stored since, in order.
    func candidateBlocks(_ query: LogQuery, _ db: Database, afterSeq: Int64? = nil, limit: Int? = nil) throws -> [(
        id: Int64, hostID: Int64, start: Int64, end: Int64
    )] {
        var clauses = ["b.end_ms >= ?", "b.start_ms <= ?", "b.min_priority <= ?"]
        var arguments: [any DatabaseValueConvertible] = [query.from, min(query.to, query.before.map { $0.time / 1000 } ?? .max), query.maxPriority]
        if let afterSeq {
            clauses.append("b.seq_high >= ?")
            arguments.append(afterSeq)
        }
        if let hosts = query.hostIDs {
            clauses.append("b.host_id IN (\(hosts.map { _ in "?" }.joined(separator: ",")))")
            arguments += hosts.map { $0 as any DatabaseValueConvertible }
        }
        for (kind, names) in [("unit", query.units), ("identifier", query.identifiers)] where !names.isEmpty {
            clauses.append(
                "EXISTS (SELECT 1 FROM log_block_names n WHERE n.block_id = b.id AND n.kind = ? AND n.name IN (\(names.map { _ in "?" }.joined(separator: ","))))"
            )
            arguments.append(kind)
            arguments += names.map { $0 as any DatabaseValueConvertible }
        }
        if let terms = query.searchTerms {
            clauses.append("(b.compacted = 0 OR b.id IN (SELECT rowid FROM log_search WHERE log_search MATCH ?))")
            arguments.append(terms)
        }
        return try Row.fetchAll(
            db,
            sql: "SELECT b.id, b.host_id, b.start_ms, b.end_ms FROM log_blocks b WHERE \(clauses.joined(separator: " AND ")) "
                + (afterSeq == nil ? "ORDER BY b.end_ms DESC, b.id DESC" : "ORDER BY b.seq_low, b.id") + (limit.map { " LIMIT \($0)" } ?? ""),
            arguments: StatementArguments(arguments)
        ).map { (id: $0["id"], hostID: $0["host_id"], start: $0["start_ms"], end: $0["end_ms"]) }
    }

    /// The newest matching lines, newest first. Blocks are opened newest end first; once `limit` lines are found and
    /// the next block ends before the oldest of them, no older block can add a newer line.
    public func search(_ query: LogQuery) throws -> LogPage {
        let deadline = Date().addingTimeInterval(Self.searchSeconds)
        return try database.read { db in
            let blocks = try candidateBlocks(query, db)
            var hits: [LogHit] = []
            var opened = 0
            var partial = false
            for block in blocks {
                if hits.count >= query.limit, let oldest = hits.last, block.end < oldest.position.time / 1000 { break }
                if opened >= Self.maxBlocksPerSearch || Date() > deadline {
                    partial = true
                    break
                }
                opened += 1
                guard let data = try Data.fetchOne(db, sql: "SELECT data FROM log_blocks WHERE id = ?", arguments: [block.id]) else { continue }
                for (index, line) in try LogBlockCodec.decode(data).enumerated() where query.matches(line, host: block.hostID) {
                    let position = LogPosition(time: line.time, block: line.seq ?? block.id, index: line.seqIndex ?? index)
                    if let before = query.before, position >= before { continue }
                    hits.append(LogHit(hostID: block.hostID, position: position, line: line))
                }
                hits.sort { $0.position > $1.position }
                if hits.count > query.limit { hits.removeLast(hits.count - query.limit) }
            }
            let more = hits.count == query.limit || partial
            return LogPage(hits: hits, next: more ? hits.last?.position : nil, blocksRead: opened, partial: partial)
        }
    }

    /// Where following starts: after every line stored so far.
    public func followStart() throws -> LogFollowCursor {
        try database.read { db in LogFollowCursor(seq: try Int64.fetchOne(db, sql: "SELECT max(seq_high) FROM log_blocks") ?? 0, index: .max) }
    }

    /// Matching lines stored after `after` (whatever their time: a host that was out of reach catches up late), in the
    /// order reads stored them, each with its own cursor, and where the next round starts. A line's sequence survives
    /// merging, so a follower that paused, reconnected or fell behind gets every line once.
    public func newer(_ query: LogQuery, after: LogFollowCursor, maxBlocks: Int = 200) throws -> (
        hits: [(hit: LogHit, cursor: LogFollowCursor)], next: LogFollowCursor
    ) {
        try database.read { db in
            var hits: [(hit: LogHit, cursor: LogFollowCursor)] = []
            let blocks = try candidateBlocks(query, db, afterSeq: after.seq, limit: maxBlocks)
            for block in blocks {
                guard let data = try Data.fetchOne(db, sql: "SELECT data FROM log_blocks WHERE id = ?", arguments: [block.id]) else { continue }
                for (index, line) in try LogBlockCodec.decode(data).enumerated() {
                    let cursor = LogFollowCursor(seq: line.seq ?? block.id, index: line.seqIndex ?? index)
                    guard cursor > after, query.matches(line, host: block.hostID) else { continue }
                    let position = LogPosition(time: line.time, block: cursor.seq, index: cursor.index)
                    hits.append((LogHit(hostID: block.hostID, position: position, line: line), cursor))
                }
            }
            hits.sort { $0.cursor < $1.cursor }
            var next = hits.last?.cursor ?? after
            // Every matching block was read (one snapshot): the next round starts after everything stored so far.
            if blocks.count < maxBlocks, let newest = try Int64.fetchOne(db, sql: "SELECT max(seq_high) FROM log_blocks"), newest > next.seq {
                next = LogFollowCursor(seq: newest, index: .max)
            }
            return (hits, next)
        }
    }

    /// How many matching lines fall in each of `buckets` equal slices of the range (at most `maxBlocksPerSearch`
    /// blocks are counted; `partial` says when the range held more).
    public func histogram(_ query: LogQuery, buckets: Int) throws -> (counts: [Int], partial: Bool) {
        var query = query
        query.before = nil
        let span = max(1, Double(query.to) - Double(query.from) + 1)
        return try database.read { db in
            var counts = Array(repeating: 0, count: buckets)
            let blocks = try candidateBlocks(query, db)
            let deadline = Date().addingTimeInterval(Self.searchSeconds)
            var counted = 0
            for block in blocks.prefix(Self.maxBlocksPerSearch) {
                if Date() > deadline { break }
                counted += 1
                guard let data = try Data.fetchOne(db, sql: "SELECT data FROM log_blocks WHERE id = ?", arguments: [block.id]) else { continue }
                for line in try LogBlockCodec.decode(data) where query.matches(line, host: block.hostID) {
                    let slot = Int((Double(line.time / 1000) - Double(query.from)) * Double(buckets) / span)
                    counts[max(0, min(buckets - 1, slot))] += 1
                }
            }
            return (counts, blocks.count > counted)
        }
    }

    /// How many lines match, per host (at most `maxBlocksPerSearch` blocks are read, newest first): what a log alert
    /// rule counts in its window.
    /// Every host's id, and the panel host's (transport local): a log rule someone wrote leaves the panel host out.
    func hostIDs() throws -> [Int64] { try database.read { db in try Int64.fetchAll(db, sql: "SELECT id FROM hosts") } }
    func panelHostIDs() throws -> Set<Int64> {
        try database.read { db in Set(try Int64.fetchAll(db, sql: "SELECT id FROM hosts WHERE transport = 'local'")) }
    }

    /// Counting stops after `searchSeconds`, and the answer is then partial (nil).
    public func counts(_ query: LogQuery) throws -> [Int64: Int]? {
        var query = query
        query.before = nil
        let deadline = Date().addingTimeInterval(Self.searchSeconds)
        return try database.read { db in
            var counts: [Int64: Int] = [:]
            for block in try candidateBlocks(query, db, limit: Self.maxBlocksPerSearch) {
                if Date() > deadline { return nil }
                guard let data = try Data.fetchOne(db, sql: "SELECT data FROM log_blocks WHERE id = ?", arguments: [block.id]) else { continue }
                for line in try LogBlockCodec.decode(data) where query.matches(line, host: block.hostID) { counts[block.hostID, default: 0] += 1 }
            }
            return counts
        }
    }

    /// Lines and bytes on disk: the blocks, their names and the search index, for bytes per line.
    public func figures() throws -> (lines: Int, rawBytes: Int, blockBytes: Int) {
        try database.read { db in
            let row = try Row.fetchOne(
                db,
                sql:
                    "SELECT coalesce(sum(line_count), 0) AS lines, coalesce(sum(raw_bytes), 0) AS raw, coalesce(sum(length(data)), 0) AS stored FROM log_blocks"
            )
            return (row?["lines"] ?? 0, row?["raw"] ?? 0, row?["stored"] ?? 0)
        }
    }
}
