import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import StewardKit

struct UnexpectedFailure: Error {}

@Suite("Error pages and log lines")
struct ErrorPageTests {
    @Test("an unexpected error is a friendly HTML 500 with a request id, or problem+json under /api; details stay in the log")
    func internalError() async throws {
        let pages = try await PageRenderer(
            templatesDirectory: repositoryRoot + "/Templates", navigation: [], secureCookies: false, signingKey: SymmetricKey(size: .bits256))
        let router = Router(context: StewardRequestContext.self)
        router.add(middleware: RequestObservationMiddleware(metrics: HTTPMetrics(), logger: quietLogger))
        router.add(middleware: ErrorPageMiddleware(pages: pages, disk: DiskSpace(path: "/", reserveMB: 0), logger: quietLogger, routes: RouteTable()))
        router.get("/boom") { _, _ -> String in throw UnexpectedFailure() }
        router.get("/api/v1/boom") { _, _ -> String in throw UnexpectedFailure() }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/boom", method: .get) { response in
                #expect(response.status == .internalServerError)
                let page = String(buffer: response.body)
                #expect(page.contains("500 · Internal Server Error"))
                #expect(page.contains("under request id <code>"))
                #expect(!page.contains("UnexpectedFailure"), "internal details are not shown to the browser")
            }
            try await client.execute(uri: "/api/v1/boom", method: .get) { response in
                #expect(response.status == .internalServerError)
                #expect(response.headers[.contentType] == "application/problem+json")
            }
        }
    }

    @Test("log lines are single-line logfmt with quoting, or JSON")
    func logLineFormat() {
        #expect(StewardLogHandler.logfmtValue("plain") == "plain")
        #expect(StewardLogHandler.logfmtValue("two words") == "\"two words\"")
        #expect(StewardLogHandler.logfmtValue("say \"hi\"\nnext") == "\"say \\\"hi\\\"\\nnext\"")
        #expect(StewardLogHandler.logfmtValue("") == "\"\"")
    }
}

@Suite("HTML escaping")
struct HTMLEscapingTests {
    @Test("the five HTML-special characters are escaped; everything else, multi-byte included, passes through")
    func escaping() {
        #expect(StewardHTMLEscaping.escape(#"<a href="x" onclick='y'>&</a>"#) == "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;")
        #expect(StewardHTMLEscaping.escape("plain text, Grüße, 東京 ✓") == "plain text, Grüße, 東京 ✓")
        #expect(StewardHTMLEscaping.escape("") == "")
        #expect(StewardHTMLEscaping.escape("é<é") == "é&lt;é")
    }
}
