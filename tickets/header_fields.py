"""Values that end up in an outbound mail header: one rule for every path that can put text there.

A ticket name becomes the subject of every mail about the ticket, a
contact's email and names its recipient, a reply's subject and cc their
headers.  A line break (or any other control character) in such a value
could add a header of its own or make the mail unsendable, so values given
by a person (the API, the config CLI, forms) are refused with a
:class:`~frontdesk.tickets.errors.DomainError` naming the field, and values
that arrived from outside and are stored as they came (a customer's encoded
Subject) are flattened with :func:`flatten` before they are reused.
"""

from __future__ import annotations

import re
from email.utils import parseaddr

from frontdesk.tickets.errors import DomainError

# C0 controls (tab included: it folds headers), DEL, C1 controls and the Unicode line separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def header_text(value: str, field: str) -> str:
    """``value`` unchanged, or DomainError ``header_injection`` naming ``field`` when it holds a control character."""
    if _CONTROL.search(value):
        raise DomainError("header_injection", f"'{field}' must be one line without control characters",
                          field=field)
    return value


def email_address(value: str, field: str, *, display_name: bool = False) -> str:
    """The address (``local@domain``) in ``value``, fit for a header, or DomainError naming ``field``.

    Only a bare address is taken, unless ``display_name`` allows ``Name <local@domain>``.
    """
    header_text(value, field)
    display, address = parseaddr(value)
    bare = not display and address == value.strip()
    if ((not bare and not display_name) or address.count("@") != 1 or " " in address
            or not all(address.split("@"))):
        raise DomainError("email_invalid", f"'{field}' must be an email address", field=field)
    return address


def flatten(value: str | None) -> str:
    """Stored text for reuse in a header: every run of control characters and spaces becomes one space."""
    if not value:
        return ""
    return " ".join(_CONTROL.sub(" ", value).split())
