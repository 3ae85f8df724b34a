import Foundation

/// What the server hands every area when it registers its routes: the machinery that exists only once every area's
/// job kinds are known (the runner, the scheduler), and the page and API plumbing they share.
struct AreaContext: Sendable {
    let runner: JobRunner
    let scheduler: Scheduler
    let pages: PageRenderer
    let docs: APIDocumentation
    let responses: ResponseCache
}

/// One area of Steward as it presents itself to the server: the job kinds it runs, the schedules it keeps, its entries
/// in the navigation, the kinds of data it keeps under retention, and its routes. An area is written once, in its own
/// folder (`HostsArea.swift` beside the hosts code); the server only lists the areas and puts them together.
struct StewardArea {
    /// A navigation entry and where it stands in the bar (lower first).
    struct Entry {
        let position: Int
        let item: NavigationItem
    }

    let name: String
    var jobs: [String: JobHandler] = [:]
    /// Built-in schedules the area keeps (created at start when missing, never changed once there).
    var schedules: [(ScheduleStore, Date) throws -> Void] = []
    var navigation: [Entry] = []
    var dataClasses: [DataClass] = []
    var routes: (AreaContext, Routes) -> Void = { _, _ in }
}

/// Two areas claimed the same job kind, navigation entry or data class: the server refuses to start, naming both.
public struct AreaClash: Error, CustomStringConvertible {
    public let description: String
}

/// The areas put together. A job kind, a navigation key or a data class belongs to exactly one area; every data class
/// that retention knows must be claimed by an area, so retention never keeps rules for data nobody owns.
struct AreaAssembly {
    let areas: [StewardArea]
    let handlers: [String: JobHandler]
    let navigation: [NavigationItem]

    init(_ areas: [StewardArea], extraJobs: [String: JobHandler] = [:]) throws {
        self.areas = areas
        var handlers = extraJobs
        var kindOwners = Dictionary(uniqueKeysWithValues: extraJobs.keys.map { ($0, "the caller's extra handlers") })
        var navigationOwners: [String: String] = [:]
        var classOwners: [DataClass: String] = [:]
        for area in areas {
            for (kind, handler) in area.jobs.sorted(by: { $0.key < $1.key }) {
                if let owner = kindOwners[kind] {
                    throw AreaClash(description: "the job kind \(kind) is claimed by both \(owner) and \(area.name)")
                }
                kindOwners[kind] = area.name
                handlers[kind] = handler
            }
            for entry in area.navigation {
                if let owner = navigationOwners[entry.item.key] {
                    throw AreaClash(description: "the navigation entry \(entry.item.key) is claimed by both \(owner) and \(area.name)")
                }
                navigationOwners[entry.item.key] = area.name
            }
            for dataClass in area.dataClasses {
                if let owner = classOwners[dataClass] {
                    throw AreaClash(description: "the data class \(dataClass.rawValue) is claimed by both \(owner) and \(area.name)")
                }
                classOwners[dataClass] = area.name
            }
        }
        let unclaimed = DataClass.allCases.filter { classOwners[$0] == nil }
        guard unclaimed.isEmpty else {
            throw AreaClash(description: "no area keeps the data class(es) \(unclaimed.map(\.rawValue).joined(separator: ", "))")
        }
        self.handlers = handlers
        navigation = areas.flatMap(\.navigation).sorted { $0.position < $1.position }.map(\.item)
    }

    /// Create the built-in schedules that are missing.
    func ensureSchedules(_ store: ScheduleStore, now: Date) throws {
        for area in areas {
            for ensure in area.schedules { try ensure(store, now) }
        }
    }

    /// Every area's routes, in the order the areas are listed.
    func addRoutes(_ context: AreaContext, to routes: Routes) {
        for area in areas { area.routes(context, routes) }
    }
}
