"""End to end in a real browser: Debian's Chromium, driven by Playwright, opens the web app through a sandbox
Session Manager tunnel, submits the form, sees the new order on the page, and the test then finds it with
SQL on the reader. Screenshots go to test-artifacts/ (or $LABKIT_ARTIFACTS).

Chromium comes from the system (`make test` installs Debian's package); Playwright downloads no browser.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from support.sandbox_lab import sandbox_lab

from labkit.access.schema import create_schema
from labkit.access.sql import close_engines, sql
from labkit.access.tunnel import close_all
from labkit.access.webapp import web_app

pytestmark = pytest.mark.integration
ARTIFACTS = Path(os.environ.get("LABKIT_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
CHROMIUM_FLAGS = [  # the machine has no network beyond loopback: no background traffic, no sandbox as root
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str:
    for name in (os.environ.get("LABKIT_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    raise AssertionError(
        "no Chromium found: run `python3 labkit/workbook/bootstrap.py --browser` (Debian's chromium package) "
        "or set LABKIT_CHROMIUM to a Chrome/Chromium binary"
    )


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def app(sandbox_home):
    config, backend = sandbox_lab("browser", "grace")
    create_schema(config=config, backend=backend)
    opened = web_app(config, backend)
    yield opened, config, backend
    opened.close()
    close_engines()
    close_all()


def test_submit_the_form_in_chromium_and_find_the_order_on_the_reader(browser, app):
    web, config, backend = app
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    customer = f"Browser <i>test</i> {time.time_ns() % 100000}"
    page = browser.new_page()
    try:
        page.goto(web.url)
        assert page.title() == "Lab shop"
        page.screenshot(path=str(ARTIFACTS / "app-1-opened.png"), full_page=True)
        page.fill("input[name=customer]", customer)
        page.select_option("select[name=product_id]", label="Green Mug")
        page.fill("input[name=quantity]", "4")
        page.click("button[type=submit]")
        page.wait_for_url("**/?added=*")
        order_id = int(page.url.rpartition("=")[2])
        for _ in range(50):  # the page reads from the reader: reload while replication catches up
            if page.locator("#orders").inner_text().count(customer):
                break
            time.sleep(0.1)
            page.reload()
        page.screenshot(path=str(ARTIFACTS / "app-2-order-added.png"), full_page=True)
        row = page.locator("#orders tr", has_text=customer)
        assert row.count() == 1, "the new order is listed, its name shown as text (escaped), not as markup"
        assert row.locator("td").all_inner_texts() == [str(order_id), row.locator("td").nth(1).inner_text(),
                                                       customer, "Green Mug", "4"]  # fmt: skip
        assert page.locator("#orders i").count() == 0
        assert "visible on the reader" in page.locator("#notice").inner_text()
    finally:
        page.close()
    on_reader = sql("SELECT o.customer, p.name AS product, o.quantity FROM orders o JOIN products p "
                    "ON p.id = o.product_id WHERE o.id = :id", on="reader", params={"id": order_id},
                    config=config, backend=backend)  # fmt: skip
    assert on_reader.to_dict("records") == [{"customer": customer, "product": "Green Mug", "quantity": 4}]


def test_a_bad_quantity_is_refused_in_the_browser_and_nothing_is_added(browser, app):
    web, config, backend = app
    before = sql("SELECT COUNT(*) AS n FROM orders", on="writer", config=config, backend=backend)["n"][0]
    page = browser.new_page()
    try:
        page.goto(web.url)
        page.fill("input[name=customer]", "Ada")
        page.evaluate("document.querySelector('input[name=quantity]').removeAttribute('max')")  # past the browser
        page.fill("input[name=quantity]", "500")
        page.click("button[type=submit]")
        page.wait_for_selector("#quantity-error")
        page.screenshot(path=str(ARTIFACTS / "app-3-refused.png"), full_page=True)
        assert "from 1 to 100" in page.locator("#quantity-error").inner_text()
        assert page.locator("input[name=customer]").input_value() == "Ada", "the form keeps what was typed"
    finally:
        page.close()
    after = sql("SELECT COUNT(*) AS n FROM orders", on="writer", config=config, backend=backend)["n"][0]
    assert after == before
