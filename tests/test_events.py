"""The event schema: one class per type, a stable wire form, and refusals for bodies that do not fit."""

from __future__ import annotations

import dataclasses
import json

import pytest

from frontdesk.events import (
    AGENT,
    AUTOMATION,
    CUSTOMER,
    EVENT_CLASSES,
    Actor,
    DomainEvent,
    EventSchemaError,
    MessageReceived,
    TicketCreated,
    TicketStatusChanged,
)

CREATED = TicketCreated(ticket_id=7, actor=Actor(CUSTOMER), pipeline_id=1, status_id=2, source="email",
                        channel_id=3, contact_id=4, origin_conversation_id=5)


def _sample(event_type: type[DomainEvent]) -> DomainEvent:
    """An instance with a plausible value in every required field."""
    values = {}
    for f in dataclasses.fields(event_type):
        if f.name in ("ticket_id", "actor") or f.default is not dataclasses.MISSING \
                or f.default_factory is not dataclasses.MISSING:
            continue
        kind = str(f.type)
        values[f.name] = (1 if "int" in kind else True if "bool" in kind else {"name": {"from": 1, "to": 2}}
                          if "Mapping" in kind else "x")
    return event_type(ticket_id=9, actor=Actor(AGENT, "3"), **values)


@pytest.mark.parametrize("event_type", sorted(EVENT_CLASSES.values(), key=lambda c: c.type))
def test_every_type_survives_the_wire(event_type: type[DomainEvent]) -> None:
    event = _sample(event_type)
    body = json.loads(json.dumps(event.to_dict()))
    assert body["type"] == event_type.type and body["version"] == 1
    assert DomainEvent.from_dict(body) == event


def test_the_envelope_keeps_the_chain() -> None:
    moved = CREATED.follow_up(TicketStatusChanged, pipeline_id=1, from_status_id=2, to_status_id=3,
                              from_status="new", to_status="closed", is_closed=True, reopened=False, rule="r")
    assert moved.causation_id == CREATED.id and moved.correlation_id == CREATED.id
    assert moved.depth == 1 and moved.actor == Actor(AUTOMATION) and moved.ticket_id == 7
    assert moved.key == b"7"
    assert CREATED.correlation_id == CREATED.id  # a chain's first event correlates with itself


def test_a_body_missing_a_field_or_of_an_unknown_type_is_refused() -> None:
    body = CREATED.to_dict()
    broken = {**body, "payload": {k: v for k, v in body["payload"].items() if k != "status_id"}}
    with pytest.raises(EventSchemaError):
        DomainEvent.from_dict(broken)
    with pytest.raises(EventSchemaError):
        DomainEvent.from_dict({**body, "type": "ticket.exploded"})
    with pytest.raises(EventSchemaError):
        DomainEvent.from_dict({**body, "version": 2})
    with pytest.raises(EventSchemaError):
        DomainEvent.from_dict({**body, "payload": [1, 2]})
    with pytest.raises(EventSchemaError):
        DomainEvent.from_dict({**body, "actor": {"kind": "martian"}})


def test_fields_a_newer_producer_adds_are_ignored() -> None:
    body = CREATED.to_dict()
    assert DomainEvent.from_dict({**body, "payload": {**body["payload"], "mood": "sunny"}}) == CREATED


def test_the_envelope_alone_is_not_an_event() -> None:
    with pytest.raises(EventSchemaError):
        DomainEvent(ticket_id=1, actor=Actor(SYSTEM_KIND))


SYSTEM_KIND = "system"


def test_received_defaults_describe_a_plain_customer_message() -> None:
    event = MessageReceived(ticket_id=1, actor=Actor(CUSTOMER), message_id=1, conversation_id=2, channel="email",
                            channel_id=3, direction="inbound", author_kind="customer", sender="a@b.test",
                            match_rule=None, ticket_created=True, on_origin_thread=True, ticket_reopened=False)
    assert not (event.is_forwarded or event.is_automated or event.via_personal_mailbox)
