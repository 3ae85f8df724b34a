import Foundation
import Testing

@testable import StewardKit

/// The per-round cache gives exactly what the source gives, whatever order and windows it is asked in.
@Suite struct CachingSourceTests {
    @Test("every window read through the cache equals the source's, within and past the budget")
    func sameAsTheSource() throws {
        var random = SplitMix(seed: 99)
        let series = (0..<3).map { index in
            (
                labels: PromQL.Labels([("__name__", "x"), ("i", String(index))]),
                points: (0..<500).map { PromQL.Point(time: Int64($0) * 10_000 + Int64(index), value: Double(random.next() % 1000)) }
            )
        }
        let source = MemorySource(series: series)
        let until: Int64 = 4_000_000
        for budget in [100_000, 600] {
            let cached = PromQL.CachingSource(source, until: until, budget: budget)
            for _ in 0..<300 {
                let id = Int64(random.next() % 3)
                let to = Int64(random.next() % UInt64(until + 1))
                let from = to - Int64(random.next() % 1_000_000)
                #expect(try cached.points(id, from: from, to: to) == (try source.points(id, from: from, to: to)), "\(id) \(from)...\(to)")
            }
            // Past `until` it reads through.
            #expect(try cached.points(1, from: 4_900_000, to: 5_000_000) == (try source.points(1, from: 4_900_000, to: 5_000_000)))
            let matchers = [try PromQL.Matcher(name: "i", op: .regex, value: "1|2")]
            #expect(try cached.series(matching: matchers).map(\.id) == [1, 2])
        }
    }
}
