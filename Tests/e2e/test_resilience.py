"""Staying up and telling the truth under faults: broken log outputs, a full disk, orphaned job processes, a data
directory that is not Steward's, a damaged database, a port in use, a second stop signal and overload. Each test
injects the fault for real (/dev/full, a small tmpfs, kill -9, a corrupted copy of a database, a listening socket)."""
import hashlib
import json
import os
import pathlib
import secrets
import signal
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Api, _binary, _free_port, make_token, start_steward, steward_environment, stop_steward, wait_job

@pytest.fixture
def tmp_path():
    """A temporary directory the steward user can pass through (pytest's own sits under a 0700 directory)."""
    with tempfile.TemporaryDirectory(prefix="steward-resilience-") as temp:
        os.chmod(temp, 0o711)
        yield pathlib.Path(temp)


CONTEXT = ssl.create_default_context()
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE


def get(url, token=None, timeout=10):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, context=CONTEXT, timeout=timeout) as response:
            return response.status, response.headers, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode(errors="replace")


def grant_root(data):
    subprocess.run([str(_binary()), "role", "grant", "admin", "--user", "root", "--data", str(data)],
                   check=True, capture_output=True, env=steward_environment(), cwd="/")


def serve(data, port, stderr, extra=None, stdout=None):
    env = steward_environment()
    env.update(extra or {})
    return subprocess.Popen([str(_binary()), "serve", "--data", str(data), "--bind", "127.0.0.1", "--port", str(port), "--no-tls"],
                            stdout=stdout if stdout is not None else subprocess.DEVNULL, stderr=stderr, env=env, cwd="/")


def start_plain(tmp_path, extra=None, stderr=subprocess.DEVNULL):
    """`steward serve --no-tls` on a fresh data directory with root as admin, once /healthz answers."""
    data = tmp_path / "data"
    grant_root(data)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    process = serve(data, port, stderr, extra)
    wait_ready(base, process)
    return data, port, base, process


def root_api(base, data):
    return Api(type("Server", (), {"base_url": base})(), make_token(data, "root"))


def wait_ready(base, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "steward exited"
        try:
            if get(base + "/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("steward did not answer /healthz")


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.parametrize("broken", ["dev-full", "closed-pipe"])
def test_a_broken_log_output_is_counted_and_skipped_never_fatal(tmp_path, broken):
    data = tmp_path / "data"
    grant_root(data)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    if broken == "dev-full":
        sink = open("/dev/full", "wb")
        process = serve(data, port, sink)
    else:
        # `steward serve 2>&1 | head -1`: the reader goes away after the first line.
        process = serve(data, port, subprocess.PIPE)
        process.stderr.readline()
        process.stderr.close()
    try:
        wait_ready(base, process)
        token = make_token(data, "root")
        for _ in range(30):
            assert get(base + "/healthz")[0] == 200
            assert get(base + "/api/v1/hosts", token)[0] == 200
        status, _, text = get(base + "/metrics", token)
        assert status == 200 and process.poll() is None
        assert metric(text, "steward_log_write_failures") > 0
    finally:
        process.terminate()
        process.wait(timeout=30)


def fill(path, leave_bytes):
    """Grow a filler file until the file system has about leave_bytes free (0: until it is full)."""
    filler = path / "filler"
    with open(filler, "ab") as handle:
        chunk = b"\0" * (256 << 10)
        while True:
            stat = os.statvfs(path)
            room = stat.f_bavail * stat.f_frsize - leave_bytes
            if room <= 0:
                break
            try:
                handle.write(chunk[:max(4096, min(len(chunk), room))])
                handle.flush()
            except OSError:
                break
    return filler


def test_a_full_disk_is_a_507_that_says_so_readyz_fails_an_alert_fires_and_writes_resume(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0711", "tmpfs", str(mount)], check=True)
    try:
        data = mount / "data"
        grant_root(data)
        running = start_steward(data, tmp_path / "steward.log", _free_port(), {"STEWARD_DISK_RESERVE_MB": "12"})
        try:
            api = Api(running, make_token(data, "root"))
            assert get(running.base_url + "/readyz")[0] == 200
            # Below the reserve: not ready (with the cause for a signed-in caller), and the panel's disk rule fires.
            filler = fill(mount, 6 << 20)
            status, _, body = get(running.base_url + "/readyz", api.token)
            detail = json.loads(body)["detail"]
            assert status == 503 and "almost full" in detail and str(data) in detail, body
            deadline = time.monotonic() + 30
            firing = []
            while time.monotonic() < deadline and not firing:
                _, alerts = api.get("/api/v1/alerts")
                firing = [a for a in alerts["items"] if "data disk" in json.dumps(a)]
                time.sleep(1)
            assert firing, alerts
            # Full: writes are 507 with the directory and the free bytes, reads still work, nothing is a 500.
            fill(mount, 0)
            statuses = []
            for number in range(300):
                status, body = api.call("POST", "/api/v1/hosts", {"name": f"full-{number}", "address": f"10.9.{number // 250}.{number % 250 + 1}"})
                statuses.append(status)
                if status == 507:
                    break
            assert statuses[-1] == 507 and 500 not in statuses, statuses
            assert "is full" in body["detail"] and "bytes free" in body["detail"] and str(data) in body["detail"], body
            assert api.get("/api/v1/hosts")[0] == 200
            # Space back: writes and readiness resume by themselves.
            filler.unlink()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and get(running.base_url + "/readyz")[0] != 200:
                time.sleep(0.5)
            assert get(running.base_url + "/readyz")[0] == 200
            status, body = api.call("POST", "/api/v1/hosts", {"name": "after-full", "address": "10.9.9.9"})
            assert status == 201, body
            assert sqlite3.connect(str(data / "steward.db")).execute("PRAGMA quick_check").fetchone()[0] == "ok"
        finally:
            stop_steward(running)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_processes_a_killed_steward_left_running_are_ended_at_the_next_start(tmp_path):
    extra = {"STEWARD_PRIVILEGE_SEPARATION": "false"}
    data, port, base, process = start_plain(tmp_path, extra)
    marker = "117.4711"
    try:
        api = root_api(base, data)
        status, job = api.call("POST", "/api/v1/adhoc", {"command": ["sleep", marker], "targets": ["localhost"]})
        assert status == 202, job
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode != 0:
            time.sleep(0.3)
        assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode == 0
    finally:
        process.kill()
        process.wait(timeout=10)
    # Left behind by the kill: the sleep (and ansible) are still there.
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode == 0
    process = serve(data, port, subprocess.DEVNULL, extra)
    try:
        wait_ready(base, process)
        assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode != 0
        assert subprocess.run(["pgrep", "-f", "ansible.*" + marker], capture_output=True).returncode != 0
        finished = wait_job(api, job["id"], timeout=10)
        assert finished["state"] == "interrupted"
    finally:
        process.terminate()
        process.wait(timeout=30)
        subprocess.run(["pkill", "-f", f"sleep {marker}"], check=False)


def run_cli(*arguments, timeout=30):
    return subprocess.run([str(_binary()), *arguments], capture_output=True, text=True, env=steward_environment(), cwd="/", timeout=timeout)


def test_a_data_directory_that_is_not_stewards_is_refused_with_the_reason(tmp_path):
    port = str(_free_port())
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    result = run_cli("serve", "--no-tls", "--port", port, "--data", str(sticky))
    assert result.returncode != 0 and "every user may write it" in result.stderr
    assert oct(os.stat(sticky).st_mode & 0o7777) == "0o1777" and not list(sticky.iterdir())

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    result = run_cli("serve", "--no-tls", "--port", port, "--data", str(foreign))
    assert result.returncode != 0 and "belongs to nobody" in result.stderr and not list(foreign.iterdir())

    someone = tmp_path / "someone"
    someone.mkdir()
    (someone / "thesis.tex").write_text("draft")
    result = run_cli("serve", "--no-tls", "--port", port, "--data", str(someone))
    assert result.returncode != 0 and "not Steward's (thesis.tex)" in result.stderr
    assert [p.name for p in someone.iterdir()] == ["thesis.tex"]

    readonly = tmp_path / "readonly"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m,mode=0700", "tmpfs", str(readonly)], check=True)
    try:
        result = run_cli("serve", "--no-tls", "--port", port, "--data", str(readonly))
        assert result.returncode != 0 and "read-only file system" in result.stderr and "cannot create" not in result.stderr
    finally:
        subprocess.run(["umount", "-l", str(readonly)], check=False)

    # Commands that only read or add a row never make a data directory.
    missing = tmp_path / "missing"
    result = run_cli("token", "create", "--user", "root", "--name", "x", "--role", "viewer", "--data", str(missing))
    assert result.returncode != 0 and "not a Steward data directory" in result.stderr and not missing.exists()
    result = run_cli("role", "list", "--data", str(missing))
    assert result.returncode != 0 and not missing.exists()


def test_a_damaged_database_stops_the_start_in_words_and_names_restore_self(tmp_path):
    data = tmp_path / "data"
    grant_root(data)
    database = data / "steward.db"
    # A table's leaf page overwritten: SQLite opens the file, the start's quick check finds it.
    with sqlite3.connect(str(database)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'schema_migrations'").fetchone()[0]
    page = 4096
    with open(database, "r+b") as handle:
        handle.seek((root - 1) * page + 8)
        handle.write(b"\x7f" * 400)
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    result = run_cli("serve", "--no-tls", "--port", str(_free_port()), "--data", str(data), timeout=60)
    assert result.returncode != 0
    assert "is damaged" in result.stderr and f"steward restore-self --data {data}" in result.stderr, result.stderr
    assert "self-backup" in result.stderr and "SQLite error" not in result.stderr
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_a_zero_byte_database_gets_the_normal_settings(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "steward.db").write_bytes(b"")
    assert run_cli("migrate", "--data", str(data)).returncode == 0
    assert sqlite3.connect(str(data / "steward.db")).execute("PRAGMA auto_vacuum").fetchone()[0] == 2


def test_a_port_in_use_is_one_clear_error_before_the_slow_start(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = run_cli("serve", "--no-tls", "--bind", "127.0.0.1", "--port", str(port), "--data", str(tmp_path / "data"))
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("steward:")]
    assert len(errors) == 1 and f"port {port}" in errors[0] and "--port" in errors[0], result.stderr
    # Nothing slow ran first: no self-backup repository was initialised.
    assert not (tmp_path / "data" / "backups" / "self-restic").exists(), elapsed


def test_a_second_stop_signal_ends_the_grace_period_and_http_answers_during_it(tmp_path):
    extra = {"STEWARD_PRIVILEGE_SEPARATION": "false", "STEWARD_SHUTDOWN_GRACE_SECONDS": "120"}
    data, port, base, process = start_plain(tmp_path, extra)
    try:
        api = root_api(base, data)
        status, job = api.call("POST", "/api/v1/adhoc", {"command": ["sleep", "300.4712"], "targets": ["localhost"]})
        assert status == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and api.get(f"/api/v1/jobs/{job['id']}")[1]["state"] != "running":
            time.sleep(0.3)
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        time.sleep(2)
        # In the grace period: still running, and pages and the API answer.
        assert process.poll() is None
        assert get(base + "/healthz")[0] == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        subprocess.run(["pkill", "-f", "sleep 300.4712"], check=False)
    row = sqlite3.connect(str(data / "steward.db")).execute("SELECT state, error FROM jobs WHERE id = ?", (job["id"],)).fetchone()
    assert row[0] == "interrupted" and "twice" in row[1], row


def test_overload_is_shed_with_503_and_retry_after_while_health_answers_and_gone_clients_cost_nothing(tmp_path):
    extra = {"STEWARD_MAX_CONCURRENT_REQUESTS": "1", "STEWARD_MAX_QUEUED_REQUESTS": "4", "STEWARD_QUEUE_WAIT_MILLISECONDS": "30000",
             "STEWARD_PRIVILEGE_SEPARATION": "false"}
    data, port, base, process = start_plain(tmp_path, extra)
    try:
        api = root_api(base, data)
        token = api.token
        for number in range(300):
            api.call("POST", "/api/v1/hosts", {"name": f"load-{number}", "address": f"10.8.{number // 250}.{number % 250 + 1}"})
        results = []

        # Each request asks with its own query, so none is answered from the list cache: each costs the full
        # encoding of 300 hosts, the work this test loads the server with.
        def hammer():
            for _ in range(10):
                status, headers, _ = get(base + f"/api/v1/hosts?uncached={secrets.token_hex(8)}", token, timeout=30)
                results.append((status, headers.get("Retry-After")))

        threads = [threading.Thread(target=hammer) for _ in range(24)]
        for thread in threads:
            thread.start()
        health = []
        while any(thread.is_alive() for thread in threads):
            started = time.monotonic()
            assert get(base + "/healthz")[0] == 200
            health.append(time.monotonic() - started)
        for thread in threads:
            thread.join()
        shed = [r for r in results if r[0] == 503]
        assert shed and all(r[1] == "1" for r in shed) and {r[0] for r in results} <= {200, 503}, results[:10]
        assert health

        # Clients that hang up while queued: their requests are dropped (499) rather than processed.
        def raw():
            return (f"GET /api/v1/hosts?uncached={secrets.token_hex(8)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n").encode()
        # A request whose body is still arriving holds the one place for as long as the test wants: its handler waits
        # for the rest of the body. Three kept requests queue behind it, then two clients send and hang up: the first
        # takes the last place in the queue of four, the second finds the queue full and is shed. When the holder's
        # body is complete the queue drains, and the first gone request is dropped (499) before any work is done.
        body = json.dumps({"name": "held-request", "address": "10.9.0.1"}).encode()
        holder = socket.create_connection(("127.0.0.1", port))
        holder.sendall((f"POST /api/v1/hosts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body[:5])
        time.sleep(1)
        keep = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        for connection in keep:
            connection.sendall(raw())
        time.sleep(1)
        for _ in range(2):
            connection = socket.create_connection(("127.0.0.1", port))
            connection.sendall(raw())
            time.sleep(0.5)
            connection.close()
        time.sleep(0.5)
        holder.sendall(body[5:])
        holder.settimeout(30)
        assert holder.recv(64).startswith(b"HTTP/1.1 201"), "the held request completes once its body has arrived"
        holder.close()
        for connection in keep:
            connection.settimeout(30)
            assert connection.recv(64).startswith(b"HTTP/1.1 200"), "a queued request whose client stayed is answered"
            connection.close()
        time.sleep(3)
        _, _, text = get(base + "/metrics", token)
        dropped = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                      if line.startswith("steward_http_requests_total{") and 'status="499"' in line)
        assert dropped == 1, [line for line in text.splitlines() if line.startswith("steward_http_requests_total{")]
        # Anonymous health checks are answered on the network thread, with the same security headers, and counted.
        status, headers, body = get(base + "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"} and "default-src 'self'" in headers["Content-Security-Policy"]
        assert metric(text, "steward_health_checks_fast") >= len(health)
        # Asked to, the fast path ends the connection after its answer.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            received = b""
            while chunk := connection.recv(4096):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200") and received.endswith(b'{"status":"ok"}')
        assert metric(text, "steward_requests_shed{class=\"api\"}") is not None or "steward_requests_shed{" in text
    finally:
        process.terminate()
        process.wait(timeout=30)
