"""SLOs against a real service: an HTTP service started here fails 5 % of requests for a while; a check probes it every
second; the SLO's fast-burn page fires with its factor and resolves after the service recovers; a rollout on the covered
host holds before its wave naming the SLO, and a security rollout approved as urgent, with a reason, by a second person
goes through. Pages are walked in the browser with two rows each; exports are checked by the real promtool. Root only."""
import http.server
import os
import subprocess
import tempfile
import threading
import time

import pytest
import yaml
from selenium.webdriver.support.ui import Select

from conftest import Api, _binary, click_through, job_log, make_account, remove_account, wait_job, wait_rollout
from test_fleet_rollouts import apt_repository, approver, installed, package_fleet  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root")
PAGE = "SLO shop-availability: fast burn (page)"


class FlakyService:
    """An HTTP service on 127.0.0.1 whose first 60 requests include 3 that answer 500 (the 1st, 21st and 41st: 5 %);
    every request after them succeeds."""

    FAILING_REQUESTS = 60

    def __init__(self):
        self.requests = 0
        self.failed = 0
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with lock:
                    number = service.requests
                    service.requests += 1
                    fail = number < FlakyService.FAILING_REQUESTS and number % 20 == 0
                    service.failed += fail
                body = b"error" if fail else b"ok"
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def service():
    flaky = FlakyService()
    yield flaky
    flaky.server.shutdown()


@pytest.fixture(scope="module")
def slo_fleet(steward, api, apt_repository):  # noqa: F811
    yield from package_fleet(steward, api, apt_repository, 2, "sfleet")


def wait_for(what, probe, timeout=120, every=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout} s; last seen: {last}")


def live_alert(api, rule_name):
    status, alerts = api.call("GET", "/api/v1/alerts")
    assert status == 200, alerts
    return next((a for a in alerts["items"] if a["rule"] == rule_name and a["state"] == "firing"), None)


def counted(api, slo_id, runs):
    """The SLO once it has counted at least `runs` events, else None."""
    status, slo = api.call("GET", f"/api/v1/slos/{slo_id}")
    assert status == 200, slo
    return slo if slo["total_events"] >= runs else None


def approve_plan(api, approver_api, rollout, urgent_reason=None):
    assert wait_job(api, rollout["plan_job"]["id"], timeout=300)["state"] == "succeeded", job_log(api, rollout["plan_job"]["id"])
    wait_rollout(api, rollout["id"], lambda r: r["state"] == "awaiting_approval")
    body = {"reason": urgent_reason, "urgent": True} if urgent_reason else {"reason": "looks fine"}
    status, approved = approver_api.call("POST", f"/api/v1/rollouts/{rollout['id']}/approve", body)
    assert status == 200, approved
    return approved


def test_burn_rate_page_rollout_gate_and_urgent_security_rollout(api, steward, service, slo_fleet, approver, signed_in):  # noqa: F811
    fleet, ids = slo_fleet
    first, covered = fleet.hosts
    person, approver_api = approver
    # Two checks: the flaky HTTP service (its results belong to the covered host) and a TCP connect to the same port.
    status, http_check = api.call("POST", "/api/v1/checks", {
        "name": "shop-http", "kind": "http", "target": f"http://127.0.0.1:{service.port}/health", "expect_status": "200",
        "expect_body": "ok", "interval_seconds": 1, "timeout_seconds": 0.9, "host": covered.name})
    assert status == 201, http_check
    status, tcp_check = api.call("POST", "/api/v1/checks", {
        "name": "shop-tcp", "kind": "tcp", "target": f"127.0.0.1:{service.port}", "interval_seconds": 5, "timeout_seconds": 2,
        "host": first.name})
    assert status == 201, tcp_check
    status, slo = api.call("POST", "/api/v1/slos", {
        "name": "shop-availability", "sli": "probe", "check": "shop-http", "objective": 99.7, "window": "30d", "hosts": [covered.name]})
    assert status == 201, slo
    status, other = api.call("POST", "/api/v1/slos", {
        "name": "shop-port", "sli": "probe", "check": "shop-tcp", "objective": 99, "window": "7d", "hosts": [first.name]})
    assert status == 201, other

    # The fast-burn page fires with the 14.4× pair: 5 % failing is 16.7× a 99.7 % objective's budget.
    alert = wait_for("the fast-burn page", lambda: live_alert(api, PAGE), timeout=60)
    assert alert["severity"] == "critical" and alert["host"] == covered.name, alert
    assert 'factor="14.4"' in alert["labels"] and 'long_window="1h"' in alert["labels"] and 'short_window="5m"' in alert["labels"], alert
    status, current = api.call("GET", f"/api/v1/slos/{slo['id']}")
    assert current["alert"]["severity"] == "page" and current["alert"]["factor"] == 14.4, current
    # The service fails 5 % of its first 60 requests; the page keeps firing all along, and the SLO counted exactly the
    # service's own failures: 3 bad runs of 60, 16.7× the budget.
    wait_for("60 requests", lambda: service.requests >= FlakyService.FAILING_REQUESTS, timeout=120)
    assert service.failed == 3
    assert live_alert(api, PAGE) is not None
    current = wait_for("the SLO to count 60 runs", lambda: counted(api, slo["id"], 60), timeout=30)
    assert current["total_events"] - current["good_events"] == 3, current
    assert abs(current["burn_rates"]["1h"] - 3 / current["total_events"] / 0.003) < 0.01, current["burn_rates"]
    assert current["budget_spent"] and current["remaining_budget_percent"] < 0, current

    # A rollout over both hosts: the canary (not covered) goes; the covered host's wave holds, naming the SLO.
    status, held = api.call("POST", "/api/v1/rollouts", {
        "title": "Security updates for sfleet", "what": "security", "targets": ["sfleet"], "canary": 1, "wave_size": 1,
        "settle_seconds": 1, "approvals_required": 1})
    assert status == 201, held
    approve_plan(api, approver_api, held)
    paused = wait_rollout(api, held["id"], lambda r: r["state"] == "paused", timeout=300, what="the budget hold")
    assert "shop-availability" in paused["state_detail"] and "error budget" in paused["state_detail"], paused["state_detail"]
    waves = {tuple(w["hosts"]): w for w in paused["waves"]}
    assert waves[(covered.name,)]["state"] == "pending" and "shop-availability" in waves[(covered.name,)]["gate"], paused["waves"]
    assert installed(covered) == "1.0", "the held wave changed nothing"
    canary_wave = waves[(first.name,)]
    assert canary_wave["state"] == "passed" and installed(first) == "2.0"
    # The canary's wave recorded the budget of the SLO that covers it, at its start and its end.
    assert canary_wave["budget"]["shop-port"]["before"] == 100 and canary_wave["budget"]["shop-port"]["after"] is not None
    # Resuming asks the gate again: it holds while the budget is spent.
    status, resumed = api.call("POST", f"/api/v1/rollouts/{held['id']}/resume")
    assert status == 200, resumed
    again = wait_rollout(api, held["id"], lambda r: r["state"] == "paused", timeout=60, what="the hold after resume")
    assert "shop-availability" in again["state_detail"]
    # While it holds the rollout, an operator can neither loosen nor remove the SLO; the refusal names the rollout.
    operator = make_account("steward-oper")
    try:
        operator_api = role_api(steward, operator, "operator")
        status, problem = operator_api.call("PUT", f"/api/v1/slos/{slo['id']}", {"objective": 50})
        assert status == 403 and f"holds rollout {held['id']}" in problem["detail"], problem
        status, problem = operator_api.call("DELETE", f"/api/v1/slos/{slo['id']}")
        assert status == 403 and f"holds rollout {held['id']}" in problem["detail"], problem
        # Nor make the check it measures pass: pointed at a port that answers, it would add good events unearned.
        status, problem = operator_api.call("PUT", f"/api/v1/checks/{http_check['id']}", {"expect_status": "200-599"})
        assert status == 403 and "change check shop-http, which it measures" in problem["detail"], problem
        assert api.call("GET", f"/api/v1/slos/{slo['id']}")[1]["objective"] == 99.7
        # The held SLO's page lists the rollout it holds, and its link opens that rollout; the other SLO holds nothing.
        signed_in.get(f"{steward.base_url}/slos/{other['id']}")
        assert not signed_in.find_elements("id", "slo-holds")
        signed_in.get(f"{steward.base_url}/slos/{slo['id']}")
        click_through(signed_in, signed_in.find_element("css selector", f"#slo-holds a[href='/rollouts/{held['id']}']"))
        assert signed_in.current_url.endswith(f"/rollouts/{held['id']}"), signed_in.current_url
        status, aborted = api.call("POST", f"/api/v1/rollouts/{held['id']}/abort")
        assert status == 200 and aborted["state"] == "aborted"
        # Aborted, the rollout is held no more, but the spent budget still keeps the SLO from an operator's changes.
        status, problem = operator_api.call("PUT", f"/api/v1/slos/{slo['id']}", {"objective": 50})
        assert status == 403 and "has spent its error budget" in problem["detail"], problem
    finally:
        remove_account(operator)

    # A security rollout on the covered host, approved as urgent with a reason by the second person, goes through.
    status, urgent = api.call("POST", "/api/v1/rollouts", {
        "title": "CVE fix for the shop host", "what": "security", "targets": [covered.name], "canary": 0, "wave_size": 1,
        "settle_seconds": 1, "approvals_required": 1})
    assert status == 201, urgent
    assert wait_job(api, urgent["plan_job"]["id"], timeout=300)["state"] == "succeeded"
    wait_rollout(api, urgent["id"], lambda r: r["state"] == "awaiting_approval")
    # An urgent approval needs a reason, and the requester cannot give one.
    status, problem = approver_api.call("POST", f"/api/v1/rollouts/{urgent['id']}/approve", {"urgent": True})
    assert status == 422 and "reason" in problem["errors"], problem
    status, problem = api.call("POST", f"/api/v1/rollouts/{urgent['id']}/approve", {"urgent": True, "reason": "mine"})
    assert status == 403, problem
    status, approved = approver_api.call("POST", f"/api/v1/rollouts/{urgent['id']}/approve", {
        "urgent": True, "reason": "the fix closes a remotely exploitable hole"})
    assert status == 200, approved
    done = wait_rollout(api, urgent["id"], lambda r: r["state"] in ("succeeded", "failed", "paused"), timeout=300, what="the urgent rollout")
    assert done["state"] == "succeeded", done["state_detail"]
    assert installed(covered) == "2.0"
    wave = done["waves"][0]
    assert wave["state"] == "passed" and f"approved as urgent by {person.name}" in wave["gate"], wave
    assert wave["budget"]["shop-availability"]["before"] < 0 and wave["budget"]["shop-availability"]["after"] is not None, wave
    assert any(a["urgent"] and a["actor"] == person.name for a in done["approvals"])

    # After the service recovered, the page resolves (the history has it firing, then normal).
    wait_for("the page to resolve", lambda: live_alert(api, PAGE) is None, timeout=300, every=2)
    status, history = api.get("/api/v1/alerts/history", limit=200)
    states = [h["to"] for h in reversed(history["items"]) if h["rule"] == PAGE]
    assert states[:1] == ["firing"] and states[-1] == "normal", states

    # The pages: two SLOs, the spent one first; each row's link opens its own SLO.
    browser = signed_in
    browser.get(f"{steward.base_url}/slos")
    # Other tests' SLOs may share this server: ours come in budget order, each row with its own badge and link.
    rows = browser.find_elements("css selector", "#slos-table tbody tr")
    names = [r.find_element("css selector", "th").text for r in rows]
    assert names.index("shop-availability") < names.index("shop-port"), names
    assert "badge-critical" in browser.find_element("id", f"slo-{slo['id']}").get_attribute("innerHTML")
    assert "badge-critical" not in browser.find_element("id", f"slo-{other['id']}").get_attribute("innerHTML")
    click_through(browser, browser.find_element("id", f"slo-{other['id']}").find_element("css selector", "a"))
    assert browser.current_url.endswith(f"/slos/{other['id']}") and "shop-port" in browser.find_element("css selector", "h1").text
    browser.get(f"{steward.base_url}/slos/{slo['id']}")
    assert "spent" in browser.find_element("id", "slo-remaining").text
    chart = browser.find_element("id", "budget-chart").get_attribute("innerHTML")
    assert "<svg" in chart and f"rollout #{urgent['id']}" in chart, "the budget chart marks the rollout waves"
    # The checks page: two rows; running one check from its own page runs that one only.
    browser.get(f"{steward.base_url}/checks")
    # Other tests' checks may share this server: ours are two rows of their own.
    assert browser.find_element("id", f"check-{http_check['id']}") and browser.find_element("id", f"check-{tcp_check['id']}")
    assert len(browser.find_elements("css selector", "#checks-table tbody tr")) >= 2
    status, before = api.call("GET", f"/api/v1/checks/{http_check['id']}")
    browser.get(f"{steward.base_url}/checks/{tcp_check['id']}")
    click_through(browser, browser.find_element("css selector", f"form[action='/checks/{tcp_check['id']}/run'] button"))
    assert "Check shop-tcp passed" in browser.page_source

    # The export means the same to Prometheus: every query of the Sloth document parses in promtool.
    export = yaml.safe_load(api_text(api, "/api/v1/slos/export?format=sloth"))
    # Other tests' SLOs may share this server: ours are in the export, and only ours are imported again below.
    ours = {"shop-availability", "shop-port"}
    assert ours <= {s["name"] for s in export["slos"]}, export["slos"]
    rules = [{"record": f"steward:slo_{i}_{kind}", "expr": s["sli"]["events"][key].replace("{{.window}}", "5m")}
             for i, s in enumerate(export["slos"]) for kind, key in (("errors", "error_query"), ("total", "total_query"))]
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as file:
        yaml.safe_dump({"groups": [{"name": "steward-slos", "rules": rules}]}, file)
        file.flush()
        checked = subprocess.run(["promtool", "check", "rules", file.name], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The Sloth export imports as two new SLOs (Sloth names are service-name); the OpenSLO export holds both objectives.
    export["slos"] = [s for s in export["slos"] if s["name"] in ours]
    status, imported = api_post_yaml(api, "/api/v1/slos/import", yaml.safe_dump(export))
    assert status == 200 and imported["failures"] == [], imported
    assert sorted(imported["created"]) == ["steward-shop-availability", "steward-shop-port"], imported
    documents = list(yaml.safe_load_all(api_text(api, "/api/v1/slos/export?format=openslo")))
    targets = {d["metadata"]["name"]: d["spec"]["objectives"][0]["target"] for d in documents}
    assert targets["shop-availability"] == 0.997 and targets["shop-port"] == 0.99, targets
    assert all(d["apiVersion"] == "openslo/v1" and d["kind"] == "SLO" for d in documents)


def api_text(api, path):
    import urllib.request
    request = urllib.request.Request(api.base + path, headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
        return response.read().decode()


def api_post_yaml(api, path, text):
    import json
    import urllib.error
    import urllib.request
    request = urllib.request.Request(api.base + path, data=text.encode(), method="POST",
                                     headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/yaml"})
    try:
        with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def role_api(steward, person, role):
    """The API as `person`, granted `role` for real, through a token of that role."""
    subprocess.run([str(_binary()), "role", "grant", role, "--user", person.name, "--data", str(steward.data)], check=True,
                   capture_output=True)
    token = subprocess.run([str(_binary()), "token", "create", "--user", person.name, "--name", role, "--role", role,
                            "--data", str(steward.data)], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return Api(steward, token)


def test_roles_and_refusals(steward, api):
    """Viewers read checks and SLOs but change nothing; nobody may point a check at the metadata service; a wrong SLO
    names each field."""
    viewer = make_account("steward-view")
    try:
        viewer_api = role_api(steward, viewer, "viewer")
        assert viewer_api.call("GET", "/api/v1/slos")[0] == 200
        assert viewer_api.call("GET", "/api/v1/checks")[0] == 200
        status, _ = viewer_api.call("POST", "/api/v1/checks", {"name": "x", "target": "http://127.0.0.1:1/"})
        assert status == 403
        status, _ = viewer_api.call("POST", "/api/v1/slos", {"name": "x", "sli": "availability", "hosts": ["localhost"]})
        assert status == 403
    finally:
        remove_account(viewer)
    for target in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/"):
        status, problem = api.call("POST", "/api/v1/checks", {"name": "metadata", "target": target})
        assert status == 422 and "link-local" in problem["errors"]["target"], problem
    status, problem = api.call("POST", "/api/v1/slos", {
        "name": "bad!", "sli": "ratio", "events_query": "sum(rate(x[{{.window}}])", "objective": 100, "window": "90d"})
    assert status == 422, problem
    assert {"window"} <= set(problem["errors"]), problem
    status, problem = api.call("POST", "/api/v1/slos", {
        "name": "bad!", "sli": "ratio", "events_query": "sum(rate(x[{{.window}}])", "objective": 100})
    assert status == 422 and {"name", "events_query", "total_query", "objective"} <= set(problem["errors"]), problem


def test_slo_form_names_wrong_fields_keeps_input_and_removes_the_right_slo(steward, api, signed_in):
    """The form on /slos: a wrong objective and query are named beside their fields with what was typed kept; the
    corrected form saves; with two SLOs listed, removing one from its page asks about that one and leaves the other."""
    status, check = api.call("POST", "/api/v1/checks", {"name": "form-check", "target": steward.base_url + "/readyz",
                                                        "interval_seconds": 30})
    assert status == 201, check
    browser = signed_in
    browser.get(f"{steward.base_url}/slos")
    form = browser.find_element("id", "slo-form")
    form.find_element("name", "name").send_keys("form-made")
    Select(form.find_element("name", "sli")).select_by_value("ratio")
    form.find_element("name", "events_query").send_keys("sum(rate(x[{{.window}}])")
    objective = form.find_element("name", "objective")
    objective.clear()
    objective.send_keys("100")
    click_through(browser, form.find_element("css selector", "button[type=submit]"))
    errors = {e.find_element("xpath", "..").find_element("tag name", "label").get_attribute("for"): e.text
              for e in browser.find_elements("css selector", "#slo-form p.error")}
    assert "no error budget" in errors["field-objective"] and "field-events-query" in errors and "field-total-query" in errors, errors
    assert browser.find_element("id", "field-events-query").get_attribute("value") == "sum(rate(x[{{.window}}])"
    form = browser.find_element("id", "slo-form")
    Select(form.find_element("name", "sli")).select_by_value("probe")
    Select(form.find_element("name", "check")).select_by_visible_text("form-check")
    objective = form.find_element("name", "objective")
    objective.clear()
    objective.send_keys("99.5")
    click_through(browser, form.find_element("css selector", "button[type=submit]"))
    assert "Saved SLO form-made" in browser.page_source
    made = browser.current_url.rsplit("/", 1)[1]
    status, other = api.call("POST", "/api/v1/slos", {"name": "form-other", "sli": "probe", "check": "form-check", "objective": 99})
    assert status == 201, other
    browser.get(f"{steward.base_url}/slos/{made}")
    browser.find_element("css selector", f"form[action='/slos/{made}/delete'] button").click()
    assert "form-made" in browser.switch_to.alert.text
    browser.switch_to.alert.accept()
    wait_for("the removal", lambda: "Removed SLO form-made" in browser.page_source, timeout=20, every=0.2)
    status, listed = api.call("GET", "/api/v1/slos")
    names = {s["name"] for s in listed["items"]}
    assert "form-made" not in names and "form-other" in names, names
    status, rules = api.call("GET", "/api/v1/alerts/rules")
    assert not any(r["name"].startswith("SLO form-made:") for r in rules["items"]), "its alert rules went with it"
