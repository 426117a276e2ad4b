"""Every registry in one place: YAML names (``type: Convolution``) to the classes that implement them.

A lookup is case-insensitive; a failed one lists the known names and suggests the closest.
"""
from __future__ import annotations

from .fields import Invalid, did_you_mean


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, object] = {}

    def register(self, name: str):
        def deco(obj):
            if name.lower() in {k.lower() for k in self._items}:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._items[name] = obj
            obj.type_name = name
            return obj
        return deco

    def canonical(self, name) -> str:
        """The registered spelling of ``name``; :class:`Invalid` with a did-you-mean when unknown."""
        if isinstance(name, str):
            for key in self._items:
                if key.lower() == name.lower():
                    return key
        raise Invalid(f"unknown {self.kind} '{name}'{did_you_mean(name, self._items)}; "
                      f"known: {', '.join(sorted(self._items))}")

    def get(self, name):
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self):
        return sorted(self._items.items())

    def __contains__(self, name) -> bool:
        try:
            self.canonical(name)
            return True
        except Invalid:
            return False


layers = Registry("layer type")
neurons = Registry("neuron")
solvers = Registry("solver method")
lr_policies = Registry("lr policy")
mom_policies = Registry("momentum policy")
coffee_breaks = Registry("coffee break")
