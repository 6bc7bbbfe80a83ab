"""The webhook payload parsers under hypothesis: any JSON value in any field gives a typed result or a typed refusal.

Payloads are written by others (Meta, chat widgets, web forms).  Whatever a
field holds (a number where the documentation promises text, an object, a
list, a string of NULs), the parsers must either produce a message whose
text fields are text, or refuse with :class:`InvalidFields` (the edge turns
it into 422, the processor into a quarantine with a cause).  Never a crash
in a later stage.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from frontdesk.channels.webhooks import chat, forms
from frontdesk.channels.webhooks.config import FormChannel
from frontdesk.channels.webhooks.messenger import IGNORED, classify_payload, to_ingest
from frontdesk.channels.webhooks.validation import InvalidFields, decode_json
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.updates import MessageUpdate

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
MESSENGER = CORPUS / "webhooks/messenger-restfb/src/test/resources/json/webhooks"
EXAMPLES = int(os.environ.get("FRONTDESK_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _messenger_bodies() -> list[Any]:
    assert MESSENGER.is_dir(), f"the shared corpus is missing at {MESSENGER}"
    bodies = []
    for path in sorted(MESSENGER.glob("*.json")):
        try:
            bodies.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return bodies


BODIES = _messenger_bodies()


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(copy[path[0]], path[1:], new)
    return copy


def _assert_typed(item: Any) -> None:
    """Every field annotated as text holds text (or nothing)."""
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        if str(f.type).replace(" ", "") in ("str", "str|None"):
            assert value is None or isinstance(value, str), (f.name, value)


@st.composite
def mutated_messenger(draw: st.DrawFn) -> Any:
    body = draw(st.sampled_from(BODIES))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(body)))
        body = _replaced(body, path, draw(JSON))
    return body


def _page_ids(body: Any) -> set[str]:
    if isinstance(body, dict) and isinstance(body.get("entry"), list):
        return {str(e.get("id")) for e in body["entry"] if isinstance(e, dict) and e.get("id") is not None}
    return set()


@FUZZ
@given(mutated_messenger())
@example({"object": "page", "entry": [{"id": "1", "messaging": [
    {"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 1, "message": {"mid": "m", "text": 42}}]}]})
@example({"object": "page", "entry": [{"id": "1", "messaging": [
    {"sender": {"id": "2"}, "recipient": {"id": "1"}, "delivery": {"mids": "abc", "watermark": 1}}]}]})
def test_messenger_events_are_typed_whatever_the_fields_hold(body: Any) -> None:
    for event in classify_payload(body, _page_ids(body)).events:
        if event.kind == IGNORED:
            continue
        item = to_ingest(event, channel_id=1, raw_blob="0" * 64)
        assert isinstance(item, (InboundMessage, MessageUpdate))
        _assert_typed(item)
        assert all(isinstance(m, str) for m in getattr(item, "receipt_message_ids", ()))


def test_a_numeric_messenger_text_is_kept_as_its_digits() -> None:
    body = {"object": "page", "entry": [{"id": "1", "messaging": [
        {"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 1, "message": {"mid": "m", "text": 42}}]}]}
    [event] = classify_payload(body, {"1"}).events
    assert to_ingest(event, channel_id=1, raw_blob="0" * 64).text_body == "42"


CHAT_KEYS = ("session_id", "message_id", "text", "visitor", "attachments")


@FUZZ
@given(st.fixed_dictionaries({}, optional={key: JSON for key in CHAT_KEYS}),
       st.dictionaries(st.sampled_from(("id", "name", "email")), JSON, max_size=3))
@example({"session_id": "s", "message_id": "m", "text": "hi",
          "attachments": [{"url": "https://x.test/a", "filename": {"a": 1}}]}, {})
def test_chat_messages_are_typed_or_refused(data: dict, visitor: dict) -> None:
    if "visitor" not in data:
        data = {**data, "visitor": visitor}
    try:
        message = chat.parse_chat_message(data)
    except InvalidFields as refusal:
        assert refusal.errors  # names what is wrong
        return
    inbound = chat.to_inbound(message, slug="site", raw_blob="0" * 64, raw=b"{}")
    _assert_typed(inbound)
    for attachment in inbound.attachments:
        _assert_typed(attachment)


FORM = FormChannel(slug="contact", fields={"email": "contact.email", "subject": "ticket.name",
                                            "message": "ticket.description", "phone": "contact.phone",
                                            "order": "ticket.custom.order"},
                   required=("email", "subject"))


@FUZZ
@given(st.dictionaries(st.sampled_from(("email", "subject", "message", "phone", "order", "extra")), JSON,
                       max_size=6))
def test_form_submissions_are_typed_or_refused(data: dict) -> None:
    try:
        submission = forms.map_submission(FORM, data)
    except InvalidFields as refusal:
        assert refusal.errors
        return
    _assert_typed(forms.to_inbound(FORM, submission, data, raw_blob="0" * 64, raw=b"{}"))


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"text": NaN}',
    b'{"n": Infinity}',
    b"\xff\xfe not utf-8",
])
def test_the_decoder_refuses_with_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(body)
