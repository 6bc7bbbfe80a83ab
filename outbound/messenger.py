"""Agent replies to Messenger: one Send API call per delivery, errors sorted into retry or give up.

``POST {graph_api_base}/me/messages`` with ``recipient.id`` (the PSID),
``messaging_type: RESPONSE`` and the Page access token.  The Graph API base
URL is configurable so tests point it at a local fake of the documented
contract.  Our message id travels as ``metadata`` ("fd:<id>"), which Meta
echoes back, so the webhook recognises the echo as our own send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.model import Channel, Conversation, Message
from frontdesk.settings import Secret
from frontdesk.outbound.dispatch import DeliveryJob, PermanentDeliveryError, TemporaryDeliveryError

log = structlog.get_logger(__name__)

ECHO_METADATA_PREFIX = "fd:"
USER_REF_PREFIX = "user_ref:"  # chat-plugin guests are addressed by user_ref, not id
# Graph API error codes worth retrying: unknown/service errors, rate limits.
TRANSIENT_CODES = {1, 2, 4, 17, 32, 341, 368, 613}


@dataclass(frozen=True)
class PageSender:
    """What sending as one Page needs (built from ``[[channels.messenger]]`` by the wiring)."""

    page_id: str
    access_token: Secret
    graph_api_base: str


@dataclass(frozen=True)
class MessengerReply:
    page_id: str
    psid: str
    text: str
    message_id: int | None


def classify_send_error(status: int, body: Any) -> Exception:
    """A failed Send API call -> :class:`TemporaryDeliveryError` or :class:`PermanentDeliveryError`.

    Permanent: the 24-hour window is closed (code 10, subcode 2018278), the
    person cannot be reached (551, 2018001), a bad token or permission
    (190, 200, 10), a bad request (100).  Temporary: HTTP 5xx, 429, rate
    limits and service errors, or Meta's own ``is_transient`` flag.
    """
    error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    text = (f"Send API HTTP {status}: code {code} subcode {subcode}: {error.get('message', '')}"
            f" (fbtrace_id {error.get('fbtrace_id')})")
    if error.get("is_transient") or code in TRANSIENT_CODES or status >= 500 or status in (408, 429):
        return TemporaryDeliveryError(text)
    return PermanentDeliveryError(text)


class MessengerDeliverer:
    """The ``"messenger"`` deliverer for :mod:`outbound.dispatch`: ``await deliverer(job) -> mid``.

    The job names our outbound message (``job.message_id``); page, PSID and
    text come from ``job.payload`` (``page_id``, ``psid`` or ``thread_key``
    ``"<page id>:<psid>"``, ``text``) or, when absent, from that message,
    its conversation and its channel.
    """

    def __init__(self, pages: Mapping[str, PageSender], sessions: async_sessionmaker[AsyncSession] | None = None,
                 *, timeout_seconds: float = 10.0) -> None:
        self.pages = dict(pages)
        self.sessions = sessions
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def __call__(self, job: DeliveryJob) -> str | None:
        reply = await self.reply_for(job)
        page = self.pages.get(reply.page_id)
        if page is None:
            raise PermanentDeliveryError(f"Messenger page {reply.page_id} is not configured")
        mid = await self.send(page, reply)
        await self._remember_mid(reply.message_id, mid)
        return mid

    async def reply_for(self, job: DeliveryJob) -> MessengerReply:
        payload = dict(job.payload or {})
        page_id, psid, text = payload.get("page_id"), payload.get("psid") or None, payload.get("text")
        thread_key = payload.get("thread_key") or ""
        if not psid and ":" in thread_key:  # the API queues the conversation's "<page id>:<psid>"
            page_id, psid = page_id or thread_key.split(":", 1)[0], thread_key.split(":", 1)[1]
        if (not page_id or not psid or text is None) and self.sessions is not None and job.message_id is not None:
            async with self.sessions() as session:
                message = await session.get(Message, job.message_id)
                conversation = await session.get(Conversation, message.conversation_id) if message and message.conversation_id else None
                channel = await session.get(Channel, message.channel_id) if message and message.channel_id else None
            if message is not None:
                text = text if text is not None else (message.text_body or "")
            if channel is not None:
                page_id = page_id or channel.key
            if conversation is not None and conversation.thread_key and not psid:
                psid = conversation.thread_key.split(":", 1)[1] if ":" in conversation.thread_key else None
        psid = psid or (job.recipient if job.recipient and job.recipient != page_id else None)
        if not page_id and len(self.pages) == 1:
            page_id = next(iter(self.pages))
        if not page_id or not psid or not text:
            raise PermanentDeliveryError("a Messenger reply needs a page id, a PSID and a text")
        return MessengerReply(str(page_id), str(psid), str(text), job.message_id)

    async def send(self, page: PageSender, reply: MessengerReply) -> str:
        recipient = ({"user_ref": reply.psid.removeprefix(USER_REF_PREFIX)} if reply.psid.startswith(USER_REF_PREFIX)
                     else {"id": reply.psid})
        message: dict[str, Any] = {"text": reply.text[:2000]}  # the Send API's text limit
        if reply.message_id is not None:
            message["metadata"] = f"{ECHO_METADATA_PREFIX}{reply.message_id}"
        body = {"recipient": recipient, "messaging_type": "RESPONSE", "message": message}
        url = f"{page.graph_api_base.rstrip('/')}/me/messages"
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as client:
                async with client.post(url, json=body, params={"access_token": page.access_token.reveal()}) as response:
                    try:
                        answer = await response.json(content_type=None)
                    except ValueError:
                        answer = None
                    status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TemporaryDeliveryError(f"Send API unreachable: {type(error).__name__}: {error}") from error
        if status == 200 and isinstance(answer, dict) and answer.get("message_id"):
            return str(answer["message_id"])
        raise classify_send_error(status, answer)

    async def _remember_mid(self, message_id: int | None, mid: str) -> None:
        """Store the mid on our message so delivery receipts that name it find it.

        Best effort: the message is already sent, so a failure here must not
        make the delivery loop send it again.
        """
        if self.sessions is None or message_id is None:
            return
        try:
            async with self.sessions.begin() as session:
                message = await session.get(Message, message_id)
                if message is not None and not message.external_id:
                    message.external_id = mid
        except Exception:  # noqa: BLE001 - see docstring
            log.warning("messenger.mid_not_recorded", message_id=message_id, mid=mid, exc_info=True)
