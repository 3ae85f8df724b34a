import ArgumentParser
import Foundation
import GRDB
import StewardKit

/// Options for commands that act on the data directory directly (as root on the server, outside the web UI).
struct DataOptions: ParsableArguments {
    @Option(help: "Data directory (default /var/lib/steward as root).") var data: String?
    @Option(help: "Directory holding migrations/ (and Templates/, Public/).") var resources: String?

    /// The database; only `create` (granting the first admin before the first start) may make the data directory.
    func open(create: Bool = false) throws -> (DatabasePool, DataDirectory) {
        var flags = SettingsLayer(source: "command-line flags")
        if let resources { flags.values["resources"] = (resources, "--resources") }
        let configuration = try resolveConfiguration(dataFlag: data, flags: flags)
        let (database, directory, _) = try openDatabase(configuration, create: create)
        return (database, directory)
    }
}

/// The person running a command on the server, for the audit log.
func commandLineActor() -> AuditActor {
    let name = getpwuid(geteuid()).flatMap { $0.pointee.pw_name.map { String(cString: $0) } } ?? "uid \(geteuid())"
    return AuditActor(actor: name, source: "command line")
}

struct RoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role", abstract: "Grant, revoke and list roles (admin, operator, approver, viewer, auditor).",
        subcommands: [Grant.self, Revoke.self, List.self])

    struct Principal: ParsableArguments {
        @Option(help: "A Unix user name.") var user: String?
        @Option(help: "A Unix group name; its members hold the role when they sign in.") var group: String?

        func resolve() throws -> (RoleGrant.Kind, String) {
            switch (user, group) {
            case (let user?, nil): return (.user, user)
            case (nil, let group?): return (.group, group)
            default: throw Fatal(message: "give exactly one of --user NAME or --group NAME", code: 64)
            }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give a role to a Unix user or group.")
        @Argument(help: "admin, operator, approver, viewer or auditor") var role: String
        @OptionGroup var principal: Principal
        @OptionGroup var options: DataOptions

        func run() async throws {
            do {
                let role = try Role.parse(role)
                let (kind, name) = try principal.resolve()
                try UnixAccounts.validateName(name, kind: kind)
                let exists = kind == .user ? UnixAccounts.userExists(name) : UnixAccounts.groupExists(name)
                guard exists else {
                    throw Fatal(message: "there is no Unix \(kind.rawValue) \"\(name)\" on this machine; check the spelling", code: 65)
                }
                // Granting the first admin before the first start is how a new panel is set up, so this one may create.
                let (database, _) = try options.open(create: true)
                let added = try RoleStore(database: database).grant(role, to: kind, name, by: commandLineActor(), now: Date())
                print(added ? "granted \(role.rawValue) to \(kind.rawValue) \(name)" : "\(kind.rawValue) \(name) already holds \(role.rawValue)")
            } catch {
                throw fail(error)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a role away; sessions and tokens lose it on their next request.")
        @Argument(help: "admin, operator, approver, viewer or auditor") var role: String
        @OptionGroup var principal: Principal
        @OptionGroup var options: DataOptions

        func run() async throws {
            do {
                let role = try Role.parse(role)
                let (kind, name) = try principal.resolve()
                let (database, _) = try options.open()
                let removed = try RoleStore(database: database).revoke(role, from: kind, name, by: commandLineActor(), now: Date())
                guard removed else { throw Fatal(message: "\(kind.rawValue) \(name) does not hold \(role.rawValue); nothing changed", code: 65) }
                print("revoked \(role.rawValue) from \(kind.rawValue) \(name)")
            } catch {
                throw fail(error)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every grant: role, user or group, when and by whom.")
        @OptionGroup var options: DataOptions

        func run() async throws {
            do {
                let (database, _) = try options.open()
                let grants = try RoleStore(database: database).list()
                if grants.isEmpty {
                    print("no roles are granted; the server prints a setup token at start, or run: steward role grant admin --user NAME")
                }
                for grant in grants {
                    print(
                        "\(grant.role.rawValue)\t\(grant.kind.rawValue)\t\(grant.principal)\t\(RFC3339.string(grant.grantedAt))\t\(grant.grantedBy)")
                }
            } catch {
                throw fail(error)
            }
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list and revoke API tokens.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API token; the token is printed once, as the last line.")
        @Option(help: "The Unix user the token acts for.") var user: String
        @Option(help: "What the token is for, e.g. \"prometheus on mon1\".") var name: String
        @Option(help: "The token's role; no higher than the user's (default viewer).") var role: String = "viewer"
        @Option(help: "Lifetime: a number with h, d or w (default 90d, at most 366d).") var expires: String = "90d"
        @OptionGroup var options: DataOptions

        func run() async throws {
            do {
                let role = try Role.parse(role)
                let lifetime = try APITokenStore.parseLifetime(expires)
                let (database, _) = try options.open()
                let ownerRoles = try RoleStore(database: database).roles(user: user, groups: UnixAccounts.groups(of: user))
                let (token, record) = try APITokenStore(database: database).create(
                    user: user, name: name, role: role, lifetime: lifetime, ownerRoles: ownerRoles, by: commandLineActor(), now: Date())
                print(
                    "created token \(record.id) \"\(record.name)\" for \(record.user), role \(record.role.rawValue), expires \(RFC3339.string(record.expiresAt))"
                )
                print("It is shown only now; send it as: Authorization: Bearer <token>")
                print(token)
            } catch {
                throw fail(error)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print tokens (never the tokens themselves).")
        @Option(help: "Only this user's tokens.") var user: String?
        @OptionGroup var options: DataOptions

        func run() async throws {
            do {
                let (database, _) = try options.open()
                let now = Date()
                for token in try APITokenStore(database: database).list(user: user) {
                    let state = token.revokedAt != nil ? "revoked" : token.expiresAt <= now ? "expired" : "live"
                    let used = token.lastUsedAt.map { RFC3339.string($0) } ?? "never"
                    print(
                        "\(token.id)\t\(token.prefix)…\t\(token.user)\t\(token.role.rawValue)\t\(state)\texpires \(RFC3339.string(token.expiresAt))\tlast used \(used)\t\(token.name)"
                    )
                }
            } catch {
                throw fail(error)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id (from `steward token list`).")
        @Argument(help: "The token id.") var id: Int64
        @OptionGroup var options: DataOptions

        func run() async throws {
            do {
                let (database, _) = try options.open()
                guard try APITokenStore(database: database).revoke(id: id, by: commandLineActor(), now: Date()) else {
                    throw Fatal(message: "there is no live token \(id); see steward token list", code: 65)
                }
                print("revoked token \(id)")
            } catch {
                throw fail(error)
            }
        }
    }
}

struct SecondFactorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "second-factor", abstract: "Manage users' TOTP second factors.", subcommands: [Reset.self])

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user's second factor (a lost phone); they can enrol again.")
        @Option(help: "The Unix user.") var user: String
        @OptionGroup var options: DataOptions

        func run() async throws {
            do {
                let (database, directory) = try options.open()
                let store = SecondFactorStore(database: database, masterKey: try directory.secretKey())
                guard try store.disable(user: user, by: commandLineActor(), now: Date()) else {
                    throw Fatal(message: "\(user) has no second factor; nothing changed", code: 65)
                }
                print("removed \(user)'s second factor and recovery codes")
            } catch {
                throw fail(error)
            }
        }
    }
}

/// A dynamic inventory for Ansible: `--list` prints every enabled host with its groups (and a group `tag_NAME` per tag)
/// and variables, `--host NAME` one host's variables. Wrap it in a two-line script to use it with `ansible -i`.
struct InventoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inventory", abstract: "Print the hosts as an Ansible dynamic inventory (JSON).")
    @Flag(help: "Every host and group, with _meta.hostvars.") var list = false
    @Option(help: "One host's variables.") var host: String?
    @OptionGroup var options: DataOptions

    func run() async throws {
        do {
            guard list != (host != nil) else { throw Fatal(message: "give exactly one of --list or --host NAME", code: 64) }
            let (database, _) = try options.open()
            let store = HostStore(database: database)
            let hosts = try store.all().filter(\.enabled)
            let document = Inventory.dynamicList(hosts: hosts, groups: try store.groups())
            let output: Any
            if let host {
                let hostVars = (document["_meta"] as? [String: Any])?["hostvars"] as? [String: Any] ?? [:]
                output = hostVars[host] ?? [String: Any]()
            } else {
                output = document
            }
            let data = try JSONSerialization.data(withJSONObject: output, options: [.sortedKeys, .prettyPrinted])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } catch {
            throw fail(error)
        }
    }
}
