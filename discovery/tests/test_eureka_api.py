"""Eureka's REST API as real clients use it: register, renew, cancel, overrides, full and delta fetch."""

import uuid
from typing import Any
from xml.etree import ElementTree

import httpx

from servicekit.testing import eventually_blocking

JSON = {"Accept": "application/json"}

# {"instance": {...}}: what a Eureka client posts to register.
Registration = dict[str, dict[str, Any]]


def registration(app: str, instance_id: str, port: int, duration: int = 90) -> Registration:
    return {
        "instance": {
            "instanceId": instance_id,
            "hostName": "127.0.0.1",
            "app": app,
            "ipAddr": "127.0.0.1",
            "status": "UP",
            "port": {"$": port, "@enabled": "true"},
            "securePort": {"$": 443, "@enabled": "false"},
            "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
            "leaseInfo": {"renewalIntervalInSecs": 1, "durationInSecs": duration},
            "metadata": {"zone": "local"},
        }
    }


def register(discovery_url: str, app: str, port: int = 9000, duration: int = 90) -> str:
    instance_id = f"{app.lower()}-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{discovery_url}/apps/{app}", json=registration(app, instance_id, port, duration))
    assert response.status_code == 204
    return instance_id


def test_register_then_read_back_as_json_in_eureka_shape(discovery_url: str) -> None:
    instance_id = register(discovery_url, "SHAPE-APP", port=9123)

    body = httpx.get(f"{discovery_url}/apps/SHAPE-APP", headers=JSON).json()

    instance = body["application"]["instance"][0]
    assert body["application"]["name"] == "SHAPE-APP"
    assert instance["instanceId"] == instance_id
    assert instance["port"] == {"$": 9123, "@enabled": "true"}
    assert instance["dataCenterInfo"]["@class"] == "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
    assert instance["status"] == "UP"
    assert instance["metadata"] == {"zone": "local"}


def test_full_registry_is_xml_by_default_with_hashcode_and_version(discovery_url: str) -> None:
    register(discovery_url, "XML-APP", port=9124)

    response = httpx.get(f"{discovery_url}/apps/")

    assert response.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(response.content)
    assert root.tag == "applications"
    assert int(root.findtext("versions__delta") or "0") > 0
    assert "UP_" in (root.findtext("apps__hashcode") or "")
    app = next(a for a in root.findall("application") if a.findtext("name") == "XML-APP")
    port = app.find("instance/port")
    assert port is not None and port.text == "9124" and port.get("enabled") == "true"
    data_center = app.find("instance/dataCenterInfo")
    assert data_center is not None and data_center.get("class")


def test_heartbeat_of_unknown_instance_is_404_and_known_is_200(discovery_url: str) -> None:
    instance_id = register(discovery_url, "BEAT-APP")

    assert httpx.put(f"{discovery_url}/apps/BEAT-APP/{instance_id}?status=UP").status_code == 200
    assert httpx.put(f"{discovery_url}/apps/BEAT-APP/nobody").status_code == 404


def test_cancel_removes_the_instance_and_delta_reports_it_deleted(discovery_url: str) -> None:
    instance_id = register(discovery_url, "CANCEL-APP")

    assert httpx.delete(f"{discovery_url}/apps/CANCEL-APP/{instance_id}").status_code == 200

    assert httpx.get(f"{discovery_url}/apps/CANCEL-APP", headers=JSON).status_code == 404
    delta = httpx.get(f"{discovery_url}/apps/delta", headers=JSON).json()["applications"]
    actions = [
        (i["instanceId"], i["actionType"])
        for app in delta["application"]
        if app["name"] == "CANCEL-APP"
        for i in app["instance"]
    ]
    assert (instance_id, "ADDED") in actions and (instance_id, "DELETED") in actions


def test_status_override_hides_instance_from_up_and_delete_restores_it(discovery_url: str) -> None:
    instance_id = register(discovery_url, "OVERRIDE-APP")
    url = f"{discovery_url}/apps/OVERRIDE-APP/{instance_id}"

    assert httpx.put(f"{url}/status?value=OUT_OF_SERVICE").status_code == 200
    assert httpx.get(url, headers=JSON).json()["instance"]["status"] == "OUT_OF_SERVICE"

    assert httpx.delete(f"{url}/status").status_code == 200
    assert httpx.get(url, headers=JSON).json()["instance"]["status"] == "UP"


def test_silent_instance_expires_after_its_lease(discovery_url: str) -> None:
    instance_id = register(discovery_url, "SILENT-APP", duration=1)
    url = f"{discovery_url}/apps/SILENT-APP/{instance_id}"
    assert httpx.get(url, headers=JSON).status_code == 200

    eventually_blocking(
        lambda: httpx.get(url, headers=JSON).status_code == 404, within=15, what="silent instance evicted"
    )


def test_dashboard_lists_registered_instances(discovery_url: str) -> None:
    instance_id = register(discovery_url, "DASHBOARD-APP")

    page = httpx.get(discovery_url.removesuffix("/eureka") + "/")

    assert page.status_code == 200
    assert "DASHBOARD-APP" in page.text and instance_id in page.text


def test_xml_registration_is_accepted(discovery_url: str) -> None:
    body = (
        "<instance><instanceId>xml-1</instanceId><hostName>127.0.0.1</hostName><app>XMLREG-APP</app>"
        "<ipAddr>127.0.0.1</ipAddr><status>UP</status><port enabled='true'>9321</port>"
        "<dataCenterInfo class='com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo'><name>MyOwn</name>"
        "</dataCenterInfo></instance>"
    )
    response = httpx.post(f"{discovery_url}/apps/XMLREG-APP", content=body, headers={"Content-Type": "application/xml"})

    assert response.status_code == 204
    instance = httpx.get(f"{discovery_url}/apps/XMLREG-APP/xml-1", headers=JSON).json()["instance"]
    assert instance["port"]["$"] == 9321


def test_instance_is_found_by_id_alone(discovery_url: str) -> None:
    instance_id = register(discovery_url, "BY-ID-APP", port=9444)

    response = httpx.get(f"{discovery_url}/instances/{instance_id}", headers=JSON)

    assert response.status_code == 200
    assert response.json()["instance"]["app"] == "BY-ID-APP"
    assert httpx.get(f"{discovery_url}/instances/nobody", headers=JSON).status_code == 404


def _metric(page: str, sample: str) -> float:
    return next((float(line.rpartition(" ")[2]) for line in page.splitlines() if line.rpartition(" ")[0] == sample), 0)


def test_metrics_count_instances_by_app_and_status_renewals_and_evictions(discovery_url: str) -> None:
    app = f"METRICS-{uuid.uuid4().hex[:6].upper()}"
    metrics_url = discovery_url.rsplit("/eureka", 1)[0].split("@", 1)[-1]
    metrics_url = f"http://{metrics_url.removeprefix('http://')}/metrics"
    kept = register(discovery_url, app, port=9101)
    register(discovery_url, app, port=9102, duration=1)  # never renewed: evicted after its 1 s lease
    assert httpx.put(f"{discovery_url}/apps/{app}/{kept}").status_code == 200

    def page_when_evicted() -> str | None:
        page = httpx.get(metrics_url).text
        return page if _metric(page, f'discovery_evictions_total{{app="{app}"}}') == 1 else None

    page = eventually_blocking(page_when_evicted, within=15, what="the silent instance evicted and counted")
    assert _metric(page, f'discovery_instances{{app="{app}",status="UP"}}') == 1
    assert _metric(page, f'discovery_registrations_total{{app="{app}"}}') == 2
    assert _metric(page, f'discovery_renewals_total{{app="{app}"}}') == 1
