"""esi: the analysis package of the near-normal-imaging ESI compendium.

Cohort definition, propensity matching, balance diagnostics, outcome derivation and
statistics for Cohen et al., *Lumbar epidural steroid injections for lumbosacral radicular
pain in patients with normal imaging: a propensity-matched study* (Interv Pain Med 2025).

The top-level names are imported lazily so that ``esi --help`` and ``import esi`` stay fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "match": "esi.matching",
    "MatchResult": "esi.matching",
    "balance_table": "esi.balance",
    "read_registry": "esi.io",
    "validate_file": "esi.validate",
    "define_cohort": "esi.cohort",
    "Cohort": "esi.cohort",
    "SCHEMA": "esi.schema",
    "load_params": "esi.params",
}

#: Submodules reachable as attributes after ``import esi`` (imported on first use).
_SUBMODULES = frozenset({
    "audit", "balance", "cohort", "compare", "deid", "imports", "io", "matching", "outcomes",
    "params", "paths", "pipeline", "plots", "propensity", "report", "schema", "sensitivity",
    "sprite", "stats", "synthetic", "tables", "validate",
})

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"esi.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'esi' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
