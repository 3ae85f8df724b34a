import Foundation

extension StewardArea {
    /// Retention: each data class's policy, legal holds, storage figures, and the enforcement job on its schedule. The
    /// data classes themselves belong to the areas that keep the data.
    static func retention(_ service: RetentionService, hosts: HostStore) -> StewardArea {
        StewardArea(
            name: "retention", jobs: [RetentionService.kind: service.handler()], schedules: [{ try RetentionService.ensureSchedule($0, now: $1) }]
        ) {
            context in
            RetentionAPI(service: service, scheduler: context.scheduler, docs: context.docs).addRoutes(to: context.routes)
            RetentionPages(service: service, scheduler: context.scheduler, hosts: hosts, pages: context.pages).addRoutes(to: context.routes)
        }
    }
}
