import Foundation

/// Schemas of the central logs.
extension APISchemas {
    static var logSchemas: [String: JSONValue] {
        [
            "LogLine": record([
                "host": string, "time": described(dateTime, "when the line was logged (microseconds kept)"),
                "priority": described(integer, "0 (emerg) to 7 (debug)"), "priority_name": string,
                "unit": described(string, "the systemd unit that logged it; empty for the kernel and others"),
                "identifier": described(string, "the syslog identifier (the program's name)"), "pid": nullable("integer"), "message": string,
                "boot": described(string, "the host's boot id"),
                "fields": described(["type": "object", "additionalProperties": string], "the journal's other fields: _COMM, _EXE, UNIT, ..."),
                "position": described(string, "this line's place in the newest-first order (give it as before= to page on)"),
            ]),
            "LogPage": record([
                "items": arrayOf(ref("LogLine")),
                "next": described(nullable("string"), "the before= value of the next (older) page; null when there is none"),
                "partial": described(boolean, "the search stopped at its work limit before covering the range"),
            ]),
            "LogSource": record([
                "host": string, "source": described(string, "journal"), "read_at": described(timestamp, "the last read; null before it"),
                "lines": described(integer, "lines stored from this source"),
                "error": described(nullable("string"), "why the last read failed, in the host's words"),
            ]),
            "LogSourceList": record(["items": arrayOf(ref("LogSource"))]),
            "LogFile": record([
                "id": integer, "path": described(string, "a file under /var/log; * and ? may stand in the file name"),
                "host_group": described(string, "the group whose hosts read it; empty: every host"), "comment": string, "created_by": string,
                "created_at": dateTime,
            ]),
            "LogFileList": record(["items": arrayOf(ref("LogFile"))]),
            "LogFileInput": object(
                [
                    "path": described(string, "an absolute path under /var/log, such as /var/log/nginx/*.log"),
                    "host_group": described(string, "a host group's name; empty or absent: every host"), "comment": string,
                ], required: ["path"], closed: true),
            "SyslogSender": record([
                "id": integer, "network": described(string, "an address or CIDR range"),
                "host": described(nullable("string"), "the host its lines go to; null: the host whose address the sender has"),
                "time_zone": described(string, "the zone of RFC 3164 timestamps; empty: the host's own, else the panel's"), "comment": string,
                "created_by": string, "created_at": dateTime,
            ]),
            "SyslogSenderInput": object(
                [
                    "network": described(string, "an IPv4 or IPv6 address or CIDR range"),
                    "host": described(string, "a host's name; empty or absent: the host whose address the sender has"),
                    "time_zone": described(string, "IANA zone for RFC 3164 timestamps; empty: the host's own"), "comment": string,
                ], required: ["network"], closed: true),
            "SyslogTraffic": record([
                "address": described(string, "a sender's address, or other once 1,024 addresses are counted"),
                "received": described(integer, "messages from a listed sender with a host"), "stored": integer,
                "refused": described(integer, "connections and messages from addresses not listed"),
                "unattributed": described(integer, "messages from a listed range with no host for the address"),
                "damaged": described(integer, "frames cut or unreadable"), "dropped": described(integer, "messages Steward could not keep"),
                "last_at": nullOr(dateTime),
            ]),
            "SyslogIntake": record([
                "port": described(integer, "TCP and UDP (0: off)"), "tls_port": described(integer, "TCP with TLS (0: off)"),
                "listening": arrayOf(string), "problems": described(arrayOf(string), "listeners that could not start, and why"),
                "senders": arrayOf(ref("SyslogSender")), "traffic": arrayOf(ref("SyslogTraffic")),
            ]),
        ]
    }
}
