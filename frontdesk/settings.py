"""Typed configuration, read once at start-up from a TOML file and the environment.

Precedence, lowest first: built-in defaults, the config file, then the
``FRONTDESK_*`` environment variables, which operators running containers
rely on with no file at all.  Secrets are wrapped in :class:`Secret` so they
never reach a log line or a repr.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, unquote


class ConfigError(ValueError):
    """The configuration is missing something or contradicts itself."""


class Secret:
    """A string that refuses to show itself in logs, reprs and tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def parse_listen(value: str, *, what: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 hosts in brackets) into its parts."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{what} must be host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass(frozen=True)
class SupportAddress:
    """A mailbox customers write to, and the pipeline its mail becomes tickets in.

    Only a seed: start-up creates an email channel for each one that has
    none, and from then on the ``channels`` table decides.
    """

    address: str
    pipeline: str = "support"  # internal name of the pipeline
    create_tickets: bool = True


@dataclass(frozen=True)
class ImapMailbox:
    """One IMAP mailbox the poller watches."""

    name: str
    host: str
    port: int
    username: str
    password: Secret
    security: str = "ssl"  # "ssl", "starttls" or "none"
    folder: str = "INBOX"
    move_to: str | None = None  # after commit: move here instead of flagging \\Seen
    poll_interval: float = 60.0
    use_idle: bool = True
    support_address: str | None = None  # which support address this mailbox serves
    verify_tls: bool = True


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_size: int = 25 * 1024 * 1024
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_starttls: bool = False
    hostname: str | None = None


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_size: int = 1024 * 1024


@dataclass(frozen=True)
class SmarthostSettings:
    host: str
    port: int
    username: str | None = None
    password: Secret | None = None
    tls: str = "starttls"  # "starttls", "ssl" or "none"


# A key in the raw webhook channel tables whose name holds one of these words
# is a secret (Messenger app secrets, verify and page tokens, chat and form
# signing secrets).
SECRET_KEY_WORDS = ("secret", "token", "password")


def is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_KEY_WORDS)


# A form's ``fields`` maps the customer's form field names (which may well be
# "token" or "password") to targets: names, not secrets.
_NOT_SECRET_TABLES = ("fields",)


def _hide_channel_secrets(tree: Any) -> Any:
    """The raw channel tables with every secret-named string value wrapped in :class:`Secret`."""
    if isinstance(tree, Mapping):
        return {key: Secret(value) if isinstance(value, str) and is_secret_key(str(key))
                else value if key in _NOT_SECRET_TABLES
                else _hide_channel_secrets(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_hide_channel_secrets(item) for item in tree]
    return tree


def split_database_password(url: str) -> tuple[str, Secret | None]:
    """``driver://user:password@host/db`` -> (``driver://user@host/db``, the password as a Secret).

    A URL without a password comes back unchanged, with None.
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url, None
    user, _, password = userinfo.partition(":")
    return f"{scheme}://{user}@{hostpart}", Secret(unquote(password))


def join_database_password(url: str, password: Secret | None) -> str:
    """The inverse of :func:`split_database_password`; a URL with no user name (SQLite) takes no password."""
    scheme, _, rest = url.partition("://")
    user, at, hostpart = rest.rpartition("@")
    if not password or not at:
        return url
    return f"{scheme}://{user}:{quote(password.reveal(), safe='')}@{hostpart}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    # The database URL without its password, safe to log; the password is
    # ``database_password``.  A URL given with a password is split at
    # construction, so none ever stays in here.
    database_url: str = ""
    database_password: Secret | None = None
    # Apply pending migrations at start-up. Always done on the embedded SQLite
    # database; on PostgreSQL only when asked, since schema changes there are
    # an operator decision (`frontdesk migrate`).
    auto_migrate: bool = False
    secret_key: Secret = field(default_factory=lambda: Secret(""))
    api_token: Secret | None = None
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    support_addresses: tuple[SupportAddress, ...] = ()
    imap_mailboxes: tuple[ImapMailbox, ...] = ()
    # How long a daemon's hold on a mailbox lasts unless renewed (every third
    # of it): the longest another daemon waits to take over from a dead one.
    imap_lease_seconds: float = 15.0
    smarthost: SmarthostSettings | None = None
    from_address: str = ""
    kafka_bootstrap: str | None = None
    # The cap on ticket pipelines (the reference product caps them per plan).
    max_pipelines: int = 20
    # The cap on custom views (all users together; the reference product caps them per plan).
    max_custom_views: int = 100
    log_level: str = "INFO"
    log_format: str = "json"  # "json" or "console"
    # Processes that parse mail for the email pipeline, started with the
    # daemon (ingest.parse_pool); None: one per core; 0: parse in-process.
    parse_workers: int | None = None
    # Channel sections owned by the webhook channels (messenger, chat, forms)
    # are kept raw here and parsed by the channel that owns them.
    # Their secret-named values are held as Secrets (see ``is_secret_key``).
    channels: Mapping[str, Any] = field(default_factory=dict)
    used_defaults: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Also on dataclasses.replace(), so a secret can never be put back in plain.
        url, password = split_database_password(self.database_url)
        if password is not None:
            object.__setattr__(self, "database_url", url)
            object.__setattr__(self, "database_password", password)
        object.__setattr__(self, "channels", _hide_channel_secrets(self.channels))

    def reveal_database_url(self) -> str:
        """The database URL with its password: for the engine only, never for a log line."""
        return join_database_password(self.database_url, self.database_password)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def embedded(self) -> bool:
        """No Kafka configured: automation runs in-process."""
        return not self.kafka_bootstrap

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


EXAMPLE_SUPPORT_ADDRESS = "support@example.test"


def _flag(env_value: str | None, file_value: object) -> bool:
    if env_value is not None and env_value != "":
        return env_value.strip().lower() in ("1", "true", "yes", "on")
    return bool(file_value)


def _split_addresses(value: str) -> tuple[SupportAddress, ...]:
    return tuple(
        SupportAddress(address=part.strip().lower())
        for part in value.split(",")
        if part.strip()
    )


def _secret_key(data_dir: Path, configured: str | None) -> Secret:
    """The HMAC key for reply tokens; generated once and kept in the data dir.

    Rotating it would orphan every reply token already sent, so a generated
    key is persisted rather than made anew at each start.
    """
    if configured:
        return Secret(configured)
    path = data_dir / "secret_key"
    if path.exists():
        return Secret(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return Secret(key)


def _imap_mailbox(raw: Mapping[str, Any]) -> ImapMailbox:
    try:
        security = raw.get("security", "ssl")
        return ImapMailbox(
            name=raw["name"],
            host=raw["host"],
            port=int(raw.get("port", 993 if security == "ssl" else 143)),
            username=raw["username"],
            password=Secret(raw["password"]),
            security=security,
            folder=raw.get("folder", "INBOX"),
            move_to=raw.get("move_to"),
            poll_interval=float(raw.get("poll_interval", 60)),
            use_idle=bool(raw.get("idle", True)),
            support_address=(raw.get("support_address") or None),
            verify_tls=bool(raw.get("verify_tls", True)),
        )
    except KeyError as missing:
        raise ConfigError(f"imap mailbox needs {missing}") from None


def _lease_seconds(value: Any) -> float:
    if value is None or value == "":
        return Settings.imap_lease_seconds
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"imap lease_seconds must be a number, not {value!r}") from None
    if not 1 <= seconds <= 3600:
        raise ConfigError("imap lease_seconds must be between 1 and 3600")
    return seconds


def _parse_workers(value: str | None) -> int | None:
    """``FRONTDESK_PARSE_WORKERS``: a whole number of processes, 0 or more; unset means one per core."""
    if value is None or value.strip() == "":
        return None
    try:
        workers = int(value.strip())
    except ValueError:
        raise ConfigError(f"FRONTDESK_PARSE_WORKERS must be a whole number of processes, not {value!r}") from None
    if workers < 0:
        raise ConfigError(f"FRONTDESK_PARSE_WORKERS must be 0 or more, not {workers}")
    return workers


def load_settings(
    path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` from an optional TOML file and the environment."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc

    defaults_used: list[str] = []
    data_dir = Path(env.get("FRONTDESK_DATA_DIR") or raw.get("data_dir") or "var")
    database_url = env.get("FRONTDESK_DATABASE_URL") or raw.get("database", {}).get("url")
    if not database_url:
        database_url = f"sqlite+aiosqlite:///{(data_dir / 'frontdesk.db').resolve()}"
        defaults_used.append("database")

    smtp_raw = raw.get("smtp", {})
    smtp_host, smtp_port = parse_listen(
        env.get("FRONTDESK_SMTP_LISTEN") or smtp_raw.get("listen", "127.0.0.1:2525"),
        what="smtp listen",
    )
    smtp = SmtpSettings(
        host=smtp_host,
        port=smtp_port,
        max_message_size=int(smtp_raw.get("max_message_size", SmtpSettings.max_message_size)),
        tls_cert=Path(smtp_raw["tls_cert"]) if smtp_raw.get("tls_cert") else None,
        tls_key=Path(smtp_raw["tls_key"]) if smtp_raw.get("tls_key") else None,
        require_starttls=bool(smtp_raw.get("require_starttls", False)),
        hostname=smtp_raw.get("hostname"),
    )
    if bool(smtp.tls_cert) != bool(smtp.tls_key):
        raise ConfigError("smtp.tls_cert and smtp.tls_key go together")

    http_raw = raw.get("http", {})
    http_host, http_port = parse_listen(
        env.get("FRONTDESK_HTTP_LISTEN") or http_raw.get("listen", "127.0.0.1:8080"),
        what="http listen",
    )
    http = HttpSettings(
        host=http_host,
        port=http_port,
        max_body_size=int(http_raw.get("max_body_size", HttpSettings.max_body_size)),
    )

    if env.get("FRONTDESK_SUPPORT_ADDRESSES"):
        addresses = _split_addresses(env["FRONTDESK_SUPPORT_ADDRESSES"])
    elif raw.get("support_addresses"):
        addresses = tuple(
            SupportAddress(
                address=entry["address"].strip().lower(),
                pipeline=entry.get("pipeline", "support"),
                create_tickets=bool(entry.get("create_tickets", True)),
            )
            for entry in raw["support_addresses"]
        )
    else:
        addresses = (SupportAddress(EXAMPLE_SUPPORT_ADDRESS),)
        defaults_used.append("support_addresses")

    token = env.get("FRONTDESK_API_TOKEN") or raw.get("api", {}).get("token")

    smarthost = None
    outbound_raw = raw.get("outbound", {})
    smarthost_value = env.get("FRONTDESK_SMARTHOST") or outbound_raw.get("smarthost")
    if smarthost_value:
        sh_host, sh_port = parse_listen(smarthost_value, what="smarthost")
        password = env.get("FRONTDESK_SMARTHOST_PASSWORD") or outbound_raw.get("password")
        smarthost = SmarthostSettings(
            host=sh_host,
            port=sh_port,
            username=env.get("FRONTDESK_SMARTHOST_USER") or outbound_raw.get("username"),
            password=Secret(password) if password else None,
            tls=(env.get("FRONTDESK_SMARTHOST_TLS") or outbound_raw.get("tls") or "starttls").lower(),
        )
        if smarthost.tls not in ("starttls", "ssl", "none"):
            raise ConfigError("smarthost tls must be starttls, ssl or none")

    from_address = (
        env.get("FRONTDESK_FROM_ADDRESS") or outbound_raw.get("from_address") or addresses[0].address
    )

    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auto_migrate=_flag(env.get("FRONTDESK_AUTO_MIGRATE"), raw.get("database", {}).get("auto_migrate", False)),
        secret_key=_secret_key(data_dir, env.get("FRONTDESK_SECRET_KEY") or raw.get("secret_key")),
        api_token=Secret(token) if token else None,
        smtp=smtp,
        http=http,
        support_addresses=addresses,
        imap_mailboxes=tuple(_imap_mailbox(m) for m in raw.get("imap", {}).get("mailboxes", [])),
        imap_lease_seconds=_lease_seconds(env.get("FRONTDESK_IMAP_LEASE_SECONDS")
                                          or raw.get("imap", {}).get("lease_seconds")),
        smarthost=smarthost,
        from_address=from_address,
        kafka_bootstrap=env.get("FRONTDESK_KAFKA_BOOTSTRAP") or raw.get("kafka", {}).get("bootstrap"),
        max_pipelines=int(env.get("FRONTDESK_MAX_PIPELINES") or raw.get("api", {}).get("max_pipelines") or 20),
        max_custom_views=int(env.get("FRONTDESK_MAX_CUSTOM_VIEWS") or raw.get("api", {}).get("max_custom_views")
                             or 100),
        log_level=(env.get("FRONTDESK_LOG_LEVEL") or raw.get("log", {}).get("level") or "INFO").upper(),
        log_format=env.get("FRONTDESK_LOG_FORMAT") or raw.get("log", {}).get("format") or "json",
        parse_workers=_parse_workers(env.get("FRONTDESK_PARSE_WORKERS")),
        channels=raw.get("channels", {}),
        used_defaults=tuple(defaults_used),
    )
