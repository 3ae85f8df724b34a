"""Row actions clicked in Chromium on list pages with at least two rows: each reaches its own row's object and no
other. (The users and groups pages of a fleet host are covered in test_fleet.py.)"""
import http.cookiejar
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import _binary, job_log, wait_job, wait_rollout
from test_backups import add_plan, add_repository


def find_row(browser, steward, page, table_id, row_text):
    """Open `page` and return the one row of `table_id` whose text holds `row_text`."""
    browser.get(steward.base_url + page)
    rows = [row for row in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr") if row_text in row.text]
    assert len(rows) == 1, [row.text for row in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")]
    return rows[0]


def click_in_row(browser, steward, page, table_id, row_text, button_text, confirm_names=None):
    """Open `page`, find the row of `table_id` holding `row_text`, press its button, accept a confirm if asked. The
    confirmation must name the row: `row_text`, or `confirm_names` when the row is found by something else."""
    rows = [find_row(browser, steward, page, table_id, row_text)]
    buttons = [b for b in rows[0].find_elements(By.CSS_SELECTOR, "form button") if b.text == button_text]
    assert len(buttons) == 1, rows[0].text
    buttons[0].click()
    question = None
    try:
        WebDriverWait(browser, 3).until(expected_conditions.alert_is_present())
        question = browser.switch_to.alert.text
        browser.switch_to.alert.accept()
    except TimeoutException:
        pass  # an action that asks nothing first
    # A confirmation names the row it acts on.
    assert question is None or (confirm_names or row_text) in question, question
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(buttons[0]))


def open_row_link(browser, steward, page, table_id, row_text, link_text):
    """Follow the link `link_text` in the row of `table_id` holding `row_text`; return the page's heading."""
    row = find_row(browser, steward, page, table_id, row_text)
    links = [a for a in row.find_elements(By.CSS_SELECTOR, "a") if a.text == link_text]
    assert len(links) == 1, row.text
    links[0].click()
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(row))
    return browser.find_element(By.TAG_NAME, "h1").text


def opens_its_own_page(browser, steward, page, table_id, label, path):
    """The row labelled `label` links, by that label, to `path`, whose heading names it."""
    heading = open_row_link(browser, steward, page, table_id, label, label)
    assert label in heading and browser.current_url.endswith(path), (heading, browser.current_url)


def job_from_url(browser):
    WebDriverWait(browser, 15).until(lambda d: re.search(r"/jobs/\d+", d.current_url))
    return int(re.search(r"/jobs/(\d+)", browser.current_url).group(1))


def test_ending_one_silence_ends_that_one(api, signed_in, steward):
    ids = []
    for n in range(3):
        status, silence = api.call("POST", "/api/v1/alerts/silences", {"matchers": f"rule=row-test-{n}", "duration": "2h", "comment": f"row test {n}"})
        assert status == 201, silence
        ids.append(silence["id"])
    click_in_row(signed_in, steward, "/alerts/silences", "silences-table", "rule=row-test-1", "End now")
    status, listed = api.call("GET", "/api/v1/alerts/silences")
    active = {item["id"]: item["active"] for item in listed["items"] if item["id"] in ids}
    assert active == {ids[0]: True, ids[1]: False, ids[2]: True}
    for silence_id in (ids[0], ids[2]):
        api.call("POST", f"/api/v1/alerts/silences/{silence_id}/expire")


def test_releasing_one_hold_releases_that_one(api, signed_in, steward):
    reasons = ["row test hold A", "row test hold B", "row test hold C"]
    for reason in reasons:
        status, hold = api.call("POST", "/api/v1/retention/holds", {"host": "localhost", "reason": reason})
        assert status == 201, hold
    click_in_row(signed_in, steward, "/settings/storage", "holds-table", "row test hold B", "Release")
    status, holds = api.call("GET", "/api/v1/retention/holds")
    left = sorted(h["reason"] for h in holds["items"] if h["reason"].startswith("row test"))
    assert left == ["row test hold A", "row test hold C"]
    for hold in holds["items"]:
        if hold["reason"].startswith("row test"):
            api.call("DELETE", f"/api/v1/retention/holds/{hold['id']}")


def token_works(steward, api, token):
    request = urllib.request.Request(steward.base_url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def test_revoking_one_token_on_the_settings_page_revokes_that_one(api, signed_in, steward, account):
    tokens = {}
    for name in ["row-test-alpha", "row-test-bravo", "row-test-charlie"]:
        tokens[name] = subprocess.run(
            [str(_binary()), "token", "create", "--user", account.name, "--name", name, "--role", "viewer", "--data", str(steward.data)],
            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    assert all(token_works(steward, api, token) for token in tokens.values())
    click_in_row(signed_in, steward, "/settings/tokens", "tokens-table", "row-test-bravo", "Revoke")
    assert {name: token_works(steward, api, token) for name, token in tokens.items()} == {
        "row-test-alpha": True, "row-test-bravo": False, "row-test-charlie": True}


def test_removing_one_maintenance_window_removes_that_one(api, signed_in, steward):
    names = ["row test window A", "row test window B", "row test window C"]
    for name in names:
        status, window = api.call("POST", "/api/v1/alerts/maintenance", {
            "name": name, "host_group": "row_test", "cron": "0 3 1 1 *", "duration_minutes": 30, "time_zone": "UTC"})
        assert status == 201, window
    click_in_row(signed_in, steward, "/alerts/silences", "windows-table", "row test window B", "Remove")
    status, windows = api.call("GET", "/api/v1/alerts/maintenance")
    left = [w for w in windows["items"] if w["name"].startswith("row test window")]
    assert sorted(w["name"] for w in left) == ["row test window A", "row test window C"]
    for window in left:
        api.call("DELETE", f"/api/v1/alerts/maintenance/{window['id']}")


def test_removing_one_host_group_removes_that_one(api, signed_in, steward):
    names = ["rowtest_hg_a", "rowtest_hg_b", "rowtest_hg_c"]
    for name in names:
        status, group = api.call("PUT", f"/api/v1/groups/{name}", {"variables": f"row: {name}\n", "notes": f"row test {name}"})
        assert status in (200, 201), group
    click_in_row(signed_in, steward, "/hosts/groups", "hostgroups-table", "rowtest_hg_b", "Remove")
    status, groups = api.call("GET", "/api/v1/groups")
    left = sorted(g["name"] for g in groups["items"] if g["name"].startswith("rowtest_hg_"))
    assert left == ["rowtest_hg_a", "rowtest_hg_c"]
    for name in left:
        api.call("DELETE", f"/api/v1/groups/{name}")


def test_cancelling_one_job_from_the_jobs_list_cancels_that_one(api, signed_in, steward):
    # Three long jobs on the panel host (ad-hoc commands do not run there; playbooks from the config repo do).
    ids = {}
    for seconds in ("301", "302", "303"):
        path = f"playbooks/rowtest-sleep-{seconds}.yml"
        playbook = f"- hosts: all\n  gather_facts: false\n  tasks:\n    - name: wait\n      ansible.builtin.command:\n        argv: [sleep, '{seconds}']\n"
        assert api.commit_file(path, playbook, f"row test: sleep {seconds}") in (302, 303)
        status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": path, "targets": ["localhost"]})
        assert status == 202, job
        ids[seconds] = job["id"]
    try:
        for job_id in ids.values():
            status, job = api.call("GET", f"/api/v1/jobs/{job_id}")
            assert job["state"] in ("queued", "running"), job_log(api, job_id)
        click_in_row(signed_in, steward, "/jobs", "jobs-table", "rowtest-sleep-302", "Cancel")
        assert job_from_url(signed_in) == ids["302"]
        assert wait_job(api, ids["302"], timeout=60)["state"] == "cancelled"
        status, first = api.call("GET", f"/api/v1/jobs/{ids['301']}")
        status, last = api.call("GET", f"/api/v1/jobs/{ids['303']}")
        assert first["state"] in ("queued", "running") and last["state"] in ("queued", "running"), (first, last)
        # A finished job's row offers no Cancel.
        row = find_row(signed_in, steward, "/jobs", "jobs-table", "rowtest-sleep-302")
        assert not row.find_elements(By.CSS_SELECTOR, "form button")
    finally:
        for job_id in (ids["301"], ids["303"]):
            api.call("POST", f"/api/v1/jobs/{job_id}/cancel")
            wait_job(api, job_id, timeout=60)


def test_backup_rows_plans_schedules_snapshots_and_repositories_reach_their_own_object(api, signed_in, steward, tmp_path):
    tmp_path.chmod(0o711)
    repositories = [add_repository(api, f"rowtest repo {letter}", tmp_path / f"repo-{letter}") for letter in "AB"]
    plans = {}
    for letter in "ABC":
        source = tmp_path / f"source-{letter}"
        source.mkdir()
        (source / "file.txt").write_text(f"plan {letter}\n")
        plans[letter] = add_plan(api, f"rowtest plan {letter}", repositories[0], [source], backup_cron="0 3 1 1 *")

    def runs(letter):
        status, listed = api.call("GET", f"/api/v1/backups/plans/{plans[letter]['id']}/runs")
        return [(run["kind"], run["state"]) for run in listed["items"] if run["kind"] == "backup"]

    # "Run now" on the plans list runs that plan.
    click_in_row(signed_in, steward, "/backups", "plans-table", "rowtest plan B", "Run now")
    job_id = job_from_url(signed_in)
    assert wait_job(api, job_id, timeout=300)["state"] == "succeeded", job_log(api, job_id)
    assert (runs("A"), runs("B"), runs("C")) == ([], [("backup", "succeeded")], [])

    # "Run now" on the schedules list runs that schedule's plan.
    status, schedule = api.call("GET", f"/api/v1/schedules/{plans['C']['backup_schedule_id']}")
    click_in_row(signed_in, steward, "/schedules", "schedules-table", schedule["name"], "Run now")
    job_id = job_from_url(signed_in)
    assert wait_job(api, job_id, timeout=300)["state"] == "succeeded", job_log(api, job_id)
    assert (runs("A"), runs("B"), runs("C")) == ([], [("backup", "succeeded")], [("backup", "succeeded")])

    # A snapshot's row opens that snapshot: two snapshots in the repository, one per plan.
    status, snapshots = api.call("GET", f"/api/v1/backups/repositories/{repositories[0]['id']}/snapshots")
    names = {plan["id"]: plan["name"] for plan in plans.values()}
    by_plan = {names[item["plan_id"]]: item for item in snapshots["items"] if item["plan_id"] in names}
    assert sorted(by_plan) == ["rowtest plan B", "rowtest plan C"], snapshots
    for plan_name, snapshot in by_plan.items():
        open_row_link(signed_in, steward, f"/backups/repositories/{repositories[0]['id']}", "snapshots-table", plan_name, snapshot["short_id"])
        assert snapshot["id"] in signed_in.current_url, signed_in.current_url

    # A repository's row opens that repository.
    for repository in repositories:
        opens_its_own_page(signed_in, steward, "/backups", "repositories-table", repository["name"], f"/backups/repositories/{repository['id']}")
    for plan in plans.values():
        api.call("DELETE", f"/api/v1/backups/plans/{plan['id']}")


def create_each(api, path, bodies):
    created = []
    for body in bodies:
        status, item = api.call("POST", path, body)
        assert status == 201, item
        created.append(item)
    return created


def test_row_links_of_hosts_rules_and_rollouts_open_their_own_object(api, signed_in, steward):
    hosts = create_each(api, "/api/v1/hosts", [{"name": f"rowtest-host-{x}", "address": "192.0.2.10", "enabled": False} for x in "ab"])
    try:
        for host in hosts:
            opens_its_own_page(signed_in, steward, "/hosts", "hosts-table", host["name"], f"/hosts/{host['id']}")
    finally:
        for host in hosts:
            api.call("DELETE", f"/api/v1/hosts/{host['id']}")

    status, rules = api.call("GET", "/api/v1/alerts/rules")
    for rule in rules["items"][:2]:
        opens_its_own_page(signed_in, steward, "/alerts", "rules-table", rule["name"], f"/alerts/rules/{rule['id']}")

    rollouts = create_each(api, "/api/v1/rollouts", [
        {"title": f"rowtest rollout {x}", "what": "playbook", "playbook": "playbooks/ping.yml", "targets": ["localhost"]} for x in "AB"])
    try:
        for rollout in rollouts:
            opens_its_own_page(signed_in, steward, "/rollouts", "rollouts-table", rollout["title"], f"/rollouts/{rollout['id']}")
    finally:
        for rollout in rollouts:
            wait_rollout(api, rollout["id"], lambda r: r["state"] != "planning", what=rollout["title"])
            api.call("POST", f"/api/v1/rollouts/{rollout['id']}/abort")


def sign_in_over_http(steward, api, user, password, agent):
    """A browser of its own, as far as Steward can tell: its own cookies and User-Agent. Returns a page fetcher."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), urllib.request.HTTPSHandler(context=api.context))
    opener.addheaders = [("User-Agent", agent)]
    form = opener.open(steward.base_url + "/login", timeout=30).read().decode()
    token = re.search(r'name="form_token" value="([^"]*)"', form).group(1)
    body = urllib.parse.urlencode({"form_token": token, "next": "/", "username": user, "password": password}).encode()
    with opener.open(steward.base_url + "/login", data=body, timeout=30) as response:
        assert "/login" not in response.geturl(), "signed in"

    def signed_in_still():
        with opener.open(steward.base_url + "/account", timeout=30) as response:
            return "/login" not in response.geturl()
    return signed_in_still


def test_ending_one_session_on_the_settings_page_ends_that_one(api, signed_in, steward, account):
    browsers = {agent: sign_in_over_http(steward, api, account.name, account.password, agent)
                for agent in ("RowTest-A/1.0", "RowTest-B/1.0", "RowTest-C/1.0")}
    assert all(check() for check in browsers.values())
    row = find_row(signed_in, steward, "/settings/sessions", "sessions-table", "RowTest-B/1.0")
    short = row.find_element(By.CSS_SELECTOR, "code").text
    click_in_row(signed_in, steward, "/settings/sessions", "sessions-table", "RowTest-B/1.0", "End", confirm_names=short)
    assert {agent: check() for agent, check in browsers.items()} == {"RowTest-A/1.0": True, "RowTest-B/1.0": False, "RowTest-C/1.0": True}


def test_revoking_one_role_grant_revokes_that_one(signed_in, steward):
    browser = signed_in
    groups = ["games", "news", "uucp"]
    for group in groups:
        browser.get(steward.base_url + "/settings/roles")
        browser.find_element(By.XPATH, "//label[input[@name='kind'][@value='group']]").click()
        browser.find_element(By.ID, "field-principal").send_keys(group)
        browser.find_element(By.CSS_SELECTOR, "#field-role option[value=viewer]").click()
        browser.find_element(By.XPATH, "//button[text()='Grant']").click()
        WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".flash"))

    def granted():
        browser.get(steward.base_url + "/settings/roles")
        cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")[:3]] for row in browser.find_elements(By.CSS_SELECTOR, "#grants-table tbody tr")]
        return sorted(principal for role, kind, principal in cells if kind == "group" and principal in groups and role == "viewer")

    assert granted() == groups
    click_in_row(browser, steward, "/settings/roles", "grants-table", "news", "Revoke")
    assert granted() == ["games", "uucp"]
    for group in ("games", "uucp"):
        click_in_row(browser, steward, "/settings/roles", "grants-table", group, "Revoke")
    assert granted() == []
