"""Zipkin (io.zipkin:zipkin-server, the exec jar Maven fetches into infra/target/zipkin) on 127.0.0.1:ZIPKIN_PORT:
the spans every service sends when TRACING=on, kept in memory (gone at restart, like the traces of a dev stack)."""

from launcher.processes import LocalServer, needs_start
from launcher.services import monitor_port
from stack_description.settings import INFRA_DIR, StackConfig

ZIPKIN_JAR = INFRA_DIR / "target" / "zipkin" / "zipkin.jar"
# Spans kept before the oldest traces are dropped: about 50 MB of a 256 MB heap (Zipkin's default, 500,000,
# needs more heap than the whole JVM gets here).
MAX_SPANS = 50_000
SERVER = LocalServer("zipkin", "ZIPKIN_PORT", "/health")


def tracing_on(config: StackConfig) -> bool:
    """TRACING as the services read it (a pydantic bool): off, false, no, 0 turn it off."""
    return config.get("TRACING").strip().lower() not in ("off", "false", "no", "0", "f", "n")


def up(config: StackConfig) -> None:
    """Start Zipkin unless it runs already, or no process traces (TRACING=off: no JVM for nothing)."""
    zipkin = SERVER.component(config)
    if not tracing_on(config) or not needs_start(zipkin, zipkin.port):
        return
    argv = [
        "java",
        "-Xms64m",
        "-Xmx256m",
        "-jar",
        str(ZIPKIN_JAR),
        # Armeria serves Zipkin; it ignores server.address, so the one port is declared whole, with its address.
        "--armeria.ports[0].ip=127.0.0.1",
        f"--armeria.ports[0].port={zipkin.port}",
        "--armeria.ports[0].protocols[0]=http",
        "--zipkin.storage.type=mem",
        f"--zipkin.storage.mem.max-spans={MAX_SPANS}",
        # Traces (user and order ids in their tags) readable cross-origin by the console's page only, not by any
        # page in a browser on this host (Zipkin's default is every origin).
        f"--zipkin.query.allowed-origins={console_origins(monitor_port(config))}",
    ]
    SERVER.start(config, argv, 180)


def console_origins(port: int) -> str:
    """The console's origins, as Zipkin's comma-separated zipkin.query.allowed-origins."""
    return f"http://127.0.0.1:{port},http://localhost:{port}"
