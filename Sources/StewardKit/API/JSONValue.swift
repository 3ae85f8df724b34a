import Foundation

/// Any JSON value, for the parts of a Codable resource that are free-form (a job's parameters, a host's variables).
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The value as Foundation's JSON objects hold it (for the audit log's JSON text).
    var plain: Any {
        switch self {
        case .null: NSNull()
        case .bool(let value): value
        case .integer(let value): value
        case .number(let value): value
        case .string(let value): value
        case .array(let value): value.map(\.plain)
        case .object(let value): value.mapValues(\.plain)
        }
    }

    /// Stored JSON text; anything that does not parse reads as an empty object, as the API always showed it.
    public init(text: String) {
        self = (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .object([:])
    }

    /// A value read from YAML or JSONSerialization (dictionaries, arrays, strings, numbers, booleans, NSNull).
    public init(any value: Any?) {
        switch value {
        case nil, is NSNull: self = .null
        // Only a real Bool: on Linux a number in `Any` can also cast to Bool.
        case let value? where type(of: value) == Bool.self: self = .bool(value as? Bool ?? false)
        // JSONSerialization's booleans are NSNumber, which also casts to Int: ask it what it holds first.
        case let value as NSNumber where String(cString: value.objCType) == "c":
            self = .bool(value.boolValue)
        case let value as String: self = .string(value)
        case let value as Int: self = .integer(Int64(value))
        case let value as Int64: self = .integer(value)
        case let value as Double: self = .number(value)
        case let value as NSNumber:
            self =
                String(cString: value.objCType) == "c"
                ? .bool(value.boolValue)
                : value.doubleValue.rounded() == value.doubleValue && abs(value.doubleValue) < 9e15
                    ? .integer(value.int64Value) : .number(value.doubleValue)
        case let value as [Any]: self = .array(value.map { JSONValue(any: $0) })
        case let value as [String: Any]: self = .object(value.mapValues { JSONValue(any: $0) })
        default: self = .string(String(describing: value!))
        }
    }
}

/// The API's JSON encoder: keys sorted (equal resources are equal bytes), slashes as they are, and a resource's
/// property names written in snake_case (`hostId` is "host_id", `metricsURL` is "metrics_url"), so a reply type needs
/// no hand-written CodingKeys. Dictionary keys (labels, variables) are data and stay exactly as they are.
enum APIJSON {
    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return try encoder.encode(value)
    }

    /// One line of JSON (an NDJSON record or an SSE event's data): the encoder escapes line breaks inside strings.
    static func string(_ value: some Encodable) throws -> String { String(decoding: try encode(value), as: UTF8.self) }
}

/// An optional value that the API writes as null rather than leaving out (synthesized Encodable drops nil optionals).
struct Nullable<Wrapped: Encodable & Sendable>: Encodable, Sendable {
    var value: Wrapped?
    init(_ value: Wrapped?) { self.value = value }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
}

extension Nullable: Decodable where Wrapped: Decodable {
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        value = container.decodeNil() ? nil : try container.decode(Wrapped.self)
    }
}

/// Literals, so a JSON document (the OpenAPI schemas) is written as Swift literals and encoded with Codable.
extension JSONValue: ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral
{
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements) { first, _ in first })
    }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .number(value) }

    /// A scalar as text (a list item a client sent as a number); structures and null are empty.
    var text: String {
        switch self {
        case .string(let value): value
        case .integer(let value): String(value)
        case .number(let value): String(value)
        case .bool(let value): String(value)
        case .null, .array, .object: ""
        }
    }

    /// A list of strings.
    public init(_ strings: [String]) { self = .array(strings.map(JSONValue.string)) }

    /// The raw values of an enumeration, for a schema's `enum`.
    static func choices<T: CaseIterable & RawRepresentable>(_ type: T.Type) -> JSONValue where T.RawValue == String {
        JSONValue(type.allCases.map(\.rawValue))
    }

    /// An object's member; setting one on a value that is not an object makes it one.
    subscript(key: String) -> JSONValue? {
        get {
            guard case .object(let members) = self else { return nil }
            return members[key]
        }
        set {
            var members: [String: JSONValue] = [:]
            if case .object(let existing) = self { members = existing }
            members[key] = newValue
            self = .object(members)
        }
    }
}
