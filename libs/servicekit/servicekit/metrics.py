"""Prometheus metrics every FastAPI service shares: GET /metrics (text format), and each HTTP answer counted and
timed by method, route template and status. Services add their own domain metrics with prometheus_client's
Counter/Histogram at module level; they land in the same default registry and on the same page.

Prometheus finds the instances through discovery (eureka_sd_configs); /metrics answers without a token, like
/health_check: the instance ports are bound to loopback (or the container network) and carry no user data.
"""

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, disable_created_metrics, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Counters and histograms without a `_created` gauge beside each: half the series, nothing lost for rates.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Where most answers fall here: a few ms for reads, tens of ms for a published order, seconds when a
# dependency is away.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by method, route template and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to its answer's start, by method and route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

# A path no route matched is one label value, not one per path: the label set stays bounded.
UNMATCHED = "unmatched"


class MetricsMiddleware:
    """Pure ASGI: counts and times every HTTP answer by the route template FastAPI matched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = scope.get("route")
                template = getattr(route, "path", UNMATCHED)
                HTTP_LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)
                HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
            await send(message)

        await self.app(scope, receive, send_counted)


def metrics_router() -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
