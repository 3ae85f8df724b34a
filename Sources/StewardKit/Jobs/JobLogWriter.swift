import Foundation

/// Buffers a job's output and stores it in chunks (at most 64 KiB each, flushed at least every 300 ms), up to a cap.
actor JobLogWriter {
    static let chunkSize = 65536
    let jobID: Int64
    let store: JobStore
    let events: JobEvents
    let cap: Int
    private var buffer = Data()
    private var nextSeq: Int64
    private var accepted = 0
    private var truncated = false
    private var flusher: Task<Void, Never>?

    init(jobID: Int64, store: JobStore, events: JobEvents, cap: Int, startSeq: Int64 = 1) {
        self.jobID = jobID
        self.store = store
        self.events = events
        self.cap = cap
        self.nextSeq = startSeq
    }

    func start() {
        flusher = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(300))
                await self?.flush(final: false)
            }
        }
    }

    func append(_ data: Data) {
        guard !truncated else { return }
        let room = cap - accepted
        if data.count <= room {
            buffer.append(data)
            accepted += data.count
        } else {
            buffer.append(data.prefix(room))
            accepted = cap
            truncated = true
            buffer.append(Data("\n[steward: output truncated at the \(cap)-byte cap for job logs; the rest was discarded]\n".utf8))
        }
        if buffer.count >= Self.chunkSize { flush(final: false) }
    }

    func append(_ text: String) { append(Data(text.utf8)) }

    func close() {
        flusher?.cancel()
        flush(final: true)
    }

    private func flush(final: Bool) {
        while !buffer.isEmpty {
            var cut = min(buffer.count, Self.chunkSize)
            if !final || cut < buffer.count { cut = Self.utf8Boundary(buffer, before: cut) }
            if cut == 0 { return }
            let piece = Data(buffer.prefix(cut))
            buffer.removeFirst(cut)
            let chunk = JobLogChunk(seq: nextSeq, at: EpochMilliseconds.from(Date()), data: piece)
            nextSeq += 1
            do {
                try store.appendLog(id: jobID, seq: chunk.seq, data: piece, truncated: truncated, now: Date())
            } catch {
                // The database refused the write (disk full?); keep the job running and say so in the live view.
                events.publish(
                    job: jobID, .log(JobLogChunk(seq: chunk.seq, at: chunk.at, data: Data("[steward: could not store log: \(error)]\n".utf8))))
                continue
            }
            events.publish(job: jobID, .log(chunk))
            if buffer.count < Self.chunkSize && !final { return }
        }
    }

    /// Index at or before `limit` that does not split a UTF-8 sequence, so each stored chunk decodes cleanly.
    static func utf8Boundary(_ data: Data, before limit: Int) -> Int {
        var index = limit
        var back = 0
        while index > 0 && back < 4 {
            let byte = data[data.startIndex + index - 1]
            if byte & 0x80 == 0 { return limit }  // ASCII: every boundary after it is clean
            back += 1
            if byte & 0xC0 == 0xC0 {  // lead byte: is its sequence complete before limit?
                let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2
                return back >= length ? limit : index - 1
            }
            index -= 1
        }
        return limit
    }
}
