import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import StewardKit

@Suite("Typed request bodies, 405 for a method a path does not answer, and one handler per route")
struct APIInputTests {
    @Test("every wrong field of a body is named at once: unknown keys, wrong types, a choice not offered, a number too big")
    func wrongFieldsNamedTogether() throws {
        let body = #"{"window_seconds":"5m","enabled":1,"aggregation":"median","horizon_seconds":1e40,"colour":"red","warn_threshold":null}"#
        #expect(throws: Problem.self) { try APIInputDecoding.decode(AlertRuleInput.self, from: Data(body.utf8)) }
        do {
            _ = try APIInputDecoding.decode(AlertRuleInput.self, from: Data(body.utf8))
        } catch let problem as Problem {
            let errors = problem.errors ?? [:]
            #expect(errors["window_seconds"] == "must be an integer")
            #expect(errors["enabled"] == "must be true or false")
            #expect(errors["aggregation"]?.hasPrefix("one of avg") == true, "\(errors)")
            #expect(errors["horizon_seconds"] == "must be an integer")
            #expect(errors["colour"]?.contains("unknown field") == true)
            #expect(errors["warn_threshold"] == nil, "null is a valid level: no such level")
            #expect(problem.status == 422)
        }
        #expect(throws: Problem.self) { try APIInputDecoding.decode(AlertRuleInput.self, from: Data("[1,2]".utf8)) }
    }

    @Test("left out keeps the value, null clears what may be cleared, a value is copied")
    func patchSemantics() throws {
        var rule = AlertRule()
        rule.name = "Before"
        rule.warnThreshold = 5
        rule.critThreshold = 9
        let input = try APIInputDecoding.decode(AlertRuleInput.self, from: Data(#"{"warn_threshold":null,"summary":"now"}"#.utf8))
        try input.apply(to: &rule)
        #expect(rule.name == "Before" && rule.warnThreshold == nil && rule.critThreshold == 9 && rule.summary == "now")
        let nulled = try APIInputDecoding.decode(AlertRuleInput.self, from: Data(#"{"name":null}"#.utf8))
        #expect(throws: Problem.self) { try nulled.apply(to: &rule) }

        var channel = NotificationChannel()
        channel.secret = "old"
        try APIInputDecoding.decode(ChannelInput.self, from: Data(#"{"name":"ops","url":"https://hooks.example.com/x","secret":null}"#.utf8))
            .apply(to: &channel)
        #expect(channel.secret == nil && channel.name == "ops")
    }

    @Test("the host form and a JSON body give the same settings: names, groups and tags lowercased, text trimmed")
    func hostFormAndJSONAgree() throws {
        let form = FormBody(
            "name=%20Web-01%20&address=%2010.0.0.5%20&transport=ssh&ssh_port=2222&ssh_user=%20deploy%20&become=sudo&groups=Web%2C%20EU"
                + "&tags=Prod&variables=a%3A%201&metrics_url=&metrics_allow=&notes=n&enabled=on")
        var fromForm = HostSettings()
        try HostInput(form: form).apply(to: &fromForm)
        let body = #"""
            {"name":" Web-01 ","address":" 10.0.0.5 ","transport":"ssh","ssh_port":2222,"ssh_user":" deploy ","become":"sudo",
             "groups":["Web","EU"],"tags":["Prod"],"variables":"a: 1","metrics_url":"","metrics_allow":null,"notes":"n","enabled":true}
            """#
        var fromJSON = HostSettings()
        try APIInputDecoding.decode(HostInput.self, from: Data(body.utf8)).apply(to: &fromJSON)
        #expect(fromForm == fromJSON)
        #expect(fromJSON.name == "web-01" && fromJSON.groups == ["web", "eu"] && fromJSON.address == "10.0.0.5" && fromJSON.metricsURL == nil)
        #expect(fromJSON.problems().isEmpty, "\(fromJSON.problems())")
    }

    @Test("a path asked with a method it does not answer gets 405 and Allow; a literal segment wins over a parameter")
    func methodNotAllowed() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.viewer]) { client in
            try await client.execute(uri: "/api/v1/hosts", method: .init("TRACE")!) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, POST")
                #expect(response.headers[.contentType]?.hasPrefix("application/problem+json") == true)
            }
            // GET /api/v1/alerts/rules/export exists; PUT only exists for rules/{id}, which the router does not try here.
            try await client.execute(uri: "/api/v1/alerts/rules/export", method: .put) { response in
                #expect(response.status == .methodNotAllowed && response.headers[.allow] == "GET")
            }
            // A path nothing answers is still a 404, and an existing method with a missing record is too.
            try await client.execute(uri: "/api/v1/nothing-here", method: .get) { response in #expect(response.status == .notFound) }
            try await client.execute(uri: "/api/v1/alerts/rules/999999", method: .get) { response in #expect(response.status == .notFound) }
        }
    }

    @Test("two handlers for one route are reported, so the server can refuse to start")
    func duplicateRoutes() {
        let table = RouteTable()
        table.declare(.get, RouterPath("/api/v1/things"), .view)
        table.declare(.post, RouterPath("/api/v1/things"), .admin)
        #expect(table.duplicates.isEmpty)
        table.declare(.get, RouterPath("/api/v1/things"), .view)
        #expect(table.duplicates == ["GET /api/v1/things"])
        #expect(DuplicateRoute(route: "GET /api/v1/things").description.contains("GET /api/v1/things"))
    }

    @Test("query parameters: wrong values are named with what is accepted")
    func queryParameters() async throws {
        let harness = try await ServerHarness()
        try await harness.test(as: [.viewer]) { client in
            for uri in ["/api/v1/alerts/history?limit=true", "/api/v1/alerts/deliveries?limit=0", "/api/v1/metrics/series?cursor=-3"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .unprocessableContent, "\(uri)")
                    #expect(String(buffer: response.body).contains("must be"), "\(uri)")
                }
            }
        }
    }
}
