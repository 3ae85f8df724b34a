import Foundation
import HTTPTypes
import Hummingbird

/// An RFC 9457 problem document; thrown by API handlers and rendered as application/problem+json.
public struct Problem: Error, Codable, Sendable, Equatable {
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String
    /// Field name -> what is wrong and what is allowed, for validation failures.
    public var errors: [String: String]?

    public init(status: HTTPResponse.Status, detail: String, errors: [String: String]? = nil, type: String = "about:blank") {
        self.type = type
        self.title = status.reasonPhrase
        self.status = status.code
        self.detail = detail
        self.errors = errors
    }

    public static func notFound(_ what: String) -> Problem { Problem(status: .notFound, detail: "\(what) does not exist") }
    public static func invalid(_ errors: [String: String]) -> Problem {
        Problem(
            status: .unprocessableContent,
            detail: "the request has invalid fields: " + errors.keys.sorted().map { "\($0) (\(errors[$0]!))" }.joined(separator: "; "),
            errors: errors)
    }
    public static func badRequest(_ detail: String) -> Problem { Problem(status: .badRequest, detail: detail) }

    func response(headers extra: HTTPFields = [:]) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = (try? encoder.encode(self)) ?? Data("{}".utf8)
        var headers: HTTPFields = [.contentType: "application/problem+json", .cacheControl: "no-store"]
        headers.append(contentsOf: extra)
        return Response(
            status: HTTPResponse.Status(code: status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
