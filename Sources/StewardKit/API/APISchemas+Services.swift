import Foundation

/// Schemas of the host administration views (services).
extension APISchemas {
    static var serviceSchemas: [String: JSONValue] {
        [
            "ServiceUnit": record([
                "unit": described(string, "the full name, such as ssh.service or getty@tty1.service"),
                "type": described(string, "the part after the last dot: service, socket, timer, mount, target, ..."),
                "load": described(string, "loaded, not-found, masked, ...; empty for a unit file that is not loaded"),
                "active": described(string, "active, inactive, failed, activating, deactivating or reloading"),
                "sub": described(string, "the type's own state: running, exited, dead, listening, waiting, ..."),
                "description": string,
                "enabled": described(string, "enabled, disabled, static, masked, indirect, generated, ...; empty without a unit file"),
                "next_run": described(timestamp, "a timer's next run; null for other units"),
                "last_run": described(timestamp, "a timer's last run; null for other units and timers that never ran"),
            ]),
            "ServiceUnitDetail": record([
                "host_id": integer, "host": string, "read_at": described(dateTime, "when the host was asked (now)"), "unit": ref("ServiceUnit"),
                "properties": described(
                    ["type": "object", "additionalProperties": string],
                    "systemctl show properties the host gave values for: ActiveState, SubState, UnitFileState, MainPID, ..."),
                "journal": described(strings, "the unit's newest journal lines (at most 50), oldest first"),
                "journal_error": described(nullable("string"), "why the journal could not be read, in the host's words"),
            ]),
            "HostProcesses": record([
                "host_id": integer, "host": string, "read_at": described(timestamp, "when the processes were read; null before the first reading"),
                "error": described(nullable("string"), "why the last reading failed, in the host's words"),
                "total": described(integer, "processes in the reading"),
                "processes": arrayOf(
                    record([
                        "pid": integer, "ppid": integer, "user": string,
                        "cpu_percent": described(number, "ps's %CPU: CPU time over the process's life"),
                        "memory_percent": number, "rss_kib": integer, "started_at": dateTime,
                        "command": described(string, "the full command line, control characters shown as spaces"),
                    ])),
            ]),
            "HostOverview": record([
                "host_id": integer, "host": string, "read_at": described(timestamp, "when the overview was read; null before the first reading"),
                "error": described(nullable("string"), "why nothing could be read, in the host's words"),
                "os": described(string, "os-release's PRETTY_NAME"), "kernel": described(string, "uname -srm"),
                "uptime_seconds": nullable("number"), "load": described(arrayOf(number), "load averages over 1, 5 and 15 minutes"),
                "cpus": nullable("integer"), "memory_total_bytes": nullable("integer"), "memory_available_bytes": nullable("integer"),
                "swap_total_bytes": nullable("integer"), "swap_free_bytes": nullable("integer"),
                "filesystems": arrayOf(
                    record([
                        "source": string, "type": string, "mount_point": string, "size_bytes": integer, "used_bytes": integer,
                        "available_bytes": integer,
                    ])),
                "interfaces": arrayOf(
                    record(["name": string, "state": string, "mac": string, "addresses": described(strings, "address/prefix")])),
                "listening": arrayOf(
                    record([
                        "proto": described(string, "tcp or udp"), "local": string, "process": described(string, "name (pid), when the host said"),
                    ])),
                "reboot_required": described(nullable("boolean"), "whether /run/reboot-required exists"),
                "last_logins": described(strings, "last -n 10, as the host printed it"),
                "errors": described(["type": "object", "additionalProperties": string], "part -> why it could not be read"),
                "failed_units": described(strings, "failed units in the newest services reading"),
                "services_read_at": timestamp,
                "updates": nullOr(
                    record(["gathered_at": dateTime, "pending": integer, "security": integer, "reboot_required": boolean])),
                "alerts": arrayOf(record(["rule": string, "state": string, "severity": nullable("string"), "at": dateTime])),
                "jobs": arrayOf(ref("Job")),
            ]),
            "InstalledPackage": record(["name": string, "version": string, "arch": string, "held": described(boolean, "held back from upgrades")]),
            "HostPackages": record([
                "host_id": integer, "host": string, "read_at": described(timestamp, "when the packages were read; null before the first reading"),
                "error": described(nullable("string"), "why the last reading failed, in the host's words"),
                "manager": described(nullable("string"), "apt or dnf"), "total": integer, "packages": arrayOf(ref("InstalledPackage")),
            ]),
            "PackageSearch": record([
                "host_id": integer, "host": string, "manager": string,
                "items": arrayOf(
                    record(["name": string, "version": described(string, "empty for apt, whose search does not say"), "summary": string])),
            ]),
            "PackageActionInput": object(
                [
                    "name": described(string, "the package: in the host's repositories to install, installed to remove, hold or unhold"),
                    "action": ["type": "string", "enum": .choices(PackageChange.Action.self)],
                    "confirm": described(string, "the package's name again: needed to remove openssh-server, sudo or python3"),
                ], required: ["name", "action"], closed: true),
            "FleetPackage": record([
                "name": string,
                "items": arrayOf(record(["host_id": integer, "host": string, "read_at": dateTime, "version": string, "held": boolean])),
                "lacking": described(strings, "enabled hosts whose newest reading does not have it"),
                "unread": described(strings, "enabled hosts whose packages were not read yet"),
            ]),
            "HostDisksNetwork": record([
                "host_id": integer, "host": string, "read_at": described(timestamp, "when it was read; null before the first reading"),
                "error": described(nullable("string"), "why nothing could be read, in the host's words"),
                "block_devices": arrayOf(
                    record([
                        "name": string, "type": string, "fstype": string, "mount_point": string, "model": string, "size_bytes": integer,
                        "depth": described(integer, "0 for a disk, 1 for its partitions, ..."),
                    ])),
                "mounts": arrayOf(record(["target": string, "source": string, "fstype": string, "options": string])),
                "filesystems": arrayOf(
                    record([
                        "source": string, "type": string, "mount_point": string, "size_bytes": integer, "used_bytes": integer,
                        "available_bytes": integer,
                    ])),
                "trends": described(
                    arrayOf(
                        record([
                            "mount_point": string, "free_bytes_per_day": described(number, "negative while it fills"),
                            "days_until_full": nullable("number"), "since": dateTime,
                        ])), "free space over the last 7 days from node_exporter's node_filesystem_avail_bytes, when it is scraped"),
                "interfaces": arrayOf(record(["name": string, "state": string, "mac": string, "addresses": strings])),
                "routes": arrayOf(record(["destination": string, "gateway": string, "device": string, "proto": string])),
                "dns_servers": strings, "dns_search": strings,
                "listening": arrayOf(record(["proto": string, "local": string, "process": string])),
                "nftables": described(string, "nft list ruleset, as text (at most 256 KiB)"),
                "errors": described(["type": "object", "additionalProperties": string], "part -> why it could not be read"),
            ]),
            "DesiredServices": record([
                "items": arrayOf(
                    object(
                        [
                            "path": string, "unit": string, "state": described(string, "started or stopped"), "enabled": boolean, "apply_to": strings,
                            "hosts": arrayOf(record(["host": string, "in_sync": boolean, "drift": strings])),
                            "drifting": described(strings, "hosts that differ from the definition"),
                            "errors": described(["type": "object", "additionalProperties": string], "why the file does not parse; only then"),
                        ], required: ["path"]))
            ]),
            "DesiredServiceInput": object(
                [
                    "unit": described(string, "the unit's full name; NAME in the path is it without .service"),
                    "state": ["type": "string", "enum": ["started", "stopped"]], "enabled": boolean,
                    "apply_to": described(strings, "host groups or hosts"), "message": described(string, "the commit message"),
                ], required: ["unit", "apply_to"], closed: true),
            "ScheduledTask": record([
                "host_id": integer, "host": string, "kind": described(string, "cron or timer"),
                "source": described(string, "crontab (the user's own), /etc/crontab, /etc/cron.d/NAME, or the timer unit"),
                "user": string, "name": described(nullable("string"), "the Ansible name of a cron entry (#Ansible: NAME), or the timer unit"),
                "schedule": described(string, "five cron fields or an @macro; a timer's description"), "command": string, "disabled": boolean,
                "next_runs": described(
                    nullOr(strings), "cron: the next five runs in the host's time zone, by Steward's cron code; a timer: its next run"),
                "last_run": described(timestamp, "a timer's last run"), "read_at": dateTime,
                "time_zone": described(string, "the host's time zone, which the cron runs are computed in (UTC for timers)"),
            ]),
            "HostCron": record([
                "host_id": integer, "host": string, "read_at": described(timestamp, "when the crontabs were read; null before the first reading"),
                "error": described(nullable("string"), "why the last reading failed, in the host's words"),
                "time_zone": described(nullable("string"), "the host's time zone (its /etc/localtime)"), "items": arrayOf(ref("ScheduledTask")),
            ]),
            "FleetCron": record(["items": arrayOf(ref("ScheduledTask"))]),
            "CronEntryInput": object(
                [
                    "name": described(string, "the entry's name: a new name creates an entry, an existing one replaces it"),
                    "user": described(string, "whose crontab: a user on the host"),
                    "minute": string, "hour": string, "day": string, "month": string, "weekday": string,
                    "job": described(string, "the command, one line"), "disabled": boolean,
                    "state": ["type": "string", "enum": ["present", "absent"], "description": "absent deletes the entry"],
                ], required: ["name", "user"], closed: true),
            "ProcessSignalInput": object(
                ["signal": ["type": "string", "enum": .choices(ProcessSignal.Signal.self)]], required: ["signal"], closed: true),
            "ServiceUnitAction": object(
                [
                    "action": ["type": "string", "enum": .choices(UnitAction.self)],
                    "confirm": described(
                        string,
                        "the unit's name again: needed to stop, disable or mask sshd, and to stop, restart, disable or mask Steward on the panel host"
                    ),
                ], required: ["action"], closed: true),
            "HostServices": record([
                "host_id": integer, "host": string,
                "read_at": described(timestamp, "when the units were read; null before the first reading"),
                "error": described(nullable("string"), "why the last reading failed or is incomplete, in the host's words"),
                "total": described(integer, "units in the reading, before the filter"),
                "units": arrayOf(ref("ServiceUnit")),
            ]),
            "FleetServiceList": record([
                "items": arrayOf(record(["host_id": integer, "host": string, "read_at": dateTime, "unit": ref("ServiceUnit")])),
                "lacking": described(strings, "with unit: hosts whose newest reading does not have it"),
                "unread": described(strings, "enabled hosts with no units read yet: never read, or every reading failed"),
            ]),
        ]
    }
}
