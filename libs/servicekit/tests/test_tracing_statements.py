"""servicekit.tracing.instrument_engine against the real MariaDB: a statement run while a sampled request is served
is a CLIENT span, the request's child; one outside any sampled span records nothing."""

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

from servicekit import tracing
from servicekit.config import ServiceSettings
from servicekit.database import make_engine

pytestmark = pytest.mark.stack


async def test_a_statement_of_a_sampled_request_is_a_client_span_under_it(finished: InMemorySpanExporter) -> None:
    engine = make_engine(ServiceSettings(), "information_schema", pool_size=1)  # instrumented when tracing is on
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 2"))  # outside any span: not recorded
            with tracing.tracer().start_as_current_span("GET /probe", kind=SpanKind.SERVER) as request:
                await connection.execute(text("SELECT 1"))
                with pytest.raises(Exception, match="1109"):  # no such table
                    await connection.execute(text("SELECT * FROM no_such_table"))
    finally:
        await engine.dispose()

    statements = {(span.attributes or {}).get("db.query.text"): span for span in finished.get_finished_spans()}
    assert set(statements) == {"SELECT 1", "SELECT * FROM no_such_table", None}, statements  # None: the request
    select, failed = statements["SELECT 1"], statements["SELECT * FROM no_such_table"]
    for span in (select, failed):
        assert span.kind == SpanKind.CLIENT and span.name == "SELECT information_schema"
        assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
        assert (span.attributes or {})["db.system.name"] == "mariadb"
        assert (span.attributes or {})["db.operation.name"] == "SELECT"
    assert select.status.status_code == StatusCode.UNSET
    assert failed.status.status_code == StatusCode.ERROR
