"""Remote write set up in the browser: two endpoints, a real Prometheus receiving the panel host's samples and one
that cannot be reached. Each row shows its own state, editing and removing one leaves the other alone, the storage
page and /metrics show the lag, and a viewer or operator can read the state but change nothing."""
import json
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from test_metrics import wait_for
from conftest import make_account, remove_account
from test_row_actions import find_row
from test_security_boundaries import token_for


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prometheus_query(port, query):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["data"]["result"]


def add_endpoint(driver, steward, name, url, auth="none", secret=""):
    driver.get(steward.base_url + "/settings/remote-write")
    form = driver.find_element(By.ID, "remote-write-form")
    form.find_element(By.ID, "field-name").send_keys(name)
    form.find_element(By.ID, "field-url").send_keys(url)
    Select(form.find_element(By.ID, "field-auth")).select_by_value(auth)
    if secret:
        form.find_element(By.ID, "field-secret").send_keys(secret)
    button = form.find_element(By.CSS_SELECTOR, "button[type=submit]")
    button.click()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(button))


def test_two_endpoints_in_the_browser_each_row_its_own(api, steward, signed_in):
    work = tempfile.mkdtemp(prefix="steward-rw-")
    port = free_port()
    dead = free_port()
    with open(f"{work}/prometheus.yml", "w") as config:
        config.write("global: {scrape_interval: 1m}\n")
    prometheus = subprocess.Popen(
        ["/usr/bin/prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    created = []
    try:
        driver = signed_in
        add_endpoint(driver, steward, "e2e-central", f"http://127.0.0.1:{port}/api/v1/write")
        add_endpoint(driver, steward, "e2e-unreachable", f"http://127.0.0.1:{dead}/api/v1/write", auth="bearer", secret="tok-e2e")
        items = {e["name"]: e for e in api.call("GET", "/api/v1/remote-write")[1]["items"]}
        created = [items["e2e-central"]["id"], items["e2e-unreachable"]["id"]]
        assert items["e2e-unreachable"]["auth"] == "bearer" and items["e2e-unreachable"]["has_secret"]
        assert "tok-e2e" not in json.dumps(items)

        # The panel host's samples reach the real Prometheus; the other endpoint fails and waits to retry.
        wait_for(lambda: prometheus_query(port, 'steward_host_up{instance="localhost"}'), timeout=60,
                 what="the panel host's samples in Prometheus")

        def states():
            found = {e["name"]: e for e in api.call("GET", "/api/v1/remote-write")[1]["items"]}
            central, unreachable = found["e2e-central"], found["e2e-unreachable"]
            ready = central["samples_sent"] > 0 and unreachable["requests_retried"] > 0 and unreachable["pending_samples"] > 0
            return (central, unreachable) if ready else None
        central, unreachable = wait_for(states, timeout=60, what="one endpoint sending and one retrying")
        assert central["last_error"] == "" and central["samples_rejected"] == 0
        assert "did not answer" in unreachable["last_error"], unreachable

        # Each row shows its own endpoint's state.
        row = find_row(driver, steward, "/settings/remote-write", "remote-write-table", "e2e-unreachable")
        assert "did not answer" in row.text and f"127.0.0.1:{dead}" in row.text, row.text
        row = find_row(driver, steward, "/settings/remote-write", "remote-write-table", "e2e-central")
        assert "did not answer" not in row.text and "never" not in row.text, row.text
        storage = find_row(driver, steward, "/settings/storage", "remote-write-state", "e2e-unreachable")
        assert "did not answer" in storage.text

        # Edit the second row's endpoint: switch it off. The first stays on.
        links = [a for a in find_row(driver, steward, "/settings/remote-write", "remote-write-table", "e2e-unreachable")
                 .find_elements(By.CSS_SELECTOR, "a") if a.text == "e2e-unreachable"]
        assert len(links) == 1
        links[0].click()
        assert driver.find_element(By.TAG_NAME, "h1").text == "Remote write: e2e-unreachable"
        enabled = driver.find_element(By.CSS_SELECTOR, "#remote-write-form input[name=enabled]")
        assert enabled.is_selected()
        enabled.click()
        button = driver.find_element(By.CSS_SELECTOR, "#remote-write-form button[type=submit]")
        button.click()
        WebDriverWait(driver, 15).until(expected_conditions.staleness_of(button))
        found = {e["name"]: e for e in api.call("GET", "/api/v1/remote-write")[1]["items"]}
        assert found["e2e-unreachable"]["enabled"] is False and found["e2e-unreachable"]["has_secret"], "the token is kept"
        assert found["e2e-central"]["enabled"] is True
        assert "(off)" in find_row(driver, steward, "/settings/remote-write", "remote-write-table", "e2e-unreachable").text
        assert "(off)" not in find_row(driver, steward, "/settings/remote-write", "remote-write-table", "e2e-central").text

        # /metrics carries both endpoints' figures.
        with urllib.request.urlopen(urllib.request.Request(
                steward.base_url + "/metrics", headers={"Authorization": f"Bearer {api.token}"}),
                context=api.context, timeout=10) as answer:
            exposition = answer.read().decode()
        assert 'steward_remote_write_lag_seconds{endpoint="e2e-central"}' in exposition
        assert 'steward_remote_write_enabled{endpoint="e2e-unreachable"} 0' in exposition

        # Remove the second from its own page; the first remains and keeps sending.
        driver.get(steward.base_url + f"/settings/remote-write/{created[1]}")
        remove = driver.find_element(By.XPATH, "//button[text()='Remove endpoint']")
        remove.click()
        WebDriverWait(driver, 3).until(expected_conditions.alert_is_present())
        question = driver.switch_to.alert.text
        driver.switch_to.alert.accept()
        assert "e2e-unreachable" in question, question
        WebDriverWait(driver, 15).until(expected_conditions.staleness_of(remove))
        names = [e["name"] for e in api.call("GET", "/api/v1/remote-write")[1]["items"]]
        assert "e2e-unreachable" not in names and "e2e-central" in names
        created.remove(created[1])
        before = central["samples_sent"]
        wait_for(lambda: {e["name"]: e for e in api.call("GET", "/api/v1/remote-write")[1]["items"]}["e2e-central"]["samples_sent"] > before,
                 timeout=30, what="the remaining endpoint still sending")
    finally:
        for endpoint_id in created:
            api.call("DELETE", f"/api/v1/remote-write/{endpoint_id}")
        prometheus.terminate()
        prometheus.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def test_viewers_and_operators_read_remote_write_but_change_nothing(api, steward):
    status, endpoint = api.call("POST", "/api/v1/remote-write", {"name": "e2e-roles", "url": "http://127.0.0.1:9/api/v1/write",
                                                                  "auth": "basic", "username": "u", "secret": "pw-e2e"})
    assert status == 201, endpoint
    try:
        for role in ("viewer", "operator"):
            person = make_account(f"rw{role[:3]}")
            try:
                token = token_for(steward, person.name, role)
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

                def call(method, path, body=None):
                    request = urllib.request.Request(steward.base_url + path, method=method, headers=headers,
                                                     data=json.dumps(body).encode() if body is not None else None)
                    try:
                        with urllib.request.urlopen(request, context=api.context, timeout=10) as answer:
                            return answer.status, answer.read().decode()
                    except urllib.error.HTTPError as error:
                        return error.code, error.read().decode()
                status, body = call("GET", "/api/v1/remote-write")
                assert status == 200 and "e2e-roles" in body and "pw-e2e" not in body, (role, status)
                assert call("POST", "/api/v1/remote-write", {"name": "x", "url": "http://127.0.0.1:9/w"})[0] == 403, role
                assert call("PUT", f"/api/v1/remote-write/{endpoint['id']}", {"url": "http://evil.example/w"})[0] == 403, role
                assert call("DELETE", f"/api/v1/remote-write/{endpoint['id']}")[0] == 403, role
            finally:
                remove_account(person)
        status, after = api.call("GET", "/api/v1/remote-write")
        mine = [e for e in after["items"] if e["name"] == "e2e-roles"]
        assert mine and mine[0]["url"] == "http://127.0.0.1:9/api/v1/write"
    finally:
        api.call("DELETE", f"/api/v1/remote-write/{endpoint['id']}")
