"""Signing in as a person does: a real Unix account through the real pam_unix, in Chromium, then tokens for scripts."""
import json
import ssl
import urllib.error
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from test_pages import SCREENSHOTS, console_problems


@pytest.fixture
def fresh_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900", "--disable-gpu"):
        options.add_argument(argument)
    options.accept_insecure_certs = True
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def api(steward, path, headers=None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(steward.base_url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_sign_in_and_out_through_pam_unix(fresh_browser, steward, account):
    browser = fresh_browser
    browser.get(steward.base_url + "/jobs")
    WebDriverWait(browser, 15).until(expected_conditions.url_contains("/login"))
    assert "next=" in browser.current_url

    browser.find_element(By.ID, "field-username").send_keys(account.name)
    browser.find_element(By.ID, "field-password").send_keys("not-the-password")
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "login-error"))
    error = browser.find_element(By.ID, "login-error").text
    assert "Wrong user name or password." in error
    assert browser.find_element(By.ID, "field-username").get_attribute("value") == account.name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "login-error.png"))

    browser.find_element(By.ID, "field-username").clear()
    browser.find_element(By.ID, "field-username").send_keys(account.name)
    browser.find_element(By.ID, "field-password").send_keys(account.password)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    WebDriverWait(browser, 15).until(expected_conditions.url_contains("/jobs"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Jobs"
    assert browser.find_element(By.CSS_SELECTOR, ".user-menu a").text == account.name
    cookie = browser.get_cookie("steward_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    browser.save_screenshot(str(SCREENSHOTS / "signed-in.png"))

    browser.find_element(By.CSS_SELECTOR, ".user-menu form button").click()
    WebDriverWait(browser, 15).until(expected_conditions.url_contains("/login"))
    assert "You are signed out." in browser.page_source
    browser.get(steward.base_url + "/settings")
    WebDriverWait(browser, 15).until(expected_conditions.url_contains("/login"))
    # The ID the browser held before signing out no longer opens anything.
    status, _ = api(steward, "/api/v1/me", {"Cookie": f"steward_session={cookie['value']}"})
    assert status == 401
    assert console_problems(browser) == []


def test_token_from_the_account_page_works_for_scripts_until_revoked(signed_in, steward, account):
    browser = signed_in
    browser.get(steward.base_url + "/account")
    browser.find_element(By.ID, "field-token-name").send_keys("e2e script")
    browser.find_element(By.CSS_SELECTOR, "form[action='/account/tokens'] button[type=submit]").click()
    token = WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "created-token")).text
    assert token.startswith("stw_")
    browser.save_screenshot(str(SCREENSHOTS / "token-created.png"))

    status, me = api(steward, "/api/v1/me", {"Authorization": f"Bearer {token}"})
    assert status == 200 and me["user"] == account.name and me["via"] == "token" and me["roles"] == ["viewer"]
    status, _ = api(steward, "/api/v1/me", {"Authorization": "Basic " + "dXNlcjpwYXNz"})
    assert status == 401

    browser.get(steward.base_url + "/account")
    browser.execute_script("window.confirm = () => true")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/revoke'][action^='/account/tokens'] button").click()
    WebDriverWait(browser, 15).until(lambda d: "is revoked" in d.page_source)
    status, problem = api(steward, "/api/v1/me", {"Authorization": f"Bearer {token}"})
    assert status == 401 and "revoked" in problem["detail"]


def test_second_factor_enrolment_page_shows_secret_and_uri(signed_in, steward):
    browser = signed_in
    browser.get(steward.base_url + "/account/second-factor")
    secret = browser.find_element(By.ID, "totp-secret").text
    uri = browser.find_element(By.ID, "totp-uri").text
    assert len(secret.replace(" ", "")) == 32 and uri.startswith("otpauth://totp/")
    assert console_problems(browser) == []
