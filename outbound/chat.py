"""Agent replies to a live chat: a signed JSON webhook to the provider's callback URL.

Signature recipe (the same one the inbound chat endpoint checks):
``X-Frontdesk-Timestamp: <unix seconds>`` and ``X-Frontdesk-Signature:
sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``.  The delivery's
idempotency key goes in ``Idempotency-Key`` and as ``message_id`` so the
provider can drop a retry it already showed.  Retries are the delivery
loop's: 408, 429, 5xx and network errors are temporary, other 4xx permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.model import Channel, Conversation, Message, User
from frontdesk.settings import Secret
from frontdesk.outbound.dispatch import DeliveryJob, PermanentDeliveryError, TemporaryDeliveryError

TIMESTAMP_HEADER = "X-Frontdesk-Timestamp"
SIGNATURE_HEADER = "X-Frontdesk-Signature"


def sign_timestamped(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``"{timestamp}." + body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChatEndpoint:
    """Where one chat channel's replies go (built from ``[[channels.chat]]`` by the wiring)."""

    slug: str
    callback_url: str | None
    secret: Secret


class ChatDeliverer:
    """The ``"chat"`` deliverer for :mod:`outbound.dispatch`: ``await deliverer(job) -> provider id``.

    ``job.payload`` may carry ``slug``, ``session_id`` (or ``thread_key``), ``text`` and
    ``agent_name``; whatever is missing comes from our outbound message
    (``job.message_id``), its conversation (thread key = session id) and
    its channel (key = slug).
    """

    def __init__(self, endpoints: Mapping[str, ChatEndpoint], sessions: async_sessionmaker[AsyncSession] | None = None,
                 *, timeout_seconds: float = 10.0) -> None:
        self.endpoints = dict(endpoints)
        self.sessions = sessions
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def _reply(self, job: DeliveryJob) -> dict[str, Any]:
        payload = dict(job.payload or {})
        reply = {key: payload.get(key) for key in ("slug", "session_id", "text", "agent_name")}
        reply["session_id"] = reply["session_id"] or payload.get("thread_key")  # the API queues the thread key
        if None in (reply["slug"], reply["session_id"], reply["text"]) and self.sessions is not None and job.message_id:
            async with self.sessions() as session:
                message = await session.get(Message, job.message_id)
                if message is not None:
                    conversation = await session.get(Conversation, message.conversation_id) if message.conversation_id else None
                    channel = await session.get(Channel, message.channel_id) if message.channel_id else None
                    author = await session.get(User, message.author_user_id) if message.author_user_id else None
                    reply["text"] = reply["text"] if reply["text"] is not None else message.text_body
                    reply["slug"] = reply["slug"] or (channel.key if channel else None)
                    reply["session_id"] = reply["session_id"] or (conversation.thread_key if conversation else None)
                    reply["agent_name"] = reply["agent_name"] or message.from_name or (author.name if author else None)
        if not reply["slug"] or not reply["session_id"] or not reply["text"]:
            raise PermanentDeliveryError("a chat reply needs a channel slug, a session id and a text")
        return reply

    async def __call__(self, job: DeliveryJob) -> str | None:
        reply = await self._reply(job)
        endpoint = self.endpoints.get(reply["slug"])
        if endpoint is None or not endpoint.callback_url:
            raise PermanentDeliveryError(f"chat channel {reply['slug']!r} has no callback_url configured")
        body = json.dumps({
            "type": "agent_message",
            "message_id": job.idempotency_key,
            "session_id": reply["session_id"],
            "ticket_id": job.ticket_id,
            "text": reply["text"],
            "agent": {"name": reply["agent_name"]},
            "sent_at": datetime.now(timezone.utc).isoformat(),
        }).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign_timestamped(endpoint.secret.reveal(), timestamp, body),
                   "Idempotency-Key": job.idempotency_key}
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as client:
                async with client.post(endpoint.callback_url, data=body, headers=headers) as response:
                    status = response.status
                    text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TemporaryDeliveryError(f"chat provider unreachable: {type(error).__name__}: {error}") from error
        if 200 <= status < 300:
            try:
                answer = json.loads(text) if text else {}
            except ValueError:
                answer = {}
            provider_id = answer.get("id") or answer.get("message_id") if isinstance(answer, dict) else None
            return str(provider_id) if provider_id else None
        detail = f"chat provider answered HTTP {status}: {text[:300]}"
        if status >= 500 or status in (408, 429):
            raise TemporaryDeliveryError(detail)
        raise PermanentDeliveryError(detail)
