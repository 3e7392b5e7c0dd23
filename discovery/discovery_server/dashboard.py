"""The page at `/`: applications and their instances with status, like Eureka's dashboard."""

import html
import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from discovery_server.registry import Registry

router = APIRouter()


def _row(app: str, instance_id: str, status: str, home: str, seconds_since_renewal: float) -> str:
    status_class = "up" if status == "UP" else "down"
    # Only web links: a registered `javascript:` URL would run script on this page's origin when clicked.
    is_web_link = home.lower().startswith(("http://", "https://"))
    link = f"<a href='{html.escape(home)}'>{html.escape(instance_id)}</a>" if is_web_link else html.escape(instance_id)
    return (
        f"<tr><td>{html.escape(app)}</td><td>{link}</td><td class='{status_class}'>{html.escape(status)}</td>"
        f"<td>{seconds_since_renewal:.1f} s ago</td></tr>"
    )


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> str:
    registry: Registry = request.app.state.registry
    now_ms = time.time() * 1000
    rows = [
        _row(app, i.instance_id, i.status, i.home_page_url, (now_ms - i.last_renewal_timestamp) / 1000)
        for app, instances in registry.applications().items()
        for i in instances
    ]
    summary = html.escape(registry.apps_hashcode() or "empty")
    body = "".join(rows) or "<tr><td colspan='4'>No instances available</td></tr>"
    return (
        "<!doctype html><html><head><title>Discovery</title><meta http-equiv='refresh' content='5'>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 10px}.up{color:green}.down{color:#b00}</style></head>"
        "<body><h1>Instances currently registered with discovery</h1>"
        f"<p>Registry version {registry.version} &middot; {summary}</p>"
        "<table><tr><th>Application</th><th>Instance</th><th>Status</th><th>Last heartbeat</th></tr>"
        f"{body}</table></body></html>"
    )
