"""The tickets domain's rules on their own: each refusal is a DomainError with a code and the names involved."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from frontdesk.events import AGENT, AUTOMATION, Actor
from frontdesk.model import Pipeline, PropertyDefinition, StageProperty, Status, Ticket
from frontdesk.tickets.errors import Conflict, DomainError, NotFound
from frontdesk.tickets.pipelines import check_status_balance, remove_status
from frontdesk.tickets.properties import NUMBER, PropertySpec, check_definition
from frontdesk.tickets.property_values import parse_submitted, typed_submitted_values, validate_value
from frontdesk.tickets.stage_properties import check_required_properties

PLAN = PropertySpec("plan", "Plan", "enumeration", False, options=("basic", "pro"))
SEATS = PropertySpec("seats", "Seats", NUMBER, False)


def test_an_enumeration_value_outside_its_options_names_the_property() -> None:
    with pytest.raises(DomainError) as refused:
        validate_value(PLAN, "gold")
    error = refused.value
    assert (error.code, error.details) == ("property_value_invalid", {"property": "plan"})
    assert error.message == "property 'plan': must be one of basic, pro"
    assert not isinstance(error, (Conflict, NotFound))


def test_submitted_text_is_parsed_to_the_property_type() -> None:
    assert parse_submitted(SEATS, "3") == 3 and parse_submitted(SEATS, "2.5") == 2.5
    assert parse_submitted(PLAN, "Pro") == "pro"
    with pytest.raises(DomainError) as refused:
        parse_submitted(SEATS, "abc")
    assert refused.value.details == {"property": "seats"}
    # Names no definition covers stay as submitted.
    assert typed_submitted_values({"seats": SEATS}, {"seats": "4", "note": "hi"}) == {"seats": 4, "note": "hi"}


def test_a_custom_property_definition_is_checked() -> None:
    assert check_definition("plan", "enumeration", ["basic"]) == ["basic"]
    for name, type_, options, code in [("Bad Name", "string", None, "property_name_invalid"),
                                       ("priority", "string", None, "property_name_invalid"),
                                       ("plan", "colour", None, "property_type_invalid"),
                                       ("plan", "enumeration", [], "property_options_required"),
                                       ("plan", "enumeration", ["a", "a"], "property_options_invalid")]:
        with pytest.raises(DomainError) as refused:
            check_definition(name, type_, options)
        assert refused.value.code == code


async def test_a_missing_stage_property_names_what_is_missing(sessions) -> None:
    async with sessions.begin() as session:
        closed = await session.scalar(select(Status).where(Status.internal_name == "closed"))
        session.add(PropertyDefinition(name="resolution", label="Resolution", type="string", options=[]))
        session.add(StageProperty(status_id=closed.id, property_name="resolution", required=True))
        await session.flush()
        with pytest.raises(DomainError) as refused:
            await check_required_properties(session, {"name": "x", "resolution": " "}, closed.id, actor_kind=AGENT)
        error = refused.value
        assert error.code == "required_properties_missing"
        assert error.details == {"missing": ["resolution"], "status_id": closed.id}
        # Automation is exempt; a value satisfies the rule.
        await check_required_properties(session, {"name": "x"}, closed.id, actor_kind=AUTOMATION)
        await check_required_properties(session, {"resolution": "fixed"}, closed.id, actor_kind=AGENT)


async def test_a_pipeline_without_a_closed_status_is_a_conflict(sessions) -> None:
    async with sessions.begin() as session:
        pipeline = Pipeline(name="Lopsided", internal_name="lopsided", position=99)
        session.add(pipeline)
        await session.flush()
        session.add(Status(pipeline_id=pipeline.id, label="Open", internal_name="open", position=0, is_closed=False))
        with pytest.raises(Conflict) as refused:
            await check_status_balance(session, pipeline.id)
        error = refused.value
        assert error.code == "pipeline_needs_open_and_closed_status"
        assert error.details == {"pipeline_id": pipeline.id}
        assert "no closed status" in error.message


async def test_a_status_holding_tickets_is_not_deleted_without_a_valid_target(sessions) -> None:
    async with sessions.begin() as session:
        pipeline = Pipeline(name="Deletable", internal_name="deletable", position=99)
        session.add(pipeline)
        await session.flush()
        doomed, kept, closed = (Status(pipeline_id=pipeline.id, label=label, internal_name=label.lower(), position=i,
                                       is_closed=i == 2) for i, label in enumerate(["Doomed", "Kept", "Done"]))
        session.add_all([doomed, kept, closed])
        await session.flush()
        session.add_all([Ticket(name=f"t{i}", pipeline_id=pipeline.id, status_id=doomed.id, source_channel="manual")
                         for i in range(2)])
        await session.flush()
        actor = Actor(AGENT, None)
        with pytest.raises(Conflict) as refused:
            await remove_status(session, doomed, None, actor=actor)
        assert (refused.value.code, refused.value.details) == ("status_has_tickets", {"ticket_count": 2})
        for bad_target in (doomed.id, 2**31 - 1):
            with pytest.raises(DomainError) as refused:
                await remove_status(session, doomed, bad_target, actor=actor)
            assert refused.value.code == "target_status_invalid" and not isinstance(refused.value, Conflict)
        assert await remove_status(session, doomed, kept.id, actor=actor) == 2
        assert await session.get(Status, doomed.id) is None


def test_header_fields_refuse_control_characters_and_flatten_stored_text() -> None:
    from frontdesk.tickets.header_fields import email_address, flatten, header_text

    assert header_text("Printer on fire", "name") == "Printer on fire"
    for bad in ("a\r\nBcc: x@evil.test", "a\nb", "a\x00b", "a\x85b", "a\u2028b"):
        with pytest.raises(DomainError) as caught:
            header_text(bad, "name")
        assert caught.value.details == {"field": "name"}
    assert email_address("kim@client.test", "contact.email") == "kim@client.test"
    assert email_address("Kim <kim@client.test>", "cc", display_name=True) == "kim@client.test"
    for bad in ("kim@client.test\r\nBcc: x@evil.test", "Kim <kim@client.test>", "kim", "a@b@c", "@b"):
        with pytest.raises(DomainError):
            email_address(bad, "contact.email")
    assert flatten("Hello\r\n\tBcc: x@evil.test\x00") == "Hello Bcc: x@evil.test"
    assert flatten(None) == ""
