"""SECURITY.md classes 14-17 against the real server: foreign Host headers, TLS suites, credentials of Unix accounts
that were deleted, locked, expired or must change their password, hooks that come only from the config repo, the
enabled switch, a YAML alias bomb, and a connection flood."""
import http.client
import os
import pathlib
import re
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import pytest

from conftest import (Api, _binary, _free_port, make_account, remove_account, start_steward, steward_environment,
                      stop_steward, wait_job)


@pytest.fixture(scope="module")
def steward(account):
    """A server of this module's own: test_pages.py ends the session's shared server with SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="steward-security-") as temp:
        data = pathlib.Path(temp) / "data"
        subprocess.run([str(_binary()), "role", "grant", "admin", "--user", account.name, "--data", str(data)],
                       check=True, env=steward_environment(), cwd="/", capture_output=True)
        running = start_steward(data, pathlib.Path(temp) / "steward.log", _free_port())
        try:
            yield running
        finally:
            stop_steward(running)


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def port_of(steward) -> int:
    return urllib.parse.urlsplit(steward.base_url).port


def request(steward, path, host=None, method="GET", source="127.0.0.1", timeout=10):
    connection = http.client.HTTPSConnection("127.0.0.1", port_of(steward), context=unverified(), timeout=timeout,
                                             source_address=(source, 0))
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{port_of(steward)}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def token_for(steward, user, role):
    subprocess.run([str(_binary()), "role", "grant", role, "--user", user, "--data", str(steward.data)], check=True,
                   capture_output=True, env=steward_environment(), cwd="/")
    created = subprocess.run([str(_binary()), "token", "create", "--user", user, "--name", "e2e security", "--role", role,
                              "--data", str(steward.data)], check=True, capture_output=True, text=True,
                             env=steward_environment(), cwd="/")
    return created.stdout.strip().splitlines()[-1]


def test_class_17_a_foreign_host_is_refused_before_any_page(steward):
    for path in ("/login", "/setup", "/healthz", "/api/v1/me"):
        status, body = request(steward, path, host="evil.example")
        assert status == 421, (path, status)
        assert "<form" not in body and "allowed_hosts" in body
    # DNS rebinding: the attacker's name resolving to our address changes nothing.
    status, _ = request(steward, "/login", host=f"evil.example:{port_of(steward)}")
    assert status == 421
    assert request(steward, "/login", host=f"localhost:{port_of(steward)}")[0] == 200
    assert request(steward, "/healthz")[0] == 200


def test_class_17_a_state_change_with_the_attackers_origin_is_refused(steward):
    connection = http.client.HTTPSConnection("127.0.0.1", port_of(steward), context=unverified(), timeout=10)
    body = "user=x&password=y"
    connection.request("POST", "/login", body=body, headers={
        "Host": f"127.0.0.1:{port_of(steward)}", "Origin": "https://evil.example",
        "Content-Type": "application/x-www-form-urlencoded"})
    assert connection.getresponse().status == 403


def test_item_9_tls_1_2_offers_only_aead_suites(steward):
    def handshake(ciphers):
        context = unverified()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers + ":@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", port_of(steward)), timeout=10) as raw:
            try:
                with context.wrap_socket(raw) as tls:
                    return tls.cipher()[0]
            except ssl.SSLError:
                return None

    for weak in ("ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA", "AES128-SHA", "AES256-SHA", "AES128-GCM-SHA256",
                 "ECDHE-ECDSA-AES128-SHA"):
        assert handshake(weak) is None, weak
    chosen = handshake("ECDHE+AESGCM:ECDHE+CHACHA20")
    assert chosen is not None and ("GCM" in chosen or "CHACHA20" in chosen)


def test_item_9_anonymous_callers_learn_no_version_or_host_name(steward):
    status, body = request(steward, "/healthz")
    assert status == 200 and body == '{"status":"ok"}'
    status, body = request(steward, "/login")
    # As a word: a short host name (this machine's is "vm") can turn up inside a random CSRF token.
    host = re.escape(socket.gethostname())
    assert not re.search(r"(?<![A-Za-z0-9_-])" + host + r"(?![A-Za-z0-9_-])", body) and "footer" not in body


@pytest.mark.parametrize("change", ["userdel", "usermod -L", "usermod -e 1", "chage -d 0"])
def test_class_16_credentials_follow_the_unix_account(steward, change):
    person = make_account("steward-test-cred")
    try:
        token = token_for(steward, person.name, "operator")
        api = Api(steward, token)
        status, me = api.call("GET", "/api/v1/me")
        assert status == 200 and me["user"] == person.name
        subprocess.run(change.split() + [person.name], check=True, capture_output=True)
        # The standing is read again after account_recheck_seconds (2 s for test servers).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, problem = api.call("GET", "/api/v1/me")
            if status == 401:
                break
            time.sleep(0.5)
        assert status == 401, (change, status)
        expected = {"userdel": "no longer exists", "usermod -L": "is locked", "usermod -e 1": "has expired",
                    "chage -d 0": "must change its password"}[change]
        assert expected in problem["detail"], problem
    finally:
        remove_account(person)


def test_class_14_hooks_come_from_the_config_repo_and_jobs_honour_a_disabled_host(steward, api, tmp_path):
    person = make_account("steward-test-op")
    marker = tmp_path / "hook-ran"
    try:
        operator = Api(steward, token_for(steward, person.name, "operator"))
        source = tmp_path / "src"
        source.mkdir()
        (source / "file.txt").write_text("hello\n")
        status, repository = api.call("POST", "/api/v1/backups/repositories", {
            "name": "e2e security", "path": str(tmp_path / "repo"), "password": "correct horse battery staple"})
        assert status == 201, repository
        # The finding: an operator's plan with a free argv hook. Refused now, whatever the argv.
        for hook in (["/usr/bin/id"], ["/bin/sh", "-c", "id"]):
            status, problem = operator.call("POST", "/api/v1/backups/plans", {
                "name": "e2e argv hook", "repository": repository["id"], "host": "localhost", "paths": [str(source)],
                "pre_hook": hook})
            assert status == 422 and "hooks/" in problem["errors"]["pre_hook"], problem
        # Only an admin writes hooks/; the operator chooses one by name.
        assert operator.commit_file("hooks/e2e-id.sh", "#!/bin/sh\nid\n", "operator tries") == 403
        hook = f"#!/bin/sh\necho \"hook ran as $(id -un) result=${{STEWARD_BACKUP_RESULT:-none}}\" > {marker}\n"
        assert api.commit_file("hooks/e2e-marker.sh", hook, "e2e: a reviewed hook") == 303
        status, plan = operator.call("POST", "/api/v1/backups/plans", {
            "name": "e2e reviewed hook", "repository": repository["id"], "host": "localhost", "paths": [str(source)],
            "pre_hook": ["e2e-marker.sh"]})
        assert status == 201, plan
        status, job = operator.call("POST", f"/api/v1/backups/plans/{plan['id']}/run")
        assert status == 202, job
        job = wait_job(operator, job["id"], timeout=180)
        assert job["state"] == "succeeded", job
        assert marker.read_text().startswith("hook ran as ")
        # The panel's secrets stay out of an operator's plans.
        status, problem = operator.call("POST", "/api/v1/backups/plans", {
            "name": "e2e shadow", "repository": repository["id"], "host": "localhost", "paths": ["/etc/shadow"]})
        assert status == 403, problem
        status, problem = operator.call("PATCH", f"/api/v1/backups/plans/{plan['id']}", {"paths": [str(steward.data)]})
        assert status == 403, problem
        # The enabled switch: a backup job on a disabled localhost does not run.
        marker.unlink()
        status, _ = api.call("PATCH", "/api/v1/hosts/1", {"enabled": False})
        assert status == 200
        try:
            status, job = api.call("POST", f"/api/v1/backups/plans/{plan['id']}/run")
            assert status == 202, job
            job = wait_job(api, job["id"], timeout=120)
            assert job["state"] == "failed" and "disabled" in job["error"], job
            assert not marker.exists()
            status, problem = api.call("POST", "/api/v1/hosts/1/users", {"action": "create", "name": "steward-test-nope"})
            assert status == 409 and "disabled" in problem["detail"]
        finally:
            assert api.call("PATCH", "/api/v1/hosts/1", {"enabled": True})[0] == 200
        api.call("DELETE", f"/api/v1/backups/plans/{plan['id']}")
    finally:
        remove_account(person)


def test_class_15_a_yaml_alias_bomb_is_refused_quickly_and_memory_stays_flat(steward, api):
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in range(1, 10):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        bomb += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
    bomb += "groups: *j\n"
    assert len(bomb) < 500

    def rss_kib():
        for line in pathlib.Path(f"/proc/{steward.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    before = rss_kib()
    connection = http.client.HTTPSConnection("127.0.0.1", port_of(steward), context=unverified(), timeout=30)
    started = time.monotonic()
    connection.request("POST", "/api/v1/alerts/rules/import", body=bomb,
                       headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/yaml"})
    response = connection.getresponse()
    body = response.read().decode()
    elapsed = time.monotonic() - started
    assert response.status == 422 and "more than 200000 values" in body, body
    assert elapsed < 20, elapsed
    assert rss_kib() - before < 300 * 1024, (before, rss_kib())


def test_class_15_a_connection_flood_never_stops_the_server_answering_others():
    """A server with small caps (64 connections, 16 per address, 2 s for a request head) under 600 idle and 100
    slow-header connections from 20 loopback addresses: a normal client keeps getting answers, the idle ones are
    closed, and the process is alive afterwards."""
    with tempfile.TemporaryDirectory(prefix="steward-flood-") as temp:
        running = start_steward(pathlib.Path(temp) / "data", pathlib.Path(temp) / "steward.log", _free_port(), {
            "STEWARD_MAX_CONNECTIONS": "64", "STEWARD_MAX_CONNECTIONS_PER_ADDRESS": "16",
            "STEWARD_HEADER_TIMEOUT_SECONDS": "2"})
        port = urllib.parse.urlsplit(running.base_url).port
        flood = []
        try:
            for index in range(700):
                raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                raw.bind((f"127.0.1.{index % 20 + 1}", 0))
                raw.settimeout(5)
                try:
                    raw.connect(("127.0.0.1", port))
                except OSError:
                    raw.close()
                    continue
                if index % 7 == 0:
                    raw.sendall(b"\x16\x03\x01")  # the start of a TLS record that never finishes
                flood.append(raw)
            assert len(flood) > 600
            failures, answered = 0, 0
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                try:
                    status, _ = request(running, "/healthz", source="127.0.0.2", timeout=5)
                    answered += status == 200
                except OSError:
                    failures += 1
                for raw in flood[::50]:
                    try:
                        raw.send(b"\x03")
                    except OSError:
                        pass
                time.sleep(0.1)
            assert answered >= 20 and failures == 0, (answered, failures)
            closed = 0
            for raw in flood:
                raw.settimeout(0.01)
                try:
                    if raw.recv(1) == b"":
                        closed += 1
                except socket.timeout:
                    pass
                except OSError:
                    closed += 1
            assert closed > len(flood) * 0.9, (closed, len(flood))
            assert running.process.poll() is None
            assert request(running, "/healthz", source="127.0.0.2")[0] == 200
        finally:
            for raw in flood:
                raw.close()
            stop_steward(running)


def _processes_of(pid):
    """(user, uid line, NoNewPrivs, CapEff) of a process, from /proc."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    user = subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return user, fields["Uid"].split(), fields["NoNewPrivs"].strip(), fields["CapEff"].strip()


def _children(pid):
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def test_class_14_privilege_separation_runs_the_web_process_as_steward():
    """With privilege_separation, `steward serve` as root keeps a helper and runs the server as the steward user
    (no capabilities, no-new-privileges); the data directory made by root is handed over; PAM and account standing
    go through the helper: a real sign-in works, and a locked account's token stops working."""
    person = make_account("steward-test-priv")
    with tempfile.TemporaryDirectory(prefix="steward-privsep-") as temp:
        os.chmod(temp, 0o711)  # the web process must reach the data directory inside
        data = pathlib.Path(temp) / "data"
        # An earlier version's data directory: made by root.
        subprocess.run([str(_binary()), "role", "grant", "admin", "--user", person.name, "--data", str(data)],
                       check=True, env=steward_environment(), cwd="/", capture_output=True)
        assert data.stat().st_uid == 0
        running = start_steward(data, pathlib.Path(temp) / "steward.log", _free_port(),
                                {"STEWARD_PRIVILEGE_SEPARATION": "true"})
        try:
            helper_user, helper_uid, _, _ = _processes_of(running.process.pid)
            assert helper_user == "root" and helper_uid[0] == "0"
            children = _children(running.process.pid)
            assert len(children) == 1, children
            web_user, web_uids, no_new_privs, capabilities = _processes_of(children[0])
            steward_uid = str(subprocess.run(["id", "-u", "steward"], capture_output=True, text=True).stdout.strip())
            assert web_user == "steward" and web_uids == [steward_uid] * 4, web_uids
            assert no_new_privs == "1" and int(capabilities, 16) == 0
            # Only steward (and root) can read the secrets.
            for name in ("secret.key", "steward.db", "ssh/id_ed25519", "tls/key.pem"):
                info = (data / name).stat()
                assert str(info.st_uid) == steward_uid and info.st_mode & 0o077 == 0, name
            assert "handed the data directory to the steward user" in running.output.read_text()
            # A real PAM sign-in, answered by the helper.
            port = urllib.parse.urlsplit(running.base_url).port
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=unverified(), timeout=30)
            connection.request("GET", "/login")
            page = connection.getresponse()
            body = page.read().decode()
            cookie = [c.split(";")[0] for c in page.headers.get_all("Set-Cookie")]
            form_token = body.split('name="form_token" value="')[1].split('"')[0]
            form = urllib.parse.urlencode({"form_token": form_token, "next": "/", "username": person.name,
                                           "password": person.password})
            connection.request("POST", "/login", body=form, headers={
                "Cookie": "; ".join(cookie), "Content-Type": "application/x-www-form-urlencoded",
                "Origin": f"https://127.0.0.1:{port}"})
            signed_in = connection.getresponse()
            signed_in.read()
            assert signed_in.status == 303, signed_in.status
            assert any("steward_session=" in c for c in signed_in.headers.get_all("Set-Cookie"))
            # A playbook on the panel host runs as a child of the root helper; the job's log says so, and the
            # account it makes is really there.
            admin = Api(running, token_for(running, person.name, "admin"))
            status, job = admin.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/facts.yml", "targets": ["localhost"]})
            assert status == 202, job
            assert wait_job(admin, job["id"], timeout=180)["state"] == "succeeded"
            made = f"steward-test-pv{os.getpid() % 10000}"
            status, job = admin.call("POST", "/api/v1/hosts/1/users", {"action": "create", "name": made, "shell": "/bin/sh",
                                                                       "create_home": False})
            assert status == 202, job
            try:
                finished = wait_job(admin, job["id"], timeout=180)
                assert finished["state"] == "succeeded", finished
                assert subprocess.run(["getent", "passwd", made], capture_output=True).returncode == 0
            finally:
                subprocess.run(["userdel", made], capture_output=True)
            assert "helper: running a playbook on the panel host" in running.output.read_text()
            # Account standing through the helper: a locked account's token stops working.
            token = token_for(running, person.name, "operator")
            api = Api(running, token)
            assert api.call("GET", "/api/v1/me")[0] == 200
            subprocess.run(["usermod", "-L", person.name], check=True)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and api.call("GET", "/api/v1/me")[0] != 401:
                time.sleep(0.5)
            status, problem = api.call("GET", "/api/v1/me")
            assert status == 401 and "is locked" in problem["detail"]
        finally:
            stop_steward(running)
            remove_account(person)
        assert running.process.returncode == 0, running.output.read_text()[-3000:]


def test_class_14_under_privilege_separation_backups_of_the_panel_host_run_in_the_helper():
    """restic and hooks on the panel host go to the root helper as typed requests: a root-only source is backed up
    into a root-only repository, the hook runs as root, the snapshot is browsed, downloaded and restored; a restic
    argument outside Steward's grammar is refused by the helper itself."""
    person = make_account("steward-test-pbk")
    with tempfile.TemporaryDirectory(prefix="steward-privsep-") as temp:
        os.chmod(temp, 0o711)
        root = pathlib.Path(temp)
        data = root / "data"
        subprocess.run([str(_binary()), "role", "grant", "admin", "--user", person.name, "--data", str(data)],
                       check=True, env=steward_environment(), cwd="/", capture_output=True)
        running = start_steward(data, root / "steward.log", _free_port(), {"STEWARD_PRIVILEGE_SEPARATION": "true"})
        try:
            admin = Api(running, token_for(running, person.name, "admin"))
            source = root / "src"
            source.mkdir(mode=0o700)
            (source / "secret.txt").write_text("only root reads this\n")
            os.chmod(source / "secret.txt", 0o600)
            marker = root / "hook-uid"
            assert admin.commit_file("hooks/whoami.sh", f"#!/bin/sh\nid -u > {marker}\n", "e2e: a hook") == 303
            status, repository = admin.call("POST", "/api/v1/backups/repositories", {
                "name": "privsep", "path": str(root / "repo"), "password": "correct horse battery staple"})
            assert status == 201, repository
            assert (root / "repo" / "config").stat().st_uid == 0
            status, plan = admin.call("POST", "/api/v1/backups/plans", {
                "name": "privsep plan", "repository": repository["id"], "host": "localhost", "paths": [str(source)],
                "pre_hook": ["whoami.sh"]})
            assert status == 201, plan
            status, job = admin.call("POST", f"/api/v1/backups/plans/{plan['id']}/run")
            assert status == 202, job
            finished = wait_job(admin, job["id"], timeout=180)
            assert finished["state"] == "succeeded", finished
            assert marker.read_text().strip() == "0"
            status, snapshots = admin.get(f"/api/v1/backups/plans/{plan['id']}/snapshots")
            assert status == 200 and len(snapshots["items"]) == 1, snapshots
            snapshot = snapshots["items"][0]["id"]
            status, tree = admin.call("GET", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/tree?"
                                      + urllib.parse.urlencode({"path": str(source)}))
            assert status == 200 and [item["name"] for item in tree["items"]] == ["secret.txt"], tree
            connection = http.client.HTTPSConnection("127.0.0.1", port_of(running), context=unverified(), timeout=60)
            connection.request("GET", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/file?"
                               + urllib.parse.urlencode({"path": str(source / "secret.txt")}),
                               headers={"Authorization": f"Bearer {admin.token}", "Host": f"127.0.0.1:{port_of(running)}"})
            download = connection.getresponse()
            assert download.status == 200 and download.read() == b"only root reads this\n"
            target = root / "restored"
            status, job = admin.call("POST", f"/api/v1/backups/repositories/{repository['id']}/snapshots/{snapshot}/restore",
                                     {"target": str(target), "plan": str(plan["id"])})
            assert status == 202, job
            assert wait_job(admin, job["id"], timeout=180)["state"] == "succeeded"
            assert (target / str(source).lstrip("/") / "secret.txt").read_text() == "only root reads this\n"
            log = running.output.read_text()
            assert "helper: running on the panel host" in log and "restic backup on repository" in log
        finally:
            stop_steward(running)
            remove_account(person)

