"""Eureka's REST API under /eureka: register, renew, cancel, status overrides, full and delta fetch."""

import base64
import binascii
import hmac
import json
from typing import Annotated, Any
from xml.etree import ElementTree

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from discovery_server import wire_format
from discovery_server.config import RegistrySettings
from discovery_server.metrics import REGISTRATIONS, RENEWALS
from discovery_server.peers import Action, Peers, is_replication
from discovery_server.registry import Instance, InstanceTaken, Registry, RegistryFull

# What a registration may be sent as (Eureka's ApplicationResource consumes JSON and XML only): a cross-site
# `text/plain` POST from a web page, which needs no CORS preflight, is refused.
REGISTRATION_CONTENT_TYPES = ("application/json", "application/xml", "text/xml")

# Every handler is `async def`: they all run on the event loop thread, as does the eviction task, so
# the registry (plain dicts, not thread-safe) is never touched from FastAPI's threadpool.
router = APIRouter(prefix="/eureka")


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


class Replicator:
    """Passes a change a client made here on to the peers; a change that is itself a replication stops here."""

    def __init__(self, peers: Peers, from_peer: bool) -> None:
        self.peers = peers
        self.from_peer = from_peer

    def __call__(self, action: Action, app: str, instance_id: str, status: str = "") -> None:
        if not self.from_peer:
            self.peers.replicate(action, app, instance_id, status)


async def get_replicator(request: Request) -> Replicator:
    return Replicator(request.app.state.peers, is_replication(request.headers))


ReplicatorDep = Annotated[Replicator, Depends(get_replicator)]


def _basic_credentials(authorization: str) -> tuple[bytes, bytes] | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, separator, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    return (user, password) if separator else None


async def require_writer(request: Request) -> None:
    """401 unless the request carries the registry's Basic credentials (compared in constant time)."""
    settings: RegistrySettings = request.app.state.settings
    given = _basic_credentials(request.headers.get("authorization", ""))
    expected = (settings.discovery_user.encode(), settings.discovery_password.encode())
    if given is None or not (hmac.compare_digest(given[0], expected[0]) & hmac.compare_digest(given[1], expected[1])):
        raise HTTPException(
            status_code=401,
            detail="registry writes need HTTP Basic credentials (user:password@ in the service URL)",
            headers={"WWW-Authenticate": 'Basic realm="eureka"'},
        )


Writer = [Depends(require_writer)]


def _negotiated(request: Request, as_json: dict[str, Any], as_xml: ElementTree.Element) -> Response:
    """JSON when Accept asks for it, XML otherwise, as Netflix's ApplicationsResource does."""
    if "json" in request.headers.get("accept", ""):
        return Response(json.dumps(as_json), media_type="application/json")
    return Response(wire_format.xml_bytes(as_xml), media_type="application/xml")


async def unknown_instance(_: Request, exc: Exception) -> JSONResponse:
    """Every route that names an instance the registry does not hold: 404, as Eureka answers."""
    return JSONResponse(status_code=404, content={"detail": f"unknown instance {exc}"})


@router.get("/apps")
async def all_applications(request: Request, registry: RegistryDep) -> Response:
    return _applications(request, registry, registry.applications())


@router.get("/apps/delta")
async def recent_changes(request: Request, registry: RegistryDep) -> Response:
    return _applications(request, registry, registry.delta())


def _applications(request: Request, registry: Registry, apps: dict[str, list[Instance]]) -> Response:
    """Eureka's `applications` document (all of them, or the delta) with the registry's version and hashcode."""
    version, hashcode = registry.version, registry.apps_hashcode()
    return _negotiated(
        request,
        wire_format.applications_json(apps, version, hashcode),
        wire_format.applications_xml(apps, version, hashcode),
    )


@router.get("/apps/{app}")
async def one_application(app: str, request: Request, registry: RegistryDep) -> Response:
    instances = registry.application(app)
    if not instances:
        raise HTTPException(status_code=404, detail=f"unknown application {app}")
    name = app.upper()
    return _negotiated(
        request,
        {"application": wire_format.application_json(name, instances)},
        wire_format.application_xml(name, instances),
    )


@router.get("/apps/{app}/{instance_id}")
async def one_instance(app: str, instance_id: str, request: Request, registry: RegistryDep) -> Response:
    instance = registry.instance(app, instance_id)
    as_json = {"instance": wire_format.instance_json(instance)}
    return _negotiated(request, as_json, wire_format.instance_xml(instance))


@router.get("/instances/{instance_id}")
async def instance_by_id(instance_id: str, request: Request, registry: RegistryDep) -> Response:
    for instances in registry.applications().values():
        for instance in instances:
            if instance.instance_id == instance_id:
                return await one_instance(instance.app, instance_id, request, registry)
    raise HTTPException(status_code=404, detail=f"unknown instance {instance_id}")


@router.post("/apps/{app}", status_code=204, dependencies=Writer)
async def register(app: str, request: Request, registry: RegistryDep, replicate: ReplicatorDep) -> Response:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in REGISTRATION_CONTENT_TYPES:
        raise HTTPException(status_code=415, detail=f"register with one of {', '.join(REGISTRATION_CONTENT_TYPES)}")
    body = await _bounded_body(request)
    try:
        instance = wire_format.instance_from_body(body, content_type)
    except wire_format.MalformedInstance as exc:
        raise HTTPException(status_code=400, detail=f"malformed instance: {exc}") from exc
    if instance.app != app.upper():
        raise HTTPException(status_code=400, detail=f"instance app {instance.app} does not match path {app}")
    try:
        registry.register(instance, replication=replicate.from_peer)
    except (InstanceTaken, RegistryFull) as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    REGISTRATIONS.labels(instance.app).inc()
    replicate(Action.REGISTER, instance.app, instance.instance_id)
    return Response(status_code=204)


async def _bounded_body(request: Request) -> bytes:
    limit = request.app.state.settings.discovery_max_registration_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=f"registration larger than {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status_code=413, detail=f"registration larger than {limit} bytes")
    return body


@router.put("/apps/{app}/{instance_id}", dependencies=Writer)
async def renew(
    app: str, instance_id: str, registry: RegistryDep, replicate: ReplicatorDep, lastDirtyTimestamp: int | None = None
) -> Response:
    instance = registry.instance(app, instance_id)
    if lastDirtyTimestamp is not None and lastDirtyTimestamp > instance.last_dirty_timestamp:
        # The client knows something newer than we do: make it register again (Eureka does the same).
        raise HTTPException(status_code=404, detail="instance info is newer on the client; register again")
    registry.renew(app, instance_id)
    RENEWALS.labels(instance.app).inc()
    replicate(Action.HEARTBEAT, app, instance_id)
    return Response(status_code=200)


@router.delete("/apps/{app}/{instance_id}", dependencies=Writer)
async def cancel(app: str, instance_id: str, registry: RegistryDep, replicate: ReplicatorDep) -> Response:
    registry.cancel(app, instance_id)
    replicate(Action.CANCEL, app, instance_id)
    return Response(status_code=200)


@router.put("/apps/{app}/{instance_id}/status", dependencies=Writer)
async def override_status(
    app: str, instance_id: str, value: str, registry: RegistryDep, replicate: ReplicatorDep
) -> Response:
    registry.override_status(app, instance_id, value.upper())
    replicate(Action.STATUS_UPDATE, app, instance_id, value.upper())
    return Response(status_code=200)


@router.delete("/apps/{app}/{instance_id}/status", dependencies=Writer)
async def remove_status_override(
    app: str, instance_id: str, registry: RegistryDep, replicate: ReplicatorDep
) -> Response:
    registry.remove_status_override(app, instance_id)
    replicate(Action.DELETE_STATUS_OVERRIDE, app, instance_id)
    return Response(status_code=200)


@router.put("/apps/{app}/{instance_id}/metadata", dependencies=Writer)
async def update_metadata(
    app: str, instance_id: str, request: Request, registry: RegistryDep, replicate: ReplicatorDep
) -> Response:
    current = registry.instance(app, instance_id).metadata
    try:
        # The merged metadata obeys the registration's bounds, so repeated updates cannot grow it without end.
        merged = wire_format.bounded_metadata({**current, **request.query_params})
        registry.update_metadata(app, instance_id, merged)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    # Peers get the whole instance: the merged metadata, not the query that made it.
    replicate(Action.REGISTER, app, instance_id)
    return Response(status_code=200)
