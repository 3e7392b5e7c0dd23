"""Domain errors raised by service code, and the one place turning them (and bad input) into HTTP."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class DomainError(Exception):
    """Raised in service code; `install_error_handlers` maps it to `status_code` with `{"detail": ...}`, plus
    `"fields": [field]` and whatever `extra` holds (what a client needs to act on it, e.g. the current price)."""

    status_code = 400

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers
        self.extra = extra or {}


class InvalidInput(DomainError):
    status_code = 422


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class TooManyRequests(DomainError):
    """Throttled: `retry_after` seconds until the client may try again (sent as Retry-After)."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(retry_after, 1))})


class Unavailable(DomainError):
    """A dependency (Kafka, another service) cannot be reached right now; the client may retry."""

    status_code = 503


def _field_name(location: tuple[int | str, ...]) -> str:
    # ("body", "qty") -> "qty"; ("header", "idempotency-key") -> "idempotency-key"; ("body",) -> "body"
    rest = [str(part) for part in location[1:]] if len(location) > 1 else [str(part) for part in location]
    return ".".join(rest)


def validation_answer(errors: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Status and body for validation errors: 400 for malformed JSON, else 422 naming the fields."""
    if any(error.get("type") == "json_invalid" for error in errors):
        return 400, {"detail": "malformed JSON body", "fields": ["body"]}
    fields = [_field_name(tuple(error.get("loc", ()))) for error in errors]
    pairs = zip(fields, errors, strict=True)
    messages = [f"{field}: {error.get('msg', 'invalid')}" for field, error in pairs]
    return 422, {"detail": "; ".join(messages), "fields": fields}


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, body = validation_answer(list(exc.errors()))
    return JSONResponse(body, status_code=status)


async def _on_domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    body: dict[str, Any] = {"detail": exc.detail}
    if exc.field is not None:
        body["fields"] = [exc.field]
    body.update(exc.extra)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database refused or lost the connection (down, restarting, a Galera node outside the primary component,
    a deadlock that outlasted its retries): nothing was written, and the client may try again."""
    log.warning("database unavailable; answered 503", extra={"path": request.url.path, "error": str(exc)[:300]})
    return JSONResponse(
        {"detail": "the database cannot be reached right now; try again"}, status_code=503, headers={"Retry-After": "1"}
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(DomainError, _on_domain_error)
    try:
        from sqlalchemy.exc import OperationalError  # the db extra
    except ImportError:
        return
    app.add_exception_handler(OperationalError, _on_database_unavailable)
