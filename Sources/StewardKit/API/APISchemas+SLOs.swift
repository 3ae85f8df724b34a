import Foundation

/// The checks and SLOs area's bodies, written from ChecksController and SLOController.
extension APISchemas {
    static var sloSchemas: [String: JSONValue] {
        let choice = { (values: JSONValue) -> JSONValue in ["type": "string", "enum": values] }
        let checkFields: [String: JSONValue] = [
            "name": described(string, "1 to 100 characters"), "kind": choice(.choices(Check.Kind.self)),
            "target": described(string, "an http(s) URL, or host:port for tcp"), "method": choice(.choices(Check.Method.self)),
            "expect_status": described(string, "codes and ranges, comma-separated, e.g. 200-399"),
            "expect_body": described(string, "text the body must contain; empty for none"),
            "timeout_seconds": described(number, "0.1 to 60, at most the interval"), "interval_seconds": described(integer, "1 to 86400"),
            "host": described(string, "the host whose series the results are (default: the panel host)"), "enabled": boolean,
        ]
        var check = checkFields
        check["id"] = integer
        check["last_at"] = nullOr(dateTime)
        check["last_success"] = nullable("boolean")
        check["last_duration_seconds"] = nullable("number")
        check["last_status"] = nullable("integer")
        check["last_error"] = string
        check["cert_expires_at"] = described(nullOr(dateTime), "the HTTPS certificate's notAfter, read at most hourly")
        let sloFields: [String: JSONValue] = [
            "name": described(string, "1 to 100 letters, digits, spaces and - _ ."), "description": string,
            "sli": described(
                choice(.choices(SLO.SLIKind.self)),
                "probe: a check's runs; ratio: two PromQL queries; latency: a histogram's share under a threshold; availability: steward_host_up"),
            "check": described(nullable("string"), "sli probe: the check's name"),
            "ratio_counts": described(choice(.choices(SLO.RatioCounts.self)), "sli ratio: whether events_query counts good or bad events"),
            "events_query": described(string, "sli ratio: PromQL giving one number, {{.window}} for the range"),
            "total_query": described(string, "sli ratio: PromQL of all events"),
            "histogram": described(string, "sli latency: the histogram's name without _bucket"),
            "matchers": described(string, "sli latency: PromQL label matchers, e.g. job=\"api\""),
            "threshold_seconds": described(nullable("number"), "sli latency: a bucket bound (le)"),
            "objective": described(number, "the percentage of good events, above 50 and below 100"),
            "window": described(choice(.choices(SLO.Window.self)), "rolling 7, 28 or 30 days, or the calendar month (UTC)"),
            "hosts": described(strings, "hosts covered; with groups empty too: every host"), "groups": strings,
            "alerting": described(
                boolean, "burn-rate alerts: page at 14.4x (1h and 5m) and 6x (6h and 30m), ticket at 3x (1d and 2h) and 1x (3d and 6h)"),
        ]
        var slo = sloFields
        slo["id"] = integer
        slo["window_start"] = nullOr(dateTime)
        slo["good_events"] = number
        slo["total_events"] = number
        slo["achieved_percent"] = described(nullable("number"), "good events over all events in the window; null without events")
        slo["remaining_budget_percent"] = described(number, "100: untouched, 0: spent, below 0: overspent")
        slo["budget_spent"] = boolean
        slo["burn_rates"] = described(
            ["type": "object", "additionalProperties": number], "by window (5m, 30m, 1h, 2h, 6h, 1d, 3d); a window without events is left out")
        slo["time_left_seconds"] = described(nullable("number"), "until the budget is spent at the last hour's burn rate; null when not burning")
        slo["alert"] = nullOr(
            record([
                "severity": choice(["page", "ticket"]), "factor": number, "long_window": string, "short_window": string,
                "long_burn_rate": number, "short_burn_rate": number,
            ]))
        slo["problem"] = nullable("string")
        var sloInput = sloFields
        sloInput["check"] = described(nullable("string"), "sli probe: the check's name; null or empty for none")
        return [
            "Check": record(check),
            "CheckInput": object(checkFields, closed: true),
            "CheckList": record(["items": arrayOf(ref("Check"))]),
            "SLO": record(slo),
            "SLOInput": object(sloInput, closed: true),
            "SLOList": record(["items": arrayOf(ref("SLO"))]),
            "SLOBudgetHistory": record([
                "slo": string, "points": arrayOf(record(["at": dateTime, "remaining_budget_percent": nullable("number")])),
            ]),
            "SLOImport": record([
                "created": strings, "updated": strings,
                "failures": arrayOf(record(["path": string, "name": string, "message": string])),
            ]),
            "SLOImportUpload": [
                "type": "string", "format": "binary", "contentMediaType": "application/yaml",
                "description": "a Sloth (version: prometheus/v1) or OpenSLO (apiVersion: openslo/v1, kind: SLO) document",
            ],
            // YAML parsers see a mapping; clients that keep the document as it is see its text.
            "SLOExportText": [
                "anyOf": [["type": "object"] as JSONValue, described(string, "the document's text")],
                "description": "a Sloth (prometheus/v1) or OpenSLO (openslo/v1) YAML document",
            ],
        ]
    }
}
