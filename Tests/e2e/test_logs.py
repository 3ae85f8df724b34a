"""Central logs from a fleet host that boots a real systemd (its own journald): lines written with logger appear in
Steward with their host, unit, priority and time; after Steward is killed with SIGKILL and started again, and after
the host's sshd was stopped for a while, every line is there exactly once. Then the logs page in a browser."""
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fleet"))
from fleet import Fleet  # noqa: E402

from conftest import Api, _binary, _free_port, make_token, start_steward, steward_environment, stop_steward, wait_job  # noqa: E402
from test_services import enrol  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root")
INTERVAL = 2  # this module's own Steward reads journals every 2 s
SESSION_INTERVAL = 5  # the session's Steward, as conftest sets it
FAST = {"STEWARD_LOGS_INTERVAL_SECONDS": str(INTERVAL)}  # alerts are evaluated every 2 s in every test Steward


@pytest.fixture(scope="module")
def own_steward(account):
    """A Steward of this module's own, so it can be killed; the tests' account is its admin."""
    with tempfile.TemporaryDirectory(prefix="steward-logs-") as temp:
        data = pathlib.Path(temp) / "data"
        subprocess.run([str(_binary()), "role", "grant", "admin", "--user", account.name, "--data", str(data)],
                       check=True, env=steward_environment(), cwd="/", capture_output=True)
        port = _free_port()
        running = {"steward": start_steward(data, pathlib.Path(temp) / "steward.log", port, FAST)}
        try:
            yield running, data, port, pathlib.Path(temp)
        finally:
            stop_steward(running["steward"])


@pytest.fixture(scope="module")
def journal_host(own_steward, steward):
    """One booted host, trusted by this module's Steward and by the session's (for the browser test)."""
    running, data, port, temp = own_steward
    keys = (data / "ssh/id_ed25519.pub").read_text() + (steward.data / "ssh/id_ed25519.pub").read_text()
    with Fleet(1, authorized_key=keys, prefix="logs", boots_systemd=True) as fleet:
        yield fleet.hosts[0]


def count(api, host, text, priority=7):
    """How many lines of the host contain `text`, over every page."""
    seen = []
    before = None
    while True:
        query = {"host": host, "q": text, "priority": priority, "range": "24h", "limit": 1000}
        if before:
            query["before"] = before
        status, page = api.call("GET", "/api/v1/logs?" + urllib.parse.urlencode(query))
        assert status == 200, page
        seen += page["items"]
        before = page["next"]
        if not before:
            return seen


def wait_for(api, host, text, expected, timeout):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        lines = count(api, host, text)
        if len(lines) >= expected:
            return lines
        time.sleep(0.5)
    raise AssertionError(f"{len(lines)} of {expected} lines with {text!r} after {timeout} s")


def write(host, tag, number, priority="user.err", unit=None):
    for index in range(number):
        argv = ["logger", "-t", "steward-logtest", "-p", priority, f"{tag} line {index:03d}"]
        if unit:
            # A unit's standard output: journald knows its unit from the stream itself (a logger that has already
            # exited when journald reads its message may be filed under no unit).
            argv = ["systemd-run", "--quiet", "--wait", f"--unit={unit}-{index}", "-p", "SyslogIdentifier=steward-logtest",
                    "-p", f"SyslogLevel={priority.split('.')[1]}", "--", "/bin/echo", f"{tag} line {index:03d}"]
        host.run(*argv)


def test_journal_lines_arrive_once_through_a_kill_and_an_outage(own_steward, journal_host, account):
    running, data, port, temp = own_steward
    api = Api(running["steward"], make_token(data, account.name))
    host = journal_host
    enrol(api, host)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, sources = api.call("GET", "/api/v1/logs/sources")
        mine = [s for s in sources["items"] if s["host"] == host.name]
        if mine and mine[0]["read_at"] and not mine[0]["error"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the host's journal was never read: {sources}")

    # Lines appear within two collection intervals, with their host, priority, program and time.
    started = time.time()
    write(host, "alpha", 40)
    write(host, "unitline", 2, priority="daemon.warning", unit="logtest")
    lines = wait_for(api, host.name, "alpha line", 40, timeout=2 * INTERVAL + 8)
    assert sorted(line["message"] for line in lines) == [f"alpha line {i:03d}" for i in range(40)]
    assert {(line["host"], line["priority"], line["priority_name"], line["identifier"]) for line in lines} == {
        (host.name, 3, "err", "steward-logtest")}
    stamps = [time.mktime(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone for line in lines]
    assert all(started - 5 <= stamp <= time.time() + 5 for stamp in stamps), (started, stamps[:3])
    wait_for(api, host.name, "unitline line", 2, timeout=2 * INTERVAL + 8)
    # systemd's own lines about the transient units quote the command line too; the program's lines are the two.
    units = [line for line in count(api, host.name, "unitline line") if line["identifier"] == "steward-logtest"]
    assert sorted(line["unit"] for line in units) == ["logtest-0.service", "logtest-1.service"]
    assert all(line["priority"] == 4 for line in units)
    status, page = api.call("GET", "/api/v1/logs?" + urllib.parse.urlencode(
        {"host": host.name, "unit": "logtest-1.service", "priority": 7, "range": "15m"}))
    assert "unitline line 001" in [line["message"] for line in page["items"]], page["items"]

    # SIGKILL: lines written while Steward is down are read after the restart, from the saved cursor.
    running["steward"].process.send_signal(signal.SIGKILL)
    running["steward"].process.wait(timeout=10)
    write(host, "bravo", 30)
    running["steward"] = start_steward(data, temp / "steward.log", port, FAST)
    api = Api(running["steward"], make_token(data, account.name))
    wait_for(api, host.name, "bravo line", 30, timeout=2 * INTERVAL + 15)

    # sshd stopped for a while, its open sessions too (Steward's shared connection among them): the reads fail (and
    # say so), then catch up.
    host.run("systemctl", "stop", "ssh.service")
    host.run("pkill", "-x", "sshd", check=False)
    try:
        write(host, "charlie", 25)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, sources = api.call("GET", "/api/v1/logs/sources")
            mine = [s for s in sources["items"] if s["host"] == host.name][0]
            if mine["error"]:
                break
            time.sleep(0.5)
        assert mine["error"], "a failed read is reported"
    finally:
        host.run("systemctl", "start", "ssh.service")
    wait_for(api, host.name, "charlie line", 25, timeout=2 * INTERVAL + 20)
    time.sleep(2 * INTERVAL + 1)
    # Exactly once, counted.
    assert len(count(api, host.name, "alpha line")) == 40
    assert len(count(api, host.name, "bravo line")) == 30
    assert len(count(api, host.name, "charlie line")) == 25
    status, sources = api.call("GET", "/api/v1/logs/sources")
    assert not [s for s in sources["items"] if s["host"] == host.name][0]["error"]


def test_the_built_in_log_rule_fires_on_a_password_guessing_run_and_links_to_its_lines(own_steward, journal_host, account):
    """Lines as sshd writes them on a real host (through its journal, as the auth facility) make the pack's SSH rule
    warn with the count; its logs link shows those lines."""
    running, data, port, temp = own_steward
    api = Api(running["steward"], make_token(data, account.name))
    host = journal_host
    enrol(api, host)
    for index in range(25):
        host.run("logger", "-t", "sshd", "-p", "auth.info",
                 f"Failed password for invalid user guest{index} from 203.0.113.{index} port 4{index:03d} ssh2")
    deadline = time.monotonic() + 60
    mine = []
    while time.monotonic() < deadline:
        status, alerts = api.call("GET", "/api/v1/alerts")
        mine = [a for a in alerts["items"] if a["rule"] == "SSH authentication failures" and a["host"] == host.name]
        if mine and mine[0]["state"] == "firing":
            break
        time.sleep(1)
    assert mine and mine[0]["state"] == "firing" and mine[0]["severity"] == "warning", mine
    assert mine[0]["value"] >= 25 and "failed SSH logins in 10 minutes" in mine[0]["summary"], mine
    # The alerts page links to the counted lines on that host.
    status, rules = api.call("GET", "/api/v1/alerts/rules")
    rule = [r for r in rules["items"] if r["builtin"] == "log_ssh_auth_failures"][0]
    query = dict(urllib.parse.parse_qsl(rule["log_query"]))
    status, page = api.call("GET", "/api/v1/logs?" + urllib.parse.urlencode(
        {"host": host.name, "range": "1h", "priority": query["priority"], "regex": query["regex"], "limit": 1000}))
    assert len([line for line in page["items"] if "guest" in line["message"]]) == 25, page


def test_the_logs_page_filters_searches_and_links_to_the_host(signed_in, steward, api, journal_host):
    browser = signed_in
    host = journal_host
    host_id = enrol(api, host)
    write(host, "delta", 3, priority="user.notice")
    write(host, "echo", 2, priority="user.err")
    deadline = time.monotonic() + 2 * SESSION_INTERVAL + 15
    while time.monotonic() < deadline and (len(count(api, host.name, "delta line")) < 3 or len(count(api, host.name, "echo line")) < 2):
        time.sleep(0.5)
    browser.get(f"{steward.base_url}/logs")
    # Filters are a form whose values stay in the address.
    Select(browser.find_element(By.ID, "log-host")).select_by_visible_text(host.name)
    Select(browser.find_element(By.ID, "log-priority")).select_by_value("5")
    browser.find_element(By.ID, "log-text").send_keys("delta line")
    browser.find_element(By.CSS_SELECTOR, "#log-filters button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "q=delta" in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#log-lines tbody tr")
    assert [row.find_element(By.CSS_SELECTOR, "summary").text for row in rows] == [f"delta line {i:03d}" for i in (2, 1, 0)]
    assert "journalctl --priority=0..5" in browser.find_element(By.ID, "journalctl-command").text
    assert browser.find_element(By.CSS_SELECTOR, "#log-histogram svg")
    # A line's fields.
    rows[0].find_element(By.CSS_SELECTOR, "summary").click()
    assert "_HOSTNAME" in rows[0].find_element(By.CSS_SELECTOR, "dl.fields").text
    # Error and worse only: the notices go, the errors stay.
    Select(browser.find_element(By.ID, "log-priority")).select_by_value("3")
    browser.find_element(By.ID, "log-text").clear()
    browser.find_element(By.ID, "log-text").send_keys("line")
    browser.find_element(By.CSS_SELECTOR, "#log-filters button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "priority=3" in d.current_url)
    messages = [r.find_element(By.CSS_SELECTOR, "summary").text for r in browser.find_elements(By.CSS_SELECTOR, "#log-lines tbody tr")]
    assert "echo line 001" in messages and not any(m.startswith("delta") for m in messages)
    # Follow: a line written now shows at the top without reloading; paused, the stream stops.
    browser.find_element(By.ID, "log-follow").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "log-follow").get_attribute("aria-pressed") == "true")
    write(host, "foxtrot", 1, priority="user.err")
    WebDriverWait(browser, 2 * SESSION_INTERVAL + 20).until(
        lambda d: "foxtrot line 000" in d.find_element(By.CSS_SELECTOR, "#log-lines tbody tr").text)
    assert "followed" in browser.find_element(By.CSS_SELECTOR, "#log-lines tbody tr").get_attribute("class")
    browser.find_element(By.ID, "log-follow").click()
    assert browser.find_element(By.ID, "log-follow-status").text == "paused"
    # The host link opens the host.
    browser.find_element(By.CSS_SELECTOR, "#log-lines tbody tr:not(.followed) a").click()
    WebDriverWait(browser, 15).until(lambda d: d.current_url.rstrip("/").endswith(f"/hosts/{host_id}"))
    # A job on the host: its page links to the lines logged around it, with the job marked on the histogram.
    status, job = api.call("POST", "/api/v1/adhoc", {"command": ["logger", "-t", "steward-logtest", "-p", "user.err", "golf line from a job"],
                                                     "targets": [host.name]})
    assert status in (201, 202), job
    wait_job(api, job["id"])
    browser.get(f"{steward.base_url}/jobs/{job['id']}")
    browser.find_element(By.ID, "job-logs").click()
    WebDriverWait(browser, 15).until(lambda d: "/logs?" in d.current_url and "range=custom" in d.current_url)
    assert f"host={host.name}" in browser.current_url
    WebDriverWait(browser, 2 * SESSION_INTERVAL + 20, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.refresh() or "golf line from a job" in d.find_element(By.ID, "log-lines").text)
    marks = browser.find_elements(By.CSS_SELECTOR, "#log-histogram svg a")
    assert any(f"/jobs/{job['id']}" == mark.get_dom_attribute("href") for mark in marks), [m.get_dom_attribute("href") for m in marks]
