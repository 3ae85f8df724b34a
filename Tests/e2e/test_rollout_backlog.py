"""Rollouts at a real host's size: a fleet host with 320 pending updates (64 of them security) from two apt
repositories built here, and the panel host's own real backlog planned in check mode (never applied). Root only."""
import functools
import http.server
import os
import pathlib
import subprocess
import sys
import tempfile
import threading

import pytest

from conftest import job_log, wait_job, wait_rollout

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "fleet"))
from fleet import Fleet  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root")
SECURITY = 64
ORDINARY = 256


def names():
    # Long names, so the plan of one host is tens of kilobytes (the display copy of a task result keeps 2,000 characters).
    return [f"steward-backlog-{'security' if n < SECURITY else 'ordinary'}-package-{n:03d}" for n in range(SECURITY + ORDINARY)]


def build(workdir: pathlib.Path, name: str, version: str) -> pathlib.Path:
    root = workdir / f"{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Steward tests <tests@localhost>\n"
        "Section: misc\nPriority: optional\nDescription: A package for Steward's backlog tests\n")
    output = workdir / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "-z1", "--root-owner-group", "--build", str(root), str(output)], check=True, capture_output=True)
    return output


def flat_repository(directory: pathlib.Path, suite: str) -> None:
    packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=directory, check=True, capture_output=True, text=True).stdout
    (directory / "Packages").write_text(packages)
    release = subprocess.run(
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=Steward", "-o", f"APT::FTPArchive::Release::Suite={suite}",
         "-o", f"APT::FTPArchive::Release::Codename={suite}", "release", "."], cwd=directory, check=True, capture_output=True, text=True).stdout
    (directory / "Release").write_text(release)


@pytest.fixture(scope="module")
def backlog_host(steward, api):
    """One fleet host with every package at 1.0; 2.0 of the first 64 in a -security suite, of the rest in an ordinary one."""
    with tempfile.TemporaryDirectory(prefix="steward-backlog-") as temp:
        workdir = pathlib.Path(temp)
        served = workdir / "served"
        (served / "security").mkdir(parents=True)
        (served / "updates").mkdir()
        olds = []
        for n, name in enumerate(names()):
            olds.append(build(workdir, name, "1.0"))
            new = build(workdir, name, "2.0")
            new.rename(served / ("security" if n < SECURITY else "updates") / new.name)
        flat_repository(served / "security", "stewardtest-security")
        flat_repository(served / "updates", "stewardtest-updates")
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        public_key = (steward.data / "ssh" / "id_ed25519.pub").read_text()
        try:
            with Fleet(1, authorized_key=public_key, prefix="blfleet") as fleet:
                host = fleet.hosts[0]
                (host.root / "etc/apt/sources.list").write_text("")
                (host.root / "etc/apt/sources.list.d/steward-test.list").write_text(
                    f"deb [trusted=yes] {url}/security ./\ndeb [trusted=yes] {url}/updates ./\n")
                (host.root / "tmp/old").mkdir()
                for deb in olds:
                    (host.root / "tmp/old" / deb.name).write_bytes(deb.read_bytes())
                host.run("sh", "-c", "dpkg -i /tmp/old/*.deb >/dev/null")
                status, created = api.call("POST", "/api/v1/hosts", {
                    "name": host.name, "address": host.address, "ssh_port": host.port, "ssh_user": host.user, "become": "sudo",
                    "groups": ["blfleet"]})
                assert status == 201, created
                status, verdict = api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/scan")
                api.call("POST", f"/api/v1/hosts/{created['id']}/host-key/trust", {"fingerprint": verdict["presented"]})
                yield host
                api.call("PATCH", f"/api/v1/hosts/{created['id']}", {"enabled": False})
        finally:
            server.shutdown()


def versions(host) -> dict:
    out = host.run("dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "steward-backlog-*").stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def test_a_security_rollout_of_a_320_update_backlog_plans_applies_and_reports_every_package(api, backlog_host):
    host = backlog_host
    status, rollout = api.call("POST", "/api/v1/rollouts", {
        "title": "Security backlog", "what": "security", "targets": [host.name], "canary": 1, "wave_size": 1,
        "settle_seconds": 1, "approvals_required": 0})
    assert status == 201, rollout
    assert wait_job(api, rollout["plan_job"]["id"], timeout=600)["state"] == "succeeded", job_log(api, rollout["plan_job"]["id"])
    planned = wait_rollout(api, rollout["id"], lambda r: r["state"] != "planning")
    assert planned["state"] in ("approved", "running", "succeeded"), planned["state_detail"]
    packages = planned["plan"][0]["packages"]
    security = sorted(names()[:SECURITY])
    assert sorted(p["package"] for p in packages) == security
    assert {(p["current"], p["candidate"], p["security"]) for p in packages} == {("1.0", "2.0", True)}

    done = wait_rollout(api, rollout["id"], lambda r: r["state"] in ("succeeded", "failed", "paused", "aborted"), timeout=600)
    assert done["state"] == "succeeded", done["state_detail"]
    assert f"1 host(s) in 1 wave(s): {SECURITY} package change(s)" in done["state_detail"]
    report = done["results"][0]["packages"]
    assert sorted(r["package"] for r in report) == security and {(r["from"], r["to"]) for r in report} == {("1.0", "2.0")}
    now = versions(host)
    assert [name for name in security if now[name] != "2.0"] == []
    assert [name for name in names()[SECURITY:] if now[name] != "1.0"] == [], "only the security updates were applied"

    # The rest of the backlog, planned (not applied): every ordinary package with both versions.
    status, rest = api.call("POST", "/api/v1/rollouts", {
        "title": "The rest", "what": "all", "targets": [host.name], "approvals_required": 1})
    assert status == 201, rest
    wait_job(api, rest["plan_job"]["id"], timeout=600)
    rest = wait_rollout(api, rest["id"], lambda r: r["state"] != "planning")
    assert rest["state"] == "awaiting_approval", rest["state_detail"]
    assert sorted((p["package"], p["current"], p["candidate"]) for p in rest["plan"][0]["packages"]) == [
        (name, "1.0", "2.0") for name in sorted(names()[SECURITY:])]
    assert api.call("POST", f"/api/v1/rollouts/{rest['id']}/abort")[0] == 200


def test_the_panel_hosts_real_backlog_plans_in_check_mode_with_as_many_packages_as_apt(api):
    """Check mode only: the plan refreshes the package lists and simulates; nothing is installed."""
    status, rollout = api.call("POST", "/api/v1/rollouts", {
        "title": "Panel host backlog (never approved)", "what": "all", "targets": ["localhost"], "approvals_required": 1})
    assert status == 201, rollout
    assert wait_job(api, rollout["plan_job"]["id"], timeout=600)["state"] == "succeeded", job_log(api, rollout["plan_job"]["id"])
    planned = wait_rollout(api, rollout["id"], lambda r: r["state"] != "planning")
    assert planned["state"] == "awaiting_approval", planned["state_detail"]
    simulated = subprocess.run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"], check=True, capture_output=True, text=True).stdout
    expected = sorted(line.split()[1] for line in simulated.splitlines() if line.startswith("Inst "))
    assert sorted(p["package"] for p in planned["plan"][0]["packages"]) == expected
    assert api.call("POST", f"/api/v1/rollouts/{rollout['id']}/abort")[0] == 200
