"""Protocol buffers without a schema: the text format of ``.prototxt`` files and the binary wire format of
``.caffemodel``/``.binaryproto`` files, read (and, for the binary format, written) as generic messages.

Caffe's schema is not needed to read either: the text format names its fields, and the importer knows the
few field numbers of Caffe's binary messages it reads (:mod:`netspec.interchange.caffe`).  Every value read
from a text file keeps its line, so an error about an imported net names the prototxt's line.
"""
from __future__ import annotations

import re
import struct

import numpy as np


class ProtoError(ValueError):
    """A file that is not a well-formed protocol buffer; the message names the file and line or offset."""


# ----------------------------------------------------------------------------------------------- text
class Message:
    """A text-format message: its fields in file order as (name, value, line); a value is a number, a
    string, an enum identifier (:class:`Enum`) or a nested :class:`Message`."""

    def __init__(self, line: int = 0):
        self.items: list[tuple[str, object, int]] = []
        self.line = line

    def all(self, name: str) -> list:
        return [v for k, v, _ in self.items if k == name]

    def get(self, name: str, default=None):
        vals = self.all(name)
        return vals[0] if vals else default

    def has(self, name: str) -> bool:
        return any(k == name for k, _, _ in self.items)

    def line_of(self, name: str) -> int:
        return next((ln for k, _, ln in self.items if k == name), self.line)

    def names(self) -> list[str]:
        return list(dict.fromkeys(k for k, _, _ in self.items))

    def __repr__(self):
        return f"Message(line {self.line}, {self.names()})"


class Enum(str):
    """An unquoted identifier of the text format (an enum value such as ``MAX``, or true/false)."""


_TOKEN = re.compile(r"""
    (?P<space>[ \t\r,;]+) | (?P<newline>\n) | (?P<comment>\#[^\n]*) |
    (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*') |
    (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)(?![\w.])f?) |
    (?P<ident>[A-Za-z_][\w.]*) | (?P<punct>[{}:<>\[\]])
""", re.VERBOSE)


def _tokens(text: str, path: str):
    line, pos = 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ProtoError(f"{path}:{line}: cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind == "newline":
            line += 1
        elif kind not in ("space", "comment"):
            yield kind, m.group(), line
        pos = m.end()
    yield "end", "", line


def _unquote(s: str) -> str:
    return bytes(s[1:-1], "utf-8").decode("unicode_escape") if "\\" in s else s[1:-1]


def parse_text(text: str, path: str = "<prototxt>") -> Message:
    """A whole text-format file as a :class:`Message`."""
    toks = list(_tokens(text, path))
    pos = 0

    def parse_message(end: str | None, line: int) -> Message:
        nonlocal pos
        msg = Message(line)
        while True:
            kind, val, ln = toks[pos]
            if end is None and kind == "end":
                return msg
            if kind == "punct" and val == end:
                pos += 1
                return msg
            if kind == "end":
                raise ProtoError(f"{path}:{line}: the message opened here is not closed (a '}}' is missing)")
            if kind != "ident":
                where = repr(val)
                raise ProtoError(f"{path}:{ln}: expected a field name, found {where}")
            pos += 1
            kind2, val2, ln2 = toks[pos]
            if kind2 == "punct" and val2 == ":":
                pos += 1
                kind2, val2, ln2 = toks[pos]
            if kind2 == "punct" and val2 in "{<":
                pos += 1
                msg.items.append((val, parse_message("}" if val2 == "{" else ">", ln), ln))
            elif kind2 == "punct" and val2 == "[":        # a list of scalars: dim: [1, 2]
                pos += 1
                while toks[pos][1] != "]":
                    msg.items.append((val, scalar(*toks[pos]), ln))
                    pos += 1
                pos += 1
            else:
                msg.items.append((val, scalar(kind2, val2, ln2), ln))
                pos += 1

    def scalar(kind, val, ln):
        nonlocal pos
        if kind == "string":
            out = _unquote(val)
            while toks[pos + 1][0] == "string":            # adjacent strings concatenate
                pos += 1
                out += _unquote(toks[pos][1])
            return out
        if kind == "number":
            v = val[:-1] if val.endswith("f") and not val.endswith("inf") else val
            return float(v) if any(c in v.lower() for c in ".ein") else int(v)
        if kind == "ident":
            return Enum(val)
        raise ProtoError(f"{path}:{ln}: expected a value, found {val!r}")

    return parse_message(None, 1)


def read_text(path: str) -> Message:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtoError(f"{path}: cannot read ({exc})") from None
    return parse_text(text, path)


# --------------------------------------------------------------------------------------------- binary
VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


def _varint(buf, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7
        if shift > 63:
            raise ProtoError("varint longer than 10 bytes")


def fields(buf) -> dict[int, list]:
    """The fields of one binary message: {number: [(wire type, value), ...]}; a BYTES value is a memoryview
    (a nested message, string or packed array), a FIXED32/FIXED64 value its raw bytes."""
    buf = memoryview(buf)
    out: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == VARINT:
            val, pos = _varint(buf, pos)
        elif wt == BYTES:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ProtoError(f"field {num}: {n} bytes announced, {len(buf) - pos} left (truncated file?)")
            val, pos = buf[pos:pos + n], pos + n
        elif wt == FIXED32:
            val, pos = bytes(buf[pos:pos + 4]), pos + 4
        elif wt == FIXED64:
            val, pos = bytes(buf[pos:pos + 8]), pos + 8
        else:
            raise ProtoError(f"field {num}: wire type {wt} is not valid here (not a protocol buffer?)")
        if num == 0 or pos > len(buf):
            raise ProtoError("malformed field (not a protocol buffer, or truncated)")
        out.setdefault(num, []).append((wt, val))
    return out


def floats(entries, dtype="<f4") -> np.ndarray:
    """A repeated float (or double) field, packed or not."""
    parts = []
    for wt, val in entries:
        parts.append(np.frombuffer(bytes(val), dtype) if wt == BYTES else np.frombuffer(val, dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def ints(entries) -> list[int]:
    """A repeated integer field, packed or not."""
    out = []
    for wt, val in entries:
        if wt == BYTES:
            pos = 0
            while pos < len(val):
                v, pos = _varint(val, pos)
                out.append(v)
        else:
            out.append(val)
    return out


def string(entries) -> str:
    return bytes(entries[0][1]).decode("utf-8", "replace") if entries else ""


# writing (fixtures and netspec's own .caffemodel output)
def _put_varint(v: int) -> bytes:
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def put_varint(num: int, v: int) -> bytes:
    return _put_varint(num << 3 | VARINT) + _put_varint(int(v))


def put_bytes(num: int, data: bytes) -> bytes:
    return _put_varint(num << 3 | BYTES) + _put_varint(len(data)) + bytes(data)


def put_string(num: int, s: str) -> bytes:
    return put_bytes(num, s.encode())


def put_floats(num: int, a) -> bytes:
    return put_bytes(num, np.ascontiguousarray(a, "<f4").tobytes())


def put_ints(num: int, vals) -> bytes:
    return put_bytes(num, b"".join(_put_varint(int(v)) for v in vals))


def put_float(num: int, v: float) -> bytes:
    return _put_varint(num << 3 | FIXED32) + struct.pack("<f", v)
