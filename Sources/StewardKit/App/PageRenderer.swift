import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// One entry in the main navigation; only areas that are built get one, so there are no dead links.
public struct NavigationItem: Sendable {
    public let key: String
    public let title: String
    public let href: String
    /// Shown only to those who may open it.
    public var permission: Permission = .view
}

/// A one-time message shown on the next page, carried in a signed cookie across a POST-redirect-GET.
public struct Flash: Sendable, Codable, Equatable {
    public enum Level: String, Sendable, Codable { case success, info, warning, error }
    public var level: Level
    public var text: String
    public init(_ level: Level, _ text: String) {
        self.level = level
        self.text = text
    }
}

/// Renders Mustache templates inside the layout, with navigation, flash messages and HTML escaping by default.
public struct PageRenderer: Sendable {
    static let flashCookie = "steward_flash"
    let library: MustacheLibrary
    let navigation: [NavigationItem]
    let secureCookies: Bool
    let signingKey: [UInt8]
    let hostName = ProcessInfo.processInfo.hostName
    /// Figures shown beside navigation entries by key (the number of firing alerts beside Alerts); 0 shows nothing.
    public var navigationCounts: @Sendable () -> [String: Int] = { [:] }

    public init(templatesDirectory: String, navigation: [NavigationItem], secureCookies: Bool, signingKey: SymmetricKey) async throws {
        // Registered before parsing: the parser resolves the layout's CONTENT_TYPE pragma by name.
        MustacheContentTypes.register(StewardHTMLEscaping(), named: StewardHTMLEscaping.name)
        library = try await MustacheLibrary(directory: templatesDirectory)
        self.navigation = navigation
        self.secureCookies = secureCookies
        self.signingKey = signingKey.withUnsafeBytes { Array($0) }
    }

    /// Render `template` (a path under Templates/ without .mustache) as a full page.
    public func page(
        _ template: String, title: String, section: String, data: [String: Any] = [:], request: Request,
        context requestContext: StewardRequestContext,
        status: HTTPResponse.Status = .ok
    ) -> Response {
        var context = data
        context["page_title"] = title
        let identity = requestContext.identity.flatMap { $0.secondFactorPending ? nil : $0 }
        let granted = identity?.permissions ?? []
        let counts = identity == nil ? [:] : navigationCounts()
        context["nav"] = navigation.filter { granted.contains($0.permission) }.map {
            ViewNode([
                "title": $0.title, "href": $0.href, "current": $0.key == section,
                "nav_count": counts[$0.key].flatMap { $0 > 0 ? $0 : nil } as Any?, "nav_key": $0.key,
            ])
        }
        if let identity {
            context["me"] = ViewNode([
                "user": identity.user, "roles": identity.roles.map(\.rawValue).sorted().joined(separator: ", "),
                "account_current": section == "account",
            ])
        }
        if let token = requestContext.identity?.csrfToken { context["csrf_token"] = token }
        // The version and the host name tell an attacker which exploit to try and where they are: signed-in users only.
        if let identity, !identity.secondFactorPending {
            context["footer"] = ViewNode(["version": StewardVersion.current, "host_name": hostName])
        }
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
        if let flash = readFlash(request) {
            context["flash"] = ViewNode(["level": flash.level.rawValue, "text": flash.text])
            headers.append(HTTPField(name: .setCookie, value: cookie(Self.flashCookie, value: "", maxAge: 0)))
        }
        guard let html = library.render(ViewNode(context), withTemplate: template) else {
            return Response(
                status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "missing template \(template)")))
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func errorPage(status: HTTPResponse.Status, detail: String, request: Request, context: StewardRequestContext) -> Response {
        page(
            "errors/error", title: "\(status.code) \(status.reasonPhrase)", section: "",
            data: [
                "status": status.code, "reason": status.reasonPhrase, "detail": detail, "request_id": context.requestID,
                "not_found": status == .notFound,
            ],
            request: request, context: context, status: status)
    }

    /// 303 to `location`, with an optional flash message for the page it lands on.
    public func redirect(to location: String, flash: Flash? = nil) -> Response {
        var headers: HTTPFields = [.location: location]
        if let flash, let json = try? JSONEncoder().encode(flash) {
            let payload = json.base64URLEncoded()
            headers.append(HTTPField(name: .setCookie, value: cookie(Self.flashCookie, value: payload + "." + sign(payload), maxAge: 60)))
        }
        return Response(status: .seeOther, headers: headers)
    }

    func readFlash(_ request: Request) -> Flash? {
        guard let raw = request.cookies[Self.flashCookie]?.value, let dot = raw.lastIndex(of: ".") else { return nil }
        let payload = String(raw[..<dot])
        guard sign(payload) == raw[raw.index(after: dot)...], let data = Data(base64URLEncoded: payload) else { return nil }
        return try? JSONDecoder().decode(Flash.self, from: data)
    }

    func sign(_ payload: String) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: Data(("flash:" + payload).utf8), using: SymmetricKey(data: signingKey))).base64URLEncoded()
    }

    func cookie(_ name: String, value: String, maxAge: Int) -> String {
        "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secureCookies ? "; Secure" : "")
    }
}

extension Data {
    func base64URLEncoded() -> String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(
            of: "=", with: "")
    }

    init?(base64URLEncoded text: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        self.init(base64Encoded: base64)
    }
}

/// An application/x-www-form-urlencoded body, decoded the way browsers encode it.
public struct FormBody: Sendable {
    public let values: [String: String]

    public init(_ text: String) {
        var values: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (part: Substring) in String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            guard let key = parts.first.map(decode), !key.isEmpty else { continue }
            values[key] = parts.count > 1 ? decode(parts[1]) : ""
        }
        self.values = values
    }

    public static func read(_ request: Request, context: some RequestContext) async throws -> FormBody {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        return FormBody(String(buffer: buffer))
    }

    /// The request's query string, decoded the same way: `+` is a space, as browsers' GET forms, Python's requests
    /// and `curl -G --data-urlencode` send it (Hummingbird's `uri.queryParameters` decodes `%XX` only).
    public init(query request: Request) { self.init(request.uri.query ?? "") }

    public subscript(_ key: String) -> String? { values[key] }
}
