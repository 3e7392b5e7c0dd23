"""The monitor's live console in a real browser (Debian's chromium, headless, driven by Playwright): after orders
placed through the gateway it shows every registered instance, every consumer group with the rating the Burrow API
gives, as many orders as mydb.orders holds, the test's products with their stock, and the connectors running;
and the browser reports no error. The monitor reads mydb.orders with an account of its own that writes nothing."""

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pymysql
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from launcher import services
from servicekit.discovery import instances_from_registry
from servicekit.testing import DictConnection, eventually
from stack_description.access import MONITOR_DB
from stack_description.settings import STACK_DIR, StackConfig
from stack_support.api_client import GatewayClient
from tests.e2e.orders_table import settled

pytestmark = pytest.mark.stack

SCREENSHOT = STACK_DIR / "screenshots" / "console.png"

# What the page shows, read from its DOM (the data-* attributes its rows carry, and the text in them).
READ_PAGE = """() => {
  const rows = (selector) => [...document.querySelectorAll(selector)];
  const status = (row) => row.querySelector(".pill")?.dataset.status;
  return {
    generatedAt: Number(document.body.dataset.generatedAt || 0),
    instances: rows("tr[data-instance-id]").map((row) => row.cells[0].innerText.trim()),
    groups: Object.fromEntries(rows("tr[data-group]").map((row) => [row.cells[0].innerText.trim(), status(row)])),
    connectors: Object.fromEntries(rows("tr[data-connector]").map((row) => [row.dataset.connector, status(row)])),
    stock: Object.fromEntries(rows("tr[data-product]").map((row) => [row.cells[0].innerText.trim(),
                                                                     row.cells[2].innerText.trim()])),
    ordersTotal: document.getElementById("orders-total")?.innerText ?? null,
    audit: document.querySelector("#card-audit .body")?.innerText.trim() ?? "",
    traceLinks: rows("tr[data-order-id] td[data-trace] a").map((a) => a.href),
  };
}"""


def number(shown: str) -> int:
    return int(shown.replace(",", ""))


def console_url(config: StackConfig) -> str:
    return f"http://127.0.0.1:{services.monitor_port(config)}"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: run `make up` (infra/install.sh installs it)")
    async with async_playwright() as playwright:
        # The system browser: Playwright downloads nothing.
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def console_page(browser: Browser, stack_config: StackConfig) -> AsyncIterator[tuple[Page, list[str]]]:
    """The console, opened and loaded once; with every console error and uncaught exception it reports."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text} ({message.location})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    await page.goto(console_url(stack_config) + "/")
    await page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
    yield page, problems
    await page.close()


def registered(config: StackConfig) -> set[str]:
    url = f"{services.eureka_url(config)}/apps"
    answer = httpx.get(url, headers={"Accept": "application/json"}, timeout=5).json()
    return {i.instance_id for found in instances_from_registry(answer).values() for i in found}


def burrow_ratings(config: StackConfig) -> dict[str, str]:
    base = f"{console_url(config)}/v3/kafka/local/consumer"
    groups = httpx.get(base, timeout=5).json()["consumers"]
    return {group: httpx.get(f"{base}/{group}/status", timeout=5).json()["status"]["status"] for group in groups}


def rows_in_orders(db: DictConnection) -> int:
    with db.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) AS n FROM orders")
        row = cursor.fetchone()
    assert row is not None
    return int(row["n"])


async def test_the_console_shows_instances_groups_orders_and_stock_with_no_browser_error(
    console_page: tuple[Page, list[str]],
    stack_config: StackConfig,
    gateway: GatewayClient,
    fresh_products: dict[str, int],
    orders_db: DictConnection,
) -> None:
    page, problems = console_page
    user = await gateway.sign_up("Console Watcher")
    products = list(fresh_products)
    placed = await asyncio.gather(*(gateway.place_order(user, products[n % 3], n + 1) for n in range(4)))
    order_ids = [p.order_id for p in placed]
    await eventually(lambda: settled(orders_db, order_ids), within=60, what="the test's orders settled in mydb.orders")

    async def shown() -> dict[str, Any]:
        read: dict[str, Any] = await page.evaluate(READ_PAGE)
        return read

    async def every_registered_instance_shown() -> set[str] | None:
        on_page = set((await shown())["instances"])
        return on_page if on_page == registered(stack_config) else None

    await eventually(every_registered_instance_shown, within=30, what="the page lists exactly the registry's instances")

    async def groups_rated_as_burrow_api() -> dict[str, str] | None:
        rated = burrow_ratings(stack_config)
        return rated if (await shown())["groups"] == rated else None

    groups = await eventually(groups_rated_as_burrow_api, within=30, what="each group with the Burrow API's rating")
    assert {"catalog-service", "connect-orders-sink"} <= set(groups)
    assert set(groups.values()) <= {"OK", "WARN", "ERR"}

    async def shown_after(moment_ms: int) -> bool:
        generated: int = (await shown())["generatedAt"]
        return generated > moment_ms

    async def order_count_matches_the_table() -> int | None:
        # The rows counted before and after a state the page gathered in between: all three equal (polled, so a
        # row landing meanwhile only means another round).
        before_ms, before = int(time.time() * 1000), rows_in_orders(orders_db)
        await eventually(lambda: shown_after(before_ms), within=10, what="the page refreshed", interval=0.25)
        on_page = (await shown())["ordersTotal"]
        after = rows_in_orders(orders_db)
        return number(on_page) if on_page and before == number(on_page) == after else None

    assert await eventually(order_count_matches_the_table, within=30, what="the page's order count = mydb.orders")

    stock = await gateway.stock()

    async def test_products_with_their_stock() -> dict[str, str] | None:
        on_page = (await shown())["stock"]
        expected = {p: f"{stock[p]:,}" for p in products}
        return on_page if all(on_page.get(p) == expected[p] for p in products) else None

    await eventually(test_products_with_their_stock, within=30, what=f"stock of {products} as the catalog has it")
    connectors = (await shown())["connectors"]
    assert connectors.get("orders-sink") == "RUNNING" and connectors.get("catalog-source") == "RUNNING"
    # Each of the last orders links to its trace in Zipkin, or to Zipkin's search when it has none (not sampled).
    page_now = await shown()
    assert page_now["audit"]  # the auditor's verdict, or "not available" and why
    zipkin = f"http://127.0.0.1:{stack_config.number('ZIPKIN_PORT')}/zipkin/"
    assert page_now["traceLinks"] and all(url.startswith(zipkin) for url in page_now["traceLinks"])

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert problems == []


def test_the_audit_has_a_section_of_its_own_with_the_verdict_or_why_there_is_none(stack_config: StackConfig) -> None:
    state = httpx.get(f"{console_url(stack_config)}/console/state", timeout=10).json()
    audit = state["audit"]
    assert (audit["up"] and isinstance(audit["data"], dict)) or (not audit["up"] and audit["error"])
    assert state["groups"]["up"] and state["instances"]["up"]


def monitor_may(config: StackConfig, sql: str) -> bool:
    connection = pymysql.connect(
        host=config.get("DB_HOST", "127.0.0.1"),
        port=config.db_port,
        user=MONITOR_DB.user,
        password=MONITOR_DB.password(config),
        autocommit=True,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    except pymysql.err.MySQLError as exc:
        if exc.args[0] in (1044, 1142, 1143):  # access denied to a database, a table command, a column
            return False
        raise
    finally:
        connection.close()
    return True


def test_the_monitors_database_account_reads_the_orders_table_and_writes_nothing(stack_config: StackConfig) -> None:
    orders, catalog, users = stack_config.databases
    assert monitor_may(stack_config, f"SELECT status, COUNT(*) FROM `{orders}`.orders GROUP BY status")
    assert not monitor_may(stack_config, f"UPDATE `{orders}`.orders SET status = 'CONFIRMED' WHERE id < 0")
    assert not monitor_may(stack_config, f"DELETE FROM `{orders}`.orders WHERE id < 0")
    assert not monitor_may(stack_config, f"UPDATE `{catalog}`.catalogs SET stock = stock WHERE product_id = ''")
    assert not monitor_may(stack_config, f"SELECT email FROM `{users}`.users LIMIT 1")
