"""A PromQL alert rule written in the browser: the preview shows each host in scope on its own row (the panel host
firing, a second host with nothing returned), saving it raises the alert for the right host only, and its
Prometheus-style summary is rendered with the series' labels."""
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from test_metrics import wait_for


def test_a_promql_rule_from_the_editor_fires_for_the_right_host(api, steward, signed_in):
    status, peer = api.call("POST", "/api/v1/hosts", {"name": "promql-peer", "address": "192.0.2.77", "enabled": True})
    assert status in (201, 409), peer
    if status == 409:
        peer = next(h for h in api.call("GET", "/api/v1/hosts")[1]["items"] if h["name"] == "promql-peer")
    rule_id = None
    try:
        # The panel host's own series exist once its collector has run.
        wait_for(lambda: api.call("GET", "/api/v1/metrics/promql?query=steward_host_up%7Bhost%3D%22localhost%22%7D")[1].get("series"),
                 timeout=60, what="the panel host's steward_host_up")
        driver = signed_in
        driver.get(steward.base_url + "/alerts/rules/new")
        driver.find_element(By.ID, "field-name").send_keys("E2E PromQL up")
        Select(driver.find_element(By.ID, "field-source")).select_by_visible_text("promql")
        driver.find_element(By.ID, "field-expression").send_keys('steward_host_up{host=~"localhost|promql-peer"} == 1')
        scope = driver.find_element(By.ID, "field-scope_hosts")
        scope.clear()
        scope.send_keys("localhost, promql-peer")
        for field in ("field-warn_threshold", "field-crit_threshold"):
            driver.find_element(By.ID, field).clear()
        summary = driver.find_element(By.ID, "field-summary")
        summary.clear()
        summary.send_keys("{{ $labels.instance }} is up ({{ $value }})")
        driver.find_element(By.CSS_SELECTOR, "button[value=preview]").click()
        # The page before the click has a preview table of its own (the default rule's): read rows until they are
        # the submitted rule's, as the page that replaced it shows them.
        def preview():
            try:
                rows = driver.find_elements(By.CSS_SELECTOR, "#preview-table tbody tr")
                by_host = {row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[2].text for row in rows}
            except StaleElementReferenceException:
                return None
            return by_host if set(by_host) == {"localhost", "promql-peer"} and "promql" in driver.find_element(By.ID, "field-source").get_attribute("value") else None
        by_host = wait_for(preview, timeout=20, what="the preview of the PromQL rule")
        assert by_host == {"localhost": "firing (warning)", "promql-peer": "normal (nothing returned)"}, by_host
        assert driver.find_element(By.ID, "preview-firing-count").text == "1"
        driver.find_element(By.CSS_SELECTOR, "button[value=save]").click()
        wait_for(lambda: "/alerts/rules/" in driver.current_url and "new" not in driver.current_url, timeout=20, what="the saved rule")
        rule_id = int(driver.current_url.rstrip("/").rsplit("/", 1)[-1])
        status, rule = api.call("GET", f"/api/v1/alerts/rules/{rule_id}")
        assert rule["source"] == "promql" and rule["warn_threshold"] is None and rule["severity"] == "warning", rule

        def live():
            status, alerts = api.call("GET", "/api/v1/alerts")
            return [a for a in alerts["items"] if a["rule_id"] == rule_id and a["state"] == "firing"]
        firing = wait_for(live, timeout=60, what="the alert firing")
        assert [a["host"] for a in firing] == ["localhost"]
        assert firing[0]["summary"] == "localhost is up (1)"
        driver.get(steward.base_url + "/alerts")
        ours = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#live-alerts tbody tr") if "E2E PromQL up" in row.text]
        assert len(ours) == 1 and "localhost is up (1)" in ours[0] and "promql-peer" not in ours[0], ours
    finally:
        if rule_id is not None:
            api.call("DELETE", f"/api/v1/alerts/rules/{rule_id}")
        api.call("DELETE", f"/api/v1/hosts/{peer['id']}")
