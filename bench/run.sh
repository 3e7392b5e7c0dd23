#!/usr/bin/env bash
# make bench: every benchmark, each printing our figure next to its anchor from the same run, as medians of paired,
# alternating rounds with their spread. Not part of make test.
# None touches make up's stack. Every benchmark that touches Kafka or MariaDB runs on the benchmarks' own stack
# (stack_support.bench_stack: .stack/bench, every port 12000 up, make up's layout, its own data), made fresh here and
# removed at the end; there each works on topics, connectors, groups, databases and products of its own and removes
# them, and the order benchmarks' orders go through that stack's whole flow and settle there. gateway_vs_nginx and
# token_verify_cost touch neither (private upstreams, discovery and gateways; in-process). cluster_throughput starts
# a cluster of its own beside it (ports 22000 up), then (--galera-only) a stack that differs only in its database.
# When make up's stack runs, its mydb.orders row count is printed before and after and its auditor judges the run's
# window; tests/bench proves the same with each bench's --quick.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ON_BENCH_STACK="$PY -m stack_support.bench_stack exec $PY"
since=$(date -u +%Y-%m-%dT%H:%M:%S)

main_orders() {
  $PY - <<'EOF' 2>/dev/null || echo "(make up's stack is not running)"
from stack_description.settings import StackConfig
from launcher.mariadb import operator_connection
config = StackConfig.load()
connection = operator_connection(config, config.get("ORDERS_DB"), connect_timeout=3)
with connection.cursor() as cursor:
    cursor.execute("SELECT COUNT(*) FROM orders")
    print(f"{cursor.fetchone()[0]:,} rows in make up's {config.get('ORDERS_DB')}.orders")
EOF
}

echo "before: $(main_orders)"
trap '$PY -m stack_support.bench_stack down' EXIT
if ! $PY -m stack_support.bench_stack up; then
  echo "ERROR: the bench stack did not start; see .stack/bench-launcher.log"
  exit 1
fi
status=0
for bench in bench/sink_vs_raw.py bench/order_publish.py bench/catalog_change_lag.py bench/audit_cost.py; do
  echo
  echo "=== $bench"
  $ON_BENCH_STACK "$bench" || status=1
done
# Private upstreams, discovery and gateways; nothing of either stack.
for bench in bench/gateway_vs_nginx.py bench/token_verify_cost.py; do
  echo
  echo "=== $bench"
  $PY "$bench" || status=1
done
# Run as modules: they use the gateway and order benchmarks' helpers.
# What tracing costs, at the gateway and in order publishing (the bench stack's Zipkin).
# Read your own writes: the list with its sync point next to the table alone (two private instances).
# Accepted -> row visible, at a moderate rate through the gateway, next to the Kafka hop alone.
# How cost grows with the orders table (10k, 1M, 10M rows of its own): intake, list, sync lag, auditor, console.
# A cluster of its own beside the bench stack (3 brokers at RF 3, 3 Galera nodes), started and removed by the script;
# then Galera alone (one broker, 3 MariaDB nodes): what synchronous replication costs.
for module in bench.observability_cost bench.read_your_writes bench.sync_lag bench.cost_growth bench.cluster_throughput \
    "bench.cluster_throughput --galera-only"; do
  echo
  echo "=== $module"
  # shellcheck disable=SC2086  # a module and its flags
  $ON_BENCH_STACK -m $module || status=1
done
echo
echo "=== the bench stack afterwards (its auditor, the run's window)"
$ON_BENCH_STACK -m consistency_audit --full --since "$since" || status=1
echo
echo "=== make up's stack afterwards"
echo "after: $(main_orders)"
if $PY -m launcher status >/dev/null 2>&1; then
  $PY -m consistency_audit --since "$since" || status=1
fi
exit $status
