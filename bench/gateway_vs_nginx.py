"""Gateway vs nginx in front of the same two upstream instances, measured with wrk in the same run.

    .venv/bin/python bench/gateway_vs_nginx.py [--rounds 5] [--seconds 6] [--connections 32] [--scenarios post,...]

Starts (on free ports, 127.0.0.1 only) a discovery server, two FastAPI order-service stand-ins that register
as ORDER-SERVICE, the gateway with the real routes (JWT checked on every request; the order route also gets a
RequestRateLimiter by token subject set too high to trigger, so its cost is in the figure), and nginx (round robin,
keep-alive upstream pool), and a span collector of its own that takes the gateway's and discovery's spans (tracing
at its defaults is part of the figure; no span reaches a stack's Zipkin). Three scenarios (issue #24): `post` an
order with a JWT, `orders` (GET a user's orders with a JWT) and `public` (GET the public health route: no token,
only routing and the two upstreams). Each round
runs wrk against both proxies per scenario, alternating who goes first; the tables show medians, and the paired
per-round ratio with its spread. wrk and nginx are Debian packages, installed with apt-get when missing and running
as root. Target: gateway throughput >= 0.8x nginx, added p50 latency <= 1 ms (issue #24: >= 1.0x, CPU per request
<= nginx's). Both proxies share the cores with wrk and the upstreams, so other load on the machine moves the
figures: compare the paired per-round ratio and the CPU microseconds each proxy spends per request, which move
least.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from servicekit.testing import free_port, wait_answering

if TYPE_CHECKING:
    from servicekit.tokens import SigningKey

REPO_ROOT = Path(__file__).resolve().parents[1]
NGINX = "/usr/sbin/nginx"
USER_ID = "bench-user"
ORDER = '{"productId":"CATALOG-001","qty":2,"unitPrice":1500}'
# The scenario whose added latency at one connection is measured (c1 runs for every scenario would double the run).
LATENCY_SCENARIO = "post"

NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream orders {{
        server 127.0.0.1:{upstream_a};
        server 127.0.0.1:{upstream_b};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location /order-service/ {{
            proxy_pass http://orders/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""
WRK_GET_WITH_TOKEN = """\
wrk.headers["Authorization"] = "Bearer {token}"
"""
WRK_GET = "\n"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str  # below /order-service on both proxies
    script: str  # wrk's Lua, formatted with body= and token=


SCENARIOS = {
    "post": Scenario("post", f"/{USER_ID}/orders", WRK_SCRIPT),
    "orders": Scenario("orders", f"/{USER_ID}/orders", WRK_GET_WITH_TOKEN),
    "public": Scenario("public", "/health_check", WRK_GET),
}


# ---- the span collector (run as a child: `gateway_vs_nginx.py --span-sink PORT`) ----


def run_span_sink(port: int) -> None:
    """Where the bench's gateway and discovery send their spans (tracing at its defaults is part of the figure): it
    takes each batch as Zipkin's collector does (POST /api/v2/spans, 202) and keeps nothing, so no span of the bench
    reaches a stack's Zipkin (the .env's ZIPKIN_PORT is make up's)."""
    import uvicorn
    from fastapi import FastAPI, Request, Response

    app = FastAPI()

    @app.post("/api/v2/spans")
    async def spans(request: Request) -> Response:
        await request.body()
        return Response(status_code=202)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "UP"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop")


# ---- the upstream stand-in (run as a child: `gateway_vs_nginx.py --upstream PORT DISCOVERY_URL`) ----


def run_upstream(port: int, discovery_url: str) -> None:
    import asyncio

    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    from servicekit.discovery import DiscoveryClient

    class NewOrder(BaseModel):
        productId: str
        qty: int
        unitPrice: int

    app = FastAPI()
    instance_id = f"127.0.0.1:order-service:{port}"

    @app.get("/health_check")
    async def health_check() -> dict[str, str]:
        return {"status": "UP", "instanceId": instance_id}

    @app.get("/{user_id}/orders")
    async def list_orders(user_id: str) -> list[dict[str, object]]:
        return [
            {"orderId": f"{n:016x}", "userId": user_id, "productId": "CATALOG-001", "qty": 2, "status": "CREATED"}
            for n in range(2)
        ]

    @app.post("/{user_id}/orders", status_code=201)
    async def create_order(user_id: str, order: NewOrder) -> dict[str, object]:
        return {
            "orderId": secrets.token_hex(8),
            "userId": user_id,
            "productId": order.productId,
            "qty": order.qty,
            "unitPrice": order.unitPrice,
            "totalPrice": order.qty * order.unitPrice,
            "status": "PENDING",
            "instanceId": instance_id,
        }

    async def serve() -> None:
        discovery = DiscoveryClient(discovery_url, app_name="ORDER-SERVICE", instance_id=instance_id, port=port)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110  (uvicorn offers no started event)
            await asyncio.sleep(0.05)
        await discovery.start()
        await serving
        await discovery.stop()

    asyncio.run(serve())


# ---- orchestration ---------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    proxy_cpu_us_per_request: float = 0.0
    upstream_cpu_us_per_request: float = 0.0


def process_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes, from /proc (clock ticks)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def ensure_debian_packages() -> None:
    missing = [package for binary, package in (("wrk", "wrk"), (NGINX, "nginx-light")) if not shutil.which(binary)]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: install them with apt-get (needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True, env=env)


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_wrk(
    url: str, script: Path, seconds: int, connections: int, proxy: list[int], upstreams: list[int]
) -> WrkResult:
    threads = str(min(2, connections))
    proxy_before, upstreams_before = cpu_seconds(proxy), cpu_seconds(upstreams)
    output = subprocess.run(
        ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(_wrk_field(r"Requests/sec:\s+([\d.]+)", output)[0])
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:(.*)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))) if socket_errors else 0
    )
    requests = int(_wrk_field(r"(\d+) requests in", output)[0])
    proxy_cpu, upstream_cpu = cpu_seconds(proxy) - proxy_before, cpu_seconds(upstreams) - upstreams_before
    return WrkResult(
        rate,
        _percentile_ms(output, "50%"),
        _percentile_ms(output, "99%"),
        errors,
        requests,
        proxy_cpu / max(requests, 1) * 1e6,
        upstream_cpu / max(requests, 1) * 1e6,
    )


def _wrk_field(pattern: str, output: str) -> tuple[str, ...]:
    found = re.search(pattern, output, re.M)
    if found is None:
        raise RuntimeError(f"wrk's report has no {pattern!r}:\n{output}")
    return found.groups()


def _percentile_ms(output: str, label: str) -> float:
    value, unit = _wrk_field(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output)
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"of {', '.join(SCENARIOS)}")
    parser.add_argument("--gateway-workers", type=int, help="GATEWAY_WORKERS (default: the gateway's own)")
    parser.add_argument("--upstream", nargs=2, metavar=("PORT", "DISCOVERY_URL"), help=argparse.SUPPRESS)
    parser.add_argument("--span-sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        run_upstream(int(args.upstream[0]), args.upstream[1])
        return
    if args.span_sink:
        run_span_sink(args.span_sink)
        return
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    scenarios = [SCENARIOS[name] for name in args.scenarios.split(",")]

    ensure_debian_packages()
    from servicekit.tokens import SigningKey, issue_token, jwks

    # The gateway trusts this key alone (TRUSTED_JWKS), as it trusts user-service's on the stack.
    key = SigningKey.generate("bench")
    token = issue_token(USER_ID, key, 3600)
    workers = os.cpu_count() or 1
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_dir, processes() as started:
        tmp = Path(tmp_dir)
        discovery_port, gateway_port, nginx_port = free_port(), free_port(), free_port()
        upstream_ports = [free_port(), free_port()]
        registry_password = secrets.token_urlsafe(32)
        discovery_url = f"http://bench:{registry_password}@127.0.0.1:{discovery_port}/eureka"
        quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        span_sink_port = free_port()
        started.append(subprocess.Popen([python, __file__, "--span-sink", str(span_sink_port)], **quiet))
        wait_answering(started[-1], f"http://127.0.0.1:{span_sink_port}/health", within=30)
        spans = {"ZIPKIN_HOST": "127.0.0.1", "ZIPKIN_PORT": str(span_sink_port)}

        env = {
            **os.environ,
            **spans,
            "DISCOVERY_PORT": str(discovery_port),
            "DISCOVERY_LOG_LEVEL": "warning",
            "DISCOVERY_USER": "bench",
            "DISCOVERY_PASSWORD": registry_password,
        }
        started.append(subprocess.Popen([python, "-m", "discovery_server"], cwd=REPO_ROOT, env=env, **quiet))
        wait_answering(started[-1], f"{discovery_url}/apps", within=30)
        for port in upstream_ports:
            started.append(subprocess.Popen([python, __file__, "--upstream", str(port), discovery_url], **quiet))
        env = {
            **os.environ,
            **spans,
            "GATEWAY_PORT": str(gateway_port),
            "GATEWAY_MANAGEMENT_PORT": str(free_port()),
            "DISCOVERY_URL": discovery_url,
            "TRUSTED_JWKS": json.dumps(jwks([key])),
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_ROUTES": str(rate_limited_routes(tmp)),
        }
        if args.gateway_workers:
            env["GATEWAY_WORKERS"] = str(args.gateway_workers)
        started.append(subprocess.Popen([python, "-m", "api_gateway"], cwd=REPO_ROOT, env=env, **quiet))
        gateway = started[-1]
        (tmp / "nginx.conf").write_text(
            NGINX_CONF.format(
                workers=workers,
                tmp=tmp,
                port=nginx_port,
                upstream_a=upstream_ports[0],
                upstream_b=upstream_ports[1],
            )
        )
        started.append(subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf")], **quiet))
        nginx = started[-1]

        scripts = {scenario.name: tmp / f"{scenario.name}.lua" for scenario in scenarios}
        for scenario in scenarios:
            scripts[scenario.name].write_text(scenario.script.format(body=ORDER, token=token))
        ports = {"gateway": gateway_port, "nginx": nginx_port}
        # The gateway's start is slow on a busy machine (a worker process, discovery, the routes).
        wait_answering(gateway, f"http://127.0.0.1:{gateway_port}/gateway/health_check", within=60)
        wait_for_both_instances(gateway_port, key)
        wait_answering(nginx, f"http://127.0.0.1:{nginx_port}/order-service/openapi.json", within=30)

        upstream_pids = [pid for process in started[1:3] for pid in process_tree(process.pid)]
        proxies = {"gateway": process_tree(gateway.pid), "nginx": process_tree(nginx.pid)}
        gateway_workers = gateway_details(gateway_port, key)["workers"]
        print(
            f"wrk -c{args.connections}, {args.seconds} s per run, {args.rounds} rounds, {workers} cores, "
            f"gateway workers {gateway_workers}, nginx workers {workers}, scenarios {args.scenarios}; warming up"
        )

        def url(proxy: str, scenario: Scenario) -> str:
            return f"http://127.0.0.1:{ports[proxy]}/order-service{scenario.path}"

        for scenario in scenarios:
            for proxy in ports:
                run_wrk(url(proxy, scenario), scripts[scenario.name], 2, args.connections, [], [])
        throughput = {scenario.name: {proxy: list[WrkResult]() for proxy in ports} for scenario in scenarios}
        single = {scenario.name: {proxy: list[WrkResult]() for proxy in ports} for scenario in scenarios}
        for round_number in range(args.rounds):
            order = list(ports) if round_number % 2 == 0 else list(reversed(ports))
            summary = []
            for scenario in scenarios:
                script = scripts[scenario.name]
                for proxy in order:
                    measured = (proxies[proxy], upstream_pids)
                    results = throughput[scenario.name][proxy]
                    results.append(run_wrk(url(proxy, scenario), script, args.seconds, args.connections, *measured))
                    if scenario.name == LATENCY_SCENARIO:
                        latency_seconds = max(2, args.seconds // 2)
                        single[scenario.name][proxy].append(
                            run_wrk(url(proxy, scenario), script, latency_seconds, 1, *measured)
                        )
                rates = throughput[scenario.name]
                summary.append(
                    f"{scenario.name} {rates['gateway'][-1].requests_per_second:,.0f}"
                    f"/{rates['nginx'][-1].requests_per_second:,.0f}"
                )
            print(f"round {round_number + 1} (gateway/nginx req/s): {'  '.join(summary)}")
        for scenario in scenarios:
            report(scenario.name, throughput[scenario.name], single[scenario.name], args.connections)


def rate_limited_routes(directory: Path) -> Path:
    """The real routes, with a rate limit on the benchmarked route that never triggers (its bookkeeping does)."""
    document = yaml.safe_load((REPO_ROOT / "gateway" / "routes.yaml").read_text())
    for route in document["routes"]:
        if route["id"] == "order-service-user":
            route["filters"].append("RequestRateLimiter=1000000, 1000000, subject")
    path = directory / "routes.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def gateway_details(gateway_port: int, key: "SigningKey") -> dict[str, Any]:
    """The gateway's health document as an admin sees it (workers, instances per app); anyone else sees UP only."""
    from servicekit.tokens import issue_token

    admin = {"Authorization": f"Bearer {issue_token('bench-operator', key, 60, ('admin',))}"}
    details: dict[str, Any] = httpx.get(f"http://127.0.0.1:{gateway_port}/gateway/health_check", headers=admin).json()
    return details


def wait_for_both_instances(gateway_port: int, key: "SigningKey") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if gateway_details(gateway_port, key)["instances"].get("ORDER-SERVICE") == 2:
            return
        time.sleep(0.1)
    raise TimeoutError("the gateway did not see both upstream instances")


def report(
    scenario: str, throughput: dict[str, list[WrkResult]], single: dict[str, list[WrkResult]], connections: int
) -> None:
    def median(results: list[WrkResult], field: str) -> float:
        return float(statistics.median(getattr(result, field) for result in results))

    print()
    print(
        f"{scenario + ' medians':<16}{'req/s (c' + str(connections) + ')':>16}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'proxy CPU us/req':>18}{'upstream CPU us/req':>21}"
    )
    for name in throughput:
        print(
            f"{name:<16}{median(throughput[name], 'requests_per_second'):>16,.0f}"
            f"{median(throughput[name], 'p50_ms'):>9.2f}{median(throughput[name], 'p99_ms'):>9.2f}"
            f"{sum(r.errors for r in throughput[name] + single[name]):>8}"
            f"{median(throughput[name], 'proxy_cpu_us_per_request'):>18.0f}"
            f"{median(throughput[name], 'upstream_cpu_us_per_request'):>21.0f}"
        )
    ratio = median(throughput["gateway"], "requests_per_second") / median(throughput["nginx"], "requests_per_second")
    # Paired per round: other load on the machine moves both figures of a round together.
    paired = sorted(
        g.requests_per_second / n.requests_per_second
        for g, n in zip(throughput["gateway"], throughput["nginx"], strict=True)
    )
    cpu = [
        g.proxy_cpu_us_per_request / max(n.proxy_cpu_us_per_request, 1e-9)
        for g, n in zip(throughput["gateway"], throughput["nginx"], strict=True)
    ]
    print(
        f"{scenario}: throughput gateway/nginx {statistics.median(paired):.2f}x median per round "
        f"(rounds {paired[0]:.2f}-{paired[-1]:.2f}), {ratio:.2f}x of medians (target >= 0.80x, issue #24 >= 1.0x); "
        f"CPU per request gateway/nginx {statistics.median(cpu):.2f}x (issue #24 <= 1.0x)"
    )
    if single["gateway"] and single["nginx"]:
        gateway_p50, nginx_p50 = median(single["gateway"], "p50_ms"), median(single["nginx"], "p50_ms")
        gateway_p99, nginx_p99 = median(single["gateway"], "p99_ms"), median(single["nginx"], "p99_ms")
        print(
            f"{scenario}: at c1 p50 gateway {gateway_p50:.2f} ms, nginx {nginx_p50:.2f} ms, "
            f"added {gateway_p50 - nginx_p50:+.2f} ms (target <= 1 ms); p99 gateway {gateway_p99:.2f} ms, "
            f"nginx {nginx_p99:.2f} ms, added {gateway_p99 - nginx_p99:+.2f} ms"
        )


if __name__ == "__main__":
    main()
