"""Backups with the real restic against a real Steward: pages and API, byte-identical restores, live-path
confirmation, a full disk and a wrong password, alerts, kill -9 with a stale lock, catch-up after downtime,
restore-self, and remote hosts over SSH with an SFTP repository. Root only (tmpfs mounts, the test fleet)."""
import hashlib
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Api, _binary, _free_port, job_log, make_token, start_steward, stop_steward, steward_environment, wait_job

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fleet"))
from fleet import Fleet  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs and the test fleet need root")
ARTIFACTS = pathlib.Path("/tmp/steward-e2e-artifacts")


def make_tree(root: pathlib.Path) -> None:
    """Odd names, spaces, unicode, shell metacharacters, a symlink, an empty directory and some binary data."""
    (root / "odd dir" / "ünï cödé").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "plain.txt").write_text("plain\n")
    (root / "odd dir" / "ünï cödé" / "file with spaces.txt").write_text("spaces and ünïcödé\n")
    (root / "odd dir" / "u=1337;$(whoami);").write_text("meta\n")
    (root / "random.bin").write_bytes(os.urandom(2_000_000))
    (root / "link-to-plain").symlink_to("plain.txt")
    (root / "plain.txt").chmod(0o640)


def digest(root: pathlib.Path) -> dict:
    result = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            result[relative] = "link -> " + os.readlink(path)
        elif path.is_dir():
            result[relative] = f"dir {oct(path.stat().st_mode & 0o7777)}"
        else:
            result[relative] = f"file {oct(path.stat().st_mode & 0o7777)} " + hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def browse(api, repository, snapshot, path):
    import urllib.parse
    return api.call("GET", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/tree?path={urllib.parse.quote(str(path))}")


def add_repository(api, name, path, password="correct horse battery", **extra):
    status, repository = api.call("POST", "/api/v1/backups/repositories", {"name": name, "path": str(path), "password": password, **extra})
    assert status == 201, repository
    return repository


def add_plan(api, name, repository, paths, **extra):
    status, plan = api.call("POST", "/api/v1/backups/plans", {"name": name, "repository": repository["id"], "paths": [str(p) for p in paths], **extra})
    assert status == 201, plan
    return plan


def run_plan(api, plan, timeout=300):
    status, job = api.call("POST", f"/api/v1/backups/plans/{plan['id']}/run")
    assert status == 202, job
    return wait_job(api, job["id"], timeout=timeout)


def test_back_up_browse_and_restore_byte_identical_through_pages_and_api(api, steward, signed_in, tmp_path):
    source = tmp_path / "source"
    make_tree(source)
    browser = signed_in
    # The repository through the admin's form, as a person would add it.
    browser.get(steward.base_url + "/backups/repositories/new")
    browser.find_element(By.ID, "field-name").send_keys("e2e main")
    browser.find_element(By.ID, "field-path").send_keys(str(tmp_path / "repo"))
    browser.find_element(By.ID, "field-password").send_keys("correct horse battery")
    browser.find_element(By.CSS_SELECTOR, "form[action='/backups/repositories'] button[type=submit]").click()
    WebDriverWait(browser, 30).until(lambda d: "/backups/repositories/" in d.current_url and "new" not in d.current_url)
    assert "created" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert (tmp_path / "repo" / "config").exists(), "restic init ran"
    status, repositories = api.call("GET", "/api/v1/backups/repositories")
    repository = next(r for r in repositories["items"] if r["name"] == "e2e main")

    plan = add_plan(api, "e2e awkward tree", repository, [source], keep_last=3, excludes=["*.tmp"])
    assert plan["backup_schedule"]["catch_up"] == "one" and plan["verify_schedule"]["cron"]
    (source / "skipped.tmp").write_text("excluded\n")

    # Run now from the plan's page; the job page shows the summary and a full progress bar.
    browser.get(f"{steward.base_url}/backups/plans/{plan['id']}")
    browser.find_element(By.CSS_SELECTOR, f"form[action='/backups/plans/{plan['id']}/run'] button").click()
    WebDriverWait(browser, 30).until(lambda d: "/jobs/" in d.current_url)
    job_id = int(browser.current_url.rstrip("/").split("/")[-1])
    job = wait_job(api, job_id)
    assert job["state"] == "succeeded", job_log(api, job_id)
    assert job["progress"]["percent"] == 100 and job["progress"]["message"].startswith("snapshot ")
    browser.refresh()
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "job-progress").get_attribute("value") == "100")
    status, runs = api.call("GET", f"/api/v1/backups/plans/{plan['id']}/runs")
    run = runs["items"][0]
    assert run["kind"] == "backup" and run["snapshot_id"] and run["files_new"] == 4 and run["bytes_processed"] > 2_000_000
    assert run["duration_ms"] is not None

    # The host page links to its backups: its plans and the snapshots they made.
    status, hosts = api.call("GET", "/api/v1/hosts")
    localhost = next(h for h in hosts["items"] if h["name"] == "localhost")
    browser.get(f"{steward.base_url}/hosts/{localhost['id']}")
    browser.find_element(By.ID, "host-backups-link").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "host-snapshots-table"))
    assert run["snapshot_id"] in browser.find_element(By.ID, "host-snapshots-table").text

    # The plans list, the plan page with its run and snapshot, and the snapshot browser.
    browser.get(steward.base_url + "/backups")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#plans-table tbody tr") if "e2e awkward tree" in r.text)
    assert "succeeded" in row.text and "ago" in row.text
    browser.get(f"{steward.base_url}/backups/plans/{plan['id']}")
    assert run["snapshot_id"] in browser.find_element(By.ID, "runs-table").text
    browser.find_element(By.CSS_SELECTOR, "#snapshots-table a").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "tree-table"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "backup-snapshot.png"))
    snapshot = run["snapshot_id"]
    status, tree = browse(api, repository, snapshot, str(source / "odd dir"))
    assert [item["name"] for item in tree["items"]] == ["ünï cödé", "u=1337;$(whoami);"]
    status, tree = browse(api, repository, snapshot, str(source))
    assert "skipped.tmp" not in [item["name"] for item in tree["items"]], "excludes apply"

    # Download one file: its exact bytes, with the unicode name kept.
    import urllib.parse
    import urllib.request
    wanted = source / "odd dir" / "ünï cödé" / "file with spaces.txt"
    request = urllib.request.Request(
        f"{api.base}/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/file?path={urllib.parse.quote(str(wanted))}",
        headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
        assert response.read() == wanted.read_bytes()
        assert "filename*=UTF-8''file%20with%20spaces.txt" in response.headers["Content-Disposition"]

    # A restore is byte-identical: contents, modes, the symlink and the empty directory.
    target = tmp_path / "restored"
    status, restore = api.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/restore",
                               {"target": str(target), "plan": plan["id"]})
    assert status == 202, restore
    finished = wait_job(api, restore["id"])
    assert finished["state"] == "succeeded", job_log(api, restore["id"])
    assert "verified" in finished["progress"]["message"]
    expected = digest(source)
    del expected["skipped.tmp"]
    assert digest(pathlib.Path(str(target) + str(source))) == expected

    # Restoring over the live path needs the path typed again; the page says so, and the audit log has it.
    (source / "plain.txt").write_text("changed after the backup\n")
    browser.get(f"{steward.base_url}/backups/repositories/{repository['id']}/snapshots/{snapshot}?path={urllib.parse.quote(str(source))}&plan={plan['id']}")
    browser.find_element(By.ID, "field-include").clear()
    browser.find_element(By.ID, "field-include").send_keys(str(source / "plain.txt"))
    browser.find_element(By.ID, "field-target").send_keys(str(source))
    browser.find_element(By.CSS_SELECTOR, "#restore-form button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".flash"))
    flash = browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert "live path" in flash and f"type the target path {source} to confirm" in flash, flash
    assert (source / "plain.txt").read_text() == "changed after the backup\n", "nothing was restored"
    status, problem = api.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/restore",
                               {"target": str(source), "plan": plan["id"]})
    assert status == 422 and "live path" in problem["errors"]["confirm"] and str(source) in problem["errors"]["confirm"]
    status, problem = api.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/restore",
                               {"target": "/", "include": [str(source / "plain.txt")], "plan": plan["id"], "confirm": "/"})
    assert status == 422 and "onto / is refused" in problem["errors"]["target"]
    # Restore the one file in place: restic puts it back at its own path under the target /.
    status, restore = api.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/restore",
                               {"target": str(tmp_path / "inplace"), "include": [str(source / "plain.txt")], "plan": plan["id"]})
    assert status == 202
    assert wait_job(api, restore["id"])["state"] == "succeeded"
    assert (pathlib.Path(str(tmp_path / "inplace") + str(source)) / "plain.txt").read_text() == "plain\n"
    status, restore = api.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/restore",
                               {"target": str(tmp_path / "inplace"), "plan": plan["id"], "confirm": str(tmp_path / "inplace")})
    assert status == 202, restore
    assert wait_job(api, restore["id"])["state"] == "succeeded"
    status, events = api.get("/api/v1/audit", action="backup.restore")
    assert events["items"][0]["after"]["confirmed_overwrite"] is True and events["items"][0]["actor"]

    # Traversal and friends are refused before anything runs (SECURITY.md class 7).
    for body in ({"target": "/tmp/../etc"}, {"target": "restored"}, {"target": str(tmp_path / "x"), "include": ["../../etc"]}):
        status, problem = api.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/restore", body)
        assert status == 422, (body, problem)
    status, problem = api.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/..%2F..%2Fx/restore", {"target": str(tmp_path / "y")})
    assert status in (404, 422)
    status, problem = browse(api, repository, snapshot, "/etc/../root")
    assert status == 422 and "path" in problem["errors"]


def test_retention_preview_then_a_wrong_password_and_a_full_disk_say_what_to_fix(api, signed_in, steward, tmp_path):
    source = tmp_path / "data"
    source.mkdir()
    repository = add_repository(api, "e2e retention", tmp_path / "repo")
    plan = add_plan(api, "e2e retention", repository, [source], keep_last=10)
    for round_ in range(3):
        (source / "f").write_text(f"round {round_}\n")
        assert run_plan(api, plan)["state"] == "succeeded"
    status, preview = api.call("POST", f"/api/v1/backups/plans/{plan['id']}/retention/preview", {"keep_last": 1})
    assert status == 200 and preview["keep"] == 1 and preview["remove"] == 2 and preview["items"][0]["reasons"] == ["last snapshot"]
    status, problem = api.call("POST", f"/api/v1/backups/plans/{plan['id']}/retention/preview", {"keep_within": "forever"})
    assert status == 422 and "keep_within" in problem["errors"]
    # The form shows the preview before saving, and nothing changes until Save.
    browser = signed_in
    browser.get(f"{steward.base_url}/backups/plans/{plan['id']}/edit")
    field = browser.find_element(By.ID, "field-keep_last")
    field.clear()
    field.send_keys("2")
    browser.find_element(By.ID, "preview-retention").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "preview-summary"))
    assert browser.find_element(By.ID, "preview-summary").text == "Keeps 2, removes 1."
    assert len(browser.find_elements(By.CSS_SELECTOR, "#preview-table tr.removed")) == 1
    status, unchanged = api.call("GET", f"/api/v1/backups/plans/{plan['id']}")
    assert unchanged["keep_last"] == 10

    # Importing with the wrong password is refused with a message about the password.
    status, problem = api.call("POST", "/api/v1/backups/repositories",
                               {"name": "e2e wrong", "path": str(tmp_path / "repo"), "password": "not the password", "init": False})
    assert status == 422 and "password" in problem["errors"]["password"] and "wrong" in problem["errors"]["password"]
    # A repository that is not there.
    status, problem = api.call("POST", "/api/v1/backups/repositories",
                               {"name": "e2e missing", "path": str(tmp_path / "nowhere"), "password": "whatever123", "init": False})
    assert status == 422 and "there is no restic repository" in problem["errors"]["path"]

    # A full disk: a 3 MiB tmpfs holding the repository, and 8 MB of data that does not compress.
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(small)], check=True)
    try:
        full = add_repository(api, "e2e full disk", small / "repo")
        big = tmp_path / "big"
        big.mkdir()
        (big / "noise.bin").write_bytes(os.urandom(8_000_000))
        plan = add_plan(api, "e2e full disk", full, [big])
        job = run_plan(api, plan)
        assert job["state"] == "failed"
        assert "is full (no space left on device)" in job["error"], job["error"]
    finally:
        subprocess.run(["umount", "--lazy", str(small)], check=False)


def alert_for(api, rule_name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, alerts = api.call("GET", "/api/v1/alerts")
        match = [a for a in alerts["items"] if a["rule"] == rule_name and a["state"] == "firing"]
        if match:
            return match[0]
        time.sleep(1)
    raise AssertionError(f"{rule_name} did not fire: {alerts}")


def test_a_repository_made_elsewhere_with_a_short_password_is_imported(api, tmp_path):
    """restic opens a repository with any non-empty password, so Steward imports one with a 3-character password;
    only a repository Steward makes itself needs 8 characters."""
    repo = tmp_path / "short-repo"
    made = subprocess.run(["restic", "init", "--repo", str(repo)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RESTIC_PASSWORD": "abc"})
    assert made.returncode == 0, made.stderr
    status, problem = api.call("POST", "/api/v1/backups/repositories",
                               {"name": "e2e short wrong", "path": str(repo), "password": "abd", "init": False})
    assert status == 422 and "wrong" in problem["errors"]["password"], problem
    status, problem = api.call("POST", "/api/v1/backups/repositories",
                               {"name": "e2e short empty", "path": str(repo), "password": "", "init": False})
    assert status == 422 and "password" in problem["errors"], problem
    repository = add_repository(api, "e2e short", repo, password="abc", init=False)
    source = tmp_path / "data"
    source.mkdir()
    (source / "f").write_text("short\n")
    assert run_plan(api, add_plan(api, "e2e short", repository, [source]))["state"] == "succeeded"
    status, problem = api.call("POST", "/api/v1/backups/repositories",
                               {"name": "e2e short new", "path": str(tmp_path / "new-repo"), "password": "abc"})
    assert status == 422 and "at least 8 characters" in problem["errors"]["password"], problem
    assert not (tmp_path / "new-repo").exists()


def test_snapshot_paths_in_a_query_read_plus_as_a_space(api, steward, signed_in, tmp_path):
    """Python's requests and urlencode, curl -G --data-urlencode and browsers' GET forms send a space in a query value
    as "+", and a real "+" as %2B; the tree, the download and the snapshot page read both as they were meant."""
    import urllib.parse
    import urllib.request
    source = tmp_path / "plus source"
    (source / "my dir").mkdir(parents=True)
    (source / "my dir" / "c++ notes.txt").write_text("plus and space\n")
    repository = add_repository(api, "e2e plus", tmp_path / "plus-repo")
    plan = add_plan(api, "e2e plus", repository, [source])
    assert run_plan(api, plan)["state"] == "succeeded"
    status, snapshots = api.get(f"/api/v1/backups/plans/{plan['id']}/snapshots")
    snapshot = snapshots["items"][0]["id"]
    base = f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}"

    query = urllib.parse.urlencode({"path": str(source / "my dir")})
    assert "+" in query and "%20" not in query
    status, tree = api.call("GET", f"{base}/tree?{query}")
    assert status == 200 and tree["path"] == str(source / "my dir") and [item["name"] for item in tree["items"]] == ["c++ notes.txt"], tree

    wanted = source / "my dir" / "c++ notes.txt"
    request = urllib.request.Request(f"{api.base}{base}/file?" + urllib.parse.urlencode({"path": str(wanted)}),
                                     headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
        assert response.read() == wanted.read_bytes()

    # %20 still works as before.
    status, tree = api.call("GET", f"{base}/tree?path={urllib.parse.quote(str(source / 'my dir'))}")
    assert status == 200 and [item["name"] for item in tree["items"]] == ["c++ notes.txt"], tree

    # The snapshot page, from a URL as a GET form would write it; its own links encode "+" as %2B.
    browser = signed_in
    browser.get(f"{steward.base_url}/backups/repositories/{repository['id']}/snapshots/{snapshot}?{query}")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "tree-table"))
    assert "c++ notes.txt" in browser.find_element(By.ID, "tree-table").text
    link = browser.find_element(By.CSS_SELECTOR, "#tree-table a[download]").get_attribute("href")
    assert "c%2B%2B" in link, link


def test_a_failed_run_and_a_silent_plan_raise_the_plans_own_alerts(api, steward, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    repository = add_repository(api, "e2e alerts", tmp_path / "repo")
    assert api.commit_file("hooks/e2e-fail.sh", "#!/bin/sh\necho about to fail\nexit 1\n", "e2e: a hook that fails") == 303
    plan = add_plan(api, "e2e failing hook", repository, [source], pre_hook=["e2e-fail.sh"])
    job = run_plan(api, plan)
    assert job["state"] == "failed" and "the pre hook exited with status 1" in job["error"]
    alert = alert_for(api, "Backup failed: e2e failing hook")
    assert alert["severity"] == "critical" and alert["host"] == "localhost" and "e2e failing hook" in alert["summary"]
    # Fixed and run again: the alert resolves.
    status, plan = api.call("PATCH", f"/api/v1/backups/plans/{plan['id']}", {"pre_hook": []})
    assert status == 200 and plan["pre_hook"] == []
    assert run_plan(api, plan)["state"] == "succeeded"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, alerts = api.call("GET", "/api/v1/alerts")
        if not [a for a in alerts["items"] if a["rule"] == "Backup failed: e2e failing hook" and a["state"] == "firing"]:
            break
        time.sleep(1)
    else:
        raise AssertionError("the failure alert did not resolve after a good run")

    # The dead man's switch: a plan that has made no snapshot for longer than its window (its creation moved back
    # three hours, as if it had been silent since), with no run at all.
    silent = add_plan(api, "e2e silent", repository, [source], alert_after_hours=2)
    database = sqlite3.connect(steward.data / "steward.db")
    with database:
        database.execute("UPDATE backup_plans SET created_at = created_at - 3 * 3600 * 1000 WHERE id = ?", (silent["id"],))
    alert = alert_for(api, "No backup in 2 h: e2e silent")
    assert alert["severity"] == "critical" and alert["value"] >= 3 and "dead man's switch" in alert["description"]
    # Paused plans do not alert.
    status, paused = api.call("POST", f"/api/v1/backups/plans/{silent['id']}/pause")
    assert status == 200 and paused["paused"] is True
    status, rules = api.call("GET", "/api/v1/alerts/rules")
    assert not next(r for r in rules["items"] if r["name"] == "No backup in 2 h: e2e silent")["enabled"]


@pytest.fixture()
def own_steward(account):
    """A Steward of this test's own, which it may kill and restart."""
    with tempfile.TemporaryDirectory(prefix="steward-e2e-own-") as temp:
        data = pathlib.Path(temp) / "data"
        subprocess.run([str(_binary()), "role", "grant", "admin", "--user", account.name, "--data", str(data)],
                       check=True, env=steward_environment(), cwd="/", capture_output=True)
        port = _free_port()
        state = {"running": start_steward(data, pathlib.Path(temp) / "steward.log", port)}

        def restart():
            state["running"] = start_steward(data, pathlib.Path(temp) / "steward.log", port)
            return state["running"]

        try:
            yield state["running"], restart, make_token(data, account.name)
        finally:
            if state["running"].process.poll() is None:
                stop_steward(state["running"])


def restic_processes(repository: pathlib.Path):
    out = subprocess.run(["pgrep", "-f", f"restic --repo {repository}"], capture_output=True, text=True).stdout.split()
    return [pid for pid in out if pid != str(os.getpid())]


def test_kill_9_mid_backup_then_restart_catch_up_once_and_restore_self(own_steward, tmp_path):
    running, restart, token = own_steward
    api = Api(running, token)
    source = tmp_path / "big"
    source.mkdir()
    # Enough data that restic is still working for seconds after the kill: it only dies at its next progress line
    # (once a second), and a restic that finishes first removes its lock like any other.
    for index in range(20):
        (source / f"chunk-{index}.bin").write_bytes(os.urandom(40_000_000))
    repository_path = tmp_path / "repo"
    repository = add_repository(api, "kill test", repository_path)
    plan = add_plan(api, "kill test", repository, [source], backup_cron="0 * * * *", backup_jitter_seconds=0)
    status, job = api.call("POST", f"/api/v1/backups/plans/{plan['id']}/run")
    # Wait until restic is writing (progress above 0 and its lock in the repository), then kill Steward outright.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, current = api.call("GET", f"/api/v1/jobs/{job['id']}")
        percent = current["progress"]["percent"] or 0
        if 0 < percent < 50 and list((repository_path / "locks").iterdir()):
            break
        assert current["state"] in ("queued", "running"), current
        time.sleep(0.1)
    else:
        raise AssertionError("the backup never got under way")
    pids = restic_processes(repository_path)
    assert pids, "restic is running"
    running.process.send_signal(signal.SIGKILL)
    running.process.wait(timeout=10)
    # restic dies at its next progress line (its output pipe is gone) and leaves its lock behind: a stale lock.
    # Wait until it is gone entirely, not a zombie: restic treats a lock whose process still exists as live.
    deadline = time.monotonic() + 60
    while any(pathlib.Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(pathlib.Path(f"/proc/{pid}").exists() for pid in pids), "restic ended with Steward"
    assert list((repository_path / "locks").iterdir()), "the dead restic left its lock"

    running = restart()
    api = Api(running, token)
    status, interrupted = api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert interrupted["state"] == "interrupted" and "Steward stopped while this job was running" in interrupted["error"]
    again = run_plan(api, plan)
    assert again["state"] == "succeeded", job_log(api, again["id"])
    log = job_log(api, again["id"])
    assert "did not finish cleanly; removing stale locks first" in log and "unlock" in log and "successfully removed" in log
    assert not list((repository_path / "locks").iterdir()), "the stale lock was removed and the good run left none"
    status, runs = api.call("GET", f"/api/v1/backups/plans/{plan['id']}/runs")
    assert [r["state"] for r in runs["items"]][:2] == ["succeeded", "interrupted"]

    # Catch-up: Steward is down across two hourly fire times; on start it runs the plan once, not twice.
    stop_steward(running)
    database = sqlite3.connect(running.data / "steward.db")
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000 - 60_000
    with database:
        database.execute("UPDATE schedules SET next_fire_at = ?, next_due_at = ? WHERE id = ?",
                         (two_hours_ago, two_hours_ago, plan["backup_schedule_id"]))
    database.close()
    running = restart()
    api = Api(running, token)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, jobs = api.get("/api/v1/jobs", kind="backup.run")
        caught = [j for j in jobs["items"] if j["schedule_id"] == plan["backup_schedule_id"] and "catch-up" in j["reason"]]
        if caught:
            break
        time.sleep(0.5)
    assert len(caught) == 1 and "missed while Steward was down" in caught[0]["reason"], caught
    assert wait_job(api, caught[0]["id"], timeout=300)["state"] == "succeeded"
    time.sleep(2)
    status, jobs = api.get("/api/v1/jobs", kind="backup.run")
    assert len([j for j in jobs["items"] if "catch-up" in j["reason"]]) == 1, "caught up once"

    # Self-backup: the built-in plan saves the state; restore-self (with Steward stopped) brings it back.
    status, plans = api.call("GET", "/api/v1/backups/plans")
    self_plan = next(p for p in plans["items"] if p["builtin"] == "self")
    assert self_plan["paths"] == [str(running.data / "backups" / "self-staging")]
    assert run_plan(api, self_plan)["state"] == "succeeded"
    status, created = api.call("POST", "/api/v1/hosts", {"name": "added-after-the-backup", "address": "192.0.2.1"})
    assert status == 201
    refused = subprocess.run([str(_binary()), "restore-self", "--data", str(running.data)], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "Steward is running" in refused.stderr
    stop_steward(running)
    restored = subprocess.run([str(_binary()), "restore-self", "--data", str(running.data)], capture_output=True, text=True, timeout=300)
    assert restored.returncode == 0, restored.stderr
    assert "steward.db" in restored.stdout and "secret.key" in restored.stdout and "before-restore-" in restored.stdout
    running = restart()
    api = Api(running, token)
    status, hosts = api.call("GET", "/api/v1/hosts")
    names = [h["name"] for h in hosts["items"]]
    assert "added-after-the-backup" not in names and "localhost" in names
    status, plans = api.call("GET", "/api/v1/backups/plans")
    assert "kill test" in [p["name"] for p in plans["items"]]
    assert list(running.data.glob("before-restore-*/steward.db")), "the replaced database was kept aside"


@pytest.fixture(scope="module")
def backup_fleet(steward, api):
    public_key = (steward.data / "ssh" / "id_ed25519.pub").read_text()
    with Fleet(2, authorized_key=public_key, prefix="bfleet") as running:
        yield running
    # The hosts are gone with the fleet; disable them so later modules' fleet-wide runs do not try to reach them.
    status, hosts = api.call("GET", "/api/v1/hosts")
    for host in hosts["items"]:
        if host["name"].startswith("bfleet-"):
            api.call("PATCH", f"/api/v1/hosts/{host['id']}", {"enabled": False})


def enrol(api, fleet):
    ids = {}
    for host in fleet.hosts:
        status, created = api.call("POST", "/api/v1/hosts", {
            "name": host.name, "address": host.address, "ssh_port": host.port, "ssh_user": host.user, "become": "sudo"})
        assert status == 201, created
        ids[host.name] = created["id"]
        status, verdict = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/scan")
        api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/trust", {"fingerprint": verdict["presented"]})
    return ids


def test_remote_hosts_back_up_over_ssh_with_live_progress_and_an_sftp_repository(api, steward, backup_fleet, tmp_path):
    ids = enrol(api, backup_fleet)
    first, second = backup_fleet.hosts
    data = first.root / "srv" / "app"
    make_tree(data)
    for index in range(8):
        (data / f"blob-{index}.bin").write_bytes(os.urandom(40_000_000))
    repository = add_repository(api, "bfleet-1 disk", "/var/backups/restic", host=first.name)
    assert (first.root / "var/backups/restic/config").exists(), "restic init ran on the remote host, as root through sudo"
    plan = add_plan(api, "bfleet-1 app", repository, ["/srv/app"], host=first.name)
    status, job = api.call("POST", f"/api/v1/backups/plans/{plan['id']}/run")
    # Every progress event, from the job's own live stream (restic reports once a second, so a quick backup can fall
    # between two polls of the job; the stream misses none), and what polling the job saw.
    seen = set()
    streamed = []

    def follow():
        request = urllib.request.Request(api.base + f"/api/v1/jobs/{job['id']}/log", headers={"Authorization": f"Bearer {api.token}"})
        with urllib.request.urlopen(request, context=api.context, timeout=300) as response:
            for line in response:
                event = json.loads(line)
                if event.get("type") == "progress" and event.get("percent") is not None:
                    streamed.append(event["percent"])

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status, current = api.call("GET", f"/api/v1/jobs/{job['id']}")
        if current["progress"]["percent"] is not None:
            seen.add(round(current["progress"]["percent"]))
        if current["state"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert current["state"] == "succeeded", job_log(api, job["id"])
    follower.join(timeout=30)
    middle = [p for p in list(seen) + streamed if 0 < p < 100]
    assert middle, f"progress streamed from the remote restic: polled {sorted(seen)}, streamed {streamed}"
    log = job_log(api, job["id"])
    assert "$ restic --repo /var/backups/restic backup --json" in log and "progress: " in log
    # A restore on the remote host matches the source there.
    status, snapshots = api.call("GET", f"/api/v1/backups/plans/{plan['id']}/snapshots")
    assert len(snapshots["items"]) == 1 and snapshots["items"][0]["hostname"] == first.name
    status, restore = api.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/latest/restore",
                               {"target": "/var/tmp/restored", "plan": plan["id"]})
    assert status == 202, restore
    assert wait_job(api, restore["id"], timeout=300)["state"] == "succeeded", job_log(api, restore["id"])
    assert digest(first.root / "var/tmp/restored/srv/app") == digest(data)
    # The host's snapshots, across its plans.
    status, listed = api.call("GET", f"/api/v1/backups/hosts/{ids[first.name]}/snapshots")
    assert status == 200 and [item["id"] for item in listed["items"]] == [snapshots["items"][0]["id"]]
    # A plan on one host cannot use a directory on another host's disk.
    status, problem = api.call("POST", "/api/v1/backups/plans", {"name": "x", "repository": repository["id"], "paths": ["/etc"], "host": second.name})
    assert status == 422 and "bfleet-1" in problem["errors"]["repository"]

    # SFTP: the panel host backs up into a repository on bfleet-2, over SSH with Steward's key.
    sftp = add_repository(api, "bfleet-2 over sftp", "/home/steward/restic", kind="sftp", host=second.name)
    assert (second.root / "home/steward/restic/config").exists()
    local = tmp_path / "local"
    make_tree(local)
    plan = add_plan(api, "to bfleet-2", sftp, [local], host="localhost")
    job = run_plan(api, plan)
    assert job["state"] == "succeeded", job_log(api, job["id"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # The status line is read again just after the job, in the background.
        status, repository = api.call("GET", f"/api/v1/backups/repositories/{sftp['id']}")
        if repository["snapshot_count"] == 1:
            break
        time.sleep(0.5)
    assert repository["snapshot_count"] == 1 and repository["size_bytes"] > 0 and repository["status_error"] is None
    status, verify = api.call("POST", f"/api/v1/backups/plans/{plan['id']}/verify")
    assert wait_job(api, verify["id"])["state"] == "succeeded"
    status, repository = api.call("GET", f"/api/v1/backups/repositories/{sftp['id']}")
    assert repository["check_ok"] is True and "no errors" in repository["check_message"]
