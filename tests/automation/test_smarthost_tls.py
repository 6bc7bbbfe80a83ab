"""The smarthost client against a real aiosmtpd server requiring STARTTLS and a login."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from frontdesk.settings import Secret, SmarthostSettings
from frontdesk.outbound.email.smarthost import send_via_smarthost

RAW = b"From: support@acme.test\r\nTo: ada@example.com\r\nSubject: hi\r\nMessage-ID: <x@acme.test>\r\n\r\nhello\r\n"


def certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


class Recorder:
    def __init__(self) -> None:
        self.logins: list[bytes] = []
        self.tls_seen: list[bool] = []

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret"
        if ok:
            self.logins.append(auth_data.login)
        return AuthResult(success=ok)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.tls_seen.append(session.ssl is not None)
        return "250 2.0.0 queued as tls-test"


@pytest.fixture
async def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    cert, key = certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our throwaway CA
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    recorder = Recorder()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(recorder, hostname="smarthost.test", tls_context=context, require_starttls=True,
                     auth_required=True, authenticator=recorder.authenticate),
        "127.0.0.1", 0)
    try:
        yield recorder, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_starttls_and_login(tls_server) -> None:  # type: ignore[no-untyped-def]
    recorder, port = tls_server
    config = SmarthostSettings("127.0.0.1", port, username="frontdesk", password=Secret("s3cret"), tls="starttls")
    reply = await send_via_smarthost(config, sender="support@acme.test", recipients=["ada@example.com"], raw=RAW)
    assert "queued as tls-test" in reply
    assert recorder.logins == [b"frontdesk"] and recorder.tls_seen == [True]

