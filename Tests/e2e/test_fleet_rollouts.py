"""Update rollouts on the test fleet: a local apt repository (built here with dpkg-deb and apt-ftparchive) serving
steward-test-pkg 1.0 and 2.0 over HTTP, three hosts with 1.0 installed, a plan in check mode, four-eyes approval,
the canary wave first, a failing health gate, expiry, denial, and package-name injection. Root only."""
import functools
import http.server
import os
import pathlib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from conftest import Api, _binary, _free_port, job_log, make_account, remove_account, wait_job, wait_rollout

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fleet"))
from fleet import Fleet  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root")
PACKAGE = "steward-test-pkg"


EXTRA = "steward-extra-pkg"
EXTRA_LIB = "steward-extra-lib"


def build_package(workdir: pathlib.Path, version: str, name: str = PACKAGE, depends: str = "") -> pathlib.Path:
    root = workdir / f"build-{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / f"usr/share/{name}").mkdir(parents=True)
    (root / f"usr/share/{name}/version").write_text(version + "\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Steward tests <tests@localhost>\n"
        + (f"Depends: {depends}\n" if depends else "")
        + "Section: misc\nPriority: optional\nDescription: A package for Steward's rollout tests\n")
    output = workdir / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(output)], check=True, capture_output=True)
    return output


@pytest.fixture(scope="module")
def apt_repository():
    """A flat apt repository whose Release says its suite is stewardtest-security, served on 127.0.0.1: the test package
    at 2.0, and a package no host has yet with a dependency of its own (for install and removal rollouts)."""
    with tempfile.TemporaryDirectory(prefix="steward-apt-") as temp:
        workdir = pathlib.Path(temp)
        repo = workdir / "repo"
        repo.mkdir()
        first = build_package(workdir, "1.0")
        second = build_package(workdir, "2.0")
        (repo / second.name).write_bytes(second.read_bytes())
        for extra in (build_package(workdir, "1.0", EXTRA, depends=EXTRA_LIB), build_package(workdir, "1.0", EXTRA_LIB)):
            (repo / extra.name).write_bytes(extra.read_bytes())
        packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo, check=True, capture_output=True, text=True).stdout
        (repo / "Packages").write_text(packages)
        release = subprocess.run(
            ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=Steward", "-o", "APT::FTPArchive::Release::Label=Steward",
             "-o", "APT::FTPArchive::Release::Suite=stewardtest-security", "-o", "APT::FTPArchive::Release::Codename=stewardtest-security",
             "release", "."], cwd=repo, check=True, capture_output=True, text=True).stdout
        (repo / "Release").write_text(release)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(repo))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", first
        finally:
            server.shutdown()


def installed(host, name: str = PACKAGE) -> str:
    out = host.run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Version}", name, check=False)
    return out.stdout[3:].strip() if out.returncode == 0 and out.stdout.startswith("ii") else "absent"


def package_fleet(steward, api, apt_repository, count, group, tags=()):
    """`count` fleet hosts that see only the test repository, with the test package at 1.0, added to Steward in `group`
    with their host keys trusted; disabled in Steward afterwards."""
    url, first = apt_repository
    public_key = (steward.data / "ssh" / "id_ed25519.pub").read_text()
    with Fleet(count, authorized_key=public_key, prefix=group) as fleet:
        ids = {}
        for host in fleet.hosts:
            # Only the test repository: the hosts have their own package databases and no other source.
            (host.root / "etc/apt/sources.list").write_text("")
            (host.root / "etc/apt/sources.list.d/steward-test.list").write_text(f"deb [trusted=yes] {url} ./\n")
            (host.root / "tmp/v1.deb").write_bytes(first.read_bytes())
            host.run("dpkg", "-i", "/tmp/v1.deb")
            assert installed(host) == "1.0"
            status, created = api.call("POST", "/api/v1/hosts", {
                "name": host.name, "address": host.address, "ssh_port": host.port, "ssh_user": host.user, "become": "sudo",
                "groups": [group], "tags": list(tags)})
            assert status == 201, created
            ids[host.name] = created["id"]
            status, verdict = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/scan")
            api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/trust", {"fingerprint": verdict["presented"]})
        yield fleet, ids
        for host_id in ids.values():
            api.call("PATCH", f"/api/v1/hosts/{host_id}", {"enabled": False})


@pytest.fixture(scope="module")
def rollout_fleet(steward, api, apt_repository):
    yield from package_fleet(steward, api, apt_repository, 3, "rfleet", tags=["patchable"])


@pytest.fixture(scope="module")
def approver(steward):
    """A second person with the approver role, and their API token."""
    person = make_account("steward-appr")
    try:
        subprocess.run([str(_binary()), "role", "grant", "approver", "--user", person.name, "--data", str(steward.data)], check=True, capture_output=True)
        token = subprocess.run([str(_binary()), "token", "create", "--user", person.name, "--name", "approvals", "--role", "approver",
                                "--data", str(steward.data)], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        yield person, Api(steward, token)
    finally:
        remove_account(person)


def test_a_rollout_is_planned_approved_by_someone_else_and_applied_canary_first(api, rollout_fleet, approver, signed_in, steward):
    fleet, ids = rollout_fleet
    person, approver_api = approver
    status, rollout = api.call("POST", "/api/v1/rollouts", {
        "title": "Security updates for rfleet", "what": "security", "targets": ["rfleet"], "canary": 1, "wave_size": 2,
        "pause_seconds": 4, "settle_seconds": 3, "approvals_required": 1})
    assert status == 201, rollout
    assert wait_job(api, rollout["plan_job"]["id"], timeout=300)["state"] == "succeeded", job_log(api, rollout["plan_job"]["id"])
    planned = wait_rollout(api, rollout["id"], lambda r: r["state"] != "planning")
    assert planned["state"] == "awaiting_approval", planned["state_detail"]
    # The plan: every host, the package with its current and new version, classified security by its pocket.
    by_host = {item["host"]: item["packages"] for item in planned["plan"]}
    assert set(by_host) == {h.name for h in fleet.hosts}
    for packages in by_host.values():
        assert [(p["package"], p["current"], p["candidate"], p["security"]) for p in packages] == [(PACKAGE, "1.0", "2.0", True)]
    assert all(installed(host) == "1.0" for host in fleet.hosts), "check mode changed nothing"

    # The requester cannot approve; a denial needs a reason.
    status, problem = api.call("POST", f"/api/v1/rollouts/{rollout['id']}/approve", {})
    assert status == 403 and "cannot approve" in problem["detail"]
    status, problem = approver_api.call("POST", f"/api/v1/rollouts/{rollout['id']}/deny", {"reason": "  "})
    assert status == 422 and "reason" in problem["errors"]
    # The approver sees the plan on the page, then approves over the API.
    status, approved = approver_api.call("POST", f"/api/v1/rollouts/{rollout['id']}/approve", {"reason": "canary first, looks fine"})
    assert status == 200 and approved["state"] in ("approved", "running"), approved

    # Wave 1 is the canary alone; the others wait out the gate and the pause.
    canary = fleet.hosts[0]
    wait_rollout(api, rollout["id"], lambda r: r["waves"] and r["waves"][0]["state"] in ("gating", "passed"), what="the canary wave")
    status, current = api.call("GET", f"/api/v1/rollouts/{rollout['id']}")
    assert current["waves"][0]["hosts"] == [canary.name] and current["waves"][1]["state"] == "pending"
    assert installed(canary) == "2.0"
    assert [installed(host) for host in fleet.hosts[1:]] == ["1.0", "1.0"], "after the canary wave only the canary has 2.0"

    done = wait_rollout(api, rollout["id"], lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), what="the rollout's end")
    assert done["state"] == "succeeded", done["state_detail"]
    assert [installed(host) for host in fleet.hosts] == ["2.0", "2.0", "2.0"]
    assert [w["hosts"] for w in done["waves"]] == [[canary.name], [h.name for h in fleet.hosts[1:]]]
    report = {r["host"]: r for r in done["results"]}
    assert report[canary.name]["packages"] == [{"package": PACKAGE, "from": "1.0", "to": "2.0"}] and report[canary.name]["rebooted"] is False
    assert "3 host(s) in 2 wave(s): 3 package change(s)" in done["state_detail"]
    # Who, when and why, in the audit trail.
    status, events = api.get("/api/v1/audit", action="rollout.approve")
    assert events["items"][0]["actor"] == person.name and events["items"][0]["after"]["reason"] == "canary first, looks fine"

    # The page shows the plan, the approval and the report.
    browser = signed_in
    browser.get(f"{steward.base_url}/rollouts/{rollout['id']}")
    assert browser.find_element("id", "rollout-state").text == "succeeded"
    assert "2.0" in browser.find_element("id", "plan-table").text and person.name in browser.find_element("id", "approvals").text
    assert len(browser.find_elements("css selector", "#results-table tbody tr")) == 3

    # Rollback is offered honestly: 1.0 is not in any repository the hosts use, so its plan says it cannot be done.
    status, rollback = api.call("POST", f"/api/v1/rollouts/{rollout['id']}/rollback")
    assert status == 201 and rollback["packages"] == [f"{PACKAGE}=1.0"]
    wait_job(api, rollback["plan_job"]["id"], timeout=300)
    failed = wait_rollout(api, rollback["id"], lambda r: r["state"] != "planning")
    assert failed["state"] == "plan_failed" and "cannot install the pinned version" in failed["state_detail"], failed["state_detail"]


def test_a_critical_alert_on_the_canary_pauses_the_rollout(api, rollout_fleet, approver):
    fleet, ids = rollout_fleet
    person, approver_api = approver
    canary = fleet.hosts[0]
    status, rule = api.call("POST", "/api/v1/alerts/rules", {
        "name": "Canary broken (rollout test)", "source": "job_failed", "crit_threshold": 1, "scope_hosts": [canary.name],
        "summary": "{{host}}: the newest job failed"})
    assert status == 201, rule
    status, rollout = api.call("POST", "/api/v1/rollouts", {
        "title": "Ping through the rollout machinery", "what": "playbook", "playbook": "playbooks/ping.yml", "targets": ["rfleet"],
        "canary": 1, "wave_size": 2, "settle_seconds": 40, "approvals_required": 1})
    assert status == 201, rollout
    wait_rollout(api, rollout["id"], lambda r: r["state"] == "awaiting_approval")
    approver_api.call("POST", f"/api/v1/rollouts/{rollout['id']}/approve", {})
    wait_rollout(api, rollout["id"], lambda r: r["waves"] and r["waves"][0]["state"] == "gating", what="the canary's health gate")
    # Something breaks on the canary: its newest job fails, and the critical rule fires.
    status, job = api.call("POST", "/api/v1/adhoc", {"command": ["/bin/false"], "targets": [canary.name]})
    wait_job(api, job["id"])
    paused = wait_rollout(api, rollout["id"], lambda r: r["state"] == "paused", timeout=60, what="the paused rollout")
    assert "Canary broken (rollout test)" in paused["state_detail"] and canary.name in paused["state_detail"]
    assert paused["waves"][1]["state"] == "pending", "the next wave did not start"
    status, aborted = api.call("POST", f"/api/v1/rollouts/{rollout['id']}/abort")
    assert status == 200 and aborted["state"] == "aborted"
    api.call("PATCH", f"/api/v1/alerts/rules/{rule['id']}", {"enabled": False})


def test_unapproved_rollouts_expire_and_changes_reset_approvals(api, rollout_fleet, approver, steward):
    fleet, ids = rollout_fleet
    person, approver_api = approver
    status, rollout = api.call("POST", "/api/v1/rollouts", {
        "title": "Needs two", "what": "all", "targets": [fleet.hosts[1].name], "approvals_required": 2, "expires_hours": 1})
    wait_rollout(api, rollout["id"], lambda r: r["state"] == "awaiting_approval")
    status, one = approver_api.call("POST", f"/api/v1/rollouts/{rollout['id']}/approve", {})
    assert one["state"] == "awaiting_approval" and len(one["approvals"]) == 1
    # A change after an approval: a new revision, planned again, and the approval no longer counts.
    status, changed = api.call("PATCH", f"/api/v1/rollouts/{rollout['id']}", {"canary": 0})
    assert status == 200 and changed["revision"] == 2
    again = wait_rollout(api, rollout["id"], lambda r: r["state"] == "awaiting_approval")
    assert [a["revision"] for a in again["approvals"]] == [1]
    status, events = api.get("/api/v1/audit", action="rollout.update")
    assert events["items"][0]["after"]["approvals_reset"] == 1
    # The approval window ends (moved into the past here): the driver expires it.
    database = sqlite3.connect(steward.data / "steward.db")
    with database:
        database.execute("UPDATE rollouts SET expires_at = ? WHERE id = ?", (int(time.time() * 1000) - 1000, rollout["id"]))
    database.close()
    expired = wait_rollout(api, rollout["id"], lambda r: r["state"] == "expired", timeout=30)
    assert "not approved before" in expired["state_detail"]
    status, problem = approver_api.call("POST", f"/api/v1/rollouts/{rollout['id']}/approve", {})
    assert status == 409

    # Deny with a reason ends a rollout.
    status, other = api.call("POST", "/api/v1/rollouts", {"title": "To deny", "what": "all", "targets": [fleet.hosts[2].name]})
    wait_rollout(api, other["id"], lambda r: r["state"] == "awaiting_approval")
    status, denied = approver_api.call("POST", f"/api/v1/rollouts/{other['id']}/deny", {"reason": "not during the sale"})
    assert denied["state"] == "denied" and "not during the sale" in denied["state_detail"]


def test_an_admin_installs_a_package_across_hosts_from_the_fleet_view_and_rolls_it_back(
        api, rollout_fleet, approver, signed_in, steward, account):
    """The fleet packages view proposes an install on the hosts without the package; the plan shows the dependency it
    brings; it is approved by someone else and runs canary first; its rollback removes the package and keeps the
    dependency. An operator cannot propose either, and a removal never takes what Steward needs to reach a host."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    fleet, ids = rollout_fleet
    person, approver_api = approver
    canary = fleet.hosts[0]
    for host_id in ids.values():
        status, reading = api.call("POST", f"/api/v1/hosts/{host_id}/packages/refresh")
        assert status == 200, reading
    browser = signed_in
    browser.get(f"{steward.base_url}/packages?name={EXTRA}")
    lacking = browser.find_element(By.ID, "packages-lacking").text
    assert all(host.name in lacking for host in fleet.hosts), lacking
    browser.find_element(By.ID, "install-rollout").click()
    WebDriverWait(browser, 10).until(lambda d: "/rollouts/new" in d.current_url)
    assert Select(browser.find_element(By.ID, "field-what")).first_selected_option.get_attribute("value") == "install"
    assert browser.find_element(By.ID, "field-packages").get_attribute("value") == EXTRA
    targets = browser.find_element(By.ID, "field-targets").get_attribute("value")
    assert [t.strip() for t in targets.split(",") if t.strip().startswith("rfleet")] == [h.name for h in fleet.hosts], targets
    browser.find_element(By.ID, "field-targets").clear()
    browser.find_element(By.ID, "field-targets").send_keys("rfleet")
    for field, value in (("field-wave_size", "2"), ("field-settle_seconds", "2")):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "form.stacked button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: d.current_url.rstrip("/").split("/")[-1].isdigit())
    rollout_id = int(browser.current_url.rstrip("/").split("/")[-1])

    planned = wait_rollout(api, rollout_id, lambda r: r["state"] != "planning")
    assert planned["state"] == "awaiting_approval" and planned["what"] == "install", planned["state_detail"]
    for item in planned["plan"]:
        assert sorted((p["package"], p["current"], p["candidate"]) for p in item["packages"]) == [
            (EXTRA_LIB, "", "1.0"), (EXTRA, "", "1.0")], item
    assert [installed(host, EXTRA) for host in fleet.hosts] == ["absent"] * 3, "the plan installed nothing"
    approver_api.call("POST", f"/api/v1/rollouts/{rollout_id}/approve", {"reason": "wanted on every host"})
    wait_rollout(api, rollout_id, lambda r: r["waves"] and r["waves"][0]["state"] in ("gating", "passed"), what="the canary wave")
    assert installed(canary, EXTRA) == "1.0" and installed(canary, EXTRA_LIB) == "1.0"
    assert [installed(host, EXTRA) for host in fleet.hosts[1:]] == ["absent", "absent"], "only the canary first"
    done = wait_rollout(api, rollout_id, lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), what="the install")
    assert done["state"] == "succeeded", done["state_detail"]
    assert [installed(host, EXTRA) for host in fleet.hosts] == ["1.0"] * 3
    report = {r["host"]: sorted((p["package"], p["from"], p["to"]) for p in r["packages"]) for r in done["results"]}
    assert report[canary.name] == [(EXTRA_LIB, "", "1.0"), (EXTRA, "", "1.0")], report
    # Apt marked only the named package as manually installed; its dependency is automatic.
    assert canary.run("apt-mark", "showauto", EXTRA_LIB).stdout.strip() == EXTRA_LIB

    # The rollback is a removal of what the install brought, proposed from the rollout's page.
    browser.get(f"{steward.base_url}/rollouts/{rollout_id}")
    assert "new → 1.0" in browser.find_element(By.ID, "results-table").text
    browser.find_element(By.CSS_SELECTOR, f"form[action='/rollouts/{rollout_id}/rollback'] button").click()
    WebDriverWait(browser, 15).until(lambda d: d.current_url.rstrip("/").split("/")[-1] != str(rollout_id))
    rollback_id = int(browser.current_url.rstrip("/").split("/")[-1])
    planned = wait_rollout(api, rollback_id, lambda r: r["state"] != "planning")
    assert planned["state"] == "awaiting_approval" and planned["what"] == "remove" and planned["packages"] == [EXTRA], planned
    for item in planned["plan"]:
        assert [(p["package"], p["current"], p["candidate"]) for p in item["packages"]] == [(EXTRA, "1.0", "")], item
    browser.get(f"{steward.base_url}/rollouts/{rollback_id}")
    assert "1.0 → removed" in browser.find_element(By.ID, "plan-table").text
    approver_api.call("POST", f"/api/v1/rollouts/{rollback_id}/approve", {})
    back = wait_rollout(api, rollback_id, lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), what="the removal")
    assert back["state"] == "succeeded", back["state_detail"]
    assert [installed(host, EXTRA) for host in fleet.hosts] == ["absent"] * 3
    assert [installed(host, EXTRA_LIB) for host in fleet.hosts] == ["1.0"] * 3, "the dependency stays, for apt autoremove"
    assert all(r["packages"] == [{"package": EXTRA, "from": "1.0", "to": ""}] for r in back["results"]), back["results"]

    # A removal whose consequences take what Steward needs is refused in the plan, on the host's own evidence:
    # removing the library would not, but removing python3 is refused before anything is planned.
    status, problem = api.call("POST", "/api/v1/rollouts", {"title": "x", "what": "remove", "packages": ["python3"], "targets": ["rfleet"]})
    assert status == 422 and "cut every target off" in problem["errors"]["packages"]
    status, cascade = api.call("POST", "/api/v1/rollouts", {
        "title": "Remove what sshd needs", "what": "remove", "packages": ["openssh-sftp-server"], "targets": [canary.name]})
    assert status == 201, cascade
    refused = wait_rollout(api, cascade["id"], lambda r: r["state"] != "planning")
    assert refused["state"] == "plan_failed" and "would also remove openssh-server" in refused["state_detail"], refused["state_detail"]
    assert installed(canary, "openssh-server") != "absent"

    # An operator may roll out upgrades, not installs or removals.
    token = subprocess.run([str(_binary()), "token", "create", "--user", account.name, "--name", "operator-only",
                            "--role", "operator", "--data", str(steward.data)], check=True, capture_output=True, text=True).stdout.strip()
    operator = Api(steward, token.splitlines()[-1])
    status, problem = operator.call("POST", "/api/v1/rollouts", {"title": "x", "what": "install", "packages": [EXTRA], "targets": ["rfleet"]})
    assert status == 403 and "admin" in problem["detail"], problem


def test_package_names_cannot_carry_shell_payloads(api, rollout_fleet):
    for name in ["u=1337;$(whoami);", "pkg;id", "$(reboot)", "-oAPT::Get=x", "Pkg", "a b"]:
        status, problem = api.call("POST", "/api/v1/rollouts", {"title": "x", "what": "packages", "packages": [name], "targets": ["rfleet"]})
        assert status == 422 and "packages" in problem["errors"], (name, problem)
    status, problem = api.call("POST", "/api/v1/rollouts", {"title": "x", "what": "security", "targets": ["no-such-group"]})
    assert status == 422 and "no-such-group" in problem["errors"]["targets"]


class TinyServer:
    """127.0.0.1 HTTP: records POSTed JSON (a webhook channel) and answers GETs with `status` (a check URL)."""

    def __init__(self):
        import json
        self.posts = []
        self.status = 500
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                owner.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def do_GET(self):
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_window_check_url_resume_and_messages_with_links(api, rollout_fleet, approver):
    fleet, ids = rollout_fleet
    person, approver_api = approver
    server = TinyServer()
    try:
        status, channel = api.call("POST", "/api/v1/alerts/channels", {
            "name": "rollout hook", "kind": "webhook", "url": server.url + "/hook", "group_wait_seconds": 0})
        assert status == 201, channel
        # A maintenance window that is not open now: the approved rollout waits for it and starts no wave.
        status, window = api.call("POST", "/api/v1/alerts/maintenance", {
            "name": "New year, 03:00", "host_group": "rfleet", "cron": "0 3 1 1 *", "duration_minutes": 1, "time_zone": "UTC"})
        assert status == 201, window
        status, waiting = api.call("POST", "/api/v1/rollouts", {
            "title": "Inside the window only", "what": "playbook", "playbook": "playbooks/ping.yml", "targets": [fleet.hosts[1].name],
            "window": window["id"]})
        assert status == 201, waiting
        wait_rollout(api, waiting["id"], lambda r: r["state"] == "awaiting_approval")
        approver_api.call("POST", f"/api/v1/rollouts/{waiting['id']}/approve", {})
        held = wait_rollout(api, waiting["id"], lambda r: "waits for maintenance window" in r["state_detail"], timeout=30)
        assert held["state"] == "running" and held["waves"][0]["state"] == "pending" and held["waves"][0]["job_id"] is None
        api.call("POST", f"/api/v1/rollouts/{waiting['id']}/abort")

        # A check URL answering 500 fails the gate; once it answers 200, resume finishes the rollout.
        status, checked = api.call("POST", "/api/v1/rollouts", {
            "title": "Behind a check URL", "what": "playbook", "playbook": "playbooks/ping.yml", "targets": [fleet.hosts[2].name],
            "settle_seconds": 3, "check_url": server.url + "/healthz"})
        wait_rollout(api, checked["id"], lambda r: r["state"] == "awaiting_approval")
        approver_api.call("POST", f"/api/v1/rollouts/{checked['id']}/approve", {})
        paused = wait_rollout(api, checked["id"], lambda r: r["state"] == "paused", timeout=120)
        assert "the check URL answered 500, not 2xx" in paused["state_detail"]
        server.status = 200
        status, resumed = api.call("POST", f"/api/v1/rollouts/{checked['id']}/resume")
        assert status == 200 and resumed["state"] == "running"
        done = wait_rollout(api, checked["id"], lambda r: r["state"] in ("succeeded", "paused", "failed"), timeout=120)
        assert done["state"] == "succeeded", done["state_detail"]

        # The channel heard about each step, with a direct link to the rollout.
        kinds = [(post["status"], post["link"]) for post in server.posts]
        assert any(k == "rollout.awaiting approval" and l.endswith(f"/rollouts/{checked['id']}") for k, l in kinds), kinds
        assert any(k == "rollout.paused" and l.endswith(f"/rollouts/{checked['id']}") for k, l in kinds), kinds
        assert any(k == "rollout.finished" and l.endswith(f"/rollouts/{checked['id']}") for k, l in kinds), kinds
        assert all("What: rollout #" in post["text"] for post in server.posts if post["status"].startswith("rollout."))
        api.call("PATCH", f"/api/v1/alerts/channels/{channel['id']}", {"enabled": False})
    finally:
        server.server.shutdown()


def test_reboots_go_one_host_at_a_time_and_wait_for_each_host(api, rollout_fleet, approver):
    """Reboot policy "when required": only hosts with /run/reboot-required go down, one at a time, and each is back
    (a new boot id, SSH answering) before the next one starts. The fleet's hosts reboot as containers do (see fleet.py)."""
    fleet, ids = rollout_fleet
    person, approver_api = approver
    first, second, third = fleet.hosts
    for host in (second, third):
        (host.root / "run/reboot-required").write_text("*** System restart required ***\n")
    boots = {host.name: host.boot_id for host in fleet.hosts}
    status, rollout = api.call("POST", "/api/v1/rollouts", {
        "title": "Ping, then reboot where required", "what": "playbook", "playbook": "playbooks/ping.yml", "targets": ["rfleet"],
        "canary": 1, "wave_size": 2, "settle_seconds": 1, "reboot": "when_required"})
    assert status == 201, rollout
    wait_rollout(api, rollout["id"], lambda r: r["state"] == "awaiting_approval")
    approver_api.call("POST", f"/api/v1/rollouts/{rollout['id']}/approve", {"reason": "reboots are fine today"})
    done = wait_rollout(api, rollout["id"], lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), what="the rollout's end")
    assert done["state"] == "succeeded", done["state_detail"]
    assert "2 reboot(s)" in done["state_detail"]

    assert first.boot_id == boots[first.name] and first.reboots == [], "no reboot was required on the canary"
    for host in (second, third):
        assert host.boot_id != boots[host.name] and len(host.reboots) == 1, host.name
        assert not (host.root / "run/reboot-required").exists()
    (down_a, up_a), (down_b, up_b) = sorted([second.reboots[0], third.reboots[0]])
    assert down_b >= up_a, "the second host went down only after the first was back"
    report = {r["host"]: r["rebooted"] for r in done["results"]}
    assert report == {first.name: False, second.name: True, third.name: True}


def build_rpm(workdir: pathlib.Path, version: str, name: str = PACKAGE) -> pathlib.Path:
    spec = workdir / f"{name}-{version}.spec"
    spec.write_text(
        f"Name: {name}\nVersion: {version}\nRelease: 1\nSummary: A package for Steward's rollout tests\nLicense: MIT\nBuildArch: noarch\n\n"
        "%description\nA package for Steward's rollout tests.\n\n"
        f"%install\nmkdir -p %{{buildroot}}/usr/share/{name}\necho {version} > %{{buildroot}}/usr/share/{name}/version\n\n"
        f"%files\n/usr/share/{name}/version\n")
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {workdir / 'rpmbuild'}", "--define", "_build_id_links none", str(spec)],
                   check=True, capture_output=True)
    return workdir / "rpmbuild/RPMS/noarch" / f"{name}-{version}-1.noarch.rpm"


UPDATEINFO = """<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="tests@localhost" status="stable" type="security" version="1">
    <id>STEWARD-2026-0001</id>
    <title>steward-test-pkg security update</title>
    <severity>Important</severity>
    <issued date="2026-11-01 00:00:00"/>
    <description>A security advisory for Steward's rollout tests.</description>
    <pkglist><collection short="stewardtest"><name>stewardtest</name>
      <package name="steward-test-pkg" version="2.0" release="1" epoch="0" arch="noarch"><filename>steward-test-pkg-2.0-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
</updates>
"""


@pytest.fixture(scope="module")
def dnf_fleet(steward, api):
    """Two hosts managed with dnf and rpm (see fleet.py), 1.0-1 installed, and an rpm repository (rpmbuild, createrepo_c)
    offering 1.0-1 and 2.0-1 with a security advisory for 2.0-1 (modifyrepo_c updateinfo), served on 127.0.0.1."""
    with tempfile.TemporaryDirectory(prefix="steward-rpm-") as temp:
        workdir = pathlib.Path(temp)
        repo = workdir / "repo"
        repo.mkdir()
        first, second = build_rpm(workdir, "1.0"), build_rpm(workdir, "2.0")
        for package in (first, second, build_rpm(workdir, "1.0", EXTRA)):
            (repo / package.name).write_bytes(package.read_bytes())
        subprocess.run(["createrepo_c", "-q", str(repo)], check=True, capture_output=True)
        (workdir / "updateinfo.xml").write_text(UPDATEINFO)
        subprocess.run(["modifyrepo_c", "--mdtype=updateinfo", str(workdir / "updateinfo.xml"), str(repo / "repodata")], check=True, capture_output=True)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(repo))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        public_key = (steward.data / "ssh" / "id_ed25519.pub").read_text()
        ids = {}
        try:
            with Fleet(2, authorized_key=public_key, prefix="dfleet", package_manager="dnf") as fleet:
                for host in fleet.hosts:
                    (host.root / "etc/yum.repos.d").mkdir(exist_ok=True)
                    (host.root / "etc/yum.repos.d/stewardtest.repo").write_text(
                        f"[stewardtest]\nname=Steward tests\nbaseurl=http://127.0.0.1:{server.server_address[1]}/\ngpgcheck=0\nenabled=1\n")
                    (host.root / "tmp/v1.rpm").write_bytes(first.read_bytes())
                    host.run("dnf", "-y", "-q", "--disablerepo=*", "install", "/tmp/v1.rpm")
                    assert rpm_version(host) == "1.0-1"
                    status, created = api.call("POST", "/api/v1/hosts", {
                        "name": host.name, "address": host.address, "ssh_port": host.port, "ssh_user": host.user, "become": "sudo",
                        "groups": ["dfleet"]})
                    assert status == 201, created
                    ids[host.name] = created["id"]
                    status, verdict = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/scan")
                    api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/trust", {"fingerprint": verdict["presented"]})
                yield fleet, ids
        finally:
            for host_id in ids.values():
                api.call("PATCH", f"/api/v1/hosts/{host_id}", {"enabled": False})
            server.shutdown()


def rpm_version(host, name: str = PACKAGE) -> str:
    out = host.run("rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", name, check=False)
    return out.stdout.strip() if out.returncode == 0 else "absent"


def test_dnf_hosts_report_updates_and_take_a_rollout_and_its_rollback(api, dnf_fleet, approver):
    fleet, ids = dnf_fleet
    person, approver_api = approver
    # Facts: the Updates view shows the pending update with both versions, classified security by its advisory.
    status, job = api.call("POST", "/api/v1/updates/refresh")
    assert status == 202, job
    assert wait_job(api, job["id"], timeout=300)["state"] in ("succeeded", "failed"), job_log(api, job["id"])
    status, fleet_updates = api.call("GET", "/api/v1/updates")
    rows = {row["host"]: row for row in fleet_updates["items"] if row["host"] in ids}
    assert set(rows) == set(ids), fleet_updates
    for row in rows.values():
        assert row["security_count"] == 1 and [(u["package"], u["current"], u["candidate"], u["security"]) for u in row["updates"]] == [
            (PACKAGE, "1.0-1", "2.0-1", True)], row

    # A security rollout: planned with dnf (check-update, updateinfo, rpm), approved, canary first, applied by dnf.
    status, rollout = api.call("POST", "/api/v1/rollouts", {
        "title": "Security updates for dfleet", "what": "security", "targets": ["dfleet"], "canary": 1, "wave_size": 1, "settle_seconds": 1})
    assert status == 201, rollout
    planned = wait_rollout(api, rollout["id"], lambda r: r["state"] != "planning")
    assert planned["state"] == "awaiting_approval", planned["state_detail"]
    for item in planned["plan"]:
        assert [(p["package"], p["current"], p["candidate"], p["security"]) for p in item["packages"]] == [(PACKAGE, "1.0-1", "2.0-1", True)]
    assert [rpm_version(host) for host in fleet.hosts] == ["1.0-1", "1.0-1"], "check mode changed nothing"
    approver_api.call("POST", f"/api/v1/rollouts/{rollout['id']}/approve", {})
    done = wait_rollout(api, rollout["id"], lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), what="the dnf rollout")
    assert done["state"] == "succeeded", done["state_detail"]
    assert [rpm_version(host) for host in fleet.hosts] == ["2.0-1", "2.0-1"]
    assert all(r["packages"] == [{"package": PACKAGE, "from": "1.0-1", "to": "2.0-1"}] for r in done["results"]), done["results"]

    # dnf can go back: the repository still offers 1.0-1, so the rollback plans a downgrade and carries it out.
    status, rollback = api.call("POST", f"/api/v1/rollouts/{rollout['id']}/rollback")
    assert status == 201 and rollback["packages"] == [f"{PACKAGE}=1.0-1"], rollback
    planned = wait_rollout(api, rollback["id"], lambda r: r["state"] != "planning")
    assert planned["state"] == "awaiting_approval", planned["state_detail"]
    assert all([(p["current"], p["candidate"]) for p in item["packages"]] == [("2.0-1", "1.0-1")] for item in planned["plan"]), planned["plan"]
    approver_api.call("POST", f"/api/v1/rollouts/{rollback['id']}/approve", {})
    back = wait_rollout(api, rollback["id"], lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), what="the rollback")
    assert back["state"] == "succeeded", back["state_detail"]
    assert [rpm_version(host) for host in fleet.hosts] == ["1.0-1", "1.0-1"]

    # A pin no repository offers is refused in the plan, saying why.
    status, missing = api.call("POST", "/api/v1/rollouts", {
        "title": "Pin to a version nobody has", "what": "packages", "packages": [f"{PACKAGE}=0.9-1"], "targets": ["dfleet"]})
    assert status == 201, missing
    failed = wait_rollout(api, missing["id"], lambda r: r["state"] != "planning")
    assert failed["state"] == "plan_failed" and "no repository offers steward-test-pkg=0.9-1" in failed["state_detail"], failed["state_detail"]

    # Installing across the dnf hosts goes through a rollout too, and its rollback removes the package again.
    status, install = api.call("POST", "/api/v1/rollouts", {
        "title": "Install on dfleet", "what": "install", "packages": [EXTRA], "targets": ["dfleet"], "settle_seconds": 1})
    assert status == 201, install
    planned = wait_rollout(api, install["id"], lambda r: r["state"] != "planning")
    assert planned["state"] == "awaiting_approval", planned["state_detail"]
    assert all([(p["package"], p["current"], p["candidate"]) for p in item["packages"]] == [(EXTRA, "", "1.0-1")] for item in planned["plan"])
    approver_api.call("POST", f"/api/v1/rollouts/{install['id']}/approve", {})
    done = wait_rollout(api, install["id"], lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), what="the dnf install")
    assert done["state"] == "succeeded", done["state_detail"]
    assert [rpm_version(host, EXTRA) for host in fleet.hosts] == ["1.0-1", "1.0-1"]
    status, removal = api.call("POST", f"/api/v1/rollouts/{install['id']}/rollback")
    assert status == 201 and removal["what"] == "remove" and removal["packages"] == [EXTRA], removal
    planned = wait_rollout(api, removal["id"], lambda r: r["state"] != "planning")
    assert all([(p["current"], p["candidate"]) for p in item["packages"]] == [("1.0-1", "")] for item in planned["plan"]), planned
    approver_api.call("POST", f"/api/v1/rollouts/{removal['id']}/approve", {})
    gone = wait_rollout(api, removal["id"], lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), what="the dnf removal")
    assert gone["state"] == "succeeded", gone["state_detail"]
    assert [rpm_version(host, EXTRA) for host in fleet.hosts] == ["absent", "absent"]
