import Foundation
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

/// An IP address or CIDR range (IPv4 or IPv6), compared as 16 bytes with IPv4 mapped into ::ffff:0:0/96.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    let network: [UInt8]
    let prefixLength: Int
    public let description: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let address = Self.bytes(first) else { return nil }
        let isV4 = !first.contains(":")
        var length = 128
        if parts.count == 2 {
            guard let given = Int(parts[1]), given >= 0, given <= (isV4 ? 32 : 128) else { return nil }
            length = isV4 ? given + 96 : given
        }
        network = Self.masked(address, length)
        prefixLength = length
        description = text
    }

    public func contains(_ address: String) -> Bool {
        guard let bytes = Self.bytes(address) else { return false }
        return Self.masked(bytes, prefixLength) == network
    }

    static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let keep = max(0, min(8, length - index * 8))
            return keep == 8 ? byte : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
    }

    /// 16 bytes for an IPv4 or IPv6 literal, nil for anything else.
    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + withUnsafeBytes(of: &v4.s_addr) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}

/// Believes X-Forwarded-For only when the connection comes from a configured proxy; the client is then the
/// right-most address in the header that is not itself a trusted proxy. Everyone else's header is ignored.
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    let trustedProxies: [AddressRange]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !trustedProxies.isEmpty, let peer = context.remoteAddress, isTrusted(peer) else { return try await next(request, context) }
        let forwarded = request.headers[values: .init("X-Forwarded-For")!].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        var context = context
        for hop in forwarded.reversed() {
            guard AddressRange.bytes(hop) != nil else { break }
            context.clientAddress = hop
            if !isTrusted(hop) { break }
        }
        return try await next(request, context)
    }

    func isTrusted(_ address: String) -> Bool { trustedProxies.contains { $0.contains(address) } }
}
