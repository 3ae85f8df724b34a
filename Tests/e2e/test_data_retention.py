"""Retention as an administrator uses it: the storage page, a policy previewed and saved through the form (with the
typed confirmation and the grace window's take-back), the API, legal holds, and a kill -9 in the middle of an
enforcement run followed by a run that finishes the job on a real SQLite file."""
import os
import pathlib
import signal
import sqlite3
import subprocess
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import _binary, wait_job

ARTIFACTS = pathlib.Path("/tmp/steward-e2e-artifacts")
DAY_MS = 86_400_000


def submit(browser, locator, ready):
    """Click a submit button and wait until the next page shows what `ready` looks for."""
    browser.find_element(*locator).click()
    WebDriverWait(browser, 20).until(lambda d: ready(d))


def test_storage_page_shows_every_class_and_a_policy_change_can_be_previewed_confirmed_and_taken_back(api, steward, signed_in):
    browser = signed_in
    browser.get(f"{steward.base_url}/settings/storage")
    rows = {row.get_attribute("id"): row.text for row in browser.find_elements(By.CSS_SELECTOR, "#storage-table tbody tr")}
    for name in ("metrics", "job_logs", "audit", "alert_history", "notification_deliveries", "sessions", "host_facts", "logs", "backups"):
        assert f"class-{name}" in rows, rows
    # The defaults, in words.
    assert "raw samples 7 day(s); 1-minute rollups 90 day(s); 1-hour rollups 2 year(s)" in rows["class-metrics"]
    assert "full output 90 day(s); summary only 1 year(s); failed jobs' output 1 year(s)" in rows["class-job_logs"]
    assert "1 year(s)" in rows["class-audit"] and "3 year(s)" in rows["class-audit"]
    assert "delete as soon as they end" in rows["class-sessions"]
    assert "fills" in browser.find_element(By.ID, "projection").text or "Nothing grew" in browser.find_element(By.ID, "projection").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "storage.png"))

    # Old audit events to delete (inserting is allowed; deleting is only for the retention gate).
    database = sqlite3.connect(steward.data / "steward.db")
    now_ms = int(time.time() * 1000)
    with database:
        database.executemany("INSERT INTO audit_events (at, actor, action, target) VALUES (?, 'e2e', 'host.update', 'host:old')",
                             [(now_ms - 40 * DAY_MS - i * 1000,) for i in range(2000)])
    database.close()

    browser.get(f"{steward.base_url}/settings/storage/audit")
    browser.find_element(By.CSS_SELECTOR, "input[name=kind][value=time]").click()
    field = browser.find_element(By.ID, "field-max_age_days")
    field.clear()
    field.send_keys("30")
    browser.find_element(By.ID, "field-rules").clear()
    submit(browser, (By.ID, "preview-button"), lambda d: d.find_elements(By.ID, "preview-rows"))
    assert int(browser.find_element(By.ID, "preview-rows").text) >= 2000
    assert "type audit below" in browser.find_element(By.ID, "preview").text
    # Saving without the typed confirmation is refused when more than a quarter would go; nothing is saved.
    submit(browser, (By.ID, "save-button"), lambda d: d.find_elements(By.CSS_SELECTOR, ".field.has-error"))
    assert "type audit to confirm" in browser.find_element(By.CSS_SELECTOR, ".field.has-error").text
    assert api.call("GET", "/api/v1/retention/policies/audit")[1]["pending"] is None
    browser.find_element(By.ID, "field-confirm").send_keys("audit")
    submit(browser, (By.ID, "save-button"), lambda d: d.current_url.endswith("/settings/storage") and d.find_elements(By.CSS_SELECTOR, ".flash"))
    assert "takes effect at" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    status, record = api.call("GET", "/api/v1/retention/policies/audit")
    assert record["pending"]["max_age_days"] == 30 and record["policy"]["max_age_days"] == 365, record
    # Within the grace window nothing is deleted under the new policy, and the change can be taken back.
    status, job = api.call("POST", "/api/v1/retention/enforce")
    assert status == 202, job
    assert wait_job(api, job["id"])["state"] == "succeeded"
    database = sqlite3.connect(steward.data / "steward.db")
    assert database.execute("SELECT COUNT(*) FROM audit_events WHERE target = 'host:old'").fetchone()[0] == 2000
    database.close()
    browser.get(f"{steward.base_url}/settings/storage")
    assert "Changing to" in browser.find_element(By.ID, "class-audit").text
    # The page's help text also says "taken back": wait for the flash itself.
    submit(browser, (By.CSS_SELECTOR, "#class-audit form button"),
           lambda d: any("taken back" in flash.text for flash in d.find_elements(By.CSS_SELECTOR, ".flash")))
    assert "taken back" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert api.call("GET", "/api/v1/retention/policies/audit")[1]["pending"] is None
    status, events = api.get("/api/v1/audit", action="retention.undo")
    assert events["items"] and events["items"][0]["target"] == "retention:audit"

    # A legal hold placed and released through the page.
    browser.find_element(By.ID, "field-host").send_keys("localhost")
    browser.find_element(By.ID, "field-from").send_keys("2026-01-01")
    browser.find_element(By.ID, "field-reason").send_keys("case 2026-114")
    submit(browser, (By.CSS_SELECTOR, "#hold-form button[type=submit]"), lambda d: "is in force" in d.page_source)
    assert "case 2026-114" in browser.find_element(By.ID, "holds-table").text
    assert [h["reason"] for h in api.call("GET", "/api/v1/retention/holds")[1]["items"]] == ["case 2026-114"]
    browser.execute_script("document.querySelectorAll('#holds-table form').forEach(f => f.removeAttribute('data-confirm'))")
    submit(browser, (By.CSS_SELECTOR, "#holds-table form button"), lambda d: "released" in d.page_source)
    assert api.call("GET", "/api/v1/retention/holds")[1]["items"] == []


def test_api_policies_preview_storage_and_holds(api, steward):
    status, policies = api.call("GET", "/api/v1/retention/policies")
    assert status == 200 and [p["data_class"] for p in policies["items"]] == [
        "metrics", "job_logs", "audit", "alert_history", "notification_deliveries", "sessions", "host_facts", "logs"]
    status, problem = api.call("PUT", "/api/v1/retention/policies/metrics", {"kind": "tiered", "tier_days": [90, 7, 730]})
    assert status == 422 and "at least as long" in problem["errors"]["tier_days"]
    status, problem = api.call("PUT", "/api/v1/retention/policies/metrics", {"kind": "time", "max_age_days": 5})
    assert status == 422 and "kind" in problem["errors"]
    status, problem = api.call("PUT", "/api/v1/retention/policies/nothing", {"kind": "full"})
    assert status == 404
    status, preview = api.call("POST", "/api/v1/retention/policies/notification_deliveries/preview", {"kind": "time", "max_age_days": 1})
    assert status == 200 and {"rows", "bytes", "oldest", "newest", "stages", "share"} <= set(preview)
    status, storage = api.call("GET", "/api/v1/retention/storage")
    assert status == 200 and storage["database_bytes"] > 0 and storage["free_bytes"] > 0
    assert {c["data_class"] for c in storage["classes"]} >= {"metrics", "audit", "job_logs"}
    status, hold = api.call("POST", "/api/v1/retention/holds", {"host": "no-such-host", "reason": "x"})
    assert status == 422 and "no-such-host" in hold["errors"]["host"]
    status, hold = api.call("POST", "/api/v1/retention/holds", {"from": "2026-01-01", "to": "2026-02-01", "reason": ""})
    assert status == 422 and "reason" in hold["errors"]
    status, hold = api.call("POST", "/api/v1/retention/holds", {"host": "localhost", "from": "2026-01-01", "reason": "case 7"})
    assert status == 201 and hold["host"] == "localhost" and hold["to"] is None
    status, holds = api.call("GET", "/api/v1/retention/holds")
    assert [h["id"] for h in holds["items"]] == [hold["id"]]
    status, _ = api.call("DELETE", f"/api/v1/retention/holds/{hold['id']}")
    assert status == 204 and api.call("GET", "/api/v1/retention/holds")[1]["items"] == []


def run(*args):
    return subprocess.run([str(_binary()), *args], capture_output=True, text=True, timeout=300)


def test_a_crash_in_the_middle_of_enforcement_leaves_a_consistent_database_and_the_next_run_finishes(tmp_path):
    data = tmp_path / "data"
    assert run("migrate", "--data", str(data)).returncode == 0
    path = data / "steward.db"
    now_ms = int(time.time() * 1000)
    database = sqlite3.connect(path)
    payload = "x" * 400
    with database:
        database.executemany(
            "INSERT INTO audit_events (at, actor, action, target, after) VALUES (?, 'seed', 'host.update', 'host:a', ?)",
            ((now_ms - 1000 * DAY_MS - i, payload) for i in range(300_000)))
        database.executemany(
            "INSERT INTO audit_events (at, actor, action, target, after) VALUES (?, 'seed', 'host.update', 'host:a', ?)",
            ((now_ms - 10 * DAY_MS - i, payload) for i in range(1000)))
    database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()
    size_before = path.stat().st_size

    process = subprocess.Popen([str(_binary()), "retention", "enforce", "--data", str(data), "--batch-size", "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = sqlite3.connect(path, timeout=30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = watcher.execute("SELECT COUNT(*) FROM audit_events WHERE actor = 'seed'").fetchone()[0]
        if left < 250_000:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    watcher.close()
    assert 1000 < left < 301_000, f"the run was killed in the middle ({left} seeded rows left)"

    database = sqlite3.connect(path)
    assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert database.execute("SELECT COUNT(*) FROM retention_gate").fetchone()[0] == 0, "the audit gate never stays open"
    after_crash = database.execute("SELECT COUNT(*) FROM audit_events WHERE actor = 'seed'").fetchone()[0]
    assert 1000 < after_crash < 301_000
    # The application still cannot delete audit events after the crash.
    try:
        with database:
            database.execute("DELETE FROM audit_events WHERE actor = 'seed'")
        raise AssertionError("an audit event was deleted outside retention")
    except sqlite3.DatabaseError as error:
        assert "append-only" in str(error)
    database.close()

    finished = run("retention", "enforce", "--data", str(data))
    assert finished.returncode == 0, finished.stderr
    assert "Audit log" in finished.stdout and "freed" in finished.stdout
    database = sqlite3.connect(path)
    assert database.execute("SELECT COUNT(*) FROM audit_events WHERE actor = 'seed'").fetchone()[0] == 1000, "the recent events stay"
    assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    actions = [row[0] for row in database.execute("SELECT action FROM audit_events WHERE actor = 'system'")]
    assert "retention.enforce" in actions
    database.close()
    assert path.stat().st_size < size_before / 5, (size_before, path.stat().st_size)
