"""Row actions clicked in Chromium on list pages with three rows: each reaches its own row's object and no other.
(The users page of a fleet host is covered in test_fleet.py.)"""
import subprocess
import urllib.error
import urllib.request

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import _binary


def click_in_row(browser, steward, page, table_id, row_text, button_text):
    """Open `page`, find the row of `table_id` holding `row_text`, press its button, accept a confirm if asked."""
    browser.get(steward.base_url + page)
    rows = [row for row in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr") if row_text in row.text]
    assert len(rows) == 1, [row.text for row in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")]
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
    assert question is None or row_text in question, question
    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(buttons[0]))


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
