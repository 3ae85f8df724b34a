import Foundation

/// What a job of one kind needs to run, as a Codable type. It is stored as JSON text in `jobs.params` (and in a
/// schedule's `job_params`), written by `json` and read back by `Job.parameters(_:)`, never built by string
/// interpolation.
public protocol JobParameters: Codable, Sendable {}

extension JobParameters {
    /// The stored form: compact JSON with sorted keys, so equal parameters are equal text.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Plain structs of numbers, strings and lists always encode.
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

extension Job {
    /// The job's parameters as `type`; a job whose stored parameters do not fit fails with what is missing.
    public func parameters<P: JobParameters>(_ type: P.Type) throws -> P {
        do {
            return try JSONDecoder().decode(type, from: Data(params.utf8))
        } catch let error as DecodingError {
            let problem = JSONResponse.problem(error)
            let what = problem.errors.map { $0.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
            throw JobFailure("the \(kind) job's parameters do not fit: \(what ?? problem.detail)")
        }
    }
}

/// A backup, a plan's verify or retention run: the plan.
struct BackupPlanJob: JobParameters {
    var planID: Int64
    enum CodingKeys: String, CodingKey { case planID = "plan_id" }
}

/// A repository check: a plan's repository, or a repository named on its own (with the plan's read-data subset or
/// its own).
struct BackupCheckJob: JobParameters {
    var planID: Int64?
    var repositoryID: Int64?
    var readDataSubset: String?
    enum CodingKeys: String, CodingKey {
        case planID = "plan_id", repositoryID = "repository_id", readDataSubset = "read_data_subset"
    }
}

/// A restore of a snapshot (or some paths of it) to a directory on a host.
struct BackupRestoreJob: JobParameters {
    var repositoryID: Int64
    var snapshot: String
    var include: [String]
    var target: String
    var hostID: Int64
    var overwritesLiveData: Bool
    var planID: Int64?
    enum CodingKeys: String, CodingKey {
        case repositoryID = "repository_id", snapshot, include, target, hostID = "host_id", overwritesLiveData = "overwrites_live_data",
            planID = "plan_id"
    }
}

/// A rollout's plan (of one revision) or one of its waves.
struct RolloutJob: JobParameters {
    var rolloutID: Int64
    var wave: Int?
    var revision: Int?
    enum CodingKeys: String, CodingKey { case rolloutID = "rollout_id", wave, revision }
}
