"""The real test servers from deploy/: skip a test when one is not running, unless servers are required.

On a laptop a missing server skips its tests (with the reason, shown by
``pytest -rs``).  Where the servers must be there (``CI=true``, or
``FRONTDESK_REQUIRE_SERVERS=1`` as ``deploy/test.sh`` sets), a missing one
fails the run instead of silently testing less.
"""

from __future__ import annotations

import os

import pytest


def servers_required() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1") or os.environ.get("FRONTDESK_REQUIRE_SERVERS") == "1"


def server_address(variable: str, start_with: str) -> str:
    """The value of ``variable`` (set by ``start_with``); skips, or fails when servers are required."""
    value = os.environ.get(variable)
    if not value:
        reason = f"{variable} is not set: run {start_with}"
        if servers_required():
            pytest.fail(f"{reason} (a missing test server is an error with CI or FRONTDESK_REQUIRE_SERVERS=1)")
        pytest.skip(reason)
    return value
