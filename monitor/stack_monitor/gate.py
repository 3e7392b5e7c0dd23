"""Who may ask the monitor: requests naming it by one of its own host names (no DNS rebinding: a page whose name
resolves to 127.0.0.1 sends its own name as Host), and, when MONITOR_USER and MONITOR_PASSWORD are set, with HTTP
Basic. /health_check and /metrics stay open to the registry and Prometheus (security review N11)."""

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from stack_monitor.config import MonitorSettings

OPEN_PATHS = frozenset({"/health_check", "/metrics"})


def allowed_host_names(settings: MonitorSettings) -> frozenset[str]:
    extra = (name.strip().lower() for name in settings.monitor_allowed_hosts.split(","))
    return frozenset({"127.0.0.1", "localhost", "[::1]", settings.host.lower(), *filter(None, extra)})


def host_name(host_header: str) -> str:
    """`127.0.0.1:8090` → `127.0.0.1`, `[::1]:8090` → `[::1]`: the name without the port."""
    if host_header.startswith("["):
        return host_header.partition("]")[0] + "]"
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


class MonitorGate:
    def __init__(self, app: ASGIApp, settings: MonitorSettings) -> None:
        self.app = app
        self.host_names = allowed_host_names(settings)
        self.credentials: bytes | None = None
        if settings.monitor_user and settings.monitor_password:
            self.credentials = f"{settings.monitor_user}:{settings.monitor_password}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if host_name(host) not in self.host_names:
            await _refuse(send, 421, b'{"detail":"not a host name of the monitor"}')
            return
        if self.credentials is not None and scope["path"] not in OPEN_PATHS:
            if not self._authenticated(headers.get(b"authorization", b"")):
                await _refuse(send, 401, b'{"detail":"the monitor needs HTTP Basic"}', basic=True)
                return
        await self.app(scope, receive, send)

    def _authenticated(self, authorization: bytes) -> bool:
        scheme, _, encoded = authorization.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        assert self.credentials is not None
        return hmac.compare_digest(given, self.credentials)


async def _refuse(send: Send, status: int, body: bytes, *, basic: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if basic:
        headers.append((b"www-authenticate", b'Basic realm="monitor"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
