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
        ]
    }
}
