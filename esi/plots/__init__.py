"""Figures of the compendium, one module per stage; every function returns a matplotlib Figure.

Submodules (``flow``, ``matching``, ``outcomes``, ``sensitivity``, ``audit``) are imported on
first use, so ``esi.plots.flow.flow_diagram`` works after a plain ``import esi``.
"""

from __future__ import annotations

import importlib

_SUBMODULES = frozenset({"flow", "matching", "outcomes", "sensitivity", "audit"})


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"esi.plots.{name}")
    raise AttributeError(f"module 'esi.plots' has no attribute {name!r}")
