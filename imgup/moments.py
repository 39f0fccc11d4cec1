"""Times and durations as people type them on the command line (pure; no I/O).

    --since 2026-01-31          that day, from midnight, local time
    --since 2026-01-31T08:30    that local time; a zone (Z, +02:00) makes it that zone's
    --since 7d                  seven days ago (s, m, h, d, w)
    --expires 90m               ninety minutes (s, m, h, d, w; a bare number is seconds)

The API is given UTC (rules.format_timestamp) and whole seconds.
"""

from __future__ import annotations

import datetime as dt
import re

from .backend import rules
from .errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"(\d{1,9})\s*([smhdw]?)")


def parse_duration(text: str, option: str, *, maximum: int | None = None) -> int:
    """Whole seconds from ``90``, ``45s``, ``30m``, ``12h``, ``7d`` or ``1w``; a UsageError
    naming ``option`` otherwise, or when it is 0 or over ``maximum``."""
    found = _DURATION_RE.fullmatch(text.strip().lower())
    if found is None:
        raise UsageError(
            f"{option} {text!r} is not a duration.",
            f"Give a number and a unit (s, m, h, d, w), e.g. {option} 1h or {option} 7d.",
        )
    seconds = int(found[1]) * _UNITS[found[2] or "s"]
    if seconds < 1 or (maximum is not None and seconds > maximum):
        limit = f" and at most {describe_seconds(maximum)}" if maximum is not None else ""
        raise UsageError(f"{option} must be at least 1 second{limit}, not {text}.")
    return seconds


def parse_when(text: str, option: str, now: dt.datetime) -> dt.datetime:
    """A moment from a date, a date and time (local unless it names a zone), or an age such
    as ``7d`` (that long before ``now``, which must be aware)."""
    value = text.strip()
    if _DURATION_RE.fullmatch(value.lower()) and not value.isdigit():
        return now - dt.timedelta(seconds=parse_duration(value, option))
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a date, a time or an age.",
            f"E.g. {option} 2026-01-31, {option} 2026-01-31T08:30, or {option} 7d (seven days ago).",
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a local time, as people mean it
    if not 1970 <= moment.astimezone(dt.timezone.utc).year <= 9998:
        raise UsageError(f"{option} {text!r} is out of range (from 1970 on).")
    return moment


def utc_stamp(moment: dt.datetime) -> str:
    """A moment as the API takes it: ISO 8601 UTC with microseconds."""
    return rules.format_timestamp(moment)


def describe_seconds(seconds: int) -> str:
    """``7 days``, ``1 hour``, ``90 minutes``: the largest unit that divides it."""
    for name, size in (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"
