"""The OpenAPI fragment of the webhook endpoints (merged into ``/openapi.json`` by the API)."""

from __future__ import annotations

from typing import Any

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ACCEPTED = {"description": "Stored durably (or a duplicate of something already stored).",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookAccepted"}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": ERROR}


COMMON_ERRORS = {
    "400": _error("Malformed JSON (or a malformed urlencoded body)."),
    "403": _error("Missing or wrong signature, or a stale timestamp."),
    "404": _error("Unknown channel, form or Page."),
    "413": _error("The body is over the size limit."),
    "415": _error("Wrong Content-Type."),
    "503": _error("Storage is unavailable; nothing was accepted. Retry later (Retry-After)."),
}
SIGNED_HEADERS = [
    {"name": "X-Frontdesk-Timestamp", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Unix seconds; refused when further than max_skew_seconds from our clock."},
    {"name": "X-Frontdesk-Signature", "in": "header", "required": True, "schema": {"type": "string"},
     "description": 'sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>'},
]
PUBLIC = {"security": [], "tags": ["webhooks"]}

OPENAPI: dict[str, Any] = {
    "paths": {
        "/webhooks/messenger": {
            "get": {
                **PUBLIC,
                "summary": "Messenger webhook verification (Meta's subscription handshake)",
                "operationId": "verifyMessengerWebhook",
                "parameters": [
                    {"name": "hub.mode", "in": "query", "required": True, "schema": {"const": "subscribe"}},
                    {"name": "hub.verify_token", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "hub.challenge", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "hub.challenge, echoed", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "403": _error("Wrong mode or verify token."),
                },
            },
            "post": {
                **PUBLIC,
                "summary": "Messenger Platform events for the configured Pages",
                "operationId": "receiveMessengerWebhook",
                "description": ("Signed by Meta with X-Hub-Signature-256 over the raw body with the app secret "
                                "(the previous secret is accepted during rotation). Answered 200 once stored; "
                                "processed in the background. See docs/channels-webhooks.md for the event table."),
                "parameters": [{"name": "X-Hub-Signature-256", "in": "header", "required": True,
                                "schema": {"type": "string"}, "description": "sha256=<hex HMAC-SHA256>"}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/MessengerWebhook"}}}},
                "responses": {"200": ACCEPTED, **COMMON_ERRORS},
            },
        },
        "/webhooks/chat/{channel}": {
            "post": {
                **PUBLIC,
                "summary": "One message from a live-chat provider or widget backend",
                "operationId": "receiveChatMessage",
                "parameters": [{"name": "channel", "in": "path", "required": True, "schema": {"type": "string"}},
                               *SIGNED_HEADERS],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/ChatMessage"}}}},
                "responses": {"200": ACCEPTED, **COMMON_ERRORS,
                              "422": _error("Missing or invalid fields, each named in error.fields.")},
            }
        },
        "/webhooks/forms/{form}": {
            "post": {
                **PUBLIC,
                "summary": "A web form submission",
                "operationId": "submitWebForm",
                "description": ("Fields are mapped to ticket and contact properties by the form's configuration. "
                                "The signature headers are required only when the form has a secret."),
                "parameters": [{"name": "form", "in": "path", "required": True, "schema": {"type": "string"}},
                               *[{**h, "required": False} for h in SIGNED_HEADERS]],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"type": "object", "additionalProperties": {
                        "type": ["string", "number", "boolean", "null"]}}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {
                        "type": "string"}}},
                }},
                "responses": {"200": ACCEPTED, **COMMON_ERRORS,
                              "422": _error("Missing or invalid fields, each named in error.fields."),
                              "429": _error("Too many submissions from this address (Retry-After).")},
            }
        },
    },
    "components": {
        "schemas": {
            "WebhookAccepted": {
                "type": "object", "required": ["status", "id"],
                "properties": {"status": {"enum": ["accepted", "duplicate"]},
                               "id": {"type": "integer", "description": "The stored payload's id."}},
            },
            "MessengerWebhook": {
                "type": "object", "required": ["object", "entry"],
                "properties": {
                    "object": {"type": "string", "description": "'page'; other objects are stored and ignored."},
                    "entry": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": ["string", "integer"], "description": "The Page id"},
                        "time": {"type": "integer"},
                        "messaging": {"type": "array", "items": {"type": "object"}},
                        "standby": {"type": "array", "items": {"type": "object"}},
                    }}},
                },
            },
            "ChatMessage": {
                "type": "object", "required": ["session_id", "message_id", "timestamp"],
                "properties": {
                    "session_id": {"type": "string", "maxLength": 200, "description": "Threads the messages."},
                    "message_id": {"type": "string", "maxLength": 200,
                                   "description": "Unique within the session; a redelivery is a duplicate."},
                    "visitor": {"type": "object", "properties": {
                        "id": {"type": "string"}, "name": {"type": "string"},
                        "email": {"type": "string", "format": "email"}}},
                    "text": {"type": "string", "description": "Required unless there are attachments."},
                    "attachments": {"type": "array", "items": {"type": "object", "required": ["url"], "properties": {
                        "url": {"type": "string", "format": "uri"}, "filename": {"type": "string"},
                        "content_type": {"type": "string"}}}},
                    "timestamp": {"type": ["string", "number"], "description": "ISO 8601 or Unix seconds"},
                },
            },
            "ChatReply": {
                "type": "object",
                "description": "What we POST to the chat channel's callback_url, signed like inbound requests.",
                "properties": {
                    "type": {"const": "agent_message"}, "message_id": {"type": "string"},
                    "session_id": {"type": "string"}, "ticket_id": {"type": "integer"}, "text": {"type": "string"},
                    "agent": {"type": "object", "properties": {"name": {"type": ["string", "null"]}}},
                    "sent_at": {"type": "string", "format": "date-time"},
                },
            },
        }
    },
}
