"""The HTTP edge every service shares: error answers, body size limit, X-Instance-Id, /health_check, /metrics."""

from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.config import ServiceSettings
from servicekit.errors import install_error_handlers
from servicekit.metrics import MetricsMiddleware, metrics_router


class _BodyTooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, body: bytes, extra_headers: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra_headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    """Pure ASGI (cheap on the hot path): 413 above `max_body_bytes`, and `X-Instance-Id` on every answer."""

    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        instance_header = [(b"x-instance-id", (self.settings.instance_id or "").encode())]
        limit = self.settings.max_body_bytes
        too_large_body = b'{"detail":"request body too large"}'
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_json(send, 413, too_large_body, instance_header)
                return

        received = 0
        too_large = False
        answered = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def send_with_instance(message: Message) -> None:
            nonlocal answered
            if too_large:
                # The app answered an aborted read (FastAPI makes it a 400): answer 413 instead.
                if not answered:
                    answered = True
                    await _send_json(send, 413, too_large_body, instance_header)
                return
            if message["type"] == "http.response.start":
                answered = True
                message = {**message, "headers": [*message.get("headers", []), *instance_header]}
            await send(message)

        try:
            await self.app(scope, counted_receive, send_with_instance)
        except _BodyTooLarge:
            pass
        if too_large and not answered:
            await _send_json(send, 413, too_large_body, instance_header)


def health_router(app_name: str, settings: ServiceSettings) -> APIRouter:
    router = APIRouter()

    @router.get("/health_check")
    async def health_check() -> dict[str, Any]:
        return {"status": "UP", "app": app_name, "instanceId": settings.instance_id}

    return router


def install_edge(app: FastAPI, settings: ServiceSettings, app_name: str) -> None:
    """Error handlers, the edge middleware, /health_check and /metrics: one call per service."""
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware, settings=settings)
    # Outermost: it also counts what the edge answers itself (413).
    app.add_middleware(MetricsMiddleware)
    app.include_router(health_router(app_name, settings))
    app.include_router(metrics_router())
