import Foundation
import Testing

@testable import StewardKit

/// Runs an administration command for the test, from an argv array, and fails the test if it does not succeed.
func administer(_ argv: [String], input: String? = nil) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    let stdin = Pipe()
    process.standardInput = stdin
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw JobFailure("\(argv.joined(separator: " ")) exited with \(process.terminationStatus)") }
}

/// A throwaway local account named steward-test-*, removed again when the test ends.
final class ThrowawayAccount {
    let name = "steward-test-\(UInt32.random(in: 100_000...999_999))"
    let password = "S3cret-\(UUID().uuidString.prefix(8))"

    init() throws {
        try administer(["/usr/sbin/useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
        try administer(["/usr/sbin/chpasswd"], input: "\(name):\(password)\n")
    }

    deinit { try? administer(["/usr/sbin/userdel", name]) }
}

/// The production path: Debian's pam_unix via the `other` stack (common-auth + common-account), which PAM uses for
/// a service with no file of its own. Needs root, to create the account and for pam_unix to read /etc/shadow.
@Suite("PAM with the system's pam_unix", .enabled(if: getuid() == 0, "needs root to create a throwaway account"), .serialized)
struct SystemPAMTests {
    let pam = PAMAuthenticator(service: "steward-test-unlisted")

    @Test("the account's password signs in; a wrong one does not")
    func passwords() async throws {
        let account = try ThrowawayAccount()
        #expect(await pam.authenticate(user: account.name, password: account.password, remoteHost: "127.0.0.1") == .success(account.name))
        let wrong = await pam.authenticate(user: account.name, password: "not-it", remoteHost: "127.0.0.1")
        guard case .failure(.invalidCredentials) = wrong else {
            Issue.record("expected invalid credentials, got \(wrong)")
            return
        }
        // pam_unix's 2 s fail delay is replaced by a no-op; bench/http measures failing logins, a test does not time them.
    }

    @Test("an expired account is refused with pam_unix's own explanation, not as a wrong password")
    func expired() async throws {
        let account = try ThrowawayAccount()
        try administer(["/usr/bin/chage", "--expiredate", "1", account.name])
        let result = await pam.authenticate(user: account.name, password: account.password, remoteHost: nil)
        // Debian's common-account hands pam_unix's PAM_ACCT_EXPIRED to pam_deny, so the code is lost; the message is not.
        guard case .failure(let refusal) = result, case .accountNotPermitted = refusal else {
            Issue.record("expected the account stage to refuse, got \(result)")
            return
        }
        #expect(refusal.message.contains("account has expired"), "\(refusal.message)")
    }

    @Test("a password that must be changed is explained")
    func mustChange() async throws {
        let account = try ThrowawayAccount()
        try administer(["/usr/bin/chage", "--lastday", "0", account.name])
        #expect(await pam.authenticate(user: account.name, password: account.password, remoteHost: nil) == .failure(.passwordChangeRequired))
    }

    @Test("a locked account cannot sign in")
    func locked() async throws {
        let account = try ThrowawayAccount()
        try administer(["/usr/sbin/usermod", "--lock", account.name])
        let result = await pam.authenticate(user: account.name, password: account.password, remoteHost: nil)
        guard case .failure = result else {
            Issue.record("a locked account signed in")
            return
        }
    }
}
