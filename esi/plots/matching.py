"""Figures of a propensity match: love plot and propensity overlap, before and after."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from esi.matching import MatchResult
from esi.plots import laid_out

__all__ = ["love_plot", "overlap_plot"]


def love_plot(result: MatchResult, *, threshold: float = 0.1, binary: str = "raw", ax=None):
    """Absolute standardised mean differences before and after matching, one row per term.

    Parameters
    ----------
    result : MatchResult
        From :func:`esi.match`.
    threshold : float, default 0.1
        Dashed reference line (the usual balance threshold).
    binary : {"raw", "std"}, default "raw"
        Passed to :meth:`MatchResult.balance`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    bal = result.balance(binary=binary, include_distance=False)
    bal = bal.iloc[np.argsort(bal["smd_before"].abs().to_numpy())]
    own = ax is None
    if own:
        _, ax = plt.subplots(figsize=(6, 0.35 * len(bal) + 1.5))
    y = np.arange(len(bal))
    ax.scatter(bal["smd_before"].abs(), y, marker="o", facecolors="none", edgecolors="C3",
               label="Before matching")
    ax.scatter(bal["smd_after"].abs(), y, marker="o", color="C0", label="After matching")
    ax.axvline(threshold, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, bal.index)
    ax.set_xlabel("Absolute standardised mean difference")
    ax.legend(loc="lower right", frameon=False)
    ax.set_xlim(left=0)
    return laid_out(ax.figure) if own else ax.figure


def overlap_plot(result: MatchResult, *, bins: int = 20, ax=None):
    """Distribution of the distance by group, before (all units) and after (matching weights).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: before and after matching; treated and control histograms (densities).
        With ``distance="mahalanobis"`` there is no propensity score: the panels say so.
    """
    own = ax is None
    if own:
        _, ax = plt.subplots(1, 2, figsize=(9, 3.5), sharex=True, sharey=True)
    if result.params["distance"] == "mahalanobis":
        for panel, title in zip(ax, ("Before matching", "After matching"), strict=True):
            panel.text(0.5, 0.5, "No propensity score:\nMahalanobis matching on the covariates",
                       ha="center", va="center", transform=panel.transAxes)
            panel.set_title(title)
            panel.set_xticks([])
            panel.set_yticks([])
        return laid_out(ax[0].figure) if own else ax[0].figure
    d = result.distance
    t = result.treatment.to_numpy() == 1
    w = result.weights.to_numpy()
    edges = np.histogram_bin_edges(d, bins=bins)
    for panel, (title, weights) in zip(ax, (("Before matching", np.ones_like(w)),
                                           ("After matching", w)), strict=True):
        for mask, label, colour in ((t, "Treated", "C0"), (~t, "Control", "C3")):
            keep = mask & (weights > 0)
            panel.hist(d[keep], bins=edges, weights=weights[keep], density=True, alpha=0.5,
                       color=colour, label=label)
        panel.set_title(title)
        panel.set_xlabel(f"Distance ({result.params['distance']})")
    ax[0].set_ylabel("Density")
    ax[0].legend(frameon=False)
    return laid_out(ax[0].figure) if own else ax[0].figure


