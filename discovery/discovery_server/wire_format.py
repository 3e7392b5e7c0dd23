"""Eureka's wire format both ways: JSON (Jackson shapes, `{"$": 8080, "@enabled": "true"}`) and XML."""

import ipaddress
import json
import re
from typing import Any
from xml.etree import ElementTree

from discovery_server.registry import (
    DEFAULT_DATA_CENTER_CLASS,
    DEFAULT_DURATION_SECS,
    DEFAULT_RENEWAL_INTERVAL_SECS,
    Instance,
)


class MalformedInstance(ValueError):
    """The registration body is not a Eureka instance."""


# ---- reading a registration ----------------------------------------------------------------------


def instance_from_body(body: bytes, content_type: str) -> Instance:
    try:
        if "xml" in content_type or body.lstrip().startswith(b"<"):
            fields = _fields_from_xml(ElementTree.fromstring(body))
        else:
            document = json.loads(body)
            fields = document.get("instance", document)
        return instance_from_fields(fields)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, ElementTree.ParseError) as exc:
        raise MalformedInstance(str(exc) or type(exc).__name__) from exc


def _fields_from_xml(element: ElementTree.Element) -> dict[str, Any]:
    """Turn an <instance> element into the same nested dict shape Eureka's JSON has."""
    if element.tag != "instance":
        nested = element.find("instance")
        element = nested if nested is not None else element
    fields: dict[str, Any] = {}
    for child in element:
        if child.tag in ("port", "securePort"):
            fields[child.tag] = {"$": child.text, "@enabled": child.get("enabled", "true")}
        elif child.tag == "dataCenterInfo":
            fields[child.tag] = {"@class": child.get("class", DEFAULT_DATA_CENTER_CLASS)} | {
                grandchild.tag: grandchild.text for grandchild in child
            }
        elif child.tag in ("leaseInfo", "metadata"):
            fields[child.tag] = {grandchild.tag: grandchild.text or "" for grandchild in child}
        else:
            fields[child.tag] = child.text or ""
    return fields


# Leases longer than this are cut to it: an instance that stops heartbeating is gone within minutes.
MAX_LEASE_SECS = 300
MAX_FIELD_CHARS = 255
MAX_METADATA_ENTRIES = 32
_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _port(value: Any, default: int, default_enabled: bool) -> tuple[int, bool]:
    if value is None:
        return default, default_enabled
    if isinstance(value, dict):
        port, enabled = int(value.get("$", default)), str(value.get("@enabled", "true")).lower() == "true"
    else:
        port, enabled = int(value), True
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1..65535")
    return port, enabled


def _host(value: str, field: str) -> str:
    """A DNS name or an IP address; anything else would leave a caller hanging or point it who knows where."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOST.match(value):
        raise ValueError(f"{field} {value[:80]!r} is not a host name or an IP address")
    return value


def _bounded(value: Any, field: str) -> str:
    text = str(value)
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError(f"{field} is longer than {MAX_FIELD_CHARS} characters")
    return text


def bounded_metadata(entries: dict[Any, Any]) -> dict[str, str]:
    """Metadata as the registry keeps it: at most MAX_METADATA_ENTRIES entries of bounded keys and values."""
    metadata = {_bounded(key, "metadata key"): _bounded(value, "metadata value") for key, value in entries.items()}
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ValueError(f"more than {MAX_METADATA_ENTRIES} metadata entries")
    return metadata


def instance_from_fields(fields: dict[str, Any]) -> Instance:
    """An instance from Eureka's JSON shape of one (a registration, or an entry of a peer's `/apps`)."""
    app = _bounded(fields["app"], "app").upper()
    host_name = _host(_bounded(fields.get("hostName") or fields.get("ipAddr") or "localhost", "hostName"), "hostName")
    ip_addr = _host(_bounded(fields.get("ipAddr") or host_name, "ipAddr"), "ipAddr")
    port, port_enabled = _port(fields.get("port"), 80, True)
    secure_port, secure_port_enabled = _port(fields.get("securePort"), 443, False)
    instance_id = _bounded(fields.get("instanceId") or f"{host_name}:{app.lower()}:{port}", "instanceId")
    lease = fields.get("leaseInfo") or {}
    data_center = fields.get("dataCenterInfo") or {}
    metadata = bounded_metadata(
        {key: value for key, value in (fields.get("metadata") or {}).items() if not str(key).startswith("@")}
    )
    overridden = fields.get("overriddenStatus") or fields.get("overriddenstatus") or "UNKNOWN"
    return Instance(
        instance_id=instance_id,
        app=app,
        host_name=host_name,
        ip_addr=ip_addr,
        port=port,
        port_enabled=port_enabled,
        secure_port=secure_port,
        secure_port_enabled=secure_port_enabled,
        reported_status=str(fields.get("status") or "UP").upper(),
        overridden_status=str(overridden).upper(),
        vip_address=str(fields.get("vipAddress") or app.lower()),
        secure_vip_address=str(fields.get("secureVipAddress") or app.lower()),
        home_page_url=str(fields.get("homePageUrl") or ""),
        status_page_url=str(fields.get("statusPageUrl") or ""),
        health_check_url=str(fields.get("healthCheckUrl") or ""),
        secure_health_check_url=str(fields.get("secureHealthCheckUrl") or ""),
        country_id=int(fields.get("countryId") or 1),
        data_center_class=str(data_center.get("@class") or DEFAULT_DATA_CENTER_CLASS),
        data_center_name=str(data_center.get("name") or "MyOwn"),
        metadata=metadata,
        renewal_interval_secs=int(lease.get("renewalIntervalInSecs") or DEFAULT_RENEWAL_INTERVAL_SECS),
        duration_secs=min(int(lease.get("durationInSecs") or DEFAULT_DURATION_SECS), MAX_LEASE_SECS),
        last_dirty_timestamp=int(fields.get("lastDirtyTimestamp") or 0),
    )


# ---- JSON ------------------------------------------------------------------------------------------


def instance_json(instance: Instance) -> dict[str, Any]:
    return {
        "instanceId": instance.instance_id,
        "hostName": instance.host_name,
        "app": instance.app,
        "ipAddr": instance.ip_addr,
        "status": instance.status,
        "overriddenStatus": instance.overridden_status,
        "port": {"$": instance.port, "@enabled": _bool(instance.port_enabled)},
        "securePort": {"$": instance.secure_port, "@enabled": _bool(instance.secure_port_enabled)},
        "countryId": instance.country_id,
        "dataCenterInfo": {"@class": instance.data_center_class, "name": instance.data_center_name},
        "leaseInfo": {
            "renewalIntervalInSecs": instance.renewal_interval_secs,
            "durationInSecs": instance.duration_secs,
            "registrationTimestamp": instance.registration_timestamp,
            "lastRenewalTimestamp": instance.last_renewal_timestamp,
            "evictionTimestamp": instance.eviction_timestamp,
            "serviceUpTimestamp": instance.service_up_timestamp,
        },
        "metadata": dict(instance.metadata) or {"@class": "java.util.Collections$EmptyMap"},
        "homePageUrl": instance.home_page_url,
        "statusPageUrl": instance.status_page_url,
        "healthCheckUrl": instance.health_check_url,
        "secureHealthCheckUrl": instance.secure_health_check_url,
        "vipAddress": instance.vip_address,
        "secureVipAddress": instance.secure_vip_address,
        "isCoordinatingDiscoveryServer": "false",
        "lastUpdatedTimestamp": str(instance.last_updated_timestamp),
        "lastDirtyTimestamp": str(instance.last_dirty_timestamp),
        "actionType": instance.action_type,
    }


def application_json(name: str, instances: list[Instance]) -> dict[str, Any]:
    return {"name": name, "instance": [instance_json(instance) for instance in instances]}


def applications_json(apps: dict[str, list[Instance]], version: int, hashcode: str) -> dict[str, Any]:
    return {
        "applications": {
            "versions__delta": str(version),
            "apps__hashcode": hashcode,
            "application": [application_json(name, instances) for name, instances in apps.items()],
        }
    }


# ---- XML -------------------------------------------------------------------------------------------


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _text(parent: ElementTree.Element, tag: str, value: object) -> ElementTree.Element:
    child = ElementTree.SubElement(parent, tag)
    child.text = str(value)
    return child


def instance_xml(instance: Instance) -> ElementTree.Element:
    element = ElementTree.Element("instance")
    _text(element, "instanceId", instance.instance_id)
    _text(element, "hostName", instance.host_name)
    _text(element, "app", instance.app)
    _text(element, "ipAddr", instance.ip_addr)
    _text(element, "status", instance.status)
    _text(element, "overriddenstatus", instance.overridden_status)
    _text(element, "port", instance.port).set("enabled", _bool(instance.port_enabled))
    _text(element, "securePort", instance.secure_port).set("enabled", _bool(instance.secure_port_enabled))
    _text(element, "countryId", instance.country_id)
    data_center = ElementTree.SubElement(element, "dataCenterInfo", {"class": instance.data_center_class})
    _text(data_center, "name", instance.data_center_name)
    lease = ElementTree.SubElement(element, "leaseInfo")
    _text(lease, "renewalIntervalInSecs", instance.renewal_interval_secs)
    _text(lease, "durationInSecs", instance.duration_secs)
    _text(lease, "registrationTimestamp", instance.registration_timestamp)
    _text(lease, "lastRenewalTimestamp", instance.last_renewal_timestamp)
    _text(lease, "evictionTimestamp", instance.eviction_timestamp)
    _text(lease, "serviceUpTimestamp", instance.service_up_timestamp)
    if instance.metadata:
        metadata = ElementTree.SubElement(element, "metadata")
        for key, value in instance.metadata.items():
            _text(metadata, key, value)
    else:
        ElementTree.SubElement(element, "metadata", {"class": "java.util.Collections$EmptyMap"})
    _text(element, "homePageUrl", instance.home_page_url)
    _text(element, "statusPageUrl", instance.status_page_url)
    _text(element, "healthCheckUrl", instance.health_check_url)
    _text(element, "secureHealthCheckUrl", instance.secure_health_check_url)
    _text(element, "vipAddress", instance.vip_address)
    _text(element, "secureVipAddress", instance.secure_vip_address)
    _text(element, "isCoordinatingDiscoveryServer", "false")
    _text(element, "lastUpdatedTimestamp", instance.last_updated_timestamp)
    _text(element, "lastDirtyTimestamp", instance.last_dirty_timestamp)
    _text(element, "actionType", instance.action_type)
    return element


def application_xml(name: str, instances: list[Instance]) -> ElementTree.Element:
    element = ElementTree.Element("application")
    _text(element, "name", name)
    for instance in instances:
        element.append(instance_xml(instance))
    return element


def applications_xml(apps: dict[str, list[Instance]], version: int, hashcode: str) -> ElementTree.Element:
    element = ElementTree.Element("applications")
    _text(element, "versions__delta", version)
    _text(element, "apps__hashcode", hashcode)
    for name, instances in apps.items():
        element.append(application_xml(name, instances))
    return element


def xml_bytes(element: ElementTree.Element) -> bytes:
    return bytes(ElementTree.tostring(element, encoding="utf-8", xml_declaration=False))
