import Foundation
import Testing

@testable import StewardKit

@Suite("SLOs in Sloth's and OpenSLO's formats")
struct SLOFormatTests {
    static let sloth = """
        version: "prometheus/v1"
        service: "checkout"
        labels:
          owner: "payments"
        slos:
          - name: "requests-availability"
            objective: 99.9
            description: "Checkout answers without 5xx or 429."
            sli:
              events:
                error_query: sum(rate(http_request_duration_seconds_count{job="checkout",code=~"(5..|429)"}[{{.window}}]))
                total_query: sum(rate(http_request_duration_seconds_count{job="checkout"}[{{.window}}]))
            alerting:
              name: CheckoutHighErrorRate
              page_alert:
                labels:
                  severity: pageteam
              ticket_alert:
                labels:
                  severity: slack
          - name: "ratio"
            objective: 99.5
            sli:
              raw:
                error_ratio_query: |
                  sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{.window}}]))
                  /
                  sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
            alerting:
              page_alert:
                disable: true
              ticket_alert:
                disable: true
          - name: "plugin"
            objective: 99
            sli:
              plugin:
                id: "sloth-common/kubernetes/apiserver/availability"
        """

    static let openSLO = """
        apiVersion: openslo/v1
        kind: SLO
        metadata:
          name: search-good-requests
          displayName: Search answers
        spec:
          description: Most searches answer without error
          service: search
          indicator:
            metadata:
              name: search-errors
            spec:
              ratioMetric:
                counter: true
                good:
                  metricSource:
                    type: Prometheus
                    spec:
                      query: sum(http_requests_total{service="search",code!~"5.."})
                total:
                  metricSource:
                    type: Prometheus
                    spec:
                      query: http_requests_total{service="search"}
          timeWindow:
            - duration: 28d
              isRolling: true
          budgetingMethod: Occurrences
          objectives:
            - displayName: good
              target: 0.995
        ---
        apiVersion: openslo/v1
        kind: SLO
        metadata:
          name: monthly-search
        spec:
          service: search
          indicator:
            metadata:
              name: x
            spec:
              ratioMetric:
                counter: false
                bad:
                  metricSource:
                    type: Prometheus
                    spec:
                      query: sum(rate(http_requests_total{service="search",code=~"5.."}[5m]))
                total:
                  metricSource:
                    type: Prometheus
                    spec:
                      query: sum(rate(http_requests_total{service="search"}[5m]))
          timeWindow:
            - duration: 1M
              isRolling: false
              calendar:
                startTime: "2026-01-01 00:00:00"
                timeZone: UTC
          budgetingMethod: Occurrences
          objectives:
            - targetPercent: 99.9
        ---
        apiVersion: openslo/v1
        kind: SLO
        metadata:
          name: latency-threshold
        spec:
          service: search
          indicator:
            metadata:
              name: y
            spec:
              thresholdMetric:
                metricSource:
                  type: Prometheus
                  spec:
                    query: histogram_quantile(0.99, sum(rate(x_bucket[5m])) by (le))
          timeWindow:
            - duration: 7d
              isRolling: true
          budgetingMethod: Timeslices
          objectives:
            - target: 0.99
        """

    @Test("Sloth: events and raw SLIs import with service-prefixed names; plugins are refused by path")
    func slothImport() throws {
        let found = SLOFormats.parse(Self.sloth)
        #expect(found.count == 3)
        let events = try #require(found[0].slo)
        #expect(events.name == "checkout-requests-availability")
        #expect(events.sli == .ratio && events.ratioCounts == .bad)
        #expect(events.eventsQuery.contains("code=~\"(5..|429)\""))
        #expect(events.objective == 99.9 && events.window == .days30 && events.alerting)
        let raw = try #require(found[1].slo)
        #expect(raw.totalQuery == "vector(1)")
        #expect(!raw.alerting)
        #expect(found[2].slo == nil && found[2].path == "slos[2]" && found[2].problem?.contains("plugins") == true)
        for slo in [events, raw] { #expect(slo.problems(checks: [], hosts: [], groups: []).isEmpty, "\(slo.name)") }
    }

    @Test("OpenSLO: a counter ratio becomes rates, a calendar month and targetPercent are read; threshold metrics are refused")
    func openSLOImport() throws {
        let found = SLOFormats.parse(Self.openSLO)
        #expect(found.count == 3)
        let rolling = try #require(found[0].slo)
        #expect(rolling.name == "search-good-requests")
        #expect(rolling.window == .days28 && rolling.objective == 99.5 && rolling.ratioCounts == .good)
        #expect(rolling.eventsQuery == "sum(rate(http_requests_total{service=\"search\", code!~\"5..\"}[{{.window}}]))")
        #expect(rolling.totalQuery == "sum(rate(http_requests_total{service=\"search\"}[{{.window}}]))")
        let month = try #require(found[1].slo)
        #expect(month.window == .month && month.objective == 99.9 && month.ratioCounts == .bad)
        #expect(month.eventsQuery.hasSuffix("[5m]))"))
        #expect(found[2].slo == nil)
        #expect(found[2].path == "document 3.spec.budgetingMethod")
        for slo in [rolling, month] { #expect(slo.problems(checks: [], hosts: [], groups: []).isEmpty, "\(slo.name)") }
    }

    @Test("exports read back as the same SLOs; probe and availability SLIs travel as count and sum over time")
    func roundTrip() throws {
        var ratio = SLO()
        ratio.name = "api-errors"
        ratio.sli = .ratio
        ratio.ratioCounts = .bad
        ratio.eventsQuery = "sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))"
        ratio.totalQuery = "sum(rate(http_requests_total[{{.window}}]))"
        ratio.objective = 99.95
        ratio.window = .days28
        var probe = SLO()
        probe.name = "shop probe"
        probe.sli = .probe
        probe.objective = 99
        probe.window = .month
        var check = Check()
        check.name = "shop"
        let sloth = SLOFormats.sloth([(ratio, nil, []), (probe, check, [])], service: "steward")
        let back = SLOFormats.parse(sloth).compactMap(\.slo)
        #expect(back.count == 2)
        #expect(back[0].name == "steward-api-errors" && back[0].eventsQuery == ratio.eventsQuery && back[0].objective == 99.95)
        #expect(back[1].totalQuery == "sum(count_over_time(probe_success{check=\"shop\"}[{{.window}}]))")
        #expect(back[1].eventsQuery.contains("sum_over_time(probe_success{check=\"shop\"}"))
        let openSLO = SLOFormats.openSLO([(ratio, nil, []), (probe, check, ["web1", "web.2"])], service: "steward")
        let read = SLOFormats.parse(openSLO)
        #expect(read.count == 2)
        #expect(read[0].slo?.window == .days28 && read[0].slo?.objective == 99.95 && read[0].slo?.ratioCounts == .bad)
        #expect(read[1].slo?.window == .month && read[1].slo?.name == "shop-probe")
        for entry in read { #expect(entry.slo?.problems(checks: [], hosts: [], groups: []).isEmpty == true, "\(entry.problem ?? "")") }
    }
}
