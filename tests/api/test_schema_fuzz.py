"""Generated requests against every operation of /openapi.json (schemathesis), on both databases.

The real application (the API plus the webhook sub-app, wired as the daemon
does) serves a small seeded world, so ids in paths exist: a super admin with
an API token, the default Support pipeline with its statuses and templates, a
team, an agent, a custom property, and tickets with messages and an
attachment.  Schemathesis then runs its examples, coverage and fuzzing phases
over every operation and checks each answer against the document: no 5xx,
every status documented, the right content type and body schema, and
schema-invalid requests refused.

Bounded to about a minute per database (``MAX_EXAMPLES``, ``MAX_TIME``); a
fixed seed keeps a failure reproducible: rerun the printed command against a
server seeded the same way.  FRONTDESK_FUZZ_SECONDS, FRONTDESK_FUZZ_EXAMPLES
and FRONTDESK_FUZZ_SEED widen the run locally (docs/api.md, "Fuzzing").
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import pytest

from api_harness import create_user_token, listen
from frontdesk.api.app import AppExtras, create_app
from frontdesk.channels.webhooks.app import create_webhook_app, openapi_paths
from frontdesk.channels.webhooks.config import ChatChannel, FormChannel, MessengerPage, WebhookConfig
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.model.access import ACCESS_ALL, AGENT, SUPER_ADMIN
from frontdesk.settings import Secret

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = int(os.environ.get("FRONTDESK_FUZZ_EXAMPLES", "15"))
MAX_TIME = int(os.environ.get("FRONTDESK_FUZZ_SECONDS", "75"))
SEED = int(os.environ.get("FRONTDESK_FUZZ_SEED", "20261202"))
# Within the CI budget the coverage phase can use all the time; run "fuzzing" alone locally to reach it.
PHASES = os.environ.get("FRONTDESK_FUZZ_PHASES", "examples,coverage,fuzzing")
CHECKS = ",".join((
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "missing_required_header",
    # A request the schema forbids must be refused: api.request_body checks
    # every authenticated body against its operation's schema.
    "negative_data_rejection",
))
# Not checked: positive_data_acceptance ("a request the schema allows was
# refused").  A schema-valid body can still break a domain rule the schema
# cannot state: an id that names nothing (404), a status of another pipeline,
# a reorder that leaves a pipeline out, exactly one of ticket_ids /
# from_status_id (422).  Those refusals are correct answers.
SUPPORT = "support@acme.test"
# One of each webhook channel, so requests reach the signature and body checks rather than "unknown channel".
WEBHOOKS = WebhookConfig(
    messenger=(MessengerPage(page_id="1001", app_secret=Secret("app-secret"), verify_token=Secret("verify"),
                             page_access_token=Secret("page-token")),),
    chat=(ChatChannel(slug="site", secret=Secret("chat-secret")),),
    forms=(FormChannel(slug="contact", fields={"email": "email", "message": "text"}),),
    verify_tokens=(Secret("verify"),),
)


def mail(subject: str, *, attachment: bool = False) -> bytes:
    message = EmailMessage()
    message["From"] = "Ada Lovelace <ada@example.com>"
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    message.set_content(f"about {subject}")
    if attachment:
        message.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="invoice.pdf")
    return message.as_bytes()


async def seed(settings, sessions, blobs, url: str) -> str:  # type: ignore[no-untyped-def]
    """The world the fuzzer walks in; returns the super admin's Authorization header value."""
    ctx = IngestContext(settings=settings, sessions=sessions, blobs=blobs)
    envelope = Envelope(channel="email", source="smtp", mail_from=None, rcpt_tos=(SUPPORT,), channel_key=SUPPORT)
    for number in range(3):
        outcome = await ingest_email(ctx, mail(f"Ticket {number}", attachment=number == 0), envelope)
        assert outcome.kind == "ticket_created", outcome
    _, admin = await create_user_token(sessions, email="root@acme.test", role=SUPER_ADMIN)
    async with aiohttp.ClientSession(base_url=url, headers=admin) as client:
        async with client.post("/api/v1/teams", json={"name": "Tier 1"}) as response:
            assert response.status == 201, await response.text()
            team_id = (await response.json())["id"]
        await create_user_token(sessions, email="agent@acme.test", role=AGENT, ticket_access=ACCESS_ALL,
                                team_id=team_id)
        async with client.post("/api/v1/properties", json={"name": "region", "type": "string"}) as response:
            assert response.status == 201, await response.text()
    return admin["Authorization"]


# A refusal of forbidden data may also be 413: a string within its maxLength
# can still make a body over [http] max_body_size (each astral character is
# 12 bytes of JSON escapes), and the size limit answers before the schema.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5XX"]
"""


async def run_schemathesis(url: str, authorization: str, workdir: Path) -> tuple[int, str]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{url}/openapi.json",
        "--header", f"Authorization: {authorization}",
        "--checks", CHECKS,
        # The event stream never ends by design (a client reads it for as long as it likes); its answers
        # (401, 400 for a bad Last-Event-ID, the events) are tested in tests/api/test_stream.py.
        "--exclude-path", "/api/v1/stream",
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(MAX_TIME),
        "--phases", PHASES,
        "--workers", "1",
        "--seed", str(SEED),
        "--request-timeout", "10",
        "--no-color",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=workdir,  # its cache dir
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=MAX_TIME + 120)
    return process.returncode or 0, output.decode(errors="replace")


async def test_every_operation_answers_as_documented(settings, sessions, blobs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = IngestContext(settings=settings, sessions=sessions, blobs=blobs)
    extras = AppExtras(subapps=[("/webhooks/", create_webhook_app(ctx, WEBHOOKS))], openapi=[openapi_paths()])
    runner, url = await listen(create_app(settings, sessions, blobs, extra=extras))
    try:
        authorization = await seed(settings, sessions, blobs, url)
        # The CLI runs in a child process while this event loop keeps serving the app.
        code, report = await run_schemathesis(url, authorization, tmp_path)
    finally:
        await runner.cleanup()
    print(report)
    assert code == 0, report
