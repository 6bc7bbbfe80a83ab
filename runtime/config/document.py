"""The configuration document: its version and sections, its refusals, and reading and writing it as YAML or TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w
import yaml

FORMAT_VERSION = 1
SECTIONS = ("teams", "users", "properties", "templates", "pipelines", "channels", "sla", "snippets", "views",
            "inboxes")


class ConfigApplyError(ValueError):
    """The file breaks a rule; nothing was changed.  ``code`` names the rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _drop_none(value: Any) -> Any:
    """TOML has no null: leave such keys out; :func:`normalize` puts them back."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def dump_config(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "toml":
        return tomli_w.dumps(_drop_none(doc))
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    raise ConfigApplyError("format_unknown", f"format must be yaml or toml, not {fmt!r}")


def format_for(path: Path) -> str:
    return "toml" if path.suffix.lower() == ".toml" else "yaml"


def load_config(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        doc = tomllib.loads(text) if format_for(path) == "toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigApplyError("file_unreadable", f"{path}: {error}") from None
    if not isinstance(doc, dict):
        raise ConfigApplyError("file_unreadable", f"{path}: the top level must be a mapping")
    return doc
