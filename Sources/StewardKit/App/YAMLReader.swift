import Foundation
import Yams

/// The one way Steward reads YAML, whatever its source (host variables, rule imports, config-repo files): size,
/// depth and value-count limits, with aliases either refused or counted as the values they expand to, so a
/// "billion laughs" document is refused after a bounded walk instead of being built in memory.
///
/// Values come back JSON-shaped: String, Int, Double, Bool, NSNull, [Any] and [String: Any].
public enum YAMLReader {
    public struct Limits: Sendable, Equatable {
        public var maximumBytes: Int
        public var maximumDepth: Int
        /// Values counted after alias expansion: an alias to a list of 9 counts 10.
        public var maximumNodes: Int
        /// Refuse `&anchor` and `*alias` outright (host variables), or allow them and count their expansion.
        public var refuseAliases: Bool
        /// Refuse tags outside YAML's core schema (`!!python/object`); Ansible files keep theirs (`!vault`, `!unsafe`).
        public var coreTagsOnly: Bool

        public init(maximumBytes: Int, maximumDepth: Int, maximumNodes: Int, refuseAliases: Bool, coreTagsOnly: Bool) {
            self.maximumBytes = maximumBytes
            self.maximumDepth = maximumDepth
            self.maximumNodes = maximumNodes
            self.refuseAliases = refuseAliases
            self.coreTagsOnly = coreTagsOnly
        }

        /// Host and group variables: small, plain, no anchors.
        public static let variables = Limits(maximumBytes: 64 * 1024, maximumDepth: 32, maximumNodes: 10_000, refuseAliases: true, coreTagsOnly: true)
        /// Uploaded documents (rule files, imports): up to 4 MiB and 200,000 values.
        public static let document = Limits(maximumBytes: 4 << 20, maximumDepth: 64, maximumNodes: 200_000, refuseAliases: false, coreTagsOnly: true)
        /// Files in the config repository (playbooks, users/NAME.yml): Ansible's own tags are allowed.
        public static let repositoryFile = Limits(
            maximumBytes: 1 << 20, maximumDepth: 64, maximumNodes: 100_000, refuseAliases: false, coreTagsOnly: false)
    }

    /// Why a document was refused. `limit` names the limit that was hit, when one was.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public let message: String
        public let limit: String?

        public init(_ message: String, line: Int? = nil, limit: String? = nil) {
            self.message = line.map { "line \($0 + 1): " }.map { $0 + message } ?? message
            self.limit = limit
        }
        public var description: String { message }
    }

    static let coreTags: Set<String> = [
        Tag.Name.str.rawValue, Tag.Name.int.rawValue, Tag.Name.float.rawValue, Tag.Name.bool.rawValue, Tag.Name.null.rawValue,
        Tag.Name.map.rawValue, Tag.Name.seq.rawValue, Tag.Name.timestamp.rawValue,
    ]

    /// One document; nil for an empty one.
    public static func read(_ text: String, limits: Limits) throws(Refusal) -> Any? {
        let documents = try readAll(text, limits: limits)
        guard documents.count <= 1 else { throw Refusal("expected one YAML document, found \(documents.count) (separated by ---)") }
        return documents.first
    }

    /// Every document of a stream (`---` separated), each checked; the value count is shared by all.
    public static func readAll(_ text: String, limits: Limits) throws(Refusal) -> [Any] {
        guard text.utf8.count <= limits.maximumBytes else {
            throw Refusal(
                "the document is \(text.utf8.count) bytes; at most \(limits.maximumBytes) are accepted", limit: "size \(limits.maximumBytes) bytes")
        }
        do {
            // The parser stays alive while the nodes are walked: Yams holds anchors weakly, and they vanish with it.
            let parser = try Parser(yaml: text)
            var walk = Walk(limits: limits)
            var documents: [Any] = []
            while let root = try parser.nextRoot() {
                documents.append(try walk.convert(root, depth: 1))
            }
            withExtendedLifetime(parser) {}
            return documents
        } catch let refusal as Refusal {
            throw refusal
        } catch let error as YamlError {
            throw Refusal("not valid YAML: \(error)")
        } catch {
            throw Refusal("not valid YAML: \(error)")
        }
    }

    struct Walk {
        let limits: Limits
        var count = 0

        mutating func convert(_ node: Node, depth: Int) throws -> Any {
            count += 1
            guard count <= limits.maximumNodes else {
                throw Refusal(
                    "more than \(limits.maximumNodes) values\(limits.refuseAliases ? "" : " (aliases counted as what they repeat)"); split the document",
                    line: node.mark?.line, limit: "values \(limits.maximumNodes)")
            }
            guard depth <= limits.maximumDepth else {
                throw Refusal("nested deeper than \(limits.maximumDepth) levels", line: node.mark?.line, limit: "depth \(limits.maximumDepth)")
            }
            if limits.refuseAliases, node.anchor != nil {
                throw Refusal("anchors and aliases (& and *) are not accepted; write the value out", line: node.mark?.line, limit: "aliases")
            }
            let tag = node.tag.rawValue
            if limits.coreTagsOnly, !YAMLReader.coreTags.contains(tag) {
                throw Refusal(
                    "the YAML tag \(tag) is not accepted; only plain strings, numbers, booleans, lists and mappings", line: node.mark?.line,
                    limit: "tags")
            }
            switch node {
            case .alias:
                throw Refusal("anchors and aliases (& and *) are not accepted; write the value out", line: node.mark?.line, limit: "aliases")
            case .scalar(let scalar):
                switch Tag.Name(rawValue: tag) {
                case .int: return Int(scalar.string.replacingOccurrences(of: "_", with: "")) ?? scalar.string
                case .float: return Double(scalar.string) ?? scalar.string
                case .bool: return ["true", "yes", "on"].contains(scalar.string.lowercased())
                case .null: return NSNull()
                default: return scalar.string
                }
            case .sequence(let sequence):
                var result: [Any] = []
                result.reserveCapacity(sequence.count)
                for element in sequence { result.append(try convert(element, depth: depth + 1)) }
                return result
            case .mapping(let mapping):
                var result: [String: Any] = [:]
                for (key, value) in mapping {
                    guard case .scalar(let scalar) = key else { throw Refusal("a key must be a plain value", line: key.mark?.line) }
                    if limits.refuseAliases, key.anchor != nil {
                        throw Refusal("anchors and aliases (& and *) are not accepted; write the value out", line: key.mark?.line, limit: "aliases")
                    }
                    result[scalar.string] = try convert(value, depth: depth + 1)
                }
                return result
            }
        }
    }
}
