"""Run ``frontdesk`` as a real subprocess for the runtime tests, and read what it logged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

STARTUP_DEADLINE = 60.0  # seconds; a loaded CI machine may be slow to import everything
PROCESSING_DEADLINE = 60.0  # seconds for the intake processor to drain what a test sent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def frontdesk(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one ``frontdesk`` subcommand to completion."""
    return subprocess.run([sys.executable, "-m", "frontdesk.runtime.cli", *args], env=dict(env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """``pid`` runs (exists and is not a zombie)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def descendants(pid: int) -> list[int]:
    """The live processes ``pid`` started, and theirs (a parse pool's forkserver and workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        if alive(current):
            found.append(current)
        todo.extend(children.get(current, []))
    return found


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRONTDESK_")}
    # No parse pool unless a test asks for one: a forkserver per daemon costs start-up time.
    env.update({"FRONTDESK_DATA_DIR": str(tmp_path / "var"), "FRONTDESK_PARSE_WORKERS": "0"}, **extra)
    return env


@dataclass
class DaemonProcess:
    """``frontdesk run`` in the background, its stderr captured to a file."""

    cwd: Path
    env: dict[str, str]
    http_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.cwd / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        env = dict(self.env, FRONTDESK_HTTP_LISTEN=f"127.0.0.1:{self.http_port}",
                   FRONTDESK_SMTP_LISTEN=f"127.0.0.1:{self.smtp_port}")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "frontdesk.runtime.cli", "run"], env=env, cwd=self.cwd,
                                            stdout=log, stderr=subprocess.STDOUT)

    def wait_until_healthy(self) -> None:
        """Poll /healthz until it answers, or fail with the log when the process dies or takes too long."""
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"frontdesk run exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"frontdesk run did not become healthy:\n{self.log_text()}")

    @property
    def database_url(self) -> str:
        """The daemon's database: the configured one, else the zero-config SQLite file under its data dir."""
        return self.env.get("FRONTDESK_DATABASE_URL") or \
            f"sqlite+aiosqlite:///{Path(self.env['FRONTDESK_DATA_DIR']).resolve() / 'frontdesk.db'}"

    def intake_states(self) -> dict[str, int]:
        """How many email intake rows are in each state, read straight from the daemon's database."""
        from sqlalchemy import text

        from frontdesk.storage.database import create_engine

        async def count() -> dict[str, int]:
            engine = create_engine(self.database_url)
            try:
                async with engine.connect() as connection:
                    rows = await connection.execute(text(
                        "SELECT state, count(*) FROM inbound_payloads WHERE channel = 'email' GROUP BY state"))
                    return {state: number for state, number in rows}
            finally:
                await engine.dispose()

        return asyncio.run(count())

    def wait_until_intake_processed(self) -> dict[str, int]:
        """Wait until no email intake row is pending (everything accepted was processed); the states."""
        assert self.process is not None
        deadline = time.monotonic() + PROCESSING_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"frontdesk run exited with {self.process.returncode}:\n{self.log_text()}")
            states = self.intake_states()
            if not states.get("pending"):
                return states
            time.sleep(0.1)
        raise AssertionError(f"intake rows still pending: {self.intake_states()}\n{self.log_text()[-4000:]}")

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STARTUP_DEADLINE)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines (anything else a library printed is skipped)."""
        parsed = []
        for line in self.log_text().splitlines():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return parsed

    def get_json(self, path: str, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
