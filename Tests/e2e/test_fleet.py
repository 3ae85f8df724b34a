"""Steward against real SSH hosts (the test fleet): enrolment, explicit host-key trust, connectivity, and a
substituted host key (SECURITY.md class 13). Root only."""
import json
import os
import pathlib
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fleet"))
from fleet import Fleet  # noqa: E402

from conftest import _binary  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root")


class Api:
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


@pytest.fixture(scope="module")
def api(steward, account):
    token = subprocess.run([str(_binary()), "token", "create", "--user", account.name, "--name", "fleet tests", "--role", "admin",
                            "--data", str(steward.data)], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return Api(steward, token)


@pytest.fixture(scope="module")
def fleet(steward):
    public_key = (steward.data / "ssh" / "id_ed25519.pub").read_text()
    with Fleet(2, authorized_key=public_key) as running:
        yield running


def wait_job(api, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = api.call("GET", f"/api/v1/jobs/{job_id}")
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


def test_host_keys_are_trusted_explicitly_and_a_substituted_key_blocks_the_host(api, fleet):
    ids = {}
    for host in fleet.hosts:
        status, created = api.call("POST", "/api/v1/hosts", {
            "name": host.name, "address": host.address, "ssh_port": host.port, "ssh_user": host.user, "become": "sudo", "groups": ["fleet"]})
        assert status == 201, created
        ids[host.name] = created["id"]
        status, verdict = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/scan")
        # First contact: nothing is trusted until someone confirms the fingerprint the host itself reports.
        assert verdict["status"] == "unconfirmed" and verdict["presented"] == host.host_key_fingerprint()
        status, wrong = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/trust", {"fingerprint": "SHA256:not-the-key"})
        assert status == 409
        status, trusted = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/trust", {"fingerprint": verdict["presented"]})
        assert status == 200 and trusted["status"] == "trusted"

    status, schedules = api.call("GET", "/api/v1/schedules")
    check = next(s for s in schedules["items"] if s["name"] == "Host connectivity check")
    status, started = api.call("POST", f"/api/v1/schedules/{check['id']}/run")
    job = wait_job(api, started["id"])
    assert job["state"] == "succeeded", job
    for host in fleet.hosts:
        status, record = api.call("GET", f"/api/v1/hosts/{ids[host.name]}")
        assert record["state"] == "up" and record["last_seen_at"], record

    # Class 13: the machine at fleet-1's address now presents another key.
    substituted = fleet.hosts[0]
    old = substituted.host_key_fingerprint()
    substituted.replace_host_keys()
    new = substituted.host_key_fingerprint()
    status, verdict = api.call("POST", f"/api/v1/hosts/{ids[substituted.name]}/host-key/scan")
    assert verdict["status"] == "changed" and verdict["trusted"] == old and verdict["presented"] == new
    assert old in verdict["message"] and new in verdict["message"]
    status, started = api.call("POST", f"/api/v1/schedules/{check['id']}/run")
    wait_job(api, started["id"])
    status, record = api.call("GET", f"/api/v1/hosts/{ids[substituted.name]}")
    assert record["state"] == "unreachable" and "CHANGED" in record["state_detail"] and new in record["state_detail"]
    status, other = api.call("GET", f"/api/v1/hosts/{ids[fleet.hosts[1].name]}")
    assert other["state"] == "up", "the other host is untouched"

    # Re-trusting is an admin action, and it is audited with both fingerprints.
    status, trusted = api.call("POST", f"/api/v1/hosts/{ids[substituted.name]}/host-key/trust", {"fingerprint": new})
    assert trusted["status"] == "trusted"
    status, events = api.call("GET", f"/api/v1/audit?action=hostkey.retrust&target=host:{substituted.name}")
    event = events["items"][0]
    assert event["before"]["fingerprint"] == old and event["after"]["fingerprint"] == new


def test_an_unreachable_host_is_reported_as_down(api):
    status, created = api.call("POST", "/api/v1/hosts", {"name": "nobody-home", "address": "127.0.0.1", "ssh_port": 1})
    assert status == 201, created
    status, verdict = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/scan")
    assert verdict["status"] == "unreachable"
    status, record = api.call("GET", f"/api/v1/hosts/{created['id']}")
    assert record["state"] == "down" and "no host key" in record["state_detail"]
