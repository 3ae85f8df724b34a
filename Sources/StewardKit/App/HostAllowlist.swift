import Foundation
import HTTPTypes
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

/// The names this server answers for (SECURITY.md class 17): external_url's host, the bind address, localhost, the
/// machine's own names and addresses, and `allowed_hosts`. A request addressed to any other name is refused before
/// any page, which defeats DNS rebinding; the Origin check compares with these, never with the request's Host.
public struct HostAllowlist: Sendable, Equatable {
    public let names: Set<String>
    /// Origins a browser form of this server may carry (scheme://host[:port]).
    public let origins: Set<String>

    public init(configuration: StewardConfiguration, machineNames: [String] = HostAllowlist.machineNames()) {
        var names: Set<String> = ["localhost", "127.0.0.1", "::1"]
        names.formUnion(machineNames.map { $0.lowercased() })
        if !["0.0.0.0", "::"].contains(configuration.bind) { names.insert(configuration.bind.lowercased()) }
        names.formUnion(configuration.allowedHosts)
        let external = configuration.externalURL.flatMap { URLComponents(string: $0) }
        if let host = external?.host?.lowercased() { names.insert(Self.unbracketed(host)) }
        self.names = names
        let scheme = configuration.tls ? "https" : "http"
        var origins: Set<String> = []
        for name in names {
            let host = name.contains(":") ? "[\(name)]" : name
            origins.insert("\(scheme)://\(host):\(configuration.port)")
            if (scheme == "https" && configuration.port == 443) || (scheme == "http" && configuration.port == 80) {
                origins.insert("\(scheme)://\(host)")
            }
        }
        if let external, let externalScheme = external.scheme?.lowercased(), let host = external.host?.lowercased() {
            origins.insert("\(externalScheme)://\(host)" + (external.port.map { ":\($0)" } ?? ""))
        }
        self.origins = origins
    }

    /// Whether a Host header (name or address, with an optional port) names this server.
    public func allows(authority: String) -> Bool {
        names.contains(Self.hostPart(of: authority))
    }

    /// The host of an authority, lowercased, without port or IPv6 brackets.
    static func hostPart(of authority: String) -> String {
        let lowered = authority.lowercased()
        if lowered.hasPrefix("["), let close = lowered.firstIndex(of: "]") {
            return String(lowered[lowered.index(after: lowered.startIndex)..<close])
        }
        if let colon = lowered.lastIndex(of: ":"), lowered.firstIndex(of: ":") == colon { return String(lowered[..<colon]) }
        return lowered.hasSuffix(".") ? String(lowered.dropLast()) : lowered
    }

    static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// The machine's host name, its fully qualified name when resolvable, and every address of its interfaces.
    public static func machineNames() -> [String] {
        var names: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        if gethostname(&buffer, buffer.count) == 0 {
            let name = String(cString: buffer)
            names.append(name)
            var hints = addrinfo()
            hints.ai_flags = AI_CANONNAME
            var result: UnsafeMutablePointer<addrinfo>?
            if getaddrinfo(name, nil, &hints, &result) == 0, let result {
                if let canonical = result.pointee.ai_canonname { names.append(String(cString: canonical)) }
                freeaddrinfo(result)
            }
        }
        var interfaces: UnsafeMutablePointer<ifaddrs>?
        if getifaddrs(&interfaces) == 0 {
            var cursor = interfaces
            while let entry = cursor {
                if let address = entry.pointee.ifa_addr, [sa_family_t(AF_INET), sa_family_t(AF_INET6)].contains(address.pointee.sa_family) {
                    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                    let length = address.pointee.sa_family == sa_family_t(AF_INET) ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size
                    if getnameinfo(address, socklen_t(length), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                        // Link-local IPv6 addresses carry a zone (%eth0) that a Host header never does.
                        names.append(String(String(cString: host).split(separator: "%").first ?? ""))
                    }
                }
                cursor = entry.pointee.ifa_next
            }
            freeifaddrs(interfaces)
        }
        return names.filter { !$0.isEmpty }
    }
}

/// Refuses requests addressed to a host name that is not this server's, before any page or session lookup.
struct HostCheckMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    let allowlist: HostAllowlist

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // HTTP/1.0 clients may send no Host; a rebinding browser always sends one.
        if let authority = request.head.authority, !allowlist.allows(authority: authority) {
            let host = String(HostAllowlist.hostPart(of: authority).prefix(100))
            return Response(
                status: .misdirectedRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string:
                            "This Steward server does not answer for the host name \"\(host)\". Use its configured address, or add the name to the allowed_hosts setting.\n"
                    )))
        }
        return try await next(request, context)
    }
}
