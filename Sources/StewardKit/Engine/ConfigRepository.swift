import Foundation

/// The config repo: a git repository in DATA/config holding the playbooks the engine runs. Seeded at first run with
/// Steward's own playbooks. Every git call is an argv array with a fixed environment (no user config, no hooks).
public struct ConfigRepository: Sendable {
    public let path: String

    public init(dataDirectory: DataDirectory) { path = dataDirectory.path + "/config" }

    /// Create and seed the repository if it does not exist yet.
    public func prepare() throws {
        guard !FileManager.default.fileExists(atPath: path + "/.git") else { return }
        try FileManager.default.createDirectory(
            atPath: path + "/playbooks", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try git(["init", "-q", "-b", "main"])
        for (name, text) in SeedPlaybooks.files {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/" + name))
        }
        try git(["add", "-A"])
        try git(["commit", "-q", "-m", "Seed Steward's own playbooks"], author: ("Steward", "steward@localhost"))
    }

    /// The commit the working tree is at.
    public func head() throws -> String {
        try git(["rev-parse", "HEAD"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Playbooks under playbooks/, as repository-relative paths.
    public func playbooks() throws -> [String] {
        let directory = path + "/playbooks"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted().map { "playbooks/" + $0 }
    }

    /// The absolute path of a playbook named relative to the repository; refuses anything that is not a regular
    /// file under playbooks/ (no "..", no absolute paths, no symlinks out, nothing that looks like an option).
    public func resolvePlaybook(_ relative: String) throws(AccessError) -> String {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard relative.hasPrefix("playbooks/"), !relative.contains("\0"), parts.count >= 2,
            parts.allSatisfy({ !$0.isEmpty && $0 != ".." && $0 != "." && !$0.hasPrefix("-") }),
            relative.hasSuffix(".yml") || relative.hasSuffix(".yaml")
        else {
            throw AccessError("\"\(relative)\" is not a playbook path; use one under playbooks/ ending in .yml, like playbooks/ping.yml")
        }
        let full = path + "/" + relative
        var status = stat()
        guard lstat(full, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw AccessError("there is no playbook \(relative) in the config repo")
        }
        return full
    }

    @discardableResult
    func git(_ arguments: [String], author: (name: String, email: String)? = nil) throws -> String {
        var argv = ["git", "-C", path, "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false"]
        if let author { argv += ["-c", "user.name=\(author.name)", "-c", "user.email=\(author.email)"] }
        let result = try ShortCommand.run(argv + arguments, timeout: 30, environment: Self.environment)
        guard result.status == 0 else {
            throw AccessError("git \(arguments.first ?? "") failed: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.stdout
    }

    /// No global or system git config, no prompts, a fixed locale.
    static let environment: [String: String] = [
        "PATH": "/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0",
        "HOME": "/nonexistent", "LC_ALL": "C",
    ]
}

/// The playbooks every new config repo starts with.
enum SeedPlaybooks {
    static let files: [(String, String)] = [
        (
            "README.md",
            """
            # Steward config repo

            Playbooks Steward runs live in `playbooks/`. Edit them in Steward (each save is a commit by you) or with git;
            every job records the commit it ran.

            """
        ),
        (
            "playbooks/ping.yml",
            """
            # Checks that Steward can reach each host and run Python there.
            - name: Ping
              hosts: all
              gather_facts: false
              tasks:
                - name: Reach the host and run Python
                  ansible.builtin.ping:

            """
        ),
        (
            "playbooks/facts.yml",
            """
            # Gathers the facts Steward shows on each host's page.
            - name: Facts
              hosts: all
              gather_facts: true
              tasks:
                - name: Pending package updates
                  ansible.builtin.command: apt-get -s -o Debug::NoLocking=1 upgrade
                  register: steward_upgrade
                  changed_when: false
                  failed_when: false
                - name: Reboot required
                  ansible.builtin.stat:
                    path: /var/run/reboot-required
                  register: steward_reboot

            """
        ),
        (
            "playbooks/updates.yml",
            """
            # Installs pending package updates (rollouts run this in batches).
            - name: Updates
              hosts: all
              become: true
              tasks:
                - name: Upgrade packages
                  ansible.builtin.apt:
                    update_cache: true
                    upgrade: safe

            """
        ),
        (
            "playbooks/users.yml",
            """
            # Makes Unix users and groups match what Steward manages (filled in by the users area).
            - name: Users
              hosts: all
              become: true
              gather_facts: false
              tasks:
                - name: Nothing to change yet
                  ansible.builtin.debug:
                    msg: no managed users

            """
        ),
    ]
}
