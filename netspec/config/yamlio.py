"""Strict YAML loading that remembers where every value came from.

PyYAML gives every node a ``start_mark`` (0-based line).  The loader here builds :class:`LDict` and
:class:`LList`, plain ``dict``/``list`` subclasses that also carry the 1-based line of the node and of each
key or item, so that the spec validator can say ``file:line``.  Duplicate keys, which PyYAML silently lets
the last one win, are an error.  A float written without a dot (``1e-4``), which YAML 1.1 reads as a string,
is read as a float.
"""
from __future__ import annotations

import re

import yaml

from .errors import Problem, SpecError, Where


class LDict(dict):
    """A mapping from YAML: ``line`` of the mapping, ``key_lines[key]`` of each key."""

    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class LList(list):
    """A sequence from YAML: ``line`` of the sequence, ``item_lines[i]`` of each item."""

    line: int = 0
    item_lines: list

    def line_of(self, i: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[i] if i < len(lines) else self.line


def line_of(container, key, default: int = 0) -> int:
    """Line of ``container[key]`` if the container came from YAML, else ``default``."""
    if isinstance(container, (LDict, LList)):
        return container.line_of(key)
    return default


_FLOAT_NO_DOT = re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$")


class _StrictLoader(yaml.SafeLoader):
    filename = "<config>"


def _construct_mapping(loader: _StrictLoader, node):
    loader.flatten_mapping(node)
    out = LDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise SpecError([Problem(Where(loader.filename, key_node.start_mark.line + 1), "",
                                     "a mapping key must be a plain value")]) from None
        if key in out:
            first = out.key_lines[key]
            raise SpecError([Problem(Where(loader.filename, key_node.start_mark.line + 1), str(key),
                                     f"duplicate key (first given on line {first}); keep one of them")])
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _StrictLoader, node):
    out = LList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


def _construct_str(loader: _StrictLoader, node):
    value = loader.construct_scalar(node)
    if node.style is None and _FLOAT_NO_DOT.match(value):
        return float(value)
    return value


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_StrictLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)


def load_yaml(text: str, filename: str = "<config>"):
    """Parse YAML text strictly; syntax errors become a :class:`SpecError` with file and line."""
    loader = _StrictLoader(text)
    loader.filename = filename
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = exc.problem or str(exc)
        ctx = exc.context_mark
        if exc.context and ctx is not None and ctx.line + 1 != line:
            what += f" ({exc.context} that starts on line {ctx.line + 1})"
        raise SpecError([Problem(Where(filename, line), "", f"malformed YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(Where(filename, 0), "", f"malformed YAML: {exc}")]) from None
    finally:
        loader.dispose()
