import Foundation
import GRDB

/// A log file (or a pattern of them) under /var/log that Steward reads on every host of a group.
public struct LogFileSource: Sendable, Equatable {
    public var id: Int64 = 0
    /// A host group; "" for every host.
    public var hostGroup = ""
    public var path = ""
    public var comment = ""
    public var createdBy = ""
    public var createdAt: Int64 = 0

    public init() {}

    /// Files under /var/log only: a log file is what people may read there; /etc/shadow is not. A `*` or `?` may
    /// stand in the file name (not in a directory), so `/var/log/nginx/*.log` follows every site's log.
    func problems(groups: [String]) -> [String: String] {
        var errors: [String: String] = [:]
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if !path.hasPrefix("/var/log/") || path.hasSuffix("/") || parts.contains("..") || parts.contains(".") || path.contains("//")
            || path.utf8.count > 512 || path.contains(where: { $0.isNewline || $0 == "\0" || $0 == "[" || $0 == "]" })
            || parts.dropLast().contains(where: { $0.contains("*") || $0.contains("?") })
        {
            errors["path"] =
                "an absolute path of a file under /var/log, such as /var/log/nginx/error.log; * and ? may stand in the file name only"
        }
        if !hostGroup.isEmpty, !groups.contains(hostGroup) { errors["host_group"] = "no host group is called \(hostGroup)" }
        if comment.utf8.count > 500 { errors["comment"] = "at most 500 bytes" }
        return errors
    }

    func applies(to host: Host) -> Bool { hostGroup.isEmpty || host.groups.contains(hostGroup) }
}

public struct LogFileStore: Sendable {
    let database: DatabasePool

    public init(database: DatabasePool) { self.database = database }

    public func all() throws -> [LogFileSource] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM log_files ORDER BY host_group, path").map { row in
                var file = LogFileSource()
                file.id = row["id"]
                file.hostGroup = row["host_group"]
                file.path = row["path"]
                file.comment = row["comment"]
                file.createdBy = row["created_by"]
                file.createdAt = row["created_at"]
                return file
            }
        }
    }

    public func create(_ file: LogFileSource, groups: [String], by who: AuditActor, now: Date) throws -> LogFileSource {
        var file = file
        file.path = file.path.trimmingCharacters(in: .whitespaces)
        file.hostGroup = file.hostGroup.trimmingCharacters(in: .whitespaces)
        let errors = file.problems(groups: groups)
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return try database.write { db in
            if try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM log_files WHERE host_group = ? AND path = ?)", arguments: [file.hostGroup, file.path]) == true
            {
                throw Problem.invalid(["path": "\(file.path) is already read on \(file.hostGroup.isEmpty ? "every host" : file.hostGroup)"])
            }
            file.createdBy = who.actor
            file.createdAt = EpochMilliseconds.from(now)
            try db.execute(
                sql: "INSERT INTO log_files (host_group, path, comment, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [file.hostGroup, file.path, file.comment, file.createdBy, file.createdAt])
            file.id = db.lastInsertedRowID
            try AuditLog.append(
                db, by: who, action: "log_file.create", target: "log_file:\(file.path)",
                after: ["host_group": file.hostGroup, "comment": file.comment], now: now)
            return file
        }
    }

    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            guard let path = try String.fetchOne(db, sql: "SELECT path FROM log_files WHERE id = ?", arguments: [id]) else { return false }
            try db.execute(sql: "DELETE FROM log_files WHERE id = ?", arguments: [id])
            try AuditLog.append(db, by: who, action: "log_file.delete", target: "log_file:\(path)", now: now)
            return true
        }
    }
}

/// Reads the new part of a host's log files since the last read, following rotation: where each file stood (its inode
/// and the offset read to) is the source's position, saved with the lines. A file that was renamed away (logrotate's
/// `access.log` → `access.log.1`) is read to its end first, found by its inode; a file cut short (copytruncate) is read
/// from its start; a file seen for the first time is read from its last megabyte.
enum LogFileReader {
    /// Where each file stood: path → (inode, offset).
    typealias Position = [String: [Int64]]

    /// Python 3, which every host Steward manages has (Ansible needs it): given the patterns, the positions and a byte
    /// budget, it prints one JSON object per piece of a file it read. It reads only regular files whose real path is
    /// under /var/log (a symbolic link out of it is refused), and never a compressed or rotated file by pattern.
    static let script = #"""
        import base64, glob, json, os, re, sys
        a = json.loads(sys.argv[1])
        budget = a["max"]
        state = a["state"]
        skip = re.compile(r"(\.[0-9]+|-[0-9]{8}|\.gz|\.xz|\.bz2|\.zst|\.lz4|\.old)$")
        def under(p):
            return os.path.realpath(p).startswith("/var/log/")
        def read(p, start, limit):
            with open(p, "rb") as f:
                f.seek(start)
                return f.read(limit)
        def emit(**piece):
            if "data" in piece:
                piece["data"] = base64.b64encode(piece["data"]).decode()
            print(json.dumps(piece), flush=True)
        paths = []
        for pattern in a["patterns"]:
            found = sorted(glob.glob(pattern)) if ("*" in pattern or "?" in pattern) else [pattern]
            if not found:
                emit(path=pattern, missing=True)
            for p in found:
                if p not in paths and (p == pattern or not skip.search(p)):
                    paths.append(p)
        for p in paths:
            if budget <= 0:
                break
            try:
                if not under(p) or not os.path.isfile(p):
                    emit(path=p, error="not a regular file under /var/log")
                    continue
                st = os.stat(p)
                prev = state.get(p)
                if prev is None:
                    start = max(0, st.st_size - a["first"])
                    data = read(p, start, budget)
                    budget -= len(data)
                    emit(path=p, inode=st.st_ino, start=start, data=data, first=True, size=st.st_size)
                    continue
                start = prev[1]
                if prev[0] != st.st_ino:
                    old = None
                    stem = os.path.splitext(p)[0]
                    for c in sorted(set(glob.glob(glob.escape(p) + "*") + glob.glob(glob.escape(stem) + "*"))):
                        if c != p and os.path.isfile(c) and under(c) and os.stat(c).st_ino == prev[0] and not re.search(r"\.(gz|xz|bz2|zst|lz4)$", c):
                            old = c
                            break
                    if old is not None:
                        size = os.stat(old).st_size
                        data = read(old, prev[1], budget)
                        budget -= len(data)
                        done = prev[1] + len(data) >= size
                        emit(path=p, inode=prev[0], start=prev[1], data=data, rotated=old, done=done)
                        if not done:
                            continue
                    else:
                        emit(path=p, lost=True)
                    start = 0
                elif st.st_size < prev[1]:
                    emit(path=p, truncated=True)
                    start = 0
                data = read(p, start, budget)
                budget -= len(data)
                emit(path=p, inode=st.st_ino, start=start, data=data, size=st.st_size)
            except (OSError, ValueError) as e:
                emit(path=p, error=getattr(e, "strerror", None) or str(e))
        for p in state:
            if p not in paths:
                emit(path=p, gone=True)
        """#

    static let batchBytes = 4 << 20
    static let firstReadBytes = 1 << 20
    static let maxLineBytes = 64 << 10

    static func words(host: Host, patterns: [String], position: Position) -> [String] {
        let input: [String: Any] = ["patterns": patterns, "state": position, "max": batchBytes, "first": firstReadBytes]
        let json = String(decoding: (try? JSONSerialization.data(withJSONObject: input, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
        let words = ["python3", "-c", script, json]
        return host.transport == .ssh && host.sshUser != "root" ? ["sudo", "-n"] + words : words
    }

    struct Read {
        var lines: [LogLine] = []
        var position: Position
        /// What went wrong with some file (missing, refused, rotated away unread), for the sources table.
        var problems: [String] = []
        /// The budget ran out: more is waiting.
        var more = false
    }

    /// The reader's output as lines and the new position. Only complete lines are taken (a file's last line without
    /// its line end waits for the next read), except at the end of a rotated file, which will not grow again.
    static func parse(_ output: String, position: Position, zone: TimeZone, now: Date) -> Read {
        var read = Read(position: position)
        var used = 0
        for text in output.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], let path = object["path"] as? String
            else { continue }
            if object["missing"] as? Bool == true { read.problems.append("\(path): no such file") }
            if let error = object["error"] as? String { read.problems.append("\(path): \(error)") }
            if object["lost"] as? Bool == true { read.problems.append("\(path) was rotated away before Steward read its end") }
            // A file no longer matched by any pattern (or gone): its position goes, so positions do not pile up.
            if object["gone"] as? Bool == true {
                read.position[path] = nil
                continue
            }
            // A host's answer is checked: offsets and inodes in range, only paths it was asked for or found by a
            // pattern under /var/log, and no more data than the budget.
            guard let inode = (object["inode"] as? NSNumber)?.int64Value, let start = (object["start"] as? NSNumber)?.int64Value,
                (0..<(1 << 53)).contains(inode), (0..<(1 << 53)).contains(start), path.hasPrefix("/var/log/"), path.utf8.count <= 4096,
                let data = (object["data"] as? String).flatMap({ Data(base64Encoded: $0) }), data.count <= batchBytes
            else { continue }
            used += data.count
            let bytes = [UInt8](data)
            var offset = 0
            // A first read starts inside the file: the first, partial line is not taken.
            if object["first"] as? Bool == true, start > 0 {
                guard let newline = bytes.firstIndex(of: 0x0A) else {
                    read.position[path] = [inode, start]
                    continue
                }
                offset = newline + 1
            }
            let rotatedDone = object["rotated"] != nil && object["done"] as? Bool == true
            var lineStart = offset
            while let newline = bytes[lineStart...].firstIndex(of: 0x0A) {
                append(bytes[lineStart..<min(newline, lineStart + maxLineBytes)], path: path, zone: zone, now: now, to: &read.lines)
                lineStart = newline + 1
            }
            // The end of a rotated file, or a line too long to wait for: taken as it is (cut at maxLineBytes).
            if lineStart < bytes.count, rotatedDone || bytes.count - lineStart >= maxLineBytes {
                append(bytes[lineStart..<min(bytes.count, lineStart + maxLineBytes)], path: path, zone: zone, now: now, to: &read.lines)
                lineStart = bytes.count
            }
            read.position[path] = [inode, start + Int64(lineStart)]
        }
        read.more = used >= batchBytes
        return read
    }

    static func append(_ bytes: ArraySlice<UInt8>, path: String, zone: TimeZone, now: Date, to lines: inout [LogLine]) {
        guard bytes.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) else { return }
        lines.append(line(bytes, path: path, zone: zone, now: now))
    }

    /// One line of a file: the time it starts with (the syslog form, RFC 3339, `2026/12/06 10:00:00` as nginx writes
    /// it, `2026-12-06 10:00:00,123`, or `[06/Dec/2026:10:00:00 +0000]` as access logs write it), the program when the
    /// syslog form names one, and a priority from a level word near the start (`[error]`, `WARN`, `crit:`), since
    /// files carry none of their own: info without one.
    static func line(_ bytes: ArraySlice<UInt8>, path: String, zone: TimeZone, now: Date) -> LogLine {
        let origin = SyslogMessage.Origin(sender: "", transport: "", zone: zone, now: now)
        let nowMicros = Int64(now.timeIntervalSince1970 * 1_000_000)
        var reader = SyslogMessage.Reader(bytes: SyslogMessage.trimmed(bytes))
        var line = LogLine(time: nowMicros, priority: 6, identifier: (path as NSString).lastPathComponent, message: "")
        var fields = ["_TRANSPORT": "file", "STEWARD_FILE": path]
        var claimed = reader.bsdTimestamp(zone: origin.zone, now: now) ?? reader.rfc3339Timestamp()
        if claimed != nil {
            // The syslog form: host, then program[pid]: message.
            if let host = reader.bsdHostName() { fields["SYSLOG_HOSTNAME"] = LogLine.cut(host, bytes: 256) }
            if let (tag, pid) = reader.bsdTag() {
                line.identifier = tag
                line.pid = pid
            }
        } else {
            claimed = reader.numericTimestamp(zone: zone)
        }
        var message = reader.rest()
        if claimed == nil { claimed = accessLogTime(message) }
        message = String(message.drop { $0 == " " })
        if let level = level(message) { line.priority = level }
        if let claimed, LogLine.plausible(claimed, now: nowMicros) {
            line.time = claimed
        } else {
            fields["STEWARD_FILE_TIME"] = "read"
        }
        line.message = LogLine.cut(message, bytes: LogLine.maxMessageBytes)
        line.identifier = LogLine.cut(line.identifier, bytes: 256)
        line.fields = fields
        return line
    }

    static let levels: [(String, Int)] = [
        ("emerg", 0), ("emergency", 0), ("panic", 0), ("alert", 1), ("crit", 2), ("critical", 2), ("fatal", 2), ("err", 3), ("error", 3),
        ("warn", 4), ("warning", 4), ("notice", 5), ("info", 6), ("debug", 7), ("trace", 7),
    ]

    /// A level word among the first few words: bracketed (`[error]`), followed by a colon (`crit:`), or in capitals
    /// (`ERROR`, `WARN`).
    static func level(_ message: String) -> Int? {
        let head = message.prefix(120)
        let words = head.split { $0 == " " || $0 == "\t" }.prefix(6)
        for word in words {
            var token = Substring(word)
            let bracketed = token.hasPrefix("[") || token.hasPrefix("<")
            token = token.drop { "[<(".contains($0) }
            let colon = token.hasSuffix(":")
            while let last = token.last, "]>):,".contains(last) { token = token.dropLast() }
            let lower = token.lowercased()
            guard let level = levels.first(where: { $0.0 == lower })?.1 else { continue }
            if bracketed || colon || (token == token.uppercased() && token.count >= 3) { return level }
        }
        return nil
    }

    /// `[06/Dec/2026:10:00:00 +0000]` anywhere in the first 200 characters (the common and combined log formats).
    static func accessLogTime(_ message: String) -> Int64? {
        guard let open = message.prefix(200).firstIndex(of: "[") else { return nil }
        let rest = message[message.index(after: open)...]
        guard let close = rest.firstIndex(of: "]") else { return nil }
        let text = String(rest[..<close])
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "dd/MMM/yyyy:HH:mm:ss Z"
        guard let date = formatter.date(from: text) else { return nil }
        return Int64(date.timeIntervalSince1970) * 1_000_000
    }
}

extension SyslogMessage.Reader {
    /// `2026/12/06 10:00:00` (nginx's error log) or `2026-12-06 10:00:00[,.]fraction` (many programs' own logs), in
    /// the host's zone, and the space after it.
    mutating func numericTimestamp(zone: TimeZone) -> Int64? {
        let start = position
        guard let year = number(digits: 4), let separator = peek(), separator == UInt8(ascii: "/") || separator == UInt8(ascii: "-") else {
            position = start
            return nil
        }
        position += 1
        guard let month = number(digits: 2), peek() == separator else {
            position = start
            return nil
        }
        position += 1
        guard let day = number(digits: 2), take(" "), let hour = number(digits: 2), take(":"), let minute = number(digits: 2), take(":"),
            let second = number(digits: 2), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else {
            position = start
            return nil
        }
        var micros = 0
        if let mark = peek(), mark == UInt8(ascii: ",") || mark == UInt8(ascii: "."), let digit = peek(1), digit >= 0x30, digit <= 0x39 {
            position += 1
            var places = 0
            while let byte = peek(), byte >= 0x30, byte <= 0x39 {
                if places < 6 { micros = micros * 10 + Int(byte - 0x30) }
                places += 1
                position += 1
            }
            for _ in places..<max(places, 6) { micros *= 10 }
        }
        let local = Int64(CivilDate.days(year: year, month: month, day: day)) * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59))
        let offset = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(local))))
        return (local - offset) * 1_000_000 + Int64(micros)
    }
}
