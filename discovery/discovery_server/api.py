"""Eureka's REST API under /eureka: register, renew, cancel, status overrides, full and delta fetch."""

import json
from typing import Annotated, Any
from xml.etree import ElementTree

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from discovery_server import wire_format
from discovery_server.registry import Registry, UnknownInstance

# Every handler is `async def`: they all run on the event loop thread, as does the eviction task, so
# the registry (plain dicts, not thread-safe) is never touched from FastAPI's threadpool.
router = APIRouter(prefix="/eureka")


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


def _negotiated(request: Request, as_json: dict[str, Any], as_xml: ElementTree.Element) -> Response:
    """JSON when Accept asks for it, XML otherwise, as Netflix's ApplicationsResource does."""
    if "json" in request.headers.get("accept", ""):
        return Response(json.dumps(as_json), media_type="application/json")
    return Response(wire_format.xml_bytes(as_xml), media_type="application/xml")


def _not_found(exc: UnknownInstance) -> HTTPException:
    return HTTPException(status_code=404, detail=f"unknown instance {exc}")


@router.get("/apps")
async def all_applications(request: Request, registry: RegistryDep) -> Response:
    apps, version, hashcode = registry.applications(), registry.version, registry.apps_hashcode()
    return _negotiated(
        request,
        wire_format.applications_json(apps, version, hashcode),
        wire_format.applications_xml(apps, version, hashcode),
    )


@router.get("/apps/delta")
async def recent_changes(request: Request, registry: RegistryDep) -> Response:
    apps, version, hashcode = registry.delta(), registry.version, registry.apps_hashcode()
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
    try:
        instance = registry.instance(app, instance_id)
    except UnknownInstance as exc:
        raise _not_found(exc) from exc
    as_json = {"instance": wire_format.instance_json(instance)}
    return _negotiated(request, as_json, wire_format.instance_xml(instance))


@router.get("/instances/{instance_id}")
async def instance_by_id(instance_id: str, request: Request, registry: RegistryDep) -> Response:
    for instances in registry.applications().values():
        for instance in instances:
            if instance.instance_id == instance_id:
                return await one_instance(instance.app, instance_id, request, registry)
    raise HTTPException(status_code=404, detail=f"unknown instance {instance_id}")


@router.post("/apps/{app}", status_code=204)
async def register(app: str, request: Request, registry: RegistryDep) -> Response:
    try:
        content_type = request.headers.get("content-type", "")
        instance = wire_format.instance_from_body(await request.body(), content_type)
    except wire_format.MalformedInstance as exc:
        raise HTTPException(status_code=400, detail=f"malformed instance: {exc}") from exc
    if instance.app != app.upper():
        raise HTTPException(status_code=400, detail=f"instance app {instance.app} does not match path {app}")
    registry.register(instance)
    return Response(status_code=204)


@router.put("/apps/{app}/{instance_id}")
async def renew(app: str, instance_id: str, registry: RegistryDep, lastDirtyTimestamp: int | None = None) -> Response:
    try:
        instance = registry.instance(app, instance_id)
    except UnknownInstance as exc:
        raise _not_found(exc) from exc
    if lastDirtyTimestamp is not None and lastDirtyTimestamp > instance.last_dirty_timestamp:
        # The client knows something newer than we do: make it register again (Eureka does the same).
        raise HTTPException(status_code=404, detail="instance info is newer on the client; register again")
    registry.renew(app, instance_id)
    return Response(status_code=200)


@router.delete("/apps/{app}/{instance_id}")
async def cancel(app: str, instance_id: str, registry: RegistryDep) -> Response:
    try:
        registry.cancel(app, instance_id)
    except UnknownInstance as exc:
        raise _not_found(exc) from exc
    return Response(status_code=200)


@router.put("/apps/{app}/{instance_id}/status")
async def override_status(app: str, instance_id: str, value: str, registry: RegistryDep) -> Response:
    try:
        registry.override_status(app, instance_id, value.upper())
    except UnknownInstance as exc:
        raise _not_found(exc) from exc
    return Response(status_code=200)


@router.delete("/apps/{app}/{instance_id}/status")
async def remove_status_override(app: str, instance_id: str, registry: RegistryDep) -> Response:
    try:
        registry.remove_status_override(app, instance_id)
    except UnknownInstance as exc:
        raise _not_found(exc) from exc
    return Response(status_code=200)


@router.put("/apps/{app}/{instance_id}/metadata")
async def update_metadata(app: str, instance_id: str, request: Request, registry: RegistryDep) -> Response:
    try:
        registry.update_metadata(app, instance_id, dict(request.query_params))
    except UnknownInstance as exc:
        raise _not_found(exc) from exc
    return Response(status_code=200)
