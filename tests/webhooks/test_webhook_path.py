"""The straightened webhook path: each body decoded once per stage, one duplicate rule for messages."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from _webhooks_support import CHAT_SECRET, count_rows
from frontdesk.channels.webhooks import validation
from frontdesk.ingest import pipeline
from frontdesk.ingest.intake import store_payload
from frontdesk.model import InboundPayload, Message, QuarantinedItem, Ticket

PAGE = "12345654332"
CHAT_PATH = "/webhooks/chat/widget"


def messenger_body(mid: str, **entry) -> bytes:
    return json.dumps({"object": "page", "entry": [{"id": PAGE, "time": 1700000000000, **entry, "messaging": [{
        "sender": {"id": "4242"}, "recipient": {"id": PAGE}, "timestamp": 1700000000000,
        "message": {"mid": mid, "text": "Is my order on its way?"}}]}]}).encode()


def chat_body(message_id: str, **extra) -> bytes:
    return json.dumps({"session_id": "sess-dup", "message_id": message_id, "visitor": {"id": "v-1"},
                       "text": "Hello?", "timestamp": "2026-11-23T10:00:00Z", **extra}).encode()


def count_decodes(monkeypatch) -> Counter:
    """Count calls to the one body decoder, by where they ran: the request, or the processor's pass."""
    calls: Counter = Counter()
    decode = validation.decode_json

    def counting(raw: bytes):
        task = asyncio.current_task()
        calls["processing" if task and task.get_name() == "webhook-payload-processor" else "request"] += 1
        return decode(raw)

    monkeypatch.setattr(validation, "decode_json", counting)
    return calls


async def test_a_messenger_body_is_decoded_once_at_the_edge_and_once_when_processed(webhooks, sessions,
                                                                                   monkeypatch) -> None:
    calls = count_decodes(monkeypatch)
    response = await webhooks.post_messenger(messenger_body("mid.decoded"))
    assert response.status == 200
    await webhooks.settle()
    assert calls == {"request": 1, "processing": 1}
    # A byte-identical redelivery is answered before any decoding.
    again = await webhooks.post_messenger(messenger_body("mid.decoded"))
    assert (await again.json())["status"] == "duplicate"
    await webhooks.settle()
    assert calls == {"request": 1, "processing": 1}
    assert await count_rows(sessions, Message) == {"messages": 1}


async def test_a_chat_body_is_decoded_once_at_the_edge_and_once_when_processed(webhooks, monkeypatch) -> None:
    calls = count_decodes(monkeypatch)
    response = await webhooks.post_signed(CHAT_PATH, chat_body("m-decoded"), secret=CHAT_SECRET)
    assert response.status == 200, await response.text()
    await webhooks.settle()
    assert calls == {"request": 1, "processing": 1}


async def test_a_redelivered_chat_message_in_a_new_body_is_caught_by_its_provider_id(webhooks, sessions) -> None:
    first = await webhooks.post_signed(CHAT_PATH, chat_body("m-1"), secret=CHAT_SECRET)
    # The provider retries with a re-serialized body: a new payload row, the same message.
    retry = await webhooks.post_signed(CHAT_PATH, chat_body("m-1", retry=1), secret=CHAT_SECRET)
    assert [(await r.json())["status"] for r in (first, retry)] == ["accepted", "accepted"]
    await webhooks.settle()
    [outcome] = webhooks.processor.outcomes[(await retry.json())["id"]]
    assert outcome.startswith("duplicate: ") and "message id already stored" in outcome
    assert await count_rows(sessions, InboundPayload, Message, Ticket) == {
        "inbound_payloads": 2, "messages": 1, "tickets": 1}


async def test_a_redelivered_messenger_event_is_one_message_whatever_the_body(webhooks, sessions) -> None:
    bodies = [messenger_body("mid.same"), messenger_body("mid.same", time=1700000000001)]
    statuses = [(await (await webhooks.post_messenger(body)).json())["status"] for body in bodies]
    assert statuses == ["accepted", "accepted"]
    await webhooks.settle()
    async with sessions() as session:
        ids = [row.id for row in (await session.scalars(select(InboundPayload).order_by(InboundPayload.id))).all()]
        messages = (await session.scalars(select(Message))).all()
    assert webhooks.processor.outcomes[ids[0]][0].startswith("ticket_created")
    assert webhooks.processor.outcomes[ids[1]][0].startswith("duplicate: ")
    assert [m.external_id for m in messages] == ["mid.same"]


class _Deadlock(Exception):
    sqlstate = "40P01"  # PostgreSQL's deadlock_detected: the transaction lost a race


async def test_a_message_that_keeps_losing_races_stays_pending_and_is_never_quarantined(
        webhooks, sessions, monkeypatch) -> None:
    real_store = pipeline.STAGES["store"]
    losing = [True]
    attempts = []

    async def store_losing(state) -> None:
        await real_store(state)
        attempts.append(state.inbound.external_id)
        if losing[0]:
            raise DBAPIError("INSERT ...", {}, _Deadlock("deadlock detected"))

    monkeypatch.setitem(pipeline.STAGES, "store", store_losing)
    response = await webhooks.post_messenger(messenger_body("mid.contended"))
    assert response.status == 200
    await webhooks.settle()
    assert len(attempts) >= 2  # re-run before giving up for now
    async with sessions() as session:
        [row] = (await session.scalars(select(InboundPayload))).all()
    assert row.state == "pending"
    assert await count_rows(sessions, Message, QuarantinedItem) == {"messages": 0, "quarantine": 0}
    # The race is over: the retry (here the start-up recovery) processes it once.
    losing[0] = False
    await webhooks.processor.recover_pending()
    await webhooks.settle()
    async with sessions() as session:
        assert (await session.get(InboundPayload, row.id)).state == "processed"
    assert await count_rows(sessions, Message, QuarantinedItem) == {"messages": 1, "quarantine": 0}


async def _stored(webhooks, *bodies: bytes) -> list[int]:
    """Bodies committed as pending intake rows, not yet handed to the processor."""
    stored = [await store_payload(webhooks.ctx, channel="messenger", route="messenger", raw=body,
                                  headers={"verified_pages": [PAGE]}) for body in bodies]
    return [s.id for s in stored]


def psid_body(mid: str, psid: str, text: str = "Where is my parcel?") -> bytes:
    return json.dumps({"object": "page", "entry": [{"id": PAGE, "time": 1700000000000, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": 1700000000000,
        "message": {"mid": mid, "text": text}}]}]}).encode()


async def test_a_batch_of_payloads_threads_and_deduplicates_in_arrival_order(webhooks, sessions) -> None:
    ids = await _stored(webhooks, psid_body("mid.b1", "ann"), psid_body("mid.b2", "ann"),
                        psid_body("mid.b3", "bob"), messenger_body("mid.b1"))  # mid.b1 again, in another body
    outcomes = await webhooks.processor.process_batch(ids)
    kinds = [outcomes[i][0].split(":")[0] for i in ids]
    assert kinds == ["ticket_created", "threaded", "ticket_created", "duplicate"]
    async with sessions() as session:
        messages = (await session.scalars(select(Message).order_by(Message.id))).all()
        states = {row.state for row in (await session.scalars(select(InboundPayload))).all()}
    assert [m.external_id for m in messages] == ["mid.b1", "mid.b2", "mid.b3"]
    assert messages[0].ticket_id == messages[1].ticket_id != messages[2].ticket_id
    assert states == {"processed"}


async def test_a_poison_message_in_a_batch_is_quarantined_alone(webhooks, sessions, monkeypatch) -> None:
    real_store = pipeline.STAGES["store"]

    async def store_failing_for_one(state) -> None:
        await real_store(state)
        if state.inbound.external_id == "mid.poison":
            raise ValueError("a bug that only this message meets")

    monkeypatch.setitem(pipeline.STAGES, "store", store_failing_for_one)
    ids = await _stored(webhooks, psid_body("mid.p1", "ann"), psid_body("mid.poison", "bob"),
                        psid_body("mid.p2", "ann"))
    outcomes = await webhooks.processor.process_batch(ids)
    assert [outcomes[i][0].split(":")[0] for i in ids] == ["ticket_created", "quarantined", "threaded"]
    async with sessions() as session:
        [item] = (await session.scalars(select(QuarantinedItem))).all()
        messages = (await session.scalars(select(Message).order_by(Message.id))).all()
    assert item.cause == "store_failed" and "only this message" in item.detail
    assert [m.external_id for m in messages] == ["mid.p1", "mid.p2"]


@pytest.mark.parametrize("raw", [
    b'{"object": "page", "entry": [{"id": "1", "time": 1.5e3, "x": [true, false, null, -0.0]}]}',
    b'{"big": 123456789012345678901234567890, "small": -9223372036854775809, "mid": 18446744073709551615}',
    b'{"lone": "\\ud800", "pair": "\\ud83d\\ude00", "nul": "a\\u0000b"}',
    b'{"dup": 1, "dup": 2}',
])
def test_the_body_decoder_reads_json_exactly_as_the_json_module(raw) -> None:
    decoded = validation.decode_json(raw)
    expected = json.loads(raw)
    assert decoded == expected and json.dumps(decoded) == json.dumps(expected)


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": -Infinity}', b"\xef\xbb\xbf{}", b"\xff", b"{", b"[" * 100_000])
def test_the_body_decoder_refuses_what_it_always_refused(raw) -> None:
    with pytest.raises(ValueError):
        validation.decode_json(raw)
