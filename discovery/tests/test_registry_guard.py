"""The registry only takes writes from callers with its credentials, in JSON or XML, of sane size and shape."""

import json
import uuid
from typing import Any

import httpx
import pytest

from .test_eureka_api import Registration, registration

JSON = {"Accept": "application/json"}


def anonymous(discovery_url: str) -> str:
    """The same URL without the credentials in it."""
    return str(httpx.URL(discovery_url).copy_with(username=None, password=None))


def listed(discovery_url: str, app: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{discovery_url}/apps/{app}", headers=JSON)
    if response.status_code == 404:
        return []
    instances: list[dict[str, Any]] | dict[str, Any] = response.json()["application"]["instance"]
    return instances if isinstance(instances, list) else [instances]


@pytest.fixture
def registered(discovery_url: str) -> tuple[str, str]:
    app, instance_id = f"GUARD-{uuid.uuid4().hex[:6].upper()}", f"guard-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{discovery_url}/apps/{app}", json=registration(app, instance_id, 9300))
    assert response.status_code == 204
    return app, instance_id


@pytest.mark.parametrize("credentials", [None, ("eureka-test", "wrong-password"), ("intruder", "x")])
def test_writes_without_the_right_credentials_are_401_and_change_nothing(
    discovery_url: str, registered: tuple[str, str], credentials: tuple[str, str] | None
) -> None:
    app, instance_id = registered
    base = anonymous(discovery_url)
    auth = httpx.BasicAuth(*credentials) if credentials else None
    before = listed(discovery_url, app)
    intruder = f"intruder-{uuid.uuid4().hex[:6]}"

    answers = [
        httpx.post(f"{base}/apps/{app}", json=registration(app, intruder, 80), auth=auth),
        httpx.put(f"{base}/apps/{app}/{instance_id}", auth=auth),
        httpx.put(f"{base}/apps/{app}/{instance_id}/status", params={"value": "OUT_OF_SERVICE"}, auth=auth),
        httpx.delete(f"{base}/apps/{app}/{instance_id}/status", auth=auth),
        httpx.put(f"{base}/apps/{app}/{instance_id}/metadata", params={"zone": "evil"}, auth=auth),
        httpx.delete(f"{base}/apps/{app}/{instance_id}", auth=auth),
    ]

    assert [answer.status_code for answer in answers] == [401] * 6
    assert answers[0].headers["www-authenticate"].startswith("Basic")
    assert listed(discovery_url, app) == before


def test_reads_need_no_credentials(discovery_url: str, registered: tuple[str, str]) -> None:
    app, instance_id = registered

    response = httpx.get(f"{anonymous(discovery_url)}/apps/{app}", headers=JSON)

    assert response.status_code == 200 and instance_id in response.text


def test_a_text_plain_registration_is_415(discovery_url: str) -> None:
    app = f"CSRF-{uuid.uuid4().hex[:6].upper()}"
    body = json.dumps(registration(app, "csrf-1", 80))

    response = httpx.post(f"{discovery_url}/apps/{app}", content=body, headers={"Content-Type": "text/plain"})

    assert response.status_code == 415
    assert listed(discovery_url, app) == []


def test_a_live_instance_id_cannot_be_taken_over_from_another_address(
    discovery_url: str, registered: tuple[str, str]
) -> None:
    app, instance_id = registered
    hijack = registration(app, instance_id, 9300)
    hijack["instance"]["ipAddr"] = hijack["instance"]["hostName"] = "198.51.100.66"

    taken = httpx.post(f"{discovery_url}/apps/{app}", json=hijack)
    owner_again = httpx.post(f"{discovery_url}/apps/{app}", json=registration(app, instance_id, 9300))

    assert (taken.status_code, owner_again.status_code) == (409, 204)
    assert [i["ipAddr"] for i in listed(discovery_url, app)] == ["127.0.0.1"]


def _with(change: dict[str, object]) -> Registration:
    body = registration("SHAPE-GUARD", f"shape-{uuid.uuid4().hex[:8]}", 9400)
    body["instance"].update(change)
    return body


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(_with({"hostName": "a" * 64 + ".example", "ipAddr": "a" * 64 + ".example"}), 400, id="label-64"),
        pytest.param(_with({"port": {"$": 99999, "@enabled": "true"}}), 400, id="port-99999"),
        pytest.param(_with({"port": {"$": 2**70, "@enabled": "true"}}), 400, id="port-2**70"),
        pytest.param(_with({"ipAddr": "not a host!"}), 400, id="bad-ip"),
        pytest.param(_with({"metadata": {f"k{n}": "v" for n in range(40)}}), 400, id="metadata-entries"),
        pytest.param(_with({"metadata": {"blob": "x" * (70 * 1024)}}), 413, id="body-too-large"),
    ],
)
def test_malformed_or_oversized_registrations_are_refused(discovery_url: str, body: Registration, status: int) -> None:
    response = httpx.post(f"{discovery_url}/apps/SHAPE-GUARD", json=body)

    assert response.status_code == status, response.text
    assert body["instance"]["instanceId"] not in {i["instanceId"] for i in listed(discovery_url, "SHAPE-GUARD")}


def test_deeply_nested_json_is_400_not_500(discovery_url: str) -> None:
    body = '{"instance": ' + '{"a": ' * 5000 + "1" + "}" * 5001

    response = httpx.post(f"{discovery_url}/apps/DEEP", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code in (400, 413)


def test_leases_are_capped_at_five_minutes(discovery_url: str) -> None:
    body = _with({"leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 2_000_000_000}})

    assert httpx.post(f"{discovery_url}/apps/SHAPE-GUARD", json=body).status_code == 204

    instance_id = body["instance"]["instanceId"]
    found = next(i for i in listed(discovery_url, "SHAPE-GUARD") if i["instanceId"] == instance_id)
    assert found["leaseInfo"]["durationInSecs"] == 300


def test_the_dashboard_links_only_web_urls(discovery_url: str) -> None:
    body = _with({"homePageUrl": "javascript:fetch('/eureka/apps')"})
    assert httpx.post(f"{discovery_url}/apps/SHAPE-GUARD", json=body).status_code == 204

    page = httpx.get(str(httpx.URL(discovery_url).copy_with(path="/"))).text

    assert "javascript:" not in page
    assert body["instance"]["instanceId"] in page


def test_metadata_updates_are_bounded_like_registrations(discovery_url: str, registered: tuple[str, str]) -> None:
    """PUT .../metadata merges into what the instance has: the merge obeys the registration's bounds."""
    app, instance_id = registered
    url = f"{discovery_url}/apps/{app}/{instance_id}/metadata"
    too_long = httpx.put(url, params={"zone": "x" * 300})
    too_many = [httpx.put(url, params={f"k{batch}-{n}": "v" for n in range(10)}) for batch in range(4)]

    assert too_long.status_code == 400 and "longer than" in too_long.json()["detail"]
    assert [answer.status_code for answer in too_many] == [200, 200, 200, 400]
    assert "metadata entries" in too_many[-1].json()["detail"]
    (instance,) = [i for i in listed(discovery_url, app) if i["instanceId"] == instance_id]
    assert len(instance["metadata"]) <= 32 and instance["metadata"]["zone"] == "local"  # the refused update left it
