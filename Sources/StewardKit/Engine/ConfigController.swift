import Foundation
import GRDB
import HTTPTypes
import Hummingbird

/// The config repo in the browser: files, edits committed as the signed-in user, history with diffs, revert.
struct ConfigController {
    typealias Context = StewardRequestContext
    let area: AreaContext
    let repository: ConfigRepository
    let database: any DatabaseWriter
    let lock: RepositoryLock

    func addRoutes(to routes: Routes) {
        let api = area.docs.routes(routes, tag: "engine")
        routes.get("/config", .view, use: indexPage)
        routes.get("/config/file", .view, use: filePage)
        routes.post("/config/file", .admin, use: save)
        routes.get("/config/commits/:hash", .view, use: commitPage)
        routes.post("/config/commits/:hash/revert", .admin, use: revert)
        api(.get, "/api/v1/config/history", .view, "configHistory", "Recent commits of the config repo", schema: "CommitList", use: apiHistory)
    }

    static func commitView(_ commit: ConfigRepository.Commit) -> ViewNode {
        ViewNode([
            "hash": commit.hash, "short": String(commit.hash.prefix(10)), "author": commit.author, "date": RFC3339.display(commit.date),
            "subject": commit.subject,
        ])
    }

    @Sendable func indexPage(request: Request, context: Context) async throws -> Response {
        let data: [String: Any] = [
            "files": try repository.files().map { ViewNode(["path": $0, "href": "/config/file?path=" + Self.encode($0)]) },
            "commits": try repository.history(limit: 20).map(Self.commitView), "head": try repository.head(),
            "admin": context.identity?.permissions.contains(.admin) ?? false,
        ]
        return area.pages.page("config/index", title: "Config repo", section: "config", data: data, request: request, context: context)
    }

    @Sendable func filePage(request: Request, context: Context) async throws -> Response {
        let path = request.uri.queryParameters["path"].map(String.init) ?? ""
        let isNew = path.isEmpty
        var content = ""
        if !isNew {
            do {
                guard let text = try repository.read(path) else { throw HTTPError(.notFound, message: "there is no file \(path) in the config repo") }
                content = text
            } catch let error as AccessError {
                throw HTTPError(.badRequest, message: error.message)
            }
        }
        return editor(path: path, content: content, message: "", error: nil, isNew: isNew, request: request, context: context)
    }

    func editor(
        path: String, content: String, message: String, error: String?, isNew: Bool, request: Request, context: Context,
        status: HTTPResponse.Status = .ok
    ) -> Response {
        let history = isNew ? [] : ((try? repository.history(limit: 20, path: path)) ?? [])
        var data: [String: Any] = [
            "path": path, "content": content, "message": message, "is_new": isNew, "commits": history.map(Self.commitView),
            "admin": context.identity?.permissions.contains(.admin) ?? false,
        ]
        if let error { data["error"] = error }
        return area.pages.page(
            "config/file", title: isNew ? "New file" : path, section: "config", data: data, request: request, context: context, status: status)
    }

    @Sendable func save(request: Request, context: Context) async throws -> Response {
        let form = try await FormBody.read(request, context: context)
        let path = (form["path"] ?? "").trimmingCharacters(in: .whitespaces)
        let content = (form["content"] ?? "").replacingOccurrences(of: "\r\n", with: "\n")
        let message = form["message"] ?? ""
        let before = try repository.head()
        do {
            let after = try await repository.save(path, content: content, message: message, author: context.actor.actor, lock: lock)
            try await database.write { db in
                try AuditLog.append(
                    db, by: context.actor, action: "config.commit", target: "config:\(path)", before: ["commit": before],
                    after: ["commit": after, "message": message], now: Date())
            }
            return area.pages.redirect(to: "/config/commits/\(after)", flash: Flash(.success, "Committed \(path) as \(String(after.prefix(10)))."))
        } catch let error as AccessError {
            return editor(
                path: path, content: content, message: message, error: error.message, isNew: form["is_new"] == "1", request: request,
                context: context,
                status: .unprocessableContent)
        }
    }

    @Sendable func commitPage(request: Request, context: Context) async throws -> Response {
        let hash = context.parameters.get("hash") ?? ""
        guard let (commit, patch) = try repository.show(hash) else { throw HTTPError(.notFound, message: "there is no commit \(hash)") }
        let data: [String: Any] = [
            "commit": Self.commitView(commit), "lines": Self.diffLines(patch), "admin": context.identity?.permissions.contains(.admin) ?? false,
        ]
        return area.pages.page(
            "config/commit", title: "Commit \(commit.hash.prefix(10))", section: "config", data: data, request: request, context: context)
    }

    @Sendable func revert(request: Request, context: Context) async throws -> Response {
        let hash = context.parameters.get("hash") ?? ""
        let before = try repository.head()
        do {
            let after = try await repository.revert(hash, author: context.actor.actor, lock: lock)
            try await database.write { db in
                try AuditLog.append(
                    db, by: context.actor, action: "config.revert", target: "commit:\(hash)", before: ["commit": before], after: ["commit": after],
                    now: Date())
            }
            return area.pages.redirect(to: "/config/commits/\(after)", flash: Flash(.success, "Reverted \(hash.prefix(10)) with a new commit."))
        } catch let error as AccessError {
            return area.pages.redirect(to: "/config/commits/\(hash)", flash: Flash(.error, error.message))
        }
    }

    @Sendable func apiHistory(request: Request, context: Context) async throws -> Response {
        try APIJSON.response(
            ItemList(
                items: try repository.history(limit: 100).map {
                    ConfigCommitResource(commit: $0.hash, author: $0.author, date: RFC3339.string($0.date), subject: $0.subject)
                }))
    }

    /// Each patch line with a class for added, removed and header lines.
    static func diffLines(_ patch: String) -> [ViewNode] {
        patch.split(separator: "\n", omittingEmptySubsequences: false).prefix(5000).map { line in
            let kind: String
            if line.hasPrefix("+++") || line.hasPrefix("---") || line.hasPrefix("diff ") || line.hasPrefix("index ") {
                kind = "meta"
            } else if line.hasPrefix("+") {
                kind = "add"
            } else if line.hasPrefix("-") {
                kind = "del"
            } else if line.hasPrefix("@@") {
                kind = "hunk"
            } else {
                kind = "ctx"
            }
            return ViewNode(["text": String(line), "kind": kind])
        }
    }

    static func encode(_ path: String) -> String {
        path.addingPercentEncoding(withAllowedCharacters: .urlQueryValueAllowed) ?? path
    }
}

/// A commit of the config repository.
struct ConfigCommitResource: Codable, Sendable {
    let commit, author, date, subject: String
}
