import Foundation
import GRDB

extension StewardArea {
    /// The config-as-code engine: playbook runs, ad-hoc commands and fact gathering (on its schedule), and the config
    /// repository's history. `lock` is shared with the areas that commit to the repository.
    static func engine(_ engine: Engine, repository: ConfigRepository, database: DatabasePool, lock: RepositoryLock) -> StewardArea {
        StewardArea(
            name: "engine", jobs: [Engine.kind: engine.handler(), Engine.adhocKind: engine.handler(), Engine.factsKind: engine.factsHandler()],
            schedules: [{ try Engine.ensureFactsSchedule($0, now: $1) }],
            navigation: [.init(position: 110, item: NavigationItem(key: "config", title: "Config repo", href: "/config"))]
        ) { context, routes in
            EngineController(area: context, engine: engine).addRoutes(to: routes)
            ConfigController(area: context, repository: repository, database: database, lock: lock)
                .addRoutes(to: routes)
        }
    }
}
