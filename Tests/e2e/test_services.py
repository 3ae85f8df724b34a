"""Services in a real browser: the panel host's real state (its units, or why systemctl cannot list them here), and a
fleet host that boots a real systemd, whose units are started, stopped and enabled from the pages and checked with
the host's own systemctl."""
import functools
import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fleet"))
from fleet import Fleet  # noqa: E402

from conftest import Api, _binary, job_log, wait_job  # noqa: E402


def test_reading_the_panel_hosts_services_shows_what_its_systemctl_says(signed_in, steward, api):
    browser = signed_in
    probe = subprocess.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager"], capture_output=True, text=True)
    status, hosts = api.call("GET", "/api/v1/hosts")
    localhost = next(host for host in hosts["items"] if host["name"] == "localhost")
    browser.get(f"{steward.base_url}/hosts/{localhost['id']}")
    browser.find_element(By.ID, "host-services-link").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Services on localhost")
    assert browser.find_elements(By.ID, "services-never-read")
    browser.find_element(By.ID, "refresh-services").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "services-as-of"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#services-table tbody tr")
    if probe.returncode == 0:
        services = [line.split()[0] for line in probe.stdout.splitlines() if line.split() and line.split()[0].endswith(".service")]
        shown = {row.find_element(By.TAG_NAME, "code").text for row in rows if row.find_elements(By.TAG_NAME, "code")}
        assert set(services) <= shown, (services, shown)
    else:
        first = probe.stderr.strip().splitlines()[0]
        assert first in browser.find_element(By.ID, "services-error").text
        assert [row.text for row in rows] == ["No unit matches."]
    status, reading = api.call("GET", f"/api/v1/hosts/{localhost['id']}/services?state=all&type=all")
    assert status == 200 and reading["read_at"], reading
    status, fleet = api.call("GET", "/api/v1/services?unit=ssh.service")
    if probe.returncode == 0:
        assert status == 200 and ("localhost" in fleet["lacking"] or any(item["host"] == "localhost" for item in fleet["items"]))
    else:
        # A host whose every reading failed has no units to compare: it is listed as not read, not as lacking the unit.
        assert status == 200 and "localhost" in fleet["unread"] and "localhost" not in fleet["lacking"], fleet


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root")

UNIT = """[Unit]
Description=Demo {name} for Steward's services test

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""
TIMER = """[Unit]
Description=Demo tick timer

[Timer]
OnCalendar=hourly

[Install]
WantedBy=timers.target
"""


@pytest.fixture(scope="module")
def systemd_host(steward):
    """One fleet host that boots a real systemd (systemd-nspawn), with two demo services and a timer of its own."""
    public_key = (steward.data / "ssh" / "id_ed25519.pub").read_text()
    with Fleet(1, authorized_key=public_key, prefix="sysd", boots_systemd=True) as running:
        host = running.hosts[0]
        # Where packages put their units: a unit file in /etc/systemd/system could not be masked (mask writes there).
        for name in ("alpha", "beta"):
            (host.root / f"usr/lib/systemd/system/demo-{name}.service").write_text(UNIT.format(name=name))
        (host.root / "etc/systemd/system/ticker.timer").write_text(TIMER)
        (host.root / "etc/systemd/system/ticker.service").write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
        host.run("systemctl", "daemon-reload")
        host.run("systemctl", "start", "ticker.timer")
        yield host


def unit_state(host, unit):
    active = host.run("systemctl", "is-active", unit, check=False).stdout.strip()
    enabled = host.run("systemctl", "is-enabled", unit, check=False).stdout.strip()
    return active, enabled


def act_in_browser(browser, steward, api, action, confirm=None):
    """Press the action's button on the open unit page; returns the finished job."""
    form = browser.find_element(By.ID, f"unit-action-{action}")
    if confirm is not None:
        form.find_element(By.NAME, "confirm").send_keys(confirm)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "/jobs/" in d.current_url)
    job = wait_job(api, int(browser.current_url.rstrip("/").split("/jobs/")[1].split("?")[0]))
    assert job["state"] == "succeeded", (job, job_log(api, job["id"]))
    return job


@needs_root
def test_services_on_a_host_that_boots_systemd_start_stop_and_enable_the_unit_asked_for(signed_in, steward, api, systemd_host):
    browser = signed_in
    host = systemd_host
    host_id = enrol(api, host)
    browser.get(f"{steward.base_url}/hosts/{host_id}/services")
    browser.find_element(By.ID, "refresh-services").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "services-as-of"))
    assert not browser.find_elements(By.ID, "services-error"), browser.find_element(By.ID, "services-error").text
    # What the host's own systemd lists is what the page lists.
    listed = host.run("systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager", "--type=service").stdout.split("\n")
    names = {line.split()[0] for line in listed if line.split()}
    shown = {code.text for code in browser.find_elements(By.CSS_SELECTOR, "#services-table tbody code")}
    assert names <= shown, names - shown
    assert {"demo-alpha.service", "demo-beta.service", "ssh.service"} <= shown

    # The timer's next run is shown.
    browser.get(f"{steward.base_url}/hosts/{host_id}/services?type=timer&state=all")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#services-table tbody tr") if "ticker.timer" in r.text)
    assert "next " in row.text, row.text

    # Two rows with the same actions: the one clicked is the one changed.
    browser.get(f"{steward.base_url}/hosts/{host_id}/services?q=demo-&type=service")
    rows = browser.find_elements(By.CSS_SELECTOR, "#services-table tbody tr")
    assert [r.find_element(By.TAG_NAME, "code").text for r in rows] == ["demo-alpha.service", "demo-beta.service"]
    rows[1].find_element(By.LINK_TEXT, "demo-beta.service").click()
    WebDriverWait(browser, 15).until(lambda d: "demo-beta.service" in d.find_element(By.TAG_NAME, "h1").text)
    assert unit_state(host, "demo-beta.service") == ("inactive", "disabled")
    job = act_in_browser(browser, steward, api, "start")
    assert "ansible.builtin.systemd_service: name=demo-beta.service state=started" in job_log(api, job["id"])
    assert unit_state(host, "demo-beta.service")[0] == "active"
    assert unit_state(host, "demo-alpha.service")[0] == "inactive"

    # The unit page shows the host's own view of it now, with its journal.
    browser.get(f"{steward.base_url}/hosts/{host_id}/services/demo-beta.service")
    properties = browser.find_element(By.ID, "unit-properties").text
    assert "active" in properties and "/lib/systemd/system/demo-beta.service" in properties, properties
    assert "Demo beta" in browser.find_element(By.ID, "unit-journal").text

    act_in_browser(browser, steward, api, "enable")
    assert unit_state(host, "demo-beta.service") == ("active", "enabled")
    assert unit_state(host, "demo-alpha.service") == ("inactive", "disabled")
    browser.get(f"{steward.base_url}/hosts/{host_id}/services/demo-beta.service")
    pid = host.run("systemctl", "show", "-p", "MainPID", "--value", "demo-beta.service").stdout.strip()
    act_in_browser(browser, steward, api, "restart")
    assert host.run("systemctl", "show", "-p", "MainPID", "--value", "demo-beta.service").stdout.strip() not in ("0", pid)
    browser.get(f"{steward.base_url}/hosts/{host_id}/services/demo-beta.service")
    act_in_browser(browser, steward, api, "stop")
    assert unit_state(host, "demo-beta.service") == ("inactive", "enabled")
    # The reading was taken again after the job: the list says what the host says.
    status, reading = api.call("GET", f"/api/v1/hosts/{host_id}/services?q=demo-beta")
    assert [(u["active"], u["enabled"]) for u in reading["units"]] == [("inactive", "enabled")], reading

    for action, enabled in (("disable", "disabled"), ("mask", "masked"), ("unmask", "disabled")):
        browser.get(f"{steward.base_url}/hosts/{host_id}/services/demo-beta.service")
        act_in_browser(browser, steward, api, action)
        assert unit_state(host, "demo-beta.service")[1] == enabled, action
    assert unit_state(host, "demo-alpha.service") == ("inactive", "disabled")
    # Reload: demo-beta has no ExecReload, so the job fails in systemd's words and the unit keeps running.
    host.run("systemctl", "start", "demo-beta.service")
    browser.get(f"{steward.base_url}/hosts/{host_id}/services/demo-beta.service")
    browser.find_element(By.ID, "unit-action-reload").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "/jobs/" in d.current_url)
    reloaded = wait_job(api, int(browser.current_url.rstrip("/").split("/jobs/")[1].split("?")[0]))
    assert reloaded["state"] == "failed" and "reload" in job_log(api, reloaded["id"]).lower(), reloaded
    assert unit_state(host, "demo-beta.service")[0] == "active"
    host.run("systemctl", "stop", "demo-beta.service")
    host.run("systemctl", "enable", "demo-beta.service")
    api.call("POST", f"/api/v1/hosts/{host_id}/services/refresh")

    # Stopping sshd wants its name typed; a wrong name changes nothing.
    browser.get(f"{steward.base_url}/hosts/{host_id}/services/ssh.service")
    form = browser.find_element(By.ID, "unit-action-stop")
    form.find_element(By.NAME, "confirm").send_keys("ssh")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".flash-error"))
    assert "type the unit's name" in browser.find_element(By.CSS_SELECTOR, ".flash-error").text
    assert unit_state(host, "ssh.service")[0] == "active"


@needs_root
def test_an_operator_may_not_touch_sshd_and_a_name_the_host_never_reported_is_refused(steward, account, systemd_host, api):
    host_id = enrol(api, systemd_host)
    status, reading = api.call("POST", f"/api/v1/hosts/{host_id}/services/refresh")
    assert status == 200 and reading["error"] is None, reading
    token = subprocess.run([str(_binary()), "token", "create", "--user", account.name, "--name", "operator", "--role", "operator",
                            "--data", str(steward.data)], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    operator = Api(steward, token)
    status, problem = operator.call("POST", f"/api/v1/hosts/{host_id}/services/ssh.service/actions", {"action": "stop", "confirm": "ssh.service"})
    assert status == 403, problem
    status, problem = operator.call("POST", f"/api/v1/hosts/{host_id}/services/nosuch.service/actions", {"action": "start"})
    assert status == 422 and "unit" in problem["errors"], problem
    status, problem = operator.call("POST", f"/api/v1/hosts/{host_id}/services/demo-alpha.service/actions", {"action": "start; reboot"})
    assert status == 422 and "action" in problem["errors"], problem
    status, detail = operator.call("GET", f"/api/v1/hosts/{host_id}/services/demo-alpha.service")
    assert status == 200 and detail["properties"]["LoadState"] == "loaded", detail
    assert unit_state(systemd_host, "ssh.service")[0] == "active"
    assert unit_state(systemd_host, "demo-alpha.service")[0] == "inactive"


def enrol(api, host):
    """The host in Steward with its key trusted, as an operator would do it; returns its id."""
    status, hosts = api.call("GET", "/api/v1/hosts")
    known = {h["name"]: h["id"] for h in hosts["items"]}
    host_id = known.get(host.name)
    if host_id is None:
        status, created = api.call("POST", "/api/v1/hosts", {
            "name": host.name, "address": host.address, "ssh_port": host.port, "ssh_user": host.user, "become": "sudo"})
        assert status == 201, created
        host_id = created["id"]
    status, verdict = api.call("POST", f"/api/v1/hosts/{host_id}/host-key/scan")
    if verdict["status"] != "trusted":
        api.call("POST", f"/api/v1/hosts/{host_id}/host-key/trust", {"fingerprint": verdict["presented"]})
    return host_id


@needs_root
def test_a_process_picked_from_two_alike_rows_gets_the_signal_and_the_other_keeps_running(signed_in, steward, api, systemd_host):
    browser = signed_in
    host = systemd_host
    host_id = enrol(api, host)
    for seconds in ("86001", "86002"):
        host.run("systemd-run", f"--unit=sleeper-{seconds}", "/bin/sleep", seconds)
    browser.get(f"{steward.base_url}/hosts/{host_id}/processes")
    browser.find_element(By.ID, "refresh-processes").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "processes-as-of"))
    browser.get(f"{steward.base_url}/hosts/{host_id}/processes?q=/bin/sleep 8600")
    rows = browser.find_elements(By.CSS_SELECTOR, "#processes-table tbody tr")
    commands = {row.find_element(By.CSS_SELECTOR, "code.command").text: row.get_attribute("data-pid") for row in rows}
    assert set(commands) == {"/bin/sleep 86001", "/bin/sleep 86002"}, commands
    # Steward's own SSH session on the host is never offered a signal.
    browser.get(f"{steward.base_url}/hosts/{host_id}/processes?q=sshd: steward")
    for row in browser.find_elements(By.CSS_SELECTOR, "#processes-table tbody tr"):
        assert not row.find_elements(By.TAG_NAME, "button") and "protected" in row.text, row.text
    browser.get(f"{steward.base_url}/hosts/{host_id}/processes?q=/bin/sleep 8600")
    target = commands["/bin/sleep 86002"]
    browser.find_element(By.ID, f"term-{target}").click()
    WebDriverWait(browser, 15).until(lambda d: "/jobs/" in d.current_url)
    job = wait_job(api, int(browser.current_url.rstrip("/").split("/jobs/")[1].split("?")[0]))
    log = job_log(api, job["id"])
    assert job["state"] == "succeeded", (job, log)
    # The job log, which viewers read, names the program only; the audit row below keeps the whole command line.
    assert f"argv=[kill, -s, TERM, {target}]" in log and "(/bin/sleep …)" in log and "sleep 86002" not in log, log
    alive = host.run("pgrep", "-f", "^/bin/sleep 8600", check=False).stdout.split()
    assert alive == [commands["/bin/sleep 86001"]], alive
    # KILL on the other row, after a fresh reading.
    browser.get(f"{steward.base_url}/hosts/{host_id}/processes")
    browser.find_element(By.ID, "refresh-processes").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "processes-as-of"))
    browser.get(f"{steward.base_url}/hosts/{host_id}/processes?q=/bin/sleep 8600")
    job = click_and_wait(browser, api, f"kill-{commands['/bin/sleep 86001']}")
    assert f"argv=[kill, -s, KILL, {commands['/bin/sleep 86001']}]" in job_log(api, job["id"])
    assert host.run("pgrep", "-f", "^/bin/sleep 8600", check=False).stdout.split() == []
    status, events = api.call("GET", "/api/v1/audit?action=process.signal")
    assert status == 200 and "/bin/sleep 86002" in json.dumps(events["items"][:2]), events


@needs_root
def test_the_overview_of_a_systemd_host_says_what_the_host_says(signed_in, steward, api, systemd_host):
    browser = signed_in
    host = systemd_host
    host_id = enrol(api, host)
    host.run("systemctl", "start", "demo-alpha.service")
    api.call("POST", f"/api/v1/hosts/{host_id}/services/refresh")
    host.run("touch", "/run/reboot-required")
    browser.get(f"{steward.base_url}/hosts/{host_id}/overview")
    browser.find_element(By.ID, "refresh-overview").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "overview-as-of"))
    facts = browser.find_element(By.ID, "overview-facts").text
    release = host.run("cat", "/etc/os-release").stdout
    pretty = next(line.split("=", 1)[1].strip('"') for line in release.splitlines() if line.startswith("PRETTY_NAME="))
    assert pretty in facts and host.run("uname", "-srm").stdout.strip() in facts, facts
    assert "Reboot required\nyes" in facts, facts
    ports = browser.find_element(By.ID, "overview-listening").text
    assert f"127.0.0.1:{host.port}" in ports and "sshd (" in ports, ports
    assert "/" in browser.find_element(By.ID, "overview-filesystems").text
    assert "lo" in browser.find_element(By.ID, "overview-interfaces").text
    status, overview = api.call("GET", f"/api/v1/hosts/{host_id}/overview")
    assert status == 200 and overview["reboot_required"] is True and overview["errors"] == {}, overview
    assert overview["cpus"] == int(host.run("nproc").stdout), overview
    host.run("rm", "-f", "/run/reboot-required")

    # Disks and network, read-only, as the host's own tools say.
    browser.get(f"{steward.base_url}/hosts/{host_id}/system")
    browser.find_element(By.ID, "refresh-system").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "system-as-of"))
    status, system = api.call("GET", f"/api/v1/hosts/{host_id}/disks-network")
    routes = json.loads(host.run("ip", "-j", "route", "show").stdout)
    assert status == 200 and len(system["routes"]) == len(routes), system
    assert "/" in [m["target"] for m in system["mounts"]], system["mounts"]
    assert "nftables" in system["errors"] or system["nftables"], system["errors"]
    assert "/" in browser.find_element(By.ID, "system-mounts").text


def build_deb(workdir, name):
    root = workdir / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / f"usr/share/{name}").mkdir(parents=True)
    (root / f"usr/share/{name}/README").write_text(f"{name} for Steward's packages test\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: Steward tests <tests@localhost>\n"
        f"Section: misc\nPriority: optional\nDescription: {name}, a package for Steward's packages test\n")
    output = workdir / f"{name}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(output)], check=True, capture_output=True)
    return output


@pytest.fixture(scope="module")
def demo_repository(tmp_path_factory):
    """A flat apt repository with two small packages, built here and served on 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("steward-demo-apt")
    repo = workdir / "repo"
    repo.mkdir()
    for name in ("steward-demo-one", "steward-demo-two"):
        deb = build_deb(workdir, name)
        (repo / deb.name).write_bytes(deb.read_bytes())
    (repo / "Packages").write_text(
        subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo, check=True, capture_output=True, text=True).stdout)
    (repo / "Release").write_text(
        subprocess.run(["apt-ftparchive", "release", "."], cwd=repo, check=True, capture_output=True, text=True).stdout)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(repo))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def dpkg_state(host, name):
    out = host.run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", name, check=False)
    return out.stdout.strip() if out.returncode == 0 else "absent"


def click_and_wait(browser, api, element_id):
    browser.find_element(By.ID, element_id).click()
    WebDriverWait(browser, 15).until(lambda d: "/jobs/" in d.current_url)
    job = wait_job(api, int(browser.current_url.rstrip("/").split("/jobs/")[1].split("?")[0]), timeout=300)
    assert job["state"] == "succeeded", (job, job_log(api, job["id"]))
    return job


@needs_root
def test_packages_are_searched_installed_held_and_removed_on_the_host_from_a_repository_made_here(
        signed_in, steward, api, systemd_host, demo_repository):
    browser = signed_in
    host = systemd_host
    host_id = enrol(api, host)
    (host.root / "etc/apt/sources.list").write_text("")
    (host.root / "etc/apt/sources.list.d/steward-demo.list").write_text(f"deb [trusted=yes] {demo_repository} ./\n")
    host.run("apt-get", "update", "-q")
    browser.get(f"{steward.base_url}/hosts/{host_id}/packages")
    browser.find_element(By.ID, "refresh-packages").click()
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.ID, "packages-as-of"))
    installed_here = host.run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}\n").stdout.split("\n")
    assert f": {sum(1 for s in installed_here if s.strip() in ('ii', 'hi'))} installed" in browser.find_element(By.ID, "packages-as-of").text

    # Search the host's own repositories; of two results, install the second.
    browser.find_element(By.ID, "package-search").send_keys("steward-demo")
    browser.find_element(By.ID, "package-search-button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "search-results"))
    names = [code.text for code in browser.find_elements(By.CSS_SELECTOR, "#search-results tbody code")]
    assert names == ["steward-demo-one", "steward-demo-two"], names
    job = click_and_wait(browser, api, "install-steward-demo-two")
    assert "name=steward-demo-two state=present" in job_log(api, job["id"])
    assert (dpkg_state(host, "steward-demo-two"), dpkg_state(host, "steward-demo-one")) == ("ii", "absent")
    status, created = api.call("POST", f"/api/v1/hosts/{host_id}/packages/actions", {"name": "steward-demo-one", "action": "install"})
    assert status == 202, created
    assert wait_job(api, created["id"], timeout=300)["state"] == "succeeded"
    assert dpkg_state(host, "steward-demo-one") == "ii"

    # Two rows of the installed list: hold, unhold and remove reach the one clicked.
    browser.get(f"{steward.base_url}/hosts/{host_id}/packages?q=steward-demo")
    rows = browser.find_elements(By.CSS_SELECTOR, "#packages-table tbody tr")
    assert [row.get_attribute("data-package") for row in rows] == ["steward-demo-one", "steward-demo-two"]
    click_and_wait(browser, api, "hold-steward-demo-one")
    assert host.run("apt-mark", "showhold").stdout.split() == ["steward-demo-one"]
    browser.get(f"{steward.base_url}/hosts/{host_id}/packages?q=steward-demo&held=true")
    assert [row.get_attribute("data-package") for row in browser.find_elements(By.CSS_SELECTOR, "#packages-table tbody tr")] == ["steward-demo-one"]
    click_and_wait(browser, api, "hold-steward-demo-one")  # now the Unhold button
    assert host.run("apt-mark", "showhold").stdout.split() == []
    browser.get(f"{steward.base_url}/hosts/{host_id}/packages?q=steward-demo")
    click_and_wait(browser, api, "remove-steward-demo-one")
    assert (dpkg_state(host, "steward-demo-one"), dpkg_state(host, "steward-demo-two")) == ("absent", "ii")

    # The fleet view: who has it at which version, and who lacks it.
    browser.get(f"{steward.base_url}/packages?name=steward-demo-two")
    table = browser.find_element(By.ID, "fleet-packages").text
    assert host.name in table and "1.0" in table, table
    status, fleet = api.call("GET", "/api/v1/packages?name=steward-demo-one")
    assert status == 200 and host.name in fleet["lacking"], fleet
    # A name that is not in the repositories is refused before anything runs.
    status, problem = api.call("POST", f"/api/v1/hosts/{host_id}/packages/actions", {"name": "steward-demo-three", "action": "install"})
    assert status == 422 and "not in" in problem["errors"]["name"], problem


def crontab(host, user):
    return host.run("crontab", "-l", "-u", user, check=False).stdout


def save_cron_form(browser, api, name, minute, hour, job, user="steward"):
    field = browser.find_element(By.ID, "cron-name")
    field.clear()
    field.send_keys(name)
    Select(browser.find_element(By.ID, "cron-user")).select_by_visible_text(user)
    for element_id, value in (("cron-minute", minute), ("cron-hour", hour), ("cron-job", job)):
        element = browser.find_element(By.ID, element_id)
        element.clear()
        element.send_keys(value)
    return click_and_wait(browser, api, "cron-save")


@needs_root
def test_cron_entries_are_created_changed_and_deleted_on_the_host_with_their_next_runs(signed_in, steward, api, systemd_host):
    browser = signed_in
    host = systemd_host
    host_id = enrol(api, host)
    host.run("ln", "-sf", "/usr/share/zoneinfo/Asia/Tokyo", "/etc/localtime")
    browser.get(f"{steward.base_url}/hosts/{host_id}/cron")
    browser.find_element(By.ID, "refresh-cron").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "cron-as-of"))
    assert "Asia/Tokyo" in browser.find_element(By.ID, "cron-as-of").text
    # /etc/crontab's own jobs are listed as the host has them.
    assert "run-parts" in browser.find_element(By.ID, "cron-table").text

    job = save_cron_form(browser, api, "report one", "15", "3", "/usr/bin/touch /tmp/report-one")
    assert "ansible.builtin.cron: name=report one user=steward minute=15 hour=3" in job_log(api, job["id"])
    browser.get(f"{steward.base_url}/hosts/{host_id}/cron")
    save_cron_form(browser, api, "report two", "45", "4", "/usr/bin/touch /tmp/report-two")
    lines = crontab(host, "steward")
    assert "#Ansible: report one\n15 3 * * * /usr/bin/touch /tmp/report-one" in lines, lines
    assert "#Ansible: report two\n45 4 * * * /usr/bin/touch /tmp/report-two" in lines, lines

    # The page lists both with five next runs in Tokyo time (15 3 * * * is 03:15 there).
    browser.get(f"{steward.base_url}/hosts/{host_id}/cron?q=/tmp/report")
    rows = browser.find_elements(By.CSS_SELECTOR, "#cron-table tbody tr")
    assert [row.get_attribute("data-task") for row in rows] == ["report one", "report two"]
    runs = rows[0].find_element(By.CLASS_NAME, "next-runs").text.split("\n")
    assert len(runs) == 5 and all(run.endswith("03:15 Asia/Tokyo") for run in runs), runs

    # Edit the first through its row, then delete the second through its row; each reaches only its own line.
    rows[0].find_element(By.LINK_TEXT, "Edit").click()
    WebDriverWait(browser, 15).until(lambda d: "Change the entry report one" in d.find_element(By.ID, "cron-form-heading").text)
    element = browser.find_element(By.ID, "cron-minute")
    element.clear()
    element.send_keys("20")
    click_and_wait(browser, api, "cron-save")
    browser.get(f"{steward.base_url}/hosts/{host_id}/cron?q=/tmp/report")
    browser.find_element(By.ID, "delete-report two").click()
    WebDriverWait(browser, 15).until(lambda d: "/jobs/" in d.current_url)
    assert wait_job(api, int(browser.current_url.rstrip("/").split("/jobs/")[1].split("?")[0]))["state"] == "succeeded"
    lines = crontab(host, "steward")
    assert "20 3 * * * /usr/bin/touch /tmp/report-one" in lines and "report-two" not in lines, lines

    # Across the fleet, filterable.
    status, fleet = api.call("GET", "/api/v1/cron?q=report-one")
    assert status == 200 and [item["host"] for item in fleet["items"]] == [host.name], fleet
    status, problem = api.call("POST", f"/api/v1/hosts/{host_id}/cron/entries", {"name": "x", "user": "steward", "job": "id", "minute": "61"})
    assert status == 422 and "minute" in problem["errors"], problem


@needs_root
def test_a_unit_kept_as_code_shows_its_drift_and_converges_on_the_host(signed_in, steward, api, account, systemd_host):
    browser = signed_in
    host = systemd_host
    host_id = enrol(api, host)
    host.run("systemctl", "disable", "--now", "demo-alpha.service", check=False)
    api.call("POST", f"/api/v1/hosts/{host_id}/services/refresh")
    browser.get(f"{steward.base_url}/services")
    browser.find_element(By.ID, "services-as-code-link").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Services as code")
    browser.find_element(By.ID, "desired-unit").send_keys("demo-alpha.service")
    browser.find_element(By.ID, "desired-apply-to").send_keys(host.name)
    browser.find_element(By.ID, "desired-message").send_keys("Keep demo-alpha running")
    browser.find_element(By.ID, "desired-save").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "section[data-path='services/demo-alpha.yml']"))
    section = browser.find_element(By.CSS_SELECTOR, "section[data-path='services/demo-alpha.yml']")
    assert "inactive, should be started" in section.text and "disabled, should be enabled" in section.text, section.text
    click_and_wait(browser, api, "converge-demo-alpha")
    assert unit_state(host, "demo-alpha.service") == ("active", "enabled")
    assert unit_state(host, "demo-beta.service")[0] == "inactive"
    status, listing = api.call("GET", "/api/v1/services/desired")
    item = next(i for i in listing["items"] if i["path"] == "services/demo-alpha.yml")
    assert item["drifting"] == [] and item["hosts"][0]["in_sync"] is True, item
    # The definition is a file in the config repo, committed by the person who saved it.
    status, history = api.call("GET", "/api/v1/config/history")
    commit = next(c for c in history["items"] if c["subject"] == "Keep demo-alpha running")
    assert commit["author"] == account.name, commit


def test_the_panel_hosts_own_pages_render_from_its_real_state(signed_in, steward, api):
    """The panel host read for real in the browser: overview, packages, processes, scheduled tasks, disks and network."""
    browser = signed_in
    status, hosts = api.call("GET", "/api/v1/hosts")
    local = next(host for host in hosts["items"] if host["name"] == "localhost")["id"]
    pages = [("overview", "refresh-overview", "overview-as-of"), ("packages", "refresh-packages", "packages-as-of"),
             ("processes", "refresh-processes", "processes-as-of"), ("cron", "refresh-cron", "cron-as-of"),
             ("system", "refresh-system", "system-as-of")]
    for page, button, marker in pages:
        browser.get(f"{steward.base_url}/hosts/{local}/{page}")
        browser.find_element(By.ID, button).click()
        WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.ID, marker))
    browser.get(f"{steward.base_url}/hosts/{local}/overview")
    assert subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip() in browser.find_element(By.ID, "overview-facts").text
    browser.get(f"{steward.base_url}/hosts/{local}/packages?q=libsqlite3-dev")
    rows = browser.find_elements(By.CSS_SELECTOR, "#packages-table tbody tr")
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libsqlite3-dev"], capture_output=True, text=True).stdout
    assert [row.get_attribute("data-package") for row in rows] == ["libsqlite3-dev"] and version in rows[0].text
    browser.get(f"{steward.base_url}/hosts/{local}/processes?limit=1000")
    pids = {row.get_attribute("data-pid") for row in browser.find_elements(By.CSS_SELECTOR, "#processes-table tbody tr")}
    assert str(steward.process.pid) in pids
    status, cron = api.call("GET", f"/api/v1/hosts/{local}/cron")
    assert status == 200 and cron["read_at"] and cron["time_zone"], cron
