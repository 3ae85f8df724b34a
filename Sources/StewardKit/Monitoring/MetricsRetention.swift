import Foundation

extension RetentionClassDefinition {
    /// Metrics: compressed chunks of each series at three resolutions; a tiered policy ages each resolution on its own.
    /// Raw samples and 1-hour rollups are written at ingest, 1-minute rollups when the raw samples age out.
    static let metrics = RetentionClassDefinition(
        dataClass: .metrics, title: "Metrics", tables: ["metric_chunks", "metric_series"], counted: ("metric_chunks", "end_ms"),
        kinds: [.full, .tiered, .size], ruleFields: ["group", "host"], tierNames: ["raw samples", "1-minute rollups", "1-hour rollups"],
        defaults: DataRetention(kind: .tiered, tierDays: [7, 90, 730], keepWhileFiring: true),
        shape: { _ in
            RetentionPlanner.Shape(
                from: "metric_chunks c JOIN metric_series s ON s.id = c.series_id", keys: ["c.series_id", "c.resolution", "c.start_ms"],
                time: "c.end_ms", bytes: "(length(c.data) + 40)", host: "s.host_id", eligible: "1",
                fields: ["host": "(SELECT name FROM hosts WHERE id = s.host_id)"])
        },
        tieredStages: { planner, tiers, add in
            guard tiers.count == 3 else { return }
            let names = DataClass.metrics.tierNames
            for (index, resolution) in [MetricResolution.raw, .minute, .hour].enumerated() {
                let (condition, arguments) = planner.agePredicate(baseDays: tiers[index], rules: index == 0 ? planner.policy.rules : [])
                add(
                    "\(names[index]) older than \(DataRetention.days(tiers[index]))", "c.resolution = ? AND \(condition)",
                    [resolution.rawValue] + arguments, planner.policy.keepWhileFiring && index == 0, nil)
            }
        },
        // 1-minute rollups are written only now, from the raw samples the raw tier is about to delete (from the
        // earliest cutoff any rule gives), so while raw samples exist they are not stored twice.
        beforeStages: { database, policy, now in
            guard policy.kind == .tiered, let tiers = policy.tierDays, tiers.count == 3 else { return nil }
            let days = ([tiers[0]] + policy.rules.map(\.days)).min() ?? tiers[0]
            let cutoff = EpochMilliseconds.from(now) - Int64(days * 86_400_000)
            let written = try MetricStore.rollUpAgingRaw(database, endingBefore: cutoff)
            return written > 0 ? "1-minute rollups of raw samples about to age out: \(written) chunk(s) written" : nil
        })
}
