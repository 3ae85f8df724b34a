/// Playbooks that belong to Steward rather than to the config repo: written into DATA/engine/builtin at every start,
/// so they always match the binary. Their inputs arrive as data in a vars file.
enum BuiltinPlaybooks {
    static let rollout = "rollout.yml"
    static let reboot = "reboot.yml"
    static let service = "service.yml"
    static let signal = "signal.yml"
    static let packages = "packages.yml"
    static let cron = "cron.yml"

    static let files: [(name: String, text: String)] = [
        (
            rollout,
            """
            # Steward's package rollout. Inputs (vars file): steward_phase (plan | apply), steward_action (upgrade |
            # install | remove), steward_plan (host -> packages to change, each "name" or "name=version"), steward_pins
            # (plan only: the packages to simulate installing, "name" or "name=version", or removing).
            # plan: refreshes the package lists and reports what the change would do (the simulations run even under
            # --check). apply: changes exactly the planned packages, then reports versions and whether a reboot is due.
            - name: Steward rollout
              hosts: all
              become: true
              gather_facts: false
              vars:
                steward_wanted: "{{ steward_plan[inventory_hostname] | default([]) }}"
              tasks:
                - name: Package manager
                  ansible.builtin.setup:
                    gather_subset: ['!all', '!min', 'pkg_mgr']
                - name: Refresh package lists
                  ansible.builtin.command:
                    argv: [apt-get, update, -q]
                  check_mode: false
                  changed_when: false
                  when: ansible_pkg_mgr == 'apt'
                - name: Simulate the upgrade (apt)
                  ansible.builtin.command:
                    argv: [apt-get, -s, -o, Debug::NoLocking=1, dist-upgrade]
                  check_mode: false
                  changed_when: false
                  register: steward_apt_simulation
                  when: ansible_pkg_mgr == 'apt' and steward_phase == 'plan' and steward_action == 'upgrade'
                - name: Simulate installing named or pinned packages (apt)
                  ansible.builtin.command:
                    argv: "{{ ['apt-get', '-s', '-o', 'Debug::NoLocking=1', '--allow-downgrades', 'install', '--'] + steward_pinned }}"
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_apt_pinned
                  vars:
                    steward_pinned: "{{ steward_pins | default([]) }}"
                  when: ansible_pkg_mgr == 'apt' and steward_phase == 'plan' and steward_action != 'remove' and (steward_pins | default([]) | length > 0)
                # apt refuses a whole removal when one name is unknown to it, so only the installed ones are simulated.
                - name: Named packages installed here (apt)
                  ansible.builtin.command:
                    argv: "{{ ['dpkg-query', '-W', '-f', '${db:Status-Abbrev}${Package}\\\\n', '--'] + steward_pins }}"
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_apt_present
                  when: ansible_pkg_mgr == 'apt' and steward_phase == 'plan' and steward_action == 'remove'
                - name: Simulate removing (apt)
                  ansible.builtin.command:
                    argv: "{{ ['apt-get', '-s', '-o', 'Debug::NoLocking=1', 'remove', '--'] + steward_present }}"
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_apt_removal
                  vars:
                    steward_present: "{{ steward_apt_present.stdout_lines | default([]) | select('match', '^ii ') | map('regex_replace', '^ii +', '') | list }}"
                  when: ansible_pkg_mgr == 'apt' and steward_phase == 'plan' and steward_action == 'remove' and steward_present | length > 0
                - name: Simulate the upgrade (dnf)
                  ansible.builtin.command:
                    argv: [dnf, -q, check-update]
                  check_mode: false
                  changed_when: false
                  failed_when: steward_dnf_simulation.rc not in [0, 100]
                  register: steward_dnf_simulation
                  when: ansible_pkg_mgr == 'dnf' and steward_phase == 'plan' and steward_action == 'upgrade'
                - name: Security advisories (dnf)
                  ansible.builtin.command:
                    argv: [dnf, -q, updateinfo, list, --security]
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_dnf_security
                  when: ansible_pkg_mgr == 'dnf' and steward_phase == 'plan' and steward_action == 'upgrade'
                - name: Versions the repositories offer for named or pinned packages (dnf)
                  ansible.builtin.command:
                    argv: "{{ ['dnf', '-q', 'list', '--showduplicates', '--available', '--'] + (steward_pins | default([]) | map('regex_replace', '=.*$', '') | list) }}"
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_dnf_offered
                  when: ansible_pkg_mgr == 'dnf' and steward_phase == 'plan' and steward_action != 'remove' and (steward_pins | default([]) | length > 0)
                - name: Installed versions of the pending and pinned packages (dnf)
                  ansible.builtin.command:
                    argv: "{{ ['rpm', '-q', '--qf', '%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\\\n'] + steward_dnf_names }}"
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_dnf_installed
                  vars:
                    steward_dnf_names: "{{ (steward_dnf_simulation.stdout_lines | default([]) | map('regex_search', '^[^ ]+[.][^ .]+ ') | select | map('trim') | map('regex_replace', '[.][^.]+$', '') | list) + (steward_pins | default([]) | map('regex_replace', '=.*$', '') | list) }}"
                  when: ansible_pkg_mgr == 'dnf' and steward_phase == 'plan' and steward_dnf_names | length > 0
                # dnf removes what depends on a package, and the dependencies nothing else needs: its own answer
                # (refused, so nothing happens) lists them all.
                - name: Simulate removing (dnf)
                  ansible.builtin.command:
                    argv: "{{ ['dnf', '--assumeno', 'remove', '--'] + steward_pins }}"
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_dnf_removal
                  when: ansible_pkg_mgr == 'dnf' and steward_phase == 'plan' and steward_action == 'remove'
                - name: Steward plan
                  ansible.builtin.set_fact:
                    steward_report: "{{ {'name': 'plan', 'body': {'pkg_mgr': ansible_pkg_mgr, 'apt': steward_apt_simulation.stdout_lines | default([]) | select('match', '^Inst ') | list, 'pinned': ((steward_apt_pinned.stdout_lines | default([])) + (steward_apt_pinned.stderr_lines | default([]))) | select('match', '^(Inst|Remv|E:) ') | list, 'dnf': steward_dnf_simulation.stdout_lines | default([]), 'dnf_security': steward_dnf_security.stdout_lines | default([]), 'dnf_installed': steward_dnf_installed.stdout_lines | default([]), 'dnf_offered': steward_dnf_offered.stdout_lines | default([]), 'dnf_removal': steward_dnf_removal.stdout_lines | default([]), 'removals': ((steward_apt_removal.stdout_lines | default([])) + (steward_apt_removal.stderr_lines | default([]))) | select('match', '^(Remv|E:|WARNING:) ') | list}} }}"
                  when: steward_phase == 'plan'
                # apt-get through argv (no python3-apt needed on the host); pinned versions may go down (rollbacks). An
                # upgrade never installs a package that is not there; an install does; neither removes any package.
                - name: Install or upgrade the planned packages (apt)
                  ansible.builtin.command:
                    argv: "{{ ['apt-get', 'install', '-y', '-q', '--no-remove', '-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Options::=--force-confdef'] + (['--allow-downgrades'] if (steward_wanted | select('search', '=') | list | length > 0) else []) + (['--only-upgrade'] if steward_action == 'upgrade' else []) + ['--'] + steward_wanted }}"
                  environment:
                    DEBIAN_FRONTEND: noninteractive
                  register: steward_apt_result
                  changed_when: "'Setting up' in steward_apt_result.stdout"
                  when: ansible_pkg_mgr == 'apt' and steward_phase == 'apply' and steward_action != 'remove' and steward_wanted | length > 0
                - name: Remove the planned packages (apt)
                  ansible.builtin.command:
                    argv: "{{ ['apt-get', 'remove', '-y', '-q', '--'] + steward_wanted }}"
                  environment:
                    DEBIAN_FRONTEND: noninteractive
                  register: steward_apt_removed
                  changed_when: "'Removing' in steward_apt_removed.stdout"
                  when: ansible_pkg_mgr == 'apt' and steward_phase == 'apply' and steward_action == 'remove' and steward_wanted | length > 0
                - name: Change the planned packages (dnf)
                  ansible.builtin.dnf:
                    name: "{{ steward_wanted | map('regex_replace', '=', '-') | list }}"
                    state: "{{ 'absent' if steward_action == 'remove' else ('present' if (steward_action == 'install' or (steward_wanted | select('search', '=') | list | length > 0)) else 'latest') }}"
                    allow_downgrade: "{{ steward_wanted | select('search', '=') | list | length > 0 }}"
                  when: ansible_pkg_mgr == 'dnf' and steward_phase == 'apply' and steward_wanted | length > 0
                - name: Installed versions (apt; a removed package's leftover configuration does not count)
                  ansible.builtin.command:
                    argv: "{{ ['dpkg-query', '-W', '-f', '${db:Status-Abbrev}${Package} ${Version}\\\\n'] + (steward_wanted | map('regex_replace', '=.*$', '') | list) }}"
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_versions
                  when: ansible_pkg_mgr == 'apt' and steward_phase == 'apply' and steward_wanted | length > 0
                - name: Installed versions (dnf)
                  ansible.builtin.command:
                    argv: "{{ ['rpm', '-q', '--qf', '%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\\\n'] + (steward_wanted | map('regex_replace', '=.*$', '') | list) }}"
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_rpm_versions
                  when: ansible_pkg_mgr == 'dnf' and steward_phase == 'apply' and steward_wanted | length > 0
                - name: Reboot required file
                  ansible.builtin.stat:
                    path: /var/run/reboot-required
                  register: steward_reboot_file
                  when: steward_phase == 'apply'
                - name: Reboot required (dnf; needs-restarting exits 1 when a reboot is due)
                  ansible.builtin.command:
                    argv: [needs-restarting, -r]
                  check_mode: false
                  changed_when: false
                  failed_when: false
                  register: steward_needs_restarting
                  when: ansible_pkg_mgr == 'dnf' and steward_phase == 'apply'
                - name: Steward report
                  ansible.builtin.set_fact:
                    steward_report: "{{ {'name': 'apply', 'body': {'versions': (steward_versions.stdout_lines | default([]) | select('match', '^ii ') | map('regex_replace', '^ii +', '') | list) + (steward_rpm_versions.stdout_lines | default([])), 'reboot_required': (steward_reboot_file.stat.exists | default(false)) or (steward_needs_restarting.rc | default(0)) == 1}} }}"
                  when: steward_phase == 'apply'

            """
        ),
        (
            reboot,
            """
            # Steward's reboot policy, run after a rollout wave's changes in the same ansible-playbook invocation (hosts
            # that failed the changes are left alone). Input: steward_reboot (when_required | always). One host at a
            # time; the reboot module waits until the host has a new boot id and answers again, and a host that does not
            # come back stops the play, so no further host goes down.
            - name: Steward reboots
              hosts: all
              become: true
              gather_facts: false
              serial: 1
              tasks:
                - name: Reboot required file
                  ansible.builtin.stat:
                    path: /var/run/reboot-required
                  register: steward_reboot_file
                - name: Reboot required (RPM hosts; needs-restarting exits 1 when a reboot is due)
                  ansible.builtin.command:
                    argv: [needs-restarting, -r]
                  changed_when: false
                  failed_when: false
                  register: steward_needs_restarting
                  when: not steward_reboot_file.stat.exists
                - name: Reboot and wait for the host
                  ansible.builtin.reboot:
                    reboot_timeout: 900
                    msg: Reboot by Steward (rollout)
                  when: steward_reboot == 'always' or (steward_reboot == 'when_required' and steward_reboot_required)
                  register: steward_rebooted
                - name: Steward reboot
                  ansible.builtin.set_fact:
                    steward_report: "{{ {'name': 'reboot', 'body': {'rebooted': steward_rebooted.rebooted | default(false), 'reboot_was_required': steward_reboot_required}} }}"
              vars:
                steward_reboot_required: "{{ steward_reboot_file.stat.exists or (steward_needs_restarting.rc | default(0)) == 1 }}"

            """
        ),
        (
            service,
            """
            # Steward's change to one systemd unit. Input (vars file): steward_service, the module's arguments: name, and
            # state (started | stopped | restarted | reloaded), enabled or masked. The name is one the host reported and
            # Steward checked against systemd's unit-name alphabet.
            - name: Steward service change
              hosts: all
              become: true
              gather_facts: false
              tasks:
                - name: Unit
                  ansible.builtin.systemd_service:
                    name: "{{ steward_service.name }}"
                    state: "{{ steward_service.state | default(omit) }}"
                    enabled: "{{ steward_service.enabled | default(omit) }}"
                    masked: "{{ steward_service.masked | default(omit) }}"

            """
        ),
        (
            signal,
            """
            # Steward's signal to one process. Input (vars file): steward_signal with pid, signal (TERM | KILL) and
            # command_sha256, the SHA-256 of the command line Steward showed and audited. Nothing is sent when the PID has
            # ended or now runs another command line (a PID used again). The command line itself never enters a template.
            - name: Steward process signal
              hosts: all
              become: true
              gather_facts: false
              tasks:
                - name: The process's command line now
                  ansible.builtin.command:
                    argv: [ps, -ww, -o, "args=", -p, "{{ steward_signal.pid }}"]
                  register: steward_process
                  changed_when: false
                  failed_when: false
                  # The command line can hold secrets: it stays out of the job's events and log.
                  no_log: true
                - name: Still the process that was asked for
                  ansible.builtin.assert:
                    that:
                      - steward_process.rc == 0
                      - (steward_process.stdout | hash('sha256')) == steward_signal.command_sha256
                    fail_msg: "process {{ steward_signal.pid }} has ended or now runs another command line: no signal sent"
                    quiet: true
                - name: Signal
                  ansible.builtin.command:
                    argv: [kill, -s, "{{ steward_signal.signal }}", "{{ steward_signal.pid }}"]

            """
        ),
        (
            packages,
            """
            # Steward's change to one package. Input (vars file): steward_package with name, and state (present |
            # absent) or hold (true | false). The name is checked against the package-name alphabet and against the host's
            # repositories or installed packages before the job is queued.
            - name: Steward package change
              hosts: all
              become: true
              gather_facts: false
              tasks:
                - name: Package manager
                  ansible.builtin.setup:
                    gather_subset: ['!all', '!min', 'pkg_mgr']
                - name: Install or remove (apt)
                  ansible.builtin.apt:
                    name: "{{ steward_package.name }}"
                    state: "{{ steward_package.state }}"
                    update_cache: "{{ steward_package.state == 'present' }}"
                  when: ansible_pkg_mgr == 'apt' and steward_package.state is defined
                - name: Install or remove (dnf)
                  ansible.builtin.dnf:
                    name: "{{ steward_package.name }}"
                    state: "{{ steward_package.state }}"
                  when: ansible_pkg_mgr in ['dnf', 'dnf5'] and steward_package.state is defined
                - name: Hold (apt)
                  ansible.builtin.dpkg_selections:
                    name: "{{ steward_package.name }}"
                    selection: "{{ 'hold' if steward_package.hold else 'install' }}"
                  when: ansible_pkg_mgr == 'apt' and steward_package.hold is defined
                - name: Hold (dnf versionlock)
                  ansible.builtin.command:
                    argv: [dnf, -q, versionlock, "{{ 'add' if steward_package.hold else 'delete' }}", "{{ steward_package.name }}"]
                  when: ansible_pkg_mgr in ['dnf', 'dnf5'] and steward_package.hold is defined

            """
        ),
        (
            cron,
            """
            # Steward's change to one entry of a user's crontab. Input (vars file): steward_cron with name, user, state
            # (present | absent), and for present: minute, hour, day, month, weekday, job and disabled. The module writes
            # the line from these fields; Steward checked the schedule with its cron parser, the user against the host's,
            # and refused template syntax and line breaks.
            - name: Steward cron change
              hosts: all
              become: true
              gather_facts: false
              tasks:
                - name: Cron entry
                  ansible.builtin.cron:
                    name: "{{ steward_cron.name }}"
                    user: "{{ steward_cron.user }}"
                    state: "{{ steward_cron.state }}"
                    minute: "{{ steward_cron.minute | default(omit) }}"
                    hour: "{{ steward_cron.hour | default(omit) }}"
                    day: "{{ steward_cron.day | default(omit) }}"
                    month: "{{ steward_cron.month | default(omit) }}"
                    weekday: "{{ steward_cron.weekday | default(omit) }}"
                    job: "{{ steward_cron.job | default(omit) }}"
                    disabled: "{{ steward_cron.disabled | default(omit) }}"

            """
        ),
    ]
}
