import Mustache

/// A template context object, built directly by each controller.
///
/// swift-mustache resolves every name with dynamic casts on `Any`. On Linux a cast that fails on a Swift String,
/// Array or Dictionary first bridges the value to its Foundation class, and a failed conformance check takes the
/// runtime's slow path; a 50-row table cost milliseconds. So every value the renderer walks through answers each of
/// its casts positively: nodes are a final class that is both a representation and a parent, and leaf values are
/// renderable parents with no children. Nil values are dropped because Mustache treats a stored nil as present.
final class ViewNode: MustacheParent, MustacheCustomRepresentation, @unchecked Sendable {
    let values: [String: Any]

    init(_ values: [String: Any?]) {
        self.values = values.compactMapValues { $0 }
    }

    func child(named name: String) -> Any? { values[name] }
    var representation: Any? { self }
}

/// A value that renders as text and has no named children.
protocol ViewLeaf: MustacheCustomRenderable, MustacheCustomRepresentation, MustacheParent {}

extension ViewLeaf {
    public var isNull: Bool { false }
    public var representation: Any? { self }
    public func child(named name: String) -> Any? { nil }
}

extension String: @retroactive MustacheCustomRenderable, @retroactive MustacheCustomRepresentation, @retroactive MustacheParent, ViewLeaf {
    public var renderText: String { self }
}

extension Int: @retroactive MustacheCustomRenderable, @retroactive MustacheCustomRepresentation, @retroactive MustacheParent, ViewLeaf {
    public var renderText: String { String(self) }
}

extension Int64: @retroactive MustacheCustomRenderable, @retroactive MustacheCustomRepresentation, @retroactive MustacheParent, ViewLeaf {
    public var renderText: String { String(self) }
}

/// HTML escaping for every template (the layout selects it with `{{% CONTENT_TYPE: STEWARD_HTML}}`). It escapes the
/// same five characters as swift-mustache's HTML type, `& < > " '`, but scans UTF-8 bytes and returns the string
/// untouched when none occurs, instead of a dictionary lookup per Character.
struct StewardHTMLEscaping: MustacheContentType {
    static let name = "STEWARD_HTML"

    func escapeText(_ text: String) -> String { Self.escape(text) }

    static func escape(_ text: String) -> String {
        var text = text
        return text.withUTF8 { bytes -> String in
            guard bytes.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else {
                return String(decoding: bytes, as: UTF8.self)
            }
            var output: [UInt8] = []
            output.reserveCapacity(bytes.count + 32)
            for byte in bytes {
                switch byte {
                case 0x26: output.append(contentsOf: "&amp;".utf8)
                case 0x3C: output.append(contentsOf: "&lt;".utf8)
                case 0x3E: output.append(contentsOf: "&gt;".utf8)
                case 0x22: output.append(contentsOf: "&quot;".utf8)
                case 0x27: output.append(contentsOf: "&#39;".utf8)
                default: output.append(byte)
                }
            }
            return String(decoding: output, as: UTF8.self)
        }
    }
}
