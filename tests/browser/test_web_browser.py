"""The web view in headless Chromium: the daemon's ``/ui/`` and the written report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.inspect import short_digest
from tests.fixtures.daemon import DaemonProcess

from .conftest import HOLD_REASON, HOSTILE_LABELS, SECRET, Scenario

SITES = ["daemon", "report"]
EXAMPLE_STREAMS = {
    ("platform", "base"),
    ("platform", "builder"),
    ("shop", "app"),
    ("shop", "web"),
    ("staging", "app"),
    ("staging", "base"),
}


@pytest.fixture(params=SITES)
def site(request: pytest.FixtureRequest, scenario: Scenario) -> str:
    """The base URL of one face of the web view: the daemon's /ui/ or the report's folder."""
    if request.param == "daemon":
        daemon: DaemonProcess = request.getfixturevalue("daemon")
        return f"{daemon.url}/ui/"
    return scenario.report.as_uri() + "/"


def page(site: str, relative: str) -> str:
    """A page's URL: the report's files, or the daemon's (its overview is ``./``)."""
    if relative == "index.html" and site.startswith("http"):
        return site
    return site + relative


def visit(browser: Any, url: str, screenshots: Path, name: str) -> None:
    """Open ``url``, save its screenshot, and fail on any console error it logged."""
    browser.get(url)
    browser.save_screenshot(str(screenshots / f"{name}.png"))
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors


def kind(site: str) -> str:
    return "daemon" if site.startswith("http") else "report"


def test_overview_lists_the_example_streams(browser, site, screenshots):
    """The overview's table lists every stream of the example with its namespace."""
    from selenium.webdriver.common.by import By

    visit(browser, page(site, "index.html"), screenshots, f"{kind(site)}-overview")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.streams tbody tr")
    found = {
        (row.find_element(By.CSS_SELECTOR, "td").text, row.find_element(By.CSS_SELECTOR, "th").text)
        for row in rows
    }
    assert found >= EXAMPLE_STREAMS


def test_clicking_a_stream_shows_its_tags_and_history(browser, site, screenshots):
    """Following a stream's link shows its tags and each tag's history, newest first, with
    the commit linked through the forge template (staging/app:latest moved with the bump)."""
    from selenium.webdriver.common.by import By

    visit(browser, page(site, "index.html"), screenshots, f"{kind(site)}-overview-click")
    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "table.streams tbody tr")
        if r.find_element(By.CSS_SELECTOR, "td").text == "staging"
        and r.find_element(By.CSS_SELECTOR, "th").text == "app"
    )
    row.find_element(By.LINK_TEXT, "app").click()
    browser.save_screenshot(str(screenshots / f"{kind(site)}-stream-staging-app.png"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "app"
    tags = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.tags tbody th")]
    assert tags == ["latest"]
    history = browser.find_elements(By.CSS_SELECTOR, "#tag-latest table.history tbody tr")
    assert len(history) >= 2
    assert "(current)" in history[0].text
    links = browser.find_elements(By.CSS_SELECTOR, "#tag-latest table.history a")
    assert links and all(
        a.get_attribute("href").startswith("https://forge.example/org/config/commit/")
        for a in links
    )


def test_reverted_tag_shows_the_waiting_digest(browser, site, scenario, screenshots):
    """shop/app:1.1, reverted while the registry serves the bump, is Revert respected and
    names the digest it waits on (short, full in the title and a read-only field)."""
    from selenium.webdriver.common.by import By

    url = page(site, "streams/shop/app.html") + "#tag-1.1"
    visit(browser, url, screenshots, f"{kind(site)}-reverted")
    section = browser.find_element(By.ID, "tag-1.1")
    assert "Revert respected" in section.find_element(By.TAG_NAME, "h2").text
    waiting = section.find_element(By.CSS_SELECTOR, "dd.waiting")
    assert short_digest(scenario.reverted) in waiting.text
    code = waiting.find_element(By.CSS_SELECTOR, "code.digest")
    assert code.get_attribute("title") == scenario.reverted
    field = waiting.find_element(By.CSS_SELECTOR, "input.copy")
    assert field.get_attribute("value") == scenario.reverted
    assert field.get_attribute("readonly") is not None


def test_failing_tag_shows_its_reason(browser, site, screenshots):
    """A tag whose image does not exist is Failed with ManifestUnknown."""
    from selenium.webdriver.common.by import By

    visit(browser, page(site, "streams/shop/hostile.html"), screenshots, f"{kind(site)}-failed")
    section = browser.find_element(By.ID, "tag-broken")
    assert "Failed" in section.find_element(By.TAG_NAME, "h2").text
    assert "ManifestUnknown" in section.find_element(By.CSS_SELECTOR, "dd.failure").text


def test_promotion_diagram_contains_the_expected_edges(browser, site, screenshots):
    """The diagram draws the example's aliases, pin and cross-namespace follows."""
    from selenium.webdriver.common.by import By

    visit(browser, page(site, "promotion/index.html"), screenshots, f"{kind(site)}-promotion")
    titles = {
        t.get_attribute("textContent")
        for t in browser.find_elements(By.CSS_SELECTOR, "svg.promotion g.edge > title")
    }
    assert {
        "shop/app:1.1 → shop/app:latest",
        "shop/app:1.0 → shop/app:prod",
        "shop/app:latest → staging/app:latest",
        "platform/base:default → staging/base:default",
    } <= titles


def test_hostile_labels_are_text_and_never_run(browser, site, screenshots):
    """Labels and a hold reason full of markup show as text; none of it runs."""
    from selenium.webdriver.common.by import By

    visit(browser, page(site, "streams/shop/hostile.html"), screenshots, f"{kind(site)}-hostile")
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    labels = browser.find_element(By.CSS_SELECTOR, "#tag-labels ul.labels").text
    for value in HOSTILE_LABELS.values():
        assert value in labels
    assert HOLD_REASON in browser.find_element(By.CSS_SELECTOR, "#tag-frozen dd.hold").text
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")


def test_skip_link_is_the_first_stop_of_the_keyboard(browser, site, screenshots):
    """Tab from the top of a page lands on the skip link, which leads to the content."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    visit(browser, page(site, "streams/shop/app.html"), screenshots, f"{kind(site)}-keyboard")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    active = browser.switch_to.active_element
    assert active.get_attribute("class") == "skip"
    assert active.get_attribute("href").endswith("#main")


def test_every_page_loads_without_console_errors(browser, site, screenshots):
    """Each stream page and each promotion page loads with no console error (the CSP lets
    the stylesheet in and nothing else is needed)."""
    from selenium.webdriver.common.by import By

    visit(browser, page(site, "index.html"), screenshots, f"{kind(site)}-all")
    streams = [
        a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, "table.streams tbody th a")
    ]
    for url in streams:
        name = url.rsplit("/streams/", 1)[1].replace("/", "-").removesuffix(".html")
        visit(browser, url, screenshots, f"{kind(site)}-stream-{name}")
    for namespace in ("platform", "shop", "staging"):
        url = page(site, f"promotion/{namespace}.html")
        visit(browser, url, screenshots, f"{kind(site)}-promotion-{namespace}")
    stylesheet = browser.execute_script("return document.styleSheets.length")
    assert stylesheet == 1


def test_no_page_holds_the_registry_password(daemon, scenario):
    """The password of the operator's registry credentials is on no page of either face."""
    pages = [
        "/ui/",
        "/ui/?state=failed",
        "/ui/promotion/index.html",
        *(f"/ui/streams/{ns}/{name}.html" for ns, name in EXAMPLE_STREAMS),
        "/ui/streams/shop/hostile.html",
    ]
    with httpx.Client(base_url=daemon.url, trust_env=False, timeout=10) as client:
        for path in pages:
            response = client.get(path)
            assert response.status_code == 200, path
            assert SECRET not in response.text
    for path in scenario.report.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_ui_answers_with_a_content_security_policy(daemon):
    """/ui/ pages carry a CSP header forbidding scripts; nothing but GET and HEAD is routed."""
    with httpx.Client(base_url=daemon.url, trust_env=False, timeout=10) as client:
        response = client.get("/ui/streams/shop/app.html")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert client.post("/ui/", content=b"").status_code == 405
