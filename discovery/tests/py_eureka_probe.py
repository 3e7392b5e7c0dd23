"""Run by test_py_eureka_client.py in its own process: py-eureka-client's heartbeat thread outlives
stop(), so it must not live in the test process. Registers, waits to discover TARGET_APP, prints it."""

import asyncio
import json
import os
import sys
import time

from py_eureka_client import eureka_client


async def main() -> None:
    client = await eureka_client.init_async(
        eureka_server=os.environ["EUREKA_URL"],
        app_name="PY-EUREKA-PROBE",
        instance_host="127.0.0.1",
        instance_ip="127.0.0.1",
        instance_port=int(os.environ["PROBE_PORT"]),
        renewal_interval_in_secs=1,
        duration_in_secs=5,
    )
    print("registered", flush=True)
    target = os.environ["TARGET_APP"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        application = client.applications.get_application(target)
        if application is not None and application.up_instances:
            found = application.up_instances[0]
            print(json.dumps({"app": target, "host": found.ipAddr, "port": found.port.port}), flush=True)
            await client.stop()
            return
        await asyncio.sleep(0.1)
    sys.exit(f"{target} not discovered")


asyncio.run(main())
