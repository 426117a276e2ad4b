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
    own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    merged = len(node.value) - own          # YAML merge keys (<<: *base): the merged pairs come first and
    out = LDict()                           # the mapping's own keys override them
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    from_merge = set()
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise SpecError([Problem(Where(loader.filename, key_node.start_mark.line + 1), "",
                                     "a mapping key must be a plain value")]) from None
        if key in out and key in from_merge and i >= merged:
            from_merge.discard(key)                      # an own key overrides a merged one
        elif key in out:
            first = out.key_lines[key]
            raise SpecError([Problem(Where(loader.filename, key_node.start_mark.line + 1), str(key),
                                     f"duplicate key (first given on line {first}); keep one of them")])
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
        if i < merged:
            from_merge.add(key)
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


MAX_VALUES = 100_000      # values a config may expand to, aliases counted every time they are used
MAX_DEPTH = 64            # nesting of mappings and lists
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_text(text: str, filename: str):
    m = _CONTROL.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        raise SpecError([Problem(Where(filename, line), "", f"control character U+{ord(m.group()):04X} in the "
                                                            "file; a config is plain text: remove it")])


def _check_size(node, filename: str):
    """Refuse, before anything is built, a document that nests too deeply or whose aliases expand to more
    than :data:`MAX_VALUES` values ("billion laughs")."""
    sizes: dict[int, int] = {}
    stack = [(node, 1, False)]
    while stack:
        n, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise SpecError([Problem(Where(filename, n.start_mark.line + 1), "",
                                     f"nested more than {MAX_DEPTH} levels deep; a config needs far fewer")])
        kids = []
        if isinstance(n, yaml.MappingNode):
            kids = [x for pair in n.value for x in pair]
        elif isinstance(n, yaml.SequenceNode):
            kids = list(n.value)
        if done:
            sizes[id(n)] = 1 + sum(sizes[id(k)] for k in kids)
            if sizes[id(n)] > MAX_VALUES:
                raise SpecError([Problem(Where(filename, n.start_mark.line + 1), "",
                                         f"expands to more than {MAX_VALUES:,} values (YAML aliases counted each "
                                         "time they are used); write the values out or use fewer aliases")])
            continue
        if id(n) in sizes:
            continue
        stack.append((n, depth, True))
        stack.extend((k, depth + 1, False) for k in kids if id(k) not in sizes)


def load_yaml(text: str, filename: str = "<config>"):
    """Parse YAML text strictly; syntax errors become a :class:`SpecError` with file and line.  Control
    characters, nesting deeper than :data:`MAX_DEPTH` and documents that expand past :data:`MAX_VALUES`
    values are refused before anything is built."""
    _check_text(text, filename)
    loader = _StrictLoader(text)
    loader.filename = filename
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, filename)
        return loader.construct_document(node)
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
    except RecursionError:
        raise SpecError([Problem(Where(filename, 0), "", f"nested more than {MAX_DEPTH} levels deep; "
                                                         "a config needs far fewer")]) from None
    finally:
        loader.dispose()
