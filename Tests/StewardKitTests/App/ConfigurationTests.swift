import Crypto
import Foundation
import Logging
import Testing

@testable import StewardKit

@Suite("Configuration")
struct ConfigurationTests {
    func layer(_ source: String, _ values: [String: String], label: (String) -> String) -> SettingsLayer {
        SettingsLayer(source: source, values: values.mapValues { ($0, "") }.reduce(into: [:]) { $0[$1.key] = ($1.value.0, label($1.key)) })
    }

    @Test("defaults: HTTPS on port 10000")
    func defaults() throws {
        let configuration = try StewardConfiguration.resolve(dataDirectory: "/tmp/x", layers: [])
        #expect(configuration.port == 10000)
        #expect(configuration.tls)
        #expect(configuration.sources["port"] == "default")
    }

    @Test("flags win over the environment, which wins over steward.json")
    func precedence() throws {
        let directory = TemporaryDirectory()
        try #"{"port": 10100, "bind": "0.0.0.0", "log_level": "debug", "tls": false}"#.write(
            toFile: directory.path + "/steward.json", atomically: true, encoding: .utf8)
        let file = try #require(try StewardConfiguration.fileLayer(dataDirectory: directory.path))
        let environment = StewardConfiguration.environmentLayer(["STEWARD_PORT": "10200", "STEWARD_LOG_LEVEL": "warning", "HOME": "/root"])
        var flags = SettingsLayer(source: "command-line flags")
        flags.values["port"] = ("10300", "--port")
        let configuration = try StewardConfiguration.resolve(dataDirectory: directory.path, layers: [file, environment, flags])
        #expect(configuration.port == 10300)
        #expect(configuration.sources["port"] == "--port")
        #expect(configuration.logLevel == .warning)
        #expect(configuration.sources["log_level"] == "STEWARD_LOG_LEVEL")
        #expect(configuration.bind == "0.0.0.0")
        #expect(configuration.sources["bind"] == "\"bind\"")
        #expect(configuration.tls == false)
    }

    @Test("a misspelled setting stops startup, suggests the right name and lists the accepted ones")
    func misspelled() throws {
        let directory = TemporaryDirectory()
        try #"{"prot": 10100}"#.write(toFile: directory.path + "/steward.json", atomically: true, encoding: .utf8)
        let file = try #require(try StewardConfiguration.fileLayer(dataDirectory: directory.path))
        #expect {
            try StewardConfiguration.resolve(dataDirectory: directory.path, layers: [file])
        } throws: { error in
            let text = String(describing: error)
            return text.contains("unknown setting \"prot\"") && text.contains("did you mean \"port\"")
                && text.contains("accepted settings: bind, port")
                && text.contains("steward.json")
        }
        #expect {
            try StewardConfiguration.resolve(dataDirectory: "/tmp", layers: [StewardConfiguration.environmentLayer(["STEWARD_BIDN": "::"])])
        } throws: { error in
            String(describing: error).contains("unknown setting STEWARD_BIDN (did you mean STEWARD_BIND?)")
        }
    }

    @Test(
        "invalid values name the setting and what is accepted",
        arguments: [
            ("port", "70000", "an integer from 1 to 65535"), ("bind", "example.com", "IPv4 or IPv6 address"), ("tls", "maybe", "true or false"),
            ("log_level", "loud", "one of trace, debug"), ("external_url", "ftp://x", "http:// or https://"),
            ("job_concurrency", "0", "from 1 to 64"), ("log_format", "xml", "logfmt or json"), ("port", "", "from 1 to 65535"),
            ("pam_service", "../etc/passwd", "a PAM service name"), ("pam_service", "login;id", "a PAM service name"),
        ])
    func invalidValues(name: String, value: String, accepted: String) {
        var flags = SettingsLayer(source: "command-line flags")
        flags.values[name] = (value, "--\(name)")
        #expect {
            try StewardConfiguration.resolve(dataDirectory: "/tmp", layers: [flags])
        } throws: { error in
            let text = String(describing: error)
            return text.contains("--\(name) = \"\(value)\" is not valid") && text.contains(accepted)
        }
    }

    @Test("tls_cert without tls_key is refused")
    func certNeedsKey() {
        var flags = SettingsLayer(source: "test")
        flags.values["tls_cert"] = ("/etc/cert.pem", "STEWARD_TLS_CERT")
        #expect(throws: ConfigurationError.self) { try StewardConfiguration.resolve(dataDirectory: "/tmp", layers: [flags]) }
    }

    @Test("steward.json that is not JSON says where (line and column); a list where a scalar belongs is reported with the rest")
    func badFile() throws {
        let directory = TemporaryDirectory()
        try "{\n  \"port\": 10,\n  \"bind\": oops\n}".write(toFile: directory.path + "/steward.json", atomically: true, encoding: .utf8)
        #expect {
            try StewardConfiguration.fileLayer(dataDirectory: directory.path)
        } throws: { error in
            String(describing: error).contains("is not valid JSON at line 3, column 11")
        }
        try #"{"port": [1, 2], "bnd": "x", "log_level": "loud"}"#.write(toFile: directory.path + "/steward.json", atomically: true, encoding: .utf8)
        let layer = try #require(try StewardConfiguration.fileLayer(dataDirectory: directory.path))
        #expect(layer.problems.map(\.setting) == ["port"])
        #expect(String(describing: layer.problems[0]).contains("string, number or boolean"))
        var environment = SettingsLayer(source: "the environment")
        environment.values["tls"] = ("maybe", "STEWARD_TLS")
        #expect {
            try StewardConfiguration.resolve(dataDirectory: directory.path, layers: [layer, environment])
        } throws: { error in
            // Every problem at once: the list, the misspelling, the bad level and the environment's bad boolean.
            let all = (error as? ConfigurationError)?.all.map(\.setting) ?? []
            return Set(all) == ["port", "\"bnd\"", "\"log_level\"", "STEWARD_TLS"] && String(describing: error).hasPrefix("4 configuration errors")
        }
    }

    @Test("links use the external URL when set, never a request's Host")
    func publicBaseURL() throws {
        var configuration = StewardConfiguration(dataDirectory: "/tmp")
        configuration.externalURL = "https://panel.example.com/"
        #expect(configuration.publicBaseURL == "https://panel.example.com")
        configuration.externalURL = nil
        configuration.bind = "127.0.0.1"
        #expect(configuration.publicBaseURL == "https://127.0.0.1:10000")
    }

    @Test("resources are found beside the binary, in ../share/steward, or in a parent; a bad --resources is named")
    func resourceLocation() throws {
        let found = try ResourceLocator.locate(configured: nil, executablePath: repositoryRoot + "/.build/debug/steward")
        #expect(found == repositoryRoot)
        let prefix = TemporaryDirectory()
        for entry in ResourceLocator.requiredEntries {
            try FileManager.default.createDirectory(atPath: prefix.path + "/share/steward/" + entry, withIntermediateDirectories: true)
        }
        try FileManager.default.createDirectory(atPath: prefix.path + "/bin", withIntermediateDirectories: true)
        #expect(try ResourceLocator.locate(configured: nil, executablePath: prefix.path + "/bin/steward") == prefix.path + "/share/steward")
        #expect {
            try ResourceLocator.locate(configured: "/nonexistent-steward")
        } throws: { error in
            String(describing: error).contains("/nonexistent-steward must contain Templates/, Public/ and migrations/")
        }
    }

    @Test("the data directory is created 0700 and tightened if looser")
    func dataDirectoryMode() throws {
        let parent = TemporaryDirectory()
        let directory = DataDirectory(path: parent.path + "/data/nested")
        try directory.prepare()
        let mode = try FileManager.default.attributesOfItem(atPath: directory.path)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        chmod(directory.path, 0o755)
        try directory.prepare()
        #expect(try FileManager.default.attributesOfItem(atPath: directory.path)[.posixPermissions] as? Int == 0o700)
        let key = try directory.secretKey()
        #expect(key.bitCount == 256)
        #expect(try FileManager.default.attributesOfItem(atPath: directory.secretKeyPath)[.posixPermissions] as? Int == 0o600)
        #expect(try directory.secretKey() == key)
    }
}
