import Foundation
import GRDB
import HTTPTypes

/// A probe Steward runs on a schedule: an HTTP(S) request with the status and body text it expects, or a TCP connect.
/// Its results are series of the host it belongs to (the host it checks, or the panel host for an outside service).
public struct Check: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case http, tcp }
    public enum Method: String, Sendable, CaseIterable {
        case get = "GET"
        case head = "HEAD"
        case post = "POST"
    }

    public var id: Int64 = 0
    public var name = ""
    public var kind = Kind.http
    /// An http(s) URL, or host:port for TCP.
    public var target = ""
    public var method = Method.get
    /// Status codes that count as success: codes and ranges, comma-separated (`200-399`, `200,204`).
    public var expectStatus = "200-399"
    /// Text the body must contain; empty for none.
    public var expectBody = ""
    public var timeoutSeconds = 10.0
    public var intervalSeconds = 30
    public var hostID: Int64 = 0
    public var enabled = true
    public var lastAt: Int64?
    public var lastSuccess: Bool?
    public var lastDuration: Double?
    public var lastStatus: Int?
    public var lastError = ""
    public var certExpiresAt: Int64?
    public var updatedAt: Int64 = 0
    public var updatedBy = ""

    public init() {}

    init(row: Row) {
        id = row["id"]
        name = row["name"]
        kind = Kind(rawValue: row["kind"]) ?? .http
        target = row["target"]
        method = Method(rawValue: row["method"]) ?? .get
        expectStatus = row["expect_status"]
        expectBody = row["expect_body"]
        timeoutSeconds = row["timeout_seconds"]
        intervalSeconds = row["interval_seconds"]
        hostID = row["host_id"]
        enabled = row["enabled"]
        lastAt = row["last_at"]
        lastSuccess = row["last_success"]
        lastDuration = row["last_duration"]
        lastStatus = row["last_status"]
        lastError = row["last_error"]
        certExpiresAt = row["cert_expires_at"]
        updatedAt = row["updated_at"]
        updatedBy = row["updated_by"]
    }

    /// The label every series of this check carries.
    public var seriesLabels: String { PrometheusText.canonicalLabels([("check", name)]) }

    /// The status ranges `expectStatus` names, or nil when it is not a list of codes and ranges.
    public static func statusRanges(_ text: String) -> [ClosedRange<Int>]? {
        var ranges: [ClosedRange<Int>] = []
        for part in text.split(separator: ",") {
            let bounds = part.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds.last!), (100...599).contains(low),
                (100...599).contains(high), low <= high
            else { return nil }
            ranges.append(low...high)
        }
        return ranges.isEmpty ? nil : ranges
    }

    /// host:port of a TCP target, or nil.
    public static func hostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.count <= 253, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:_".contains($0)) }) else {
            return nil
        }
        return (host, port)
    }

    static let linkLocalRefusal =
        "a link-local address (169.254.0.0/16, fe80::/10) is where cloud metadata services answer with credentials; Steward does not probe it"

    /// Link-local literals: the panel host's cloud metadata service must not become something a check reads.
    static func isLinkLocal(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if bare.contains(":") { return ["fe8", "fe9", "fea", "feb"].contains(where: bare.hasPrefix) }
        let octets = bare.split(separator: ".")
        return (octets.count == 4 && octets[0] == "169" && octets[1] == "254" && octets.allSatisfy { Int($0) != nil })
            || bare == "metadata.google.internal"
    }

    /// Field errors; empty when the check can be saved.
    public func problems() -> [String: String] {
        var errors: [String: String] = [:]
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed != name || name.count > 100 || name.contains(where: { $0.isNewline || $0 == "\"" || $0 == "\\" }) {
            errors["name"] = "a name of 1 to 100 characters, without quotes, backslashes or surrounding spaces"
        }
        switch kind {
        case .http:
            let url = URL(string: target)
            if url?.scheme.map({ ["http", "https"].contains($0.lowercased()) }) != true || url?.host?.isEmpty != false {
                errors["target"] = "an http:// or https:// URL, e.g. https://shop.example.com/health"
            } else if url?.user != nil || url?.password != nil {
                errors["target"] = "credentials do not belong in the URL: they would show in every list"
            } else if let host = url?.host, Self.isLinkLocal(host) {
                errors["target"] = Self.linkLocalRefusal
            }
            if Self.statusRanges(expectStatus) == nil {
                errors["expect_status"] = "status codes or ranges from 100 to 599, comma-separated, e.g. 200-399 or 200,204"
            }
            if expectBody.count > 1000 { errors["expect_body"] = "at most 1000 characters" }
        case .tcp:
            if let (host, _) = Self.hostPort(target) {
                if Self.isLinkLocal(host) { errors["target"] = Self.linkLocalRefusal }
            } else {
                errors["target"] = "host:port, e.g. db1.example.com:5432 or [2001:db8::1]:22"
            }
            if !expectBody.isEmpty { errors["expect_body"] = "a TCP check only connects; leave the body text empty" }
        }
        if !(0.1...60).contains(timeoutSeconds) { errors["timeout_seconds"] = "from 0.1 to 60 seconds" }
        if !(1...86_400).contains(intervalSeconds) { errors["interval_seconds"] = "from 1 to 86400 seconds" }
        if errors["timeout_seconds"] == nil, errors["interval_seconds"] == nil, timeoutSeconds > Double(intervalSeconds) {
            errors["timeout_seconds"] = "at most the interval (\(intervalSeconds) s), so one probe ends before the next"
        }
        if hostID <= 0 { errors["host"] = "choose the host the results belong to (the panel host for an outside service)" }
        return errors
    }
}

/// Checks in SQLite; every change is audited.
public struct CheckStore: Sendable {
    public let database: DatabasePool

    public init(database: DatabasePool) { self.database = database }

    public func all() throws -> [Check] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM checks ORDER BY name").map(Check.init) }
    }

    public func check(id: Int64) throws -> Check? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM checks WHERE id = ?", arguments: [id]).map(Check.init) }
    }

    public func check(named name: String) throws -> Check? {
        try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM checks WHERE name = ?", arguments: [name]).map(Check.init) }
    }

    static func audit(_ check: Check) -> [String: Any] {
        [
            "name": check.name, "kind": check.kind.rawValue, "target": check.target, "method": check.method.rawValue,
            "expect_status": check.expectStatus, "expect_body": check.expectBody, "timeout_seconds": check.timeoutSeconds,
            "interval_seconds": check.intervalSeconds, "host_id": check.hostID, "enabled": check.enabled,
        ]
    }

    public func save(_ check: Check, by who: AuditActor, now: Date) throws -> Check {
        let problems = check.problems()
        guard problems.isEmpty else { throw Problem.invalid(problems) }
        let time = EpochMilliseconds.from(now)
        let id = try database.write { db -> Int64 in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM checks WHERE name = ? AND id != ?)", arguments: [check.name, check.id])
                == true
            {
                throw Problem.invalid(["name": "a check named \"\(check.name)\" exists"])
            }
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM hosts WHERE id = ?)", arguments: [check.hostID]) == true else {
                throw Problem.invalid(["host": "there is no host with id \(check.hostID)"])
            }
            let values: [(any DatabaseValueConvertible)?] = [
                check.name, check.kind.rawValue, check.target, check.method.rawValue, check.expectStatus, check.expectBody, check.timeoutSeconds,
                check.intervalSeconds, check.hostID, check.enabled, time, who.actor,
            ]
            if check.id == 0 {
                try db.execute(
                    sql: """
                        INSERT INTO checks (name, kind, target, method, expect_status, expect_body, timeout_seconds, interval_seconds, host_id, enabled,
                            updated_at, updated_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: StatementArguments(values + [time]))
                let id = db.lastInsertedRowID
                try AuditLog.append(db, by: who, action: "check.create", target: "check:\(check.name)", after: Self.audit(check), now: now)
                return id
            }
            try db.execute(
                sql: """
                    UPDATE checks SET name = ?, kind = ?, target = ?, method = ?, expect_status = ?, expect_body = ?, timeout_seconds = ?,
                        interval_seconds = ?, host_id = ?, enabled = ?, updated_at = ?, updated_by = ? WHERE id = ?
                    """, arguments: StatementArguments(values + [check.id]))
            guard db.changesCount > 0 else { throw Problem(status: .notFound, detail: "there is no check with id \(check.id)") }
            try AuditLog.append(db, by: who, action: "check.update", target: "check:\(check.name)", after: Self.audit(check), now: now)
            return check.id
        }
        return try self.check(id: id)!
    }

    /// Remove a check; one an SLO measures against stays until the SLO is changed or removed.
    public func delete(id: Int64, by who: AuditActor, now: Date) throws -> Bool {
        guard let check = try check(id: id) else { return false }
        try database.write { db in
            if let slo = try String.fetchOne(db, sql: "SELECT name FROM slos WHERE check_id = ? ORDER BY name LIMIT 1", arguments: [id]) {
                throw Problem(
                    status: .conflict, detail: "the SLO \"\(slo)\" measures against check \"\(check.name)\": change or remove the SLO first")
            }
            try db.execute(sql: "DELETE FROM checks WHERE id = ?", arguments: [id])
            try AuditLog.append(db, by: who, action: "check.delete", target: "check:\(check.name)", now: now)
        }
        return true
    }

    func record(_ id: Int64, _ result: ProbeResult) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    UPDATE checks SET last_at = ?, last_success = ?, last_duration = ?, last_status = ?, last_error = ?,
                        cert_expires_at = COALESCE(?, cert_expires_at) WHERE id = ?
                    """,
                arguments: [result.at, result.success, result.duration, result.status, result.error, result.certExpiresAt, id])
        }
    }
}
