"""Metrics end to end: the panel host collected from /proc, a real prometheus-node-exporter scraped over HTTP, the
fleet overview and host dashboard in the browser (with a screenshot), job markers on the charts, the metrics API,
and the metric store surviving kill -9 in the middle of ingest."""
import os
import pathlib
import random
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from conftest import ROOT

ARTIFACTS = pathlib.Path(os.environ.get("STEWARD_ARTIFACTS", "/tmp/steward-e2e-artifacts"))


def _bench_binary() -> pathlib.Path:
    for candidate in (ROOT / ".build/debug/steward-bench", ROOT / ".build/release/steward-bench"):
        if candidate.is_file():
            return candidate
    raise RuntimeError("no steward-bench binary: run `swift build` first (make test does)")


def wait_for(predicate, timeout=60, interval=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def fleet_row(api, name):
    status, body = api.get("/api/v1/metrics/fleet")
    assert status == 200, body
    return next((host for host in body["hosts"] if host["name"] == name), None)


def test_panel_host_fills_the_fleet_overview_and_its_dashboard(api, signed_in, steward):
    row = wait_for(lambda: (r := fleet_row(api, "localhost")) and r["cpu_percent"] is not None and r, what="localhost's CPU figure")
    assert 0 <= row["memory_percent"] <= 100 and 0 <= row["filesystem_max_percent"] <= 100
    assert row["load_per_core"] is not None and row["state"] == "up"
    status, body = api.get("/api/v1/metrics/series", host="localhost", name="node_load1")
    assert status == 200 and len(body["items"]) == 1 and body["items"][0]["latest_value"] is not None

    driver = signed_in
    driver.get(steward.base_url + "/")
    table = driver.find_element(By.ID, "fleet-table")
    cells = table.find_elements(By.CSS_SELECTOR, "tr[data-host='localhost'] td")
    assert "%" in cells[1].text  # CPU, after the state badge
    sparks = table.find_elements(By.CSS_SELECTOR, "tr[data-host='localhost'] svg.spark title")
    assert len(sparks) == 5 and "localhost CPU: last" in sparks[0].get_attribute("textContent")
    totals = driver.find_element(By.ID, "group-totals").text
    assert "all hosts" in totals
    # Sorting by a column is a link that keeps the page server-rendered.
    driver.find_element(By.LINK_TEXT, "Memory").click()
    assert "sort=memory" in driver.current_url

    host_id = fleet_row(api, "localhost")["id"]
    driver.get(steward.base_url + f"/hosts/{host_id}/metrics?range=1h")
    cards = driver.find_elements(By.CSS_SELECTOR, ".chart-card")
    assert [card.get_attribute("id") for card in cards] == [
        "chart-cpu", "chart-load", "chart-memory", "chart-filesystems", "chart-disk", "chart-network"]
    memory = driver.find_element(By.ID, "chart-memory")
    ticks = [t.get_attribute("textContent") for t in memory.find_elements(By.CSS_SELECTOR, "svg.chart text.tick")]
    assert "100 %" in ticks and "0 %" in ticks
    hover = [t.get_attribute("textContent") for t in memory.find_elements(By.CSS_SELECTOR, "svg.chart .hover rect title")]
    assert len(hover) > 100 and any("memory: " in text and "%" in text for text in hover)
    assert "memory" in memory.find_element(By.CSS_SELECTOR, "svg.chart .legend").get_attribute("textContent")
    assert memory.find_elements(By.CSS_SELECTOR, "svg.chart path.line")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(1280, 1500)
    page = driver.get_screenshot_as_png()
    (ARTIFACTS / "host-metrics.png").write_bytes(page)
    chart = memory.screenshot_as_png
    (ARTIFACTS / "memory-chart.png").write_bytes(chart)
    driver.set_window_size(1280, 900)
    assert page[:8] == b"\x89PNG\r\n\x1a\n" and len(page) > 20_000
    assert chart[:8] == b"\x89PNG\r\n\x1a\n" and len(chart) > 3_000
    # Longer ranges come from rollups.
    driver.find_element(By.LINK_TEXT, "7d").click()
    assert "range=7d" in driver.current_url and "from 1h data" in driver.page_source


def test_a_playbook_run_appears_on_the_charts_as_a_marker_linking_to_its_job(api, signed_in, steward):
    status, job = api.call("POST", "/api/v1/playbooks/run", {"playbook": "playbooks/ping.yml", "targets": ["localhost"]})
    assert status == 202, job
    wait_for(lambda: api.get(f"/api/v1/jobs/{job['id']}")[1]["state"] not in ("queued", "running"), timeout=120, what="the job")
    host_id = fleet_row(api, "localhost")["id"]
    signed_in.get(steward.base_url + f"/hosts/{host_id}/metrics?range=1h")
    markers = signed_in.find_elements(By.CSS_SELECTOR, f"#chart-cpu svg a.annotation[href='/jobs/{job['id']}']")
    assert markers, signed_in.page_source[:3000]
    assert f"Job #{job['id']}" in markers[0].find_element(By.TAG_NAME, "title").get_attribute("textContent")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_node_exporter_host_is_scraped_kept_to_its_allow_list_and_marked_down_when_it_stops(api):
    port = _free_port()
    exporter = subprocess.Popen(["/usr/bin/prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status, host = api.call("POST", "/api/v1/hosts", {
            "name": "exporter-1", "address": "127.0.0.1", "groups": ["exporters"], "tags": ["metrics"],
            "metrics_url": f"http://127.0.0.1:{port}/metrics",
            "metrics_allow": ["node_cpu_seconds_total", "node_load*", "node_memory_*", "node_filesystem_*_bytes"]})
        assert status == 201, host
        row = wait_for(lambda: (r := fleet_row(api, "exporter-1")) and r["cpu_percent"] is not None and r, what="exporter-1 figures")
        assert row["state"] == "up" and row["memory_percent"] is not None
        status, series = api.get("/api/v1/metrics/series", host="exporter-1", limit="1000")
        names = {item["name"] for item in series["items"]}
        assert {"node_load1", "node_load15", "node_cpu_seconds_total", "node_memory_MemAvailable_bytes"} <= names
        assert not any(name.startswith(("go_", "process_", "node_network_", "node_disk_")) for name in names), names
        status, body = api.get("/api/v1/metrics/query", host="exporter-1", name="node_cpu_seconds_total", match="mode=idle",
                               fn="rate", range="1m", step="4s")
        assert status == 200 and body["resolution"] == "raw", body
        rates = [point[1] for item in body["series"] for point in item["points"] if point[1] is not None]
        assert rates and all(0 <= rate <= 1.5 for rate in rates), rates  # idle seconds per second, per CPU
        status, body = api.get("/api/v1/metrics/fleet", group="exporters")
        assert [h["name"] for h in body["hosts"]] == ["exporter-1"]
        assert any(g["name"] == "exporters" and g["hosts"] == 1 for g in body["groups"])
        status, body = api.get("/api/v1/metrics/fleet", tag="no-such-tag")
        assert body["hosts"] == []
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
    detail = wait_for(lambda: (r := api.get(f"/api/v1/hosts/{host['id']}")[1]) and r["state"] == "down" and r["state_detail"],
                      timeout=30, what="exporter-1 marked down")
    # The scrape names the dead URL. This host has no sshd, so the connectivity check (every 5 min) may have marked
    # it down for that first, and a host already down keeps its first reason; steward_host_up below shows the scrape.
    assert f"127.0.0.1:{port}" in detail or "ssh-keyscan 127.0.0.1:22" in detail, detail
    status, body = api.get("/api/v1/metrics/query", host="exporter-1", name="steward_host_up", range="1m", step="2s", fn="last")
    values = [point[1] for point in body["series"][0]["points"] if point[1] is not None]
    assert values[-1] == 0 and 1 in values


def test_metrics_api_explains_bad_queries(api):
    status, body = api.get("/api/v1/metrics/query", name="node_load1", step="0s", fn="median", range="forever")
    assert status == 422
    assert set(body["errors"]) >= {"step", "fn", "range"}, body
    status, body = api.get("/api/v1/metrics/query", host="no-such-host", name="node_load1")
    assert status == 422 and "no-such-host" in body["errors"]["host"]
    status, body = api.get("/api/v1/metrics/query")
    assert status == 422 and "name" in body["errors"]
    status, document = api.get("/api/openapi.json")
    for path in ("/api/v1/metrics/series", "/api/v1/metrics/query", "/api/v1/metrics/fleet"):
        assert path in document["paths"], path


@pytest.mark.parametrize("run", range(3))
def test_kill_9_during_ingest_loses_nothing_that_was_committed(tmp_path, run):
    database = tmp_path / "metrics.db"
    process = subprocess.Popen([str(_bench_binary()), "ingest", "--database", str(database), "--hosts", "4"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    committed = None
    wanted = random.Random(run).randint(20, 400)
    seen = 0
    for line in process.stdout:
        if line.startswith("committed "):
            committed = int(line.split()[1])
            seen += 1
            if seen >= wanted:
                break
    # Killed between two lines: the next flush may be half written.
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert committed is not None, process.stderr.read()
    result = subprocess.run([str(_bench_binary()), "verify", "--database", str(database), "--through", str(committed)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.startswith("ok: integrity_check ok;"), result.stdout


def test_stewards_own_metrics_describe_the_metric_store(api):
    wait_for(lambda: fleet_row(api, "localhost"), what="a collection round")
    request = urllib.request.Request(api.base + "/metrics", headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(request, context=api.context, timeout=30) as response:
        text = response.read().decode()
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and not line.startswith("#")}
    assert values["steward_metric_series"] > 20
    assert values["steward_metric_collection_samples"] > 20
    assert "steward_metric_samples_out_of_order" in values
