import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `Public/` held in memory: the files ship with the binary and never change while it runs, so each request is a
/// dictionary lookup on the exact path, with no file system access and no way to name anything outside the folder.
/// Files over `maximumFileSize` are left to the FileMiddleware behind this one.
struct StaticAssets: RouterMiddleware {
    typealias Context = StewardRequestContext
    static let maximumFileSize = 1 << 20

    struct Asset: Sendable {
        let body: ByteBuffer
        let contentType: String
        let etag: String
    }

    let assets: [String: Asset]

    static let contentTypes: [String: String] = [
        "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml", "png": "image/png",
        "ico": "image/x-icon", "woff2": "font/woff2", "json": "application/json", "txt": "text/plain; charset=utf-8",
        "html": "text/html; charset=utf-8", "webp": "image/webp",
    ]

    init(directory: String) {
        var assets: [String: Asset] = [:]
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            let path = root + "/" + relative
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path), data.count <= Self.maximumFileSize
            else { continue }
            let ext = (relative as NSString).pathExtension.lowercased()
            let digest = sha256Hex(Array(data)).prefix(24)
            assets["/" + relative] = Asset(
                body: ByteBuffer(bytes: data), contentType: Self.contentTypes[ext] ?? "application/octet-stream", etag: "\"\(digest)\"")
        }
        self.assets = assets
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head, let asset = assets[request.uri.path] else {
            return try await next(request, context)
        }
        context.coreContext.endpointPath.value = "static"
        var headers: HTTPFields = [.contentType: asset.contentType, .eTag: asset.etag, .cacheControl: "max-age=3600"]
        if request.headers[.ifNoneMatch] == asset.etag {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentLength] = String(asset.body.readableBytes)
        return Response(status: .ok, headers: headers, body: request.method == .head ? .init() : .init(byteBuffer: asset.body))
    }
}
