"""Figures of the compendium, one module per stage; every function returns a matplotlib Figure.

Submodules (``flow``, ``matching``, ``outcomes``, ``sensitivity``, ``audit``) are imported on
first use, so ``esi.plots.flow.flow_diagram`` works after a plain ``import esi``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_SUBMODULES = frozenset({"flow", "matching", "outcomes", "sensitivity", "audit"})


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"esi.plots.{name}")
    raise AttributeError(f"module 'esi.plots' has no attribute {name!r}")


def laid_out(fig: Figure, rect: tuple[float, float, float, float] | None = None) -> Figure:
    """Lay ``fig`` out once with ``tight_layout`` (inside ``rect``, in figure coordinates),
    then leave it without a layout engine.

    Every figure of the compendium ends here, so it fits its own canvas: the notebooks save
    figures as they are (:func:`esi.report.setup_display` turns off the inline backend's
    ``bbox_inches="tight"``), and a figure with neither a layout engine nor a tight bounding
    box is drawn once per save instead of twice. ``tests/test_plots.py`` checks that no
    figure reaches beyond its canvas.
    """
    fig.tight_layout(**({} if rect is None else {"rect": rect}))
    fig.set_layout_engine(None)
    return fig
