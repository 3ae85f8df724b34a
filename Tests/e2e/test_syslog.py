"""Syslog intake against Debian's rsyslog: forwarding over TCP with octet counting (RFC 5424), over UDP (the
traditional RFC 3164 form) and over TLS (gtls), plus hand-made lines over each transport; only listed senders are
stored, each line under the host its entry names. Then the intake's page in a browser."""
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import Api, _binary, _free_port, make_token, start_steward, steward_environment, stop_steward

pytestmark = pytest.mark.skipif(shutil.which("rsyslogd") is None, reason="rsyslog is installed by make test-deps")


def free_udp_and_tcp_port():
    """A port free for both TCP and UDP on loopback."""
    while True:
        port = _free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


@pytest.fixture(scope="module")
def intake(account):
    """A Steward of this module's own with the syslog intake on (TCP and UDP, and TLS), journals not read."""
    with tempfile.TemporaryDirectory(prefix="steward-syslog-") as temp:
        data = pathlib.Path(temp) / "data"
        subprocess.run([str(_binary()), "role", "grant", "admin", "--user", account.name, "--data", str(data)],
                       check=True, env=steward_environment(), cwd="/", capture_output=True)
        port, tls_port = free_udp_and_tcp_port(), _free_port()
        running = start_steward(data, pathlib.Path(temp) / "steward.log", _free_port(), {
            "STEWARD_SYSLOG_PORT": str(port), "STEWARD_SYSLOG_TLS_PORT": str(tls_port), "STEWARD_LOGS_INTERVAL_SECONDS": "0"})
        try:
            yield running, Api(running, make_token(data, account.name)), port, tls_port, pathlib.Path(temp)
        finally:
            stop_steward(running)


def lines_of(api, host, text):
    query = {"host": host, "q": text, "priority": 7, "range": "7d", "limit": 1000}
    status, page = api.call("GET", "/api/v1/logs?" + urllib.parse.urlencode(query))
    assert status == 200, page
    return page["items"]


def wait_lines(api, host, text, expected, timeout=20):
    deadline = time.monotonic() + timeout
    found = []
    while time.monotonic() < deadline:
        found = lines_of(api, host, text)
        if len(found) >= expected:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{len(found)} of {expected} lines with {text!r} after {timeout} s")


RSYSLOG_CONF = """
global(workDirectory="{work}" parser.escapeControlCharactersOnReceive="off"
       defaultNetstreamDriverCAFile="{ca}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" CreatePath="on")
if $programname == "tcpapp" then {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="octet-counted"
         template="RSYSLOG_SyslogProtocol23Format")
  stop
}}
if $programname == "udpapp" then {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="udp" template="RSYSLOG_TraditionalForwardFormat")
  stop
}}
if $programname == "tlsapp" then {{
  action(type="omfwd" target="127.0.0.1" port="{tls_port}" protocol="tcp" StreamDriver="gtls" StreamDriverMode="1"
         StreamDriverAuthMode="anon" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  stop
}}
*.* stop
"""


@pytest.fixture(scope="module")
def rsyslog(intake):
    """rsyslogd in the foreground with a configuration of the test's own: its own socket, nothing else of the host's."""
    running, api, port, tls_port, temp = intake
    base = temp / "rsyslog"
    (base / "work").mkdir(parents=True)
    conf = base / "rsyslog.conf"
    sock = base / "log.sock"
    conf.write_text(RSYSLOG_CONF.format(work=base / "work", socket=sock, port=port, tls_port=tls_port,
                                        ca=running.data / "tls/cert.pem"))
    check = subprocess.run(["rsyslogd", "-N1", "-f", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    output = open(base / "rsyslogd.out", "wb")
    # rsyslog writes RFC 3164 times in its own zone: Berlin, as the sender entry says.
    process = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(base / "rsyslogd.pid")],
                               stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "TZ": "Europe/Berlin"})
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert process.poll() is None and time.monotonic() < deadline, (base / "rsyslogd.out").read_text()
        time.sleep(0.1)
    try:
        yield sock
    finally:
        process.terminate()
        process.wait(timeout=20)
        output.close()


def logger(sock, tag, message, priority="user.err"):
    subprocess.run(["logger", "--socket", str(sock), "--socket-errors=on", "-t", tag, "-p", priority, "--", message], check=True)


def send_tcp(port, frames, context=None):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        stream = context.wrap_socket(raw) if context else raw
        stream.sendall(b"".join(frames))
        time.sleep(0.2)
        stream.close()


def octets(message):
    data = message.encode()
    return str(len(data)).encode() + b" " + data


def test_rsyslog_and_hand_made_lines_are_stored_under_the_senders_host(intake, rsyslog):
    running, api, port, tls_port, temp = intake
    status, created = api.call("POST", "/api/v1/hosts", {"name": "edge-switch", "address": "192.0.2.50"})
    assert status == 201, created

    # Nobody is listed yet: a connection and a datagram are refused, and counted. (rsyslog is kept out of this: it
    # would send its line again once it is listed.)
    send_tcp(port, [b"<13>handmade: refused before listing\n"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_socket:
        udp_socket.sendto(b"<13>handmade: refused before listing", ("127.0.0.1", port))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, state = api.call("GET", "/api/v1/logs/syslog")
        refused = sum(t["refused"] for t in state["traffic"] if t["address"] == "127.0.0.1")
        if refused >= 2:
            break
        time.sleep(0.3)
    assert refused == 2, state
    assert sorted(state["listening"]) == sorted([f"TCP 127.0.0.1 port {port}", f"UDP 127.0.0.1 port {port}",
                                                 f"TLS 127.0.0.1 port {tls_port}"]), state
    assert lines_of(api, "edge-switch", "refused before listing") == []

    # Bad input is refused with the field named; an operator's token could not list a sender (admin only).
    status, problem = api.call("POST", "/api/v1/logs/syslog/senders", {"network": "10.0.0.0/33", "time_zone": "Mars/Base"})
    assert status == 422 and set(problem["errors"]) == {"network", "time_zone"}, problem
    status, sender = api.call("POST", "/api/v1/logs/syslog/senders",
                              {"network": "127.0.0.1", "host": "edge-switch", "time_zone": "Europe/Berlin", "comment": "test"})
    assert status == 201 and sender["host"] == "edge-switch", sender

    # rsyslog forwards: RFC 5424 over TCP with octet counting (a two-line message stays one), the traditional form
    # over UDP, and RFC 5424 over TLS.
    started = time.time()
    logger(rsyslog, "tcpapp", "over tcp first line\nsecond line of it", priority="daemon.err")
    for index in range(20):
        logger(rsyslog, "tcpapp", f"tcp burst {index:02d}", priority="user.warning")
    logger(rsyslog, "udpapp", "over udp traditional", priority="local3.notice")
    logger(rsyslog, "tlsapp", "over tls encrypted", priority="auth.crit")
    tcp = wait_lines(api, "edge-switch", "over tcp first line", 1)
    assert tcp[0]["message"] == "over tcp first line\nsecond line of it", tcp
    assert tcp[0]["priority"] == 3 and tcp[0]["identifier"] == "tcpapp" and tcp[0]["fields"]["SYSLOG_FACILITY"] == "3"
    assert tcp[0]["fields"]["STEWARD_SYSLOG_FORMAT"] == "rfc5424" and tcp[0]["fields"]["STEWARD_SYSLOG_TRANSPORT"] == "tcp"
    assert sorted(line["message"] for line in wait_lines(api, "edge-switch", "tcp burst", 20)) == [
        f"tcp burst {i:02d}" for i in range(20)]
    udp = wait_lines(api, "edge-switch", "over udp traditional", 1)
    assert udp[0]["priority"] == 5 and udp[0]["fields"]["SYSLOG_FACILITY"] == "19" and udp[0]["identifier"] == "udpapp"
    assert udp[0]["fields"]["STEWARD_SYSLOG_FORMAT"] == "rfc3164" and udp[0]["fields"]["STEWARD_SYSLOG_TRANSPORT"] == "udp"
    tls = wait_lines(api, "edge-switch", "over tls encrypted", 1)
    assert tls[0]["priority"] == 2 and tls[0]["fields"]["STEWARD_SYSLOG_TRANSPORT"] == "tls"
    for line in tcp + udp + tls:
        stamp = time.mktime(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert started - 5 <= stamp <= time.time() + 5, line

    # Hand-made lines: RFC 3164 read in the entry's zone (Europe/Berlin), RFC 5424 with structured data, line framing
    # and octet counting mixed on one connection, a multi-line message, and the same over TLS.
    now = time.time()
    berlin = subprocess.run(["date", "-d", f"@{int(now) - 60}", "+%b %e %H:%M:%S"], env={"TZ": "Europe/Berlin"},
                            capture_output=True, text=True, check=True).stdout.strip()
    rfc5424 = ('<165>1 2026-12-01T08:00:00.25Z edge-switch ifmgr 77 LINK [meta@32473 port="Gi0/1" why="a \\"quoted\\" ]"] '
               'handmade structured\nwith a second line')
    send_tcp(port, [f"<12>{berlin} edge-switch handmade[4242]: handmade bsd line\n".encode(), octets(rfc5424),
                    b"<14>handmade: handmade no time\n"])
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    send_tcp(tls_port, [octets("<10>1 - edge-switch handmade - - - handmade over tls\nsecond")], context=context)
    bsd = wait_lines(api, "edge-switch", "handmade bsd line", 1)[0]
    stamp = time.mktime(time.strptime(bsd["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(stamp - (int(now) - 60)) <= 1, (bsd, berlin)
    assert bsd["pid"] == 4242 and bsd["identifier"] == "handmade" and bsd["fields"]["SYSLOG_HOSTNAME"] == "edge-switch"
    structured = wait_lines(api, "edge-switch", "handmade structured", 1)[0]
    assert structured["message"] == "handmade structured\nwith a second line" and structured["priority"] == 5
    assert structured["time"].startswith("2026-12-01T08:00:00.25"), structured
    assert structured["fields"]["SYSLOG_STRUCTURED_DATA"] == '[meta@32473 port="Gi0/1" why="a \\"quoted\\" ]"]'
    assert structured["fields"]["SYSLOG_MSGID"] == "LINK" and structured["pid"] == 77
    assert wait_lines(api, "edge-switch", "handmade no time", 1)[0]["fields"]["STEWARD_SYSLOG_TIME"] == "received"
    assert wait_lines(api, "edge-switch", "handmade over tls", 1)[0]["message"] == "handmade over tls\nsecond"

    # Every line once: the counts of the intake agree with what was stored.
    status, state = api.call("GET", "/api/v1/logs/syslog")
    mine = [t for t in state["traffic"] if t["address"] == "127.0.0.1"][0]
    assert mine["received"] == mine["stored"] == 27 and mine["dropped"] == 0, mine
    status, sources = api.call("GET", "/api/v1/logs/sources")
    assert [(s["host"], s["source"], s["lines"]) for s in sources["items"] if s["host"] == "edge-switch"] == [
        ("edge-switch", "syslog", 27)], sources

    # Removing the sender refuses it again.
    status, _ = api.call("DELETE", f"/api/v1/logs/syslog/senders/{sender['id']}")
    assert status == 204
    send_tcp(port, [b"<13>handmade: after removal\n"])
    time.sleep(2)
    assert lines_of(api, "edge-switch", "after removal") == []


def test_the_intake_page_lists_and_removes_senders(signed_in, steward, api):
    """On the session's Steward (the shared browser is signed in there; the intake is off on it, which the page
    says), an admin lists two senders and removes the second row: the first stays."""
    browser = signed_in
    status, router = api.call("POST", "/api/v1/hosts", {"name": "edge-router", "address": "192.0.2.51"})
    assert status == 201, router
    try:
        check_the_page(browser, steward, api)
    finally:
        # An address nobody answers on would slow every later test's collection rounds; its sender entry goes with it.
        assert api.call("DELETE", f"/api/v1/hosts/{router['id']}")[0] == 204
    status, state = api.call("GET", "/api/v1/logs/syslog")
    assert [s["network"] for s in state["senders"]] == [], state


def check_the_page(browser, steward, api):
    browser.get(steward.base_url + "/logs/syslog")
    assert "syslog_port" in browser.find_element(By.ID, "syslog-off").text
    for network, host in (("198.51.100.0/24", "edge-router"), ("198.51.100.9", "")):
        browser.find_element(By.ID, "field-network").send_keys(network)
        Select(browser.find_element(By.ID, "field-host")).select_by_value(host)
        browser.find_element(By.CSS_SELECTOR, "#syslog-sender-form button[type=submit]").click()
        WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException]).until(lambda d: network in d.find_element(By.ID, "syslog-senders").text)
    # A wrong address comes back with the field marked and what was typed kept.
    browser.find_element(By.ID, "field-network").send_keys("198.51.100.300")
    browser.find_element(By.CSS_SELECTOR, "#syslog-sender-form button[type=submit]").click()
    error = WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".field.has-error .error"))[0].text
    assert "CIDR" in error and browser.find_element(By.ID, "field-network").get_attribute("value") == "198.51.100.300"
    rows = browser.find_elements(By.CSS_SELECTOR, "#syslog-senders tbody tr")
    texts = [row.text for row in rows]
    assert any("198.51.100.0/24" in t and "edge-router" in t for t in texts), texts
    assert any(t.startswith("198.51.100.9 ") and "the host with the sender's address" in t for t in texts), texts
    # Remove the second row; the first stays.
    target = [row for row in rows if row.text.startswith("198.51.100.9 ")][0]
    form = target.find_element(By.CSS_SELECTOR, "form")
    browser.execute_script("arguments[0].removeAttribute('data-confirm')", form)
    form.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException]).until(lambda d: "198.51.100.9\n" not in d.find_element(By.ID, "syslog-senders").text + "\n")
    status, state = api.call("GET", "/api/v1/logs/syslog")
    assert [s["network"] for s in state["senders"]] == ["198.51.100.0/24"], state
    assert state["port"] == 0 and state["listening"] == []


def test_the_log_files_page_lists_and_stops_files(signed_in, steward, api):
    """An admin lists two files to read, is refused a path outside /var/log with the field marked, and stops reading
    the second row: the first stays."""
    browser = signed_in
    browser.get(steward.base_url + "/logs/files")
    wait = WebDriverWait(browser, 10, ignored_exceptions=[StaleElementReferenceException])
    for path in ("/var/log/steward-e2e-a.log", "/var/log/steward-e2e-*.txt"):
        browser.find_element(By.ID, "field-path").send_keys(path)
        browser.find_element(By.CSS_SELECTOR, "#log-file-form button[type=submit]").click()
        wait.until(lambda d: path in d.find_element(By.ID, "log-files").text)
    browser.find_element(By.ID, "field-path").send_keys("/etc/shadow")
    browser.find_element(By.CSS_SELECTOR, "#log-file-form button[type=submit]").click()
    error = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".field.has-error .error"))[0].text
    assert "under /var/log" in error and browser.find_element(By.ID, "field-path").get_attribute("value") == "/etc/shadow"
    rows = browser.find_elements(By.CSS_SELECTOR, "#log-files tbody tr")
    target = [row for row in rows if "steward-e2e-*.txt" in row.text][0]
    form = target.find_element(By.CSS_SELECTOR, "form")
    browser.execute_script("arguments[0].removeAttribute('data-confirm')", form)
    form.find_element(By.TAG_NAME, "button").click()
    wait.until(lambda d: "steward-e2e-*.txt" not in d.find_element(By.ID, "log-files").text)
    status, files = api.call("GET", "/api/v1/logs/files")
    assert [f["path"] for f in files["items"]] == ["/var/log/steward-e2e-a.log"], files
    # Leave nothing for later tests' collection rounds.
    assert api.call("DELETE", f"/api/v1/logs/files/{files['items'][0]['id']}")[0] == 204
