import Foundation

/// JSON kept in a TEXT column: lists of strings (paths, argv, host names) and small documents.
enum JSONText {
    /// A JSON array of strings; anything else reads as empty.
    static func strings(_ text: String?) -> [String] {
        guard let text, let list = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String] else { return [] }
        return list
    }

    /// A JSON object; nil for anything else (and for empty text).
    static func object(_ text: String?) -> [String: Any]? {
        guard let text, !text.isEmpty else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    }

    /// Compact JSON with sorted keys; "[]" if the value cannot be written.
    static func encode(_ value: Any) -> String {
        (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
}
