"""The vocabulary of config parameters: converters, defaults, docs, and the generic validator.

A parameter block (a layer's, the solver's, a coffee break's) is a dataclass whose fields are declared with
:func:`param`: a converter, a default (or :data:`REQUIRED`) and one line of documentation.  The
:func:`build` function turns a YAML mapping into an instance, collecting every problem (unknown key with a
did-you-mean, missing required key, wrong type, bad value) instead of stopping at the first.  A dataclass
may define ``check(self) -> list[tuple[str, str]]`` for rules across fields (field name, message).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from typing import Any, Callable

from .errors import Problem, Where
from .yamlio import line_of


class Invalid(ValueError):
    """Raised by a converter; the message says what is wrong and what to write instead."""


REQUIRED = dataclasses.MISSING


def param(conv: Callable[[Any], Any], default=REQUIRED, doc: str = "", caffe: str | None = None,
          caffe_values: dict | None = None, caffe_default=None):
    """Declare a config parameter: ``conv`` checks and converts the YAML value.

    ``caffe`` is the parameter's name in Caffe, the one place it is written (the importer, ``netspec layers``
    and the README's translation table read it from here):

    * ``"num_output"`` — a field of the layer's own Caffe message (the class's ``caffe_message``, e.g.
      ``convolution_param``; for the solver, of the solver file);
    * ``"kernel_size|kernel_h,kernel_w"`` — one value, or an [h, w] pair given as two fields;
    * ``"loss_param.ignore_label"`` — a field of another message of the layer;
    * ``"param[1].lr_mult"`` — of the layer's second ``param { }`` block; ``"param[*].name"`` — of all;
    * ``"/loss_weight"`` — a field of the layer itself.

    ``caffe_values`` maps Caffe's enum values to netspec's (``{"MAX": "max", "AVE": "mean"}``);
    ``caffe_default`` is Caffe's default where it differs from netspec's (an imported net gets it)."""
    meta = {"conv": conv, "doc": doc}
    if caffe is not None:
        meta["caffe"] = caffe
        meta["caffe_values"] = caffe_values
        meta["caffe_default"] = caffe_default
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _show(v) -> str:
    return repr(v) if isinstance(v, str) else str(v)


# --------------------------------------------------------------------------------------------- converters
MAX_INT = 2**31 - 1      # no count in a net comes near it; larger ones are typos (batch_size: 1e30)


def integer(lo: int | None = None, hi: int | None = None):
    hi = MAX_INT if hi is None else hi

    def conv(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise Invalid(f"expected an integer, got {_show(v)}")
        if abs(v) > MAX_INT:
            raise Invalid(f"must be at most {hi}, got {_show(v)}")
        v = int(v)
        if lo is not None and v < lo:
            raise Invalid(f"must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise Invalid(f"must be at most {hi}, got {v}")
        return v
    return conv


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False):
    def conv(v):
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise Invalid(f"expected a number, got {_show(v)}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Invalid(f"expected a number, got {_show(v)}")
        v = float(v)
        if not math.isfinite(v):
            raise Invalid(f"must be a finite number, got {v}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise Invalid(f"must be {'greater than' if lo_open else 'at least'} {lo:g}, got {v:g}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise Invalid(f"must be {'less than' if hi_open else 'at most'} {hi:g}, got {v:g}")
        return v
    return conv


def boolean():
    def conv(v):
        if not isinstance(v, bool):
            raise Invalid(f"expected true or false, got {_show(v)}")
        return v
    return conv


def string():
    def conv(v):
        if not isinstance(v, str) or not v:
            raise Invalid(f"expected a non-empty string, got {_show(v)}")
        return v
    return conv


def string_list(min_len: int = 1):
    one = string()

    def conv(v):
        if not isinstance(v, (list, tuple)) or len(v) < min_len:
            raise Invalid(f"expected a list of at least {min_len} name(s), got {_show(v)}")
        return tuple(one(x) for x in v)
    return conv


def choice(*options: str):
    """One of ``options``, case-insensitive; stored in the spelling given here."""
    lower = {o.lower(): o for o in options}

    def conv(v):
        if isinstance(v, str) and v.lower() in lower:
            return lower[v.lower()]
        raise Invalid(f"must be one of {', '.join(options)}; got {_show(v)}{did_you_mean(v, options)}")
    return conv


def pair(lo: int = 1):
    """An [h, w] pair of integers; a single integer means the same for both."""
    one = integer(lo=lo)

    def conv(v):
        if isinstance(v, (list, tuple)):
            if len(v) != 2:
                raise Invalid(f"expected [h, w] (two integers), got {len(v)} values")
            try:
                return (one(v[0]), one(v[1]))
            except Invalid as exc:
                raise Invalid(f"{exc} (in [h, w])") from None
        x = one(v)
        return (x, x)
    return conv


def int_list(lo: int | None = None, min_len: int = 1):
    one = integer(lo=lo)

    def conv(v):
        if not isinstance(v, (list, tuple)) or len(v) < min_len:
            raise Invalid(f"expected a list of at least {min_len} integer(s), got {_show(v)}")
        return tuple(one(x) for x in v)
    return conv


def number_list(min_len: int = 1):
    one = number()

    def conv(v):
        if not isinstance(v, (list, tuple)) or len(v) < min_len:
            raise Invalid(f"expected a list of at least {min_len} number(s), got {_show(v)}")
        return tuple(one(x) for x in v)
    return conv


def optional(inner):
    def conv(v):
        return None if v is None else inner(v)
    return conv


# ---------------------------------------------------------------------------------------------- validator
def fields_of(cls):
    return [f for f in dataclasses.fields(cls) if "conv" in f.metadata]


def build(cls, raw, where: Where, path: str, problems: list, skip=()):
    """Make ``cls`` from the mapping ``raw``; append every problem to ``problems``.

    Returns the instance, or ``None`` when a problem was found.  Keys in ``skip`` are left for the caller.
    """
    fields = {f.name: f for f in fields_of(cls)}
    values, ok = {}, True
    for key, value in raw.items():
        if key in skip:
            continue
        here = Where(where.file, line_of(raw, key, where.line))
        if key not in fields:
            known = list(fields) + list(skip)
            problems.append(Problem(here, f"{path} -> {key}", "unknown parameter" + did_you_mean(key, known)))
            ok = False
            continue
        try:
            values[key] = fields[key].metadata["conv"](value)
        except Invalid as exc:
            problems.append(Problem(here, f"{path} -> {key}", str(exc)))
            ok = False
    for name, f in fields.items():
        if name not in values and f.default is REQUIRED and f.default_factory is REQUIRED and name not in raw:
            doc = doc_of(f)
            problems.append(Problem(where, path, f"missing required parameter '{name}'" + (f" ({doc})" if doc else "")))
            ok = False
    if not ok:
        return None
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        for key, message in check():
            line = line_of(raw, key, where.line) if key in raw else where.line
            problems.append(Problem(Where(where.file, line), f"{path} -> {key}" if key else path, message))
            ok = False
    return obj if ok else None


def build_entry(cls, raw: dict, what: str, path: str):
    """``cls`` from ``raw`` inside a converter (a filler, a transform: a registry entry written as a mapping):
    an unknown key raises :class:`Invalid` naming ``what`` takes instead; otherwise every problem of the
    values, each as ``path -> key: message``, in one :class:`Invalid`."""
    takes = [f.name for f in fields_of(cls)]
    for key in raw:
        if key not in takes:
            raise Invalid(f"{what} has no parameter '{key}'{did_you_mean(key, takes)}; "
                          f"it takes: {', '.join(takes) or 'nothing'}")
    problems: list = []
    out = build(cls, raw, Where(), path, problems)
    if problems:
        raise Invalid("; ".join(f"{p.path}: {p.message}" for p in problems))
    return out


def to_plain(obj):
    """A dataclass (or nest of them) as plain YAML-writable values: the filled-in spec."""
    if hasattr(obj, "to_plain") and not isinstance(obj, type):
        return obj.to_plain()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


def fields_plain(obj) -> dict:
    """The dataclass fields of ``obj`` as plain values (for objects whose own ``to_plain`` adds a type)."""
    return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def doc_of(f) -> str:
    """A parameter's line of documentation, with its Caffe name when it has one."""
    doc = f.metadata.get("doc", "")
    if f.metadata.get("caffe"):
        doc += f" (Caffe: {f.metadata['caffe'].lstrip('/').replace('|', ' or ')})"
    return doc


def describe(cls) -> list[tuple[str, str, str]]:
    """(name, default, doc) for each parameter of ``cls``: used by ``netspec layers``."""
    out = []
    for f in fields_of(cls):
        if f.default is not REQUIRED:
            default = _yamlish(f.default)
        elif f.default_factory is not REQUIRED:
            default = _yamlish(f.default_factory())
        else:
            default = "required"
        out.append((f.name, default, doc_of(f)))
    return sorted(out, key=lambda r: r[1] != "required")


def _yamlish(v) -> str:
    if hasattr(v, "short"):
        return v.short()
    v = to_plain(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)
