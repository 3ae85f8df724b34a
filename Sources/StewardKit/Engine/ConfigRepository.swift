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

    /// Unpack the tree of `commit` into `directory` (git archive into tar, both argv), for a run pinned to that commit.
    public func export(commit: String, to directory: String) throws {
        guard commit.count >= 7, commit.count <= 64, commit.allSatisfy(\.isHexDigit) else {
            throw AccessError("a commit is 7 to 64 hex digits")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let archive = directory + ".tar"
        _ = try git(["archive", "--format=tar", "-o", archive, commit])
        defer { try? FileManager.default.removeItem(atPath: archive) }
        let result = try ShortCommand.run(["tar", "-x", "-f", archive, "-C", directory], timeout: 60)
        guard result.status == 0 else { throw AccessError("could not unpack commit \(commit): \(result.stderr)") }
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
        guard Self.isRegularFile(full) else { throw AccessError("there is no playbook \(relative) in the config repo") }
        return full
    }

    // MARK: browsing and editing

    public struct Commit: Sendable, Equatable {
        public var hash: String
        public var author: String
        public var email: String
        public var date: Date
        public var subject: String
    }

    /// Tracked files, repository-relative.
    public func files() throws -> [String] {
        try git(["ls-files", "-z"]).split(separator: "\0").map(String.init).sorted()
    }

    /// A path inside the working tree that an edit may touch: relative, no "..", not under .git, printable.
    public func validateFilePath(_ relative: String) throws(AccessError) -> String {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard !relative.isEmpty, relative.utf8.count <= 255, !relative.hasPrefix("/"),
            parts.allSatisfy({ !$0.isEmpty && $0 != ".." && $0 != "." && !$0.hasPrefix("-") }), parts.first != ".git",
            relative.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F && $0 != "\\" })
        else { throw AccessError("\"\(relative)\" is not a file path in the config repo; use a relative path like playbooks/web.yml") }
        return path + "/" + relative
    }

    public func read(_ relative: String) throws -> String? {
        let full = try validateFilePath(relative)
        guard Self.isRegularFile(full) else { return nil }
        return try String(contentsOfFile: full, encoding: .utf8)
    }

    /// Recent commits, newest first.
    public func history(limit: Int = 50, path relative: String? = nil) throws -> [Commit] {
        var arguments = ["log", "-n", String(limit), "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%s%x1e"]
        if let relative { arguments += ["--", try validateFilePath(relative).dropFirst(path.count + 1).description] }
        return try git(arguments).split(separator: "\u{1e}").compactMap { record in
            let fields = record.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\u{1f}", omittingEmptySubsequences: false).map(
                String.init)
            guard fields.count == 5, let seconds = TimeInterval(fields[3]) else { return nil }
            return Commit(hash: fields[0], author: fields[1], email: fields[2], date: Date(timeIntervalSince1970: seconds), subject: fields[4])
        }
    }

    /// One commit with its patch.
    public func show(_ hash: String) throws -> (commit: Commit, patch: String)? {
        guard Self.isCommitHash(hash) else { return nil }
        guard let commit = try history(limit: 1, revision: hash).first else { return nil }
        let patch = try git(["show", "--no-color", "--format=", "--patch", "--stat", hash])
        return (commit, patch)
    }

    func history(limit: Int, revision: String) throws -> [Commit] {
        let output = try git(["log", "-n", String(limit), "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%s%x1e", revision, "--"])
        return output.split(separator: "\u{1e}").compactMap { record in
            let fields = record.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\u{1f}", omittingEmptySubsequences: false).map(
                String.init)
            guard fields.count == 5, let seconds = TimeInterval(fields[3]) else { return nil }
            return Commit(hash: fields[0], author: fields[1], email: fields[2], date: Date(timeIntervalSince1970: seconds), subject: fields[4])
        }
    }

    /// A regular file itself, not a symlink to one (attributesOfItem does not follow links).
    static func isRegularFile(_ path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeRegular
    }

    static func isCommitHash(_ text: String) -> Bool {
        (7...40).contains(text.count) && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    /// Save a file as a commit by `author`: YAML files must parse, playbooks must pass `ansible-playbook
    /// --syntax-check`; on any refusal the working tree is left as it was.
    public func save(_ relative: String, content: String, message: String, author: String, lock: RepositoryLock) async throws -> String {
        let trimmedMessage = message.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmedMessage.isEmpty, trimmedMessage.count <= 500 else {
            throw AccessError("a commit message is required (up to 500 characters): say what the change is for")
        }
        guard content.utf8.count <= 1 << 20 else { throw AccessError("files are limited to 1 MiB") }
        let full = try validateFilePath(relative)
        if relative.hasSuffix(".yml") || relative.hasSuffix(".yaml") {
            do {
                _ = try YAMLReader.readAll(content, limits: .repositoryFile)
            } catch {
                throw AccessError(error.message)
            }
        }
        return try await lock.run { [self] in
            let previous = FileManager.default.contents(atPath: full)
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(content.utf8).write(to: URL(fileURLWithPath: full))
            do {
                if relative.hasPrefix("playbooks/") && (relative.hasSuffix(".yml") || relative.hasSuffix(".yaml")) {
                    try syntaxCheck(full)
                }
                try git(["add", "--", relative])
                guard try !git(["status", "--porcelain", "--", relative]).isEmpty else {
                    throw AccessError("nothing changed in \(relative); there is nothing to commit")
                }
                try git(["commit", "-q", "-m", trimmedMessage, "--", relative], author: (author, "\(author)@steward"))
                return try head()
            } catch {
                if let previous { try? previous.write(to: URL(fileURLWithPath: full)) } else { try? FileManager.default.removeItem(atPath: full) }
                _ = try? git(["reset", "-q", "--", relative])
                throw error
            }
        }
    }

    /// Undo a commit with a new commit by `author`.
    public func revert(_ hash: String, author: String, lock: RepositoryLock) async throws -> String {
        guard Self.isCommitHash(hash), try show(hash) != nil else { throw AccessError("there is no commit \(hash) in the config repo") }
        return try await lock.run { [self] in
            do {
                try git(["revert", "--no-edit", hash], author: (author, "\(author)@steward"))
            } catch {
                _ = try? git(["revert", "--abort"])
                throw AccessError("git could not revert \(hash.prefix(10)) cleanly (a later commit changed the same lines); edit the file instead")
            }
            return try head()
        }
    }

    func syntaxCheck(_ playbook: String) throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("steward-syntax-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        FileManager.default.createFile(atPath: work + "/ansible.cfg", contents: Data("[defaults]\n".utf8))
        let result = try ShortCommand.run(
            ["ansible-playbook", "--syntax-check", "-i", "localhost,", playbook], timeout: 120,
            environment: [
                "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "ANSIBLE_CONFIG": work + "/ansible.cfg", "ANSIBLE_LOCAL_TEMP": work,
                "ANSIBLE_NOCOLOR": "1", "LC_ALL": "C.UTF-8",
            ])
        guard result.status == 0 else {
            let text = (result.stderr + result.stdout).trimmingCharacters(in: .whitespacesAndNewlines)
            throw AccessError("ansible-playbook --syntax-check refused it: " + String(text.suffix(1500)))
        }
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
            # Gathers what Steward shows on each host's page. The last task's `steward_facts` is what Steward stores.
            - name: Facts
              hosts: all
              gather_facts: true
              tasks:
                - name: Pending package updates
                  ansible.builtin.command:
                    argv: [apt-get, -s, -o, Debug::NoLocking=1, upgrade]
                  register: steward_upgrade
                  changed_when: false
                  failed_when: false
                  when: ansible_pkg_mgr == 'apt'
                - name: Pending package updates (dnf)
                  ansible.builtin.command:
                    argv: [dnf, -q, check-update]
                  register: steward_dnf
                  changed_when: false
                  failed_when: steward_dnf.rc not in [0, 100]
                  when: ansible_pkg_mgr == 'dnf'
                - name: Security advisories (dnf)
                  ansible.builtin.command:
                    argv: [dnf, -q, updateinfo, list, --security]
                  register: steward_dnf_security
                  changed_when: false
                  failed_when: false
                  when: ansible_pkg_mgr == 'dnf'
                - name: Installed versions of the pending packages (dnf)
                  ansible.builtin.command:
                    argv: "{{ ['rpm', '-q', '--qf', '%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\\\n'] + (steward_dnf.stdout_lines | map('regex_search', '^[^ ]+[.][^ .]+ ') | select | map('trim') | map('regex_replace', '[.][^.]+$', '') | list) }}"
                  register: steward_dnf_installed
                  changed_when: false
                  failed_when: false
                  when: ansible_pkg_mgr == 'dnf' and steward_dnf.stdout_lines | default([]) | length > 0
                - name: Reboot required
                  ansible.builtin.stat:
                    path: /var/run/reboot-required
                  register: steward_reboot
                - name: Reboot required (dnf; needs-restarting exits 1 when a reboot is due)
                  ansible.builtin.command:
                    argv: [needs-restarting, -r]
                  register: steward_needs_restarting
                  changed_when: false
                  failed_when: false
                  when: ansible_pkg_mgr == 'dnf'
                - name: Users
                  ansible.builtin.getent:
                    database: passwd
                - name: Groups
                  ansible.builtin.getent:
                    database: group
                # Locked or not, and the expiry day, from the shadow file (root only; a host without sudo has none).
                # Only these two fields leave the host: never a password hash.
                - name: Account states
                  ansible.builtin.getent:
                    database: shadow
                  failed_when: false
                  no_log: true
                - name: Login shells
                  ansible.builtin.slurp:
                    src: /etc/shells
                  register: steward_shells
                  failed_when: false
                - name: Steward facts
                  ansible.builtin.set_fact:
                    steward_facts:
                      os: "{{ ansible_distribution | default('') }} {{ ansible_distribution_version | default('') }}"
                      kernel: "{{ ansible_kernel | default('') }}"
                      uptime_seconds: "{{ ansible_uptime_seconds | default(0) }}"
                      cpus: "{{ ansible_processor_vcpus | default(0) }}"
                      memory_mb: "{{ ansible_memtotal_mb | default(0) }}"
                      filesystems: "{{ ansible_mounts | default([]) }}"
                      addresses: "{{ (ansible_all_ipv4_addresses | default([])) + (ansible_all_ipv6_addresses | default([])) }}"
                      upgrade_lines: "{{ steward_upgrade.stdout_lines | default([]) | select('match', '^Inst ') | list }}"
                      dnf_lines: "{{ steward_dnf.stdout_lines | default([]) }}"
                      dnf_security_lines: "{{ steward_dnf_security.stdout_lines | default([]) }}"
                      dnf_installed_lines: "{{ steward_dnf_installed.stdout_lines | default([]) }}"
                      reboot_required: "{{ (steward_reboot.stat.exists | default(false)) or (steward_needs_restarting.rc | default(0)) == 1 }}"
                      passwd: "{{ getent_passwd | default({}) }}"
                      group: "{{ getent_group | default({}) }}"
                      account_states: "{% set states = {} %}{% for name, fields in (getent_shadow | default({})).items() %}{% set _ = states.update({name: [(fields[0] | default('')).startswith('!'), fields[6] | default('')]}) %}{% endfor %}{{ states }}"
                      shells: "{{ ((steward_shells.content | default('')) | b64decode).splitlines() | select('match', '^/') | list }}"

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
            # Applies the account changes Steward passes in steward_groups and steward_users, then refreshes facts.
            # Values arrive as data in a vars file; Steward refuses template syntax in every field before a run.
            - name: Users
              hosts: all
              become: true
              gather_facts: false
              tasks:
                - name: Groups
                  ansible.builtin.group:
                    name: "{{ item.name }}"
                    gid: "{{ item.gid | default(omit) }}"
                    state: "{{ item.state }}"
                  loop: "{{ steward_groups | default([]) }}"
                  loop_control:
                    label: "{{ item.name }}"
                - name: Users
                  ansible.builtin.user:
                    name: "{{ item.name }}"
                    uid: "{{ item.uid | default(omit) }}"
                    group: "{{ item.group | default(omit) }}"
                    groups: "{{ item.groups | default(omit) }}"
                    append: "{{ item.append | default(false) }}"
                    shell: "{{ item.shell | default(omit) }}"
                    home: "{{ item.home | default(omit) }}"
                    create_home: "{{ item.create_home | default(true) }}"
                    comment: "{{ item.comment | default(omit) }}"
                    password: "{{ item.password | default(omit) }}"
                    password_lock: "{{ item.password_lock | default(omit) }}"
                    expires: "{{ item.expires | default(omit) }}"
                    state: "{{ item.state | default('present') }}"
                    remove: "{{ item.remove | default(false) }}"
                  loop: "{{ steward_users | default([]) }}"
                  loop_control:
                    label: "{{ item.name }}"
                  no_log: "{{ item.password is defined }}"
                - name: Group members removed
                  ansible.builtin.command:
                    argv: [gpasswd, --delete, "{{ item.1 }}", "{{ item.0.name }}"]
                  loop: "{{ (steward_groups | default([])) | subelements('remove_members', skip_missing=True) }}"
                  register: steward_removed
                  changed_when: steward_removed.rc == 0
                  failed_when: false
                - name: Authorized keys directory
                  ansible.builtin.file:
                    path: "~{{ item.name }}/.ssh"
                    state: directory
                    owner: "{{ item.name }}"
                    mode: "0700"
                  loop: "{{ (steward_users | default([])) | selectattr('authorized_keys', 'defined') | list }}"
                  loop_control:
                    label: "{{ item.name }}"
                - name: Authorized keys
                  ansible.builtin.copy:
                    dest: "~{{ item.name }}/.ssh/authorized_keys"
                    content: "{{ item.authorized_keys | join('\\n') }}{{ '\\n' if item.authorized_keys else '' }}"
                    owner: "{{ item.name }}"
                    mode: "0600"
                  loop: "{{ (steward_users | default([])) | selectattr('authorized_keys', 'defined') | list }}"
                  loop_control:
                    label: "{{ item.name }}"

            - name: Refresh facts
              import_playbook: facts.yml

            """
        ),
    ]
}

/// Serialises changes to the config repo's working tree; the work itself (git, ansible's syntax check) runs on a
/// thread of its own.
public final class RepositoryLock: Sendable {
    let gate = ConcurrencyGate(limit: 1)

    public init() {}

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        await gate.acquire()
        do {
            let value = try await offload(body)
            await gate.release()
            return value
        } catch {
            await gate.release()
            throw error
        }
    }
}
