import Foundation
import Logging

/// Every setting Steward accepts, after merging defaults, `steward.json`, `STEWARD_*` variables and flags (flags win).
public struct StewardConfiguration: Sendable, Equatable {
    public enum LogFormat: String, Sendable, CaseIterable { case logfmt, json }

    public var dataDirectory: String
    public var bind = "0.0.0.0"
    public var port = 10000
    public var tls = true
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    public var externalURL: String?
    public var resourcesDirectory: String?
    public var logLevel: Logger.Level = .info
    public var logFormat: LogFormat = .logfmt
    public var jobConcurrency = 4
    public var jobLogCapBytes = 16 << 20
    public var shutdownGraceSeconds = 20
    /// The PAM service logins are checked against (/etc/pam.d/NAME).
    public var pamService = "steward"
    /// Minutes without a request before a session ends.
    public var sessionIdleMinutes = 30
    /// Hours after sign-in when a session ends however active it is.
    public var sessionLifetimeHours = 12
    /// Seconds between metric collections (the panel host's /proc and every host's metrics URL).
    public var metricsIntervalSeconds = 10
    /// Seconds between reads of every host's journal (0: Steward does not collect logs).
    public var logsIntervalSeconds = 10
    /// Syslog intake: TCP and UDP on this port (0: off), and TCP with TLS (Steward's certificate) on the TLS port.
    public var syslogPort = 0
    public var syslogTLSPort = 0
    /// Seconds between alert rule evaluations.
    public var alertIntervalSeconds = 15
    /// Seconds a metrics URL has to answer before the scrape counts as failed.
    public var scrapeTimeoutSeconds = 5
    /// Minutes a saved retention policy change waits before it takes effect (and can still be taken back).
    public var retentionGraceMinutes = 120
    /// Peers whose X-Forwarded-For is believed (reverse proxies); nobody else's is.
    public var trustedProxies: [AddressRange] = []
    /// Started as root, run the network-facing server as the `steward` system user, keeping a small root helper for
    /// PAM, account checks and the panel host's own jobs. Without root there is nothing to separate.
    public var privilegeSeparation = true
    /// Seconds a Unix account's standing (exists, unlocked, unexpired) is trusted before it is read again.
    public var accountRecheckSeconds = 60
    /// Open connections at most, and per client address; lowered at start to half the descriptor limit if need be.
    public var maxConnections = 4096
    public var maxConnectionsPerAddress = 256
    /// Seconds a connection has to deliver a complete request head (slow headers, stalled TLS handshakes).
    public var headerTimeoutSeconds = 10
    /// Seconds a kept-alive connection may wait for its next request.
    public var idleTimeoutSeconds = 60
    /// Requests of one class (pages, API, sign-in) handled at once; more wait in a bounded queue. One fewer than the
    /// cores by default: a heavy page or API answer holds a thread without pausing, so a flood of one class must
    /// leave a core for health checks, sign-in and static files (which get larger bounds of their own).
    public var maxConcurrentRequests = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)
    /// Requests of one class that may wait for a slot; beyond it, and after `queueWaitMilliseconds`, a 503.
    public var maxQueuedRequests = 128
    public var queueWaitMilliseconds = 1000
    /// Free space (MiB) the data directory's file system must keep: below it /readyz fails and the panel's disk alert fires.
    public var diskReserveMB = 64
    /// Seconds the database check at start may take before it is skipped (0: no check).
    public var startupCheckSeconds = 10
    /// Paths on the panel host added to the built-in secrets only an admin may back up, read or restore over.
    public var sensitivePaths: [String] = []
    /// Extra host names requests may be addressed to, beyond external_url's host, the bind address, localhost and
    /// the machine's own names (a reverse proxy's name, a DNS alias).
    public var allowedHosts: [String] = []
    /// Where each setting's value came from ("default", "steward.json", "STEWARD_PORT", "--port").
    public var sources: [String: String] = [:]

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }

    /// The data directory used when none is configured: /var/lib/steward for root, else the XDG data home.
    public static func defaultDataDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if getuid() == 0 { return "/var/lib/steward" }
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty { return xdg + "/steward" }
        return (environment["HOME"] ?? NSTemporaryDirectory()) + "/.local/share/steward"
    }

    /// The base for links Steward writes into pages and messages; never derived from a request's Host header.
    public var publicBaseURL: String {
        if let externalURL { return externalURL.hasSuffix("/") ? String(externalURL.dropLast()) : externalURL }
        let host: String
        switch bind {
        case "0.0.0.0", "::": host = ProcessInfo.processInfo.hostName
        default: host = bind.contains(":") ? "[\(bind)]" : bind
        }
        return "\(tls ? "https" : "http")://\(host):\(port)"
    }
}

/// A setting that could not be accepted; the message names the setting, its source and what is allowed.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let setting: String
    public let source: String
    public let message: String
    /// Further errors found in the same pass: every one is reported at once, not one per restart.
    public var others: [ConfigurationError] = []

    public init(setting: String, source: String, message: String) {
        self.setting = setting
        self.source = source
        self.message = message
    }

    /// The first error with the rest attached; nil when there were none.
    static func combined(_ errors: [ConfigurationError]) -> ConfigurationError? {
        guard var first = errors.first else { return nil }
        first.others = Array(errors.dropFirst())
        return first
    }

    public var all: [ConfigurationError] { [ConfigurationError(setting: setting, source: source, message: message)] + others }

    public var description: String {
        let lines = all.map { "configuration error in \($0.source): \($0.message)" }
        return lines.count == 1 ? lines[0] : "\(lines.count) configuration errors:\n  " + lines.joined(separator: "\n  ")
    }
}

/// One source of settings, as raw strings keyed by setting name.
public struct SettingsLayer: Sendable {
    public var source: String
    /// setting name -> (value, label used in messages, e.g. "STEWARD_PORT" or "--port")
    public var values: [String: (value: String, label: String)]
    /// Entries that could not even be read as a setting (a list where a scalar belongs); reported with the rest.
    public var problems: [ConfigurationError] = []

    public init(source: String, values: [String: (value: String, label: String)] = [:]) {
        self.source = source
        self.values = values
    }
}

extension StewardConfiguration {
    struct Setting: Sendable {
        let name: String
        let accepted: String
        let apply: @Sendable (inout StewardConfiguration, String) -> Bool
    }

    static let logLevels: [String: Logger.Level] = [
        "trace": .trace, "debug": .debug, "info": .info, "notice": .notice, "warning": .warning, "error": .error, "critical": .critical,
    ]

    static let settings: [Setting] = [
        Setting(name: "bind", accepted: "an IPv4 or IPv6 address to listen on, e.g. 127.0.0.1, 0.0.0.0 or ::") { config, value in
            guard IPAddressText.isValid(value) else { return false }
            config.bind = value
            return true
        },
        integer("port", 1...65535, \.port),
        Setting(name: "tls", accepted: "true or false") { config, value in
            guard let flag = parseBool(value) else { return false }
            config.tls = flag
            return true
        },
        Setting(name: "tls_cert", accepted: "the path of a PEM certificate file (set tls_key too)") { config, value in
            guard !value.isEmpty else { return false }
            config.tlsCertificatePath = value
            return true
        },
        Setting(name: "tls_key", accepted: "the path of a PEM private key file (set tls_cert too)") { config, value in
            guard !value.isEmpty else { return false }
            config.tlsKeyPath = value
            return true
        },
        Setting(name: "external_url", accepted: "an absolute http:// or https:// URL with no query or fragment, e.g. https://panel.example.com") {
            config, value in
            guard let url = URLComponents(string: value), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
                let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil, url.user == nil
            else { return false }
            config.externalURL = value
            return true
        },
        Setting(name: "resources", accepted: "a directory holding Templates/, Public/ and migrations/") { config, value in
            guard !value.isEmpty else { return false }
            config.resourcesDirectory = value
            return true
        },
        Setting(name: "log_level", accepted: "one of trace, debug, info, notice, warning, error, critical") { config, value in
            guard let level = logLevels[value.lowercased()] else { return false }
            config.logLevel = level
            return true
        },
        Setting(name: "log_format", accepted: "logfmt or json") { config, value in
            guard let format = LogFormat(rawValue: value.lowercased()) else { return false }
            config.logFormat = format
            return true
        },
        integer("job_concurrency", 1...64, \.jobConcurrency),
        integer("job_log_cap_bytes", 65536...(1 << 30), \.jobLogCapBytes),
        integer("shutdown_grace_seconds", 0...3600, \.shutdownGraceSeconds),
        Setting(name: "pam_service", accepted: "a PAM service name: letters, digits, '.', '_' or '-', as in /etc/pam.d/NAME") { config, value in
            guard !value.isEmpty, value.count <= 64, !value.hasPrefix("."),
                value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
            else { return false }
            config.pamService = value
            return true
        },
        integer("session_idle_minutes", 1...1440, \.sessionIdleMinutes),
        integer("metrics_interval_seconds", 1...3600, \.metricsIntervalSeconds),
        integer("scrape_timeout_seconds", 1...300, \.scrapeTimeoutSeconds),
        integer("logs_interval_seconds", 0...3600, \.logsIntervalSeconds),
        integer("syslog_port", 0...65535, \.syslogPort),
        integer("syslog_tls_port", 0...65535, \.syslogTLSPort),
        integer("alert_interval_seconds", 1...3600, \.alertIntervalSeconds),
        integer("session_lifetime_hours", 1...720, \.sessionLifetimeHours),
        integer("retention_grace_minutes", 0...10080, \.retentionGraceMinutes),
        integer("account_recheck_seconds", 1...60, \.accountRecheckSeconds),
        integer("max_connections", 16...1_000_000, \.maxConnections),
        integer("max_connections_per_address", 1...1_000_000, \.maxConnectionsPerAddress),
        integer("header_timeout_seconds", 1...600, \.headerTimeoutSeconds),
        integer("idle_timeout_seconds", 1...3600, \.idleTimeoutSeconds),
        integer("max_concurrent_requests", 1...4096, \.maxConcurrentRequests),
        integer("max_queued_requests", 0...100_000, \.maxQueuedRequests),
        integer("queue_wait_milliseconds", 0...60_000, \.queueWaitMilliseconds),
        integer("disk_reserve_mb", 0...1_000_000, \.diskReserveMB),
        integer("startup_check_seconds", 0...3600, \.startupCheckSeconds),
        Setting(
            name: "trusted_proxies",
            accepted: "a comma-separated list of proxy addresses or CIDR ranges whose X-Forwarded-For is believed, e.g. 127.0.0.1,10.0.0.0/8"
        ) { config, value in
            let items = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let ranges = items.compactMap(AddressRange.init)
            guard ranges.count == items.count else { return false }
            config.trustedProxies = ranges
            return true
        },
        Setting(name: "privilege_separation", accepted: "true or false") { config, value in
            guard let flag = parseBool(value) else { return false }
            config.privilegeSeparation = flag
            return true
        },
        Setting(
            name: "sensitive_paths",
            accepted: "a comma-separated list of absolute paths (shell globs allowed per component), e.g. /srv/vault,/home/*/.gnupg"
        ) { config, value in
            let items = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard items.allSatisfy({ $0.hasPrefix("/") && !$0.contains("\0") && !$0.split(separator: "/").contains("..") }) else { return false }
            config.sensitivePaths = items
            return true
        },
        Setting(
            name: "allowed_hosts",
            accepted: "a comma-separated list of extra host names or addresses requests may be addressed to, e.g. panel.example.com,10.0.0.5"
        ) { config, value in
            let items = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
            guard items.allSatisfy({ HostValidation.address($0) == nil }) else { return false }
            config.allowedHosts = items
            return true
        },
    ]

    /// A whole-number setting within a range.
    static func integer(_ name: String, _ range: ClosedRange<Int>, _ field: any WritableKeyPath<StewardConfiguration, Int> & Sendable) -> Setting {
        Setting(name: name, accepted: "an integer from \(range.lowerBound) to \(range.upperBound)") { config, value in
            guard let number = Int(value.trimmingCharacters(in: .whitespaces)), range.contains(number) else { return false }
            config[keyPath: field] = number
            return true
        }
    }

    public static var settingNames: [String] { settings.map(\.name) }

    static func parseBool(_ value: String) -> Bool? {
        switch value.lowercased() {
        case "true", "1", "yes", "on": true
        case "false", "0", "no", "off": false
        default: nil
        }
    }

    /// Merge layers in order (later layers win) over the defaults, and check the result as a whole.
    public static func resolve(dataDirectory: String, layers: [SettingsLayer]) throws(ConfigurationError) -> StewardConfiguration {
        var config = StewardConfiguration(dataDirectory: dataDirectory)
        let byName = Dictionary(uniqueKeysWithValues: settings.map { ($0.name, $0) })
        var errors: [ConfigurationError] = []
        for name in settingNames { config.sources[name] = "default" }
        for layer in layers {
            errors += layer.problems
            for (name, entry) in layer.values.sorted(by: { $0.key < $1.key }) {
                guard let setting = byName[name] else {
                    errors.append(
                        ConfigurationError(setting: entry.label, source: layer.source, message: unknownSettingMessage(entry.label, name: name)))
                    continue
                }
                guard setting.apply(&config, entry.value) else {
                    errors.append(
                        ConfigurationError(
                            setting: entry.label, source: layer.source,
                            message: "\(entry.label) = \"\(entry.value)\" is not valid; expected \(setting.accepted)"))
                    continue
                }
                config.sources[name] = entry.label
            }
        }
        if (config.tlsCertificatePath == nil) != (config.tlsKeyPath == nil) {
            let missing = config.tlsCertificatePath == nil ? "tls_cert" : "tls_key"
            errors.append(
                ConfigurationError(
                    setting: missing, source: "configuration", message: "tls_cert and tls_key must be set together; \(missing) is missing"))
        }
        if let error = ConfigurationError.combined(errors) { throw error }
        return config
    }

    static func unknownSettingMessage(_ label: String, name: String) -> String {
        var text = "unknown setting \(label)"
        if let guess = settingNames.min(by: { editDistance($0, name) < editDistance($1, name) }), editDistance(guess, name) <= 3 {
            let spelled = label.hasPrefix("STEWARD_") ? guess.uppercased() : guess
            text += " (did you mean \(label.replacingOccurrences(of: name, with: spelled, options: .caseInsensitive))?)"
        }
        return text + "; accepted settings: " + settingNames.joined(separator: ", ")
    }

    /// Read steward.json in the data directory, if present.
    public static func fileLayer(dataDirectory: String) throws(ConfigurationError) -> SettingsLayer? {
        let path = dataDirectory + "/steward.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            let place = JSONPlace(data: data, error: error).map { " at line \($0.line), column \($0.column)" } ?? ""
            throw ConfigurationError(
                setting: "steward.json", source: path, message: "\(path) is not valid JSON\(place); it must be one object of settings")
        }
        guard object is [String: Any], let dictionary = try? JSONDecoder().decode([String: SettingValue].self, from: data) else {
            throw ConfigurationError(
                setting: "steward.json", source: path, message: "\(path) must be a JSON object of settings, like {\"port\": 10000}")
        }
        var layer = SettingsLayer(source: path)
        var errors: [ConfigurationError] = []
        for key in dictionary.keys.sorted() {
            if key == "data" {
                errors.append(
                    ConfigurationError(
                        setting: key, source: path, message: "\"data\" cannot be set inside the data directory; use --data or STEWARD_DATA"))
                continue
            }
            guard let text = dictionary[key]!.text else {
                errors.append(ConfigurationError(setting: key, source: path, message: "\"\(key)\" in \(path) must be a string, number or boolean"))
                continue
            }
            layer.values[key] = (text, "\"\(key)\"")
        }
        layer.problems = errors
        return layer
    }

    /// Collect STEWARD_* variables; STEWARD_DATA is handled by the caller because it locates steward.json.
    public static func environmentLayer(_ environment: [String: String]) -> SettingsLayer {
        var layer = SettingsLayer(source: "the environment")
        for (key, value) in environment where key.hasPrefix("STEWARD_") && key != "STEWARD_DATA" {
            let name = String(key.dropFirst("STEWARD_".count)).lowercased()
            layer.values[name] = (value, key)
        }
        return layer
    }
}

private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased())
    let b = Array(b.lowercased())
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return row[b.count]
}

/// Recognises IPv4 and IPv6 address literals with inet_pton, the same parser the socket layer uses.
enum IPAddressText {
    static func isValid(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}

/// A value in steward.json: a scalar kept as the text the setting parsers read, or nil for arrays, objects and null.
struct SettingValue: Decodable {
    let text: String?
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let flag = try? container.decode(Bool.self) {
            text = flag ? "true" : "false"
        } else if let integer = try? container.decode(Int.self) {
            text = String(integer)
        } else if let number = try? container.decode(Double.self) {
            text = String(number)
        } else {
            text = try? container.decode(String.self)
        }
    }
}

/// Line and column (from 1) of a JSON syntax error, from the character offset Foundation reports.
struct JSONPlace {
    let line: Int
    let column: Int

    init?(data: Data, error: any Error) {
        let debug = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? "\(error)"
        guard let range = debug.range(of: "character ") else { return nil }
        let digits = debug[range.upperBound...].prefix { $0.isNumber }
        guard let offset = Int(digits) else { return nil }
        var line = 1
        var column = 1
        for (index, character) in String(decoding: data, as: UTF8.self).enumerated() {
            if index >= offset { break }
            if character == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        self.line = line
        self.column = column
    }
}
