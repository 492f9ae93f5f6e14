"""Figures of the sensitivity analyses (notebook 04). Each function returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from esi.plots import laid_out

__all__ = [
    "specification_curve",
    "rosenbaum_plot",
    "power_curve_plot",
    "influence_plot",
]

_CHOICES = ("covariate_set", "distance", "method", "ratio", "caliper", "replace", "missing",
            "test")


def _require(table: pd.DataFrame, columns, name: str) -> None:
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise ValueError(f"{name}: missing column(s) {', '.join(absent)}")


def specification_curve(table: pd.DataFrame, *, outcome: str = "primary",
                        alpha: float = 0.05, choices=_CHOICES,
                        ylabel: str | None = None) -> Figure:
    """Specification curve: sorted estimates with CIs over an indicator panel of the choices.

    Parameters
    ----------
    table
        :func:`esi.sensitivity.multiverse` output, or any table of specifications with
        ``<outcome>_estimate``, ``_ci_low``, ``_ci_high`` and ``_p_value`` columns, such as
        ``sweep.csv`` (rows without a result, or whose result is hidden by the disclosure
        control of real data, are left out).
    outcome
        Prefix of those columns: in the multiverse ``"primary"`` (mean difference in
        leg-pain reduction) or ``"positive"`` (risk difference of the positive outcome); in a
        sweep e.g. ``"leg_pain_reduction_4w"``.
    alpha
        Estimates with ``p_value < alpha`` are drawn in a darker colour.
    choices
        Columns shown in the indicator panel, one block of rows per choice.
    """
    cols = [f"{outcome}_{c}" for c in ("estimate", "ci_low", "ci_high", "p_value")]
    if not set(cols) <= set(table.columns):
        raise ValueError(f"outcome: the table has no {', '.join(cols)} columns for "
                         f"outcome {outcome!r}")
    _require(table, list(choices), "table")
    if any(table[c].dtype == object for c in cols):  # real data: hidden cells ("-") left out
        table = table.assign(**{c: pd.to_numeric(table[c], errors="coerce") for c in cols})
    data = table[table[cols[0]].notna()].sort_values(cols[0]).reset_index(drop=True)
    rows = []
    for choice in choices:
        # each distinct value labelled once ("none" for a missing one), then spread by code
        codes, values = pd.factorize(data[choice], use_na_sentinel=False)
        names = np.array(["none" if pd.isna(v) else str(v) for v in values], dtype=object)
        labels = names[codes] if len(codes) else np.array([], dtype=object)
        for level in sorted(set(names), key=str):
            rows.append((choice, level, labels == level))
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 3.5 + 0.16 * len(rows)),
        gridspec_kw={"height_ratios": [3, max(2, 0.16 * len(rows))]})
    x = np.arange(len(data))
    estimate, low, high, p_value = (data[c].to_numpy(float) for c in cols)
    significant = p_value < alpha
    # marks sized for the number of specifications: thousands (multiverse) or a few (sweep)
    few = len(data) <= 100
    size, width, shade = (25, 1.5, 0.8) if few else (3, 0.6, 0.35)
    for mask, colour, label in ((~significant, "#9ecae1", f"P >= {alpha}"),
                                (significant, "#08519c", f"P < {alpha}")):
        # the intervals as one collection built from an array (Axes.vlines draws the same
        # segments but builds them through masked arrays, slowly for thousands)
        drawn = mask & np.isfinite(low) & np.isfinite(high)
        segments = np.empty((int(drawn.sum()), 2, 2))
        segments[:, :, 0] = x[drawn, None]
        segments[:, 0, 1], segments[:, 1, 1] = low[drawn], high[drawn]
        top.add_collection(LineCollection(segments, colors=colour, alpha=shade,
                                          linewidth=width))
        top.scatter(x[mask], estimate[mask], s=size, color=colour, label=label, zorder=3)
    top.axhline(0, color="black", linewidth=0.8)
    default_labels = {"primary": "Mean difference in leg-pain reduction\n(cases - controls)",
                      "positive": "Risk difference, positive outcome\n(cases - controls)"}
    top.set_ylabel(ylabel or default_labels.get(outcome, f"{outcome}\n(cases - controls)"))
    top.legend(loc="upper left", frameon=False, markerscale=1 if few else 3)
    top.set_title(f"{len(data)} specifications, sorted by estimate")
    # the indicator panel: one collection of marks for every row (choice: level)
    bottom.scatter(np.concatenate([x[mask] for _, _, mask in rows] or [x[:0]]),
                   np.concatenate([np.full(mask.sum(), i) for i, (_, _, mask) in enumerate(rows)]
                                  or [x[:0]]),
                   marker="s" if few else "|", s=20 if few else 12, color="#333333",
                   linewidths=0.5)
    ticks = [f"{choice}: {level}" for choice, level, _ in rows]
    bottom.set_yticks(range(len(rows)), ticks, fontsize=7)
    bottom.set_ylim(len(rows) - 0.5, -0.5)
    bottom.set_xlabel("Specification (rank of the estimate)")
    return laid_out(fig)


def rosenbaum_plot(bounds: pd.DataFrame, *, alpha: float = 0.05) -> Figure:
    """Upper and lower bounds of the one-sided P-value against Gamma, one panel per outcome.

    Parameters
    ----------
    bounds
        :func:`esi.sensitivity.rosenbaum_bounds` output.
    alpha
        Level drawn as a horizontal line.
    """
    _require(bounds, ["outcome", "test", "gamma", "p_upper", "p_lower"], "bounds")
    outcomes = list(pd.unique(bounds["outcome"]))
    fig, axes = plt.subplots(1, len(outcomes), figsize=(5 * len(outcomes), 3.8), squeeze=False)
    for ax, name in zip(axes[0], outcomes, strict=True):
        part = bounds[bounds["outcome"] == name]
        ax.plot(part["gamma"], part["p_upper"], color="#b2182b", label="upper bound")
        ax.plot(part["gamma"], part["p_lower"], color="#2166ac", label="lower bound")
        ax.fill_between(part["gamma"], part["p_lower"], part["p_upper"], color="#cccccc",
                        alpha=0.5)
        ax.axhline(alpha, color="black", linestyle="--", linewidth=0.8)
        ax.set_ylim(0, 1)
        ax.set_xlabel("Gamma (hidden bias: odds of being a case within a pair)")
        ax.set_ylabel("One-sided P-value")
        ax.set_title(f"{name}\n({part['test'].iloc[0]}, {part['alternative'].iloc[0]})"
                     if "alternative" in part else name, fontsize=10)
        ax.legend(frameon=False)
    return laid_out(fig)


def power_curve_plot(curve: pd.DataFrame, *, target: float = 0.8,
                     mdd: float | None = None) -> Figure:
    """Simulated power against the true difference, one line per n per group.

    Parameters
    ----------
    curve
        :func:`esi.sensitivity.power_curve` output.
    target
        Power drawn as a horizontal line (80%).
    mdd
        Minimum detectable difference to mark (optional).
    """
    _require(curve, ["difference", "n_per_group", "power"], "curve")
    fig, ax = plt.subplots(figsize=(6, 4))
    for n, part in curve.groupby("n_per_group"):
        ax.plot(part["difference"], part["power"], marker="o", markersize=3,
                label=f"{n} per group")
    ax.axhline(target, color="black", linestyle="--", linewidth=0.8)
    if mdd is not None and np.isfinite(mdd):
        ax.axvline(mdd, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"detectable: {mdd:.2f}", (mdd, 0.05), xytext=(4, 0),
                    textcoords="offset points", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("True difference in leg-pain reduction (NRS points)")
    ax.set_ylabel("Power")
    ax.legend(frameon=False)
    return laid_out(fig)


def influence_plot(table: pd.DataFrame) -> Figure:
    """Estimate and CI with each matched pair left out, against the all-pairs estimate.

    Parameters
    ----------
    table
        :func:`esi.sensitivity.leave_one_pair_out` output. Rows are labelled by matched-set
        number (``subclass``), never by patient id, so the figure holds no identifier.
    """
    _require(table, ["left_out", "subclass", "estimate", "ci_low", "ci_high"], "table")
    full = table[table["left_out"] == "none"].iloc[0]
    sets = table[table["left_out"] == "set"].reset_index(drop=True)
    y = np.arange(len(sets))
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(sets) + 1.5))
    ax.axvspan(full["ci_low"], full["ci_high"], color="#dddddd", label="all pairs: 95% CI")
    ax.axvline(full["estimate"], color="black", linewidth=1, label="all pairs: estimate")
    ax.axvline(0, color="grey", linestyle=":", linewidth=0.8)
    changed = sets.get("changes_conclusion", pd.Series(False, index=sets.index)).to_numpy()
    colours = np.where(changed, "#b2182b", "#2166ac")
    ax.hlines(y, sets["ci_low"], sets["ci_high"], colors=colours)
    ax.scatter(sets["estimate"], y, color=colours, zorder=3, s=14)
    ax.set_yticks(y, [f"without pair {int(t)}" for t in sets["subclass"]], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("Mean difference in leg-pain reduction (cases - controls)")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    return laid_out(fig)
