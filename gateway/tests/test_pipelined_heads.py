"""ClientConnection fed chunks by hand: where a chunk boundary falls must not change what a request is."""

import asyncio
from typing import Any, cast

import pytest

from api_gateway.config import GatewaySettings
from api_gateway.metrics import WorkerMetrics
from api_gateway.proxy import ClientConnection, Gateway, IncomingRequest

pytestmark = pytest.mark.unit

NO_CONTENT = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


class AnswersAtOnce:
    """The part of Gateway a connection uses, answering every request with 204 at once."""

    def __init__(self) -> None:
        self.settings = GatewaySettings(_env_file=None)
        self.max_body_bytes = 1024
        self.clients: set[ClientConnection] = set()
        self.metrics = WorkerMetrics()

    def admit(self, connection: ClientConnection) -> str | None:
        self.clients.add(connection)
        return None

    def release(self, connection: ClientConnection) -> None:
        self.clients.discard(connection)

    def handle(self, request: IncomingRequest, connection: ClientConnection) -> bytes | None:
        return NO_CONTENT


class AnswersLater(AnswersAtOnce):
    """Keeps every request in flight until the test answers it."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: list[IncomingRequest] = []

    def handle(self, request: IncomingRequest, connection: ClientConnection) -> bytes | None:
        self.in_flight.append(request)
        return None


async def test_pipelined_chunks_that_end_inside_a_head_are_not_one_huge_head() -> None:
    """A pipelining client's chunk holds the end of one head, whole requests and the start of the next head:
    only bytes of one unfinished head count toward the head limit (the gateway used to answer 431 here)."""
    connection = ClientConnection(cast(Gateway, AnswersAtOnce()))
    transport = RecordingTransport()
    connection.connection_made(transport)
    stream = b"GET /edge/pipelined HTTP/1.1\r\nHost: x\r\n\r\n" * 5_000
    chunk = 64 * 1024 + 7  # never a multiple of a request's length: every boundary falls inside a head
    for start in range(0, len(stream), chunk):
        connection.data_received(stream[start : start + chunk])
    assert bytes(transport.written) == NO_CONTENT * 5_000
    assert not transport.closing


async def test_a_pipelining_client_never_has_more_requests_parsed_than_the_queue_holds() -> None:
    """Reads are parsed only as far as the queue has room (16 here); the rest waits, unparsed, with reading
    paused, and every request is still answered in order (a 64 KiB read once queued about 1,500 requests)."""
    gateway = AnswersLater()
    connection = ClientConnection(cast(Gateway, gateway))
    transport = RecordingTransport()
    connection.connection_made(transport)
    requests = [b"GET /edge/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(5_000)]
    stream = b"".join(requests)
    chunk = 64 * 1024
    sent = answered = 0
    most_queued = 0
    while answered < len(requests):
        while transport.reading and sent < len(stream):
            connection.data_received(stream[sent : sent + chunk])
            sent += chunk
            most_queued = max(most_queued, connection.queued)
        request = gateway.in_flight[answered]
        assert request.url == b"/edge/%d" % answered
        answered += 1
        connection.answer(request, NO_CONTENT)
        most_queued = max(most_queued, connection.queued)
    assert most_queued <= gateway.settings.gateway_max_pipelined
    assert bytes(transport.written) == NO_CONTENT * len(requests)
