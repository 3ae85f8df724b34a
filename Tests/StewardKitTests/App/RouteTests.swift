import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import StewardKit

func text(_ response: TestResponse) -> String { String(buffer: response.body) }

func json(_ response: TestResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
}

@Suite("HTTP routes")
struct RouteTests {
    @Test("health and readiness answer; the dashboard renders with only built areas in the navigation")
    func basics() async throws {
        let harness = try await ServerHarness()
        try await harness.test { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(text(response).contains(#""status":"ok""#))
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                let page = text(response)
                #expect(page.contains(#"<a href="/" data-nav="dashboard" aria-current="page">Dashboard</a>"#))
                #expect(page.contains(#"href="/jobs""#) && page.contains(#"href="/settings""#))
                #expect(page.contains(#"href="/audit""#), "an admin sees the audit log")
                for area in [
                    "/hosts", "/accounts", "/updates", "/rollouts", "/backups", "/alerts", "/alerts/silences", "/schedules", "/config", "/hosts/ssh",
                ] {
                    #expect(page.contains("href=\"\(area)\""), "navigation links to \(area)")
                }
                // The dashboard shows the five schedules that fire next; which five depends on the hour.
                #expect(page.contains("next at") && page.contains(#"href="/schedules""#))
                #expect(!page.contains("<script>"), "no inline script")
            }
            try await client.execute(uri: "/schedules", method: .get) { response in
                #expect(response.status == .ok)
                #expect(text(response).contains("Database maintenance"), "the built-in schedules are listed")
            }
        }
    }

    @Test("every response carries the security headers")
    func securityHeaders() async throws {
        let harness = try await ServerHarness()
        try await harness.test { client in
            for uri in ["/", "/healthz", "/css/steward.css", "/no-such-page", "/api/v1/jobs"] {
                try await client.execute(uri: uri, method: .get) { response in
                    let csp = response.headers[.contentSecurityPolicy] ?? ""
                    #expect(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "\(uri)")
                    #expect(response.headers[.xContentTypeOptions] == "nosniff")
                    #expect(response.headers[HTTPField.Name("Referrer-Policy")!] == "same-origin")
                }
            }
        }
    }

    @Test("unknown pages get a friendly HTML 404; unknown API paths get problem+json")
    func notFound() async throws {
        let harness = try await ServerHarness()
        try await harness.test { client in
            try await client.execute(uri: "/no-such-page", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(text(response).contains("there is no page at /no-such-page"))
                #expect(text(response).contains(#"href="/">dashboard</a>"#))
            }
            try await client.execute(uri: "/api/v1/no-such-thing", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType] == "application/problem+json")
                let problem = try json(response)
                let status = problem["status"] as? Int
                #expect(status == 404 && problem["title"] as? String == "Not Found")
            }
            try await client.execute(uri: "/api/v1/jobs/999", method: .get) { response in
                #expect(response.status == .notFound)
                let detail = try json(response)["detail"] as? String
                #expect(detail == "job 999 does not exist")
            }
            // Only Public/ is served: the data directory and sources stay unreachable.
            for uri in ["/steward.db", "/../migrations/0001_core.sql", "/Templates/layout.mustache", "/secret.key", "/%2e%2e/Package.swift"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .notFound || response.status == .badRequest, "\(uri)")
                    #expect(!text(response).contains("CREATE TABLE") && !text(response).contains("PackageDescription"))
                }
            }
        }
    }

    @Test("static files are served from Public/ with a type and caching")
    func staticFiles() async throws {
        let harness = try await ServerHarness()
        try await harness.test { client in
            try await client.execute(uri: "/css/steward.css", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/css") == true)
                #expect(response.headers[.cacheControl]?.contains("max-age=3600") == true)
                #expect(text(response).contains("prefers-color-scheme: dark"))
            }
            var etag = ""
            try await client.execute(uri: "/js/steward.js", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/javascript; charset=utf-8")
                etag = response.headers[.eTag] ?? ""
            }
            #expect(!etag.isEmpty)
            try await client.execute(uri: "/js/steward.js", method: .get, headers: [.ifNoneMatch: etag]) { response in
                #expect(response.status == .notModified)
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/img/steward.svg", method: .head) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "image/svg+xml")
            }
        }
    }

    @Test("/metrics exposes requests by route and status, latency, jobs by state and database size")
    func metrics() async throws {
        let harness = try await ServerHarness()
        _ = try await harness.runJob(title: "metric job")
        try await harness.test { client in
            _ = try await client.execute(uri: "/jobs", method: .get)
            _ = try await client.execute(uri: "/missing", method: .get)
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                let body = text(response)
                #expect(body.contains(#"steward_http_requests_total{method="GET",route="/jobs",status="200"} 1"#))
                #expect(body.contains(#"status="404""#))
                #expect(body.contains(#"steward_http_request_duration_seconds_bucket{method="GET",route="/jobs",le="#))
                #expect(body.contains(#"steward_jobs{state="succeeded"} 1"#))
                #expect(body.contains(#"steward_jobs{state="running"} 0"#))
                #expect(body.contains("steward_database_size_bytes "))
            }
        }
    }

    @Test("the OpenAPI document lists exactly the API routes the router serves")
    func openAPIMatchesRouter() async throws {
        let harness = try await ServerHarness()
        let documented = Set(harness.server.docs.routerPaths.map { "\($0.method) \($0.path)" })
        let served = Set(
            harness.server.router.routes.map { "\($0.method.rawValue) \($0.path)" }.filter {
                $0.contains(" /api/") || $0.hasSuffix(" /healthz") || $0.hasSuffix(" /readyz") || $0.hasSuffix(" /metrics")
            })
        #expect(
            documented == served,
            "documented but not served: \(documented.subtracting(served)); served but not documented: \(served.subtracting(documented))")
        try await harness.test { client in
            try await client.execute(uri: "/api/openapi.json", method: .get) { response in
                let document = try json(response)
                #expect(document["openapi"] as? String == "3.1.0")
                let paths = try #require(document["paths"] as? [String: Any])
                #expect(paths["/api/v1/jobs/{id}/cancel"] != nil)
                let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
                #expect(schemas["Job"] != nil && schemas["Problem"] != nil)
            }
        }
    }

    @Test("jobs API: list with filters and cursor, read, log as NDJSON, cancel of a finished job is a conflict")
    func jobsAPI() async throws {
        let harness = try await ServerHarness()
        let first = try await harness.runJob(title: "first")
        let second = try await harness.runJob(title: "second")
        try await harness.test { client in
            try await client.execute(uri: "/api/v1/jobs?limit=1", method: .get) { response in
                let body = try json(response)
                let items = try #require(body["items"] as? [[String: Any]])
                #expect(items.count == 1)
                #expect(items[0]["id"] as? Int == Int(second.id))
                #expect(items[0]["state"] as? String == "succeeded")
                #expect((items[0]["progress"] as? [String: Any])?["percent"] as? Double == 100)
                #expect((items[0]["created_at"] as? String)?.hasSuffix("Z") == true)
                #expect(body["next"] as? String == "/api/v1/jobs?cursor=\(second.id)&limit=1")
            }
            try await client.execute(uri: "/api/v1/jobs?cursor=\(second.id)&limit=1", method: .get) { response in
                let items = try #require(try json(response)["items"] as? [[String: Any]])
                #expect(items.first?["id"] as? Int == Int(first.id))
            }
            try await client.execute(uri: "/api/v1/jobs?state=bogus&limit=0", method: .get) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try #require(try json(response)["errors"] as? [String: String])
                #expect(errors["state"]?.contains("queued, running, succeeded") == true)
                #expect(errors["limit"] == "must be an integer from 1 to 200")
            }
            try await client.execute(uri: "/api/v1/jobs?state=succeeded&kind=test.echo", method: .get) { response in
                let items = try json(response)["items"] as? [Any]
                #expect(items?.count == 2)
            }
            try await client.execute(uri: "/api/v1/jobs/\(first.id)/log", method: .get) { response in
                #expect(response.headers[.contentType] == "application/x-ndjson")
                let lines = text(response).split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
                #expect(lines.contains { ($0["text"] as? String)?.contains("output of first") == true })
                #expect(lines.last?["type"] as? String == "end" && lines.last?["state"] as? String == "succeeded")
            }
            try await client.execute(uri: "/api/v1/jobs/\(first.id)/cancel", method: .post) { response in
                #expect(response.status == .conflict)
                let detail = try json(response)["detail"] as? String
                #expect(detail == "job \(first.id) already ended (succeeded); nothing to cancel")
            }
        }
    }

    @Test("job pages: list, detail with log, SSE stream, raw log; titles are escaped")
    func jobPages() async throws {
        let harness = try await ServerHarness()
        let job = try await harness.runJob(title: "<script>alert(1)</script>")
        try await harness.test { client in
            try await client.execute(uri: "/jobs?state=succeeded", method: .get) { response in
                let page = text(response)
                #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
                #expect(!page.contains("<script>alert(1)"))
            }
            try await client.execute(uri: "/jobs?state=nonsense", method: .get) { response in
                #expect(text(response).contains("unknown state &quot;nonsense&quot;"))
            }
            try await client.execute(uri: "/jobs/\(job.id)", method: .get) { response in
                let page = text(response)
                #expect(page.contains("output of &lt;script&gt;"))
                #expect(page.contains(#"<progress id="job-progress" max="100" value="100">"#))
                #expect(!page.contains("Cancel job"), "a finished job offers no cancel")
            }
            try await client.execute(uri: "/jobs/\(job.id)/events", method: .get) { response in
                #expect(response.headers[.contentType] == "text/event-stream")
                let stream = text(response)
                #expect(stream.contains("event: log\ndata: {"))
                #expect(stream.contains(#"event: end"#) && stream.contains(#""state":"succeeded""#))
            }
            try await client.execute(uri: "/jobs/\(job.id)/log.txt", method: .get) { response in
                #expect(text(response).contains("output of <script>alert(1)</script>"))
                #expect(response.headers[.contentDisposition]?.contains("attachment") == true)
            }
        }
    }

    @Test("state-changing requests from a foreign origin are refused; same-origin ones redirect with a flash message")
    func originCheckAndFlash() async throws {
        let harness = try await ServerHarness()
        let schedule = try #require(try harness.server.scheduler.store.schedule(named: "Database maintenance"))
        try await harness.test { client in
            try await client.execute(
                uri: "/schedules/\(schedule.id)/run", method: .post, headers: [.origin: "https://evil.example"]
            ) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(
                uri: "/api/v1/jobs/1/cancel", method: .post, headers: [HTTPField.Name("Sec-Fetch-Site")!: "cross-site"]
            ) { response in
                #expect(response.status == .forbidden)
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            #expect(try harness.server.jobs.store.list(JobFilter()).isEmpty, "refused requests changed nothing")
            var cookie = ""
            try await client.execute(
                uri: "/schedules/\(schedule.id)/run", method: .post, headers: [.origin: "http://localhost:10000"]
            ) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/jobs/1")
                cookie = String(response.headers[.setCookie]?.split(separator: ";").first ?? "")
                #expect(response.headers[.setCookie]?.contains("HttpOnly; SameSite=Strict") == true)
            }
            try await client.execute(uri: "/jobs/1", method: .get, headers: [.cookie: cookie]) { response in
                #expect(text(response).contains("Started &quot;Database maintenance&quot; as job 1."))
            }
            // A forged flash cookie is ignored.
            try await client.execute(uri: "/jobs/1", method: .get, headers: [.cookie: "steward_flash=eyJsZXZlbCI6ImVycm9yIiwidGV4dCI6Imhh.forged"]) {
                response in
                #expect(!text(response).contains("class=\"flash flash-error\""))
            }
        }
    }

    @Test("schedules: API shows five fire times; invalid edits give per-field errors and keep what was typed")
    func schedules() async throws {
        let harness = try await ServerHarness()
        let schedule = try #require(try harness.server.scheduler.store.schedule(named: "Database maintenance"))
        try await harness.test { client in
            try await client.execute(uri: "/api/v1/schedules/\(schedule.id)", method: .get) { response in
                let body = try json(response)
                #expect((body["next_fire_times"] as? [String])?.count == 5)
                #expect(body["cron"] as? String == "17 3 * * *")
            }
            try await client.execute(
                uri: "/api/v1/schedules/\(schedule.id)", method: .patch, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"cron": "61 * * * *", "time_zone": "Nowhere/City", "catch_up": "all"}"#)
            ) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try #require(try json(response)["errors"] as? [String: String])
                #expect(errors["cron"] == "minute: 61 is out of range; allowed: 0-59")
                #expect(errors["time_zone"]?.contains("IANA") == true)
                #expect(errors["catch_up"] == "must be none or one")
            }
            try await client.execute(
                uri: "/api/v1/schedules/\(schedule.id)", method: .patch, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"jitter_seconds": "lots"}"#)
            ) { response in
                #expect(response.status == .unprocessableContent)
                let errors = try json(response)["errors"] as? [String: String]
                #expect(errors?["jitter_seconds"] != nil)
            }
            try await client.execute(
                uri: "/api/v1/schedules/\(schedule.id)", method: .patch, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"cron": "@hourly", "time_zone": "Europe/Berlin", "enabled": false}"#)
            ) { response in
                #expect(response.status == .ok)
                let body = try json(response)
                #expect(body["cron"] as? String == "@hourly" && body["enabled"] as? Bool == false)
            }
            try await client.execute(
                uri: "/api/v1/schedules/preview", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"cron": "0 12 29 2 *", "time_zone": "UTC", "count": 2}"#)
            ) { response in
                let times = try #require(try json(response)["next_fire_times"] as? [String])
                #expect(times.count == 2 && times.allSatisfy { $0.contains("-02-29T12:00:00") })
            }
            try await client.execute(
                uri: "/schedules/\(schedule.id)", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "cron=*+*+*+13+*&time_zone=Europe%2FBerlin&jitter_seconds=abc&catch_up=one&concurrency=forbid&enabled=on")
            ) { response in
                #expect(response.status == .unprocessableContent)
                let page = text(response)
                #expect(page.contains("month: 13 is out of range; allowed: 1-12 or JAN-DEC"))
                #expect(page.contains(#"value="* * * 13 *""#), "keeps what the user typed")
                #expect(page.contains(#"value="abc""#))
                #expect(page.contains("must be a whole number of seconds"))
            }
            try await client.execute(
                uri: "/schedules/\(schedule.id)", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(
                    string: "cron=30+4+*+*+MON-FRI&time_zone=America%2FNew_York&jitter_seconds=60&catch_up=none&concurrency=replace&enabled=on")
            ) { response in
                #expect(response.status == .seeOther)
            }
            let saved = try #require(try harness.server.scheduler.store.schedule(id: schedule.id))
            #expect(saved.cron == "30 4 * * MON-FRI" && saved.timeZone == "America/New_York" && saved.concurrency == .replace && saved.enabled)
            try await client.execute(uri: "/schedules", method: .get) { response in
                let page = text(response)
                #expect(page.contains("30 4 * * MON-FRI"))
                #expect(page.components(separatedBy: "<li>").count - 1 >= 5)
                #expect(page.contains("EST") || page.contains("EDT") || page.contains("GMT-"))
            }
        }
    }

    @Test("the database maintenance job runs for real and reports what it did")
    func maintenanceJob() async throws {
        let harness = try await ServerHarness()
        let runner = harness.server.jobs
        let loop = Task { try? await runner.run() }
        defer { loop.cancel() }
        let schedule = try #require(try harness.server.scheduler.store.schedule(named: "Database maintenance"))
        let firing = try #require(try await harness.server.scheduler.runNow(id: schedule.id, by: AuditActor(actor: "test")))
        let jobID = try #require(firing.jobID)
        _ = try await waitUntil { try runner.store.job(id: jobID)?.state.isFinished == true }
        let job = try #require(try runner.store.job(id: jobID))
        #expect(job.state == .succeeded, "at \(job.progressPercent ?? -1) %: \(job.progressMessage) \(job.error ?? "")")
        let log = try runner.store.logChunks(id: jobID).map(\.text).joined()
        #expect(log.contains("integrity: ok") && log.contains("WAL checkpoint: busy=0"))
    }
}
