import Foundation

/// JSON Schemas of the bodies of each area's API (hosts, accounts, engine, backups, retention, rollouts, updates),
/// written from the handlers that build and read them. Keys are snake_case exactly as sent; fields that are always
/// present are `required`, nullable ones say so.
extension APISchemas {
    static var areas: [String: JSONValue] {
        var schemas: [String: JSONValue] = [:]
        let parts: [[String: JSONValue]] = [
            hostSchemas, accountSchemas, engineSchemas, backupRepositorySchemas, backupPlanSchemas, retentionSchemas, rolloutSchemas, alertSchemas,
            serviceSchemas, logSchemas, sloSchemas,
        ]
        for part in parts { schemas.merge(part) { a, _ in a } }
        return schemas
    }

    // MARK: building blocks

    static var string: JSONValue { ["type": "string"] }
    static var integer: JSONValue { ["type": "integer"] }
    static var number: JSONValue { ["type": "number"] }
    static var boolean: JSONValue { ["type": "boolean"] }
    static var dateTime: JSONValue { ["type": "string", "format": "date-time"] }
    static var strings: JSONValue { ["type": "array", "items": ["type": "string"] as JSONValue] }

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }
    static func nullable(_ type: String) -> JSONValue { ["type": [.string(type), "null"]] }
    static func nullOr(_ schema: JSONValue) -> JSONValue { ["anyOf": [schema, ["type": "null"] as JSONValue]] }
    static func arrayOf(_ items: JSONValue) -> JSONValue { ["type": "array", "items": items] }
    static func described(_ schema: JSONValue, _ description: String) -> JSONValue {
        var copy = schema
        copy["description"] = .string(description)
        return copy
    }

    /// An object whose every property is always present.
    static func record(_ properties: [String: JSONValue]) -> JSONValue {
        ["type": "object", "required": JSONValue(properties.keys.sorted()), "properties": .object(properties)]
    }

    /// An object with some required properties; `closed` when the handler rejects unknown keys.
    static func object(_ properties: [String: JSONValue], required: [String] = [], closed: Bool = false) -> JSONValue {
        var schema: JSONValue = ["type": "object", "properties": .object(properties)]
        if !required.isEmpty { schema["required"] = JSONValue(required) }
        if closed { schema["additionalProperties"] = false }
        return schema
    }

    /// `{"items": [...], "next": null}`: a whole list in one reply, with the paging field always null.
    static func page(_ item: String) -> JSONValue {
        record(["items": arrayOf(ref(item)), "next": ["type": "null", "description": "always null: the whole list is in items"] as JSONValue])
    }

    // MARK: hosts

    static var hostSchemas: [String: JSONValue] {
        let hostProperties: [String: JSONValue] = [
            "id": integer, "name": string, "address": string, "transport": ["type": "string", "enum": .choices(Host.Transport.self)],
            "ssh_port": integer, "ssh_user": string, "become": ["type": "string", "enum": .choices(Host.Become.self)],
            "groups": strings, "tags": strings,
            "variables": ["type": "object", "description": "the variables parsed from variables_yaml (empty when they do not parse)"],
            "variables_yaml": string, "metrics_url": nullable("string"),
            "metrics_allow": described(strings, "series names or globs (*) kept from metrics_url"), "notes": string, "enabled": boolean,
            "state": ["type": "string", "enum": .choices(Host.State.self)], "state_detail": nullable("string"),
            "last_seen_at": timestamp, "created_at": dateTime, "updated_at": dateTime,
            "links": record(["self": string, "page": string]),
        ]
        let facts: JSONValue = record([
            "gathered_at": dateTime, "job_id": nullable("integer"), "os": string, "kernel": string, "uptime_seconds": integer, "cpus": integer,
            "memory_mb": integer,
            "filesystems": arrayOf(record(["mount": string, "type": string, "size_bytes": integer, "available_bytes": integer])),
            "addresses": strings,
            "updates": record(["count": integer, "security_count": integer, "packages": strings, "security_packages": strings]),
            "reboot_required": boolean, "users": arrayOf(record(["name": string, "uid": integer])),
            "groups": arrayOf(record(["name": string, "gid": integer])),
        ])
        let hostInput: JSONValue = object(
            [
                "name": string, "address": described(string, "DNS name or IP address"),
                "transport": described(
                    ["type": "string", "enum": .choices(Host.Transport.self)], "local only for localhost, the panel host"),
                "ssh_port": integer, "ssh_user": string, "become": ["type": "string", "enum": .choices(Host.Become.self)],
                "groups": described(strings, "group names (lowercased)"), "tags": described(strings, "tags (lowercased)"),
                "variables": described(string, "YAML mapping of name: value lines"),
                "metrics_url": described(nullable("string"), "null or empty for none"),
                "metrics_allow": [
                    "type": ["array", "null"], "items": ["type": "string"] as JSONValue,
                    "description": "series names or globs (*) to keep; null or empty for the default list",
                ],
                "notes": described(string, "at most 4096 bytes"), "enabled": boolean,
            ], closed: true)
        let verdicts: [JSONValue] = [
            record(["status": ["const": "trusted"] as JSONValue, "fingerprint": string, "message": string]),
            record(["status": ["const": "unconfirmed"] as JSONValue, "presented": string, "message": string]),
            record([
                "status": ["const": "changed"] as JSONValue, "trusted": described(string, "the fingerprint trusted before"),
                "presented": string, "message": string,
            ]),
            record(["status": ["const": "unreachable"] as JSONValue, "detail": string, "message": string]),
        ]
        let group: JSONValue = record([
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
            "HostCreate": ["allOf": [ref("HostInput"), ["required": ["name", "address"]] as JSONValue]],
            "Group": group,
            "GroupList": record(["items": arrayOf(ref("Group"))]),
            "GroupInput": object(
                ["variables": described(string, "YAML mapping of name: value lines"), "notes": string], closed: true),
            "SSHIdentity": record(["public_key": string, "authorize_command": string]),
            "HostKeyTrust": object(
                ["fingerprint": described(string, "the SHA256:... fingerprint you compared")], required: ["fingerprint"], closed: true),
            "HostKeyVerdict": ["oneOf": .array(verdicts)],
        ]
    }

    // MARK: accounts

    static var accountSchemas: [String: JSONValue] {
        let matrix: JSONValue = record([
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
        let hostAccounts: JSONValue = record([
            "as_of": dateTime, "shells": strings,
            "users": arrayOf(
                record([
                    "name": string, "uid": integer, "gid": integer, "gecos": string, "home": string, "shell": string, "system": boolean,
                    "groups": strings,
                ])),
            "groups": arrayOf(record(["name": string, "gid": integer, "members": strings, "system": boolean])),
        ])
        let userChange: JSONValue = object(
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
        let groupChange: JSONValue = object(
            [
                "action": ["type": "string", "enum": ["create", "update", "delete"]], "name": string, "gid": integer, "members": strings,
            ], required: ["action", "name"])
        let kind: JSONValue = ["type": "string", "enum": ["user", "group"]]
        let definition: JSONValue = record([
            "kind": kind, "path": string, "name": string, "apply_to": strings, "state": ["type": "string", "enum": ["present", "absent"]],
            "hosts": arrayOf(record(["host": string, "in_sync": boolean, "drift": strings])),
            "drifting": described(strings, "hosts that differ from the definition"),
        ])
        let invalidDefinition: JSONValue = record([
            "kind": kind, "path": string,
            "errors": ["type": "object", "additionalProperties": ["type": "string"] as JSONValue, "description": "field -> what is wrong"],
        ])
        let list: JSONValue = ["type": ["array", "string"], "items": ["type": "string"] as JSONValue]
        let common: [String: JSONValue] = [
            "state": ["type": "string", "enum": ["present", "absent"], "description": "anything but absent means present"],
            "apply_to": described(list, "host groups (or hosts): a list, or one string separated by commas or spaces"),
            "message": described(string, "the commit message, 1 to 500 characters"),
        ]
        let userFields: [String: JSONValue] = [
            "uid": ["type": ["integer", "string"]], "groups": described(list, "a list, or one string separated by commas or spaces"),
            "shell": string, "gecos": string, "authorized_keys": described(list, "a list, or one string with a key per line"),
        ]
        let groupFields: [String: JSONValue] = [
            "gid": ["type": ["integer", "string"]], "members": described(list, "a list, or one string separated by commas or spaces"),
        ]
        let desiredUser: JSONValue = object(common.merging(userFields) { a, _ in a }, required: ["apply_to", "message"])
        let desiredGroup: JSONValue = object(common.merging(groupFields) { a, _ in a }, required: ["apply_to", "message"])
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

    static var engineSchemas: [String: JSONValue] {
        let taskStatus: JSONValue = ["type": "string", "enum": ["ok", "changed", "failed", "unreachable", "skipped"]]
        let hostResult: JSONValue = record([
            "host": string, "status": taskStatus, "ok": integer, "changed": integer, "failed": integer, "unreachable": integer,
            "skipped": integer, "message": nullable("string"),
            "tasks": arrayOf(
                record(["task": string, "status": string, "detail": described(nullable("object"), "the task's result as the engine reported it")])),
        ])
        let playbookRun: JSONValue = object(
            [
                "playbook": described(string, "a path under playbooks/, like playbooks/ping.yml"),
                "targets": described(strings, "host or group names; left out, every enabled host"),
                "timeout_seconds": ["type": "integer", "minimum": 10, "maximum": 86_400],
                "task_timeout_seconds": ["type": "integer", "minimum": 0, "maximum": 86_400], "reason": string,
            ], required: ["playbook"], closed: true)
        let adhocRun: JSONValue = object(
            [
                "command": ["type": "array", "items": ["type": "string"] as JSONValue, "minItems": 1, "maxItems": 64],
                "targets": ["type": "array", "items": ["type": "string"] as JSONValue, "minItems": 1], "reason": string,
            ], required: ["command", "targets"], closed: true)
        let anyJSON: JSONValue = ["description": "the stored JSON value, or null"]
        let auditEvent: JSONValue = record([
            "id": integer, "at": dateTime, "actor": string, "source": nullable("string"), "action": string, "target": string,
            "before": anyJSON, "after": anyJSON, "request_id": nullable("string"),
        ])
        let me: JSONValue = object(
            [
                "user": string, "roles": arrayOf(["type": "string", "enum": .choices(Role.self)]),
                "permissions": arrayOf(["type": "string", "enum": .choices(Permission.self)]),
                "via": ["type": "string", "enum": ["session", "token"]], "token_id": described(integer, "only when via is token"),
            ], required: ["user", "roles", "permissions", "via"])
        return [
            "PlaybookList": record(["items": described(strings, "playbook paths"), "commit": described(string, "the config repo's HEAD")]),
            "PlaybookRun": playbookRun,
            "AdhocRun": adhocRun,
            "HostResults": record(["items": arrayOf(hostResult)]),
            "Commit": record(["commit": string, "author": string, "date": dateTime, "subject": string]),
            "CommitList": record(["items": arrayOf(ref("Commit"))]),
            "JobAcknowledgement": record(["id": integer, "acknowledged": ["const": true] as JSONValue]),
            "AuditEvent": auditEvent,
            "AuditList": record(["items": arrayOf(ref("AuditEvent")), "next": described(nullable("string"), "URL of the next page, or null")]),
            "Me": me,
            "Binary": ["type": "string", "format": "binary"],
        ]
    }

    // MARK: backups

    static var backupRepositorySchemas: [String: JSONValue] {
        let repository: JSONValue = record([
            "id": integer, "name": string, "kind": ["type": "string", "enum": .choices(BackupRepository.Kind.self)],
            "host_id": integer, "path": string, "builtin": nullable("string"), "size_bytes": nullable("integer"),
            "snapshot_count": nullable("integer"), "status_at": timestamp, "status_error": nullable("string"), "check_at": timestamp,
            "check_ok": nullable("boolean"), "check_message": nullable("string"),
        ])
        let repositoryInput: JSONValue = object(
            [
                "name": described(string, "1 to 100 characters"),
                "kind": ["type": "string", "enum": .choices(BackupRepository.Kind.self), "default": "local"],
                "host": ["type": ["string", "integer"], "description": "the host's id or name; localhost when left out"],
                "path": described(string, "an absolute path"),
                "password": described(string, "at least 8 characters for a new repository; the existing one's to import"),
                "init": ["type": "boolean", "default": true, "description": "false imports an existing repository"],
                "mode": described(string, "import means init: false (read only when init is left out)"),
            ], required: ["name", "path", "password"])
        let snapshot: JSONValue = object(
            [
                "id": string, "short_id": string, "time": dateTime, "hostname": string, "paths": strings, "tags": strings,
                "plan_id": nullable("integer"),
                "repository_id": described(integer, "in a host's list, which spans repositories; left out in a repository's or a plan's"),
            ], required: ["id", "short_id", "time", "hostname", "paths", "tags", "plan_id"])
        let entry: JSONValue = record([
            "name": string, "path": string, "type": described(string, "file, dir, symlink, ..."), "size": nullable("integer"),
            "mtime": dateTime, "permissions": string,
        ])
        let restore: JSONValue = object(
            [
                "target": described(string, "an absolute directory to restore into (not /)"),
                "include": [
                    "type": ["array", "string"], "items": ["type": "string"] as JSONValue,
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
                "items": arrayOf(ref("BackupSnapshot")), "repository_id": integer, "next": ["type": "null"] as JSONValue,
            ]),
            "BackupHostSnapshotList": described(page("BackupSnapshot"), "a host's snapshots across repositories, each with its repository_id"),
            "BackupTree": record(["path": string, "items": arrayOf(entry)]),
            "BackupRestore": restore,
        ]
    }

    static var backupPlanSchemas: [String: JSONValue] {
        let catchUp: JSONValue = ["type": "string", "enum": .choices(Schedule.CatchUp.self)]
        let run: JSONValue = record([
            "job_id": integer, "kind": ["type": "string", "enum": ["backup", "check", "forget", "restore"]],
            "state": ["type": "string", "enum": .choices(Job.State.self)], "plan_id": nullable("integer"),
            "repository_id": nullable("integer"), "started_at": timestamp, "finished_at": timestamp, "snapshot_id": nullable("string"),
            "files_new": nullable("integer"), "files_changed": nullable("integer"), "files_unmodified": nullable("integer"),
            "bytes_added": nullable("integer"), "bytes_processed": nullable("integer"), "duration_ms": nullable("integer"),
            "removed_snapshots": nullable("integer"), "detail": nullable("string"),
        ])
        let plan: JSONValue = record([
            "id": integer, "name": string, "host_id": integer, "repository_id": integer, "paths": strings, "excludes": strings,
            "keep_last": nullable("integer"), "keep_hourly": nullable("integer"), "keep_daily": nullable("integer"),
            "keep_weekly": nullable("integer"), "keep_monthly": nullable("integer"), "keep_yearly": nullable("integer"),
            "keep_within": described(string, "a restic duration such as 7d, or empty"), "prune_after_run": boolean,
            "pre_hook": described(strings, "the hook script's name, or empty"), "post_hook": described(strings, "the hook script's name, or empty"),
            "verify_read_data_subset": string, "alert_after_hours": integer, "paused": boolean, "builtin": nullable("string"),
            "backup_schedule": nullOr(ref("BackupSchedule")), "verify_schedule": nullOr(ref("BackupSchedule")),
            "prune_schedule": nullOr(ref("BackupSchedule")), "backup_schedule_id": nullable("integer"),
            "verify_schedule_id": nullable("integer"), "prune_schedule_id": nullable("integer"),
            "last_run": nullOr(ref("BackupRun")), "last_success": nullOr(ref("BackupRun")),
        ])
        let list: JSONValue = ["type": ["array", "string"], "items": ["type": "string"] as JSONValue]
        let hook: JSONValue = [
            "type": ["array", "string"], "items": ["type": "string"] as JSONValue, "maxItems": 1,
            "description": "the name of a script in the config repo's hooks/ folder (a one-element list); empty for none",
        ]
        let count: JSONValue = [
            "anyOf": [
                ["type": "integer", "minimum": 0, "maximum": 100_000] as JSONValue,
                ["type": "string", "pattern": "^ *[0-9]{0,5} *$"] as JSONValue, ["type": "null"] as JSONValue,
            ],
            "description": "a whole number from 0 to 100000; empty, 0 or null for no rule",
        ]
        let wholeNumber: JSONValue = ["type": ["integer", "string"]]
        let retentionInput: [String: JSONValue] = [
            "keep_last": count, "keep_hourly": count, "keep_daily": count, "keep_weekly": count, "keep_monthly": count, "keep_yearly": count,
            "keep_within": [
                "type": ["string", "null"], "pattern": "^ *([0-9]{1,6}[ymdh])* *$",
                "description": "a restic duration such as 7d or 1y2m; empty or null for none",
            ] as JSONValue,
        ]
        let planFields: [String: JSONValue] = [
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
        let planInput: JSONValue = object(retentionInput.merging(planFields) { a, _ in a })
        let preview: JSONValue = record([
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
            "BackupPlanCreate": ["allOf": [ref("BackupPlanInput"), ["required": ["name", "repository", "paths"]] as JSONValue]],
            "BackupRetentionInput": object(retentionInput),
            "BackupRetentionPreview": preview,
        ]
    }

    // MARK: data retention

    static var retentionSchemas: [String: JSONValue] {
        let kind: JSONValue = ["type": "string", "enum": .choices(DataRetention.Kind.self)]
        let dataClass: JSONValue = ["type": "string", "enum": .choices(DataClass.self)]
        let policyProperties: [String: JSONValue] = [
            "kind": kind, "max_age_days": nullable("number"), "max_bytes": nullable("integer"),
            "tier_days": ["type": ["array", "null"], "items": ["type": "number"] as JSONValue],
            "rules": arrayOf(ref("DataRetentionRule")), "keep_while_firing": boolean, "failed_days": nullable("number"),
            "keep_failed_until_acknowledged": boolean,
        ]
        let policyRecord: JSONValue = record([
            "data_class": dataClass, "title": string, "policy": ref("DataRetentionPolicy"), "summary": string, "is_default": boolean,
            "default": ref("DataRetentionPolicy"), "pending": nullOr(ref("DataRetentionPolicy")), "pending_summary": nullable("string"),
            "pending_at": timestamp, "pending_by": nullable("string"), "kinds": arrayOf(kind), "rule_fields": strings, "tier_names": strings,
        ])
        let preview: JSONValue = record([
            "data_class": dataClass, "rows": integer, "bytes": integer, "oldest": timestamp, "newest": timestamp, "class_rows": integer,
            "share": described(number, "the share of the class that would go, 0 to 1"), "needs_confirmation": boolean,
            "stages": arrayOf(record(["label": string, "rows": integer, "bytes": integer])),
        ])
        let storage: JSONValue = record([
            "classes": arrayOf(
                record([
                    "data_class": dataClass, "title": string, "rows": integer, "bytes": integer, "rows_last_week": integer,
                    "bytes_per_day": number, "oldest": timestamp,
                ])),
            "database_bytes": integer, "free_bytes": integer, "filesystem_bytes": integer, "bytes_per_day": number, "read_at": dateTime,
            "days_until_full": nullable("number"),
        ])
        let hold: JSONValue = record([
            "id": integer, "host": described(nullable("string"), "null holds every host"), "from": timestamp, "to": timestamp,
            "reason": string, "created_by": string, "created_at": timestamp,
        ])
        let confirm: [String: JSONValue] = [
            "confirm": described(string, "the data class's name, needed when the change would delete more than 25 %")
        ]
        let holdInput: JSONValue = object(
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

    static var rolloutSchemas: [String: JSONValue] {
        let what: JSONValue = ["type": "string", "enum": .choices(Rollout.What.self)]
        let waveKind: JSONValue = ["type": "string", "enum": .choices(Rollout.WaveKind.self)]
        let reboot: JSONValue = ["type": "string", "enum": .choices(Rollout.Reboot.self)]
        let summary: JSONValue = record([
            "id": integer, "title": string, "what": what, "state": ["type": "string", "enum": .choices(Rollout.State.self)],
            "state_detail": string, "requested_by": string, "revision": integer, "created_at": dateTime, "expires_at": dateTime,
            "current_wave": integer, "link": string,
        ])
        let details: JSONValue = record([
            "packages": strings, "playbook": string, "commit": string, "targets": strings, "tags": strings, "canary": integer,
            "wave_kind": waveKind, "wave_size": integer, "pause_seconds": integer, "max_failure_percent": integer, "reboot": reboot,
            "window": described(nullable("integer"), "the maintenance window's id"), "approvals_required": integer, "check_url": string,
            "settle_seconds": integer, "plan_job_id": nullable("integer"), "planned_at": timestamp, "plan_stale": boolean,
            "slos": described(strings, "SLOs it respects besides those covering each wave's hosts"),
            "rollback_of": nullable("integer"), "finished_at": timestamp,
            "plan": arrayOf(record(["host": string, "diff": string, "problem": string, "packages": arrayOf(ref("PendingUpdate"))])),
            "approvals": arrayOf(
                record([
                    "revision": integer, "actor": string, "decision": ["type": "string", "enum": ["approve", "deny"]], "reason": string,
                    "at": dateTime, "urgent": described(boolean, "approved as a security or urgent change: waves start while a budget is spent"),
                ])),
            "waves": arrayOf(
                record([
                    "number": integer, "hosts": strings, "job_id": nullable("integer"),
                    "state": described(string, "pending, running, gating, passed or failed"), "gate": string, "started_at": timestamp,
                    "finished_at": timestamp,
                    "budget": described(
                        ["type": "object", "additionalProperties": record(["before": number, "after": nullable("number"), "burned": nullable("number")])],
                        "per SLO: the error budget left (percent) when the wave started and ended, and what it burned"),
                ])),
            "results": arrayOf(
                record([
                    "host": string, "wave": integer, "status": string, "rebooted": boolean, "detail": string,
                    "packages": arrayOf(record(["package": string, "from": string, "to": string])),
                ])),
        ])
        let input: JSONValue = object(
            [
                "title": described(string, "1 to 200 characters"), "what": what,
                "packages": described(strings, "package names (name=version pins a version), when what is packages (upgrade), install or remove"),
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
                "slos": described(strings, "SLO names whose error budgets the rollout respects besides those covering each wave's hosts"),
            ], closed: true)
        let update: JSONValue = record([
            "package": string, "current": described(string, "empty when the package would be newly installed"), "candidate": string,
            "origin": string, "security": boolean,
        ])
        let fleet: JSONValue = record([
            "items": arrayOf(
                record([
                    "host_id": integer, "host": string, "gathered_at": timestamp, "count": integer, "security_count": integer,
                    "reboot_required": boolean, "security_pending_days": nullable("number"), "updates": arrayOf(ref("PendingUpdate")),
                ])),
            "next": ["type": "null"] as JSONValue,
        ])
        let packages: JSONValue = record([
            "items": arrayOf(
                record([
                    "package": string, "security": boolean,
                    "hosts": arrayOf(record(["host": string, "current": string, "candidate": string, "origin": string])),
                ])),
            "next": ["type": "null"] as JSONValue,
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
                    ref("RolloutInput"), ["required": ["title"]] as JSONValue,
                    ["anyOf": [["required": ["targets"]] as JSONValue, ["required": ["tags"]] as JSONValue]] as JSONValue,
                ]
            ],
            "RolloutApproval": object(
                [
                    "reason": described(string, "required when urgent"),
                    "urgent": described(boolean, "a security or urgent change: waves start even while an SLO's error budget is spent"),
                ], closed: true),
            "RolloutDenial": object(
                ["reason": ["type": "string", "minLength": 1], "urgent": ["type": "boolean", "enum": [false], "description": "only an approval is urgent"]],
                required: ["reason"], closed: true),
            "PendingUpdate": update,
            "PendingUpdatesList": fleet,
            "PendingPackageList": packages,
        ]
    }
}
