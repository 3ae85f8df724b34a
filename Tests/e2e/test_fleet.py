"""Steward against real SSH hosts (the test fleet): enrolment, explicit host-key trust, connectivity, and a
substituted host key (SECURITY.md class 13). Root only."""
import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fleet"))
from fleet import Fleet  # noqa: E402

from conftest import _binary, job_log, wait_job  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root")


@pytest.fixture(scope="module")
def fleet(steward):
    public_key = (steward.data / "ssh" / "id_ed25519.pub").read_text()
    with Fleet(2, authorized_key=public_key) as running:
        yield running


def run_schedule(api, schedule, timeout=300):
    """Run a schedule now. If its own timer fired it a moment ago (concurrency forbid answers 409), wait for that
    run to end and start ours."""
    deadline = time.monotonic() + timeout
    while True:
        status, started = api.call("POST", f"/api/v1/schedules/{schedule['id']}/run")
        if status != 409 or time.monotonic() > deadline:
            assert status in (200, 201, 202), started
            return started
        time.sleep(2)


def test_host_keys_are_trusted_explicitly_and_a_substituted_key_blocks_the_host(api, fleet):
    ids = {}
    for host in fleet.hosts:
        status, created = api.call("POST", "/api/v1/hosts", {
            "name": host.name, "address": host.address, "ssh_port": host.port, "ssh_user": host.user, "become": "sudo", "groups": ["fleet"]})
        assert status == 201, created
        ids[host.name] = created["id"]
        status, verdict = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/scan")
        # First contact: nothing is trusted until someone confirms the fingerprint the host itself reports.
        assert verdict["status"] == "unconfirmed" and verdict["presented"] == host.host_key_fingerprint()
        status, wrong = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/trust", {"fingerprint": "SHA256:not-the-key"})
        assert status == 409
        status, trusted = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/trust", {"fingerprint": verdict["presented"]})
        assert status == 200 and trusted["status"] == "trusted"

    status, schedules = api.call("GET", "/api/v1/schedules")
    check = next(s for s in schedules["items"] if s["name"] == "Host connectivity check")
    status, started = api.call("POST", f"/api/v1/schedules/{check['id']}/run")
    job = wait_job(api, started["id"])
    assert job["state"] == "succeeded", job
    for host in fleet.hosts:
        status, record = api.call("GET", f"/api/v1/hosts/{ids[host.name]}")
        assert record["state"] == "up" and record["last_seen_at"], record

    # Class 13: the machine at fleet-1's address now presents another key.
    substituted = fleet.hosts[0]
    old = substituted.host_key_fingerprint()
    substituted.replace_host_keys()
    new = substituted.host_key_fingerprint()
    status, verdict = api.call("POST", f"/api/v1/hosts/{ids[substituted.name]}/host-key/scan")
    assert verdict["status"] == "changed" and verdict["trusted"] == old and verdict["presented"] == new
    assert old in verdict["message"] and new in verdict["message"]
    status, started = api.call("POST", f"/api/v1/schedules/{check['id']}/run")
    wait_job(api, started["id"])
    status, record = api.call("GET", f"/api/v1/hosts/{ids[substituted.name]}")
    assert record["state"] == "unreachable" and "CHANGED" in record["state_detail"] and new in record["state_detail"]
    status, other = api.call("GET", f"/api/v1/hosts/{ids[fleet.hosts[1].name]}")
    assert other["state"] == "up", "the other host is untouched"

    # Re-trusting is an admin action, and it is audited with both fingerprints.
    status, trusted = api.call("POST", f"/api/v1/hosts/{ids[substituted.name]}/host-key/trust", {"fingerprint": new})
    assert trusted["status"] == "trusted"
    status, events = api.call("GET", f"/api/v1/audit?action=hostkey.retrust&target=host:{substituted.name}")
    event = events["items"][0]
    assert event["before"]["fingerprint"] == old and event["after"]["fingerprint"] == new


def test_an_unreachable_host_is_reported_as_down(api):
    status, created = api.call("POST", "/api/v1/hosts", {"name": "nobody-home", "address": "127.0.0.1", "ssh_port": 1})
    assert status == 201, created
    status, verdict = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/scan")
    assert verdict["status"] == "unreachable"
    status, record = api.call("GET", f"/api/v1/hosts/{created['id']}")
    assert record["state"] == "down" and "no host key" in record["state_detail"]
    # Disabled hosts are left out of every run; the later fleet tests expect only reachable hosts.
    status, record = api.call("PATCH", f"/api/v1/hosts/{created['id']}", {"enabled": False})
    assert status == 200 and record["enabled"] is False


TOUCH_PLAYBOOK = """\
- name: Touch one host only
  hosts: all
  gather_facts: false
  become: true
  tasks:
    - name: Mark the first host
      ansible.builtin.copy:
        dest: /etc/steward-marker
        content: "marked by Steward\\n"
      when: inventory_hostname == target
    - name: Everyone answers
      ansible.builtin.ping:
"""


def commit_playbook(steward, name, text):
    """Commit straight into the config repo with git, as its owner: the steward user under privilege separation."""
    repo = steward.data / "config"
    path = repo / "playbooks" / name
    path.write_text(text)
    owner = repo.stat()
    os.chown(path, owner.st_uid, owner.st_gid)
    as_owner = [] if owner.st_uid == os.geteuid() else [
        "setpriv", f"--reuid={owner.st_uid}", f"--regid={owner.st_gid}", "--clear-groups", "--"]
    env = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": "/nonexistent"}
    subprocess.run(as_owner + ["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(as_owner + ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@localhost", "commit", "-q", "-m",
                               f"add {name}"], check=True, env=env)
    return subprocess.run(as_owner + ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def enrol(api, fleet):
    """Make sure every fleet host is in Steward with its current key trusted (as an operator would); returns ids."""
    status, hosts = api.call("GET", "/api/v1/hosts")
    ids = {h["name"]: h["id"] for h in hosts["items"]}
    for host in fleet.hosts:
        if host.name not in ids:
            status, created = api.call("POST", "/api/v1/hosts", {
                "name": host.name, "address": host.address, "ssh_port": host.port, "ssh_user": host.user, "become": "sudo", "groups": ["fleet"]})
            ids[host.name] = created["id"]
        status, verdict = api.call("POST", f"/api/v1/hosts/{ids[host.name]}/host-key/scan")
        if verdict["status"] != "trusted":
            api.call("POST", f"/api/v1/hosts/{ids[host.name]}/host-key/trust", {"fingerprint": verdict["presented"]})
    return ids


def test_a_playbook_runs_on_the_fleet_with_per_host_results(api, fleet, steward):
    first, second = fleet.hosts
    enrol(api, fleet)
    commit = commit_playbook(steward, "touch.yml", TOUCH_PLAYBOOK.replace("target", f"'{first.name}'"))

    status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/touch.yml", "targets": ["fleet"]})
    assert status == 202, job
    finished = wait_job(api, job["id"], timeout=300)
    assert finished["state"] == "succeeded", job_log(api, job["id"])
    status, results = api.call("GET", f"/api/v1/jobs/{job['id']}/hosts")
    by_host = {item["host"]: item for item in results["items"]}
    assert by_host[first.name]["status"] == "changed" and by_host[first.name]["changed"] == 1
    assert by_host[second.name]["status"] == "ok" and by_host[second.name]["changed"] == 0
    assert [t["task"] for t in by_host[first.name]["tasks"]] == ["Mark the first host", "Everyone answers"]
    assert [t["status"] for t in by_host[second.name]["tasks"]] == ["skipped", "ok"]
    # Each host has its own filesystem: the change shows on one only.
    assert (first.root / "etc/steward-marker").read_text() == "marked by Steward\n"
    assert not (second.root / "etc/steward-marker").exists()
    # The job records the commit it ran.
    database = sqlite3.connect(steward.data / "steward.db")
    assert database.execute("SELECT config_commit FROM jobs WHERE id = ?", (job["id"],)).fetchone()[0] == commit


def test_a_playbook_that_fails_its_syntax_check_never_starts(api, fleet, steward):
    commit_playbook(steward, "broken.yml", "- name: Broken\n  hosts: all\n  tasks:\n    - name: x\n      no_such_module_here: {}\n")
    status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/broken.yml"})
    finished = wait_job(api, job["id"])
    assert finished["state"] == "failed" and "syntax check" in finished["error"]
    status, results = api.call("GET", f"/api/v1/jobs/{job['id']}/hosts")
    assert all(item["status"] == "unreachable" for item in results["items"]), "only hosts blocked before the run have results"


def test_playbook_paths_and_targets_are_checked(api):
    for playbook in ["../steward.db", "/etc/passwd", "playbooks/../../secret.key", "playbooks/-x.yml", "playbooks/missing.yml"]:
        status, problem = api.call("POST", "/api/v1/playbooks/run", {"playbook": playbook})
        assert status == 422 and "playbook" in problem["errors"], (playbook, problem)
    status, problem = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/ping.yml", "targets": ["no-such-host"]})
    assert status == 422 and "no-such-host" in problem["errors"]["targets"]


def test_dynamic_inventory_is_accepted_by_ansible_inventory(steward, fleet, api, tmp_path):
    ids = enrol(api, fleet)
    status, tagged = api.call("PATCH", f"/api/v1/hosts/{ids['fleet-1']}", {"tags": ["prod", "eu-west"]})
    assert status == 200, tagged
    wrapper = tmp_path / "steward-inventory"
    wrapper.write_text(f"#!/bin/sh\nexec {_binary()} inventory --data {steward.data} \"$@\"\n")
    wrapper.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_CONFIG": str(tmp_path / "none.cfg"), "ANSIBLE_INVENTORY_ENABLED": "script"}
    (tmp_path / "none.cfg").write_text("[defaults]\n")
    out = subprocess.run(["ansible-inventory", "-i", str(wrapper), "--list"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    inventory = json.loads(out.stdout)
    hostvars = inventory["_meta"]["hostvars"]
    assert {"localhost", "fleet-1", "fleet-2"} <= set(hostvars)
    assert sorted(inventory["fleet"]["hosts"]) == ["fleet-1", "fleet-2"]
    assert hostvars["fleet-1"]["ansible_port"] == fleet.hosts[0].port and hostvars["localhost"]["ansible_connection"] == "local"
    single = subprocess.run([str(wrapper), "--host", "fleet-2"], capture_output=True, text=True, timeout=60)
    assert json.loads(single.stdout)["ansible_user"] == "steward"
    # Only the variables a host needs: ssh is Ansible's default, and no ansible_become: false to outrank -b.
    assert "ansible_connection" not in hostvars["fleet-1"] and "ansible_become" not in hostvars["localhost"]
    # Tags are groups, named as identifiers, and still a variable.
    assert inventory["tag_prod"]["hosts"] == ["fleet-1"] and inventory["tag_eu_west"]["hosts"] == ["fleet-1"]
    assert hostvars["fleet-1"]["steward_tags"] == ["prod", "eu-west"]
    listed = subprocess.run(["ansible", "-i", str(wrapper), "all", "-l", "tag_prod", "--list-hosts"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0 and "fleet-1" in listed.stdout and "fleet-2" not in listed.stdout, listed.stdout + listed.stderr
    # -c on the command line decides now: the task runs here rather than over SSH, for which this shell has no key.
    # (-e ansible_become=false: the host's sudo is not what is tested, and this machine need not have sudo.)
    local = subprocess.run(["ansible", "-i", str(wrapper), "fleet-1", "-c", "local", "-e", "ansible_become=false", "-m", "ansible.builtin.ping"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert local.returncode == 0 and "SUCCESS" in local.stdout, local.stdout + local.stderr
    api.call("PATCH", f"/api/v1/hosts/{ids['fleet-1']}", {"tags": []})


def test_adhoc_command_is_an_argv_with_per_host_results_and_shell_syntax_is_inert(api, fleet):
    first, second = fleet.hosts
    enrol(api, fleet)
    marker = "/tmp/steward-adhoc-proof"
    status, job = api.call("POST", "/api/v1/adhoc", {"command": ["touch", marker + ";", "$(id)", "`id`"], "targets": [first.name]})
    assert status == 202, job
    finished = wait_job(api, job["id"])
    assert finished["state"] == "succeeded", job_log(api, job["id"])
    # The metacharacters became literal file names: no shell ran them.
    assert (first.root / (marker.lstrip("/") + ";")).exists()
    assert (first.root / "home/steward/$(id)").exists() and (first.root / "home/steward/`id`").exists()
    assert not (second.root / (marker.lstrip("/") + ";")).exists()
    status, job = api.call("POST", "/api/v1/adhoc", {"command": ["hostname"], "targets": ["fleet"]})
    wait_job(api, job["id"])
    status, results = api.call("GET", f"/api/v1/jobs/{job['id']}/hosts")
    stdout = {item["host"]: item["tasks"][0]["detail"]["stdout"] for item in results["items"]}
    assert stdout == {first.name: first.name, second.name: second.name}
    status, problem = api.call("POST", "/api/v1/adhoc", {"command": "rm -rf /", "targets": [first.name]})
    assert status == 422 and "command" in problem["errors"]
    status, problem = api.call("POST", "/api/v1/adhoc", {"command": ["uptime"]})
    assert status == 422 and "targets" in problem["errors"]
    status, events = api.call("GET", "/api/v1/audit?action=adhoc.run")
    assert [event["after"]["command"][0] for event in events["items"][:2]] == ["hostname", "touch"]


def test_facts_are_gathered_per_host_and_shown_with_their_time(api, fleet, signed_in, steward):
    ids = enrol(api, fleet)
    status, schedules = api.call("GET", "/api/v1/schedules")
    gather = next(s for s in schedules["items"] if s["name"] == "Gather facts")
    assert gather["cron"] == "7 * * * *", "hourly by default"
    started = run_schedule(api, gather)
    finished = wait_job(api, started["id"], timeout=300)
    assert finished["state"] == "succeeded", job_log(api, started["id"])
    for host in fleet.hosts:
        status, record = api.call("GET", f"/api/v1/hosts/{ids[host.name]}")
        facts = record["facts"]
        assert facts and facts["os"].startswith("Debian 12") and facts["kernel"], facts
        assert facts["cpus"] > 0 and facts["memory_mb"] > 0 and facts["gathered_at"]
        assert "steward" in [user["name"] for user in facts["users"]] and "sudo" in [group["name"] for group in facts["groups"]]
        assert isinstance(facts["updates"]["count"], int) and isinstance(facts["reboot_required"], bool)
    browser = signed_in
    browser.get(f"{steward.base_url}/hosts/{ids[fleet.hosts[0].name]}")
    assert browser.find_element("id", "facts-as-of").text.startswith("As of ")
    browser.get(f"{steward.base_url}/jobs/{started['id']}")
    rows = browser.find_elements("css selector", "#host-results tbody tr")
    assert {row.find_elements("css selector", "td")[0].text for row in rows} >= {"fleet-1", "fleet-2"}


SLEEP_PLAYBOOK = "- name: Slow\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Wait\n      ansible.builtin.command:\n        argv: [sleep, '300']\n"


def test_cancel_stops_the_whole_run_and_a_host_that_stops_answering_is_unreachable(api, fleet, steward):
    ids = enrol(api, fleet)
    commit_playbook(steward, "slow.yml", SLEEP_PLAYBOOK)
    status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/slow.yml", "targets": ["fleet"]})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sleeping = subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True, text=True).stdout.split()
        if len(sleeping) >= 2:
            break
        time.sleep(0.3)
    assert len(sleeping) >= 2, "the sleep task started on both hosts"
    status, cancelled = api.call("POST", f"/api/v1/jobs/{job['id']}/cancel")
    assert status == 202
    finished = wait_job(api, job["id"])
    assert finished["state"] == "cancelled"
    time.sleep(1)
    leftover = subprocess.run(["pgrep", "-f", f"engine/runs/{job['id']}/"], capture_output=True, text=True).stdout.split()
    assert leftover == [], "no ansible process of the cancelled run is left"

    # A host whose sshd stops is reported unreachable in the run's per-host results; the other still runs.
    second = fleet.hosts[1]
    second.stop()
    try:
        status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/ping.yml", "targets": ["fleet"]})
        finished = wait_job(api, job["id"], timeout=180)
        assert finished["state"] == "failed" and f"unreachable: {second.name}" in finished["error"]
        status, results = api.call("GET", f"/api/v1/jobs/{job['id']}/hosts")
        by_host = {item["host"]: item for item in results["items"]}
        assert by_host[second.name]["status"] == "unreachable" and by_host[fleet.hosts[0].name]["status"] == "ok"
    finally:
        second.start()


TEST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFq0dj3X1w6dRQ2cXgYQxWlXyK7Hq0gBvK1o4nTz6Y3C steward-test@example"


def change_user(api, host_id, body):
    status, job = api.call("POST", f"/api/v1/hosts/{host_id}/users", body)
    assert status == 202, job
    finished = wait_job(api, job["id"], timeout=300)
    assert finished["state"] == "succeeded", job_log(api, job["id"])
    return job


def test_each_rows_actions_on_a_users_page_reach_that_user_and_no_other(api, fleet, signed_in, steward):
    """Three users on a fleet host; Lock, Unlock and Delete clicked in the browser from one row's menu each."""
    ids = enrol(api, fleet)
    host = fleet.hosts[1]
    names = ["steward-test-row-a", "steward-test-row-b", "steward-test-row-c"]
    status, schedules = api.call("GET", "/api/v1/schedules")
    gather = next(s for s in schedules["items"] if s["name"] == "Gather facts")
    wait_job(api, run_schedule(api, gather)["id"], timeout=300)
    for n, name in enumerate(names):
        change_user(api, ids[host.name], {"action": "create", "name": name, "uid": 1700 + n, "shell": "/bin/sh", "password": {"mode": "generate"}})
    browser = signed_in

    def click(name, action):
        browser.get(f"{steward.base_url}/hosts/{ids[host.name]}/accounts")
        row = browser.find_element(By.CSS_SELECTOR, f"#host-users tr[data-user='{name}']")
        row.find_element(By.CSS_SELECTOR, "details.row-menu > summary").click()
        form = row.find_element(By.CSS_SELECTOR, f"input[name=action][value={action}]").find_element(By.XPATH, "..")
        if action == "delete":
            form.find_element(By.NAME, "remove_home").click()
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        if action == "delete":
            WebDriverWait(browser, 10).until(expected_conditions.alert_is_present())
            assert name in browser.switch_to.alert.text
            browser.switch_to.alert.accept()
        WebDriverWait(browser, 30).until(lambda d: "/jobs/" in d.current_url)
        job_id = int(browser.current_url.split("/jobs/")[1].split("?")[0].split("#")[0])
        assert wait_job(api, job_id, timeout=300)["state"] == "succeeded", job_log(api, job_id)

    def locked():
        return [host.run("getent", "shadow", name).stdout.split(":")[1].startswith("!") for name in names[:2]]

    click("steward-test-row-b", "lock")
    assert locked() == [False, True]
    click("steward-test-row-b", "unlock")
    assert locked() == [False, False]
    click("steward-test-row-a", "lock")
    assert locked() == [True, False]
    click("steward-test-row-c", "delete")
    assert [host.run("getent", "passwd", name, check=False).returncode == 0 for name in names] == [True, True, False]
    assert not (host.root / "home/steward-test-row-c").exists() and (host.root / "home/steward-test-row-a").exists()
    for name in names[:2]:
        change_user(api, ids[host.name], {"action": "delete", "name": name, "remove_home": True})


def change_group(api, host_id, body):
    status, job = api.call("POST", f"/api/v1/hosts/{host_id}/groups", body)
    assert status == 202, job
    finished = wait_job(api, job["id"], timeout=300)
    assert finished["state"] == "succeeded", job_log(api, job["id"])


def test_each_rows_actions_on_a_groups_page_reach_that_group_and_no_other(api, fleet, signed_in, steward):
    """Three groups on a fleet host: Edit fills the form with that group's values; Delete removes that group only."""
    ids = enrol(api, fleet)
    host = fleet.hosts[1]
    names = ["steward-test-grp-a", "steward-test-grp-b", "steward-test-grp-c"]
    for n, name in enumerate(names):
        change_group(api, ids[host.name], {"action": "create", "name": name, "gid": 1750 + n})
    status, schedules = api.call("GET", "/api/v1/schedules")
    gather = next(s for s in schedules["items"] if s["name"] == "Gather facts")
    wait_job(api, run_schedule(api, gather)["id"], timeout=300)
    browser = signed_in
    page = f"{steward.base_url}/hosts/{ids[host.name]}/accounts"

    def open_menu(name):
        browser.get(page)
        row = browser.find_element(By.CSS_SELECTOR, f"#host-groups tr[data-group='{name}']")
        row.find_element(By.CSS_SELECTOR, "details.row-menu > summary").click()
        return row

    open_menu("steward-test-grp-b").find_element(By.LINK_TEXT, "Edit").click()
    WebDriverWait(browser, 10).until(lambda d: "edit_group=" in d.current_url)
    assert browser.find_element(By.ID, "field-group-name").get_attribute("value") == "steward-test-grp-b"
    assert browser.find_element(By.ID, "field-gid").get_attribute("value") == "1751"
    assert browser.find_element(By.CSS_SELECTOR, "#group-form input[name=action][value=update]").is_selected()

    open_menu("steward-test-grp-b").find_element(By.CSS_SELECTOR, "form button.danger").click()
    WebDriverWait(browser, 10).until(expected_conditions.alert_is_present())
    question = browser.switch_to.alert.text
    assert "steward-test-grp-b" in question and host.name in question, question
    browser.switch_to.alert.accept()
    WebDriverWait(browser, 30).until(lambda d: "/jobs/" in d.current_url)
    job_id = int(browser.current_url.split("/jobs/")[1].split("?")[0].split("#")[0])
    assert wait_job(api, job_id, timeout=300)["state"] == "succeeded", job_log(api, job_id)
    assert [host.run("getent", "group", name, check=False).returncode == 0 for name in names] == [True, False, True]
    # The facts the job refreshed: the page lists the two that are left and no longer the deleted one.
    browser.get(page)
    shown = [row.get_attribute("data-group") for row in browser.find_elements(By.CSS_SELECTOR, "#host-groups tbody tr")]
    assert "steward-test-grp-a" in shown and "steward-test-grp-c" in shown and "steward-test-grp-b" not in shown
    # System groups are hidden unless asked for, and said to be.
    assert "root" not in shown and "system group(s) hidden" in browser.find_element(By.ID, "system-groups").text
    for name in (names[0], names[2]):
        change_group(api, ids[host.name], {"action": "delete", "name": name})


def test_users_and_groups_are_managed_on_one_host_and_the_matrix_shows_it(api, fleet, signed_in, steward):
    ids = enrol(api, fleet)
    first, second = fleet.hosts
    # Facts first: shells and existing accounts come from them.
    status, schedules = api.call("GET", "/api/v1/schedules")
    gather = next(s for s in schedules["items"] if s["name"] == "Gather facts")
    started = run_schedule(api, gather)
    wait_job(api, started["id"], timeout=300)

    name = "steward-test-ann"
    job = change_user(api, ids[first.name], {
        "action": "create", "name": name, "uid": 1500, "shell": "/bin/bash", "gecos": "Ann <script>alert(1)</script>",
        "authorized_keys": [TEST_KEY], "password": {"mode": "generate"}})
    assert job["generated_password"] and len(job["generated_password"]) == 20
    passwd = first.run("getent", "passwd", name).stdout
    assert passwd.startswith(f"{name}:x:1500:") and passwd.strip().endswith("/bin/bash")
    assert (first.root / f"home/{name}/.ssh/authorized_keys").read_text() == TEST_KEY + "\n"
    assert first.run("getent", "passwd", name, check=False).returncode == 0 and second.run("getent", "passwd", name, check=False).returncode != 0
    shadow = first.run("getent", "shadow", name).stdout.split(":")[1]
    assert shadow.startswith("$6$"), "the generated password is set as a hash"

    # Class 5: the GECOS payload renders as text in a real browser (no alert, no element).
    browser = signed_in
    browser.get(f"{steward.base_url}/hosts/{ids[first.name]}/accounts")
    row = browser.find_element("xpath", f"//table[@id='host-users']//tr[td[1]='{name}']")
    assert "Ann <script>alert(1)</script>" in row.text
    assert browser.find_elements("css selector", "main script") == []

    # Edit, lock, group membership.
    change_user(api, ids[first.name], {"action": "update", "name": name, "gecos": "Ann Example", "shell": "/bin/sh"})
    assert first.run("getent", "passwd", name).stdout.split(":")[4] == "Ann Example"
    change_user(api, ids[first.name], {"action": "lock", "name": name})
    assert first.run("getent", "shadow", name).stdout.split(":")[1].startswith("!")
    status, job = api.call("POST", f"/api/v1/hosts/{ids[first.name]}/groups",
                           {"action": "create", "name": "steward-test-devs", "gid": 2500, "members": [name]})
    assert status == 202, job
    assert wait_job(api, job["id"], timeout=300)["state"] == "succeeded", job_log(api, job["id"])
    assert first.run("getent", "group", "steward-test-devs").stdout.strip() == f"steward-test-devs:x:2500:{name}"
    status, job = api.call("POST", f"/api/v1/hosts/{ids[first.name]}/groups", {"action": "update", "name": "steward-test-devs", "members": []})
    assert wait_job(api, job["id"], timeout=300)["state"] == "succeeded", job_log(api, job["id"])
    assert first.run("getent", "group", "steward-test-devs").stdout.strip() == "steward-test-devs:x:2500:"

    # The facts refreshed with the change: the matrix shows the user on one host only.
    status, matrix = api.call("GET", "/api/v1/accounts")
    row = next(user for user in matrix["users"] if user["name"] == name)
    assert set(row["hosts"]) == {first.name} and row["hosts"][first.name]["uid"] == 1500
    browser.get(f"{steward.base_url}/accounts")
    cells = [cell.text for cell in browser.find_elements("xpath", f"//table[@id='account-matrix']//tr[th[starts-with(., '{name}')]]/td")]
    assert any("uid 1500" in cell for cell in cells) and "—" in cells

    # A conflict: the same name with another uid on the second host.
    change_user(api, ids[second.name], {"action": "create", "name": name, "uid": 1501})
    status, matrix = api.call("GET", "/api/v1/accounts")
    assert {"name": name, "uids": [1500, 1501]} in matrix["conflicts"]["uid"]

    for host in fleet.hosts:
        change_user(api, ids[host.name], {"action": "delete", "name": name, "remove_home": True})
        assert host.run("getent", "passwd", name, check=False).returncode != 0
    assert not (first.root / f"home/{name}").exists()


def test_account_fields_refuse_injection_through_the_api(api, fleet):
    ids = enrol(api, fleet)
    host_id = ids[fleet.hosts[0].name]
    for body, field in [
        ({"action": "create", "name": "x;id"}, "name"),
        ({"action": "create", "name": "steward-test-i", "gecos": "{{ lookup('pipe','id') }}"}, "gecos"),
        ({"action": "create", "name": "steward-test-i", "shell": "/bin/sh -c id"}, "shell"),
        ({"action": "create", "name": "steward-test-i", "shell": "/bin/zsh"}, "shell"),
        ({"action": "create", "name": "steward-test-i", "home": "/home/../etc"}, "home"),
        ({"action": "create", "name": "steward-test-i", "authorized_keys": ["command=\"id\" " + TEST_KEY]}, "authorized_keys"),
        ({"action": "create", "name": "steward-test-i", "password": {"mode": "hash", "hash": "plaintext"}}, "password"),
        ({"action": "create", "name": "root"}, "name"),
    ]:
        status, problem = api.call("POST", f"/api/v1/hosts/{host_id}/users", body)
        assert status == 422 and field in problem["errors"], (body, problem)


def test_users_as_code_report_drift_and_converge(api, fleet):
    ids = enrol(api, fleet)
    first, second = fleet.hosts
    name = "steward-test-bob"
    status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/facts.yml", "targets": ["fleet"]})
    wait_job(api, job["id"], timeout=300)
    status, saved = api.call("PUT", f"/api/v1/accounts/desired/{name}",
                             {"uid": 1601, "shell": "/bin/bash", "apply_to": ["fleet"], "message": "Bob works on the fleet"})
    assert status == 200, saved
    status, commits = api.call("GET", "/api/v1/config/history")
    assert commits["items"][0]["subject"] == "Bob works on the fleet" and commits["items"][0]["commit"] == saved["commit"]
    status, desired = api.call("GET", "/api/v1/accounts/desired")
    bob = next(item for item in desired["items"] if item["name"] == name)
    assert sorted(bob["drifting"]) == [first.name, second.name] and all("missing" in h["drift"] for h in bob["hosts"])

    status, job = api.call("POST", f"/api/v1/accounts/desired/{name}/converge")
    assert status == 202
    assert wait_job(api, job["id"], timeout=300)["state"] == "succeeded", job_log(api, job["id"])
    for host in fleet.hosts:
        assert host.run("getent", "passwd", name).stdout.startswith(f"{name}:x:1601:")
    status, desired = api.call("GET", "/api/v1/accounts/desired")
    assert next(item for item in desired["items"] if item["name"] == name)["drifting"] == []

    # Someone changes the shell by hand on one host: the report names that host and what differs.
    first.run("usermod", "--shell", "/bin/sh", name)
    status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/facts.yml", "targets": [first.name]})
    wait_job(api, job["id"], timeout=300)
    status, desired = api.call("GET", "/api/v1/accounts/desired")
    bob = next(item for item in desired["items"] if item["name"] == name)
    assert bob["drifting"] == [first.name]
    assert any("shell /bin/sh, should be /bin/bash" in d for h in bob["hosts"] for d in h["drift"])
    status, job = api.call("POST", f"/api/v1/accounts/desired/{name}/converge")
    assert wait_job(api, job["id"], timeout=300)["state"] == "succeeded"
    assert first.run("getent", "passwd", name).stdout.strip().endswith("/bin/bash")

    # Clean up: the definition becomes "absent" and converges away.
    status, saved = api.call("PUT", f"/api/v1/accounts/desired/{name}", {"state": "absent", "apply_to": ["fleet"], "message": "Bob left"})
    status, job = api.call("POST", f"/api/v1/accounts/desired/{name}/converge")
    assert wait_job(api, job["id"], timeout=300)["state"] == "succeeded"
    for host in fleet.hosts:
        assert host.run("getent", "passwd", name, check=False).returncode != 0


def test_batch_csv_reports_bad_lines_and_applies_nothing_until_confirmed(api, fleet, signed_in, steward):
    enrol(api, fleet)
    first, second = fleet.hosts
    status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/facts.yml", "targets": ["fleet"]})
    wait_job(api, job["id"], timeout=300)
    browser = signed_in
    browser.get(f"{steward.base_url}/accounts/batch")
    lines = "\n".join([
        f"create,{first.name},steward-test-cat,1650,,/bin/bash,,Cat Example",
        f"create,{second.name},x;id",
        f"create,no-such-host,steward-test-dog",
        f"create,{second.name},steward-test-dog,,,/bin/zsh",
    ])
    browser.find_element("id", "field-batch").send_keys(lines)
    browser.find_element("css selector", "button[name=apply][value='0']").click()
    rows = WebDriverWait(browser, 20).until(lambda d: d.find_elements("css selector", "#batch-preview tbody tr"))
    assert len(rows) == 4 and "ready" in rows[0].text
    assert "name:" in rows[1].text and "there is no host no-such-host" in rows[2].text and "/etc/shells" in rows[3].text
    assert browser.find_elements("css selector", "button[name=apply][value='1']") == [], "no apply while lines are wrong"
    assert first.run("getent", "passwd", "steward-test-cat", check=False).returncode != 0, "a preview changes nothing"

    box = browser.find_element("id", "field-batch")
    box.clear()
    box.send_keys(lines.splitlines()[0])
    browser.find_element("css selector", "button[name=apply][value='0']").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements("css selector", "button[name=apply][value='1']"))[0].click()
    flash = WebDriverWait(browser, 20).until(lambda d: d.find_elements("css selector", ".flash-success"))[0].text
    job_id = int(flash.split("#")[1].split(",")[0].strip())
    assert wait_job(api, job_id, timeout=300)["state"] == "succeeded", job_log(api, job_id)
    assert first.run("getent", "passwd", "steward-test-cat").stdout.startswith("steward-test-cat:x:1650:")
    assert second.run("getent", "passwd", "steward-test-cat", check=False).returncode != 0
    export = api_text(api, "/accounts/export.csv")
    assert f"update,{first.name},steward-test-cat,1650," in export
    status, job = api.call("POST", f"/api/v1/hosts/{enrol(api, fleet)[first.name]}/users", {"action": "delete", "name": "steward-test-cat", "remove_home": True})
    wait_job(api, job["id"], timeout=300)


def api_text(api, path):
    request = urllib.request.Request(api.base + path, headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
        return response.read().decode()


def test_hostile_names_from_a_host_render_inert(api, fleet, signed_in, steward):
    """Class 5: a group and a GECOS someone wrote on the host itself (not through Steward) reach the pages as text."""
    ids = enrol(api, fleet)
    first = fleet.hosts[0]
    with open(first.root / "etc/group", "a") as groups:
        groups.write('steward-test-x"><img src=x onerror=alert(1)>:x:3999:\n')
    first.run("useradd", "--no-create-home", "--comment", "<script>alert(2)</script>", "steward-test-xss")
    try:
        status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/facts.yml", "targets": [first.name]})
        assert wait_job(api, job["id"], timeout=300)["state"] == "succeeded", job_log(api, job["id"])
        browser = signed_in
        for path in [f"/hosts/{ids[first.name]}/accounts", f"/hosts/{ids[first.name]}", "/accounts?system=1"]:
            browser.get(steward.base_url + path)
            assert browser.find_elements("css selector", "main img, main script") == [], path
            if path.endswith("/accounts"):
                main = browser.find_element("tag name", "main").text
                assert 'onerror=alert(1)>' in main and "<script>alert(2)</script>" in main, "shown as text"
    finally:
        first.run("userdel", "steward-test-xss", check=False)
        first.run("groupdel", 'steward-test-x"><img src=x onerror=alert(1)>', check=False)
        text = (first.root / "etc/group").read_text()
        (first.root / "etc/group").write_text("".join(line for line in text.splitlines(True) if not line.startswith("steward-test-x\"")))


def test_groups_as_code_converge_with_members(api, fleet):
    ids = enrol(api, fleet)
    first, second = fleet.hosts
    for host in fleet.hosts:
        status, job = api.call("POST", f"/api/v1/hosts/{ids[host.name]}/users", {"action": "create", "name": "steward-test-eve", "uid": 1700}) \
            if host.run("getent", "passwd", "steward-test-eve", check=False).returncode != 0 else (None, None)
        if job:
            assert wait_job(api, job["id"], timeout=300)["state"] == "succeeded", job_log(api, job["id"])
    status, saved = api.call("PUT", "/api/v1/accounts/desired-groups/steward-test-ops",
                             {"gid": 2700, "members": ["steward-test-eve"], "apply_to": ["fleet"], "message": "Ops group"})
    assert status == 200, saved
    status, desired = api.call("GET", "/api/v1/accounts/desired")
    ops = next(item for item in desired["items"] if item.get("kind") == "group" and item["name"] == "steward-test-ops")
    assert sorted(ops["drifting"]) == [first.name, second.name]
    status, job = api.call("POST", "/api/v1/accounts/desired-groups/steward-test-ops/converge")
    assert status == 202 and wait_job(api, job["id"], timeout=300)["state"] == "succeeded", job_log(api, job["id"])
    for host in fleet.hosts:
        assert host.run("getent", "group", "steward-test-ops").stdout.strip() == "steward-test-ops:x:2700:steward-test-eve"
    status, desired = api.call("GET", "/api/v1/accounts/desired")
    assert next(item for item in desired["items"] if item.get("kind") == "group" and item["name"] == "steward-test-ops")["drifting"] == []
    api.call("PUT", "/api/v1/accounts/desired-groups/steward-test-ops", {"state": "absent", "apply_to": ["fleet"], "message": "No ops group"})
    status, job = api.call("POST", "/api/v1/accounts/desired-groups/steward-test-ops/converge")
    assert wait_job(api, job["id"], timeout=300)["state"] == "succeeded"
    for host in fleet.hosts:
        assert host.run("getent", "group", "steward-test-ops", check=False).returncode != 0
        status, job = api.call("POST", f"/api/v1/hosts/{ids[host.name]}/users", {"action": "delete", "name": "steward-test-eve", "remove_home": True})
        wait_job(api, job["id"], timeout=300)
