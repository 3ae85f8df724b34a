/// The job handlers the areas contribute, by job kind. Two areas claiming one kind is a programming error that would
/// otherwise silently run one area's jobs with the other's code, so the server refuses to start.
public struct JobHandlerSet {
    public private(set) var handlers: [String: JobHandler] = [:]

    public init() {}

    public struct Duplicate: Error, CustomStringConvertible {
        public let kind: String
        public var description: String { "two handlers were registered for the job kind \(kind)" }
    }

    public mutating func add(_ kind: String, _ handler: @escaping JobHandler) throws {
        guard handlers[kind] == nil else { throw Duplicate(kind: kind) }
        handlers[kind] = handler
    }

    public mutating func add(contentsOf more: [String: JobHandler]) throws {
        for (kind, handler) in more.sorted(by: { $0.key < $1.key }) { try add(kind, handler) }
    }
}
