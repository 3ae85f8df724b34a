import Foundation

extension StewardArea {
    /// Retention: each data class's policy, legal holds, storage figures, and the enforcement job on its schedule. The
    /// data classes themselves belong to the areas that keep the data.
    static func retention(_ service: RetentionService, hosts: HostStore, remoteWrite: RemoteWrite? = nil) -> StewardArea {
        StewardArea(
            name: "retention", jobs: [RetentionService.kind: service.handler()], schedules: [{ try RetentionService.ensureSchedule($0, now: $1) }]
        ) { context, routes in
            RetentionAPI(area: context, service: service).addRoutes(to: routes)
            RetentionPages(area: context, service: service, hosts: hosts, remoteWrite: remoteWrite).addRoutes(to: routes)
        }
    }
}
