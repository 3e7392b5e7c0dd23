"""The compose stack's MariaDB is a Galera cluster of three nodes (mariadb, mariadb-2, mariadb-3), as make up-cluster
runs it: the node everybody writes to (the first of DB_HOSTS) killed while orders flow, the clients move to the next
node, the killed one restarts by its policy and rejoins by IST; every accepted order is one row, none twice, on every
node. Asked from the host on the ports make compose-test publishes (DB_HOSTS: each node's)."""

import asyncio
import os
import subprocess
import time
from functools import partial

import pymysql
import pytest

from servicekit.config import ServiceSettings
from servicekit.testing import DictConnection, database, eventually
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.compose.test_compose_stack import ENGINE, container, crash, restarted_by_its_policy
from tests.e2e.orders_table import rows_by_id, settled, stock_drift
from tests.e2e.test_faults import Progress, place_until

pytestmark = pytest.mark.skipif(
    os.environ.get("STACK_UNDER_TEST") != "compose", reason="needs the compose stack: make compose-test"
)


def node_db(settings: ServiceSettings, number: int, name: str) -> DictConnection:
    """Database `name` on Galera node `number` (1 to 3), at its published port."""
    host, port = settings.db_addresses[number - 1]
    # This node alone: not the first of DB_HOSTS that answers (servicekit.testing.database fails over otherwise).
    return database(settings.model_copy(update={"db_host": host, "db_port": port, "db_hosts": ""}), name)


def wsrep_status(settings: ServiceSettings, number: int) -> dict[str, str] | None:
    """Node `number`'s view of the cluster (wsrep_* status), None while it does not answer."""
    try:
        connection = node_db(settings, number, "information_schema")
    except pymysql.Error:
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'wsrep%'")
            return {row["Variable_name"]: row["Value"] for row in cursor.fetchall()}
    finally:
        connection.close()


def synced_in_a_cluster_of_three(settings: ServiceSettings, number: int) -> bool:
    status = wsrep_status(settings, number) or {}
    return (status.get("wsrep_cluster_status"), status.get("wsrep_local_state_comment")) == ("Primary", "Synced") and (
        status.get("wsrep_cluster_size") == "3"
    )


def node_log(service: str) -> str:
    """Everything the node's container logged (MariaDB logs to stderr), over all its restarts."""
    logs = subprocess.run([ENGINE, "logs", container(service)], capture_output=True, text=True, check=False, timeout=60)
    return logs.stdout + logs.stderr


def test_the_three_nodes_are_one_primary_cluster_all_synced(settings: ServiceSettings) -> None:
    assert len(settings.db_addresses) == 3
    states = [wsrep_status(settings, number) or {} for number in (1, 2, 3)]

    assert {state.get("wsrep_cluster_state_uuid") for state in states} != {None}
    assert len({state.get("wsrep_cluster_state_uuid") for state in states}) == 1, "one cluster"
    assert all(synced_in_a_cluster_of_three(settings, number) for number in (1, 2, 3)), states


async def test_the_writer_node_killed_while_orders_flow_loses_and_duplicates_nothing_and_rejoins_by_ist(
    gateway: GatewayClient, settings: ServiceSettings, stack_config: StackConfig, fresh_products: dict[str, int]
) -> None:
    """mariadb (first of DB_HOSTS: every service and the sink write there) killed -9: the services' next connections
    and the sink's go to mariadb-2; the restart policy starts the node again and it takes the writesets it missed
    (IST). Every accepted order is one settled row, on the node that stayed and on the one that came back; stock
    moved by exactly the confirmed quantities. Prints kill -> next accepted order, -> its row, -> Synced again."""
    products = list(fresh_products)
    users = await asyncio.gather(*(gateway.sign_up(f"Compose Galera Buyer {n}") for n in range(3)))
    orders_db = node_db(settings, 2, stack_config.get("ORDERS_DB"))
    progress, faults_done = Progress(), asyncio.Event()
    flow = asyncio.ensure_future(
        asyncio.gather(*(place_until(gateway, user, products, faults_done, progress) for user in users))
    )
    try:
        await progress.reached(15, flow)
        before = len(progress.accepted)
        await asyncio.to_thread(crash, "mariadb")
        killed_at = time.monotonic()
        await progress.reached(before + 1, flow)
        to_order = time.monotonic() - killed_at
        await eventually(
            lambda: rows_by_id(orders_db, [progress.accepted[before]]),
            within=60,
            what="the row of the first order accepted after the kill",
            interval=0.05,
        )
        to_row = time.monotonic() - killed_at
        await progress.reached(len(progress.accepted) + 15, flow)
        await asyncio.to_thread(restarted_by_its_policy, "mariadb")
        await eventually(
            partial(synced_in_a_cluster_of_three, settings, 1), within=120, what="mariadb Synced again", interval=0.5
        )
        back_at = time.monotonic() - killed_at
        await progress.reached(len(progress.accepted) + 10, flow)
        assert not flow.done(), "orders flowed while the writer was down and after it came back"
    finally:
        faults_done.set()
        await flow
    print(f"\nmariadb killed: next order {to_order:.2f} s, its row {to_row:.2f} s, Synced again {back_at:.1f} s")
    # Galera's rsync script names what it did as the joiner; mariadb founded the cluster, so this is its rejoin.
    log = await asyncio.to_thread(node_log, "mariadb")
    assert "rsync IST completed on joiner" in log, "it took only the writesets it missed (IST)"
    assert "rsync SST completed on joiner" not in log, "no full copy of a peer's data (SST)"

    accepted = progress.accepted
    assert len(accepted) == len(set(accepted)) >= 40
    try:
        rows = await eventually(
            lambda: settled(orders_db, accepted), within=120, what="every accepted order has one settled row"
        )
        assert {row["status"] for row in rows.values()} == {"CONFIRMED"}, "5,000 in stock: every order fits"
        stock = await eventually(gateway.stock, within=30, what="the catalog through the gateway")
        assert set(stock_drift(orders_db, fresh_products, stock).values()) == {0}, "stock moved by confirmed orders"
    finally:
        orders_db.close()
    rejoined = node_db(settings, 1, stack_config.get("ORDERS_DB"))
    try:
        same = "the node that came back holds the same rows"
        await eventually(lambda: settled(rejoined, accepted) == rows, within=30, what=same)
    finally:
        rejoined.close()
