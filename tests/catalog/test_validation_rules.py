"""The shared value rules (``shop_recs/catalog/validation.py``) at their edges, called directly.

The API and importer tests reach these rules through whole requests; the full mutation run of the
module (docs/benchmarks.md) showed which boundaries none of them pinned: the id length and set,
JSON depth and number range, the accepted time window and the readers' event filter.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shop_recs.catalog import validation as v

ID_MESSAGE = "must be a non-empty string of at most 100 characters"


@pytest.mark.parametrize("value", [None, 5, b"abc", "", "x" * 101])
def test_id_problem_refuses_non_strings_empty_and_too_long(value):
    assert v.id_problem(value) == ID_MESSAGE
    assert v.is_valid_id(value) is False


@pytest.mark.parametrize("value", ["a/b", "a b", "ü", "a,b", "a%20"])
def test_id_problem_names_the_character_set(value):
    assert v.id_problem(value) == f"must be {v.ID_RULE}"


@pytest.mark.parametrize("value", ["a", "x" * 100, "A-z_0.9:@"])
def test_valid_ids(value):
    assert v.id_problem(value) is None and v.is_valid_id(value) is True


def test_text_problem():
    assert v.text_problem("fine 中文") is None
    assert v.text_problem("a\x00b") == "must not contain NUL bytes"
    assert v.text_problem("a\ud800b") == "must not contain lone surrogates"


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_json_depth_limit_is_inclusive():
    assert v.json_problem(_nested(v.JSON_MAX_DEPTH)) is None
    assert v.json_problem(_nested(v.JSON_MAX_DEPTH + 1)) == f"is nested deeper than {v.JSON_MAX_DEPTH} levels"
    assert v.json_problem({"a": _nested(v.JSON_MAX_DEPTH - 1)}) is None
    assert v.json_problem({"a": _nested(v.JSON_MAX_DEPTH)}) is not None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), {"a": [1.0, float("nan")]}])
def test_json_numbers_must_be_finite(value):
    assert v.json_problem(value) == "must contain finite numbers only"


def test_json_integers_stay_inside_int64():
    big = 2**63
    assert v.json_problem(big - 1) is None and v.json_problem(-(big - 1)) is None
    assert v.json_problem(big) == "contains an integer out of range"
    assert v.json_problem(-big) == "contains an integer out of range"
    assert v.json_problem({"k": [0, 1.5, True, None, "s"]}) is None


def test_json_keys_and_strings_follow_the_text_rule():
    assert v.json_problem({"a\x00": 1}) == "must not contain NUL bytes"
    assert v.json_problem(["ok", "a\ud800"]) == "must not contain lone surrogates"


def test_the_time_window(settings):
    settings.EVENT_TIMESTAMP_MIN = date(2000, 1, 1)
    settings.EVENT_FUTURE_TOLERANCE_SECONDS = 300
    earliest = v.earliest_timestamp()
    assert earliest == datetime(2000, 1, 1, tzinfo=UTC)
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    latest = v.latest_timestamp(now)
    assert latest == now + timedelta(seconds=300)
    assert v.timestamp_problem(earliest, earliest, latest) is None
    assert v.timestamp_problem(latest, earliest, latest) is None
    assert v.timestamp_problem(earliest - timedelta(microseconds=1), earliest, latest) == (
        "is before 2000-01-01 (EVENT_TIMESTAMP_MIN)"
    )
    assert v.timestamp_problem(latest + timedelta(microseconds=1), earliest, latest) == "is in the future"
    assert v.timestamp_problem(datetime(2020, 1, 1), earliest, latest) == (
        "must include a time zone (e.g. 'Z' or '+02:00')"
    )


@pytest.mark.django_db
def test_readers_skip_rows_outside_the_window_or_the_value_range(store, make_customer, settings):
    from shop_recs.activity.models import Event
    from shop_recs.stores.scoping import unscoped

    settings.EVENT_TIMESTAMP_MIN = date(2000, 1, 1)
    settings.EVENT_FUTURE_TOLERANCE_SECONDS = 300
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)  # far from the real clock: the filter must use this "now"
    customer = make_customer(store, "c1")
    rows = {
        "ok": (now, 10.0),
        "no_value": (now, None),
        "edge_value": (now, v.VALUE_MAX),
        "too_old": (datetime(1999, 12, 31, 23, 59, tzinfo=UTC), 1.0),
        "huge": (now, v.VALUE_MAX * 10),
        "negative_huge": (now, -v.VALUE_MAX * 10),
        "a_day_ahead": (now + timedelta(days=1), 1.0),  # inside the generous reader bound
        "just_past_the_bound": (now + timedelta(days=1, seconds=301), 1.0),
        "days_ahead": (now + timedelta(days=3), 1.0),
    }
    with unscoped():
        for tag, (ts, value) in rows.items():
            Event.objects.create(
                store=store, customer=customer, event_type="view", timestamp=ts, value=value, session_id=tag
            )
        readable = set(Event.objects.filter(v.readable_events_q(now)).values_list("session_id", flat=True))
    assert readable == {"ok", "no_value", "edge_value", "a_day_ahead"}
