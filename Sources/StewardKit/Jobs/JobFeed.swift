import Foundation

/// A job's stored output followed by its live events, without gaps or repeats: subscribe first, then read the
/// state and the backlog, then pass on only live chunks newer than what the backlog held.
struct JobFeed {
    let store: JobStore
    let events: JobEvents

    func events(job id: Int64, afterSeq: Int64) -> AsyncStream<JobEvent> {
        let live = events.subscribe(job: id)
        let store = self.store
        return AsyncStream { continuation in
            let task = Task {
                defer { continuation.finish() }
                var lastSeq = afterSeq
                // State before chunks: a finished job's log is complete before its state is written.
                guard let job = try? store.job(id: id), let backlog = try? store.logChunks(id: id, after: afterSeq) else { return }
                for chunk in backlog {
                    continuation.yield(.log(chunk))
                    lastSeq = chunk.seq
                }
                // The current progress first, so a viewer that joins late (or after the end) still sees the final figure.
                continuation.yield(.progress(percent: job.progressPercent, message: job.progressMessage))
                if job.state.isFinished {
                    continuation.yield(.finished(job.state))
                    return
                }
                for await event in live {
                    if case .log(let chunk) = event {
                        guard chunk.seq > lastSeq else { continue }
                        lastSeq = chunk.seq
                    }
                    continuation.yield(event)
                    if case .finished = event { return }
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
