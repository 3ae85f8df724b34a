import CPAM
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Whether a Unix account may still use Steward (SECURITY.md class 16): sessions and API tokens stop working as
/// soon as their owner is deleted, locked, expired or owes a password change, as a new login would be refused.
public enum AccountStanding: Sendable, Equatable {
    case usable
    case deleted
    case locked
    case expired
    case passwordChangeRequired

    /// Why a credential of `user` no longer works, for the 401.
    public func refusal(user: String) -> String? {
        switch self {
        case .usable: nil
        case .deleted: "the Unix account \(user) no longer exists, so its sessions and tokens no longer work"
        case .locked: "the Unix account \(user) is locked, so its sessions and tokens no longer work until it is unlocked"
        case .expired: "the Unix account \(user) has expired, so its sessions and tokens no longer work until an administrator extends it"
        case .passwordChangeRequired:
            "the Unix account \(user) must change its password; change it on the machine, then sign in again"
        }
    }

    /// The account's standing from the password and shadow databases, the same facts pam_unix's account stage reads.
    public static func read(user: String, now: Date = Date()) -> AccountStanding {
        guard getpwnam(user) != nil else { return .deleted }
        // Without a shadow entry (NIS, LDAP through NSS without shadow) there is nothing more to check here.
        guard let shadow = getspnam(user) else { return .usable }
        let password: String = shadow.pointee.sp_pwdp.map { String(cString: $0) } ?? ""
        if password.hasPrefix("!") { return .locked }
        let today = Int(now.timeIntervalSince1970 / 86_400)
        let expire = Int(shadow.pointee.sp_expire)
        if expire > 0, today >= expire { return .expired }
        let lastChange = Int(shadow.pointee.sp_lstchg)
        if lastChange == 0 { return .passwordChangeRequired }
        let maximum = Int(shadow.pointee.sp_max)
        if lastChange > 0, maximum >= 0, maximum < 99_999, today > lastChange + maximum { return .passwordChangeRequired }
        return .usable
    }
}

/// Account standings, read at most once a minute per user: every request asks, and NSS is not free.
public final class AccountStandingCache: Sendable {
    let lookup: @Sendable (String) async -> AccountStanding
    let maximumAge: TimeInterval
    let standings: PerUserCache<AccountStanding>
    let groupLists: PerUserCache<[String]>

    public init(
        maximumAge: TimeInterval = 60, lookup: @escaping @Sendable (String) async -> AccountStanding = { AccountStanding.read(user: $0) }
    ) {
        self.lookup = lookup
        self.maximumAge = maximumAge
        standings = PerUserCache(maximumAge: maximumAge)
        groupLists = PerUserCache(maximumAge: maximumAge)
    }

    public func standing(of user: String, now: Date = Date()) async -> AccountStanding {
        if let cached = standings.value(for: user, now: now) { return cached }
        let fresh = await lookup(user)
        standings.store(fresh, for: user, now: now)
        return fresh
    }

    /// A token owner's Unix groups, read through `lookup` (NSS) at most once per `maximumAge`, like the standing:
    /// a script's every request would otherwise read the group database, and a group change reaches tokens within
    /// the same re-check interval as a locked or expired account does. Sign-in always reads afresh.
    public func groups(of user: String, now: Date = Date(), lookup: (String) -> [String]) -> [String] {
        if let cached = groupLists.value(for: user, now: now) { return cached }
        let fresh = lookup(user)
        groupLists.store(fresh, for: user, now: now)
        return fresh
    }
}

/// Values per user, each trusted for `maximumAge` from when it was read (and not at all if the clock went back);
/// past 10,000 users it starts again.
final class PerUserCache<Value: Sendable>: Sendable {
    let maximumAge: TimeInterval
    private let entries = Mutex<[String: (value: Value, at: Date)]>([:])

    init(maximumAge: TimeInterval) { self.maximumAge = maximumAge }

    func value(for user: String, now: Date) -> Value? {
        guard let cached = entries.withLock({ $0[user] }), now.timeIntervalSince(cached.at) < maximumAge, now >= cached.at else { return nil }
        return cached.value
    }

    func store(_ value: Value, for user: String, now: Date) {
        entries.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }
            entries[user] = (value, now)
        }
    }
}
