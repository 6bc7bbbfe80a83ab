"""Every restfb Messenger webhook body, signed and posted to the live endpoint, with its expected outcome.

``EXPECTED`` is the explicit table: what each file must become.  Between
files the per-message tables are emptied, so each file is judged alone
(several upstream files reuse the same mid).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from frontdesk.channels.webhooks.app import RECENT
from frontdesk.channels.webhooks.messenger import CHANGES_REASON, IGNORED_REASONS, STANDBY_REASON
from frontdesk.model import Base, Channel, Conversation, InboundPayload, Message, Ticket
from frontdesk.model.messages import INBOUND, OUTBOUND
from _webhooks_support import count_rows

CORPUS_DIR = Path("webhooks/messenger-restfb/src/test/resources/json")
KEEP = {"channels", "pipelines", "statuses", "pipeline_automation", "status_actions", "email_templates",
        "users", "teams", "team_memberships", "pipeline_access", "api_tokens", "property_definitions",
        "stage_properties"}

MESSAGE, POSTBACK, ECHO, DELIVERED, READ, EDIT, DELETE, IGNORED, UNKNOWN_PAGE = (
    "message", "postback", "echo", "delivered", "read", "edit", "delete", "ignored", "unknown_page")
FEED = ("ignored", CHANGES_REASON)
NOT_PAGE = ("ignored", "is not a Messenger Page webhook")

# file -> (outcome, detail): for "ignored" the detail is a phrase the logged reason must contain.
EXPECTED: dict[str, tuple[str, str | None]] = {
    **{name: FEED for name in (
        "feed-album-add.json", "feed-album-edited.json", "feed-comment-add-211.json", "feed-comment-add-25.json",
        "feed-comment-add-with-photo.json", "feed-comment-add-with-video.json", "feed-comment-edited-25.json",
        "feed-comment-edited-with-photo.json", "feed-comment-edited-with-video.json", "feed-comment-hide.json",
        "feed-comment-remove-25.json", "feed-comment-unhide.json", "feed-event-add.json", "feed-like-add-25.json",
        "feed-like-add-comment-25.json", "feed-like-add-page-25.json", "feed-like-remove-25.json",
        "feed-photo-add-25.json", "feed-photo-add-message.json", "feed-photo-edited-message.json",
        "feed-photo-edited.json", "feed-photo-hide-message.json", "feed-photo-hide.json", "feed-photo-remove-25.json",
        "feed-post-add-25.json", "feed-post-edit.json", "feed-post-hide.json", "feed-post-remove-25.json",
        "feed-post-unhide.json", "feed-reaction-add-comment.json", "feed-reaction-add-reply.json",
        "feed-reaction-add.json", "feed-reaction-edit.json", "feed-reaction-remove.json", "feed-share-add-25.json",
        "feed-share-hide.json", "feed-share-unhide.json", "feed-status-add-25.json", "feed-status-add-photos.json",
        "feed-status-edited-25.json", "feed-status-edited-photos.json", "feed-status-hide-25.json",
        "feed-status-unhide.json", "feed-two-entries-25.json", "feed-video-add.json", "feed-video-block.json",
        "feed-video-edited.json", "feed-video-hide.json", "feed-video-mute.json", "feed-video-remove-25.json",
        "feed-video-unblock.json", "leadgen.json", "mention-comment-add.json", "mention-post-add-real.json",
        "mention-post-add.json", "ratings-comment-add-25.json", "ratings-comment-edited-25.json",
        "ratings-comment-remove-25.json", "ratings-like-add-25.json", "ratings-like-add-40.json",
        "ratings-like-remove-25.json", "ratings-like-remove-40.json", "ratings-rating-add-25.json",
        "ratings-rating-add-31.json", "ratings-rating-edit-25.json", "ratings-rating-remove-25.json",
        "ratings-reaction-add.json", "ratings-reaction-edit.json", "ratings-reaction-remove.json",
        "unknown-change-value.json")},
    **{name: NOT_PAGE for name in (
        "permission-granted.wh-1.json", "permission-granted.wh-2.json", "user-email.json", "user-hometown-add.json",
        "user-likes-add.json", "user-location-add.json", "user-movies-add.json", "user-television-add.json",
        "user-workhistory.json")},
    "messaging-accountlinking-linked.json": (IGNORED, IGNORED_REASONS["account_linking"]),
    "messaging-accountlinking-unlinked.json": (IGNORED, IGNORED_REASONS["account_linking"]),
    "messaging-approles.json": (IGNORED, IGNORED_REASONS["app_roles"]),
    "messaging-checkoutupdate-shipping.json": (IGNORED, IGNORED_REASONS["checkout_update"]),
    "messaging-payment.json": (IGNORED, IGNORED_REASONS["payment"]),
    "messaging-optin-basic.json": (IGNORED, IGNORED_REASONS["optin"]),
    "messaging-optin-userref.json": (IGNORED, IGNORED_REASONS["optin"]),
    "messaging-pass-thread-control.json": (IGNORED, "pass_thread_control: handover protocol"),
    "messaging-take-thread-control.json": (IGNORED, "take_thread_control: handover protocol"),
    "messaging-request-thread-control.json": (IGNORED, "request_thread_control: handover protocol"),
    "messaging-policy-callback-block.json": (IGNORED, "policy-enforcement"),
    "messaging-policy-callback-unblock.json": (IGNORED, "policy-enforcement"),
    "messaging-reaction-1.json": (IGNORED, IGNORED_REASONS["reaction"]),
    "messaging-reaction-2.json": (IGNORED, IGNORED_REASONS["reaction"]),
    "messaging-referral-basic.json": (IGNORED, IGNORED_REASONS["referral"]),
    "standby-message-basic-echo.json": (IGNORED, STANDBY_REASON),
    "messaging-message-product-template-2.json": (UNKNOWN_PAGE, "page id"),
    "messaging-delivery-basic.json": (DELIVERED, "mid.1458668856218:ed81099e15d3f4f233"),
    "messaging-read-basic.json": (READ, None),
    "messaging-message-basic-echo.json": (ECHO, "hello, world!"),
    "messaging-message-edits.json": (EDIT, "messaging-message-basic.json"),
    "messaging-message-isdeleted.json": (DELETE, "messaging-message-isunsupported.json"),
    "messaging-postback-basic.json": (POSTBACK, "USER_DEFINED_PAYLOAD"),
    "messaging-postback-referral.json": (POSTBACK, None),
    "messaging-postback-chat.json": (POSTBACK, "hey"),  # a chat-plugin guest (sender.user_ref)
    "messaging-message-basic.json": (MESSAGE, "hello, world!"),
    "messaging-message-reply-1.json": (MESSAGE, "hello, world!"),
    "messaging-message-reply-2.json": (MESSAGE, None),
    "messaging-message-quickreply.json": (MESSAGE, "quick reply text"),
    "messaging-message-prior.json": (MESSAGE, None),
    "messaging-message-isunsupported.json": (MESSAGE, None),  # recorded, flagged unsupported
    "messaging-message-fallback-attachment.json": (MESSAGE, None),
    "messaging-message-location-attachment.json": (MESSAGE, None),
    "messaging-message-media-attachment.json": (MESSAGE, None),
    "messaging-message-sticker.json": (MESSAGE, None),
    "messaging-message-sticker-thumbup.json": (MESSAGE, None),
    "messaging-airline-itinerary-template.json": (MESSAGE, None),
    "messaging-button-template.json": (MESSAGE, None),
    "messaging-message-product-template.json": (MESSAGE, None),
    **{f"messaging-message-nlp-{n}.json": (MESSAGE, None) for n in (
        "1", "2", "3", "4", "5", "6", "7", "8", "distance", "duration", "duration-2", "email", "email-2", "error",
        "location", "money", "phone", "quantity", "temperature", "url", "url-2", "volume")},
}


def corpus_files(corpus: Path, folder: str) -> list[Path]:
    return sorted((corpus / CORPUS_DIR / folder).glob("*.json"))


def test_expected_table_covers_every_file(corpus: Path) -> None:
    names = {p.name for p in corpus_files(corpus, "webhooks")}
    assert len(names) == 140
    assert names == set(EXPECTED)


async def _reset(webhooks, sessions) -> None:
    """A fresh world: empty tables, and the app forgets which bodies it committed."""
    async with sessions.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEEP:
                await session.execute(delete(table))
    webhooks.app[RECENT].clear()


async def _post_file(webhooks, path: Path):
    response = await webhooks.post_messenger(path.read_bytes())
    body = await response.json()
    await webhooks.settle()
    return response.status, body


def _first_event(path: Path) -> dict:
    data = json.loads(path.read_bytes())
    return data["entry"][0]["messaging"][0]


async def _seed_outbound(sessions, page_id: str, psid: str, mid: str, sent_at: datetime) -> int:
    """One of our sent messages in this person's conversation (created by a prior inbound message)."""
    async with sessions.begin() as session:
        conversation = await session.scalar(select(Conversation).where(Conversation.thread_key == f"{page_id}:{psid}"))
        assert conversation is not None
        message = Message(conversation_id=conversation.id, ticket_id=conversation.ticket_id, direction=OUTBOUND,
                          channel="messenger", channel_id=conversation.channel_id, external_id=mid,
                          text_body="our reply", author_kind="agent", delivery_state="sent", sent_at=sent_at)
        session.add(message)
        await session.flush()
        return message.id


async def _messages(sessions, external_id: str | None = None) -> list[Message]:
    async with sessions() as session:
        query = select(Message)
        if external_id is not None:
            query = query.where(Message.external_id == external_id)
        return list((await session.scalars(query)).all())


async def test_every_corpus_file_has_its_expected_outcome(webhooks, sessions, corpus: Path) -> None:
    webhook_dir = corpus / CORPUS_DIR / "webhooks"
    for path in corpus_files(corpus, "webhooks"):
        outcome, detail = EXPECTED[path.name]
        await _reset(webhooks, sessions)
        if outcome in (EDIT, DELETE):
            status, _ = await _post_file(webhooks, webhook_dir / detail)
            assert status == 200
        if outcome in (DELIVERED, READ):
            status, _ = await _post_file(webhooks, webhook_dir / "messaging-message-basic.json")
            assert status == 200
            seeded = await _seed_outbound(sessions, "12345654332", "987654321432",
                                          "mid.1458668856218:ed81099e15d3f4f233", datetime(2016, 3, 22, 17, 0, tzinfo=timezone.utc))
            # Sent after the watermark: a read receipt must not cover it.
            later = await _seed_outbound(sessions, "12345654332", "987654321432", "mid.later",
                                         datetime(2016, 3, 23, 0, 0, tzinfo=timezone.utc))
        before = await _messages(sessions)
        status, body = await _post_file(webhooks, path)
        where = f"{path.name}: {body}"

        if outcome == UNKNOWN_PAGE:
            assert status == 404, where
            assert body["error"]["code"] == "unknown_channel" and detail in body["error"]["pages"], where
            assert await count_rows(sessions, InboundPayload, Message) == {"inbound_payloads": 0, "messages": 0}
            continue
        assert status == 200 and body["status"] == "accepted", where
        async with sessions() as session:
            payload = await session.get(InboundPayload, body["id"])
        assert payload is not None and payload.state == "processed", where
        outcomes = webhooks.processor.outcomes[body["id"]]
        after = await _messages(sessions)
        new = [m for m in after if m.id not in {b.id for b in before}]

        if outcome == IGNORED:
            assert outcomes and all(o.startswith("ignored: ") and detail in o for o in outcomes), (where, outcomes)
            assert new == [], where
        elif outcome in (MESSAGE, POSTBACK):
            event = _first_event(path)
            assert len(new) == 1, (where, outcomes)
            message = new[0]
            assert message.direction == INBOUND and message.author_kind == "customer", where
            assert message.ticket_id is not None, (where, outcomes)
            if outcome == MESSAGE:
                assert message.external_id == event["message"]["mid"], where
            else:
                assert message.extra["messenger"]["kind"] == "postback", where
            if detail is not None:
                assert message.text_body == detail, where
            async with sessions() as session:
                ticket = await session.get(Ticket, message.ticket_id)
                channel = await session.get(Channel, ticket.channel_id)
            assert ticket.source_channel == "messenger" and channel.key == str(json.loads(path.read_bytes())["entry"][0]["id"])
        elif outcome == ECHO:
            assert len(new) == 1, (where, outcomes)
            assert new[0].direction == OUTBOUND and new[0].author_kind == "agent" and new[0].text_body == detail, where
            assert await count_rows(sessions, Ticket) == {"tickets": 0}, where
        elif outcome in (DELIVERED, READ):
            assert new == [], where
            by_id = {m.id: m for m in after}
            assert by_id[seeded].delivery_state == outcome, (where, outcomes)
            assert by_id[later].delivery_state == "sent", where
        elif outcome == EDIT:
            assert new == [], where
            [edited] = [m for m in after if m.external_id == _first_event(path)["message_edit"]["mid"]]
            assert edited.extra["edits"][0]["text"] == "hello, world!" and edited.text_body == "hello, world!", where
        elif outcome == DELETE:
            assert new == [], where
            [gone] = [m for m in after if m.external_id == "message_id"]
            assert gone.extra.get("deleted_by_sender_at"), where
        else:  # pragma: no cover - the table only holds the kinds above
            raise AssertionError(f"unexpected outcome kind {outcome}")


@pytest.mark.parametrize("folder", ["instagram", "whatsapp"])
async def test_instagram_and_whatsapp_bodies_are_ignored_with_a_reason(webhooks, sessions, corpus: Path,
                                                                       folder: str) -> None:
    files = corpus_files(corpus, folder)
    assert files
    for path in files:
        status, body = await _post_file(webhooks, path)
        assert status == 200, (path.name, body)
        assert webhooks.processor.outcomes[body["id"]] == [
            o for o in webhooks.processor.outcomes[body["id"]] if "is not a Messenger Page webhook" in o]
        assert webhooks.processor.outcomes[body["id"]]
    assert await count_rows(sessions, Message, Ticket) == {"messages": 0, "tickets": 0}
