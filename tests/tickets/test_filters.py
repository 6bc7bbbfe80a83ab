"""The filter language's parser: what it reads, what it refuses (naming the part), and no crash on any text."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.tickets.filters import FilterError, bind_filter, parse_filter, parse_filters
from frontdesk.tickets.properties import BUILT_IN, PropertySpec

REGISTRY = {
    **BUILT_IN,
    "plan": PropertySpec("plan", "Plan", "enumeration", False, options=("free", "gold")),
    "seats": PropertySpec("seats", "Seats", "number", False),
    "renewal": PropertySpec("renewal", "Renewal", "date", False),
    "vip": PropertySpec("vip", "VIP", "boolean", False),
}


def test_criteria_are_read_and_typed() -> None:
    f, = parse_filters(["priority:in:HIGH,urgent"], REGISTRY)
    assert (f.spec.name, f.operator, f.values) == ("priority", "in", ("high", "urgent"))
    assert parse_filters(["seats:between:1,10.5"], REGISTRY)[0].values == (1, 10.5)
    assert parse_filters(["owner:eq:me"], REGISTRY)[0].values == ("me",)
    assert parse_filters(["owner:unknown"], REGISTRY)[0].values == ()
    assert parse_filters(["name:contains:a\\,b:c"], REGISTRY)[0].values == ("a\\,b:c",)
    assert parse_filters(["name:in:a\\,b,c"], REGISTRY)[0].values == ("a,b", "c")
    assert parse_filters(["created_at:after:2026-03-01"], REGISTRY)[0].values == (
        datetime(2026, 3, 1, tzinfo=timezone.utc),)
    assert parse_filters(["renewal:last_days:30", "vip:eq:true", "pipeline:in:support,7"], REGISTRY)[2].values == (
        "support", 7)


@pytest.mark.parametrize(("text", "part"), [
    ("priority", "property"), (":eq:x", "property"), ("nope:eq:x", "property"),
    ("priority:like:x", "operator"), ("priority:gt:high", "operator"), ("created_at:contains:x", "operator"),
    ("message_count:gt:3", "operator"),
    ("priority:eq:extreme", "value"), ("priority:eq", "value"), ("owner:known:1", "value"),
    ("seats:gt:many", "value"), ("seats:gt:inf", "value"), ("seats:between:5", "value"),
    ("seats:between:9,1", "value"), ("owner:eq:-3", "value"), ("owner:eq:99999999999", "value"),
    ("created_at:before:yesterday", "value"), ("renewal:last_days:0", "value"), ("vip:eq:maybe", "value"),
])
def test_a_wrong_criterion_names_the_wrong_part(text: str, part: str) -> None:
    with pytest.raises(FilterError) as refused:
        parse_filters([text], REGISTRY)
    assert refused.value.details == {"filter": text, "part": part}


FUZZ = settings(max_examples=150, deadline=None)
NAMES = st.sampled_from(sorted(REGISTRY) + ["id", "pipeline", "status", "spam", "x"])
OPS = st.sampled_from(["eq", "neq", "in", "nin", "contains", "gt", "lt", "between", "known", "unknown",
                       "last_days", "before", "after", "zz"])


@FUZZ
@given(st.text())
def test_any_text_parses_or_is_refused(text: str) -> None:
    try:
        bind_filter(parse_filter(text), REGISTRY)
    except FilterError as refused:
        assert refused.details["part"] in ("filter", "property", "operator", "value")


@FUZZ
@given(NAMES, OPS, st.lists(st.text(max_size=30) | st.integers().map(str) | st.floats().map(str), max_size=3))
def test_plausible_criteria_parse_or_are_refused(name: str, op: str, values: list[str]) -> None:
    text = f"{name}:{op}" + (":" + ",".join(values) if values else "")
    try:
        bound = bind_filter(parse_filter(text), REGISTRY)
    except FilterError as refused:
        assert refused.details["filter"] == text
    else:
        assert bound.operator == op and bound.spec.name == name


def test_a_nul_character_is_refused() -> None:
    with pytest.raises(FilterError) as refused:
        parse_filters(["name:eq:a\x00b"], REGISTRY)
    assert refused.value.details["part"] == "filter"
