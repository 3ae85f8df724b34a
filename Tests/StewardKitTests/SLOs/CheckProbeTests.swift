import Foundation
import GRDB
import Testing

@testable import StewardKit

/// A Python HTTP server on one port and the same behind TLS (a 30-day self-signed certificate) on another.
private final class ProbeTarget {
    let directory = TemporaryDirectory()
    let plainPort: Int
    let tlsPort: Int
    let child: PythonChild

    init() throws {
        plainPort = try SyslogTests.freePort()
        tlsPort = try SyslogTests.freePort()
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory.path + "/key.pem", "-out", directory.path + "/cert.pem",
            "-days", "30", "-subj", "/CN=localhost",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        let script = """
            import http.server, ssl, sys, threading
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    if self.path in ("/redirect", "/meta"):
                        target = "/ok" if self.path == "/redirect" else "http://169.254.169.254/latest/meta-data/"
                        self.send_response(302); self.send_header("Location", target); self.send_header("Content-Length", "0"); self.end_headers(); return
                    status, body = {"/ok": (200, b"all good here"), "/teapot": (418, b"short and stout")}.get(self.path, (404, b"no"))
                    self.send_response(status); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
                def log_message(self, *args): pass
            plain = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
            secure = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[3] + "/cert.pem", sys.argv[3] + "/key.pem")
            secure.socket = context.wrap_socket(secure.socket, server_side=True)
            threading.Thread(target=secure.serve_forever, daemon=True).start()
            plain.serve_forever()
            """
        try script.write(toFile: directory.path + "/serve.py", atomically: true, encoding: .utf8)
        child = try PythonChild([directory.path + "/serve.py", String(plainPort), String(tlsPort), directory.path])
    }
}

@Suite("Checks against real servers: status, body, redirects, TLS expiry, TCP")
struct CheckProbeTests {
    func check(_ target: String, kind: Check.Kind = .http, status: String = "200-399", body: String = "") -> Check {
        var check = Check()
        check.name = "probe"
        check.kind = kind
        check.target = target
        check.expectStatus = status
        check.expectBody = body
        check.timeoutSeconds = 3
        return check
    }

    @Test("HTTP: the status and the body decide; redirects are followed; a TLS certificate's expiry is read even when untrusted")
    func probes() async throws {
        let target = try ProbeTarget()
        let base = "http://127.0.0.1:\(target.plainPort)"
        #expect(try await waitUntil { await Probe.run(check(base + "/ok"), readCertificate: false).status == 200 })
        let ok = await Probe.run(check(base + "/ok", body: "good"), readCertificate: false)
        #expect(ok.success && ok.error.isEmpty && ok.duration > 0)
        let wrongBody = await Probe.run(check(base + "/ok", body: "healthy"), readCertificate: false)
        #expect(!wrongBody.success && wrongBody.error.contains("does not contain \"healthy\""))
        let teapot = await Probe.run(check(base + "/teapot"), readCertificate: false)
        #expect(!teapot.success && teapot.status == 418 && teapot.error == "HTTP 418, expected 200-399")
        #expect(await Probe.run(check(base + "/teapot", status: "200,418"), readCertificate: false).success)
        let redirected = await Probe.run(check(base + "/redirect", status: "200"), readCertificate: false)
        #expect(redirected.success && redirected.status == 200)
        // A redirect to the metadata service is not followed: the probe sees the 302 itself.
        let metadata = await Probe.run(check(base + "/meta", status: "200"), readCertificate: false)
        #expect(!metadata.success && metadata.status == 302, "\(metadata)")

        let secure = await Probe.run(check("https://localhost:\(target.tlsPort)/ok"))
        #expect(!secure.success, "a self-signed certificate is not trusted")
        let expiry = try #require(secure.certExpiresAt)
        let days = Double(expiry - EpochMilliseconds.from(Date())) / 86_400_000
        #expect(days > 29 && days <= 30.01, "\(days) days")

        let open = await Probe.run(check("127.0.0.1:\(target.plainPort)", kind: .tcp))
        #expect(open.success)
        let closedPort = try SyslogTests.freePort()
        let closed = await Probe.run(check("127.0.0.1:\(closedPort)", kind: .tcp))
        #expect(!closed.success && closed.error.contains("127.0.0.1:\(closedPort)"))
    }

    @Test("a run is stored as probe_* series of the check's host and as the check's newest result")
    func runnerStoresSeries() async throws {
        let target = try ProbeTarget()
        let directory = TemporaryDirectory()
        let database = try makeDatabase(directory)
        let metrics = try MetricStore(database: database)
        let hosts = HostStore(database: database)
        var settings = HostSettings()
        settings.name = "web1"
        settings.address = "192.0.2.1"
        let host = try hosts.create(settings, by: AuditActor(actor: "t"), now: Date())
        var check = check("http://127.0.0.1:\(target.plainPort)/teapot")
        check.hostID = host.id
        check = try CheckStore(database: database).save(check, by: AuditActor(actor: "t"), now: Date())
        let runner = CheckRunner(store: CheckStore(database: database), metrics: metrics, hosts: hosts, remoteWrite: nil, logger: quietLogger)
        #expect(try await waitUntil { await runner.runOnce(check).status == 418 })
        let stored = try #require(try CheckStore(database: database).check(id: check.id))
        #expect(stored.lastSuccess == false && stored.lastStatus == 418 && stored.lastError.contains("418"))
        for name in ["probe_success", "probe_duration_seconds", "probe_http_status_code"] {
            let series = try #require(metrics.series(hostID: host.id, name: name, labels: "check=\"probe\""), "\(name)")
            #expect(metrics.latest(series.id) != nil)
        }
        #expect(metrics.latest(metrics.series(hostID: host.id, name: "probe_success", labels: "check=\"probe\"")!.id)?.value == 0)
    }
}

@Suite("Checks do not reach link-local addresses, however they are written")
struct CheckLinkLocalTests {
    @Test("numeric, mapped and redirected forms of 169.254.169.254 are refused at run time")
    func refused() async throws {
        for host in ["169.254.169.254", "2852039166", "0251.0376.0251.0376", "0xa9.0xfe.0xa9.0xfe", "::ffff:169.254.169.254", "fe80::1"] {
            #expect(Probe.linkLocalAddress(host) != nil, "\(host)")
        }
        #expect(Probe.linkLocalAddress("127.0.0.1") == nil)
        var check = Check()
        check.name = "meta"
        check.target = "http://2852039166/latest/meta-data/"
        check.timeoutSeconds = 2
        let result = await Probe.run(check, readCertificate: false)
        #expect(!result.success && result.error.contains("link-local"))
    }
}
