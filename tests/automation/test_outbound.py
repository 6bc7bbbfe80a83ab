"""Outbound email: composing safely, rendering in the sandbox, spool and smarthost, retries."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from frontdesk.model import Delivery, utcnow
from frontdesk.reply_tokens import make_message_id, ticket_from_message_id
from frontdesk.outbound.deliveries import DeliveryLoop, queue_delivery, store_email
from frontdesk.outbound.email.compose import HeaderInjectionError, OutboundEmail, compose
from frontdesk.outbound.email.render import TemplateRenderError, render_template

KEY = b"test-secret-key"


def outbound(**changes) -> OutboundEmail:  # type: ignore[no-untyped-def]
    base = dict(from_address="support@acme.test", to=("ada@example.com",), subject="Re: help [#7]",
                text="Hello", html="<p>Hello</p>", message_id=make_message_id(KEY, 7, "acme.test"),
                in_reply_to="m2@example.com", references=("m1@example.com", "m2@example.com"),
                auto_submitted="auto-replied")
    return OutboundEmail(**{**base, **changes})


def test_compose_threads_and_marks_automated_mail() -> None:
    mail = outbound()
    parsed = email.message_from_bytes(compose(mail).as_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == f"<{mail.message_id}>"
    assert ticket_from_message_id(KEY, parsed["Message-ID"]) == 7
    assert parsed["In-Reply-To"] == "<m2@example.com>"
    assert parsed["References"] == "<m1@example.com> <m2@example.com>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed.get_body(("plain",)).get_content().strip() == "Hello"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hello</p>"
    person = email.message_from_bytes(compose(outbound(auto_submitted=None)).as_bytes(), policy=email.policy.default)
    assert person["Auto-Submitted"] is None


@pytest.mark.parametrize("changes", [
    {"subject": "Hi\r\nBcc: victim@example.org"},
    {"subject": "Hi\nX-Evil: 1"},
    {"subject": "Hi\u2028Bcc: victim@example.org"},
    {"subject": "Hi\x85X-Evil: 1"},
    {"to": ("ada@example.com\r\nBcc: victim@example.org",)},
    {"cc": ("x@example.com\nBcc: y@example.org",)},
    {"from_name": "Support\r\nBcc: victim@example.org"},
    {"extra_headers": (("X-Note", "a\r\nBcc: victim@example.org"),)},
])
def test_header_injection_is_refused(changes: dict) -> None:
    with pytest.raises(HeaderInjectionError):
        compose(outbound(**changes))


def test_template_output_cannot_inject_headers_and_html_is_escaped() -> None:
    context = {"ticket": {"id": 7, "name": "Help\r\nBcc: victim@example.org"},
               "contact": {"first_name": "<script>alert(1)</script>"}, "owner": None}
    rendered = render_template("About {{ ticket.name }}", "Hi {{ contact.first_name }}",
                               "<p>Hi {{ contact.first_name }}</p>", context)
    assert rendered.subject == "About Help Bcc: victim@example.org"  # one line: no new header
    # Line breaks beyond CR and LF too: the email package refuses every one of them in a header.
    for odd in ("\u2028", "\u2029", "\x85", "\x0b", "\x1c"):
        flat = render_template("About {{ ticket.name }}", "x", None,
                               {"ticket": {"id": 7, "name": f"Help{odd}please"}}).subject
        assert flat == "About Help please"
        assert compose(outbound(subject=flat))["Subject"] == flat
    message = compose(outbound(subject=rendered.subject))
    assert message["Bcc"] is None
    assert rendered.html == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert rendered.text == "Hi <script>alert(1)</script>"  # the text part is not HTML


def test_templates_run_in_a_sandbox() -> None:
    with pytest.raises(TemplateRenderError):
        render_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", "x", None, {})


async def _queue(sessions, blobs, key: str = "test:1", to: str = "ada@example.com") -> int:  # type: ignore[no-untyped-def]
    _, payload = await store_email(blobs, outbound(to=(to,)))
    async with sessions.begin() as session:
        row = queue_delivery(session, idempotency_key=key, channel="email", recipient=to, kind="template",
                             payload=payload)
        await session.flush()
        return row.id


async def _delivery(sessions, delivery_id: int) -> Delivery:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return await session.get(Delivery, delivery_id)


async def test_spool_mode_writes_eml_files(settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    assert settings.smarthost is None
    delivery_id = await _queue(sessions, blobs)
    loop = DeliveryLoop(settings, sessions, blobs)
    assert await loop.deliver_due() == 1
    files = list(settings.spool_dir.glob("*.eml"))
    assert len(files) == 1
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "ada@example.com" and "[#7]" in parsed["Subject"]
    row = await _delivery(sessions, delivery_id)
    assert (row.state, row.attempts) == ("sent", 1)
    assert await loop.deliver_due() == 0  # sent once, never again


async def test_smarthost_delivery(mail_settings, sessions, blobs, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    delivery_id = await _queue(sessions, blobs)
    await DeliveryLoop(mail_settings, sessions, blobs).deliver_due()
    assert handler.envelopes == [("support@acme.test", ["ada@example.com"])]
    assert (await _delivery(sessions, delivery_id)).state == "sent"


async def test_4xx_is_retried_with_backoff_then_sent(mail_settings, sessions, blobs, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    handler.data_reply = "451 4.3.0 try again later"
    delivery_id = await _queue(sessions, blobs)
    loop = DeliveryLoop(mail_settings, sessions, blobs, first_delay=60.0)
    now = utcnow()
    await loop.deliver_due(now)
    row = await _delivery(sessions, delivery_id)
    assert (row.state, row.attempts) == ("deferred", 1)
    assert "451" in row.last_error and row.next_attempt_at > now
    assert await loop.deliver_due(now) == 0  # not due yet
    handler.data_reply = None
    assert await loop.deliver_due(now + timedelta(hours=1)) == 1
    row = await _delivery(sessions, delivery_id)
    assert (row.state, row.attempts) == ("sent", 2)
    assert len(handler.received) == 1


async def test_5xx_is_a_permanent_failure(mail_settings, sessions, blobs, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    handler.data_reply = "554 5.7.1 rejected"
    delivery_id = await _queue(sessions, blobs)
    loop = DeliveryLoop(mail_settings, sessions, blobs)
    await loop.deliver_due()
    row = await _delivery(sessions, delivery_id)
    assert (row.state, row.attempts) == ("failed", 1)
    assert "554" in row.last_error
    assert await loop.deliver_due(utcnow() + timedelta(days=1)) == 0


async def test_unreachable_smarthost_is_deferred_and_gives_up_after_max_attempts(settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    import socket

    from frontdesk.settings import SmarthostSettings
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nobody listens once this closes
    unreachable = replace(settings, smarthost=SmarthostSettings("127.0.0.1", port, tls="none"))
    delivery_id = await _queue(sessions, blobs)
    loop = DeliveryLoop(unreachable, sessions, blobs, max_attempts=2)
    await loop.deliver_due()
    assert (await _delivery(sessions, delivery_id)).state == "deferred"
    await loop.deliver_due(utcnow() + timedelta(days=1))
    row = await _delivery(sessions, delivery_id)
    assert (row.state, row.attempts) == ("failed", 2)


async def test_a_claimed_delivery_is_not_sent_twice(mail_settings, sessions, blobs, sink) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    handler, _ = sink
    await _queue(sessions, blobs)
    first, second = DeliveryLoop(mail_settings, sessions, blobs), DeliveryLoop(mail_settings, sessions, blobs)
    await asyncio.gather(first.deliver_due(), second.deliver_due())
    assert len(handler.received) == 1
    async with sessions() as session:
        assert len((await session.scalars(select(Delivery))).all()) == 1


async def test_a_crash_after_sending_resends_the_same_message_id_on_the_same_row(mail_settings, sessions, blobs,  # type: ignore[no-untyped-def]
                                                                                sink) -> None:
    from frontdesk.outbound.email.deliver import deliver_email
    handler, _ = sink
    delivery_id = await _queue(sessions, blobs)
    loop = DeliveryLoop(mail_settings, sessions, blobs, lease=300.0)
    now = utcnow()
    # The process claims the row and sends, then dies before recording "sent".
    job = await loop._claim(delivery_id, 0, now)
    await deliver_email(job)
    assert await loop.deliver_due(now) == 0  # the lease still holds it
    assert await loop.deliver_due(now + timedelta(seconds=301)) == 1
    first, second = handler.received
    assert first["Message-ID"] == second["Message-ID"]
    async with sessions() as session:
        rows = (await session.scalars(select(Delivery))).all()
    assert [(r.id, r.state, r.attempts) for r in rows] == [(delivery_id, "sent", 2)]


async def test_two_concurrent_loops_send_each_mail_once(mail_settings, sessions, blobs, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    for n in range(16):
        await _queue(sessions, blobs, key=f"test:{n}", to=f"user{n % 5}@example.com")
    first, second = (DeliveryLoop(mail_settings, sessions, blobs, concurrency=4) for _ in range(2))
    try:
        attempted = await asyncio.gather(first.deliver_due(), second.deliver_due())
    finally:
        await first.smarthost.close()
        await second.smarthost.close()
    assert sum(attempted) == 16
    sent = [str(message["Message-ID"]) for message in handler.received]
    assert len(sent) == len(set(sent)) == 16
    async with sessions() as session:
        rows = (await session.scalars(select(Delivery))).all()
    assert {(r.state, r.attempts) for r in rows} == {("sent", 1)}
    assert {f"<{r.payload['message_id_header']}>" for r in rows} == set(sent)


async def test_one_loop_sends_concurrently_over_reused_sessions_each_recipients_mail_in_order(  # type: ignore[no-untyped-def]
        mail_settings, sessions, blobs, sink) -> None:
    handler, _ = sink
    queued = [await _queue(sessions, blobs, key=f"test:{n}", to=f"user{n % 3}@example.com") for n in range(12)]
    loop = DeliveryLoop(mail_settings, sessions, blobs, concurrency=4)
    try:
        assert await loop.deliver_due() == 12
    finally:
        await loop.smarthost.close()
    assert loop.smarthost.opened <= 3  # one recipient at a time per session: at most three at once here
    async with sessions() as session:
        header_of = {r.id: f"<{r.payload['message_id_header']}>" for r in (await session.scalars(select(Delivery)))}
    for user in range(3):
        address = f"user{user}@example.com"
        assert [str(m["Message-ID"]) for m in handler.to(address)] == [header_of[i] for i in queued[user::3]]
