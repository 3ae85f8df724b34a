import Foundation
import Synchronization

/// Something that happened to a job, pushed to live viewers (SSE on the job page, NDJSON in the API).
public enum JobEvent: Sendable, Equatable {
    case log(JobLogChunk)
    case progress(percent: Double?, message: String)
    case finished(Job.State)
}

/// Fans job events out to subscribers. Subscribers that fall behind lose nothing that matters: the log is in the
/// database, and a viewer that reconnects resumes from the last chunk it saw.
public final class JobEvents: Sendable {
    private struct Subscriber {
        let id: UInt64
        let continuation: AsyncStream<JobEvent>.Continuation
    }
    private let subscribers = Mutex<(next: UInt64, byJob: [Int64: [Subscriber]], closed: Bool)>((0, [:], false))

    public init() {}

    public func subscribe(job id: Int64) -> AsyncStream<JobEvent> {
        let (stream, continuation) = AsyncStream<JobEvent>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let token = subscribers.withLock { state -> UInt64? in
            guard !state.closed else { return nil }
            state.next += 1
            state.byJob[id, default: []].append(Subscriber(id: state.next, continuation: continuation))
            return state.next
        }
        guard let token else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.subscribers.withLock { state in
                state.byJob[id]?.removeAll { $0.id == token }
                if state.byJob[id]?.isEmpty == true { state.byJob[id] = nil }
            }
        }
        return stream
    }

    /// End every live stream (server shutdown), so open event streams do not hold connections open.
    public func closeAll() {
        let all = subscribers.withLock { state -> [Subscriber] in
            state.closed = true
            defer { state.byJob = [:] }
            return state.byJob.values.flatMap { $0 }
        }
        for subscriber in all { subscriber.continuation.finish() }
    }

    public func publish(job id: Int64, _ event: JobEvent) {
        let targets = subscribers.withLock { $0.byJob[id] ?? [] }
        for subscriber in targets {
            subscriber.continuation.yield(event)
            if case .finished = event { subscriber.continuation.finish() }
        }
    }
}
