"""Moments on the wire: UTC, millisecond precision, as epoch milliseconds (Connect's Timestamp) or ISO-8601."""

import datetime as dt


def now_ms() -> dt.datetime:
    """The current UTC time truncated to milliseconds (what the Timestamp field and datetime(3) hold)."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Naive datetimes here (as read from DATETIME columns) are UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def epoch_ms(moment: dt.datetime) -> int:
    return round(as_utc(moment).timestamp() * 1000)


def from_epoch_ms(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC)


def iso_ms(moment: dt.datetime) -> str:
    """`2026-11-23T19:12:39.123Z`"""
    utc = as_utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def from_iso(text: str) -> dt.datetime:
    """An ISO-8601 moment; without an offset it is UTC."""
    moment = dt.datetime.fromisoformat(text)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
