"""The one rule for naming a status (tickets.status.statuses_named), shared by PATCH and ``?status=``."""

from __future__ import annotations

import pytest

from frontdesk.model import Status
from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.status import resolve_status, statuses_named

SUPPORT = [
    Status(id=1, pipeline_id=1, internal_name="new", label="New"),
    Status(id=2, pipeline_id=1, internal_name="waiting_on_us", label="Waiting on us"),
    Status(id=3, pipeline_id=1, internal_name="closed", label="Closed"),
    # A label that is another status's internal name: the internal name wins.
    Status(id=4, pipeline_id=1, internal_name="archived", label="new"),
]


@pytest.mark.parametrize(("wanted", "ids"), [
    ("closed", [3]), (" closed\t", [3]), ("Closed", [3]), ("waiting ON us", [2]), ("new", [1]), ("NEW", [1, 4]),
    ("", []), ("   ", []), ("Closed!", []), ("clo", []),
])
def test_a_status_is_named_by_internal_name_or_label_in_any_case(wanted: str, ids: list[int]) -> None:
    assert [s.id for s in statuses_named(SUPPORT, wanted)] == ids


def test_patch_resolves_by_the_same_rule_and_refuses_ambiguity() -> None:
    assert resolve_status(SUPPORT, "Waiting on us").id == 2
    assert resolve_status(SUPPORT, 3).id == 3
    with pytest.raises(DomainError) as refused:
        resolve_status(SUPPORT, "NEW")  # two labels answer to it
    assert refused.value.code == "unknown_status"
    assert {"internal_name": "closed", "label": "Closed"} in refused.value.details["valid"]
