"""The operator's connection to the stack's MariaDB, for the demo, chaos, the benchmarks and the suites: servicekit's
one way to a server (the first of DB_HOSTS that answers and is synced), with the operator's account of .env."""

from typing import Any

import pymysql

from servicekit.database import connect_blocking
from stack_description.settings import StackConfig


def operator_connection(config: StackConfig, database: str, connect_timeout: int = 10) -> "pymysql.Connection[Any]":
    """Autocommit, rows as tuples, as DB_USER of .env (every right on the stack's databases and the benchmarks')."""
    return connect_blocking(config.operator_settings, database, connect_timeout=connect_timeout)
