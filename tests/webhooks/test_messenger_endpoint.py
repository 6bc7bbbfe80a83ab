"""The Messenger endpoint's refusals, idempotency and durability, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from _webhooks_support import APP_SECRET, PREVIOUS_APP_SECRET, VERIFY_TOKEN, count_rows, start_server
from frontdesk.ingest.intake import store_payload
from frontdesk.model import InboundPayload, Message, QuarantinedItem, Ticket
from frontdesk.storage.blobs import BlobStore
from frontdesk.ingest.context import IngestContext

PAGE = "12345654332"
ALL = (InboundPayload, Message, Ticket, QuarantinedItem)
NOTHING = {"inbound_payloads": 0, "messages": 0, "tickets": 0, "quarantine": 0}


def text_message(mid: str, text: str = "My order never arrived", psid: str = "4242", page: str = PAGE) -> bytes:
    return json.dumps({"object": "page", "entry": [{"id": page, "time": 1700000000000, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": 1700000000000,
        "message": {"mid": mid, "text": text}}]}]}).encode()


async def test_verification_echoes_the_challenge_only_for_our_token(webhooks) -> None:
    ok = await webhooks.client.get("/webhooks/messenger", params={
        "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert ok.status == 200 and await ok.text() == "1158201444"
    for params in ({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
                   {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
                   {}):
        refused = await webhooks.client.get("/webhooks/messenger", params=params)
        assert refused.status == 403


async def test_forged_unsigned_malformed_oversized_and_mistyped_requests_change_nothing(webhooks, sessions) -> None:
    body = text_message("mid.forged")
    cases = [
        (await webhooks.post_messenger(body, secret="not-our-secret"), 403),
        (await webhooks.post_messenger(body, secret=None), 403),
        (await webhooks.post_messenger(body, **{"X-Hub-Signature-256": "sha1=abc"}), 403),
        # Signed, then altered in transit.
        (await webhooks.post_messenger(body.replace(b"never", b"always"),
                                       **{"X-Hub-Signature-256": (await _signature(body))}), 403),
        (await webhooks.post_messenger(b"{not json", secret=APP_SECRET), 400),
        (await webhooks.post_messenger(body, **{"Content-Type": "text/plain"}), 415),
        (await webhooks.post_messenger(b"{" + b" " * (webhooks.config.max_body_size + 10) + b"}"), 413),
        (await webhooks.post_messenger(text_message("mid.x", page="999999")), 404),
        # Another app's secret does not open this app's Pages.
        (await webhooks.post_messenger(body, secret="other-app-secret"), 404),
    ]
    assert [response.status for response, _ in cases] == [expected for _, expected in cases]
    for response, _ in cases:
        assert "error" in await response.json()
    await webhooks.settle()
    assert await count_rows(sessions, *ALL) == NOTHING


async def _signature(body: bytes) -> str:
    from frontdesk.channels.webhooks.signing import hub_signature

    return hub_signature(APP_SECRET, body)


async def test_a_message_makes_a_ticket_and_a_redelivery_makes_nothing_more(webhooks, sessions) -> None:
    body = text_message("mid.once")
    first = await webhooks.post_messenger(body)
    assert first.status == 200 and (await first.json())["status"] == "accepted"
    await webhooks.settle()
    again = await webhooks.post_messenger(body)
    assert again.status == 200 and (await again.json())["status"] == "duplicate"
    # Same mid inside a different body (Meta adds fields on a retry): still one message.
    reworded = json.loads(body)
    reworded["entry"][0]["time"] += 1
    third = await webhooks.post_messenger(json.dumps(reworded).encode())
    assert third.status == 200
    await webhooks.settle()
    assert webhooks.processor.outcomes[(await third.json())["id"]][0].startswith("duplicate")
    counts = await count_rows(sessions, Message, Ticket)
    assert counts == {"messages": 1, "tickets": 1}
    async with sessions() as session:
        message = await session.scalar(select(Message))
    assert message.text_body == "My order never arrived" and message.external_id == "mid.once"


async def test_the_previous_app_secret_still_works_during_rotation(webhooks, sessions) -> None:
    response = await webhooks.post_messenger(text_message("mid.rotated"), secret=PREVIOUS_APP_SECRET)
    assert response.status == 200
    await webhooks.settle()
    assert await count_rows(sessions, Message) == {"messages": 1}


async def test_messages_from_one_person_thread_into_one_ticket(webhooks, sessions) -> None:
    for n in range(3):
        assert (await webhooks.post_messenger(text_message(f"mid.thread.{n}", f"part {n}"))).status == 200
    await webhooks.post_messenger(text_message("mid.other", psid="5151"))
    await webhooks.settle()
    async with sessions() as session:
        tickets = {m.external_id: m.ticket_id for m in (await session.scalars(select(Message))).all()}
    assert tickets["mid.thread.0"] == tickets["mid.thread.1"] == tickets["mid.thread.2"] != tickets["mid.other"]


async def test_storage_down_answers_503_and_claims_nothing(webhook_settings, webhook_config, sessions, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the blob store's directory should be")
    server = await start_server(IngestContext(webhook_settings, sessions, BlobStore(blocked)), webhook_config)
    try:
        response = await server.post_messenger(text_message("mid.outage"))
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "storage_unavailable"
        assert response.headers["Retry-After"]
    finally:
        await server.client.close()
    assert await count_rows(sessions, *ALL) == NOTHING


async def test_database_down_answers_503(webhook_settings, webhook_config, blobs) -> None:
    from frontdesk.storage.database import create_engine, session_factory

    dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_timeout=2)
    ctx = IngestContext(webhook_settings, session_factory(dead), blobs)
    server = await start_server(ctx, webhook_config, sync_channels=False, recover_pending=False)
    try:
        response = await server.post_messenger(text_message("mid.db-outage"))
        assert response.status == 503
    finally:
        await server.client.close()
        await dead.dispose()


async def test_a_payload_stored_before_a_crash_is_processed_after_restart(webhook_settings, webhook_config,
                                                                          sessions, blobs) -> None:
    ctx = IngestContext(webhook_settings, sessions, blobs)
    # Stored and answered, then the process died before processing it.
    stored = await store_payload(ctx, channel="messenger", route="messenger", raw=text_message("mid.crash"),
                                 headers={"verified_pages": [PAGE]})
    assert await count_rows(sessions, Message) == {"messages": 0}
    server = await start_server(ctx, webhook_config)
    try:
        await server.settle()
    finally:
        await server.client.close()
    async with sessions() as session:
        payload = await session.get(InboundPayload, stored.id)
        message = await session.scalar(select(Message))
    assert payload.state == "processed"
    assert message is not None and message.external_id == "mid.crash" and message.ticket_id is not None


async def test_the_body_lives_only_in_its_row_until_processed_then_in_the_blob_store(
        webhook_settings, webhook_config, sessions, blobs) -> None:
    raw = text_message("mid.row-only")
    ctx = IngestContext(webhook_settings, sessions, blobs)
    stored = await store_payload(ctx, channel="messenger", route="messenger", raw=raw,
                                 headers={"verified_pages": [PAGE]})
    async with sessions() as session:
        pending = await session.get(InboundPayload, stored.id)
    # Durable through the committed row alone: no blob was written at intake.
    assert pending.body == raw and not blobs.exists(pending.blob)
    server = await start_server(ctx, webhook_config)  # a restart: recovery picks the row up
    try:
        await server.settle()
    finally:
        await server.client.close()
    async with sessions() as session:
        processed = await session.get(InboundPayload, stored.id)
        message = await session.scalar(select(Message))
    assert processed.state == "processed" and processed.body is None
    assert await blobs.get(processed.blob) == raw
    assert message is not None and message.external_id == "mid.row-only"


async def test_no_2xx_when_the_commit_holding_the_body_fails(webhook_settings, webhook_config, sessions,
                                                             blobs) -> None:
    from sqlalchemy import event

    def disk_gone(connection) -> None:
        raise OSError("no space left on device")

    engine = sessions.kw["bind"].sync_engine
    event.listen(engine, "commit", disk_gone)
    server = await start_server(IngestContext(webhook_settings, sessions, blobs), webhook_config,
                                sync_channels=False, recover_pending=False)
    try:
        response = await server.post_messenger(text_message("mid.commit-fails"))
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "storage_unavailable"
    finally:
        await server.client.close()
        event.remove(engine, "commit", disk_gone)
    assert await count_rows(sessions, *ALL) == NOTHING


async def test_a_redelivery_in_the_same_batch_gets_the_first_rows_id(webhook_settings, sessions, blobs) -> None:
    from frontdesk.ingest.intake import commit_payload_rows

    ctx = IngestContext(webhook_settings, sessions, blobs)
    values = {"channel": "messenger", "route": "messenger", "headers": {}}
    a, b = text_message("mid.a"), text_message("mid.b")
    first = await commit_payload_rows(ctx, [{**values, "blob": "a" * 64, "body": a},
                                            {**values, "blob": "b" * 64, "body": b},
                                            {**values, "blob": "a" * 64, "body": a}])
    again = await commit_payload_rows(ctx, [{**values, "blob": "b" * 64, "body": b}])
    assert [s.duplicate for s in first] == [False, False, True] and first[2].id == first[0].id
    assert again[0].duplicate and again[0].id == first[1].id
    assert await count_rows(sessions, InboundPayload) == {"inbound_payloads": 2}


async def test_a_payload_that_cannot_be_processed_is_quarantined_with_its_cause(webhook_settings, webhook_config,
                                                                                sessions, blobs) -> None:
    async def broken_ingest(ctx, items):
        raise RuntimeError("the pipeline fell over")

    server = await start_server(IngestContext(webhook_settings, sessions, blobs), webhook_config,
                                ingest=broken_ingest)
    try:
        response = await server.post_messenger(text_message("mid.broken"))
        assert response.status == 200
        await server.settle()
    finally:
        await server.client.close()
    async with sessions() as session:
        item = await session.scalar(select(QuarantinedItem))
        payload = await session.scalar(select(InboundPayload))
    assert payload.state == "quarantined"
    assert item.cause == "processing_error" and "the pipeline fell over" in item.detail
    assert blobs.exists(item.blob) and json.loads(await blobs.get(item.blob))["entry"][0]["messaging"][0]["message"]["mid"] == "mid.broken"


async def test_a_page_with_ticket_creation_off_stores_messages_without_tickets(webhooks, sessions) -> None:
    # Page 777 belongs to another app (its own secret) and has create_tickets = false.
    response = await webhooks.post_messenger(text_message("mid.no-ticket", page="777"), secret="other-app-secret")
    assert response.status == 200
    await webhooks.settle()
    async with sessions() as session:
        message = await session.scalar(select(Message))
    assert message is not None and message.external_id == "mid.no-ticket" and message.ticket_id is None
    assert await count_rows(sessions, Ticket) == {"tickets": 0}


async def test_an_exact_replay_is_answered_without_a_new_row(webhooks, sessions) -> None:
    body = text_message("mid.replayed")
    assert (await webhooks.post_messenger(body)).status == 200
    await webhooks.settle()
    before = await count_rows(sessions, *ALL)
    replay = await webhooks.post_messenger(body)
    assert replay.status == 200 and (await replay.json())["status"] == "duplicate"
    await webhooks.settle()
    assert await count_rows(sessions, *ALL) == before == {**NOTHING, "inbound_payloads": 1, "messages": 1, "tickets": 1}


async def test_a_quarantined_payload_is_replayed_once_the_fault_is_fixed(webhook_settings, webhook_config,
                                                                        sessions, blobs) -> None:
    from frontdesk.channels.webhooks.replay import webhook_replayers
    from frontdesk.ingest.quarantine import replay_quarantined

    async def broken_ingest(ctx, items):
        raise RuntimeError("the pipeline fell over")

    ctx = IngestContext(webhook_settings, sessions, blobs)
    server = await start_server(ctx, webhook_config, ingest=broken_ingest)
    try:
        assert (await server.post_messenger(text_message("mid.replay-me"))).status == 200
        await server.settle()
    finally:
        await server.client.close()
    async with sessions() as session:
        item = await session.scalar(select(QuarantinedItem))
    replayers = webhook_replayers(webhook_config)  # the real pipeline this time
    outcome = await replay_quarantined(ctx, item.id, replayers)
    assert outcome.kind == "replayed" and "ticket_created" in outcome.reason
    again = await replay_quarantined(ctx, item.id, replayers)
    assert "duplicate" in again.reason
    async with sessions() as session:
        payload = await session.scalar(select(InboundPayload))
        item = await session.get(QuarantinedItem, item.id)
    assert payload.state == "processed" and item.replayed_at is not None
    assert await count_rows(sessions, Message, Ticket) == {"messages": 1, "tickets": 1}


async def test_a_message_the_pipeline_refused_is_rebuilt_from_its_payload_for_replay(webhook_settings, webhook_config,
                                                                                    sessions, blobs) -> None:
    from frontdesk.channels.webhooks.replay import webhook_replayer
    from frontdesk.ingest.message import Envelope, IngestOutcome

    seen = []

    async def capture(ctx, message):
        seen.append(message)
        return IngestOutcome("threaded", ticket_id=1, message_id=1)

    body = json.loads(text_message("mid.one"))
    body["entry"][0]["messaging"].append({**body["entry"][0]["messaging"][0],
                                          "message": {"mid": "mid.two", "text": "second"}})
    raw = json.dumps(body).encode()
    record = {**Envelope(channel="messenger", source="webhook:messenger/12345654332", channel_key=PAGE).to_dict(),
              "external_id": "mid.two"}
    replay = webhook_replayer(webhook_config, capture)
    outcome = await replay(IngestContext(webhook_settings, sessions, blobs), raw, Envelope.from_dict(record), record, 7)
    assert outcome.kind == "threaded"
    [message] = seen
    assert message.external_id == "mid.two" and message.text_body == "second" and message.thread_key == f"{PAGE}:4242"
