import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// One field of a typed request body: left out, sent as null, given, or given with the wrong type. Decoding never
/// stops at a wrong field, so a reply names every wrong field at once, as the hand-written checks did.
enum Patch<Value: Decodable & Sendable>: Sendable {
    case absent
    case null
    case value(Value)
    case invalid(field: String, message: String)

    /// The value when one was given.
    var given: Value? {
        if case .value(let value) = self { value } else { nil }
    }

    /// Hand a given value to `write`; null is a wrong field here (for values that cannot be cleared).
    func assign(_ field: String, _ errors: inout [String: String], _ write: (Value) -> Void) {
        switch self {
        case .value(let value): write(value)
        case .null: errors[field] = "must not be null"
        case .absent, .invalid: break
        }
    }

    /// A value that is given, or nil when left out or null (for fields where null means "none").
    var orNil: Value?? {
        switch self {
        case .absent, .invalid: nil
        case .null: .some(nil)
        case .value(let value): .some(value)
        }
    }
}

/// Enumerations a body may name by their raw value; a wrong value is answered with the accepted ones.
protocol APIChoice: CaseIterable, RawRepresentable, Decodable, Sendable where RawValue == String {}

extension APIChoice {
    static var choiceText: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
}

extension KeyedDecodingContainer {
    /// Every `Patch` property decodes through here: a missing key is `.absent` and a wrong type is recorded, not thrown.
    func decode<Value>(_ type: Patch<Value>.Type, forKey key: Key) throws -> Patch<Value> {
        guard contains(key) else { return .absent }
        if (try? decodeNil(forKey: key)) == true { return .null }
        do {
            return .value(try decode(Value.self, forKey: key))
        } catch {
            return .invalid(field: key.stringValue, message: APIInputDecoding.message(for: Value.self, error))
        }
    }
}

/// A typed request body with a closed set of fields (`CodingKeys` are its snake_case names).
protocol APIInput: Decodable, Sendable {
    associatedtype CodingKeys: CodingKey & CaseIterable & RawRepresentable where CodingKeys.RawValue == String
}

enum APIInputDecoding {
    /// What a field must be, in words.
    static func message<Value>(for type: Value.Type, _ error: any Error) -> String {
        if let choice = type as? any APIChoice.Type { return choice.choiceText }
        switch type {
        case is String.Type: return "must be a string"
        case is Bool.Type: return "must be true or false"
        case is Int.Type, is Int64.Type: return "must be an integer"
        case is Double.Type: return "must be a number or null"
        case is [String].Type: return "must be a list of names"
        default:
            if case .dataCorrupted(let context) = error as? DecodingError, let underlying = context.underlyingError as? Problem {
                return underlying.detail
            }
            return "must be " + JSONResponse.typeName(type)
        }
    }

    /// The fields of an input that were sent with the wrong type, by name.
    static func wrongFields(_ input: some APIInput) -> [String: String] {
        var errors: [String: String] = [:]
        for child in Mirror(reflecting: input).children {
            if let field = child.value as? any WrongField, let (name, message) = field.wrong { errors[name] = message }
        }
        return errors
    }

    /// Decode a body into an input: not an object → 400; unknown fields and wrong types → one 422 naming each.
    static func decode<Input: APIInput>(_ type: Input.Type, from data: Data) throws -> Input {
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: data) else {
            throw Problem.badRequest("the body must be a JSON object of fields")
        }
        let known = Input.CodingKeys.allCases.map(\.rawValue)
        var errors: [String: String] = [:]
        for key in object.keys where !known.contains(key) { errors[key] = "unknown field; accepted: " + known.sorted().joined(separator: ", ") }
        let input: Input
        do {
            input = try JSONDecoder().decode(Input.self, from: data)
        } catch let error as DecodingError {
            throw JSONResponse.problem(error)
        } catch {
            throw Problem.badRequest("the body must be a JSON object of fields")
        }
        errors.merge(wrongFields(input)) { a, _ in a }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return input
    }

    static func decode<Input: APIInput>(_ type: Input.Type, from request: Request, limit: Int = 1 << 20) async throws -> Input {
        let buffer = try await request.body.collect(upTo: limit)
        return try decode(type, from: Data(buffer.readableBytesView))
    }
}

/// A `Patch` seen through `Mirror`, to collect wrong fields without knowing their value types.
protocol WrongField { var wrong: (String, String)? { get } }

extension Patch: WrongField {
    var wrong: (String, String)? {
        if case .invalid(let field, let message) = self { (field, message) } else { nil }
    }
}

extension Patch: Decodable {
    /// Only reached for a value inside a list or at the top; properties go through the keyed overload above.
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        self = container.decodeNil() ? .null : .value(try container.decode(Value.self))
    }
}

/// Query parameters read with the same rules everywhere: a wrong value is named with what is accepted, all at once.
struct QueryInput {
    let query: [String: String]
    private(set) var errors: [String: String] = [:]

    init(_ request: Request) {
        var values: [String: String] = [:]
        // As a form writes them: `+` is a space (a GET form's "Failed password" arrives as Failed+password).
        for (key, value) in FormQuery.decode(request.uri.query) { values[key] = values[key] ?? value }
        query = values
    }

    /// A whole number in `range`, or `fallback` when left out.
    mutating func integer(_ name: String, in range: ClosedRange<Int>, default fallback: Int) -> Int {
        guard let text = query[name] else { return fallback }
        if let value = Int(text), range.contains(value) { return value }
        errors[name] = "must be an integer from \(range.lowerBound) to \(range.upperBound)"
        return fallback
    }

    /// true/false (or 1/0), or `fallback` when left out.
    mutating func flag(_ name: String, default fallback: Bool) -> Bool {
        guard let text = query[name] else { return fallback }
        switch text {
        case "true", "1": return true
        case "false", "0": return false
        default:
            errors[name] = "must be true or false"
            return fallback
        }
    }

    /// The cursor of a previous page's next link (a positive id), or nil when left out.
    mutating func cursor(_ name: String = "cursor") -> Int64? {
        guard let text = query[name] else { return nil }
        if let value = Int64(text), value > 0 { return value }
        errors[name] = "must be the cursor from a previous page's next link"
        return nil
    }

    /// Throw the collected errors as one 422.
    func check() throws {
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }
}

extension APIJSON {
    /// An Encodable body as a JSON reply.
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encode(value))))
    }
}
