"""The pure decisions: status triggers and their exclusions, action chains, the loop guard."""

from __future__ import annotations

import pytest

from frontdesk.automation.actions import (
    ActionConfig,
    ActionWorld,
    Notify,
    Person,
    SendTemplate,
    SkipAction,
    entered_status,
    plan_status_actions,
)
from frontdesk.automation.loop_guard import MAX_DEPTH, admit, automated_mail_allowed
from frontdesk.automation.triggers import CUSTOMER_REPLIED, EMAIL_SENT, NoChange, SetStatus, TicketState, TriggerSettings, status_trigger
from frontdesk.events import (
    AGENT,
    AUTOMATION,
    CUSTOMER,
    Actor,
    DomainEvent,
    MessageReceived,
    MessageScreened,
    MessageSent,
    TicketCreated,
    TicketStatusChanged,
)
from frontdesk.model.automation import NOTIFY, SEND_EMAIL, TO_OWNER, TO_OWNER_TEAM, TO_TEAM, TO_USER

NEW, WAITING_CONTACT, WAITING_US, CLOSED = 1, 2, 3, 4
CONFIG = TriggerSettings(True, WAITING_CONTACT, True, WAITING_US)
TICKET = TicketState(id=7, pipeline_id=1, status_id=NEW, source_channel="email", reopened=False,
                     pipeline_status_ids=frozenset({NEW, WAITING_CONTACT, WAITING_US, CLOSED}))


def sent(actor: str = AGENT, **fields) -> MessageSent:  # type: ignore[no-untyped-def]
    base = dict(message_id=1, conversation_id=1, channel="email", from_ticket=True, automated=actor == AUTOMATION)
    return MessageSent(ticket_id=7, actor=Actor(actor), **{**base, **fields})


def received(**fields) -> MessageReceived:  # type: ignore[no-untyped-def]
    base = dict(message_id=2, conversation_id=1, channel="email", channel_id=1, direction="inbound",
                author_kind="customer", sender="cust@example.com", match_rule="in_reply_to",
                ticket_created=False, on_origin_thread=True, ticket_reopened=False)
    return MessageReceived(ticket_id=7, actor=Actor(CUSTOMER), **{**base, **fields})


def moved(to_status_id: int, actor: Actor = Actor(AGENT)) -> TicketStatusChanged:
    return TicketStatusChanged(ticket_id=7, actor=actor, pipeline_id=1, from_status_id=NEW, to_status_id=to_status_id,
                               from_status="new", to_status="other", is_closed=to_status_id == CLOSED, reopened=False)


def test_agent_email_from_the_ticket_moves_to_waiting_on_contact() -> None:
    assert status_trigger(sent(), CONFIG, TICKET) == SetStatus(WAITING_CONTACT, EMAIL_SENT)


@pytest.mark.parametrize("event, reason", [
    (sent(from_ticket=False), "not_sent_from_ticket"),  # sent from the contact record
    (sent(actor=AUTOMATION), "not_sent_by_agent"),  # our own "Ticket received"
    (sent(channel="messenger"), "not_email"),
])
def test_email_sent_trigger_ignores(event: DomainEvent, reason: str) -> None:
    assert status_trigger(event, CONFIG, TICKET) == NoChange(reason)


def test_customer_reply_on_the_origin_thread_moves_to_waiting_on_us() -> None:
    assert status_trigger(received(), CONFIG, TICKET) == SetStatus(WAITING_US, CUSTOMER_REPLIED)


@pytest.mark.parametrize("payload, reason", [
    ({"is_forwarded": True}, "forwarded_email"),
    ({"via_personal_mailbox": True}, "sent_from_personal_mailbox"),
    ({"on_origin_thread": False}, "other_email_from_contact"),
    ({"is_automated": True}, "own_automated_mail"),
    ({"author_kind": "agent"}, "not_from_customer"),
    ({"direction": "outbound"}, "not_inbound"),
    ({"ticket_created": True}, "message_created_the_ticket"),
])
def test_customer_replied_trigger_exclusions(payload: dict, reason: str) -> None:
    assert status_trigger(received(**payload), CONFIG, TICKET) == NoChange(reason)


def test_reply_to_a_forwarded_email_changes_nothing() -> None:
    assert status_trigger(received(), CONFIG, TICKET, thread_forwarded=True) == NoChange("reply_to_forwarded_email")


def test_after_a_reopen_new_threads_count_too() -> None:
    reopened = TicketState(**{**TICKET.__dict__, "reopened": True})
    assert status_trigger(received(on_origin_thread=False), CONFIG, reopened) == SetStatus(WAITING_US, CUSTOMER_REPLIED)
    assert status_trigger(received(on_origin_thread=False, ticket_reopened=True), CONFIG, TICKET) == \
        SetStatus(WAITING_US, CUSTOMER_REPLIED)


def test_switched_off_trigger_and_edited_target() -> None:
    off = TriggerSettings(False, WAITING_CONTACT, False, WAITING_US)
    assert status_trigger(sent(), off, TICKET) == NoChange("email_sent_trigger_off")
    assert status_trigger(received(), off, TICKET) == NoChange("customer_replied_trigger_off")
    edited = TriggerSettings(True, CLOSED, True, NEW)
    assert status_trigger(sent(), edited, TICKET) == SetStatus(CLOSED, EMAIL_SENT)
    foreign = TriggerSettings(True, 99, True, 99)  # a status of another pipeline
    assert status_trigger(sent(), foreign, TICKET) == NoChange("email_sent_no_target_status")


def test_already_in_target_status_is_no_change() -> None:
    waiting = TicketState(**{**TICKET.__dict__, "status_id": WAITING_US})
    assert status_trigger(received(), CONFIG, waiting) == NoChange("already_in_target_status")


def test_loop_guard() -> None:
    assert admit(MessageScreened(ticket_id=7, actor=Actor(CUSTOMER), message_id=3, verdict="auto_reply")).reason \
        == "screened"
    assert admit(received(is_automated=True)).reason == "own_automated_mail"
    deep = received()
    for _ in range(MAX_DEPTH):
        deep = deep.follow_up(TicketStatusChanged, **moved(WAITING_US).payload)
    assert deep.depth == MAX_DEPTH and deep.causation_id is not None
    assert admit(deep).reason == "depth_limit"
    assert admit(received()).allowed
    assert automated_mail_allowed(4) and not automated_mail_allowed(5)


ADA = Person(1, "Ada", "ada@acme.test")
BOB = Person(2, "Bob", "bob@acme.test")
CAROL = Person(3, "Carol", "carol@acme.test")


def world(**changes) -> ActionWorld:  # type: ignore[no-untyped-def]
    base = dict(source_channel="email", action_sources=frozenset(), contact_email="cust@example.com",
                contact_is_marketing=False, template_transactional={10: True, 11: False},
                users={1: ADA, 2: BOB}, team_members={5: (ADA, CAROL), 6: (BOB,)}, owner_id=2, owner_team_id=6)
    return ActionWorld(**{**base, **changes})


def test_send_email_transactional_goes_to_any_contact_marketing_only_to_marketing_contacts() -> None:
    chain = [ActionConfig(1, SEND_EMAIL, template_id=10), ActionConfig(2, SEND_EMAIL, template_id=11)]
    assert plan_status_actions(chain, world()) == [
        SendTemplate(1, 10, "cust@example.com"), SkipAction(2, "not_a_marketing_contact")]
    assert plan_status_actions(chain, world(contact_is_marketing=True)) == [
        SendTemplate(1, 10, "cust@example.com"), SendTemplate(2, 11, "cust@example.com")]
    assert plan_status_actions(chain[:1], world(contact_email=None)) == [SkipAction(1, "contact_has_no_email")]


def test_notification_recipient_kinds() -> None:
    chain = [
        ActionConfig(1, NOTIFY, recipient_kind=TO_USER, recipient_id=1),
        ActionConfig(2, NOTIFY, recipient_kind=TO_TEAM, recipient_id=5),
        ActionConfig(3, NOTIFY, recipient_kind=TO_OWNER),
        ActionConfig(4, NOTIFY, recipient_kind=TO_OWNER_TEAM),
    ]
    assert plan_status_actions(chain, world()) == [
        Notify(1, (ADA,)), Notify(2, (ADA, CAROL)), Notify(3, (BOB,)), Notify(4, (BOB,))]
    unowned = plan_status_actions(chain[2:], world(owner_id=None, owner_team_id=None))
    # No owner: the owner's team is skipped for that reason, not as an owner without a team.
    assert unowned == [SkipAction(3, "ticket_has_no_owner"), SkipAction(4, "ticket_has_no_owner")]
    teamless = plan_status_actions(chain[3:], world(owner_team_id=None))
    assert teamless == [SkipAction(4, "owner_has_no_team")]


@pytest.mark.parametrize("channel", ["chat", "messenger"])
def test_chat_and_messenger_tickets_get_actions_only_when_the_pipeline_opts_in(channel: str) -> None:
    chain = [ActionConfig(1, SEND_EMAIL, template_id=10)]
    assert plan_status_actions(chain, world(source_channel=channel)) == [
        SkipAction(1, f"source_{channel}_not_enabled")]
    assert plan_status_actions(chain, world(source_channel=channel, action_sources=frozenset({channel}))) == [
        SendTemplate(1, 10, "cust@example.com")]
    assert plan_status_actions(chain, world(source_channel="form")) == [SendTemplate(1, 10, "cust@example.com")]


def test_entered_status() -> None:
    created = TicketCreated(ticket_id=7, actor=Actor(CUSTOMER), pipeline_id=1, status_id=NEW, source="email")
    assert entered_status(created, CLOSED) == NEW
    assert entered_status(moved(CLOSED), NEW) == CLOSED
    assert entered_status(received(), NEW) is None
