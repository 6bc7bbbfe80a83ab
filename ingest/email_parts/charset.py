"""Turn bytes in a declared (possibly wrong or unknown) charset into text without mojibake.

Mail in the wild declares charsets Python does not know (``X-UNKNOWN``,
``iso-gb2312``), declares ones that are too narrow for what was sent
(``gb2312`` text using GBK characters, ``iso-2022-jp`` with Microsoft's
extensions), or lies outright (UTF-8 bytes labelled ``iso-8859-1``).  We try
the declared charset's best superset first, strictly; when that fails we ask
charset-normalizer, and only as a last resort decode with replacement
characters, always recording a defect saying what happened.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from charset_normalizer import from_bytes

# Microsoft's reading of ISO-2022-JP (its "cp50220" family): JIS X 0208 plus
# the NEC and IBM rows of cp932 (circled digits, "No." sign, roman numerals),
# which Python's iso2022 codecs reject.  Outlook sends these routinely.
ISO2022JP_CP932 = "iso2022_jp_cp932"
_ISO2022JP_FAMILY = ("iso2022_jp_ext", ISO2022JP_CP932, "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3")
_ESCAPES = {b"(B": "ascii", b"(J": "ascii", b"$@": "jis0208", b"$B": "jis0208", b"(I": "kana"}

# Declared label -> codecs to try, strict, in order.  Supersets first: mail
# clients routinely label GBK/GB18030 text "gb2312", cp932 text "shift_jis",
# and cp1252 text "iso-8859-1" (the WHATWG encoding standard does the same).
_SUPERSETS: dict[str, tuple[str, ...]] = {
    "gb2312": ("gb18030",),
    "iso-gb2312": ("gb18030",),
    "gb_2312-80": ("gb18030",),
    "csgb2312": ("gb18030",),
    "euc-cn": ("gb18030",),
    "x-euc-cn": ("gb18030",),
    "gbk": ("gb18030",),
    "x-gbk": ("gb18030",),
    "cp936": ("gb18030",),
    "big5": ("big5hkscs", "cp950"),
    "x-big5": ("big5hkscs", "cp950"),
    "iso-2022-jp": _ISO2022JP_FAMILY,
    "csiso2022jp": _ISO2022JP_FAMILY,
    "cp50220": (ISO2022JP_CP932,),
    "cp50221": (ISO2022JP_CP932,),
    "cp50222": (ISO2022JP_CP932,),
    "iso-2022-jp-1": ("iso2022_jp_1", *_ISO2022JP_FAMILY),
    "iso-2022-jp-2": ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_2004"),
    "iso-2022-jp-3": ("iso2022_jp_3", "iso2022_jp_2004"),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "shift-jis": ("cp932", "shift_jis_2004"),
    "sjis": ("cp932", "shift_jis_2004"),
    "x-sjis": ("cp932", "shift_jis_2004"),
    "ms_kanji": ("cp932",),
    "windows-31j": ("cp932",),
    "euc-jp": ("euc_jp", "euc_jis_2004", "cp932"),
    "x-euc-jp": ("euc_jp", "euc_jis_2004"),
    "euc-kr": ("cp949",),
    "ks_c_5601-1987": ("cp949",),
    "ks_c_5601": ("cp949",),
    "korean": ("cp949",),
    "iso-2022-kr": ("iso2022_kr", "cp949"),
    "iso-8859-1": ("cp1252", "latin-1"),
    "latin1": ("cp1252", "latin-1"),
    "iso8859-1": ("cp1252", "latin-1"),
    "iso-8859-9": ("cp1254", "iso8859_9"),
    "iso-8859-11": ("cp874", "iso8859_11"),
    "tis-620": ("cp874",),
    "windows-874": ("cp874",),
    "x-mac-cyrillic": ("mac_cyrillic",),
    "x-mac-roman": ("mac_roman",),
    "macintosh": ("mac_roman",),
    "x-mac-ce": ("mac_latin2",),
    "unicode-1-1-utf-7": ("utf-7",),
    "utf8": ("utf-8",),
    "utf-8": ("utf-8",),
    "ansi_x3.4-1968": ("ascii",),
}

# Labels that say nothing about the bytes.
_UNKNOWN = {"", "x-unknown", "unknown", "unknown-8bit", "x-user-defined", "default", "charset", "none"}

# Single-byte charsets accept any byte sequence, so they never fail strictly;
# when such a label sits on bytes that are valid UTF-8 with multi-byte
# sequences, the label is almost certainly wrong.
_SINGLE_BYTE = re.compile(r"^(?:cp125\d|cp874|cp8\d\d|cp437|latin[-_]?1|iso[-_]?8859[-_]\d+|mac[-_]\w+|koi8[-_]\w+|ascii)$")

_NON_ASCII = re.compile(rb"[\x80-\xff]")

def _iso2022jp_via_cp932(data: bytes) -> str:
    """Decode ISO-2022-JP by re-encoding each JIS X 0208 pair as Shift_JIS and reading it as cp932."""
    out = bytearray()
    mode = "ascii"
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x1B:
            mode_name = _ESCAPES.get(data[i + 1 : i + 3])
            if mode_name is None:
                raise UnicodeDecodeError(ISO2022JP_CP932, data, i, i + 1, "unsupported escape")
            mode = mode_name
            i += 3
        elif byte in (0x0E, 0x0F):  # SO / SI: half-width katakana shift
            mode = "kana" if byte == 0x0E else "ascii"
            i += 1
        elif byte in (0x0A, 0x0D):
            out.append(byte)
            i += 1
        elif mode == "jis0208" and 0x21 <= byte <= 0x7E and i + 1 < len(data) and 0x21 <= data[i + 1] <= 0x7E:
            j1, j2 = byte, data[i + 1]
            s1 = ((j1 - 0x21) >> 1) + 0x81
            if s1 > 0x9F:
                s1 += 0x40
            if j1 & 1:
                s2 = j2 + 0x1F + (1 if j2 >= 0x60 else 0)
            else:
                s2 = j2 + 0x7E
            out += bytes((s1, s2))
            i += 2
        elif mode == "kana" and 0x21 <= byte <= 0x5F:
            out.append(byte + 0x80)
            i += 1
        elif byte < 0x80:
            out.append(byte)
            i += 1
        else:
            raise UnicodeDecodeError(ISO2022JP_CP932, data, i, i + 1, "8-bit byte in a 7-bit charset")
    return out.decode("cp932")


def _decode_strict(data: bytes, codec: str) -> str:
    if codec == ISO2022JP_CP932:
        return _iso2022jp_via_cp932(data)
    return data.decode(codec)


@dataclass
class Decoded:
    text: str
    charset: str  # the codec actually used
    defects: list[str] = field(default_factory=list)


def normalize_label(label: str | None) -> str:
    return (label or "").strip().strip("\"'").lower()


def candidate_codecs(label: str | None) -> list[str]:
    """Codecs worth trying, strictly, for a declared charset label."""
    name = normalize_label(label)
    if name in _UNKNOWN:
        return []
    known = _SUPERSETS.get(name)
    if known is None:
        # "iso_8859-1:1987", "windows-1252" and friends: let Python resolve.
        try:
            known = (codecs.lookup(name).name,)
        except LookupError:
            return []
        if known == ("iso8859-1",):
            known = ("cp1252", "latin-1")
    return list(known)


def _detect(data: bytes) -> tuple[str, str] | None:
    """Ask charset-normalizer; None when it has no confident answer."""
    try:
        results = from_bytes(data[:262_144])
        best = results.best()
    except Exception:  # the detector must never take a message down with it
        return None
    if best is None:
        return None
    # On short Western text the detector ties between Latin code pages and
    # may pick cp1250 ("derničre"); windows-1252 is by far the likeliest
    # undeclared one (the WHATWG default), so it wins every tie.
    western = next((r for r in results if "cp1252" in r.could_be_from_charset), None)
    if western is not None and western.chaos <= best.chaos + 0.01:
        best = western
    try:
        codec = "cp1252" if "cp1252" in best.could_be_from_charset else best.encoding
        return data.decode(codec), codec
    except (UnicodeDecodeError, LookupError):
        return None


def decode_bytes(data: bytes, declared: str | None, *, where: str = "body") -> Decoded:
    """Decode ``data`` labelled ``declared``; never raises, never guesses silently."""
    label = normalize_label(declared)
    defects: list[str] = []
    candidates = candidate_codecs(label)
    if not _NON_ASCII.search(data) and b"\x1b" not in data and "utf-7" not in candidates:
        # Pure ASCII decodes the same under every ASCII-compatible label.
        return Decoded(data.decode("ascii"), "ascii")

    if label and not candidates:
        defects.append(f"{where}: unknown charset {declared!r}")

    for codec in candidates:
        if _SINGLE_BYTE.match(codec) and _NON_ASCII.search(data):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                defects.append(f"{where}: declared {declared!r} but the bytes are UTF-8")
                return Decoded(text, "utf-8", defects)
        try:
            return Decoded(_decode_strict(data, codec), codec, defects)
        except (UnicodeDecodeError, LookupError):
            continue
    if candidates:
        defects.append(f"{where}: bytes are not valid {declared!r}")

    # Undeclared or wrong: UTF-8 is by far the most common truth, and a
    # strict UTF-8 decode of non-UTF-8 text almost never succeeds by accident.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if label:
            defects.append(f"{where}: decoded as UTF-8 instead")
        elif _NON_ASCII.search(data):
            defects.append(f"{where}: undeclared 8-bit text decoded as UTF-8")
        return Decoded(text, "utf-8", defects)

    detected = _detect(data)
    if detected is not None:
        text, codec = detected
        defects.append(f"{where}: charset detected as {codec}")
        return Decoded(text, codec, defects)

    fallback = next((c for c in candidates if c != ISO2022JP_CP932), "utf-8")
    defects.append(f"{where}: undecodable bytes replaced (tried {fallback})")
    return Decoded(data.decode(fallback, errors="replace"), fallback, defects)
