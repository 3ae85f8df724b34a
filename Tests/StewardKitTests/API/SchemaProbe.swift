import Foundation

@testable import StewardKit

/// The JSON shape a Swift type has on the wire, read from the type itself: the probe is a `Decoder` that answers
/// every question a type's `init(from:)` asks with a placeholder and writes down what was asked (which keys, of what
/// type, whether a key may be absent). Nothing is sampled, so a field is seen whether or not any reply ever fills it.
indirect enum WireShape: Equatable, CustomStringConvertible {
    case string, integer, number, boolean, any
    case choice([String])
    case array(WireShape)
    case map(WireShape)
    case object([String: WireField])
    case nullable(WireShape)

    var description: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .number: "number"
        case .boolean: "boolean"
        case .any: "any JSON"
        case .choice(let values): "one of \(values.sorted())"
        case .array(let item): "array of \(item)"
        case .map(let value): "map to \(value)"
        case .object(let fields): "object with \(fields.keys.sorted())"
        case .nullable(let inner): "\(inner) or null"
        }
    }
}

struct WireField: Equatable {
    var shape: WireShape
    /// Read with `decode` (always written), not `decodeIfPresent` (left out when nil).
    var required: Bool
}

/// How the probe names a Swift property on the wire.
enum WireKeys {
    /// As the API's encoder writes replies: snake_case from the property name (`hostId` is `host_id`).
    case snakeCase
    /// As request bodies are read: each `CodingKeys` raw value as it is.
    case asDeclared
}

/// A type whose wire shape the probe cannot find by decoding it (a wrapper that decodes its value through a single
/// value container); it says its shape itself.
protocol WireShaped {
    static func wireShape(_ probe: SchemaProbe) throws -> (value: Any, shape: WireShape)
}

extension Nullable: WireShaped where Wrapped: Decodable {
    static func wireShape(_ probe: SchemaProbe) throws -> (value: Any, shape: WireShape) {
        let (value, shape) = try probe.shape(of: Wrapped.self)
        return (Nullable(value as? Wrapped), .nullable(shape))
    }
}

extension Optional: WireShaped where Wrapped: Decodable {
    static func wireShape(_ probe: SchemaProbe) throws -> (value: Any, shape: WireShape) {
        let (value, shape) = try probe.shape(of: Wrapped.self)
        let wrapped: Wrapped? = value as? Wrapped
        return (wrapped as Any, .nullable(shape))
    }
}

extension Dictionary: WireShaped where Key == String, Value: Decodable {
    static func wireShape(_ probe: SchemaProbe) throws -> (value: Any, shape: WireShape) {
        let (_, shape) = try probe.shape(of: Value.self)
        return ([String: Value](), .map(shape))
    }
}

extension Array: WireShaped where Element: Decodable {
    static func wireShape(_ probe: SchemaProbe) throws -> (value: Any, shape: WireShape) {
        let (_, shape) = try probe.shape(of: Element.self)
        return ([Element](), .array(shape))
    }
}

extension JSONValue: WireShaped {
    static func wireShape(_ probe: SchemaProbe) throws -> (value: Any, shape: WireShape) { (JSONValue.null, .any) }
}

extension Date: WireShaped {
    static func wireShape(_ probe: SchemaProbe) throws -> (value: Any, shape: WireShape) { (Date(timeIntervalSince1970: 0), .string) }
}

struct SchemaProbe {
    let keys: WireKeys
    /// Types on the way down, so a type that contains itself is reported instead of looping.
    var visiting: [String] = []

    struct Unprobeable: Error, CustomStringConvertible {
        let description: String
    }

    func shape<T: Decodable>(of type: T.Type) throws -> (value: T, shape: WireShape) {
        let (value, shape) = try anyShape(of: type)
        guard let typed = value as? T else { throw Unprobeable(description: "\(T.self): the probe made a value of another type") }
        return (typed, shape)
    }

    private func anyShape<T: Decodable>(of type: T.Type) throws -> (value: Any, shape: WireShape) {
        switch type {
        case is String.Type: return ("", .string)
        case is Bool.Type: return (false, .boolean)
        case is Int.Type: return (0, .integer)
        case is Int64.Type: return (Int64(0), .integer)
        case is Int32.Type: return (Int32(0), .integer)
        case is UInt.Type: return (UInt(0), .integer)
        case is UInt64.Type: return (UInt64(0), .integer)
        case is Double.Type: return (0.0, .number)
        case is Float.Type: return (Float(0), .number)
        default: break
        }
        if let shaped = type as? any WireShaped.Type { return try shaped.wireShape(self) }
        if let choice = type as? any (CaseIterable & RawRepresentable).Type, let values = Self.choices(choice) {
            return values
        }
        let name = String(reflecting: type)
        guard !visiting.contains(name) else { throw Unprobeable(description: "\(name) contains itself") }
        var inner = self
        inner.visiting.append(name)
        let decoder = ProbeDecoder(probe: inner)
        let value = try T(from: decoder)
        return (value, decoder.recorded ?? .any)
    }

    private static func choices<C: CaseIterable & RawRepresentable>(_ type: C.Type) -> (value: Any, shape: WireShape)? {
        guard let first = C.allCases.first else { return nil }
        let raw = C.allCases.compactMap { $0.rawValue as? String }
        guard raw.count == C.allCases.count else { return nil }
        return (first, .choice(raw))
    }

    /// The wire name of a property, as JSONEncoder's snake_case strategy writes it (asked of the encoder itself).
    func wireName(_ key: any CodingKey) -> String {
        guard keys == .snakeCase else { return key.stringValue }
        struct One: Encodable {
            let name: String
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: AnyKey.self)
                try container.encode(0, forKey: AnyKey(stringValue: name))
            }
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        guard let data = try? encoder.encode(One(name: key.stringValue)),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Int], let converted = object.keys.first
        else { return key.stringValue }
        return converted
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The decoder a probed type reads itself from. Its containers record into `recorded`.
final class ProbeDecoder: Decoder {
    let probe: SchemaProbe
    var recorded: WireShape?
    var fields: [String: WireField] = [:] {
        didSet { recorded = .object(fields) }
    }
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] = [:]

    init(probe: SchemaProbe) { self.probe = probe }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        if recorded == nil { recorded = .object([:]) }
        return KeyedDecodingContainer(ProbeKeyedContainer<Key>(decoder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { ProbeUnkeyedContainer(decoder: self) }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { ProbeSingleValue(decoder: self) }
}

struct ProbeKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: ProbeDecoder
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { [] }

    func contains(_ key: Key) -> Bool { true }
    func decodeNil(forKey key: Key) throws -> Bool { false }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let (value, shape) = try decoder.probe.shape(of: type)
        record(key, shape, required: true)
        return value
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        let (value, shape) = try decoder.probe.shape(of: type)
        record(key, shape, required: false)
        return value
    }

    // Optional scalars come through these overloads, whose default implementations would call `decode` (and so
    // record the key as always written).
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try optional(type, key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try optional(type, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try optional(type, key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try optional(type, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try optional(type, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try optional(type, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try optional(type, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try optional(type, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try optional(type, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try optional(type, key) }

    private func optional<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        let (value, shape) = try decoder.probe.shape(of: type)
        record(key, shape, required: false)
        return value
    }

    private func record(_ key: Key, _ shape: WireShape, required: Bool) {
        let name = decoder.probe.wireName(key)
        // A key read twice (a Patch reads presence, then the value) keeps the most specific answer.
        if let known = decoder.fields[name], known.shape != .any, shape == .any { return }
        decoder.fields[name] = WireField(shape: shape, required: required)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        throw SchemaProbe.Unprobeable(description: "nested containers are not probed (\(key.stringValue))")
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw SchemaProbe.Unprobeable(description: "nested containers are not probed (\(key.stringValue))")
    }

    func superDecoder() throws -> any Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> any Decoder { decoder }
}

struct ProbeUnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: ProbeDecoder
    var codingPath: [any CodingKey] { [] }
    var count: Int? { 1 }
    var currentIndex = 0
    var isAtEnd: Bool { currentIndex > 0 }

    mutating func decodeNil() throws -> Bool { false }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, shape) = try decoder.probe.shape(of: type)
        decoder.recorded = .array(shape)
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        throw SchemaProbe.Unprobeable(description: "nested containers are not probed")
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw SchemaProbe.Unprobeable(description: "nested containers are not probed")
    }

    mutating func superDecoder() throws -> any Decoder { decoder }
}

struct ProbeSingleValue: SingleValueDecodingContainer {
    let decoder: ProbeDecoder
    var codingPath: [any CodingKey] { [] }

    func decodeNil() -> Bool { false }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, shape) = try decoder.probe.shape(of: type)
        decoder.recorded = shape
        return value
    }
}
