"""``--set KEY=VALUE`` overrides, applied to the raw config before validation.

KEY is a dotted path: ``solver.max_iter``, ``solver.lr_policy.base_lr``, ``layers.train-data.batch_size``
(a layer is addressed by its name), ``coffee_breaks.0.every_n_iter`` (a list item by its index).  VALUE is
read as YAML (``5000``, ``0.01``, ``[5, 5]``, ``true``).  A new key may be added to an existing mapping;
the validator then checks it like any other.  Errors name the override.
"""
from __future__ import annotations

import copy

from .errors import Problem, SpecError, Where
from .fields import did_you_mean
from .yamlio import LDict, load_yaml


def apply_overrides(raw, overrides, filename: str):
    raw = copy.deepcopy(raw)
    for item in overrides:
        where = Where(f"--set {item}")
        if "=" not in item:
            raise SpecError([Problem(where, "", "expected KEY=VALUE, e.g. solver.max_iter=5000")])
        key, text = item.split("=", 1)
        value = load_yaml(text, f"--set {item}")        # the same limits as a file (aliases, depth, ...)
        parts = key.strip().split(".")
        node = raw
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, parts[:depth + 1], where)
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, parts, where)] = value
        elif isinstance(node, dict):
            node[last] = value
            if isinstance(node, LDict):
                node.key_lines[last] = f"--set {item}"   # problems with this value name the override
        else:
            raise _not_container(parts[:-1], node, where)
    return raw


def _child(node, part, path, where):
    if isinstance(node, dict):
        if part not in node:
            raise SpecError([Problem(where, "", f"'{'.'.join(path)}' is not in the config"
                                                + did_you_mean(part, node))])
        return node[part]
    if isinstance(node, list):
        return node[_index(node, part, path, where)]
    raise _not_container(path[:-1], node, where)


def _not_container(path, node, where) -> SpecError:
    whole = ".".join(path)
    return SpecError([Problem(where, "", f"'{whole}' is the value {node!r}, not a mapping or list; "
                                         f"set it whole, e.g. --set {whole}=...")])


def _index(items, part, path, where):
    names = [x.get("name") for x in items if isinstance(x, dict)]
    if part in names:
        return names.index(part)
    if part.isdigit() and int(part) < len(items):
        return int(part)
    raise SpecError([Problem(where, "", f"no item '{part}' in '{'.'.join(path[:-1])}'"
                                        + did_you_mean(part, [n for n in names if n]))])
