import Foundation
import Testing

@testable import StewardKit

/// pam_wrapper swaps libpam's configuration directory when it loads, so these run only in a process started with
/// LD_PRELOAD=libpam_wrapper.so and PAM_WRAPPER=1, as `make unit-test` (and so `make test` and CI) starts it.
let pamWrapperActive = ProcessInfo.processInfo.environment["PAM_WRAPPER"] == "1"

@Suite("PAM authentication (libpam-wrapper + pam_matrix)", .enabled(if: pamWrapperActive, "needs the pam_wrapper environment from make unit-test"))
struct PAMAuthenticatorTests {
    let pam = PAMAuthenticator(service: "steward-test")

    @Test("the right password signs in, and PAM's user name is returned")
    func goodPassword() async {
        let result = await pam.authenticate(user: "alice", password: "correct horse", remoteHost: "192.0.2.10")
        #expect(result == .success("alice"))
    }

    @Test("a wrong password is refused as invalid credentials")
    func badPassword() async {
        let result = await pam.authenticate(user: "alice", password: "wrong", remoteHost: nil)
        guard case .failure(.invalidCredentials) = result else {
            Issue.record("expected invalid credentials, got \(result)")
            return
        }
        #expect(LoginRefusal.invalidCredentials(detail: "").message == "Wrong user name or password.")
    }

    @Test("an unknown user reads the same as a wrong password")
    func unknownUser() async {
        let result = await pam.authenticate(user: "mallory", password: "correct horse", remoteHost: nil)
        guard case .failure(.invalidCredentials) = result else {
            Issue.record("expected invalid credentials, got \(result)")
            return
        }
    }

    @Test("an expired account is refused with a message that says so, even with the right password")
    func expiredAccount() async {
        let result = await PAMAuthenticator(service: "steward-test-expired").authenticate(user: "bob", password: "correct horse", remoteHost: nil)
        #expect(result == .failure(.accountExpired))
        #expect(LoginRefusal.accountExpired.message.contains("expired"))
    }

    @Test("a required password change is explained")
    func passwordChangeRequired() async {
        let result = await PAMAuthenticator(service: "steward-test-chpw").authenticate(user: "carol", password: "correct horse", remoteHost: nil)
        #expect(result == .failure(.passwordChangeRequired))
        #expect(LoginRefusal.passwordChangeRequired.message.contains("must be changed"))
    }

    @Test("an account PAM does not permit is refused as locked or not permitted")
    func lockedAccount() async {
        let result = await PAMAuthenticator(service: "steward-test-locked").authenticate(user: "dave", password: "correct horse", remoteHost: nil)
        guard case .failure(.accountNotPermitted) = result else {
            Issue.record("expected not permitted, got \(result)")
            return
        }
    }

    @Test("a missing PAM service is a service failure, never a success")
    func missingService() async {
        let result = await PAMAuthenticator(service: "steward-test-no-such-service").authenticate(
            user: "alice", password: "correct horse", remoteHost: nil)
        guard case .failure = result else {
            Issue.record("a missing service must not authenticate: \(result)")
            return
        }
    }

    @Test("empty user names and NUL bytes never reach PAM")
    func hostileInput() async {
        #expect(
            await pam.authenticate(user: "", password: "x", remoteHost: nil)
                == .failure(.invalidCredentials(detail: "empty user name or NUL byte in input")))
        #expect(await pam.authenticate(user: "alice\0root", password: "correct horse", remoteHost: nil) != .success("alice"))
    }

    @Test("concurrent logins do not block each other or the caller's threads")
    func concurrent() async {
        let results = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<20 {
                group.addTask {
                    let password = index.isMultiple(of: 2) ? "correct horse" : "wrong"
                    let result = await PAMAuthenticator(service: "steward-test").authenticate(user: "alice", password: password, remoteHost: nil)
                    return (result == .success("alice")) == index.isMultiple(of: 2)
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 20 && results.allSatisfy { $0 })
    }
}
