"""Every secret the settings can hold stays out of ``repr(settings)``, ``str(settings)`` and the daemon's log.

Each secret gets a recognisable value; none may appear.  The daemon really
starts on PostgreSQL with the database password in its URL (the test
cluster trusts local connections, so any password logs in).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy.engine import make_url

from daemon_process import DaemonProcess, base_env
from frontdesk.channels.webhooks.config import parse_webhook_config
from frontdesk.settings import Settings, load_settings

SECRETS = {
    "database password": "dbpass-SEKRIT-1a2b",
    "reply-token key": "replykey-SEKRIT-3c4d",
    "operator API token": "apitoken-SEKRIT-5e6f",
    "IMAP password": "imappass-SEKRIT-7a8b",
    "smarthost password": "smtppass-SEKRIT-9c0d",
    "Messenger app secret": "appsecret-SEKRIT-1e2f",
    "Messenger previous app secret": "oldappsecret-SEKRIT-3a4b",
    "Messenger verify token": "verifytoken-SEKRIT-5c6d",
    "Messenger page access token": "pagetoken-SEKRIT-7e8f",
    "chat signing secret": "chatsecret-SEKRIT-9a0b",
    "form signing secret": "formsecret-SEKRIT-1c2d",
}


def config_with_every_secret(directory: Path) -> Path:
    s = SECRETS
    config = directory / "frontdesk.toml"
    config.write_text(f'''
secret_key = "{s["reply-token key"]}"

[api]
token = "{s["operator API token"]}"

[outbound]
smarthost = "127.0.0.1:9"
username = "relay"
password = "{s["smarthost password"]}"

[[imap.mailboxes]]
name = "helpdesk"
host = "127.0.0.1"
port = 9
security = "none"
username = "helpdesk"
password = "{s["IMAP password"]}"
poll_interval = 3600

[[channels.messenger]]
page_id = "123456789012345"
app_secret = "{s["Messenger app secret"]}"
app_secret_previous = "{s["Messenger previous app secret"]}"
verify_token = "{s["Messenger verify token"]}"
page_access_token = "{s["Messenger page access token"]}"

[[channels.chat]]
slug = "website-chat"
secret = "{s["chat signing secret"]}"

[[channels.forms]]
slug = "contact"
secret = "{s["form signing secret"]}"
[channels.forms.fields]
subject = "ticket.name"
email = "contact.email"
token = "ticket.description"
''')
    return config


def with_database_password(url: str) -> str:
    return make_url(url).set(password=SECRETS["database password"]).render_as_string(hide_password=False)


def leaked(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_no_secret_shows_in_the_settings_repr_or_str(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = with_database_password("postgresql+asyncpg://frontdesk@db.internal/frontdesk")
    settings = load_settings(config_with_every_secret(tmp_path), environ={
        "FRONTDESK_DATA_DIR": str(tmp_path / "var"), "FRONTDESK_DATABASE_URL": url})
    assert leaked(repr(settings)) == [] and leaked(str(settings)) == []
    assert leaked(repr(parse_webhook_config(settings))) == []
    # Put back by replace() (as tests and tools do), the password is split off again.
    assert leaked(repr(replace(settings, database_url=url))) == []

    # Still there for the point of use.
    assert settings.reveal_database_url() == url
    assert settings.database_url == "postgresql+asyncpg://frontdesk@db.internal/frontdesk"
    webhooks = parse_webhook_config(settings)
    assert webhooks.messenger[0].app_secret.reveal() == SECRETS["Messenger app secret"]
    assert webhooks.chat[0].secret.reveal() == SECRETS["chat signing secret"]
    assert webhooks.forms[0].fields["token"] == "ticket.description"  # a form field name is no secret
    assert settings.imap_mailboxes[0].password.reveal() == SECRETS["IMAP password"]


def test_a_settings_object_built_directly_hides_its_secrets_too() -> None:
    settings = Settings(database_url=with_database_password("postgresql+asyncpg://fd@db/fd"),
                        channels={"chat": [{"slug": "x", "secret": SECRETS["chat signing secret"]}]})
    assert leaked(repr(settings)) == []
    assert parse_webhook_config(settings).chat[0].secret.reveal() == SECRETS["chat signing secret"]


def test_the_daemon_logs_no_secret_while_it_starts_and_stops(tmp_path, empty_postgres) -> None:  # type: ignore[no-untyped-def]
    env = base_env(
        tmp_path,
        FRONTDESK_CONFIG=str(config_with_every_secret(tmp_path)),
        FRONTDESK_DATABASE_URL=with_database_password(empty_postgres),
        FRONTDESK_AUTO_MIGRATE="true",
        FRONTDESK_LOG_LEVEL="DEBUG",
    )
    daemon = DaemonProcess(cwd=tmp_path, env=env)
    daemon.start()
    try:
        daemon.wait_until_healthy()
        status, _ = daemon.get_json("/api/v1/tickets", token=SECRETS["operator API token"])
        assert status == 200  # the secrets work where they are used
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
    names = [event["event"] for event in daemon.events()]
    assert "frontdesk.starting" in names and "frontdesk.ready" in names
    assert leaked(daemon.log_text()) == []
