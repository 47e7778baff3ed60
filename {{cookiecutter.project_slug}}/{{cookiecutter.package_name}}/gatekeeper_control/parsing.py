"""The one parser of what admins type as numbers and times: percentages, schedule times, ids and page numbers.

Each is bounded before any arithmetic or database sees it, so that no text (`sNaN`, `1e999999999`,
`9999-12-31T23:59:59-23:59`, an id past 2**63) can raise anything but the store's own errors, whose
message says what to type instead. Nothing here reads the database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .errors import ScheduleError, WeightsError

# The largest id a row can have: SQLite's and PostgreSQL's (BIGINT) 64-bit signed integers.
MAX_ID = 2**63 - 1
# Schedules further ahead than this are a typo (a year 9999), not a plan.
MAX_SCHEDULE_DAYS = 10 * 366
MAX_PAGE = 1_000_000

# A percentage as typed: up to three digits, then optional decimals (checked to be at most two below).
_PERCENT = re.compile(r"([0-9]{1,3})(?:\.([0-9]{1,20}))?")
_OFFSET = re.compile(r"\+([0-9]{1,6})([smhd])")
_OFFSET_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# ISO 8601 as `datetime.fromisoformat` reads it, within its length (a 1 MB string is no time).
_MAX_TIME_LENGTH = 40


def percentage(flag: str, variant: str, value: object) -> int:
    """A percentage for one variant (0 to 100, at most 2 decimals) in hundredths of a percent.

    Raises WeightsError for anything else: signs, exponents, NaN, infinities and overlong digits included.
    """
    text = str(value).strip()
    match = _PERCENT.fullmatch(text)
    if match is None and not any(character.isdigit() for character in text):
        raise WeightsError(f"{flag}: {_quote(text)} is not a percentage for {variant}.")
    if match is None or (match.group(2) or "").rstrip("0")[2:]:
        raise WeightsError(
            f"{flag}: {variant}={_quote(text)} must be a percentage, 0 to 100, at most 2 decimals."
        )
    hundredths = Decimal(text) * 100
    if hundredths > 10_000:
        raise WeightsError(f"{flag}: {variant}={_quote(text)} is more than 100 percent.")
    return int(hundredths)


def moment(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or an offset like +30m, +2h, +1d: in the future, and
    at most MAX_SCHEDULE_DAYS ahead. Raises ScheduleError saying what to type instead."""
    text = (text or "").strip()
    offset = _OFFSET.fullmatch(text)
    try:
        if offset:
            due = now + timedelta(**{_OFFSET_UNITS[offset.group(2)]: int(offset.group(1))})
        else:
            if len(text) > _MAX_TIME_LENGTH:
                raise ValueError(text)
            due = datetime.fromisoformat(text)
            due = due.replace(tzinfo=UTC) if due.tzinfo is None else due.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a zone offset that moves it past year 1 or 9999
        raise ScheduleError(
            f"{_quote(text)} is not a time: use ISO 8601 (2030-01-31T09:00Z) or +30m, +2h, +1d."
        ) from None
    if due <= now:
        raise ScheduleError(f"{due:%Y-%m-%d %H:%M:%S} UTC is in the past: schedule a future time.")
    if due - now > timedelta(days=MAX_SCHEDULE_DAYS):
        raise ScheduleError(
            f"{due:%Y-%m-%d} is more than {MAX_SCHEDULE_DAYS // 366} years ahead: schedule a nearer time."
        )
    return due


def row_id(value: int) -> int | None:
    """`value` when a row could have it as its id (1 to MAX_ID), else None: no such row."""
    return value if 0 < value <= MAX_ID else None


def page_number(text: str | None) -> int:
    """A page number from a query string: 1 for anything that is not one, at most MAX_PAGE."""
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 7:
        return 1
    return min(max(1, int(text)), MAX_PAGE)


def _quote(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
