"""Send messages to the configured smarthost with aiosmtplib, one-shot or over reused connections.

The SMTP reply decides what happens next: 4xx, timeouts and refused
connections are temporary (the delivery loop retries with backoff), 5xx is
permanent.  A refused login is treated as temporary: it is a configuration
problem an operator fixes, and the queued mail should survive it.

A delivery loop keeps a :class:`SmarthostConnections`: per smarthost, up to
``size`` SMTP sessions at once, each reused for the next message instead of
a connect, EHLO, STARTTLS and login per message.  A session that failed is
closed, never reused; one that sat idle is checked with NOOP before it is
trusted with a message, so a session the server dropped meanwhile costs a
reconnect, never a message sent twice.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import aiosmtplib

from frontdesk.settings import SmarthostSettings
from frontdesk.outbound.dispatch import PermanentDeliveryError, TemporaryDeliveryError

TIMEOUT = 30.0


def _classify(code: int, detail: str) -> Exception:
    if 500 <= code < 600:
        return PermanentDeliveryError(f"smarthost refused: {code} {detail}")
    return TemporaryDeliveryError(f"smarthost deferred: {code} {detail}")


@contextmanager
def _delivery_errors() -> Iterator[None]:
    """aiosmtplib's errors as the delivery loop's temporary / permanent ones."""
    try:
        yield
    except aiosmtplib.SMTPAuthenticationError as error:
        raise TemporaryDeliveryError(f"smarthost login refused: {error.code} {error.message}") from error
    except aiosmtplib.SMTPRecipientsRefused as error:
        # Every recipient was refused; permanent only if every refusal was.
        codes = [r.code for r in error.recipients]
        worst = max(codes) if all(c >= 500 for c in codes) else min(codes)
        raise _classify(worst, "; ".join(f"{r.recipient}: {r.message}" for r in error.recipients)) from error
    except aiosmtplib.SMTPResponseException as error:
        raise _classify(error.code, error.message) from error
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise TemporaryDeliveryError(f"smarthost unreachable: {error!r}") from error


def _options(config: SmarthostSettings, timeout: float) -> dict:
    return dict(
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password.reveal() if config.password else None,
        use_tls=config.tls == "ssl",
        start_tls=True if config.tls == "starttls" else False,
        timeout=timeout,
    )


async def send_via_smarthost(config: SmarthostSettings, *, sender: str, recipients: list[str],
                             raw: bytes, timeout: float = TIMEOUT) -> str:
    """Hand ``raw`` to the smarthost on a connection of its own; return its final reply text."""
    with _delivery_errors():
        _, reply = await aiosmtplib.send(raw, sender=sender, recipients=recipients, **_options(config, timeout))
    return reply


@dataclass
class _Pool:
    slots: asyncio.Semaphore
    idle: list[tuple[aiosmtplib.SMTP, float]] = field(default_factory=list)  # (session, idle since), LIFO


class SmarthostConnections:
    """Open SMTP sessions per smarthost, reused from one message to the next; ``close()`` ends them."""

    def __init__(self, size: int = 4, *, trust_idle: float = 2.0) -> None:
        self.size = size
        self.trust_idle = trust_idle  # an idle session older than this is checked (NOOP) before use
        self._pools: dict[tuple, _Pool] = {}
        self.opened = 0  # sessions opened so far (a gauge of reuse)

    async def send(self, config: SmarthostSettings, *, sender: str, recipients: list[str], raw: bytes,
                   timeout: float = TIMEOUT) -> str:
        """Hand ``raw`` to the smarthost on a pooled session; return its final reply text."""
        key = (config.host, config.port, config.username, config.tls)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(asyncio.Semaphore(self.size))
        async with pool.slots:
            with _delivery_errors():
                client = await self._checkout(pool, config, timeout)
                try:
                    _, reply = await client.sendmail(sender, recipients, raw, timeout=timeout)
                except BaseException:
                    client.close()  # its state is unknown: never reuse it
                    raise
                pool.idle.append((client, time.monotonic()))
                return reply

    async def _checkout(self, pool: _Pool, config: SmarthostSettings, timeout: float) -> aiosmtplib.SMTP:
        while pool.idle:
            client, since = pool.idle.pop()
            if not client.is_connected:
                continue
            if time.monotonic() - since <= self.trust_idle:
                return client
            try:
                await client.noop(timeout=timeout)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
                continue
            return client
        client = aiosmtplib.SMTP(**_options(config, timeout))
        await client.connect()
        self.opened += 1
        return client

    async def close(self) -> None:
        """QUIT every idle session (the busy ones are closed by their senders)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            for client, _ in pool.idle:
                try:
                    await client.quit(timeout=5.0)
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()
