"""Specification curve of a parameter sweep (``esi sweep``)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["specification_curve"]


def specification_curve(table: pd.DataFrame, estimate: str, ci: tuple[str, str],
                        choices: Sequence[str], label: str | None = None) -> Figure:
    """Sorted estimates with their CIs over an indicator panel of the analytic choices.

    Parameters
    ----------
    table
        One row per specification (e.g. ``sweep.csv``); rows with a missing estimate (failed
        points) are left out.
    estimate
        Column of the point estimate.
    ci
        Columns of the lower and upper CI bounds.
    choices
        Columns holding the analytic choices; each distinct value gets a row of the panel.
    label
        Y-axis label of the top panel (default: ``estimate``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    ok = table.dropna(subset=[estimate]).sort_values(estimate, kind="mergesort")
    x = np.arange(len(ok))
    levels = [(c, v) for c in choices for v in sorted(map(str, ok[c].unique()))
              if ok[c].nunique() > 1 or len(choices) == 1]
    fig, (top, panel) = plt.subplots(
        2, 1, sharex=True, figsize=(max(6.0, 0.12 * len(ok) + 3), 4 + 0.25 * len(levels)),
        gridspec_kw={"height_ratios": [3, max(1, 0.3 * len(levels))]})
    top.errorbar(x, ok[estimate], yerr=[ok[estimate] - ok[ci[0]], ok[ci[1]] - ok[estimate]],
                 fmt="o", ms=3, lw=0.8, color="#335577", ecolor="#99aabb")
    top.axhline(0, color="grey", lw=0.8, ls="--")
    top.set_ylabel(label or estimate)
    top.set_title(f"Specification curve ({len(ok)} of {len(table)} specifications)")
    for row, (c, v) in enumerate(levels):
        on = ok[c].astype(str).to_numpy() == v
        panel.scatter(x[on], np.full(on.sum(), row), s=8, marker="s", color="#333333")
    panel.set_yticks(range(len(levels)), [f"{c} = {v}" for c, v in levels], fontsize=7)
    panel.set_ylim(-0.5, len(levels) - 0.5)
    panel.invert_yaxis()
    panel.set_xlabel("specification (sorted by estimate)")
    fig.tight_layout()
    return fig
