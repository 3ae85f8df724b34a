import Foundation

/// The alerts area's bodies: rules, live alerts, history, channels, silences, maintenance windows and deliveries,
/// written from AlertResources and NotificationResources.
extension APISchemas {
    static var alertSchemas: [String: JSONValue] {
        let level = described(nullable("number"), "null: no such level")
        let choice = { (values: JSONValue) -> JSONValue in ["type": "string", "enum": values] }
        let ruleFields: [String: JSONValue] = [
            "name": described(string, "1 to 120 characters"), "enabled": boolean,
            "source": described(string, "metric, promql, or a built-in source such as backup_failed"), "metric": string,
            "expression": described(
                string,
                "source promql: a PromQL expression; with thresholds it gives each host's value, without them every series it returns alerts"),
            "severity": described(
                choice(.choices(AlertState.Severity.self)), "source promql without thresholds: the severity of what the expression returns"),
            "matchers": described(string, "label=value pairs separated by commas"),
            "log_query": described(
                string,
                "source log_lines: the lines counted, the logs page's filters q=, regex=, unit=, identifier=, priority= joined by & (%26 for an & in a value)"
            ),
            "aggregation": choice(.choices(AlertRule.Aggregation.self)), "window_seconds": integer,
            "horizon_seconds": described(integer, "for predict: how far ahead, in seconds"),
            "comparison": described(choice(.choices(AlertRule.Comparison.self)), "above >=, below <=, gt >, lt <, eq ==, ne !="),
            "warn_threshold": level, "warn_clear": level,
            "crit_threshold": level, "crit_clear": level, "for_seconds": integer, "keep_firing_seconds": integer,
            "no_data": choice(.choices(AlertRule.NoData.self)), "scope_hosts": strings, "scope_groups": strings,
            "scope_tags": strings, "labels": described(string, "label=value pairs separated by commas"), "summary": string,
            "description": string, "runbook_url": string, "route": string, "repeat_seconds": integer,
        ]
        var ruleProperties = ruleFields
        ruleProperties["id"] = integer
        ruleProperties["builtin"] = described(nullable("string"), "the built-in rule's key, or null for a rule someone wrote")
        ruleProperties["updated_at"] = dateTime
        ruleProperties["updated_by"] = string
        ruleProperties["links"] = record(["self": string, "page": string])
        var ruleInput = ruleFields
        ruleInput["id"] = described([:], "accepted and ignored, so a rule read from the API can be sent back")
        ruleInput["builtin"] = described([:], "accepted and ignored")
        let severity = choice(.choices(AlertState.Severity.self))
        let channelFields: [String: JSONValue] = [
            "name": string, "kind": choice(.choices(NotificationChannel.Kind.self)), "enabled": boolean,
            "min_severity": severity, "match_labels": string, "send_resolved": boolean, "group_wait_seconds": integer,
            "group_interval_seconds": integer, "url": described(string, "webhook: the http(s) URL"), "smtp_host": string,
            "smtp_port": integer, "smtp_security": choice(.choices(NotificationChannel.Security.self)), "smtp_user": string,
            "mail_from": string, "mail_to": described(string, "addresses separated by commas"),
            "smtp_ca_file": described(string, "a PEM file of the SMTP server's CA, when it is not a public one"),
        ]
        var channelProperties = channelFields
        channelProperties["id"] = integer
        channelProperties["has_secret"] = boolean
        channelProperties["has_password"] = boolean
        var channelInput = channelFields
        channelInput["secret"] = described(nullable("string"), "webhook HMAC secret; null or empty removes it")
        channelInput["password"] = described(nullable("string"), "SMTP password; null or empty removes it")
        let phase = choice(.choices(AlertState.Phase.self))
        return [
            "AlertRule": record(ruleProperties),
            "AlertRuleInput": object(ruleInput, closed: true),
            "AlertRuleList": record(["items": arrayOf(ref("AlertRule"))]),
            "Alert": record([
                "rule_id": integer, "rule": string, "host_id": integer, "host": string, "state": phase, "severity": nullOr(severity),
                "value": described(nullable("number"), "the last value, or null (no data, or not a finite number)"), "since": dateTime,
                "detail": nullable("string"), "summary": string, "description": string, "runbook_url": string,
                "labels": described(
                    string, "name=\"value\" pairs: the series that decided (PromQL rules) or the window pair that fired (SLO rules)"),
            ]),
            "AlertList": record(["items": arrayOf(ref("Alert"))]),
            "AlertHistoryEntry": record([
                "id": integer, "rule_id": integer, "rule": string, "host": string, "from": phase, "to": phase, "severity": nullOr(severity),
                "value": nullable("number"), "at": dateTime, "detail": nullable("string"),
            ]),
            "AlertHistory": record([
                "items": arrayOf(ref("AlertHistoryEntry")), "next": described(nullable("string"), "the next page's address, or null"),
            ]),
            "AlertImport": record([
                "created": arrayOf(ref("AlertRule")),
                "unchanged": described(strings, "rules Steward already has exactly as the file writes them"),
                "warnings": described(
                    arrayOf(record(["path": string, "alert": string, "message": string])),
                    "imported, but something behaves differently than in Prometheus (a label Steward's series lack, a metric no host collects)"),
                "errors": arrayOf(record(["path": string, "alert": string, "message": string])),
            ]),
            "PrometheusRuleFile": [
                "type": "object", "required": ["groups"], "description": "a Prometheus rule file (YAML)",
                "properties": [
                    "groups": arrayOf(
                        object(
                            [
                                "name": string,
                                "rules": arrayOf(
                                    object(
                                        [
                                            "alert": described(string, "an alerting rule's name"),
                                            "record": described(string, "a recording rule's series (an export records steward_host_*)"),
                                            "expr": string, "for": string, "keep_firing_for": string,
                                            "labels": ["type": "object", "additionalProperties": string] as JSONValue,
                                            "annotations": ["type": "object", "additionalProperties": string] as JSONValue,
                                        ], required: ["expr"])),
                            ], required: ["name", "rules"]))
                ] as JSONValue,
            ],
            // YAML parsers see the structure; clients that keep the file as it is see its text.
            "PrometheusRuleFileText": [
                "anyOf": [ref("PrometheusRuleFile"), described(string, "the file's text")],
                "description": "a Prometheus rule file (YAML)",
            ],
            "PrometheusRuleFileUpload": [
                "type": "string", "format": "binary", "contentMediaType": "application/yaml",
                "contentSchema": ref("PrometheusRuleFile"), "description": "the bytes of a Prometheus rule file",
            ],
            "RemoteWrite": record([
                "id": integer, "name": string, "url": described(string, "the receiver's write URL"),
                "auth": choice(.choices(RemoteWriteEndpoint.Auth.self)),
                "username": described(string, "the basic-auth user"), "has_secret": described(boolean, "whether a token or password is stored"),
                "enabled": boolean, "pending_samples": described(integer, "samples queued for this endpoint"),
                "pending_batches": described(integer, "collection rounds queued for this endpoint"),
                "lag_seconds": described(number, "age of the oldest sample it has not accepted; 0 when it has them all"),
                "samples_sent": integer, "samples_rejected": described(integer, "refused with a 4xx other than 429: not sent again"),
                "samples_dropped": described(integer, "not taken within the backlog limit (6 hours)"),
                "requests_retried": described(integer, "requests that failed with 5xx, 429 or a network error"),
                "last_success_at": nullOr(dateTime), "last_error": string, "last_error_at": nullOr(dateTime),
                "retry_at": described(nullOr(dateTime), "when the next attempt is due after a failure, or null"),
            ]),
            "RemoteWriteInput": object(
                [
                    "name": string, "url": described(string, "http(s), such as http://prometheus:9090/api/v1/write; no credentials in it"),
                    "auth": choice(.choices(RemoteWriteEndpoint.Auth.self)), "username": described(string, "for basic"),
                    "secret": described(nullable("string"), "the bearer token or basic password; null or empty removes it"), "enabled": boolean,
                ], closed: true),
            "RemoteWriteList": record(["items": arrayOf(ref("RemoteWrite"))]),
            "Channel": record(channelProperties),
            "ChannelInput": object(channelInput, closed: true),
            "ChannelList": record(["items": arrayOf(ref("Channel"))]),
            "Silence": record([
                "id": integer, "matchers": string, "starts_at": dateTime, "ends_at": dateTime, "created_by": string, "comment": string,
                "active": described(boolean, "whether it mutes notifications now"),
            ]),
            "SilenceInput": object(
                [
                    "matchers": described(string, "name=value pairs separated by commas: rule=, host=, severity= or a rule label"),
                    "comment": described(string, "why (a ticket, a maintenance)"),
                    "starts_at": described(string, "RFC 3339 or epoch seconds; default now"),
                    "ends_at": described(string, "RFC 3339 or epoch seconds"),
                    "duration": described(string, "instead of ends_at: 90 (seconds), 30m, 2h, 1d or 1w"),
                ], required: ["matchers", "comment"], closed: true),
            "SilenceList": record(["items": arrayOf(ref("Silence"))]),
            "MaintenanceWindow": record([
                "id": integer, "name": string, "host_group": string, "cron": described(string, "when it opens (five-field cron)"),
                "duration_minutes": integer, "time_zone": string, "enabled": boolean, "comment": string, "open_now": boolean,
            ]),
            "MaintenanceWindowInput": object(
                [
                    "name": string, "host_group": string, "cron": described(string, "when it opens (five-field cron)"),
                    "duration_minutes": described(integer, "1 to 10080"), "time_zone": described(string, "IANA zone, default UTC"),
                    "enabled": boolean, "comment": string,
                ], required: ["name", "host_group", "cron"], closed: true),
            "MaintenanceList": record(["items": arrayOf(ref("MaintenanceWindow"))]),
            "Delivery": record([
                "id": integer, "channel": string, "rule": string, "status": string, "reason": string, "attempts": integer, "subject": string,
                "created_at": dateTime, "sent_at": nullOr(dateTime), "error": nullable("string"), "next_attempt_at": nullOr(dateTime),
            ]),
            "DeliveryList": record(["items": arrayOf(ref("Delivery"))]),
        ]
    }
}
