import Foundation
import Testing

@testable import StewardKit

@Suite("One formatter each for durations and hex")
struct DisplayFormatTests {
    @Test("durations: about (estimates) and exact (windows, steps, job run times), in the same units everywhere")
    func durations() {
        #expect(DurationText.format(seconds: 44.6) == "45 s" && DurationText.format(seconds: 190) == "3 min")
        #expect(DurationText.format(seconds: 7500) == "2 h 5 min" && DurationText.format(seconds: 7200) == "2 h")
        #expect(DurationText.exact(seconds: 0) == "0 s" && DurationText.exact(seconds: 90) == "1 min 30 s")
        #expect(DurationText.exact(seconds: 300) == "5 min" && DurationText.exact(seconds: 3605) == "1 h 5 s")
        #expect(MonitoringController.durationText(60_000) == "1 min" && MonitoringController.durationText(3_600_000) == "1 h")
        #expect(DisplayTime.duration(from: 0, to: 185_000) == "3 min 5 s")
        #expect(DisplayTime.duration(from: 0, to: 3_725_000) == "1 h 2 min", "past an hour the seconds are left out")
        #expect(DisplayTime.duration(from: nil, to: 1) == nil)
    }

    @Test("hex of a digest is lower case, two digits a byte, as sha256sum prints it")
    func hex() {
        #expect(hexString([0, 1, 0xab, 0xff]) == "0001abff")
        #expect(sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}

@Suite("Codable API resources: the same JSON the dictionaries gave")
struct APIResourceTests {
    @Test("free-form values keep their JSON types: booleans stay booleans, whole numbers stay integers")
    func jsonValues() throws {
        let value = JSONValue(any: ["flag": true, "port": 8080, "ratio": 0.5, "name": "web", "list": [1, "two"], "none": NSNull()] as [String: Any])
        let text = String(decoding: try APIJSON.encode(value), as: UTF8.self)
        #expect(text == #"{"flag":true,"list":[1,"two"],"name":"web","none":null,"port":8080,"ratio":0.5}"#)
        #expect(JSONValue(text: "not json") == .object([:]) && JSONValue(text: #"{"plan_id":3}"#) == .object(["plan_id": .integer(3)]))
    }

    @Test("a host and a job write every field, absent ones as null, with their links")
    func resources() async throws {
        let harness = try await ServerHarness()
        let host = try #require(try harness.server.hosts.all().first)
        let object = try JSONDecoder().decode([String: JSONValue].self, from: APIJSON.encode(HostResource(host)))
        #expect(object["name"] == .string("localhost") && object["metrics_url"] == .null && object["state_detail"] != nil)
        #expect(object["links"]?["self"] == .string("/api/v1/hosts/\(host.id)"))
        let job = try await harness.runJob(title: "resource test")
        let jobObject = try JSONDecoder().decode([String: JSONValue].self, from: APIJSON.encode(JobResource(job)))
        #expect(jobObject["schedule_id"] == .null && jobObject["title"] == .string("resource test"))
        guard case .object? = jobObject["params"] else {
            Issue.record("params is not an object: \(String(describing: jobObject["params"]))")
            return
        }
        #expect(jobObject["progress"]?["message"] != nil)
    }
}
