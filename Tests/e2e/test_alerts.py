"""Alerts end to end: a rule fires on the real panel host, notifications reach a real webhook receiver (retried
after a 500, HMAC-signed) and a real SMTP server (Debian's aiosmtpd), silences mute them, and hostile text in a
rule stays text in the browser and in the email."""
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import mailbox
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from selenium.webdriver.common.by import By

from test_metrics import wait_for

XSS = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to the first `failures` requests, then 200."""

    def __init__(self, failures=1):
        self.requests = []
        self.failures = failures
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(500 if len(receiver.requests) <= receiver.failures else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self):
        self.server.shutdown()


def make_rule(api, name, summary, **extra):
    body = {"name": name, "metric": "steward_host_up", "aggregation": "max", "window_seconds": 30, "warn_threshold": 0.5,
            "scope_hosts": ["localhost"], "summary": summary, "description": "Nothing to do: this rule proves notifications work.",
            "runbook_url": "https://wiki.example.com/runbooks/test"}
    body.update(extra)
    status, rule = api.call("POST", "/api/v1/alerts/rules", body)
    assert status == 201, rule
    return rule


def test_webhook_is_retried_after_a_500_and_signed(api, steward):
    receiver = Receiver(failures=1)
    try:
        status, channel = api.call("POST", "/api/v1/alerts/channels", {
            "name": "hook", "kind": "webhook", "url": receiver.url, "secret": "s3cret-for-hmac", "group_wait_seconds": 0,
            "match_labels": "team=e2e-hook"})
        assert status == 201 and channel["has_secret"] and "secret" not in channel, channel
        rule = make_rule(api, "E2E webhook", "{{host}} is up ({{value}})", labels="team=e2e-hook")
        wait_for(lambda: len(receiver.requests) >= 2, timeout=90, what="the retried webhook")
        headers, body = receiver.requests[1]
        assert receiver.requests[0][1] == body  # the retry sends exactly what was queued
        expected = "sha256=" + hmac.new(b"s3cret-for-hmac", body, hashlib.sha256).hexdigest()
        assert headers["X-Steward-Signature"] == expected
        payload = json.loads(body)
        assert payload["status"] == "firing" and payload["rule"]["name"] == "E2E webhook"
        alert = payload["alerts"][0]
        assert alert["host"] == "localhost" and alert["summary"] == "localhost is up (1)"
        assert "What: localhost is up (1)" in payload["text"] and "Runbook: https://wiki.example.com/runbooks/test" in payload["text"]
        assert payload["link"] == f"{steward.base_url}/alerts/rules/{rule['id']}"
        status, log = api.get("/api/v1/alerts/deliveries")
        mine = [d for d in log["items"] if d["channel"] == "hook"]
        assert mine[0]["status"] == "sent" and mine[0]["attempts"] == 2, mine
        # A silence on the rule mutes it: pausing and re-enabling the rule would notify again, but not while silenced.
        status, silence = api.call("POST", "/api/v1/alerts/silences", {"matchers": "rule=E2E webhook", "duration": "1h", "comment": "e2e"})
        assert status == 201, silence
        api.call("PUT", f"/api/v1/alerts/rules/{rule['id']}", {"enabled": False})
        time.sleep(8)
        count = len(receiver.requests)
        api.call("PUT", f"/api/v1/alerts/rules/{rule['id']}", {"enabled": True})
        time.sleep(10)
        assert len(receiver.requests) == count, "a silenced alert was notified"
        api.call("PUT", f"/api/v1/alerts/rules/{rule['id']}", {"enabled": False})
    finally:
        receiver.close()


def test_email_reaches_a_real_smtp_server_and_hostile_text_stays_text(api, steward, signed_in, tmp_path):
    port = free_port()
    maildir = tmp_path / "mail"
    server = subprocess.Popen(["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Mailbox",
                               str(maildir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, timeout=20, what="aiosmtpd")
        status, channel = api.call("POST", "/api/v1/alerts/channels", {
            "name": "mail", "kind": "email", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none",
            "mail_from": "steward@example.com", "mail_to": "ops@example.com", "group_wait_seconds": 0, "match_labels": "team=e2e-mail"})
        assert status == 201, channel
        rule = make_rule(api, "E2E mail " + XSS, "{{host}} says " + XSS, labels="team=e2e-mail", description="Do this: " + XSS)
        wait_for(lambda: maildir.exists() and len(mailbox.Maildir(str(maildir))) > 0, timeout=90, what="the email")
        message = email.message_from_bytes(next(iter(mailbox.Maildir(str(maildir)))).as_bytes(), policy=email.policy.default)
        assert message["To"] == "ops@example.com" and "E2E mail" in message["Subject"]
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "localhost says <script>" in text  # plain text carries it as text
        assert "<script>" not in html and "<img" not in html and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
        assert f'href="{steward.base_url}/alerts/rules/{rule["id"]}"' in html

        driver = signed_in
        driver.get(steward.base_url + "/alerts")
        wait_for(lambda: (driver.get(steward.base_url + "/alerts") or True) and "says" in driver.find_element(By.ID, "live-alerts").text,
                 timeout=30, what="the alert on the page")
        assert driver.execute_script("return window.pwned === undefined")
        assert XSS in driver.find_element(By.ID, "live-alerts").text
        driver.get(steward.base_url + f"/alerts/rules/{rule['id']}")
        assert driver.execute_script("return window.pwned === undefined")
        api.call("PUT", f"/api/v1/alerts/rules/{rule['id']}", {"enabled": False})
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_notification_links_ignore_a_forged_host_header(api, steward):
    """Class 10: links come from the configured base URL, whatever Host a request carried. Since class 17, a forged
    Host is refused outright (421) before any handler can put it into anything."""
    import urllib.error
    import urllib.request
    request = urllib.request.Request(steward.base_url + "/api/v1/alerts/rules/export",
                                     headers={"Authorization": f"Bearer {api.token}", "Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=api.context, timeout=30)
    assert refused.value.code == 421 and "evil.example" in refused.value.read().decode()
    status, log = api.get("/api/v1/alerts/deliveries")
    assert status == 200
    for delivery in log["items"]:
        assert "evil.example" not in json.dumps(delivery)


def test_export_passes_promtool(api, tmp_path):
    import urllib.request
    request = urllib.request.Request(api.base + "/api/v1/alerts/rules/export", headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
        (tmp_path / "rules.yml").write_bytes(response.read())
    result = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_email_over_starttls_with_a_login_and_a_private_ca(api, tmp_path):
    cert, key = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    # The CA file is read by the web process, which runs as the steward user under privilege separation: like an
    # operator's CA bundle, it sits where that user can read it (pytest's own directories are root's alone).
    ca_directory = pathlib.Path(tempfile.mkdtemp(prefix="steward-e2e-ca-"))
    os.chmod(ca_directory, 0o711)
    ca_file = ca_directory / "smtp-ca.pem"
    shutil.copy(cert, ca_file)
    os.chmod(ca_file, 0o644)
    port = free_port()
    maildir = tmp_path / "mail"
    server = subprocess.Popen(["/usr/bin/python3", str(pathlib.Path(__file__).with_name("smtp_tls_server.py")), str(port), str(cert), str(key),
                               str(maildir), "steward", "pa ss\"word"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready", server.stderr.read()
        body = {"name": "tls-mail", "kind": "email", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "starttls",
                "smtp_user": "steward", "password": "wrong", "smtp_ca_file": str(ca_file), "mail_from": "steward@example.com",
                "mail_to": "ops@example.com", "group_wait_seconds": 0, "match_labels": "team=e2e-tls"}
        status, channel = api.call("POST", "/api/v1/alerts/channels", body)
        assert status == 201 and channel["has_password"] and "password" not in channel, channel
        status, missing = api.call("POST", "/api/v1/alerts/channels", dict(body, name="bad-ca", smtp_ca_file="/no/such.pem"))
        assert status == 422 and "smtp_ca_file" in missing["errors"]
        rule = make_rule(api, "E2E TLS mail", "{{host}} over TLS", labels="team=e2e-tls")
        # A wrong password is refused by the server and the delivery says so, to be retried.
        failed = wait_for(lambda: next((d for d in api.get("/api/v1/alerts/deliveries")[1]["items"]
                                        if d["channel"] == "tls-mail" and d["error"]), None), timeout=60, what="a failed attempt")
        assert failed["status"] == "pending" and failed["attempts"] >= 1, failed
        api.call("PUT", f"/api/v1/alerts/channels/{channel['id']}", {"password": "pa ss\"word"})
        wait_for(lambda: maildir.exists() and len(mailbox.Maildir(str(maildir))) > 0, timeout=90, what="the email over STARTTLS")
        message = email.message_from_bytes(next(iter(mailbox.Maildir(str(maildir)))).as_bytes(), policy=email.policy.default)
        assert "E2E TLS mail" in message["Subject"]
        # The password never reached an argv: curl's command line is visible to every local user.
        assert "pa ss" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        api.call("PUT", f"/api/v1/alerts/rules/{rule['id']}", {"enabled": False})
    finally:
        server.terminate()
        server.wait(timeout=10)
