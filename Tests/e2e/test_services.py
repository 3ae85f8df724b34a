"""Services in a real browser, on the panel host's real state: read its units with the button, and see what its own
systemctl says (the units, or why systemctl cannot list them here)."""
import subprocess

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def test_reading_the_panel_hosts_services_shows_what_its_systemctl_says(signed_in, steward, api):
    browser = signed_in
    probe = subprocess.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager"], capture_output=True, text=True)
    status, hosts = api.call("GET", "/api/v1/hosts")
    localhost = next(host for host in hosts["items"] if host["name"] == "localhost")
    browser.get(f"{steward.base_url}/hosts/{localhost['id']}")
    browser.find_element(By.ID, "host-services-link").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Services on localhost")
    assert browser.find_elements(By.ID, "services-never-read")
    browser.find_element(By.ID, "refresh-services").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "services-as-of"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#services-table tbody tr")
    if probe.returncode == 0:
        services = [line.split()[0] for line in probe.stdout.splitlines() if line.split() and line.split()[0].endswith(".service")]
        shown = {row.find_element(By.TAG_NAME, "code").text for row in rows if row.find_elements(By.TAG_NAME, "code")}
        assert set(services) <= shown, (services, shown)
    else:
        first = probe.stderr.strip().splitlines()[0]
        assert first in browser.find_element(By.ID, "services-error").text
        assert [row.text for row in rows] == ["No unit matches."]
    status, reading = api.call("GET", f"/api/v1/hosts/{localhost['id']}/services?state=all&type=all")
    assert status == 200 and reading["read_at"], reading
    status, fleet = api.call("GET", "/api/v1/services?unit=ssh.service")
    assert status == 200 and ("localhost" in fleet["lacking"] or any(item["host"] == "localhost" for item in fleet["items"]))
