import Foundation
import GRDB

/// Adds one stage to a plan: its label, the condition on top of eligibility and guards, the condition's arguments,
/// whether rows tied to a firing alert are kept, and the statements that remove a row (nil: delete it).
typealias RetentionStageAdder = (String, String, [(any DatabaseValueConvertible)?], Bool, [String]?) -> Void

/// What an area tells retention about one kind of data it keeps: the name people see, the tables it occupies on disk,
/// the policy kinds and selective-rule fields that make sense, its default policy, and the shape of its rows in SQL.
/// Retention only reads these; it knows no area's tables. Each is written beside the data it describes
/// (`MetricsRetention.swift` in Monitoring, `JobLogRetention.swift` in Jobs, ...).
struct RetentionClassDefinition: Sendable {
    let dataClass: DataClass
    let title: String
    /// The tables whose pages count toward the class on disk.
    let tables: [String]
    /// The table whose rows are counted, and the time column that dates them.
    let counted: (table: String, time: String)
    let kinds: [DataRetention.Kind]
    let ruleFields: [String]
    /// The names of the tiers, for tiered policies.
    var tierNames: [String] = []
    let defaults: DataRetention
    /// The rows at the planner's moment.
    let shape: @Sendable (RetentionPlanner) -> RetentionPlanner.Shape
    /// The shape's `time` expression takes the session idle timeout as an argument, wherever it appears.
    var timeTakesIdleTimeout = false
    /// Statements run once before and once after each batch, in its transaction (the audit log's deletion gate).
    var gate: (before: [String], after: [String])?
    /// Keeping rows while an alert fires: by default, rows of a host with a firing alert; this replaces that test.
    var firingGuard: String?
    /// The stages of a time policy, when the class builds them itself (job logs: full output, then the job).
    var timeStages: (@Sendable (RetentionPlanner, RetentionStageAdder) -> Void)?
    /// The stages of a tiered policy, given the tiers' ages in days (metrics: one per resolution).
    var tieredStages: (@Sendable (RetentionPlanner, [Double], RetentionStageAdder) -> Void)?
    /// Work before the stages delete anything (metrics: roll raw samples about to go into 1-minute buckets); returns
    /// what it did for the run's record, or nil.
    var beforeStages: (@Sendable (DatabasePool, DataRetention, Date) throws -> String?)?

    /// Every class, each defined by the area that keeps the data.
    static let all: [RetentionClassDefinition] = [.metrics, .jobLogs, .audit, .alertHistory, .notifications, .sessions, .facts, .logs]
    static let byClass: [DataClass: RetentionClassDefinition] = Dictionary(all.map { ($0.dataClass, $0) }) { first, _ in first }
}

extension DataClass {
    /// The class's definition, from the area that keeps the data (a test checks each class has exactly one).
    var definition: RetentionClassDefinition {
        guard let definition = RetentionClassDefinition.byClass[self] else { preconditionFailure("no retention definition for \(rawValue)") }
        return definition
    }
    public var title: String { definition.title }
    var tables: [String] { definition.tables }
    public var kinds: [DataRetention.Kind] { definition.kinds }
    public var ruleFields: [String] { definition.ruleFields }
    public var tierNames: [String] { definition.tierNames }
    var countedTable: (table: String, time: String) { definition.counted }
}
