"""Make a message's HTML safe to show: the one sanitizer the API serves ``message.html`` through.

Stored HTML stays as received (the raw source stays downloadable); it is
cleaned here, at serving time, so a better rule applies to old mail too.
The cleaning is ammonia's (through ``nh3``), an allow list over an HTML5
parse: whatever a browser would parse as script, an event handler, a frame,
a form, a ``<style>``, ``<link>``, ``<meta>`` or ``<base>`` is gone, and so
are URLs with any scheme not listed below (``javascript:`` and
``vbscript:`` however they are spelled with entities or whitespace, because
ammonia decides on the parsed value).

On top of that:

- ``cid:`` images (RFC 2392) point at the message's own attachments'
  download URLs, so inline images keep working; a ``cid:`` with no such
  attachment is dropped.
- ``data:`` URLs are allowed only as an ``<img src>`` of a raster type (PNG,
  GIF, JPEG, WebP): an image decoder runs them, never a script engine.
  ``data:image/svg+xml`` (SVG can carry script) and every other ``data:``
  URL are dropped.
- Relative URLs are dropped: in a customer's mail they can only aim at our
  own origin.
- ``style`` attributes keep a list of layout and colour properties, and
  lose the whole attribute when a value holds a function other than
  ``rgb()`` / ``rgba()`` (``url()``, ``expression()``), a CSS escape, or an
  ``@import``.
- Links get ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

import nh3

TAGS = nh3.ALLOWED_TAGS | {"font"}
ATTRIBUTES = {
    tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()
} | {"*": {"style", "title", "lang", "dir"}, "font": {"color", "face", "size"}}
for _tag in ("table", "td", "th", "tr", "tbody", "thead", "tfoot"):
    ATTRIBUTES.setdefault(_tag, set()).update({"width", "height", "bgcolor", "valign", "border",
                                               "cellpadding", "cellspacing"})
URL_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}
STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "text-align", "text-decoration", "text-indent", "line-height", "letter-spacing", "white-space",
    "vertical-align", "width", "height", "max-width", "min-width", "margin", "margin-top", "margin-right",
    "margin-bottom", "margin-left", "padding", "padding-top", "padding-right", "padding-bottom",
    "padding-left", "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-collapse", "border-spacing", "list-style-type", "display",
}
# script and style are removed with their content (nh3's default); so are
# the elements whose text is never meant to be read.
CONTENT_REMOVED = {"script", "style", "title", "noscript", "template", "iframe", "object", "embed",
                   "applet", "frameset", "frame", "svg", "math", "select", "textarea"}

_RASTER_DATA_URL = re.compile(r"data:image/(?:png|gif|jpeg|jpg|webp)(?:;[a-z0-9=._-]+)*,", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_ALLOWED_CSS_FUNCTIONS = re.compile(r"\brgba?\([0-9.,%\s]*\)", re.IGNORECASE)
_UNSAFE_CSS = re.compile(r"[()\\]|@import|javascript:|expression", re.IGNORECASE)


def attachment_urls(attachments: list[tuple[str | None, str | None]]) -> dict[str, str]:
    """``{content_id: download_url}`` from ``(content_id, download_url)`` pairs, for :func:`safe_html`."""
    return {content_id.lower(): url for content_id, url in attachments if content_id and url}


def safe_html(html: str | None, cid_urls: Mapping[str, str] | None = None) -> str | None:
    """``html`` with everything active removed; ``cid:`` images rewritten through ``cid_urls``.

    ``cid_urls`` maps a Content-ID (without angle brackets, lower-cased) to
    the attachment's download URL.
    """
    if html is None:
        return None
    urls = cid_urls or {}

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "style":
            return value if not _UNSAFE_CSS.search(_ALLOWED_CSS_FUNCTIONS.sub("", value)) else None
        if attribute not in ("href", "src", "cite"):
            return value
        url = value.strip()
        if url[:4].lower() == "cid:":
            return urls.get(unquote(url[4:]).strip("<>").lower())
        if url[:5].lower() == "data:":
            return value if tag == "img" and attribute == "src" and _RASTER_DATA_URL.match(url) else None
        return value if _SCHEME.match(url) else None

    return nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags=CONTENT_REMOVED,
        attributes=ATTRIBUTES,
        attribute_filter=keep,
        url_schemes=URL_SCHEMES,
        filter_style_properties=STYLE_PROPERTIES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
