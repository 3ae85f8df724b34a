import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Change counters for the tables whose API reads are cached, kept in memory: a counter goes up when a transaction
/// that wrote its table commits on this process's writer connection. While `serve` runs it is the only writer of
/// those tables (the CLI's writing commands refuse to run beside it), so a counter that has not moved means the
/// table has not changed. Inserts, updates and deletes are seen through SQLite's update hook; changes GRDB cannot
/// see in detail (`databaseDidChange()`) count for every table.
final class TableVersions: TransactionObserver, Sendable {
    let tables: Set<String>
    private let counters: Mutex<[String: UInt64]>
    private let pending = Mutex<Set<String>>([])

    init(tables: Set<String>) {
        self.tables = tables
        counters = Mutex(Dictionary(uniqueKeysWithValues: tables.map { ($0, 0) }))
    }

    /// One number for a set of tables that changes whenever any of them does (counters only grow).
    func version(of names: [String]) -> UInt64 {
        counters.withLock { counters in names.reduce(0) { $0 &+ (counters[$1] ?? 0) } }
    }

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool { tables.contains(eventKind.tableName) }
    func databaseDidChange() { pending.withLock { $0 = tables } }
    func databaseDidChange(with event: DatabaseEvent) {
        let table = event.tableName
        pending.withLock { _ = $0.insert(table) }
    }
    func databaseWillCommit() throws {}
    func databaseDidCommit(_ db: Database) {
        let changed = pending.withLock { pending in
            defer { pending = [] }
            return pending
        }
        guard !changed.isEmpty else { return }
        counters.withLock { counters in
            for table in changed { counters[table, default: 0] &+= 1 }
        }
    }
    func databaseDidRollback(_ db: Database) { pending.withLock { $0 = [] } }
}

/// Encoded JSON answers of API reads, kept until a table they were read from changes. An answer is cached under its
/// path and query; it must not depend on who asks (the routes that use this have one answer for every role that may
/// call them). The version is read before the database, so an answer is never stored under a newer version than
/// the data it holds.
final class ResponseCache: Sendable {
    struct Entry {
        let version: UInt64
        let body: ByteBuffer
    }
    let versions: TableVersions
    /// At most this many bytes of answers are kept (distinct queries, cursors and filters each make an entry).
    let capacityBytes: Int
    private let entries = Mutex<(byKey: [String: Entry], bytes: Int)>(([:], 0))

    init(versions: TableVersions, capacityBytes: Int = 16 << 20) {
        self.versions = versions
        self.capacityBytes = capacityBytes
    }

    /// Bytes held now, for tests.
    var bytesHeld: Int { entries.withLock { $0.bytes } }

    /// The JSON answer for `request`, from the cache while `tables` are unchanged, else made by `make` and kept.
    func json(for request: Request, tables: [String], make: () throws -> ByteBuffer) rethrows -> Response {
        let key = request.uri.description
        let version = versions.version(of: tables)
        let body: ByteBuffer
        if let cached = entries.withLock({ $0.byKey[key] }), cached.version == version {
            body = cached.body
        } else {
            body = try make()
            entries.withLock { entries in
                entries.bytes -= entries.byKey[key]?.body.readableBytes ?? 0
                // Past the cap (many distinct queries): start again rather than grow without bound.
                if entries.bytes + body.readableBytes > capacityBytes { entries = ([:], 0) }
                guard body.readableBytes <= capacityBytes else { return }
                entries.byKey[key] = Entry(version: version, body: body)
                entries.bytes += body.readableBytes
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: body))
    }
}
