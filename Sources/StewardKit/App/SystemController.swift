import Foundation
import GRDB
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// Health, readiness, Prometheus metrics and the OpenAPI document.
struct SystemController {
    let area: AreaContext
    let database: DatabasePool
    let databasePath: String
    let jobs: JobStore
    let metrics: HTTPMetrics
    var collector: MetricCollector?
    var disk: DiskSpace?
    var shedding: LoadShedding?

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "system")
        api(.get, "/healthz", .anonymous, "health", "The process is alive", reply: "Alive", schema: "Health") { _, context in
            Self.health("ok", context: context)
        }
        api(
            .get, "/readyz", .anonymous, "ready", "The database accepts writes", reply: "Ready", schema: "Health",
            otherReplies: [
                .init(status: 503, description: "The database is not writable", schema: "Problem", contentType: "application/problem+json")
            ],
            use: ready)
        // Not public: route names, job counts and timings describe the fleet's activity. Prometheus scrapes with a
        // viewer token (authorization: {type: Bearer, credentials_file: ...}).
        api(
            .get, "/metrics", .view, "metrics", "Prometheus text exposition of Steward's own metrics", reply: "Metrics", schema: "text",
            contentType: "text/plain; version=0.0.4", use: exposition)
        api(.get, "/api/openapi.json", .view, "openapi", "This document", reply: "OpenAPI 3.1 document", schema: "OpenAPIDocument") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: try area.docs.documentText())))
        }
    }

    /// A committed write to the database file proves it is writable and not locked out; the data directory's disk
    /// must also keep its reserve (disk_reserve_mb), so readiness fails before SQLite has to refuse a commit.
    @Sendable func ready(request: Request, context: StewardRequestContext) async throws -> Response {
        let signedIn = context.identity.map { !$0.secondFactorPending } ?? false
        var problem: String?
        do {
            try await database.write { db in
                try db.execute(
                    sql: "INSERT OR REPLACE INTO readiness_probe (id, checked_at) VALUES (1, ?)", arguments: [EpochMilliseconds.from(Date())])
                _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM schema_migrations")
            }
            problem = disk?.shortage()
        } catch {
            if DiskSpace.isFull(error), let disk {
                disk.recordFull()
                problem = disk.fullMessage()
            } else {
                problem = "database \(databasePath) is not writable: \(error)"
            }
        }
        if let problem {
            throw Problem(
                status: .serviceUnavailable,
                detail: signedIn ? problem : "not ready: the database cannot take writes; sign in (or read /readyz with a token) for the cause")
        }
        return Self.health("ready", context: context)
    }

    /// A health answer; the version only for a signed-in caller (anyone can reach these).
    static func health(_ status: String, context: StewardRequestContext) -> Response {
        let signedIn = context.identity.map { !$0.secondFactorPending } ?? false
        let body = signedIn ? #"{"status":"\#(status)","version":"\#(StewardVersion.current)"}"# : #"{"status":"\#(status)"}"#
        return Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    @Sendable func exposition(request: Request, context: StewardRequestContext) async throws -> Response {
        metrics.setJobs(try jobs.countsByState())
        metrics.setDatabaseSize(StewardDatabase.sizeOnDisk(path: databasePath))
        metrics.setLogFailures(LogOutput.failedLines)
        if let disk { metrics.setDisk(free: disk.freeBytes(), fullErrors: disk.fullErrorCount) }
        if let shedding { metrics.setShedding(shedding) }
        if let collector {
            metrics.setMetricStore(
                series: collector.store.series().count, outOfOrder: collector.store.outOfOrder, lastRound: collector.lastRoundSummary)
            if let remoteWrite = collector.remoteWrite { metrics.setRemoteWrite(try remoteWrite.statuses()) }
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
    }
}

/// The landing page: what is running, what failed, what runs next.
struct DashboardController {
    let area: AreaContext
    let jobs: JobStore
    let schedules: ScheduleStore
    let fleet: MonitoringController
    let databasePath: String
    let startedAt: Date

    func addRoutes(to routes: Routes) {
        routes.get("/", .view, use: dashboard)
    }

    @Sendable func dashboard(request: Request, context: StewardRequestContext) async throws -> Response {
        let counts = try jobs.countsByState()
        let recent = try jobs.list(JobFilter(limit: 10))
        let upcoming = try schedules.all().filter(\.enabled).compactMap { schedule -> (Int64, ViewNode)? in
            guard let next = schedule.nextFireAt else { return nil }
            return (next, ViewNode(["id": schedule.id, "name": schedule.name, "next": DisplayTime.text(next), "job_title": schedule.jobTitle]))
        }.sorted { $0.0 < $1.0 }.prefix(5).map(\.1)
        var query: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
        let fleetData = try fleet.fleetView(query)
        let jobData: [String: Any] = [
            "counts": Job.State.allCases.map { ViewNode(["state": $0.rawValue, "count": counts[$0] ?? 0]) },
            "active_count": (counts[.running] ?? 0) + (counts[.queued] ?? 0),
            "problem_count": (counts[.failed] ?? 0) + (counts[.interrupted] ?? 0),
            "has_problems": (counts[.failed] ?? 0) + (counts[.interrupted] ?? 0) > 0,
            "recent": recent.map(JobController.view), "no_recent": recent.isEmpty,
            "upcoming": Array(upcoming), "no_upcoming": upcoming.isEmpty,
            "database_size": MetricUnit.bytes.format(Double(StewardDatabase.sizeOnDisk(path: databasePath))),
            "uptime": DisplayTime.duration(from: EpochMilliseconds.from(startedAt), to: nil) ?? "",
        ]
        let firing = try AlertSummary.firingNow(jobs.database)
        let alertData: [String: Any] = [
            "firing": firing, "none_firing": firing.isEmpty, "firing_total": try AlertSummary.firingCount(jobs.database),
            "nobody_told": try AlertSummary.nobodyIsTold(jobs.database),
        ]
        let data = fleetData.merging(jobData) { a, _ in a }.merging(alertData) { a, _ in a }
        return area.pages.page("dashboard", title: "Dashboard", section: "dashboard", data: data, request: request, context: context)
    }
}

/// Settings: the effective configuration and where each value came from.
struct SettingsController {
    let area: AreaContext
    let configuration: StewardConfiguration
    let resources: String
    let database: any DatabaseReader

    func addRoutes(to routes: Routes) {
        routes.get("/settings", .view, use: settings)
    }

    @Sendable func settings(request: Request, context: StewardRequestContext) async throws -> Response {
        let rows = ConfigurationReport.rows(configuration, resources: resources).map {
            ViewNode(["name": $0.name, "value": $0.value, "source": $0.source])
        }
        let admin = context.identity?.permissions.contains(.admin) ?? false
        return area.pages.page(
            "settings/index", title: "Settings", section: "settings",
            data: ["rows": rows, "admin": admin, "nobody_told": try AlertSummary.nobodyIsTold(database)], request: request, context: context)
    }
}

/// The effective configuration as rows, for `steward check-config` and the Settings page.
public enum ConfigurationReport {
    public static func rows(_ configuration: StewardConfiguration, resources: String?) -> [(name: String, value: String, source: String)] {
        let values: [String: String] = [
            "bind": configuration.bind, "port": String(configuration.port), "tls": String(configuration.tls),
            "tls_cert": configuration.tlsCertificatePath ?? "(generated in data dir)",
            "tls_key": configuration.tlsKeyPath ?? "(generated in data dir)",
            "external_url": configuration.externalURL ?? "(not set; links use \(configuration.publicBaseURL))",
            "resources": resources ?? configuration.resourcesDirectory ?? "(not found)", "log_level": configuration.logLevel.rawValue,
            "log_format": configuration.logFormat.rawValue, "job_concurrency": String(configuration.jobConcurrency),
            "job_log_cap_bytes": String(configuration.jobLogCapBytes), "shutdown_grace_seconds": String(configuration.shutdownGraceSeconds),
            "pam_service": configuration.pamService, "session_idle_minutes": String(configuration.sessionIdleMinutes),
            "session_lifetime_hours": String(configuration.sessionLifetimeHours),
            "metrics_interval_seconds": String(configuration.metricsIntervalSeconds),
            "logs_interval_seconds": String(configuration.logsIntervalSeconds),
            "syslog_port": configuration.syslogPort == 0 ? "0 (no syslog intake)" : String(configuration.syslogPort),
            "syslog_tls_port": configuration.syslogTLSPort == 0 ? "0 (no syslog over TLS)" : String(configuration.syslogTLSPort),
            "scrape_timeout_seconds": String(configuration.scrapeTimeoutSeconds),
            "alert_interval_seconds": String(configuration.alertIntervalSeconds),
            "trusted_proxies": configuration.trustedProxies.isEmpty
                ? "(none; X-Forwarded-For is ignored)" : configuration.trustedProxies.map(\.description).joined(separator: ","),
        ]
        return [("data", configuration.dataDirectory, configuration.sources["data"] ?? "default")]
            + StewardConfiguration.settingNames.map { ($0, values[$0] ?? "", configuration.sources[$0] ?? "default") }
    }
}
