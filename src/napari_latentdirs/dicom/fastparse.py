"""A minimal, strict parser for the common case: uncompressed little-endian DICOM.

Why: pydicom spends most of a CT slice's read time building Python objects for
~100 elements we never look at. This parser walks element headers with
``struct`` and decodes only the attributes asked for, ~10x faster. It accepts
only well-formed Explicit/Implicit VR Little Endian files; on *anything* else
(other transfer syntaxes, truncation, unexpected VRs, empty values) it raises
:class:`Unsupported` and the caller falls back to pydicom, which also produces
the specific error messages. Tests check both paths give identical values.
"""

from __future__ import annotations

import struct

from pydicom.datadict import dictionary_VR, tag_for_keyword

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
PIXEL_DATA = 0x7FE00010
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_TEXT_VRS = {b"AE", b"AS", b"CS", b"DA", b"DT", b"LO", b"LT", b"PN", b"SH", b"ST", b"TM", b"UC", b"UI", b"UT"}
#: VRs whose bytes follow SpecificCharacterSet; the others use the default repertoire.
_CHARSET_VRS = {b"LO", b"LT", b"PN", b"SH", b"ST", b"UC", b"UT"}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")


class Unsupported(Exception):  # internal signal, never escapes the package
    """Not a clean native little-endian file: use pydicom instead."""


def _keyword_table(keywords: list[str]) -> dict[int, tuple[str, bytes]]:
    table = {}
    for kw in keywords:
        tag = tag_for_keyword(kw)
        if tag is None:
            raise ValueError(f"unknown keyword {kw}")
        table[tag] = (kw, dictionary_VR(tag).encode())
    return table


class FastParser:
    """Parse the listed keywords; ``PixelData`` (if listed) comes back as a memoryview."""

    def __init__(self, keywords: list[str]) -> None:
        wanted = [k for k in keywords if k != "PixelData"]
        # The character set decides how names and descriptions decode, asked for or not.
        self.report_charset = "SpecificCharacterSet" in wanted
        self.table = _keyword_table([*wanted, *([] if self.report_charset else ["SpecificCharacterSet"])])
        self.want_pixels = "PixelData" in keywords
        self.last_tag = max(self.table) if self.table else 0

    def parse(self, buf: bytes) -> tuple[dict, dict]:
        """Return (values, meta) from the whole file contents ``buf``."""
        n = len(buf)
        if n < 144 or buf[128:132] != b"DICM":
            raise Unsupported("no preamble")
        pos = 132
        meta: dict[str, str] = {}
        while pos + 8 <= n and _U16.unpack_from(buf, pos)[0] == 0x0002:
            group, elem = _TAG.unpack_from(buf, pos)
            vr = buf[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                length, hdr = _U32.unpack_from(buf, pos + 8)[0], 12
            else:
                length, hdr = _U16.unpack_from(buf, pos + 6)[0], 8
            end = pos + hdr + length
            if length == 0xFFFFFFFF or end > n:
                raise Unsupported("odd meta")
            if elem == 0x0010:
                meta["TransferSyntaxUID"] = buf[pos + hdr : end].decode("ascii").strip(" \x00")
            elif elem == 0x0002:
                meta["MediaStorageSOPClassUID"] = buf[pos + hdr : end].decode("ascii").strip(" \x00")
            pos = end
        ts = meta.get("TransferSyntaxUID")
        if ts == EXPLICIT_LE:
            explicit = True
        elif ts == IMPLICIT_LE:
            explicit = False
        else:
            raise Unsupported(f"transfer syntax {ts}")
        values: dict = {}
        texts: dict[str, tuple[bytes, bytes]] = {}  # charset-dependent values, decoded once the charset is known
        stop = PIXEL_DATA if self.want_pixels else self.last_tag
        while pos < n:
            pos, tag, vr, vstart, vend = self._element(buf, pos, n, explicit)
            if tag > stop:
                break
            if tag == PIXEL_DATA:
                if vend is None:
                    raise Unsupported("encapsulated pixel data")
                values["PixelData"] = memoryview(buf)[vstart:vend]
                # A few stray bytes after the last element mean a cut-off element header.
                if 0 < n - vend < 8:
                    raise Unsupported("stray trailing bytes")
                break
            entry = self.table.get(tag)
            if entry is not None:
                if vend is None:
                    raise Unsupported("undefined length for a wanted attribute")
                kw, dict_vr = entry
                the_vr = vr if explicit else dict_vr
                if the_vr in _CHARSET_VRS:
                    texts[kw] = (buf[vstart:vend], the_vr)
                else:
                    values[kw] = _decode(buf[vstart:vend], the_vr, kw)
        codec = _codec(values.get("SpecificCharacterSet"))
        for kw, (raw, text_vr) in texts.items():
            values[kw] = _decode_text(raw, codec, kw, text_vr)
        if not self.report_charset:
            values.pop("SpecificCharacterSet", None)
        return values, meta

    def _element(self, buf, pos, n, explicit):
        if pos + 8 > n:
            raise Unsupported("truncated element header")
        group, elem = _TAG.unpack_from(buf, pos)
        tag = (group << 16) | elem
        if explicit:
            vr = buf[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > n:
                    raise Unsupported("truncated element header")
                length, hdr = _U32.unpack_from(buf, pos + 8)[0], 12
            else:
                length, hdr = _U16.unpack_from(buf, pos + 6)[0], 8
        else:
            vr = None
            length, hdr = _U32.unpack_from(buf, pos + 4)[0], 8
        vstart = pos + hdr
        if length == 0xFFFFFFFF:
            if tag == PIXEL_DATA:
                return vstart, tag, vr, vstart, None
            return _skip_undefined(buf, vstart, n, explicit), tag, vr, vstart, None
        vend = vstart + length
        if vend > n:
            raise Unsupported("value runs past end of file")
        return vend, tag, vr, vstart, vend


def _skip_undefined(buf, pos, n, explicit) -> int:
    """Skip an undefined-length sequence value; return the position after its delimiter."""
    while True:
        if pos + 8 > n:
            raise Unsupported("unterminated sequence")
        group, elem = _TAG.unpack_from(buf, pos)
        length = _U32.unpack_from(buf, pos + 4)[0]
        pos += 8
        if group != 0xFFFE:
            raise Unsupported("bad item tag")
        if elem == 0xE0DD:  # sequence delimiter
            return pos
        if elem != 0xE000:
            raise Unsupported("bad item tag")
        if length != 0xFFFFFFFF:
            pos += length
            continue
        # Undefined-length item: elements until the item delimiter (FFFE,E00D).
        while True:
            if pos + 8 > n:
                raise Unsupported("unterminated item")
            g, e = _TAG.unpack_from(buf, pos)
            if g == 0xFFFE and e == 0xE00D:
                pos += 8
                break
            pos = _element_end(buf, pos, n, explicit)


def _element_end(buf, pos, n, explicit) -> int:
    if explicit:
        vr = buf[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length, hdr = _U32.unpack_from(buf, pos + 8)[0], 12
        else:
            length, hdr = _U16.unpack_from(buf, pos + 6)[0], 8
    else:
        length, hdr = _U32.unpack_from(buf, pos + 4)[0], 8
    if length == 0xFFFFFFFF:
        return _skip_undefined(buf, pos + hdr, n, explicit)
    end = pos + hdr + length
    if end > n:
        raise Unsupported("value runs past end of file")
    return end


#: Single-byte character sets and UTF-8: a backslash byte is always a value separator, so
#: decoding the whole value and then splitting it equals pydicom's result. Multi-byte sets
#: (GB18030, Shift-JIS...) and ISO 2022 code extensions go to pydicom.
_CODECS = {
    "": "latin_1",  # the default repertoire; pydicom also reads it as ISO 8859-1
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 166": "tis_620",
    "ISO_IR 192": "utf_8",
}


def _codec(charset) -> str:
    """Python codec for a (0008,0005) value; Unsupported for anything but one simple set."""
    if charset is None:
        return "latin_1"
    if isinstance(charset, list):
        rest = [c for c in charset[1:] if c]
        if rest:
            raise Unsupported("code extensions in SpecificCharacterSet")
        charset = charset[0]
    codec = _CODECS.get(str(charset).strip())
    if codec is None:
        raise Unsupported(f"character set {charset!r}")
    return codec


def _decode_text(raw: bytes, codec: str, kw: str, vr: bytes = b"LO"):
    """A value of a charset-dependent VR (SH, LO, ST, LT, UC, UT, PN), as pydicom gives it."""
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as e:
        raise Unsupported(f"{kw} is not valid {codec}") from e
    text = text.rstrip(" \x00")
    if not text:
        return None
    if vr in (b"ST", b"LT", b"UT"):  # single-valued: a backslash is text there
        return text
    parts = text.split("\\")
    return parts if len(parts) > 1 else parts[0]


def _decode(raw: bytes, vr: bytes, kw: str):
    """Value as pydicom would give it (lists for multi-valued), None when empty."""
    if not raw:
        return None
    if vr in _TEXT_VRS:
        text = raw.decode("latin-1").rstrip(" \x00")
        if not text:
            return None
        parts = text.split("\\")
        return parts if len(parts) > 1 else parts[0]
    if vr in (b"DS", b"IS"):
        parts = [p.strip(" \x00") for p in raw.decode("ascii").split("\\")]
        if any(not p for p in parts):
            raise Unsupported(f"empty value in {kw}")
        try:
            nums = [float(p) for p in parts] if vr == b"DS" else [int(p) for p in parts]
        except ValueError as e:
            raise Unsupported(f"bad number in {kw}") from e
        return nums if len(nums) > 1 else nums[0]
    if vr in (b"US", b"SS", b"US or SS"):
        if len(raw) % 2:
            raise Unsupported(f"odd length for {kw}")
        # Ambiguous US/SS (implicit VR PixelPaddingValue) is read unsigned; the caller
        # reinterprets it with PixelRepresentation, as pydicom does.
        fmt = f"<{len(raw) // 2}{'h' if vr == b'SS' else 'H'}"
        nums = list(struct.unpack(fmt, raw))
        return nums if len(nums) > 1 else nums[0]
    raise Unsupported(f"VR {vr!r} for {kw}")
