"""Burrow's HTTP API (v3), read-only: clusters, consumer groups, a group's status and its lag. Answers use
Burrow's field names, so tools made for Burrow (dashboards, exporters, alerting scripts) work unchanged."""

import socket
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from stack_monitor.history import LagHistory
from stack_monitor.schemas import (
    ClusterListOut,
    ConsumerListOut,
    ConsumerStatusOut,
    ErrorOut,
    GroupStatusOut,
    RequestInfo,
)

router = APIRouter(prefix="/v3/kafka")


def get_history(request: Request) -> LagHistory:
    history: LagHistory = request.app.state.history
    return history


HistoryDep = Annotated[LagHistory, Depends(get_history)]


def request_info(request: Request) -> RequestInfo:
    return RequestInfo(url=request.url.path, host=socket.gethostname())


RequestInfoDep = Annotated[RequestInfo, Depends(request_info)]


def _not_found(message: str, info: RequestInfo) -> JSONResponse:
    return JSONResponse(ErrorOut(message=message, request=info).model_dump(), status_code=404)


@router.get("", response_model=ClusterListOut)
async def list_clusters(history: HistoryDep, info: RequestInfoDep) -> ClusterListOut:
    return ClusterListOut(clusters=[history.cluster], request=info)


@router.get("/{cluster}/consumer", response_model=ConsumerListOut, responses={404: {"model": ErrorOut}})
async def list_consumers(cluster: str, history: HistoryDep, info: RequestInfoDep) -> ConsumerListOut | JSONResponse:
    if cluster != history.cluster:
        return _not_found("cluster not found", info)
    return ConsumerListOut(consumers=history.groups(), request=info)


@router.get("/{cluster}/consumer/{group}/status", response_model=ConsumerStatusOut)
async def group_status(cluster: str, group: str, history: HistoryDep, info: RequestInfoDep) -> JSONResponse:
    """The group's rating; only the partitions that are not OK are listed."""
    return _status(history, cluster, group, info, all_partitions=False)


@router.get("/{cluster}/consumer/{group}/lag", response_model=ConsumerStatusOut)
async def group_lag(cluster: str, group: str, history: HistoryDep, info: RequestInfoDep) -> JSONResponse:
    """The group's rating with every partition, its window's first and last commit and its lag."""
    return _status(history, cluster, group, info, all_partitions=True)


def _status(history: LagHistory, cluster: str, group: str, info: RequestInfo, *, all_partitions: bool) -> JSONResponse:
    # Like Burrow: an unknown cluster or group is a status of NOTFOUND, answered with 404.
    rated = history.status(group, int(time.time() * 1000)) if cluster == history.cluster else None
    if rated is None:
        status, code = GroupStatusOut.not_found(cluster, group), 404
    else:
        status, code = GroupStatusOut.of(rated, all_partitions=all_partitions), 200
    body = ConsumerStatusOut(status=status, request=info)
    return JSONResponse(body.model_dump(by_alias=True), status_code=code)
