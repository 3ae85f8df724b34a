import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// One line per log event on stderr, as logfmt or JSON, so every line can be parsed by a log shipper.
public struct StewardLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let format: StewardConfiguration.LogFormat
    private static let output = Mutex(())

    public init(label: String, level: Logger.Level, format: StewardConfiguration.LogFormat) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("ts", RFC3339.string(Date())), ("level", event.level.rawValue), ("logger", label), ("msg", event.message.description),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() { fields.append((key, merged[key]!.description)) }
        let line: String
        switch format {
        case .logfmt:
            line = fields.map { "\($0.0)=\(Self.logfmtValue($0.1))" }.joined(separator: " ")
        case .json:
            let object = Dictionary(fields, uniquingKeysWith: { _, new in new })
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        Self.output.withLock { _ in LogOutput.write(line + "\n") }
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.isNewline }
        guard needsQuotes else { return value }
        return "\""
            + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}

/// Standard error as a log destination that can fail without taking the server with it. FileHandle's write traps
/// on an error (stderr on /dev/full, a full disk, a reader that went away); this uses write(2), retries short writes
/// and interrupts, and counts a line it could not write instead, for /metrics. SIGPIPE is ignored at start
/// (`ignoreBrokenPipe`), so a closed pipe is an EPIPE here rather than the end of the process.
public enum LogOutput {
    private static let failures = Atomic<Int>(0)
    private static let lastError = Atomic<Int32>(0)

    /// Lines that could not be written since start.
    public static var failedLines: Int { failures.load(ordering: .relaxed) }
    /// errno of the last failed write, 0 if none failed.
    public static var lastErrno: Int32 { lastError.load(ordering: .relaxed) }

    public static func ignoreBrokenPipe() { signal(SIGPIPE, SIG_IGN) }

    /// Write `text` to standard error; false (and counted) when the whole line could not go out.
    @discardableResult
    public static func write(_ text: String, descriptor: Int32 = 2) -> Bool {
        var bytes = Array(text.utf8)
        let written = bytes.withUnsafeMutableBytes { buffer -> Bool in
            var offset = 0
            var attempts = 0
            while offset < buffer.count {
                let result = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if result > 0 {
                    offset += result
                    continue
                }
                attempts += 1
                // A non-blocking stderr whose reader is slow: give it a moment, a few times, rather than block forever.
                if result < 0, errno == EINTR || errno == EAGAIN, attempts < 5 {
                    if errno == EAGAIN { usleep(1000) }
                    continue
                }
                lastError.store(result < 0 ? errno : EIO, ordering: .relaxed)
                return false
            }
            return true
        }
        if !written { failures.add(1, ordering: .relaxed) }
        return written
    }
}
