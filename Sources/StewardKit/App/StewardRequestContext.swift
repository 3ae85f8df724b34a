import Hummingbird
import NIOCore

/// Per-request state shared by every route.
public struct StewardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer's IP address as the socket saw it (proxy headers are not trusted here).
    public let remoteAddress: String?
    /// The client's address: the peer's, or from X-Forwarded-For when the peer is a configured proxy.
    public var clientAddress: String?
    /// Set by the observation middleware; shown on error pages so a user can quote it.
    public var requestID: String = ""
    /// Set by the access middleware when a session or API token is presented.
    public var identity: Identity?

    /// Who is acting, for audit rows written by this request.
    public var actor: AuditActor {
        AuditActor(actor: identity?.user ?? "anonymous", source: clientAddress, requestID: requestID)
    }

    /// Whether the caller holds admin rights (for actions whose permission depends on what they touch).
    public var isAdmin: Bool { identity?.permissions.contains(.admin) ?? false }

    /// The connection, to tell whether the client is still there before doing work for it.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
        remoteAddress = source.channel.remoteAddress?.ipAddress
        clientAddress = remoteAddress
    }
}
