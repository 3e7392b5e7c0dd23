"""What tracing costs: the gateway and order publishing with TRACING=on (at the default TRACING_SAMPLE_RATIO, spans
sent to the Zipkin of the benchmarks' own stack) next to TRACING=off, in the same run. Metrics are on in both arms
(they have no switch), so the figures are the price of metrics and tracing together against metrics alone;
gateway_vs_nginx.py and order_publish.py give the anchors without either.

    .venv/bin/python -m bench.observability_cost [--rounds 9] [--seconds 6] [--skip-gateway] [--skip-orders]

1. Two gateways (one worker each, TRACING off and on) in front of the same two FastAPI order-service stand-ins and
   one private discovery server, wrk -c32 POSTing an order with a token; clients send no traceparent, so the gateway
   starts every trace and samples it itself.
2. Two private order-service instances (they do not register) publishing to the Kafka of the benchmarks' own stack
   (stack_support.bench_stack, with its Zipkin), TRACING off and on, wrk -c64 straight at each (no gateway); that
   stack's catalog-service answers their stock requests. Real orders (user bench-<run>, a product of the bench's
   own) on the bench's stack, settled before the bench removes its product, as order_publish.py's are; nothing
   reaches make up's stack.

Rounds alternate which arm goes first; figures are medians, and the cost is the median of the per-round paired
ratios with their range (other load on the machine moves both arms of a round together). Needs wrk; part 2 runs on
the bench stack (started for it when run alone). Target: tracing costs under 10% of the throughput in both.
`--quick`: tiny counts, one round, targets not judged. Run as a module (from the repo root): it uses the gateway
and order benchmarks' helpers.
"""

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import gateway_vs_nginx as gateway_bench
from bench import order_publish as order_bench
from servicekit.config import TracingSettings
from servicekit.testing import free_port, wait_answering
from stack_description.access import ORDER_SERVICE_KAFKA
from stack_description.settings import StackConfig
from stack_support.bench_stack import on_bench_stack, parse_args

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_COST = 0.10
ARMS = ("off", "on")


def paired_cost(off: list[float], on: list[float]) -> float:
    """1 - on/off, the median over rounds of each round's pair."""
    return 1 - statistics.median(b / a for a, b in zip(off, on, strict=True))


def spread(off: list[float], on: list[float]) -> str:
    """The lowest and highest round's cost: how much one round alone could be trusted on this machine."""
    costs = [1 - b / a for a, b in zip(off, on, strict=True)]
    return f"rounds {min(costs):+.0%} to {max(costs):+.0%}"


def gateway_cost(args: argparse.Namespace) -> float:
    from servicekit.tokens import SigningKey, issue_token, jwks

    key = SigningKey.generate("bench")
    token = issue_token(gateway_bench.USER_ID, key, 3600)
    python = sys.executable
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp_dir, gateway_bench.processes() as started:
        tmp = Path(tmp_dir)
        registry_password = secrets.token_urlsafe(32)
        discovery_port = free_port()
        discovery_url = f"http://bench:{registry_password}@127.0.0.1:{discovery_port}/eureka"
        discovery_env = {
            **os.environ,
            "DISCOVERY_PORT": str(discovery_port),
            "DISCOVERY_LOG_LEVEL": "warning",
            "DISCOVERY_USER": "bench",
            "DISCOVERY_PASSWORD": registry_password,
        }
        started.append(subprocess.Popen([python, "-m", "discovery_server"], cwd=REPO_ROOT, env=discovery_env, **quiet))
        wait_answering(started[-1], f"{discovery_url}/apps", within=30)
        upstreams = []
        for _ in range(2):
            upstream = [python, gateway_bench.__file__, "--upstream", str(free_port()), discovery_url]
            started.append(subprocess.Popen(upstream, **quiet))
            upstreams.append(started[-1])
        ports: dict[str, int] = {}
        gateways: dict[str, subprocess.Popen[bytes]] = {}
        for arm in ARMS:
            ports[arm] = free_port()
            env = {
                **os.environ,
                "GATEWAY_PORT": str(ports[arm]),
                "GATEWAY_MANAGEMENT_PORT": str(free_port()),
                "GATEWAY_WORKERS": "1",
                "DISCOVERY_URL": discovery_url,
                "TRUSTED_JWKS": json.dumps(jwks([key])),
                "GATEWAY_LOG_LEVEL": "WARNING",
                "TRACING": arm,
            }
            log = open(tmp / f"gateway-tracing-{arm}.log", "wb")  # the child keeps it; closed when this one exits
            started.append(
                subprocess.Popen(
                    [python, "-m", "api_gateway"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
            gateways[arm] = started[-1]
        for arm in ARMS:
            try:
                wait_answering(gateways[arm], f"http://127.0.0.1:{ports[arm]}/gateway/health_check", within=120)
            except (AssertionError, RuntimeError):
                print((tmp / f"gateway-tracing-{arm}.log").read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            gateway_bench.wait_for_both_instances(ports[arm], key)

        script = tmp / "post_order.lua"
        script.write_text(gateway_bench.WRK_SCRIPT.format(body=gateway_bench.ORDER, token=token))
        path = f"/order-service/{gateway_bench.USER_ID}/orders"
        targets = {arm: f"http://127.0.0.1:{ports[arm]}{path}" for arm in ARMS}
        upstream_pids = [pid for process in upstreams for pid in gateway_bench.process_tree(process.pid)]
        proxies = {arm: gateway_bench.process_tree(gateways[arm].pid) for arm in ARMS}
        print(f"gateway: wrk -c{args.connections}, {args.seconds} s per run, {args.rounds} rounds; warming up")
        for url in targets.values():
            gateway_bench.run_wrk(url, script, 3, args.connections, [], [])
        results: dict[str, list[gateway_bench.WrkResult]] = {arm: [] for arm in ARMS}
        for number in range(args.rounds):
            for arm in ARMS if number % 2 == 0 else tuple(reversed(ARMS)):
                measured = (proxies[arm], upstream_pids)
                results[arm].append(
                    gateway_bench.run_wrk(targets[arm], script, args.seconds, args.connections, *measured)
                )
            print(
                f"  round {number + 1}: "
                + "  ".join(f"tracing {arm} {results[arm][-1].requests_per_second:,.0f} req/s" for arm in ARMS),
                flush=True,
            )

    def median(arm: str, field: str) -> float:
        return float(statistics.median(getattr(result, field) for result in results[arm]))

    print(f"\n{'gateway, medians':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'gateway CPU us/req':>20}")
    for arm in ARMS:
        print(
            f"{'tracing ' + arm:<22}{median(arm, 'requests_per_second'):>10,.0f}{median(arm, 'p50_ms'):>9.2f}"
            f"{median(arm, 'p99_ms'):>9.2f}{sum(r.errors for r in results[arm]):>8}"
            f"{median(arm, 'proxy_cpu_us_per_request'):>20.0f}"
        )
    off, on = ([r.requests_per_second for r in results[arm]] for arm in ARMS)
    cost = paired_cost(off, on)
    cpu = median("on", "proxy_cpu_us_per_request") / median("off", "proxy_cpu_us_per_request") - 1
    print(
        f"gateway tracing cost: {cost:+.1%} throughput (paired per round; {spread(off, on)}), "
        f"{cpu:+.1%} CPU per request"
    )
    return cost


def order_publishing_cost(args: argparse.Namespace) -> float:
    run = uuid.uuid4().hex[:6]
    config = StackConfig.load()
    product_id = asyncio.run(order_bench.with_bench_product(stock=1_000_000_000))
    instances: dict[str, order_bench.Instance] = {}
    try:
        for arm in ARMS:
            # start_instance passes this process's environment on.
            os.environ["TRACING"] = arm
            instances[arm] = order_bench.start_instance(
                f"order-bench-{run}-tracing-{arm}", True, ORDER_SERVICE_KAFKA.env(config)
            )
        os.environ.pop("TRACING")
        user = f"bench-{run}"
        script = order_bench.wrk_script(order_bench.WRK_SCRIPT % (order_bench.bearer(user), product_id))
        connections = 64
        print(f"\norder publishing: wrk -c{connections}, {args.seconds} s per run, {args.rounds} rounds; warming up")
        for instance in instances.values():
            order_bench.wait_ready(instance, product_id, user)
            order_bench.run_wrk(f"{instance.url}/{user}/orders", script, connections, args.warm_up)
        results: dict[str, list[order_bench.Figures]] = {arm: [] for arm in ARMS}
        cpu_per_order: dict[str, list[float]] = {arm: [] for arm in ARMS}
        pids = {arm: gateway_bench.process_tree(instances[arm].process.pid) for arm in ARMS}
        for number in range(args.rounds):
            for arm in ARMS if number % 2 == 0 else tuple(reversed(ARMS)):
                url = f"{instances[arm].url}/{user}/orders"
                cpu_before = gateway_bench.cpu_seconds(pids[arm])
                figures = order_bench.run_wrk(url, script, connections, args.seconds)
                orders = max(figures.orders_per_second * args.seconds, 1)
                cpu_per_order[arm].append((gateway_bench.cpu_seconds(pids[arm]) - cpu_before) / orders * 1e6)
                results[arm].append(figures)
            print(
                f"  round {number + 1}: "
                + "  ".join(f"tracing {arm} {results[arm][-1].orders_per_second:,.0f} orders/s" for arm in ARMS),
                flush=True,
            )
        script.unlink()
    finally:
        for instance in instances.values():
            order_bench.stop_instance(instance)
        try:
            # Its orders are real ones on the stack (user bench-<run>, the bench's own product): settled first.
            order_bench.wait_settled(config, f"bench-{run}")
        finally:
            asyncio.run(order_bench.remove_bench_product(product_id))

    header = f"{'order-service, medians':<24}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}"
    print(f"\n{header}{'instance CPU us/order':>23}")
    for arm in ARMS:
        figures = order_bench.median_of(results[arm])
        print(
            f"{'tracing ' + arm:<24}{figures.orders_per_second:>10,.0f}{figures.p50_ms:>9.2f}"
            f"{figures.p99_ms:>9.2f}{figures.failed:>8}{statistics.median(cpu_per_order[arm]):>23.0f}"
        )
    off, on = ([r.orders_per_second for r in results[arm]] for arm in ARMS)
    cost = paired_cost(off, on)
    cpu = -paired_cost(cpu_per_order["off"], cpu_per_order["on"])
    print(
        f"order publishing tracing cost: {cost:+.1%} throughput (paired per round; {spread(off, on)}), "
        f"{cpu:+.1%} CPU per order"
    )
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Rounds on a 2-core machine spread by +-10% or more: nine pairs give a median worth comparing to the target.
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections to each gateway")
    parser.add_argument("--warm-up", type=int, default=15, help="seconds of publishing before measuring")
    parser.add_argument("--skip-gateway", action="store_true")
    parser.add_argument("--skip-orders", action="store_true")
    args = parse_args(parser, rounds=1, seconds=2, connections=8, warm_up=2)
    if not args.skip_orders:
        on_bench_stack()
    gateway_bench.ensure_debian_packages()
    settings = TracingSettings()
    zipkin = f"http://{settings.zipkin_host}:{settings.zipkin_port}/health"
    try:
        httpx.get(zipkin, timeout=2).raise_for_status()
    except httpx.HTTPError:
        sys.exit(f"Zipkin does not answer at {zipkin}: is the bench stack up (python -m stack_support.bench_stack up)?")
    print(f"TRACING_SAMPLE_RATIO={settings.tracing_sample_ratio} (new traces); spans to {settings.zipkin_spans_url}")
    costs = {}
    if not args.skip_gateway:
        costs["gateway"] = gateway_cost(args)
    if not args.skip_orders:
        costs["order publishing"] = order_publishing_cost(args)
    print()
    for name, cost in costs.items():
        verdict = "ok" if cost < TARGET_COST else "OVER TARGET"
        print(f"tracing cost, {name}: {cost:+.1%} (target < {TARGET_COST:.0%}) {verdict}")
    if not args.quick and any(cost >= TARGET_COST for cost in costs.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
