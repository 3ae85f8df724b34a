import Hummingbird
import NIOCore

/// Per-request state shared by every route.
public struct StewardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer's IP address as the socket saw it (proxy headers are not trusted here).
    public let remoteAddress: String?
    /// Set by the observation middleware; shown on error pages so a user can quote it.
    public var requestID: String = ""

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }
}
