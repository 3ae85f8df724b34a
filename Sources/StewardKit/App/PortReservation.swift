import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The listening address, claimed before the slow part of start-up (migrations, the self-backup's restic init,
/// the config repo), so a port in use is one clear error in the first milliseconds rather than after all of it.
/// The socket is bound with SO_REUSEADDR and never listens, which on Linux lets the HTTP server's own bind (also
/// SO_REUSEADDR) succeed; it is closed once the server listens.
public final class PortReservation: @unchecked Sendable {
    private var descriptor: Int32

    public struct InUse: Error, CustomStringConvertible {
        public let bind: String
        public let port: Int
        public let reason: String
        public var description: String {
            "cannot listen on \(bind) port \(port): \(reason); stop the program using it (ss -ltnp 'sport = :\(port)' shows which) or choose another port with --port"
        }
    }

    public init(bind: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(bind, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw InUse(bind: bind, port: port, reason: "the address does not resolve (\(String(cString: gai_strerror(status))))")
        }
        defer { freeaddrinfo(list) }
        let socketDescriptor = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socketDescriptor >= 0 else { throw InUse(bind: bind, port: port, reason: String(cString: strerror(errno))) }
        var one: Int32 = 1
        setsockopt(socketDescriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(socketDescriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let number = errno
            close(socketDescriptor)
            let reason = number == EADDRINUSE ? "another program is listening there" : String(cString: strerror(number))
            throw InUse(bind: bind, port: port, reason: reason)
        }
        descriptor = socketDescriptor
    }

    /// Hand the address over: called once the HTTP server listens.
    public func release() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    deinit { release() }
}
