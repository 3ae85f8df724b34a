import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import StewardKit

@Suite("An SLO that holds a rollout: only an admin may change or remove it")
struct SLOHoldTests {
    static let json: HTTPFields = [.contentType: "application/json"]
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    /// A paused rollout whose wave 2 the named SLO's budget kept from starting, as RolloutDriver.holdForBudget leaves it.
    static func heldRollout(_ database: DatabasePool, by slo: String, state: String = "paused") throws -> Int64 {
        try database.write { db in
            let now = EpochMilliseconds.from(Date())
            try db.execute(
                sql: """
                    INSERT INTO rollouts (title, what, targets, expires_at, state, requested_by, created_at, updated_at)
                    VALUES ('Security updates', 'security', '["localhost"]', ?, ?, 'ann', ?, ?)
                    """, arguments: [now + 86_400_000, state, now, now])
            let id = db.lastInsertedRowID
            try db.execute(
                sql: "INSERT INTO rollout_waves (rollout_id, number, hosts, state, gate) VALUES (?, 1, '[\"canary\"]', 'passed', 'passed')",
                arguments: [id])
            try db.execute(
                sql: "INSERT INTO rollout_waves (rollout_id, number, hosts, state, gate) VALUES (?, 2, '[\"localhost\"]', 'pending', ?)",
                arguments: [id, RolloutService.budgetHoldPrefix + "the error budget of SLO \"\(slo)\" (-12 % of its error budget left) is spent"])
            return id
        }
    }

    @Test("an SLO that holds a rollout: operators are refused (API, form, import) with the rollout named; admins may")
    func holdNeedsAnAdmin() async throws {
        let harness = try await ServerHarness()
        let store = SLOStore(database: harness.server.database)
        let operatorSession = try harness.signIn("olga", as: [.operator])
        let adminSession = try harness.signIn("ada", as: [.admin])
        try await harness.server.makeApplication().test(.router) { base in
            let operatorClient = SignedInClient(base: base, session: operatorSession)
            let admin = SignedInClient(base: base, session: adminSession)
            // Two SLOs; only "shop-api" holds the rollout. "shop", whose name begins the other's, holds nothing.
            var ids: [String: Int64] = [:]
            for name in ["shop", "shop-api"] {
                let body = #"{"name":"\#(name)","sli":"availability","hosts":["localhost"],"objective":99.5,"window":"7d"}"#
                try await admin.execute(uri: "/api/v1/slos", method: .post, headers: Self.json, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .created, "\(text(response))")
                }
                ids[name] = try #require(try store.slo(named: name)).id
            }
            let held = try #require(ids["shop-api"])
            let free = try #require(ids["shop"])
            let rollout = try Self.heldRollout(harness.server.database, by: "shop-api")
            #expect(try store.holds(try #require(try store.slo(id: held))).map(\.rollout) == [rollout])
            #expect(try store.holds(try #require(try store.slo(id: free))).isEmpty)

            // The operator cannot loosen the objective, remove the SLO or re-import it, by API or form.
            let looser = ByteBuffer(string: #"{"objective":90}"#)
            try await operatorClient.execute(uri: "/api/v1/slos/\(held)", method: .put, headers: Self.json, body: looser) { response in
                #expect(response.status == .forbidden)
                #expect(text(response).contains("holds rollout \(rollout) (wave 2 did not start)") && text(response).contains("only an admin"))
            }
            try await operatorClient.execute(uri: "/api/v1/slos/\(held)", method: .delete) { response in
                #expect(response.status == .forbidden && text(response).contains("only an admin may remove it"), "\(text(response))")
            }
            try await operatorClient.execute(
                uri: "/slos/\(held)", method: .post, headers: Self.form,
                body: ByteBuffer(string: "name=shop-api&sli=availability&objective=90&window=7d&hosts=localhost")
            ) { response in
                #expect(response.status == .seeOther && response.headers[.location] == "/slos/\(held)")
            }
            #expect(try store.slo(id: held)?.objective == 99.5, "the form changed nothing")
            try await operatorClient.execute(uri: "/slos/\(held)/delete", method: .post) { response in
                #expect(response.status == .seeOther && response.headers[.location] == "/slos/\(held)")
            }
            let sloth = """
                version: prometheus/v1
                slos:
                  - name: shop-api
                    objective: 90
                    sli:
                      events:
                        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
                        total_query: sum(rate(http_requests_total[{{.window}}]))
                """
            try await operatorClient.execute(
                uri: "/api/v1/slos/import", method: .post, headers: [.contentType: "application/yaml"], body: ByteBuffer(string: sloth)
            ) { response in
                #expect(response.status == .ok)
                #expect(
                    text(response).contains("holds rollout \(rollout)") && !text(response).contains(#""updated":["shop-api"]"#), "\(text(response))")
            }
            let kept = try #require(try store.slo(id: held))
            #expect(kept.objective == 99.5 && kept.sli == .availability)
            // The SLO's page says what it holds, links the rollout, and offers operators no form; the other has one.
            try await operatorClient.execute(uri: "/slos/\(held)", method: .get) { response in
                let page = text(response)
                #expect(page.contains(#"id="slo-holds""#) && page.contains(#"href="/rollouts/\#(rollout)""#) && page.contains(#"id="slo-locked""#))
                #expect(!page.contains(#"id="slo-form""#) && !page.contains("Remove SLO"))
            }
            try await operatorClient.execute(uri: "/slos/\(free)", method: .get) { response in
                #expect(!text(response).contains(#"id="slo-holds""#) && text(response).contains(#"id="slo-form""#))
            }
            // The SLO that holds nothing changes as before.
            try await operatorClient.execute(uri: "/api/v1/slos/\(free)", method: .put, headers: Self.json, body: looser) { response in
                #expect(response.status == .ok, "\(text(response))")
            }
            // Resumed, the rollout waits for the gate's next answer: the SLO still holds it.
            try await harness.server.database.write { db in
                try db.execute(sql: "UPDATE rollouts SET state = 'running' WHERE id = ?", arguments: [rollout])
            }
            try await operatorClient.execute(uri: "/api/v1/slos/\(held)", method: .put, headers: Self.json, body: looser) { response in
                #expect(response.status == .forbidden, "\(text(response))")
            }
            // An admin may change the holding SLO (audited as any change); the page still shows the form to them.
            try await admin.execute(uri: "/api/v1/slos/\(held)", method: .put, headers: Self.json, body: ByteBuffer(string: #"{"objective":99}"#)) {
                response in
                #expect(response.status == .ok, "\(text(response))")
            }
            #expect(try store.slo(id: held)?.objective == 99)
            try await admin.execute(uri: "/slos/\(held)", method: .get) { response in
                #expect(text(response).contains(#"id="slo-holds""#) && text(response).contains(#"id="slo-form""#))
            }
            // Once the rollout is aborted, the SLO holds nothing and operators change it again.
            try await harness.server.database.write { db in
                try db.execute(sql: "UPDATE rollouts SET state = 'aborted' WHERE id = ?", arguments: [rollout])
            }
            try await operatorClient.execute(uri: "/api/v1/slos/\(held)", method: .put, headers: Self.json, body: looser) { response in
                #expect(response.status == .ok, "\(text(response))")
            }
        }
    }

    @Test("a spent budget locks the SLO and the check it measures for operators, with or without a rollout; Run now still works")
    func spentBudgetLocks() async throws {
        let harness = try await ServerHarness()
        let operatorSession = try harness.signIn("olga", as: [.operator])
        let adminSession = try harness.signIn("ada", as: [.admin])
        try await harness.server.makeApplication().test(.router) { base in
            let operatorClient = SignedInClient(base: base, session: operatorSession)
            let admin = SignedInClient(base: base, session: adminSession)
            for (name, port) in [("shop", 9), ("other", 10)] {
                let body = #"{"name":"\#(name)","kind":"tcp","target":"127.0.0.1:\#(port)","interval_seconds":3600,"host":"localhost"}"#
                try await admin.execute(uri: "/api/v1/checks", method: .post, headers: Self.json, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .created, "\(text(response))")
                }
            }
            let checks = try CheckStore(database: harness.server.database).all()
            let shopCheck = try #require(checks.first { $0.name == "shop" })
            let otherCheck = try #require(checks.first { $0.name == "other" })
            // The last 10 minutes of the shop check failed, every 10 s: a 99 % SLO on it has spent its budget.
            let host = try #require(try harness.server.hosts.host(named: HostStore.localhostName))
            let series = try harness.server.metrics.resolve(hostID: host.id, series: [("probe_success", shopCheck.seriesLabels, .gauge)])[0]
            let now = EpochMilliseconds.from(Date())
            _ = harness.server.metrics.append(stride(from: now - 600_000, to: now, by: 10_000).map { (series: series, time: $0, value: 0.0) })
            for (name, check) in [("shop-slo", "shop"), ("other-slo", "other")] {
                let body = #"{"name":"\#(name)","sli":"probe","check":"\#(check)","objective":99,"window":"7d"}"#
                try await admin.execute(uri: "/api/v1/slos", method: .post, headers: Self.json, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .created, "\(text(response))")
                }
            }
            let slos = SLOStore(database: harness.server.database)
            let spent = try #require(try slos.slo(named: "shop-slo"))
            #expect(harness.server.sloEngine.status(spent.id)?.spent == true)
            #expect(try harness.server.sloEngine.lock(spent)?.contains("has spent its error budget") == true)
            #expect(try harness.server.sloEngine.lock(try #require(try slos.slo(named: "other-slo"))) == nil)

            try await operatorClient.execute(
                uri: "/api/v1/slos/\(spent.id)", method: .put, headers: Self.json, body: ByteBuffer(string: #"{"objective":50}"#)
            ) {
                response in
                #expect(response.status == .forbidden && text(response).contains("SLO shop-slo has spent its error budget"), "\(text(response))")
            }
            // The check it measures: made to pass (another target) or turned off, the budget would recover unearned.
            for change in [#"{"target":"127.0.0.1:22"}"#, #"{"enabled":false}"#, #"{"interval_seconds":1}"#] {
                try await operatorClient.execute(
                    uri: "/api/v1/checks/\(shopCheck.id)", method: .put, headers: Self.json, body: ByteBuffer(string: change)
                ) { response in
                    #expect(response.status == .forbidden && text(response).contains("change check shop, which it measures"), "\(text(response))")
                }
            }
            try await operatorClient.execute(
                uri: "/checks/\(shopCheck.id)", method: .post, headers: Self.form,
                body: ByteBuffer(string: "name=shop&kind=tcp&target=127.0.0.1%3A22&interval_seconds=3600&timeout_seconds=5&host=localhost&enabled=on")
            ) { response in
                #expect(response.status == .seeOther && response.headers[.location] == "/checks/\(shopCheck.id)")
            }
            #expect(try CheckStore(database: harness.server.database).check(id: shopCheck.id)?.target == "127.0.0.1:9")
            try await operatorClient.execute(uri: "/checks/\(shopCheck.id)", method: .get) { response in
                let page = text(response)
                #expect(page.contains(#"id="check-locked""#) && !page.contains(#"id="check-form""#) && page.contains("Run now"))
            }
            // The other check and its SLO are the operator's as before; an admin may change the locked check.
            try await operatorClient.execute(
                uri: "/api/v1/checks/\(otherCheck.id)", method: .put, headers: Self.json, body: ByteBuffer(string: #"{"interval_seconds":600}"#)
            ) { response in #expect(response.status == .ok, "\(text(response))") }
            try await operatorClient.execute(uri: "/checks/\(otherCheck.id)", method: .get) { response in
                #expect(!text(response).contains(#"id="check-locked""#) && text(response).contains(#"id="check-form""#))
            }
            try await admin.execute(
                uri: "/api/v1/checks/\(shopCheck.id)", method: .put, headers: Self.json, body: ByteBuffer(string: #"{"interval_seconds":600}"#)
            ) { response in #expect(response.status == .ok, "\(text(response))") }
        }
    }

    @Test("a held wave keeps respecting the SLOs that held it, even once they no longer cover its hosts")
    func holdsStick() async throws {
        let harness = try await ServerHarness()
        var slo = SLO()
        slo.name = "shop"
        slo.sli = .availability
        slo.scopeHosts = ["localhost"]
        slo.objective = 99.5
        _ = try SLOStore(database: harness.server.database).save(slo, by: .system, now: Date())
        let id = try Self.heldRollout(harness.server.database, by: "shop")
        let service = await harness.server.rolloutDriver.service
        let rollout = try #require(try service.rollout(id: id))
        var wave = try #require(try service.waves(id).last)
        #expect(RolloutDriver.heldBy(wave.gate) == ["shop"])
        #expect(RolloutDriver.heldBy("passed: SLO \"shop\" (was fine)").isEmpty, "only a hold's own words count")
        #expect(
            RolloutDriver.heldBy(
                RolloutService.budgetHoldPrefix + #"the error budget of SLO "a b" (1 % left) and SLO "c.d" (not evaluated) is spent"#)
                == ["a b", "c.d"])
        // The wave's host is no longer one the SLO covers (as when a host leaves a group): the hold still counts.
        wave.hosts = ["elsewhere"]
        #expect(try await harness.server.rolloutDriver.respected(rollout, wave: wave).map(\.name) == ["shop"])
        wave.gate = ""
        #expect(try await harness.server.rolloutDriver.respected(rollout, wave: wave).isEmpty)
    }
}
