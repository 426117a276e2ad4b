"""Every registry in one place: YAML names (``type: Convolution``) to the classes that implement them.

A lookup is case-insensitive; a failed one lists the known names and suggests the closest.

The registries are the plug-in seam between the config stage and the stages that implement what a config
names: a class registers itself where it is defined (``@registry.layers.register("Convolution")`` in
``netspec/layers/conv.py``), and a registry loads the package of its built-in entries by name on its first
lookup.  So the config stage validates layer types without importing any run-time module.
"""
from __future__ import annotations

import importlib

from .fields import Invalid, did_you_mean


class Registry:
    def __init__(self, kind: str, builtins: str | None = None):
        self.kind = kind
        self._builtins = builtins          # package that registers the built-in entries when imported
        self._items: dict[str, object] = {}

    @property
    def _entries(self) -> dict:
        if self._builtins is not None:
            name, self._builtins = self._builtins, None
            importlib.import_module(name)
        return self._items

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
        entries = self._entries
        if isinstance(name, str):
            for key in entries:
                if key.lower() == name.lower():
                    return key
        raise Invalid(f"unknown {self.kind} '{name}'{did_you_mean(name, entries)}; "
                      f"known: {', '.join(sorted(entries))}")

    def get(self, name):
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self):
        return sorted(self._entries.items())

    def __contains__(self, name) -> bool:
        try:
            self.canonical(name)
            return True
        except Invalid:
            return False


layers = Registry("layer type", "netspec.layers")
neurons = Registry("neuron", "netspec.layers")
solvers = Registry("solver method", "netspec.config.solver")
lr_policies = Registry("lr policy", "netspec.config.policies")
mom_policies = Registry("momentum policy", "netspec.config.policies")
coffee_breaks = Registry("coffee break", "netspec.config.coffee")
backends = Registry("backend", "netspec.backend")
fillers = Registry("filler", "netspec.config.fillers")
transforms = Registry("transform", "netspec.layers")
