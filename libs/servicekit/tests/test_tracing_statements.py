"""The SQLAlchemy instrumentation against the real MariaDB: a statement run while a sampled request is served is a
CLIENT span, the request's child."""

from collections.abc import Iterator

import pytest
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import SpanKind
from sqlalchemy import text

from servicekit import tracing
from servicekit.config import ServiceSettings
from servicekit.database import make_engine

pytestmark = pytest.mark.stack


@pytest.fixture
def finished(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on with the sampler `configure` uses, the finished spans kept in memory."""
    provider = TracerProvider(sampler=ParentBased(root=tracing._entry_point_sampler()), shutdown_on_exit=False)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    yield memory
    SQLAlchemyInstrumentor().uninstrument()
    provider.shutdown()


async def test_a_statement_of_a_sampled_request_is_a_client_span_under_it(finished: InMemorySpanExporter) -> None:
    engine = make_engine(ServiceSettings(), "information_schema", pool_size=1)  # instrumented when tracing is on
    try:
        with tracing.tracer().start_as_current_span("GET /probe", kind=SpanKind.SERVER) as request:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    statements = [span for span in finished.get_finished_spans() if span.kind == SpanKind.CLIENT]
    selects = [span for span in statements if (span.attributes or {}).get("db.statement") == "SELECT 1"]
    assert selects, [(span.name, span.attributes) for span in finished.get_finished_spans()]
    assert selects[0].parent is not None and selects[0].parent.span_id == request.get_span_context().span_id
    assert (selects[0].attributes or {}).get("db.system") == "mysql"
