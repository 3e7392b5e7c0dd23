"""`python -m chaos [--duration S] [--short]` (`make chaos`): a steady order load through the gateway for a few
minutes while an order-service instance, catalog-service, the Connect worker, MariaDB and (in cluster mode) a
broker are killed with -9 and started again, in turn. Clients retry with an Idempotency-Key, as a real client would.

It prints a timeline (faults, orders accepted per second, failed attempts clients saw, the backlog of accepted
orders not yet settled in mydb.orders) and the consistency auditor's verdict after each fault has settled, over the
orders of this run. It ends with the auditor's final verdict: exit 0 when consistent, 1 on any discrepancy, 2 when
the run itself could not go on (a component that did not come back, an order never accepted)."""

import argparse
import asyncio
import contextlib
import datetime as dt
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pymysql

from chaos.faults import Fault, faults_in_turn
from consistency_audit.auditor import Auditor, Verdict
from consistency_audit.config import AuditSettings
from consistency_audit.report import render
from launcher import services
from stack_description.settings import LOG_DIR, StackConfig
from stack_support.api_client import GatewayClient, OrderNotAccepted, User
from stack_support.catalog_views import products_in_catalog
from stack_support.database import operator_connection

CLIENTS = 4
THINK_SECONDS = 0.1  # between one client's orders: a steady flow, not a flood
STOCK_PER_PRODUCT = 1_000_000  # the load never runs out: REJECTED would say nothing about faults
SETTLE_WITHIN = 180.0  # after a fault is repaired, the backlog must drain within this
CHAOS_LOG = LOG_DIR / "chaos.log"
RECHECK_WITHIN = 60.0  # a discrepancy seen after a fault must still be there after this long to count


@dataclass
class Load:
    """What the clients did: the orders accepted (in order), failed attempts, and the unsettled backlog."""

    started: float = field(default_factory=time.monotonic)
    accepted: list[str] = field(default_factory=list)
    failed_attempts: int = 0
    unsettled: set[str] = field(default_factory=set)
    statuses: dict[str, str] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def on_retry(self, _response: httpx.Response | None) -> None:
        self.failed_attempts += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def say(load: Load, message: str) -> None:
    # To the terminal even while the launcher's own progress lines go to the chaos log (inject).
    print(f"  {load.elapsed():6.1f}s  {message}", file=sys.__stdout__, flush=True)


async def client(gateway: GatewayClient, user: User, products: list[str], load: Load) -> None:
    n = 0
    while not load.stop.is_set():
        order_id = await gateway.place_until_accepted(user, products[n % len(products)], 1, on_retry=load.on_retry)
        load.accepted.append(order_id)
        load.unsettled.add(order_id)
        n += 1
        await asyncio.sleep(THINK_SECONDS)


def refresh_backlog(config: StackConfig, load: Load) -> int | None:
    """Drop the orders whose row in mydb.orders is settled; the backlog left, or None while MariaDB is away."""
    waiting = list(load.unsettled)
    try:
        connection = operator_connection(config, config.get("ORDERS_DB"), connect_timeout=2)
    except pymysql.MySQLError:
        return None
    try:
        with connection.cursor() as cursor:
            for start in range(0, len(waiting), 1000):
                batch = waiting[start : start + 1000]
                cursor.execute(
                    f"SELECT order_id, status FROM orders WHERE order_id IN ({', '.join(['%s'] * len(batch))})",
                    batch,
                )
                for order_id, status in cursor.fetchall():
                    if status != "PENDING":
                        load.unsettled.discard(order_id)
                        load.statuses[order_id] = status
    except pymysql.MySQLError:
        return None
    finally:
        connection.close()
    return len(load.unsettled)


async def timeline(config: StackConfig, load: Load, every: float) -> None:
    """One line every `every` seconds: throughput since the last line, failed attempts, backlog."""
    counted, failed = 0, 0
    while True:
        await asyncio.sleep(every)
        backlog = await asyncio.to_thread(refresh_backlog, config, load)
        rate = (len(load.accepted) - counted) / every
        counted, failed_now = len(load.accepted), load.failed_attempts - failed
        failed = load.failed_attempts
        shown = "?" if backlog is None else str(backlog)
        say(load, f"{rate:7.1f} orders/s   failed attempts {failed_now:4d}   backlog {shown:>5}")


async def settled(config: StackConfig, load: Load, within: float) -> bool:
    """Every order accepted so far has its final status in mydb.orders."""
    target = set(load.accepted)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await asyncio.to_thread(refresh_backlog, config, load)
        if not (load.unsettled & target):
            return True
        await asyncio.sleep(1.0)
    return False


async def audit(auditor: Auditor, load: Load, label: str) -> Verdict:
    """The auditor's verdict once the fault has settled for every order of the window, not only the clients'
    (other writers' orders may still be in flight): a discrepancy must outlast RECHECK_WITHIN seconds of passes."""
    started = time.monotonic()
    verdict = await auditor.run()
    while not verdict.consistent and time.monotonic() - started < RECHECK_WITHIN:
        say(load, f"audit after {label}: {verdict.counts()} for now; looking again")
        await asyncio.sleep(5.0)
        verdict = await auditor.run()
    summary = "consistent" if verdict.consistent else "INCONSISTENT"
    say(load, f"audit after {label}: {summary} ({verdict.duration_seconds:.2f} s, {verdict.reason})")
    if not verdict.consistent:
        print(render(verdict), file=sys.__stdout__, flush=True)
    return verdict


async def inject(fault: Fault, load: Load, hold: float) -> None:
    say(load, f"FAULT   kill -9 {fault.target}")
    await asyncio.to_thread(fault.crash)
    await asyncio.sleep(hold)
    started = time.monotonic()
    CHAOS_LOG.parent.mkdir(parents=True, exist_ok=True)
    with CHAOS_LOG.open("a") as log, contextlib.redirect_stdout(log):
        await asyncio.to_thread(fault.recover)
    say(load, f"REPAIR  {fault.target} back in {time.monotonic() - started:.1f} s (launcher output: {CHAOS_LOG})")


async def run(config: StackConfig, duration: float) -> int:
    faults = faults_in_turn(config)
    # Faults evenly over the run: the load runs alone for a gap before each fault and after the last.
    gap = max(5.0, duration / (len(faults) + 1) - 10.0)
    hold = 3.0 if duration < 120 else 10.0
    run_started = dt.datetime.now(dt.UTC)
    settings = AuditSettings().model_copy(update={"audit_since": run_started})
    products = {f"CHAOS-{uuid.uuid4().hex[:8]}": STOCK_PER_PRODUCT for _ in range(3)}
    catalog_db = operator_connection(config, config.get("CATALOG_DB"))
    gateway_url = f"http://127.0.0.1:{services.gateway_port(config)}"
    targets = ", ".join(fault.target for fault in faults)
    print(f"==> chaos: {len(faults)} faults ({targets}), {CLIENTS} clients, ~{duration:.0f} s", flush=True)
    verdicts: list[Verdict] = []
    auditor = Auditor(settings)
    # Their own products; written and awaited (CDC to every instance) in a thread: the wait blocks.
    own_products = products_in_catalog(catalog_db, config, products, "Chaos product")
    await asyncio.to_thread(own_products.__enter__)
    try:
        async with GatewayClient(gateway_url) as gateway:
            users = [await gateway.sign_up(f"Chaos Client {n}") for n in range(CLIENTS)]
            load = Load()
            clients = asyncio.gather(*(client(gateway, user, list(products), load) for user in users))
            ticker = asyncio.create_task(timeline(config, load, 5.0))
            try:
                for fault in faults:
                    await asyncio.sleep(gap)
                    await inject(fault, load, hold)
                    if not await settled(config, load, SETTLE_WITHIN):
                        say(load, f"backlog did not drain within {SETTLE_WITHIN:.0f} s after {fault.target}")
                        return 2
                    verdicts.append(await audit(auditor, load, fault.target))
                await asyncio.sleep(gap)
            finally:
                load.stop.set()
                await clients
                ticker.cancel()
            if not await settled(config, load, SETTLE_WITHIN):
                say(load, "the last orders did not settle")
                return 2
            final = await auditor.run(full=True)
            verdicts.append(final)
        report(load, final)
    except OrderNotAccepted as exc:
        print(f"ERROR: an order was never accepted: {exc}", file=sys.stderr)
        return 2
    finally:
        await asyncio.to_thread(own_products.__exit__, None, None, None)
        catalog_db.close()
        await auditor.close()
    return 0 if all(v.consistent for v in verdicts) else 1


def report(load: Load, final: Verdict) -> None:
    by_status: dict[str, int] = {}
    for status in load.statuses.values():
        by_status[status] = by_status.get(status, 0) + 1
    print(
        f"\n==> {len(load.accepted)} orders accepted in {load.elapsed():.0f} s "
        f"({', '.join(f'{n} {s}' for s, n in sorted(by_status.items()))}); "
        f"{load.failed_attempts} failed attempts retried by the clients"
    )
    print(render(final))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=240.0, help="seconds of load, roughly (default 240)")
    parser.add_argument("--short", action="store_true", help="about 60 s (what make test runs)")
    args = parser.parse_args()
    config = StackConfig.load()
    sys.exit(asyncio.run(run(config, 60.0 if args.short else args.duration)))


if __name__ == "__main__":
    main()
