"""A Eureka client nobody here wrote (py-eureka-client: registers with JSON, reads XML and deltas)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from servicekit.testing import eventually_blocking

JSON = {"Accept": "application/json"}
PROBE = Path(__file__).with_name("py_eureka_probe.py")


def test_py_eureka_client_registers_and_discovers_through_delta(discovery_url: str, port: int) -> None:
    env = {**os.environ, "EUREKA_URL": discovery_url, "PROBE_PORT": str(port), "TARGET_APP": "PROBE-TARGET"}
    probe = subprocess.Popen([sys.executable, str(PROBE)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        probe_url = f"{discovery_url}/apps/PY-EUREKA-PROBE"
        eventually_blocking(
            lambda: httpx.get(probe_url, headers=JSON).status_code == 200,
            within=15,
            what="py-eureka-client registered",
        )
        registered = httpx.get(probe_url, headers=JSON).json()["application"]["instance"][0]
        assert registered["port"]["$"] == port and registered["status"] == "UP"

        # Registered after the probe's first full fetch, so it learns of it from /apps/delta.
        target = {
            "instance": {
                "instanceId": "probe-target-1",
                "hostName": "127.0.0.1",
                "app": "PROBE-TARGET",
                "ipAddr": "127.0.0.1",
                "status": "UP",
                "port": {"$": 9555, "@enabled": "true"},
                "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$MyDataCenterInfo", "name": "MyOwn"},
            }
        }
        assert httpx.post(f"{discovery_url}/apps/PROBE-TARGET", json=target).status_code == 204

        output, _ = probe.communicate(timeout=30)
        assert probe.returncode == 0
        discovered = json.loads(output.strip().splitlines()[-1])
        assert discovered == {"app": "PROBE-TARGET", "host": "127.0.0.1", "port": 9555}
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
