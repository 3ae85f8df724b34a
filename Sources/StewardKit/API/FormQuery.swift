import Foundation

/// Query strings as HTML forms write them (application/x-www-form-urlencoded): a `+` is a space and `%2B` a plus.
/// A GET form sends "Failed password" as `Failed+password`; read literally, a regex of it would not match. Links
/// Steward writes escape a plus, so they read back the same.
enum FormQuery {
    /// Name-value pairs in order (a name may repeat); a pair without `=` has an empty value.
    static func decode(_ query: String?) -> [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func text(_ part: Substring) -> String {
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (text(parts[0]), parts.count > 1 ? text(parts[1]) : "")
        }
    }

    /// One value escaped for a query string (a plus as %2B), for a template that writes `?name={{value}}`.
    static func escaped(_ value: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "+&=#")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// `path?name=value&...` with every value escaped as a form would (a plus as %2B).
    static func link(_ path: String, _ items: [URLQueryItem]) -> String {
        var components = URLComponents()
        components.path = path
        components.queryItems = items
        guard !items.isEmpty, let query = components.percentEncodedQuery else { return path }
        return (components.percentEncodedPath.isEmpty ? path : components.percentEncodedPath) + "?"
            + query.replacingOccurrences(of: "+", with: "%2B")
    }
}
