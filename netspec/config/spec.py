"""Config → validated, filled-in spec.

``load_spec(path)`` reads a YAML file strictly (see :mod:`netspec.yamlio`) and checks everything that can
be checked without data: top-level keys, each layer's name, type, wiring keys and parameters (against the
layer's ``Params`` dataclass), bottom/top counts, the ``solver`` block and the ``coffee_breaks``.  Every
problem is collected and reported together, one line each, as ``file:line: path: message``.  No array is
allocated here.

Sequential shorthand (Keras' Sequential, Mathematica's NetChain): a layer without ``bottoms`` reads the
first top of the layer written before it (a loss or Accuracy layer reads that and the blob ``label``); a
layer without ``tops`` that must have one writes a blob named after itself; a layer without ``name`` is
named after its type and place (``innerproduct2``).  Explicit wiring always wins.

The result is "filled in": every default is resolved, and ``NetSpec.to_plain()`` writes the complete spec
(saved beside every run's snapshots).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field

from . import registry
from .coffee import parse_coffee_breaks
from .errors import Problem, SpecError, Where
from .fields import Invalid, build, did_you_mean, integer, string, to_plain
from .solver import parse_solver
from .words import count_phrase
from .yamlio import line_of, load_yaml

COMMON_KEYS = ("name", "type", "bottoms", "tops", "phase")
TOP_LEVEL = ("name", "seed", "backend", "layers", "solver", "coffee_breaks")
PHASES = ("train", "test")


@dataclass(frozen=True)
class LayerSpec:
    name: str
    type: str
    bottoms: list
    tops: list
    phase: str | None
    params: object
    where: Where = field(default_factory=Where)
    inferred: tuple = ()   # which of 'bottoms'/'tops' came from the sequential shorthand

    @property
    def cls(self):
        return registry.layers.get(self.type)

    def in_phase(self, phase: str) -> bool:
        return self.phase is None or self.phase == phase

    def to_plain(self) -> dict:
        out = {"name": self.name, "type": self.type}
        if self.phase:
            out["phase"] = self.phase
        if self.bottoms:
            out["bottoms"] = list(self.bottoms)
        if self.tops:
            out["tops"] = list(self.tops)
        out.update(to_plain(self.params))
        return out


@dataclass(frozen=True)
class NetSpec:
    name: str
    seed: int
    layers: tuple
    solver: object = None
    coffee_breaks: tuple = ()
    path: str = "<config>"
    backend: str = "cpu"        # the backend nets of this spec run on (netspec.backend)
    overrides: tuple = ()       # the --set values applied to the file (provenance, kept in snapshots)
    source_sha256: str = ""     # of the config file as read (provenance)

    def replace(self, **changes) -> "NetSpec":
        """A copy with some fields changed (a spec is frozen): ``spec.replace(coffee_breaks=())``."""
        return dataclasses.replace(self, **changes)

    def output_blob(self) -> str:
        """The net's output: the blob a loss (else a statistic) reads first; else the last layer's top."""
        for kind in ("has_loss", "has_stats"):
            for ls in self.layers:
                if getattr(ls.cls, kind) and ls.bottoms:
                    return ls.bottoms[0]
        return [ls for ls in self.layers if ls.tops][-1].tops[0]

    def with_layer(self, name: str, **params) -> "NetSpec":
        """A copy in which layer ``name`` has some parameters changed, e.g. numpy arrays for a MemoryData:
        ``spec.with_layer("data", data={"data": X, "label": y})``."""
        ls = self.layer(name)
        new = dataclasses.replace(ls, params=dataclasses.replace(ls.params, **params))
        return self.replace(layers=tuple(new if x is ls else x for x in self.layers))

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.path)) if os.path.exists(self.path) else os.getcwd()

    def layer(self, name: str) -> LayerSpec:
        for ls in self.layers:
            if ls.name == name:
                return ls
        raise KeyError(f"no layer named '{name}'{did_you_mean(name, [x.name for x in self.layers])}")

    def to_plain(self) -> dict:
        out = {"name": self.name, "seed": self.seed}
        if self.backend != "cpu":
            out["backend"] = self.backend
        out["layers"] = [ls.to_plain() for ls in self.layers]
        if self.solver is not None:
            out["solver"] = self.solver.to_plain()
        if self.coffee_breaks:
            out["coffee_breaks"] = [cb.to_plain() for cb in self.coffee_breaks]
        return out


# ------------------------------------------------------------------------------------------------ loading
def read_config(path) -> tuple[object, str, str]:
    """The raw YAML tree of a config file, its name and the SHA-256 of its text (one-line errors)."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise SpecError([Problem(Where(filename), "", "config file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(Where(filename), "", f"cannot read config: {exc}")]) from None
    return load_yaml(text, filename), filename, hashlib.sha256(text.encode()).hexdigest()


def load_spec(source, overrides=()) -> NetSpec:
    """Load and validate a config: a YAML file path, YAML text via ``parse_spec``, or a dict.

    ``overrides`` are ``"dotted.path=value"`` strings (``solver.max_iter=5000``,
    ``layers.train-data.batch_size=128``), applied before validation.
    """
    if isinstance(source, dict):
        raw, filename, digest = source, "<dict>", ""
    else:
        raw, filename, digest = read_config(source)
    if overrides:
        from .overrides import apply_overrides
        raw = apply_overrides(raw, overrides, filename)
    return parse_spec(raw, filename).replace(overrides=tuple(overrides), source_sha256=digest)


def parse_spec(raw, filename: str = "<config>") -> NetSpec:
    if isinstance(raw, str):
        raw = load_yaml(raw, filename)
    problems: list[Problem] = []
    top = Where(filename, getattr(raw, "line", 1) or 1)
    if not isinstance(raw, dict):
        raise SpecError([Problem(top, "", "a config must be a mapping with 'layers:' (and 'solver:', "
                                          "'coffee_breaks:')")])
    for key in raw:
        if key not in TOP_LEVEL:
            problems.append(Problem(Where(filename, line_of(raw, key, 1)), str(key),
                                    "unknown top-level key" + did_you_mean(key, TOP_LEVEL)
                                    + f"; known: {', '.join(TOP_LEVEL)}"))
    name = _scalar(raw, "name", string(), "net", filename, problems)
    seed = _scalar(raw, "seed", integer(lo=0), 0, filename, problems)
    backend = _scalar(raw, "backend", lambda v: registry.backends.canonical(v), "cpu", filename, problems)
    layer_specs = _parse_layers(raw.get("layers"), filename, top, problems)
    solver = coffee = None
    if raw.get("solver") is not None:
        solver = parse_solver(raw["solver"], Where(filename, line_of(raw, "solver", 1)), problems)
    coffee = []
    if raw.get("coffee_breaks") is not None:
        coffee = parse_coffee_breaks(raw["coffee_breaks"], Where(filename, line_of(raw, "coffee_breaks", 1)),
                                     problems)
    if problems:
        raise SpecError(problems)
    return NetSpec(name, seed, tuple(layer_specs), solver, tuple(coffee), filename, backend)


def _scalar(raw, key, conv, default, filename, problems):
    if key not in raw:
        return default
    try:
        return conv(raw[key])
    except Invalid as exc:
        problems.append(Problem(Where(filename, line_of(raw, key, 1)), key, str(exc)))
        return default


def _parse_layers(items, filename, top, problems) -> list[LayerSpec]:
    if items is None:
        problems.append(Problem(top, "layers", "missing: a config needs 'layers:', a list of layers"))
        return []
    if not isinstance(items, list) or not items:
        problems.append(Problem(Where(filename, line_of(items, 0, top.line) if items else top.line), "layers",
                                "must be a non-empty list of layers (each a mapping with name and type)"))
        return []
    out, seen = [], {}
    prev_top = None
    for i, item in enumerate(items):
        where = Where(filename, line_of(items, i, top.line))
        if not isinstance(item, dict):
            problems.append(Problem(where, f"layers -> #{i + 1}", "each layer must be a mapping with name and type"))
            continue
        lname = item.get("name")
        if lname is None and isinstance(item.get("type"), str):
            lname = f"{item['type'].lower()}{i + 1}"      # unnamed: named after its type and place (Keras)
        if not isinstance(lname, str) or not lname:
            problems.append(Problem(where, f"layers -> #{i + 1}", "'name:' must be a non-empty string"))
            continue
        bad = _bad_name(lname)
        if bad:
            problems.append(Problem(Where(filename, line_of(item, "name", where.line)), f"layers -> #{i + 1}",
                                    f"name {lname[:40]!r}{'...' if len(lname) > 40 else ''}: {bad}"))
            continue
        path = f"layers -> {lname}"
        if lname in seen:
            problems.append(Problem(where, path, f"duplicate layer name (first used on line {seen[lname]})"))
        seen[lname] = where.line
        if "type" not in item:
            problems.append(Problem(where, path, f"missing 'type:' (one of {', '.join(registry.layers.names())})"))
            continue
        try:
            ltype = registry.layers.canonical(item["type"])
        except Invalid as exc:
            problems.append(Problem(Where(filename, line_of(item, "type", where.line)), f"{path} -> type", str(exc)))
            continue
        cls = registry.layers.get(ltype)
        wiring = {}
        for key in ("bottoms", "tops"):
            wiring[key] = _names(item, key, path, filename, where, problems)
        phase = item.get("phase")
        if phase is not None and phase not in PHASES:
            problems.append(Problem(Where(filename, line_of(item, "phase", where.line)), f"{path} -> phase",
                                    f"must be train or test (or left out for both); got {phase!r}"
                                    + did_you_mean(phase, PHASES)))
            phase = None
        params = build(cls.Params, item, where, path, problems, skip=COMMON_KEYS)
        inferred = []
        bottoms, tops = wiring["bottoms"], wiring["tops"]
        if bottoms is None:
            bottoms = []
            if cls.n_bottoms == (2, 2) and (cls.has_loss or cls.has_stats) and prev_top is not None:
                bottoms = [prev_top, "label"]           # a loss or statistic compares with the labels
                inferred.append("bottoms")
            elif cls.n_bottoms[0] > 0:
                if prev_top is None:
                    problems.append(Problem(where, path, f"no 'bottoms:' and no earlier layer to read from; "
                                                         f"{ltype} takes {count_phrase(cls.n_bottoms, 'bottom')}"))
                else:
                    bottoms = [prev_top]
                    inferred.append("bottoms")
        if tops is None:
            tops = [lname] if cls.n_tops[0] > 0 else []
            if tops:
                inferred.append("tops")
        _check_count(cls.n_bottoms, bottoms, "bottom", ltype, path, Where(filename, line_of(item, "bottoms", where.line)), problems)
        _check_count(cls.n_tops, tops, "top", ltype, path, Where(filename, line_of(item, "tops", where.line)), problems)
        if tops:
            prev_top = tops[0]
        if params is not None:
            out.append(LayerSpec(lname, ltype, tuple(bottoms), tuple(tops), phase, params, where, tuple(inferred)))
    return out


MAX_NAME = 100


def _bad_name(name: str) -> str | None:
    """Why a layer name cannot be used (``--set layers.NAME.key`` splits on dots; snapshots and parameter
    keys use ``layer/param``), or None."""
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    if name.strip() != name or not name.strip():
        return "no leading or trailing spaces"
    for ch, why in ((".", "a dot"), ("/", "a slash")):
        if ch in name:
            return f"{why} is not allowed in a layer name; write letters, digits, '-' or '_' instead"
    if any(not c.isprintable() for c in name):
        return "only printable characters"
    return None


def _names(item, key, path, filename, where, problems):
    if key not in item:
        return None
    v = item[key]
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        problems.append(Problem(Where(filename, line_of(item, key, where.line)), f"{path} -> {key}",
                                "must be a list of blob names, e.g. [data, label]"))
        return []
    return list(v)


def _check_count(bounds, names, word, ltype, path, where, problems):
    lo, hi = bounds
    n = len(names)
    if n < lo or (hi is not None and n > hi):
        problems.append(Problem(where, f"{path} -> {word}s",
                                f"{ltype} takes {count_phrase(bounds, word)}, got {n}"
                                + (f" ({', '.join(names)})" if names else "")))


__all__ = ["LayerSpec", "NetSpec", "load_spec", "parse_spec"]
