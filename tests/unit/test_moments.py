"""Times and durations as typed on the command line: --since, --until, --expires."""

from __future__ import annotations

import datetime as dt

import pytest

from imgup.errors import UsageError
from imgup.moments import describe_seconds, parse_duration, parse_when, utc_stamp

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("45s", 45), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1w", 604800), (" 2H ", 7200)],
)
def test_a_duration_is_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert parse_duration(text, "--expires") == seconds


@pytest.mark.parametrize("text", ["", "h", "1.5h", "-1h", "1y", "1h30m", "0", "0s", "99999999999"])
def test_anything_else_is_a_usage_error_that_names_the_option(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text, "--expires", maximum=7 * 86400)
    assert "--expires" in caught.value.message


def test_a_duration_over_the_maximum_says_the_maximum() -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration("8d", "--expires", maximum=7 * 86400)
    assert "at most 1 week" in caught.value.message


def test_an_age_is_that_long_before_now() -> None:
    assert parse_when("7d", "--since", NOW) == NOW - dt.timedelta(days=7)
    assert parse_when("90m", "--since", NOW) == NOW - dt.timedelta(minutes=90)


def test_a_date_or_time_without_a_zone_is_local_and_one_with_a_zone_is_that_zone(monkeypatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    import time

    time.tzset()
    try:
        assert utc_stamp(parse_when("2026-03-10", "--since", NOW)) == "2026-03-09T23:00:00.000000Z"
        assert utc_stamp(parse_when("2026-03-10T08:30", "--since", NOW)) == "2026-03-10T07:30:00.000000Z"
        assert utc_stamp(parse_when("2026-03-10T08:30Z", "--since", NOW)) == "2026-03-10T08:30:00.000000Z"
        assert (
            utc_stamp(parse_when("2026-03-10T08:30+02:00", "--since", NOW)) == "2026-03-10T06:30:00.000000Z"
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "10/03/2026", "1900-01-01", "42"])
def test_a_moment_that_is_none_of_these_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_when(text, "--until", NOW)
    assert "--until" in caught.value.message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(604800, "1 week"), (7200, "2 hours"), (90, "90 seconds"), (1800, "30 minutes"), (1, "1 second")],
)
def test_a_duration_is_described_in_its_largest_whole_unit(seconds: int, text: str) -> None:
    assert describe_seconds(seconds) == text
