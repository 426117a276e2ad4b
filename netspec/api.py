"""The Python API in one place (mirrors the CLI)."""
from __future__ import annotations

from .net import Net, build_nets
from .spec import NetSpec, load_spec, parse_spec

__all__ = ["Net", "NetSpec", "build_nets", "load_spec", "parse_spec"]
