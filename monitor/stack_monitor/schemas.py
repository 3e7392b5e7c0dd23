"""Burrow's JSON shapes (core/protocol/evaluator.go, core/internal/httpserver/structs.go), field for field, plus
`current_lag_seconds` per partition and `maxlag_seconds` per group (Burrow has no time lag; clients ignore both)."""

from pydantic import BaseModel, ConfigDict, Field

from stack_monitor.evaluator import Commit, Status
from stack_monitor.history import GroupStatus, PartitionStatus


class RequestInfo(BaseModel):
    url: str
    host: str


class OffsetOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    offset: int
    timestamp: int
    observed_at: int = Field(serialization_alias="observedAt")
    lag: int

    @classmethod
    def of(cls, commit: Commit | None) -> "OffsetOut | None":
        if commit is None:
            return None
        # Burrow's `timestamp` is the commit's own time; a poll sees only when it first found the commit.
        return cls(offset=commit.offset, timestamp=commit.timestamp_ms, observed_at=commit.timestamp_ms, lag=commit.lag)


class PartitionOut(BaseModel):
    topic: str
    partition: int
    # Burrow fills these from the group's members; aiokafka 0.14 cannot decode Kafka 4's DescribeGroups answer
    # (measured: "Buffer underrun decoding string"), so they stay empty.
    owner: str = ""
    client_id: str = ""
    status: str  # OK, WARN, STOP, STALL or REWIND
    start: OffsetOut | None
    end: OffsetOut | None
    current_lag: int
    current_lag_seconds: float | None
    complete: float

    @classmethod
    def of(cls, rated: PartitionStatus) -> "PartitionOut":
        return cls(
            topic=rated.topic,
            partition=rated.partition,
            status=rated.status.name,
            start=OffsetOut.of(rated.start),
            end=OffsetOut.of(rated.end),
            current_lag=rated.current_lag,
            current_lag_seconds=rated.lag_seconds,
            complete=rated.complete,
        )


class GroupStatusOut(BaseModel):
    cluster: str
    group: str
    status: str  # NOTFOUND, OK, WARN or ERR
    complete: float
    partitions: list[PartitionOut]
    partition_count: int
    maxlag: PartitionOut | None
    totallag: int
    maxlag_seconds: float | None

    @classmethod
    def of(cls, rated: GroupStatus, *, all_partitions: bool) -> "GroupStatusOut":
        # /status lists only the partitions that are not OK, /lag all of them (Burrow's ShowAll).
        shown = [p for p in rated.partitions if all_partitions or p.status is not Status.OK]
        return cls(
            cluster=rated.cluster,
            group=rated.group,
            status=rated.status.name,
            complete=rated.complete,
            partitions=[PartitionOut.of(p) for p in shown],
            partition_count=len(rated.partitions),
            maxlag=PartitionOut.of(rated.maxlag) if rated.maxlag else None,
            totallag=rated.totallag,
            maxlag_seconds=rated.max_lag_seconds,
        )

    @classmethod
    def not_found(cls, cluster: str, group: str) -> "GroupStatusOut":
        return cls(
            cluster=cluster,
            group=group,
            status="NOTFOUND",
            complete=1.0,
            partitions=[],
            partition_count=0,
            maxlag=None,
            totallag=0,
            maxlag_seconds=None,
        )


class ClusterListOut(BaseModel):
    error: bool = False
    message: str = "cluster list returned"
    clusters: list[str]
    request: RequestInfo


class ConsumerListOut(BaseModel):
    error: bool = False
    message: str = "consumer list returned"
    consumers: list[str]
    request: RequestInfo


class ConsumerStatusOut(BaseModel):
    error: bool = False
    message: str = "consumer status returned"
    status: GroupStatusOut
    request: RequestInfo


class ErrorOut(BaseModel):
    error: bool = True
    message: str
    request: RequestInfo
