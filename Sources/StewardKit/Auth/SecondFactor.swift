import Crypto
import Foundation
import GRDB
import HummingbirdOTP

/// TOTP (RFC 6238, 6 digits, 30 s, SHA-1: what every authenticator app accepts) per user, with one-use recovery
/// codes. Secrets are sealed with a key derived from the data directory's secret.key.
public struct SecondFactorStore: Sendable {
    public enum Proof: Sendable, Equatable {
        case code
        case recoveryCode(remaining: Int)
    }

    public struct Enrolment: Sendable, Equatable {
        /// The secret in base32, for typing into an app.
        public var secret: String
        /// otpauth://totp/... for a QR code or a link.
        public var uri: String
    }

    static let timeStep: TimeInterval = 30
    static let recoveryCodeCount = 10
    public let database: any DatabaseWriter
    let sealer: SecretSealer
    let issuer: String

    public init(database: any DatabaseWriter, masterKey: SymmetricKey, issuer: String = "Steward") {
        self.database = database
        sealer = SecretSealer(masterKey: masterKey, purpose: "steward totp secret")
        self.issuer = issuer
    }

    /// Whether `user` must give a second factor when signing in.
    public func isEnrolled(_ user: String) throws -> Bool {
        try database.read { db in
            try Bool.fetchOne(db, sql: "SELECT confirmed_at IS NOT NULL FROM totp_factors WHERE user_name = ?", arguments: [user]) ?? false
        }
    }

    /// Start (or restart) enrolment: a new secret that counts only after `confirm` sees a code made from it.
    public func begin(user: String, now: Date) throws -> Enrolment {
        guard try !isEnrolled(user) else { throw AccessError("a second factor is already set up; turn it off first to enrol a new one") }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        let secret = String((0..<20).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
        let sealed = try sealer.seal(secret)!
        try database.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO totp_factors (user_name, sealed_secret, created_at) VALUES (?, ?, ?)",
                arguments: [user, sealed, EpochMilliseconds.from(now)])
        }
        return enrolment(user: user, secret: secret)
    }

    /// The enrolment in progress, so a reload of the page shows the same secret.
    public func pending(user: String) throws -> Enrolment? {
        guard let (secret, confirmed, _) = try load(user), !confirmed else { return nil }
        return enrolment(user: user, secret: secret)
    }

    /// Finish enrolment with a code from the app; returns the recovery codes, shown once.
    public func confirm(user: String, code: String, by who: AuditActor, now: Date) throws -> [String] {
        guard let (secret, confirmed, _) = try load(user), !confirmed else {
            throw AccessError("there is no enrolment in progress; start again from your account page")
        }
        guard let step = Self.matchingStep(secret: secret, code: code, now: now) else {
            throw AccessError("that code does not match; check the app's clock and enter the 6 digits it shows now")
        }
        let codes = (0..<Self.recoveryCodeCount).map { _ in Self.recoveryCode() }
        try database.write { db in
            try db.execute(
                sql: "UPDATE totp_factors SET confirmed_at = ?, last_step = ? WHERE user_name = ?",
                arguments: [EpochMilliseconds.from(now), step, user])
            try db.execute(sql: "DELETE FROM totp_recovery_codes WHERE user_name = ?", arguments: [user])
            for code in codes {
                try db.execute(
                    sql: "INSERT INTO totp_recovery_codes (user_name, code_hash) VALUES (?, ?)", arguments: [user, Self.hashRecovery(code)])
            }
            try AuditLog.append(db, by: who, action: "totp.enable", target: "user:\(user)", now: now)
        }
        return codes
    }

    /// Check a sign-in's second factor: a current code (each used once) or an unused recovery code.
    public func verify(user: String, code: String, now: Date) throws -> Proof? {
        guard let (secret, confirmed, lastStep) = try load(user), confirmed else { return nil }
        let trimmed = code.filter { !$0.isWhitespace }
        if let step = Self.matchingStep(secret: secret, code: trimmed, now: now) {
            let accepted = try database.write { db -> Bool in
                try db.execute(
                    sql: "UPDATE totp_factors SET last_step = ? WHERE user_name = ? AND last_step < ?", arguments: [step, user, step])
                return db.changesCount == 1
            }
            return accepted && step > lastStep ? .code : nil
        }
        let normalized = trimmed.lowercased()
        guard normalized.count == 9 else { return nil }
        return try database.write { db -> Proof? in
            try db.execute(
                sql: "UPDATE totp_recovery_codes SET used_at = ? WHERE user_name = ? AND code_hash = ? AND used_at IS NULL",
                arguments: [EpochMilliseconds.from(now), user, Self.hashRecovery(normalized)])
            guard db.changesCount == 1 else { return nil }
            let remaining =
                try Int.fetchOne(db, sql: "SELECT count(*) FROM totp_recovery_codes WHERE user_name = ? AND used_at IS NULL", arguments: [user])
                ?? 0
            return .recoveryCode(remaining: remaining)
        }
    }

    /// Remove the second factor (by its owner with a valid code, or by an administrator for a lost device).
    public func disable(user: String, by who: AuditActor, now: Date) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "DELETE FROM totp_recovery_codes WHERE user_name = ?", arguments: [user])
            try db.execute(sql: "DELETE FROM totp_factors WHERE user_name = ?", arguments: [user])
            guard db.changesCount == 1 else { return false }
            try AuditLog.append(db, by: who, action: "totp.disable", target: "user:\(user)", now: now)
            return true
        }
    }

    public func remainingRecoveryCodes(user: String) throws -> Int {
        try database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM totp_recovery_codes WHERE user_name = ? AND used_at IS NULL", arguments: [user]) ?? 0
        }
    }

    func load(_ user: String) throws -> (secret: String, confirmed: Bool, lastStep: Int64)? {
        guard
            let row = try database.read({ db in
                try Row.fetchOne(db, sql: "SELECT sealed_secret, confirmed_at, last_step FROM totp_factors WHERE user_name = ?", arguments: [user])
            })
        else { return nil }
        guard let secret = sealer.open(row["sealed_secret"] as Data) else {
            throw AccessError(
                "the stored second-factor secret cannot be opened with this data directory's secret.key; reset it with `steward second-factor reset`")
        }
        return (secret, (row["confirmed_at"] as Int64?) != nil, row["last_step"])
    }

    func enrolment(user: String, secret: String) -> Enrolment {
        let uri = TOTP(secret: secret).createAuthenticatorURL(label: "\(issuer):\(user)", issuer: issuer)
        let base32 = URLComponents(string: uri)?.queryItems?.first { $0.name == "secret" }?.value ?? ""
        return Enrolment(secret: base32, uri: uri)
    }

    /// The time step whose code equals `code`, allowing one step of clock drift either way.
    static func matchingStep(secret: String, code: String, now: Date) -> Int64? {
        guard code.count == 6, let value = Int(code) else { return nil }
        let totp = TOTP(secret: secret)
        for drift in [0, -1, 1] {
            let date = now.addingTimeInterval(Double(drift) * timeStep)
            if totp.compute(date: date) == value { return Int64((date.timeIntervalSince1970 / timeStep).rounded(.down)) }
        }
        return nil
    }

    /// "xxxx-xxxx" from an alphabet without look-alike characters.
    static func recoveryCode() -> String {
        let alphabet = Array("abcdefghjkmnpqrstuvwxyz23456789")
        let characters = (0..<8).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] }
        return String(characters[0..<4]) + "-" + String(characters[4..<8])
    }

    static func hashRecovery(_ code: String) -> String { sha256Hex(Array(code.lowercased().utf8)) }
}
