#!/usr/bin/env bash
# make bench: every benchmark, each printing our figure next to its anchor from the same run.
# Not part of make test. Starts the stack if needed (the gateway bench brings its own upstreams and nginx).
# Each works on topics, connectors, groups, databases and products of its own and removes them; the order benches
# place real orders through the stack by design and leave them settled. The auditor's verdict ends the run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY -m launcher up >/dev/null || { echo "ERROR: the stack did not start; run make up to see why"; exit 1; }
status=0
for bench in bench/sink_vs_raw.py bench/order_publish.py bench/gateway_vs_nginx.py bench/token_verify_cost.py bench/catalog_change_lag.py \
    bench/audit_cost.py; do
  [ -f "$bench" ] || continue
  echo
  echo "=== $bench"
  $PY "$bench" || status=1
done
# Run as a module: it uses the gateway and order benchmarks' helpers.
echo
echo "=== bench/observability_cost.py"
$PY -m bench.observability_cost || status=1
# Read your own writes: the list with its sync point next to the table alone (two private instances).
echo
echo "=== bench/read_your_writes.py"
$PY -m bench.read_your_writes || status=1
# Accepted -> row visible, at a moderate rate through the gateway, next to the Kafka hop alone.
echo
echo "=== bench/sync_lag.py"
$PY -m bench.sync_lag || status=1
# A cluster of its own beside the stack (3 brokers at RF 3), started and removed by the script.
echo
echo "=== bench/cluster_throughput.py"
$PY -m bench.cluster_throughput || status=1
echo
echo "=== the stack afterwards (make audit)"
$PY -m consistency_audit || status=1
exit $status
