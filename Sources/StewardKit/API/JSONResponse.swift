import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// JSON bodies for the API: snake_case keys written out by each resource, sorted for stable output.
enum JSONResponse {
    /// A request body that must be one JSON object, field by field; `what` says what it should hold, in the 400 otherwise.
    static func fields(from request: Request, what: String, limit: Int = 1 << 20) async throws -> [String: JSONValue] {
        let buffer = try await request.body.collect(upTo: limit)
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(buffer.readableBytesView)) else {
            throw Problem.badRequest("the body must be a JSON object of \(what)")
        }
        return object
    }

    /// A decoding failure in words (field and what it must be), never Swift's debug text (SECURITY.md item 9).
    static func problem(_ error: DecodingError, prefix: String = "") -> Problem {
        switch error {
        case .typeMismatch(let expected, let context) where !context.codingPath.isEmpty:
            return Problem.invalid([fieldName(context.codingPath): "must be \(typeName(expected))"])
        case .valueNotFound(let expected, let context) where !context.codingPath.isEmpty:
            return Problem.invalid([fieldName(context.codingPath): "must be \(typeName(expected)), not null"])
        case .keyNotFound(let key, let context):
            return Problem.invalid([fieldName(context.codingPath + [key]): "is required"])
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            return Problem.invalid([fieldName(context.codingPath): "has a value that is not accepted here"])
        default:
            return Problem.badRequest(prefix + "the body is not valid JSON, or not a JSON object")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type: "a whole number"
        case is Double.Type, is Float.Type: "a number"
        case is [String].Type: "a list of strings"
        case is [Any].Type: "a list"
        default: String(describing: type).hasPrefix("Array") ? "a list" : "an object of the documented shape"
        }
    }

    static func fieldName(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map(String.init) ?? $0.stringValue.snakeCased }.joined(separator: ".")
    }
}

extension String {
    var snakeCased: String {
        var result = ""
        for character in self {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}
