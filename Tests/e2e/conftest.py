"""Fixtures for Steward's browser tests: the real built binary on 127.0.0.1 with a temp data dir, a throwaway Unix
account that signs in through the real pam_unix, and headless Chromium."""
import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import ssl

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Screenshots, and the output of a server that ended before its tests did.
ARTIFACTS = pathlib.Path(os.environ.get("STEWARD_ARTIFACTS", "/tmp/steward-e2e-artifacts"))


def _binary() -> pathlib.Path:
    for candidate in (os.environ.get("STEWARD_BINARY"), ROOT / ".build/debug/steward", ROOT / ".build/release/steward"):
        if candidate and pathlib.Path(candidate).is_file():
            return pathlib.Path(candidate)
    raise RuntimeError("no steward binary: run `swift build` first (make test does)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningSteward:
    def __init__(self, base_url: str, data: pathlib.Path, process: subprocess.Popen, output: pathlib.Path):
        self.base_url = base_url
        self.data = data
        self.process = process
        self.output = output


class UnixAccount:
    def __init__(self, name: str, password: str):
        self.name = name
        self.password = password


def make_account(prefix: str = "steward-test") -> UnixAccount:
    """A real local account with a random password, for signing in through pam_unix (root only)."""
    if os.geteuid() != 0:
        pytest.skip("signing in through the real pam_unix needs a throwaway Unix account, which only root can create")
    name = f"{prefix}-{secrets.randbelow(900000) + 100000}"
    password = "pw-" + secrets.token_urlsafe(12)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    return UnixAccount(name, password)


def remove_account(account: UnixAccount) -> None:
    subprocess.run(["userdel", account.name], check=False)


@pytest.fixture(scope="session")
def account():
    """The administrator the browser signs in as: created for this run and removed after it."""
    created = make_account()
    try:
        yield created
    finally:
        remove_account(created)


def steward_environment() -> dict:
    """The environment every test server runs with: no inherited STEWARD_*, and collection every 2 s (logs 5 s)
    instead of 10 s, so charts, the fleet overview, logs and alerts fill within the tests' time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env["STEWARD_METRICS_INTERVAL_SECONDS"] = "2"
    env["STEWARD_ALERT_INTERVAL_SECONDS"] = "2"
    # Logs every 5 s: every fleet host's journal is read all through the suite; test_logs runs its own Steward at 2 s.
    env["STEWARD_LOGS_INTERVAL_SECONDS"] = "5"
    # Account standing (deleted, locked, expired) is read again after 2 s instead of a minute.
    env["STEWARD_ACCOUNT_RECHECK_SECONDS"] = "2"
    return env


def start_steward(data: pathlib.Path, output: pathlib.Path, port: int, extra_env: dict | None = None) -> RunningSteward:
    """`steward serve` with its defaults (HTTPS, self-signed certificate) on 127.0.0.1:port, once it answers /readyz."""
    env = steward_environment()
    env.update(extra_env or {})
    if env.get("STEWARD_PRIVILEGE_SEPARATION") != "false":
        # Started as root, the web process runs as steward and must reach the data directory inside this test's
        # temporary one (made 0700 by tempfile).
        os.chmod(data.parent, 0o711)
    with open(output, "ab") as log:
        process = subprocess.Popen(
            [str(_binary()), "serve", "--data", str(data), "--bind", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd="/",
        )
    base_url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base_url + "/readyz", context=context, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("steward did not become ready:\n" + output.read_text(errors="replace"))
        time.sleep(0.2)
    return RunningSteward(base_url, data, process, output)


def stop_steward(running: RunningSteward) -> None:
    died = running.process.poll()
    running.process.terminate()
    try:
        running.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait(timeout=10)
    if died is not None:
        # The server ended before its tests did: keep its output (the temporary directory goes away) and show the end.
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        kept = ARTIFACTS / f"steward-exited-{running.process.pid}.log"
        text = running.output.read_text(errors="replace")
        kept.write_text(text)
        sys.stderr.write(f"steward exited early with status {died}; its output is in {kept}. The end of it:\n{text[-6000:]}\n")


@pytest.fixture(scope="session")
def steward(account):
    """Start `steward serve` with its defaults (HTTPS, self-signed certificate, PAM service steward) on a free
    loopback port, with the throwaway account made admin through the CLI first."""
    with tempfile.TemporaryDirectory(prefix="steward-e2e-") as temp:
        data = pathlib.Path(temp) / "data"
        subprocess.run(
            [str(_binary()), "role", "grant", "admin", "--user", account.name, "--data", str(data)],
            check=True, env=steward_environment(), cwd="/", capture_output=True)
        running = start_steward(data, pathlib.Path(temp) / "steward.log", _free_port())
        try:
            yield running
        finally:
            stop_steward(running)


@pytest.fixture(scope="session")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900", "--disable-gpu"):
        options.add_argument(argument)
    options.accept_insecure_certs = True
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver, base_url: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url + "/login")
    driver.find_element(By.ID, "field-username").send_keys(user)
    driver.find_element(By.ID, "field-password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "/login" not in d.current_url or d.find_elements(By.ID, "login-error"))


def click_through(driver, element) -> None:
    """Click a link or submit button and wait until the page it loads has replaced this one.

    A click returns before a form's reply arrives, so reading the page straight after it can read the old page."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    element.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(element))


@pytest.fixture(scope="session")
def signed_in(browser, steward, account):
    """The browser, signed in as the admin account through /login (real PAM, real session cookie)."""
    sign_in(browser, steward.base_url, account.name, account.password)
    assert "/login" not in browser.current_url, browser.page_source[:2000]
    return browser


class Api:
    """The JSON API with an admin token: call() returns (status, parsed body), errors included."""

    def __init__(self, steward, token):
        self.base = steward.base_url
        self.token = token
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path, **query):
        return self.call("GET", path + ("?" + urllib.parse.urlencode(query) if query else ""))

    def commit_file(self, path, content, message):
        """Commit a file to the config repo as an admin does on the Config page (hooks/, playbooks/)."""
        data = urllib.parse.urlencode({"path": path, "content": content, "message": message, "is_new": "1"}).encode()
        request = urllib.request.Request(self.base + "/config/file", data=data, method="POST",
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/x-www-form-urlencoded"})

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=self.context))
        try:
            with opener.open(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code


def make_token(data: pathlib.Path, user: str) -> str:
    """An admin API token for `user`, made through the CLI."""
    return subprocess.run([str(_binary()), "token", "create", "--user", user, "--name", "e2e tests", "--role", "admin",
                           "--data", str(data)], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def api(steward, account):
    """An admin API token for the module's tests, made through the CLI."""
    return Api(steward, make_token(steward.data, account.name))


def wait_job(api, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = api.call("GET", f"/api/v1/jobs/{job_id}")
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


def job_log(api, job_id):
    request = urllib.request.Request(api.base + f"/api/v1/jobs/{job_id}/log?follow=false", headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
        lines = [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]
    return "".join(line.get("text", "") for line in lines if line.get("type") == "log")


def wait_rollout(api, rollout_id, condition, timeout=300, what="the rollout"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, rollout = api.call("GET", f"/api/v1/rollouts/{rollout_id}")
        if condition(rollout):
            return rollout
        time.sleep(0.5)
    raise AssertionError(f"{what} did not get there: {rollout['state']} {rollout['state_detail']}")


def pytest_configure(config):
    config.addinivalue_line("markers", "stops_shared_server: stops the session's steward; run after every other test")


def pytest_collection_modifyitems(config, items):
    """Tests that stop the shared server run last, whatever file they are in (a stable sort keeps the rest in order)."""
    items.sort(key=lambda item: item.get_closest_marker("stops_shared_server") is not None)
