"""Wiring: from the layers of one phase to an ordered list of layers, ready to build.

* Layers may be written in any order; they are sorted topologically with Kahn's algorithm (ties keep the
  order of the file).  A cycle, a top written by two layers, or a bottom that no layer of the phase writes
  is an error naming the layers and blobs.
* In place (``tops: [x]`` with ``x`` among the bottoms, e.g. a ReLU) means "modify x": in-place layers on a
  blob run right after its producer, in the order written, and every other reader of ``x`` sees the final
  value.  Only layer types marked ``inplace_ok`` may do it.
* A blob read by several layers gets a ``Split`` layer (named ``<blob>/split``), so that each reader has a
  gradient of its own and the Split sums them — a layer never accumulates into a bottom's diff.
"""
from __future__ import annotations

import heapq
from dataclasses import replace

from ..config import registry
from ..config.errors import Problem, SpecError
from ..config.fields import did_you_mean


def plan(layer_specs, phase: str) -> list:
    """The layers of ``phase`` in execution order, with automatic Split layers inserted."""
    specs = [ls for ls in layer_specs if ls.in_phase(phase)]
    other = {t: ls for ls in layer_specs if not ls.in_phase(phase) for t in ls.tops}
    problems: list[Problem] = []

    chain: dict[str, list[int]] = {}       # blob -> [producer, in-place modifiers...] (indices into specs)
    for i, ls in enumerate(specs):
        for t in ls.tops:
            if t in ls.bottoms:
                continue
            if t in chain:
                first = specs[chain[t][0]]
                problems.append(Problem(ls.where, f"layers -> {ls.name} -> tops",
                                        f"blob '{t}' is already written by layer '{first.name}' "
                                        f"({first.where}); give one of them another name"))
            else:
                chain[t] = [i]
    for i, ls in enumerate(specs):
        for t in ls.tops:
            if t not in ls.bottoms:
                continue
            if not registry.layers.get(ls.type).inplace_ok:
                problems.append(Problem(ls.where, f"layers -> {ls.name}",
                                        f"{ls.type} cannot work in place on '{t}'; give its top a new name"))
            elif t in chain:
                chain[t].append(i)
            # an in-place layer on a blob nobody writes is reported below as an unknown bottom

    deps: list[set] = [set() for _ in specs]
    for i, ls in enumerate(specs):
        for b in ls.bottoms:
            if b not in chain:
                hint = (f"; it is written only in the {other[b].phase} phase (layer '{other[b].name}')"
                        if b in other else did_you_mean(b, chain))
                problems.append(Problem(ls.where, f"layers -> {ls.name} -> bottoms",
                                        f"blob '{b}' is not written by any layer of the {phase} phase{hint}"))
                continue
            c = chain[b]
            if i in c[1:]:
                dep = c[c.index(i) - 1]
            else:
                dep = c[-1]
            if dep != i:
                deps[i].add(dep)
    if problems:
        raise SpecError(problems)

    order = _kahn(specs, deps)
    return _insert_splits(specs, order, chain)


def _kahn(specs, deps) -> list[int]:
    users: list[list[int]] = [[] for _ in specs]
    indeg = [len(d) for d in deps]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    ready = [i for i, n in enumerate(indeg) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, u)
    if len(order) < len(specs):
        stuck = [i for i in range(len(specs)) if indeg[i] > 0]
        cycle = _find_cycle(stuck, deps)
        names = " -> ".join(f"{specs[i].name}" for i in cycle)
        blobs = sorted({b for i in cycle for b in specs[i].bottoms
                        if any(b in specs[j].tops for j in cycle)})
        first = specs[cycle[0]]
        raise SpecError([Problem(first.where, f"layers -> {first.name}",
                                 f"the layers form a cycle ({names} -> {first.name}) through blob(s) "
                                 f"{', '.join(blobs)}; a net must be acyclic")])
    return order


def _find_cycle(stuck, deps) -> list[int]:
    stuck_set = set(stuck)
    start = stuck[0]
    seen, path = {}, []
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = min(d for d in deps[node] if d in stuck_set)
    cycle = list(reversed(path[seen[node]:]))      # in data-flow order
    k = cycle.index(min(cycle))                   # start at the layer written first
    return cycle[k:] + cycle[:k]


def _insert_splits(specs, order, chain) -> list:
    readers: dict[str, list[tuple[int, int]]] = {}
    for i in order:
        ls = specs[i]
        for k, b in enumerate(ls.bottoms):
            if i in chain[b][1:]:
                continue   # an in-place modifier reads the version before it, not the final one
            readers.setdefault(b, []).append((i, k))
    renamed = {i: list(specs[i].bottoms) for i in order}
    splits_after: dict[int, list] = {}
    split_cls = registry.layers.get("Split")
    for blob, rs in readers.items():
        if len(rs) < 2:
            continue
        tops = [f"{blob}/split{j}" for j in range(len(rs))]
        for (i, k), t in zip(rs, tops):
            renamed[i][k] = t
        last = chain[blob][-1]
        prod = specs[last]
        split = replace(prod, name=f"{blob}/split", type="Split", bottoms=[blob], tops=tops,
                        params=split_cls.Params(), inferred=("auto",))
        splits_after.setdefault(last, []).append(split)
    out = []
    for i in order:
        ls = specs[i]
        out.append(ls if renamed[i] == ls.bottoms else replace(ls, bottoms=renamed[i]))
        out.extend(splits_after.get(i, []))
    return out
