import Mustache

/// A template context object, built directly by each controller.
///
/// swift-mustache resolves every name with dynamic casts on `Any`. On Linux, a cast that fails on a Swift String,
/// Array or Dictionary first bridges the value to its Foundation class, which made rendering a 50-row table cost
/// milliseconds. A final class answers `MustacheParent` from the conformance cache, and nil values are dropped because
/// Mustache treats a stored nil as present.
final class ViewNode: MustacheParent, @unchecked Sendable {
    let values: [String: Any]

    init(_ values: [String: Any?]) {
        self.values = values.compactMapValues { $0 }
    }

    func child(named name: String) -> Any? { values[name] }
}

// Leaf values render through MustacheCustomRenderable, so the renderer's casts succeed without bridging.
extension String: @retroactive MustacheCustomRenderable {
    public var renderText: String { self }
    public var isNull: Bool { false }
}

extension Int: @retroactive MustacheCustomRenderable {
    public var renderText: String { String(self) }
    public var isNull: Bool { false }
}

extension Int64: @retroactive MustacheCustomRenderable {
    public var renderText: String { String(self) }
    public var isNull: Bool { false }
}
