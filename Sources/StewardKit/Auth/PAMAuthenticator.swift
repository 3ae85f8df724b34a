import CPAM
import Foundation

/// Why a login was refused, in words a person can act on. Unknown users and wrong passwords read the same, so the
/// message does not reveal which accounts exist; `detail` carries PAM's own words for the log and audit trail.
public enum LoginRefusal: Error, Equatable, Sendable {
    case invalidCredentials(detail: String)
    case accountExpired
    case passwordChangeRequired
    /// The password was right but the account stage refused; `pamMessages` are what the modules said (pam_unix explains
    /// expiry this way when a stack such as Debian's common-account turns its code into pam_deny's).
    case accountNotPermitted(detail: String, pamMessages: [String])
    case serviceFailure(detail: String)

    public var message: String {
        switch self {
        case .invalidCredentials: "Wrong user name or password."
        case .accountExpired: "This account has expired. Ask an administrator to renew it."
        case .passwordChangeRequired:
            "The password must be changed before this account can sign in. Change it on the server (for example with passwd), then sign in again."
        case .accountNotPermitted(_, let pamMessages):
            pamMessages.isEmpty
                ? "This account is locked or not allowed to sign in here."
                : "This account may not sign in: " + pamMessages.joined(separator: " ")
        case .serviceFailure: "Sign-in is unavailable because the PAM configuration failed. The server log has the details."
        }
    }
}

/// Checks a user name and password; the real one asks PAM, tests may substitute another where PAM cannot run.
public protocol PasswordAuthenticating: Sendable {
    /// Returns the account name PAM settled on (modules may canonicalise it).
    func authenticate(user: String, password: String, remoteHost: String?) async -> Result<String, LoginRefusal>
}

/// Authenticates through PAM: `pam_authenticate`, then `pam_acct_mgmt`, so expired and locked accounts are refused.
///
/// Each transaction runs on a thread of its own, never on the event loop or the cooperative pool. PAM's built-in
/// failure delay (pam_unix sleeps about 2 s) is replaced by a no-op: it would hold that thread, and delays for failed
/// attempts belong to Steward's throttling, which can apply them without holding any thread.
///
/// At most `concurrency` transactions run at once; the rest wait their turn without holding a thread. Password hashes
/// are made expensive on purpose (Debian's yescrypt uses about 16 MiB per check), so a burst of logins must not be
/// allowed to start fifty at once.
public struct PAMAuthenticator: PasswordAuthenticating {
    public let service: String
    let gate: ConcurrencyGate

    public init(service: String = "steward", concurrency: Int = max(2, ProcessInfo.processInfo.activeProcessorCount)) {
        self.service = service
        gate = ConcurrencyGate(limit: concurrency)
    }

    public func authenticate(user: String, password: String, remoteHost: String?) async -> Result<String, LoginRefusal> {
        let service = self.service
        await gate.acquire()
        let result = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: Self.transaction(service: service, user: user, password: password, remoteHost: remoteHost))
            }
        }
        await gate.release()
        return result
    }

    static func transaction(service: String, user: String, password: String, remoteHost: String?) -> Result<String, LoginRefusal> {
        guard !user.isEmpty, !user.contains("\0"), !password.contains("\0") else {
            return .failure(.invalidCredentials(detail: "empty user name or NUL byte in input"))
        }
        let conversation = Unmanaged.passRetained(PAMConversation(user: user, password: password))
        defer { conversation.release() }
        var exchange = pam_conv(conv: pamConverse, appdata_ptr: conversation.toOpaque())
        var handle: OpaquePointer?
        var status = pam_start(service, user, &exchange, &handle)
        guard status == PAM_SUCCESS, let handle else {
            return .failure(.serviceFailure(detail: "pam_start(\(service)) failed with status \(status)"))
        }
        defer { pam_end(handle, status) }
        pam_set_item(handle, PAM_FAIL_DELAY, unsafeBitCast(pamNoFailDelay, to: UnsafeRawPointer.self))
        if let remoteHost { pam_set_item(handle, PAM_RHOST, remoteHost) }

        status = pam_authenticate(handle, Int32(PAM_DISALLOW_NULL_AUTHTOK))
        if status != PAM_SUCCESS { return .failure(refusal(status, handle: handle)) }
        status = pam_acct_mgmt(handle, Int32(PAM_DISALLOW_NULL_AUTHTOK))
        if status != PAM_SUCCESS {
            return .failure(accountRefusal(status, handle: handle, messages: conversation.takeUnretainedValue().messages))
        }

        var item: UnsafeRawPointer?
        guard pam_get_item(handle, PAM_USER, &item) == PAM_SUCCESS, let item else { return .success(user) }
        return .success(String(cString: item.assumingMemoryBound(to: CChar.self)))
    }

    /// The password is already verified here, so no answer can be "wrong password", and PAM's messages may be shown.
    static func accountRefusal(_ status: Int32, handle: OpaquePointer, messages: [String]) -> LoginRefusal {
        switch status {
        case PAM_ACCT_EXPIRED: return .accountExpired
        case PAM_NEW_AUTHTOK_REQD, PAM_AUTHTOK_EXPIRED: return .passwordChangeRequired
        default: return .accountNotPermitted(detail: String(cString: pam_strerror(handle, status)), pamMessages: messages)
        }
    }

    static func refusal(_ status: Int32, handle: OpaquePointer) -> LoginRefusal {
        let detail = String(cString: pam_strerror(handle, status))
        switch status {
        case PAM_AUTH_ERR, PAM_USER_UNKNOWN, PAM_MAXTRIES, PAM_CRED_INSUFFICIENT, PAM_AUTHINFO_UNAVAIL:
            return .invalidCredentials(detail: detail)
        case PAM_ACCT_EXPIRED: return .accountExpired
        case PAM_NEW_AUTHTOK_REQD, PAM_AUTHTOK_EXPIRED: return .passwordChangeRequired
        case PAM_PERM_DENIED: return .accountNotPermitted(detail: detail, pamMessages: [])
        default: return .serviceFailure(detail: "\(detail) (PAM status \(status))")
        }
    }
}

/// What the conversation function answers with: the user name for echoed prompts, the password for hidden ones.
final class PAMConversation {
    let user: String
    let password: String
    /// Informational and error texts the modules sent, kept for the log.
    var messages: [String] = []

    init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}

/// PAM's conversation callback. Replies are allocated with malloc because PAM frees them.
private let pamConverse:
    @convention(c) (
        Int32, UnsafeMutablePointer<UnsafePointer<pam_message>?>?, UnsafeMutablePointer<UnsafeMutablePointer<pam_response>?>?,
        UnsafeMutableRawPointer?
    ) -> Int32 = { count, messages, responses, context in
        guard count > 0, count <= 32, let messages, let responses, let context else { return PAM_CONV_ERR }
        let conversation = Unmanaged<PAMConversation>.fromOpaque(context).takeUnretainedValue()
        guard let replies = calloc(Int(count), MemoryLayout<pam_response>.stride)?.assumingMemoryBound(to: pam_response.self) else {
            return PAM_BUF_ERR
        }
        for index in 0..<Int(count) {
            guard let message = messages[index]?.pointee else {
                releaseReplies(replies, count: index)
                return PAM_CONV_ERR
            }
            switch message.msg_style {
            case PAM_PROMPT_ECHO_OFF: replies[index].resp = strdup(conversation.password)
            case PAM_PROMPT_ECHO_ON: replies[index].resp = strdup(conversation.user)
            case PAM_ERROR_MSG, PAM_TEXT_INFO:
                if let text = message.msg { conversation.messages.append(String(cString: text)) }
            default:
                releaseReplies(replies, count: index)
                return PAM_CONV_ERR
            }
        }
        responses.pointee = replies
        return PAM_SUCCESS
    }

private func releaseReplies(_ replies: UnsafeMutablePointer<pam_response>, count: Int) {
    for index in 0..<count {
        if let text = replies[index].resp {
            memset(text, 0, strlen(text))
            free(text)
        }
    }
    free(replies)
}

/// Installed as PAM_FAIL_DELAY so no module sleeps on our thread.
private let pamNoFailDelay: @convention(c) (Int32, UInt32, UnsafeMutableRawPointer?) -> Void = { _, _, _ in }

/// A counting semaphore for async code: waiters queue in order and hold no thread.
actor ConcurrencyGate {
    let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    func acquire() async {
        if running < limit {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }

    var inUse: Int { running }
}
