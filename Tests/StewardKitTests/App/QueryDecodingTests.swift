import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Testing

@testable import StewardKit

@Suite("Query strings are read as forms: + is a space")
struct QueryDecodingTests {
    static func request(_ path: String) -> Request {
        Request(head: HTTPRequest(method: .get, scheme: "http", authority: "localhost", path: path), body: RequestBody(buffer: ByteBuffer()))
    }

    @Test("a + in a query value is a space and %2B a plus, as Python's requests, curl -G --data-urlencode and GET forms send them")
    func plusIsASpace() {
        let query = FormBody(query: Self.request("/x/tree?path=%2Fsrv%2Fmy+dir%2Fc%2B%2B&plan=3"))
        #expect(query["path"] == "/srv/my dir/c++" && query["plan"] == "3")
        #expect(FormBody(query: Self.request("/x/tree?path=/srv/my%20dir"))["path"] == "/srv/my dir")
        #expect(FormBody(query: Self.request("/x/tree"))["path"] == nil)
        #expect(FormBody(query: Self.request("/x/tree?path=/a#fragment"))["path"] == "/a")
    }

    @Test("the snapshot browser's own links come back as the path they were made from")
    func ownLinksRoundTrip() {
        for path in ["/srv/c++ notes", "/srv/a&b=c?d#e", "/srv/ünï cödé/x+y z", "/"] {
            let query = FormBody(query: Self.request("/x/tree?path=" + BackupPages.query(path)))
            #expect(query["path"] == path, "\(path)")
        }
    }
}
