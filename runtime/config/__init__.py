"""Declarative configuration (``frontdesk config``): export everything an admin sets up to one YAML or TOML file, and apply it back.

Things are named by stable names (pipeline and status internal names,
emails, team names, template keys, property names), never database ids, so
a file moves between installations.  Secrets and API tokens are never
exported.  ``apply`` is idempotent: it compares the file with what is there,
shows the difference, and changes only that, in one transaction that also
runs every invariant of the admin API (a pipeline keeps an open and a closed
status, statuses and pipelines holding tickets are not deleted, stage
properties are settable, the pipeline cap); any broken rule refuses the
whole file.

The same file applied twice changes nothing the second time.
"""

from frontdesk.runtime.config.apply import ApplyResult, apply_config, render_diff
from frontdesk.runtime.config.document import ConfigApplyError, dump_config, format_for, load_config
from frontdesk.runtime.config.export import export_config
from frontdesk.runtime.config.normalize import normalize

__all__ = ["ApplyResult", "ConfigApplyError", "apply_config", "dump_config", "export_config", "format_for",
           "load_config", "normalize", "render_diff"]
