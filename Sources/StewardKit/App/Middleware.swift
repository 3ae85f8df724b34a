import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// One structured log line and one metrics sample per request.
struct RequestObservationMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    let metrics: HTTPMetrics
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.requestID = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let start = ContinuousClock.now
        var status = 500
        defer {
            let elapsed = ContinuousClock.now - start
            let route = context.endpointPath ?? "unmatched"
            metrics.record(method: request.method.rawValue, route: route, status: status, duration: elapsed)
            let (seconds, attoseconds) = elapsed.components
            // Hundredths of a millisecond, formatted by hand: String(format:) is slow on Linux and this runs per request.
            let hundredths = seconds * 100_000 + attoseconds / 10_000_000_000_000
            let fraction = hundredths % 100
            let milliseconds = "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + String(fraction)
            logger.info(
                "request",
                metadata: [
                    "method": .string(request.method.rawValue), "path": .string(request.uri.path), "route": .string(route),
                    "status": .stringConvertible(status), "duration_ms": .string(milliseconds),
                    "remote": .string(context.remoteAddress ?? "-"), "request_id": .string(context.requestID),
                ])
        }
        do {
            let response = try await next(request, context)
            status = response.status.code
            return response
        } catch let error as any HTTPResponseError {
            status = error.status.code
            throw error
        }
    }
}

/// Headers that hold on every response: strict CSP (no inline script), no framing, no sniffing, HSTS under TLS.
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    let tls: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        for field in Self.fields(tls: tls) { response.headers[field.name] = field.value }
        return response
    }

    static func fields(tls: Bool) -> HTTPFields {
        var headers: HTTPFields = [.contentSecurityPolicy: contentSecurityPolicy, .xContentTypeOptions: "nosniff"]
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        if tls { headers[.strictTransportSecurity] = "max-age=31536000" }
        return headers
    }
}

/// Refuses state-changing requests that a browser sent from another origin (SECURITY.md class 4, first line). The
/// Origin is compared with this server's own origins, never with the request's Host (class 17).
struct OriginCheckMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    let allowlist: HostAllowlist

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch request.method {
        case .get, .head, .options: return try await next(request, context)
        default: break
        }
        if let origin = request.headers[.origin] {
            guard allowlist.origins.contains(origin.lowercased()) else {
                throw HTTPError(.forbidden, message: "cross-origin request refused: Origin \(origin) is not this server")
            }
        } else if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site != "same-origin", site != "none" {
            throw HTTPError(.forbidden, message: "cross-site request refused (Sec-Fetch-Site: \(site))")
        }
        return try await next(request, context)
    }
}

/// Turns errors into friendly HTML pages, or problem+json under /api.
struct ErrorPageMiddleware: RouterMiddleware {
    typealias Context = StewardRequestContext
    let pages: PageRenderer
    let disk: DiskSpace
    let logger: Logger
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return problem.response()
        } catch {
            let status: HTTPResponse.Status
            var detail: String
            if DiskSpace.isFull(error) {
                // Reads still work; this write did not happen and nothing was lost. Not a bug: say what to do.
                disk.recordFull()
                status = .init(code: 507, reasonPhrase: "Insufficient Storage")
                detail = disk.fullMessage()
                logger.error("a write failed: the disk is full", metadata: ["path": "\(request.uri.path)", "request_id": "\(context.requestID)"])
            } else if let httpError = error as? HTTPError {
                status = httpError.status
                detail = httpError.body ?? (status == .notFound ? "there is no page at \(request.uri.path)" : status.reasonPhrase)
                // A path that exists, asked with a method it does not answer: 405 and the methods it does (RFC 9110).
                let allowed = status == .notFound && httpError.body == nil ? routes.methods(at: request.uri.path) : []
                if !allowed.isEmpty && !allowed.contains(request.method.rawValue) {
                    let allow = allowed.joined(separator: ", ")
                    return Problem(status: .methodNotAllowed, detail: "\(request.uri.path) answers \(allow), not \(request.method.rawValue)")
                        .response(headers: [.allow: allow])
                }
            } else if let responseError = error as? any HTTPResponseError {
                status = responseError.status
                detail = status.reasonPhrase
            } else {
                status = .internalServerError
                detail = "an unexpected error occurred; it has been logged with request id \(context.requestID)"
                logger.error("unhandled error", metadata: ["error": "\(error)", "path": "\(request.uri.path)", "request_id": "\(context.requestID)"])
            }
            if request.uri.path.hasPrefix("/api/") || request.uri.path == "/api" {
                return Problem(status: status, detail: detail).response()
            }
            return pages.errorPage(status: status, detail: detail, request: request, context: context)
        }
    }
}
