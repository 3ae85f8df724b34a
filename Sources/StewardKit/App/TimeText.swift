import Foundation

/// Times and durations as people and scripts write them in queries and bodies, in epoch milliseconds.
enum TimeText {
    /// An RFC 3339 time or epoch seconds.
    static func milliseconds(_ text: String) -> Int64? {
        if let seconds = Double(text) { return seconds.isFinite && abs(seconds) < 1e13 ? Int64(seconds * 1000) : nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return EpochMilliseconds.from(date) }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map(EpochMilliseconds.from)
    }

    /// "90" (seconds), "30s", "5m", "2h", "1d" or "1w".
    static func durationMilliseconds(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000]
        if let seconds = Double(text), seconds > 0 { return seconds < 1e10 ? Int64(seconds * 1000) : nil }
        guard let unit = text.last.flatMap({ units[$0] }), let count = Int64(text.dropLast()), count > 0, count < 100_000 else { return nil }
        return count * unit
    }
}
