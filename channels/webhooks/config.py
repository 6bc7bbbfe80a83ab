"""Typed configuration of the webhook channels, parsed once from ``settings.channels``.

The raw TOML tables ``[[channels.messenger]]``, ``[[channels.chat]]`` and
``[[channels.forms]]`` become frozen dataclasses here; secrets become
:class:`frontdesk.settings.Secret`.  A missing required key fails loudly
at start-up with :class:`frontdesk.settings.ConfigError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from frontdesk.settings import ConfigError, Secret, Settings

DEFAULT_GRAPH_API_BASE = "https://graph.facebook.com/v21.0"
DEFAULT_MAX_SKEW_SECONDS = 300
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")

# Where a form field may land: built-in ticket and contact properties, or a
# custom ticket property ("ticket.custom.<name>").
TICKET_TARGETS = ("name", "description", "priority", "category")
CONTACT_TARGETS = ("email", "first_name", "last_name", "phone", "company")


@dataclass(frozen=True)
class MessengerPage:
    """One Facebook Page connected through one Meta app."""

    page_id: str
    app_secret: Secret
    verify_token: Secret
    page_access_token: Secret
    app_secret_previous: Secret | None = None  # accepted too while rotating
    pipeline: str = "support"
    create_tickets: bool = True
    graph_api_base: str = DEFAULT_GRAPH_API_BASE
    name: str = ""

    @property
    def app_secrets(self) -> tuple[Secret, ...]:
        return tuple(s for s in (self.app_secret, self.app_secret_previous) if s)


@dataclass(frozen=True)
class ChatChannel:
    """A live-chat provider or widget backend posting to ``/webhooks/chat/{slug}``."""

    slug: str
    secret: Secret
    callback_url: str | None = None  # where agent replies are posted
    pipeline: str = "support"
    create_tickets: bool = True
    max_skew_seconds: int = DEFAULT_MAX_SKEW_SECONDS
    name: str = ""


@dataclass(frozen=True)
class RateLimit:
    requests: int
    per_seconds: float


@dataclass(frozen=True)
class FormChannel:
    """A web form posting to ``/webhooks/forms/{slug}``."""

    slug: str
    # form field name -> target ("ticket.name", "contact.email", "ticket.custom.order")
    fields: Mapping[str, str]
    pipeline: str = "support"
    create_tickets: bool = True
    required: tuple[str, ...] = ()  # form field names
    allow_without_email: bool = False
    secret: Secret | None = None  # when set, submissions must be signed like chat
    honeypot_field: str | None = None
    rate_limit: RateLimit | None = None  # per client address
    max_skew_seconds: int = DEFAULT_MAX_SKEW_SECONDS
    name: str = ""

    def field_for(self, target: str) -> str | None:
        for form_field, mapped in self.fields.items():
            if mapped == target:
                return form_field
        return None


@dataclass(frozen=True)
class WebhookConfig:
    messenger: tuple[MessengerPage, ...] = ()
    chat: tuple[ChatChannel, ...] = ()
    forms: tuple[FormChannel, ...] = ()
    max_body_size: int = 1024 * 1024
    # Per request to the Send API or a chat callback; retries are the delivery loop's.
    send_timeout_seconds: float = 10.0
    verify_tokens: tuple[Secret, ...] = field(default=(), repr=False)

    def page(self, page_id: str) -> MessengerPage | None:
        return next((p for p in self.messenger if p.page_id == page_id), None)

    def chat_channel(self, slug: str) -> ChatChannel | None:
        return next((c for c in self.chat if c.slug == slug), None)

    def form(self, slug: str) -> FormChannel | None:
        return next((f for f in self.forms if f.slug == slug), None)


def _required(table: Mapping[str, Any], key: str, where: str) -> Any:
    value = table.get(key)
    if value is None or value == "" or (isinstance(value, Secret) and not value):
        raise ConfigError(f"{where}: missing required key {key!r}")
    return value


def _secret(value: Any) -> Secret | None:
    """Settings already hold secret-named values as Secrets; anything else is wrapped here."""
    if isinstance(value, Secret):
        return value if value else None
    return Secret(str(value)) if value not in (None, "") else None


def _required_secret(table: Mapping[str, Any], key: str, where: str) -> Secret:
    value = _required(table, key, where)
    return value if isinstance(value, Secret) else Secret(str(value))


def _slug(table: Mapping[str, Any], where: str) -> str:
    slug = str(_required(table, "slug", where))
    if not SLUG.match(slug):
        raise ConfigError(f"{where}: slug {slug!r} must be letters, digits, '-' or '_'")
    return slug


def parse_rate_limit(value: Any, where: str) -> RateLimit | None:
    """``10`` (per minute), ``"10/minute"``, ``"100/hour"`` or ``"3/second"``."""
    if value in (None, "", 0):
        return None
    if isinstance(value, int):
        return RateLimit(value, 60.0)
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour)\s*", str(value))
    if not match:
        raise ConfigError(f"{where}: rate_limit must look like '10/minute', got {value!r}")
    return RateLimit(int(match.group(1)), {"second": 1.0, "minute": 60.0, "hour": 3600.0}[match.group(2)])


def _parse_page(table: Mapping[str, Any], index: int) -> MessengerPage:
    where = f"[[channels.messenger]] #{index + 1}"
    return MessengerPage(
        page_id=str(_required(table, "page_id", where)),
        app_secret=_required_secret(table, "app_secret", where),
        app_secret_previous=_secret(table.get("app_secret_previous")),
        verify_token=_required_secret(table, "verify_token", where),
        page_access_token=_required_secret(table, "page_access_token", where),
        pipeline=str(table.get("pipeline", "support")),
        create_tickets=bool(table.get("create_tickets", True)),
        graph_api_base=str(table.get("graph_api_base", DEFAULT_GRAPH_API_BASE)).rstrip("/"),
        name=str(table.get("name", "")),
    )


def _parse_chat(table: Mapping[str, Any], index: int) -> ChatChannel:
    where = f"[[channels.chat]] #{index + 1}"
    return ChatChannel(
        slug=_slug(table, where),
        secret=_required_secret(table, "secret", where),
        callback_url=table.get("callback_url") or None,
        pipeline=str(table.get("pipeline", "support")),
        create_tickets=bool(table.get("create_tickets", True)),
        max_skew_seconds=int(table.get("max_skew_seconds", DEFAULT_MAX_SKEW_SECONDS)),
        name=str(table.get("name", "")),
    )


def _parse_form(table: Mapping[str, Any], index: int) -> FormChannel:
    where = f"[[channels.forms]] #{index + 1}"
    fields = dict(table.get("fields") or {})
    if not fields:
        raise ConfigError(f"{where}: a form needs a [fields] mapping")
    for form_field, target in fields.items():
        kind, _, rest = str(target).partition(".")
        valid = (
            (kind == "ticket" and (rest in TICKET_TARGETS or (
                rest.startswith("custom.") and rest.removeprefix("custom.") not in ("", *TICKET_TARGETS, "subject"))))
            or (kind == "contact" and rest in CONTACT_TARGETS)
        )
        if not valid:
            raise ConfigError(f"{where}: field {form_field!r} maps to unknown target {target!r}")
    required = tuple(str(name) for name in table.get("required") or ())
    for name in required:
        if name not in fields:
            raise ConfigError(f"{where}: required field {name!r} is not in the fields mapping")
    return FormChannel(
        slug=_slug(table, where),
        fields=fields,
        pipeline=str(table.get("pipeline", "support")),
        create_tickets=bool(table.get("create_tickets", True)),
        required=required,
        allow_without_email=bool(table.get("allow_without_email", False)),
        secret=_secret(table.get("secret")),
        honeypot_field=table.get("honeypot_field") or None,
        rate_limit=parse_rate_limit(table.get("rate_limit"), where),
        max_skew_seconds=int(table.get("max_skew_seconds", DEFAULT_MAX_SKEW_SECONDS)),
        name=str(table.get("name", "")),
    )


def _tables(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = raw.get(key) or []
    if isinstance(value, Mapping):  # a single [channels.x] table instead of an array
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"channels.{key} must be an array of tables ([[channels.{key}]])")
    return value


def _unique(keys: list[str], what: str) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ConfigError(f"{what} {key!r} is configured twice")
        seen.add(key)


def parse_webhook_config(settings: Settings) -> WebhookConfig:
    """Read the messenger, chat and forms sections of ``settings.channels``."""
    raw = settings.channels or {}
    pages = tuple(_parse_page(t, i) for i, t in enumerate(_tables(raw, "messenger")))
    chats = tuple(_parse_chat(t, i) for i, t in enumerate(_tables(raw, "chat")))
    forms = tuple(_parse_form(t, i) for i, t in enumerate(_tables(raw, "forms")))
    _unique([p.page_id for p in pages], "Messenger page")
    _unique([c.slug for c in chats], "chat channel")
    _unique([f.slug for f in forms], "form")
    limits = raw.get("webhooks") or {}
    return WebhookConfig(
        messenger=pages,
        chat=chats,
        forms=forms,
        max_body_size=int(limits.get("max_body_size", settings.http.max_body_size)),
        send_timeout_seconds=float(limits.get("send_timeout_seconds", 10.0)),
        verify_tokens=tuple(p.verify_token for p in pages),
    )
