"""A small local Graph API that follows the documented Messenger Send API contract.

``POST /{version}/me/messages?access_token=...`` with ``recipient``,
``messaging_type`` and ``message``; answers ``{"recipient_id", "message_id"}``
or a Graph error object ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`` with the documented HTTP status.
Tests script the failures: a closed 24-hour window for a PSID (code 10,
subcode 2018278), or the next N calls failing with a 5xx service error.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

MESSAGING_TYPES = {"RESPONSE", "UPDATE", "MESSAGE_TAG"}


def graph_error(status: int, message: str, code: int, subcode: int | None = None, *,
                error_type: str = "OAuthException", transient: bool = False) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return web.json_response({"error": error}, status=status)


@dataclass
class FakeGraphApi:
    tokens: dict[str, str]  # page access token -> page id
    version: str = "v21.0"
    window_closed: set[str] = field(default_factory=set)  # PSIDs last heard from more than 24 hours ago
    failures: list[int] = field(default_factory=list)  # HTTP statuses for the next calls
    requests: list[dict[str, Any]] = field(default_factory=list)  # every call, accepted or not
    sent: list[dict[str, Any]] = field(default_factory=list)  # accepted messages
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    server: TestServer | None = None

    def fail_next(self, *statuses: int) -> None:
        self.failures.extend(statuses)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url(f"/{self.version}"))

    async def send_message(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        token = request.query.get("access_token") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.requests.append({"token": token, "body": body})
        if self.failures:
            status = self.failures.pop(0)
            return graph_error(status, "An unexpected error has occurred. Please retry your request later.", 2,
                               error_type="OAuthException", transient=True)
        if token not in self.tokens:
            return graph_error(400, "Invalid OAuth access token.", 190)
        if not isinstance(body, dict) or not isinstance(body.get("recipient"), dict):
            return graph_error(400, "(#100) The parameter recipient is required", 100)
        if body.get("messaging_type") not in MESSAGING_TYPES:
            return graph_error(400, "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}", 100)
        message = body.get("message")
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            return graph_error(400, "(#100) The parameter message[text] or message[attachment] is required", 100)
        recipient = body["recipient"].get("id") or body["recipient"].get("user_ref")
        if recipient in self.window_closed:
            return graph_error(400, "(#10) This message is sent outside of allowed window.", 10, 2018278)
        mid = f"m_fake{next(self._ids)}"
        self.sent.append({"page_id": self.tokens[token], "recipient": recipient, "body": body, "mid": mid})
        return web.json_response({"recipient_id": recipient, "message_id": mid})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"/{self.version}/me/messages", self.send_message)
        return app

    async def start(self) -> FakeGraphApi:
        self.server = TestServer(self.app(), host="127.0.0.1", port=0)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
