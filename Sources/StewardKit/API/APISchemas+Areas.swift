import Foundation

/// JSON Schemas of the bodies of each area's API (hosts, accounts, engine, backups, retention, rollouts, updates),
/// written from the handlers that build and read them. Keys are snake_case exactly as sent; fields that are always
/// present are `required`, nullable ones say so.
extension APISchemas {
    static var areas: [String: Any] {
        var schemas: [String: Any] = [:]
        let parts: [[String: Any]] = [
            hostSchemas, accountSchemas, engineSchemas, backupRepositorySchemas, backupPlanSchemas, retentionSchemas, rolloutSchemas, alertSchemas,
        ]
        for part in parts { schemas.merge(part) { a, _ in a } }
        return schemas
    }

    // MARK: building blocks

    static var string: [String: Any] { ["type": "string"] }
    static var integer: [String: Any] { ["type": "integer"] }
    static var number: [String: Any] { ["type": "number"] }
    static var boolean: [String: Any] { ["type": "boolean"] }
    static var dateTime: [String: Any] { ["type": "string", "format": "date-time"] }
    static var strings: [String: Any] { ["type": "array", "items": ["type": "string"] as [String: Any]] }

    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }
    static func nullable(_ type: String) -> [String: Any] { ["type": [type, "null"]] }
    static func nullOr(_ schema: [String: Any]) -> [String: Any] { ["anyOf": [schema, ["type": "null"] as [String: Any]]] }
    static func arrayOf(_ items: [String: Any]) -> [String: Any] { ["type": "array", "items": items] }
    static func described(_ schema: [String: Any], _ description: String) -> [String: Any] {
        var copy = schema
        copy["description"] = description
        return copy
    }

    /// An object whose every property is always present.
    static func record(_ properties: [String: Any]) -> [String: Any] {
        ["type": "object", "required": properties.keys.sorted(), "properties": properties]
    }

    /// An object with some required properties; `closed` when the handler rejects unknown keys.
    static func object(_ properties: [String: Any], required: [String] = [], closed: Bool = false) -> [String: Any] {
        var schema: [String: Any] = ["type": "object", "properties": properties]
        if !required.isEmpty { schema["required"] = required }
        if closed { schema["additionalProperties"] = false }
        return schema
    }

    /// `{"items": [...], "next": null}`: a whole list in one reply, with the paging field always null.
    static func page(_ item: String) -> [String: Any] {
        record(["items": arrayOf(ref(item)), "next": ["type": "null", "description": "always null: the whole list is in items"] as [String: Any]])
    }

    // MARK: hosts

    static var hostSchemas: [String: Any] {
        let hostProperties: [String: Any] = [
            "id": integer, "name": string, "address": string, "transport": ["type": "string", "enum": Host.Transport.allCases.map(\.rawValue)],
            "ssh_port": integer, "ssh_user": string, "become": ["type": "string", "enum": Host.Become.allCases.map(\.rawValue)],
            "groups": strings, "tags": strings,
            "variables": ["type": "object", "description": "the variables parsed from variables_yaml (empty when they do not parse)"],
            "variables_yaml": string, "metrics_url": nullable("string"),
            "metrics_allow": described(strings, "series names or globs (*) kept from metrics_url"), "notes": string, "enabled": boolean,
            "state": ["type": "string", "enum": Host.State.allCases.map(\.rawValue)], "state_detail": nullable("string"),
            "last_seen_at": timestamp, "created_at": dateTime, "updated_at": dateTime,
            "links": record(["self": string, "page": string]),
        ]
        let facts: [String: Any] = record([
            "gathered_at": dateTime, "job_id": nullable("integer"), "os": string, "kernel": string, "uptime_seconds": integer, "cpus": integer,
            "memory_mb": integer,
            "filesystems": arrayOf(record(["mount": string, "type": string, "size_bytes": integer, "available_bytes": integer])),
            "addresses": strings,
            "updates": record(["count": integer, "security_count": integer, "packages": strings, "security_packages": strings]),
            "reboot_required": boolean, "users": arrayOf(record(["name": string, "uid": integer])),
            "groups": arrayOf(record(["name": string, "gid": integer])),
        ])
        let hostInput: [String: Any] = object(
            [
                "name": string, "address": described(string, "DNS name or IP address"),
                "transport": described(
                    ["type": "string", "enum": Host.Transport.allCases.map(\.rawValue)], "local only for localhost, the panel host"),
                "ssh_port": integer, "ssh_user": string, "become": ["type": "string", "enum": Host.Become.allCases.map(\.rawValue)],
                "groups": described(strings, "group names (lowercased)"), "tags": described(strings, "tags (lowercased)"),
                "variables": described(string, "YAML mapping of name: value lines"),
                "metrics_url": described(nullable("string"), "null or empty for none"),
                "metrics_allow": [
                    "type": ["array", "null"], "items": ["type": "string"] as [String: Any],
                    "description": "series names or globs (*) to keep; null or empty for the default list",
                ],
                "notes": described(string, "at most 4096 bytes"), "enabled": boolean,
            ], closed: true)
        let verdicts: [[String: Any]] = [
            record(["status": ["const": "trusted"] as [String: Any], "fingerprint": string, "message": string]),
            record(["status": ["const": "unconfirmed"] as [String: Any], "presented": string, "message": string]),
            record([
                "status": ["const": "changed"] as [String: Any], "trusted": described(string, "the fingerprint trusted before"),
                "presented": string, "message": string,
            ]),
            record(["status": ["const": "unreachable"] as [String: Any], "detail": string, "message": string]),
        ]
        let group: [String: Any] = record([
            "name": string, "hosts": described(integer, "how many hosts are in the group"), "notes": string,
            "variables": ["type": "object", "description": "the group's variables parsed from YAML (empty when they do not parse)"],
        ])
        return [
            "Host": record(hostProperties),
            "HostFacts": facts,
            "HostDetail": [
                "allOf": [
                    ref("Host"),
                    record(["facts": described(nullOr(ref("HostFacts")), "the newest facts, or null before the first facts job")]),
                ]
            ],
            "HostList": record(["items": arrayOf(ref("Host"))]),
            "HostInput": hostInput,
            "HostCreate": ["allOf": [ref("HostInput"), ["required": ["name", "address"]] as [String: Any]]],
            "Group": group,
            "GroupList": record(["items": arrayOf(ref("Group"))]),
            "GroupInput": object(
                ["variables": described(string, "YAML mapping of name: value lines"), "notes": string], closed: true),
            "SSHIdentity": record(["public_key": string, "authorize_command": string]),
            "HostKeyTrust": object(["fingerprint": described(string, "the SHA256:... fingerprint you compared")], required: ["fingerprint"]),
            "HostKeyVerdict": ["oneOf": verdicts],
        ]
    }

    // MARK: accounts

    static var accountSchemas: [String: Any] {
        let matrix: [String: Any] = record([
            "hosts": described(strings, "hosts that have facts, by name"),
            "users": arrayOf(
                record([
                    "name": string,
                    "hosts": [
                        "type": "object", "description": "host name -> the user there",
                        "additionalProperties": record(["uid": integer, "gid": integer, "shell": string]),
                    ],
                ])),
            "conflicts": record([
                "uid": arrayOf(record(["name": string, "uids": arrayOf(integer)])),
                "name": arrayOf(record(["uid": integer, "names": strings])),
            ]),
        ])
        let hostAccounts: [String: Any] = record([
            "as_of": dateTime, "shells": strings,
            "users": arrayOf(
                record([
                    "name": string, "uid": integer, "gid": integer, "gecos": string, "home": string, "shell": string, "system": boolean,
                    "groups": strings,
                ])),
            "groups": arrayOf(record(["name": string, "gid": integer, "members": strings, "system": boolean])),
        ])
        let userChange: [String: Any] = object(
            [
                "action": ["type": "string", "enum": ["create", "update", "lock", "unlock", "delete"]], "name": string, "uid": integer,
                "primary_group": string, "groups": strings, "shell": string, "home": string,
                "create_home": ["type": "boolean", "default": true], "gecos": string,
                "password": object(
                    [
                        "mode": [
                            "type": "string", "enum": ["hash", "generate", "locked", "unchanged"],
                            "description": "any other value leaves the password unchanged",
                        ],
                        "hash": described(string, "a crypt(3) hash, for mode hash"),
                    ], required: ["mode"]),
                "expires": described(string, "YYYY-MM-DD, or never"), "authorized_keys": strings, "admin": boolean,
                "remove_home": ["type": "boolean", "default": false, "description": "on delete: remove the home directory too"],
            ], required: ["action", "name"])
        let groupChange: [String: Any] = object(
            [
                "action": ["type": "string", "enum": ["create", "update", "delete"]], "name": string, "gid": integer, "members": strings,
            ], required: ["action", "name"])
        let kind: [String: Any] = ["type": "string", "enum": ["user", "group"]]
        let definition: [String: Any] = record([
            "kind": kind, "path": string, "name": string, "apply_to": strings, "state": ["type": "string", "enum": ["present", "absent"]],
            "hosts": arrayOf(record(["host": string, "in_sync": boolean, "drift": strings])),
            "drifting": described(strings, "hosts that differ from the definition"),
        ])
        let invalidDefinition: [String: Any] = record([
            "kind": kind, "path": string,
            "errors": ["type": "object", "additionalProperties": ["type": "string"] as [String: Any], "description": "field -> what is wrong"],
        ])
        let list: [String: Any] = ["type": ["array", "string"], "items": ["type": "string"] as [String: Any]]
        let common: [String: Any] = [
            "state": ["type": "string", "enum": ["present", "absent"], "description": "anything but absent means present"],
            "apply_to": described(list, "host groups (or hosts): a list, or one string separated by commas or spaces"),
            "message": described(string, "the commit message, 1 to 500 characters"),
        ]
        let userFields: [String: Any] = [
            "uid": ["type": ["integer", "string"]], "groups": described(list, "a list, or one string separated by commas or spaces"),
            "shell": string, "gecos": string, "authorized_keys": described(list, "a list, or one string with a key per line"),
        ]
        let groupFields: [String: Any] = [
            "gid": ["type": ["integer", "string"]], "members": described(list, "a list, or one string separated by commas or spaces"),
        ]
        let desiredUser: [String: Any] = object(common.merging(userFields) { a, _ in a }, required: ["apply_to", "message"])
        let desiredGroup: [String: Any] = object(common.merging(groupFields) { a, _ in a }, required: ["apply_to", "message"])
        return [
            "AccountMatrix": matrix,
            "HostAccounts": hostAccounts,
            "UserChange": userChange,
            "UserChangeJob": [
                "allOf": [
                    ref("Job"),
                    object(["generated_password": described(string, "only when password.mode was generate: the new password, shown once")]),
                ]
            ],
            "GroupChange": groupChange,
            "DesiredUsers": record(["items": arrayOf(["oneOf": [definition, invalidDefinition]])]),
            "DesiredUser": desiredUser,
            "DesiredGroup": desiredGroup,
            "DefinitionCommit": record(["commit": described(string, "the new commit's hash"), "path": string]),
        ]
    }

    // MARK: engine, config history, jobs, audit, the caller

    static var engineSchemas: [String: Any] {
        let taskStatus: [String: Any] = ["type": "string", "enum": ["ok", "changed", "failed", "unreachable", "skipped"]]
        let hostResult: [String: Any] = record([
            "host": string, "status": taskStatus, "ok": integer, "changed": integer, "failed": integer, "unreachable": integer,
            "skipped": integer, "message": nullable("string"),
            "tasks": arrayOf(
                record(["task": string, "status": string, "detail": described(nullable("object"), "the task's result as the engine reported it")])),
        ])
        let playbookRun: [String: Any] = object(
            [
                "playbook": described(string, "a path under playbooks/, like playbooks/ping.yml"),
                "targets": described(strings, "host or group names; left out, every enabled host"),
                "timeout_seconds": ["type": "integer", "minimum": 10, "maximum": 86_400],
                "task_timeout_seconds": ["type": "integer", "minimum": 0, "maximum": 86_400], "reason": string,
            ], required: ["playbook"], closed: true)
        let adhocRun: [String: Any] = object(
            [
                "command": ["type": "array", "items": ["type": "string"] as [String: Any], "minItems": 1, "maxItems": 64],
                "targets": ["type": "array", "items": ["type": "string"] as [String: Any], "minItems": 1], "reason": string,
            ], required: ["command", "targets"], closed: true)
        let anyJSON: [String: Any] = ["description": "the stored JSON value, or null"]
        let auditEvent: [String: Any] = record([
            "id": integer, "at": dateTime, "actor": string, "source": nullable("string"), "action": string, "target": string,
            "before": anyJSON, "after": anyJSON, "request_id": nullable("string"),
        ])
        let me: [String: Any] = object(
            [
                "user": string, "roles": arrayOf(["type": "string", "enum": Role.allCases.map(\.rawValue)]),
                "permissions": arrayOf(["type": "string", "enum": Permission.allCases.map(\.rawValue)]),
                "via": ["type": "string", "enum": ["session", "token"]], "token_id": described(integer, "only when via is token"),
            ], required: ["user", "roles", "permissions", "via"])
        return [
            "PlaybookList": record(["items": described(strings, "playbook paths"), "commit": described(string, "the config repo's HEAD")]),
            "PlaybookRun": playbookRun,
            "AdhocRun": adhocRun,
            "HostResults": record(["items": arrayOf(hostResult)]),
            "Commit": record(["commit": string, "author": string, "date": dateTime, "subject": string]),
            "CommitList": record(["items": arrayOf(ref("Commit"))]),
            "JobAcknowledgement": record(["id": integer, "acknowledged": ["const": true] as [String: Any]]),
            "AuditEvent": auditEvent,
            "AuditList": record(["items": arrayOf(ref("AuditEvent")), "next": described(nullable("string"), "URL of the next page, or null")]),
            "Me": me,
            "Binary": ["type": "string", "format": "binary"],
        ]
    }

    // MARK: backups

    static var backupRepositorySchemas: [String: Any] {
        let repository: [String: Any] = record([
            "id": integer, "name": string, "kind": ["type": "string", "enum": BackupRepository.Kind.allCases.map(\.rawValue)],
            "host_id": integer, "path": string, "builtin": nullable("string"), "size_bytes": nullable("integer"),
            "snapshot_count": nullable("integer"), "status_at": timestamp, "status_error": nullable("string"), "check_at": timestamp,
            "check_ok": nullable("boolean"), "check_message": nullable("string"),
        ])
        let repositoryInput: [String: Any] = object(
            [
                "name": described(string, "1 to 100 characters"),
                "kind": ["type": "string", "enum": BackupRepository.Kind.allCases.map(\.rawValue), "default": "local"],
                "host": ["type": ["string", "integer"], "description": "the host's id or name; localhost when left out"],
                "path": described(string, "an absolute path"),
                "password": described(string, "at least 8 characters for a new repository; the existing one's to import"),
                "init": ["type": "boolean", "default": true, "description": "false imports an existing repository"],
                "mode": described(string, "import means init: false (read only when init is left out)"),
            ], required: ["name", "path", "password"])
        let snapshot: [String: Any] = record([
            "id": string, "short_id": string, "time": dateTime, "hostname": string, "paths": strings, "tags": strings,
            "plan_id": nullable("integer"),
        ])
        let entry: [String: Any] = record([
            "name": string, "path": string, "type": described(string, "file, dir, symlink, ..."), "size": nullable("integer"),
            "mtime": dateTime, "permissions": string,
        ])
        let restore: [String: Any] = object(
            [
                "target": described(string, "an absolute directory to restore into (not /)"),
                "include": [
                    "type": ["array", "string"], "items": ["type": "string"] as [String: Any],
                    "description": "paths inside the snapshot: a list, or one string with a path per line; left out, everything",
                ],
                "host": ["type": ["string", "integer"], "description": "where to restore: a host's id or name (default: the plan's host)"],
                "plan": ["type": ["integer", "string"], "description": "the plan the snapshot belongs to"],
                "confirm": described(string, "the target again, needed when it already holds files or is a live path"),
            ], required: ["target"])
        return [
            "BackupRepository": repository,
            "BackupRepositoryList": page("BackupRepository"),
            "BackupRepositoryInput": repositoryInput,
            "BackupRepositoryPassword": object(["password": string], required: ["password"]),
            "BackupSnapshot": snapshot,
            "BackupSnapshotList": page("BackupSnapshot"),
            "BackupPlanSnapshotList": record([
                "items": arrayOf(ref("BackupSnapshot")), "repository_id": integer, "next": ["type": "null"] as [String: Any],
            ]),
            "BackupHostSnapshotList": record([
                "items": arrayOf(["allOf": [ref("BackupSnapshot"), record(["repository_id": integer])]]),
                "next": ["type": "null"] as [String: Any],
            ]),
            "BackupTree": record(["path": string, "items": arrayOf(entry)]),
            "BackupRestore": restore,
        ]
    }

    static var backupPlanSchemas: [String: Any] {
        let catchUp: [String: Any] = ["type": "string", "enum": Schedule.CatchUp.allCases.map(\.rawValue)]
        let run: [String: Any] = record([
            "job_id": integer, "kind": ["type": "string", "enum": ["backup", "check", "forget", "restore"]],
            "state": ["type": "string", "enum": Job.State.allCases.map(\.rawValue)], "plan_id": nullable("integer"),
            "repository_id": nullable("integer"), "started_at": dateTime, "finished_at": timestamp, "snapshot_id": nullable("string"),
            "files_new": nullable("integer"), "files_changed": nullable("integer"), "files_unmodified": nullable("integer"),
            "bytes_added": nullable("integer"), "bytes_processed": nullable("integer"), "duration_ms": nullable("integer"),
            "removed_snapshots": nullable("integer"), "detail": nullable("string"),
        ])
        let plan: [String: Any] = record([
            "id": integer, "name": string, "host_id": integer, "repository_id": integer, "paths": strings, "excludes": strings,
            "keep_last": nullable("integer"), "keep_hourly": nullable("integer"), "keep_daily": nullable("integer"),
            "keep_weekly": nullable("integer"), "keep_monthly": nullable("integer"), "keep_yearly": nullable("integer"),
            "keep_within": described(string, "a restic duration such as 7d, or empty"), "prune_after_run": boolean,
            "pre_hook": described(strings, "the hook script's name, or empty"), "post_hook": described(strings, "the hook script's name, or empty"),
            "verify_read_data_subset": string, "alert_after_hours": integer, "paused": boolean, "builtin": nullable("string"),
            "backup_schedule": ref("BackupSchedule"), "verify_schedule": nullOr(ref("BackupSchedule")),
            "prune_schedule": nullOr(ref("BackupSchedule")), "backup_schedule_id": nullable("integer"),
            "verify_schedule_id": nullable("integer"), "prune_schedule_id": nullable("integer"),
            "last_run": nullOr(ref("BackupRun")), "last_success": nullOr(ref("BackupRun")),
        ])
        let list: [String: Any] = ["type": ["array", "string"], "items": ["type": "string"] as [String: Any]]
        let hook: [String: Any] = [
            "type": ["array", "string"], "items": ["type": "string"] as [String: Any], "maxItems": 1,
            "description": "the name of a script in the config repo's hooks/ folder (a one-element list); empty for none",
        ]
        let count: [String: Any] = [
            "anyOf": [
                ["type": "integer", "minimum": 0, "maximum": 100_000] as [String: Any],
                ["type": "string", "pattern": "^ *[0-9]{0,5} *$"] as [String: Any], ["type": "null"] as [String: Any],
            ],
            "description": "a whole number from 0 to 100000; empty, 0 or null for no rule",
        ]
        let wholeNumber: [String: Any] = ["type": ["integer", "string"]]
        let retentionInput: [String: Any] = [
            "keep_last": count, "keep_hourly": count, "keep_daily": count, "keep_weekly": count, "keep_monthly": count, "keep_yearly": count,
            "keep_within": [
                "type": ["string", "null"], "pattern": "^ *([0-9]{1,6}[ymdh])* *$",
                "description": "a restic duration such as 7d or 1y2m; empty or null for none",
            ] as [String: Any],
        ]
        let planFields: [String: Any] = [
            "name": described(string, "1 to 100 characters"),
            "host": ["type": ["string", "integer"], "description": "the host's id or name; left out, where the repository is reached"],
            "repository": ["type": ["integer", "string"], "description": "the repository's id"],
            "paths": described(list, "absolute paths: a list, or one string with a path per line"),
            "excludes": described(list, "a list, or one string with a pattern per line"), "pre_hook": hook, "post_hook": hook,
            "prune_after_run": boolean, "paused": boolean,
            "verify_read_data_subset": described(string, "such as 5% or 1/10; empty checks structure only"),
            "alert_after_hours": described(wholeNumber, "1 to 8784"), "backup_cron": string, "backup_time_zone": string,
            "backup_jitter_seconds": wholeNumber, "backup_catch_up": catchUp, "verify_cron": described(string, "empty turns verification off"),
            "verify_time_zone": string, "verify_jitter_seconds": wholeNumber, "verify_catch_up": catchUp,
            "prune_cron": described(string, "empty turns the prune schedule off"), "prune_time_zone": string,
            "prune_jitter_seconds": wholeNumber, "prune_catch_up": catchUp,
        ]
        let planInput: [String: Any] = object(retentionInput.merging(planFields) { a, _ in a })
        let preview: [String: Any] = record([
            "keep": described(integer, "snapshots kept"), "remove": described(integer, "snapshots removed"),
            "flags": described(strings, "the restic forget flags"),
            "items": arrayOf(record(["id": string, "short_id": string, "time": dateTime, "keep": boolean, "reasons": strings])),
        ])
        return [
            "BackupSchedule": record(["cron": string, "time_zone": string, "jitter_seconds": integer, "catch_up": catchUp]),
            "BackupRun": run,
            "BackupRunList": page("BackupRun"),
            "BackupPlan": plan,
            "BackupPlanList": page("BackupPlan"),
            "BackupPlanInput": planInput,
            "BackupPlanCreate": ["allOf": [ref("BackupPlanInput"), ["required": ["name", "repository", "paths"]] as [String: Any]]],
            "BackupRetentionInput": object(retentionInput),
            "BackupRetentionPreview": preview,
        ]
    }

    // MARK: data retention

    static var retentionSchemas: [String: Any] {
        let kind: [String: Any] = ["type": "string", "enum": DataRetention.Kind.allCases.map(\.rawValue)]
        let dataClass: [String: Any] = ["type": "string", "enum": DataClass.allCases.map(\.rawValue)]
        let policyProperties: [String: Any] = [
            "kind": kind, "max_age_days": nullable("number"), "max_bytes": nullable("integer"),
            "tier_days": ["type": ["array", "null"], "items": ["type": "number"] as [String: Any]],
            "rules": arrayOf(ref("DataRetentionRule")), "keep_while_firing": boolean, "failed_days": nullable("number"),
            "keep_failed_until_acknowledged": boolean,
        ]
        let policyRecord: [String: Any] = record([
            "data_class": dataClass, "title": string, "policy": ref("DataRetentionPolicy"), "summary": string, "is_default": boolean,
            "default": ref("DataRetentionPolicy"), "pending": nullOr(ref("DataRetentionPolicy")), "pending_summary": nullable("string"),
            "pending_at": timestamp, "pending_by": nullable("string"), "kinds": arrayOf(kind), "rule_fields": strings, "tier_names": strings,
        ])
        let preview: [String: Any] = record([
            "data_class": dataClass, "rows": integer, "bytes": integer, "oldest": timestamp, "newest": timestamp, "class_rows": integer,
            "share": described(number, "the share of the class that would go, 0 to 1"), "needs_confirmation": boolean,
            "stages": arrayOf(record(["label": string, "rows": integer, "bytes": integer])),
        ])
        let storage: [String: Any] = record([
            "classes": arrayOf(
                record([
                    "data_class": dataClass, "title": string, "rows": integer, "bytes": integer, "rows_last_week": integer,
                    "bytes_per_day": number, "oldest": timestamp,
                ])),
            "database_bytes": integer, "free_bytes": integer, "filesystem_bytes": integer, "bytes_per_day": number, "read_at": dateTime,
            "days_until_full": nullable("number"),
        ])
        let hold: [String: Any] = record([
            "id": integer, "host": described(nullable("string"), "null holds every host"), "from": timestamp, "to": timestamp,
            "reason": string, "created_by": string, "created_at": dateTime,
        ])
        let confirm: [String: Any] = [
            "confirm": described(string, "the data class's name, needed when the change would delete more than 25 %")
        ]
        let holdInput: [String: Any] = object(
            [
                "host": ["type": ["string", "null"], "description": "a host name; left out, null or empty, every host"],
                "from": described(string, "YYYY-MM-DD or an RFC 3339 time; left out, open"),
                "to": described(string, "YYYY-MM-DD or an RFC 3339 time; left out, open"),
                "reason": described(string, "why the data is held (case, ticket)"),
            ], required: ["reason"], closed: true)
        return [
            "DataRetentionRule": record(["field": string, "pattern": described(string, "comma-separated globs"), "days": number]),
            "DataRetentionPolicy": record(policyProperties),
            "DataRetentionInput": object(policyProperties.merging(confirm) { a, _ in a }, required: ["kind"]),
            "DataRetentionRecord": policyRecord,
            "DataRetentionList": page("DataRetentionRecord"),
            "DataRetentionPreview": preview,
            "StorageFigures": storage,
            "LegalHold": hold,
            "LegalHoldList": page("LegalHold"),
            "LegalHoldInput": holdInput,
        ]
    }

    // MARK: rollouts and pending updates

    static var rolloutSchemas: [String: Any] {
        let what: [String: Any] = ["type": "string", "enum": Rollout.What.allCases.map(\.rawValue)]
        let waveKind: [String: Any] = ["type": "string", "enum": Rollout.WaveKind.allCases.map(\.rawValue)]
        let reboot: [String: Any] = ["type": "string", "enum": Rollout.Reboot.allCases.map(\.rawValue)]
        let summary: [String: Any] = record([
            "id": integer, "title": string, "what": what, "state": ["type": "string", "enum": Rollout.State.allCases.map(\.rawValue)],
            "state_detail": string, "requested_by": string, "revision": integer, "created_at": dateTime, "expires_at": dateTime,
            "current_wave": integer, "link": string,
        ])
        let details: [String: Any] = record([
            "packages": strings, "playbook": string, "commit": string, "targets": strings, "tags": strings, "canary": integer,
            "wave_kind": waveKind, "wave_size": integer, "pause_seconds": integer, "max_failure_percent": integer, "reboot": reboot,
            "window": described(nullable("integer"), "the maintenance window's id"), "approvals_required": integer, "check_url": string,
            "settle_seconds": integer, "plan_job_id": nullable("integer"), "planned_at": timestamp, "plan_stale": boolean,
            "rollback_of": nullable("integer"), "finished_at": timestamp,
            "plan": arrayOf(record(["host": string, "diff": string, "problem": string, "packages": arrayOf(ref("PendingUpdate"))])),
            "approvals": arrayOf(
                record([
                    "revision": integer, "actor": string, "decision": ["type": "string", "enum": ["approve", "deny"]], "reason": string,
                    "at": dateTime,
                ])),
            "waves": arrayOf(
                record([
                    "number": integer, "hosts": strings, "job_id": nullable("integer"),
                    "state": described(string, "pending, running, gating, passed or failed"), "gate": string, "started_at": timestamp,
                    "finished_at": timestamp,
                ])),
            "results": arrayOf(
                record([
                    "host": string, "wave": integer, "status": string, "rebooted": boolean, "detail": string,
                    "packages": arrayOf(record(["package": string, "from": string, "to": string])),
                ])),
        ])
        let input: [String: Any] = object([
            "title": described(string, "1 to 200 characters"), "what": what,
            "packages": described(strings, "package names (name=version pins a version), when what is packages"),
            "playbook": described(string, "a playbook path, when what is playbook"),
            "commit": described(string, "the config repo commit to run the playbook from (7 to 64 hex digits); empty for the newest"),
            "targets": described(strings, "hosts or groups"), "tags": strings,
            "canary": ["type": "integer", "minimum": 0, "maximum": 1000], "wave_kind": waveKind,
            "wave_size": described(integer, "hosts per wave (1 to 10000), or a percentage (1 to 100)"),
            "pause_seconds": ["type": "integer", "minimum": 0, "maximum": 86_400],
            "max_failure_percent": ["type": "integer", "minimum": 0, "maximum": 100], "reboot": reboot,
            "window": ["type": ["integer", "null"], "description": "a maintenance window's id; null for none"],
            "approvals_required": ["type": "integer", "minimum": 0, "maximum": 10],
            "expires_hours": ["type": "integer", "minimum": 1, "maximum": 720, "description": "how long approval stays open"],
            "check_url": described(string, "an http(s) URL that must answer after each wave; empty for none"),
            "settle_seconds": ["type": "integer", "minimum": 0, "maximum": 86_400],
        ])
        let update: [String: Any] = record([
            "package": string, "current": described(string, "empty when the package would be newly installed"), "candidate": string,
            "origin": string, "security": boolean,
        ])
        let fleet: [String: Any] = record([
            "items": arrayOf(
                record([
                    "host_id": integer, "host": string, "gathered_at": timestamp, "count": integer, "security_count": integer,
                    "reboot_required": boolean, "security_pending_days": nullable("number"), "updates": arrayOf(ref("PendingUpdate")),
                ])),
            "next": ["type": "null"] as [String: Any],
        ])
        let packages: [String: Any] = record([
            "items": arrayOf(
                record([
                    "package": string, "security": boolean,
                    "hosts": arrayOf(record(["host": string, "current": string, "candidate": string, "origin": string])),
                ])),
            "next": ["type": "null"] as [String: Any],
        ])
        return [
            "RolloutSummary": summary,
            "RolloutList": page("RolloutSummary"),
            "Rollout": ["allOf": [ref("RolloutSummary"), details]],
            "RolloutCreated": [
                "allOf": [ref("Rollout"), record(["plan_job": described(ref("Job"), "the check-mode job that plans the rollout")])]
            ],
            "RolloutInput": input,
            "RolloutCreate": [
                "allOf": [
                    ref("RolloutInput"), ["required": ["title"]] as [String: Any],
                    ["anyOf": [["required": ["targets"]] as [String: Any], ["required": ["tags"]] as [String: Any]]] as [String: Any],
                ]
            ],
            "RolloutApproval": object(["reason": string]),
            "RolloutDenial": object(["reason": ["type": "string", "minLength": 1]], required: ["reason"]),
            "PendingUpdate": update,
            "PendingUpdatesList": fleet,
            "PendingPackageList": packages,
        ]
    }
}
