"""Figures of the outcome analysis: a forest plot of effect sizes and the pain / ODI trajectories.

Both functions draw with matplotlib's object API and return the Figure; they never call
``plt.show()`` (notebooks end the cell with ``plt.show()`` or ``;``).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from esi.outcomes import TIMEPOINTS, _float, _indexed, apply_missing_rule
from esi.plots import laid_out

__all__ = ["forest_plot", "trajectory_plot", "EFFECT_LABELS"]

#: Axis labels and the value of "no effect" for each effect-size name.
EFFECT_LABELS = {
    "hedges_g": ("Hedges' g (cases - controls)", 0.0, "linear"),
    "hedges_g_z": ("Paired Hedges' g_z (cases - controls)", 0.0, "linear"),
    "rank_biserial": ("Rank-biserial r", 0.0, "linear"),
    "odds_ratio": ("Odds ratio (cases vs controls)", 1.0, "log"),
    "mean_difference": ("Mean difference (cases - controls)", 0.0, "linear"),
    "risk_difference": ("Risk difference (cases - controls)", 0.0, "linear"),
}

_GROUP_STYLE = {1: ("Near-normal imaging", "C0", "o"), 0: ("Concordant pathology", "C1", "s")}


def _panel(ax: Axes, rows: pd.DataFrame, name: str, value: str, lo: str, hi: str) -> None:
    label, null, scale = EFFECT_LABELS.get(name, (name, 0.0, "linear"))
    y = np.arange(len(rows))[::-1]
    # real data: cells hidden by the disclosure control ("-") are not drawn
    hidden = rows[value].map(lambda v: isinstance(v, str)).to_numpy(bool)
    est, low, high = (pd.to_numeric(rows[c], errors="coerce").to_numpy(float)
                      for c in (value, lo, hi))
    finite = np.isfinite(est) & np.isfinite(low) & np.isfinite(high)
    if scale == "log":
        finite &= (low > 0) & (est > 0)
    colours = np.where(rows["primary"].to_numpy(bool), "C3", "k")
    for yi, e, a, b, c, ok, h in zip(y, est, low, high, colours, finite, hidden, strict=True):
        if ok:
            ax.plot([a, b], [yi, yi], color=c, lw=1.5)
            ax.plot([e], [yi], marker="s", color=c, ms=6)
        else:
            ax.text(null, yi, "not shown (counts below 5)" if h else "not estimable",
                    va="center", ha="center", fontsize=8, color="0.4")
    ax.axvline(null, color="0.5", ls="--", lw=1)
    if scale == "log" and finite.any():
        ax.set_xscale("log")
    labels = [f"{lab} ({t} wk)" for lab, t in zip(rows["label"], rows["timepoint_weeks"],
                                                   strict=True)]
    ax.set_yticks(y, labels)
    ax.set_xlabel(label)
    ax.set_ylim(-0.7, len(rows) - 0.3)


def forest_plot(outcomes_table: pd.DataFrame, ax: Axes | None = None, *,
                measure: str = "effect_size") -> Figure:
    """Forest plot of effect sizes with confidence intervals across outcomes and time points.

    Parameters
    ----------
    outcomes_table
        Output of :func:`esi.compare.compare_matched` (or ``compare_larger_cohort``).
    ax
        Axes to draw on; allowed only when the table holds a single kind of effect size
        (otherwise each kind needs its own scale and a new figure with one panel per kind is
        made).
    measure
        ``"effect_size"`` (default: Hedges' g / rank-biserial r for continuous outcomes, odds
        ratio on a log axis for binary ones) or ``"estimate"`` (mean / risk differences).

    Returns
    -------
    matplotlib.figure.Figure
        The primary outcome is drawn in red; rows whose interval cannot be estimated, or is
        hidden by the disclosure control of real data (``"-"``, :mod:`esi.disclosure`), say
        so.
    """
    if measure == "effect_size":
        name_col, value, lo, hi = "effect_size_name", "effect_size", "effect_ci_low", "effect_ci_high"
    elif measure == "estimate":
        name_col, value, lo, hi = "estimate_name", "estimate", "ci_low", "ci_high"
    else:
        raise ValueError(f"measure must be 'effect_size' or 'estimate', got {measure!r}")
    missing = {name_col, value, lo, hi, "label", "timepoint_weeks", "primary"} - set(
        outcomes_table.columns)
    if missing:
        raise ValueError(f"outcomes_table lacks column(s): {sorted(missing)}")
    if outcomes_table.empty:
        raise ValueError("outcomes_table is empty")
    kinds = list(dict.fromkeys(outcomes_table[name_col]))
    if ax is not None:
        if len(kinds) > 1:
            raise ValueError(
                f"ax: the table mixes effect sizes {kinds}, which need separate axes; pass ax=None"
            )
        axes = [ax]
        fig = ax.figure
    else:
        heights = [int((outcomes_table[name_col] == k).sum()) for k in kinds]
        fig, axes = plt.subplots(len(kinds), 1, figsize=(7.5, 0.45 * sum(heights) + 1.2 * len(kinds)),
                                 gridspec_kw={"height_ratios": heights}, squeeze=False)
        axes = list(axes[:, 0])
    for a, kind in zip(axes, kinds, strict=True):
        _panel(a, outcomes_table[outcomes_table[name_col] == kind], kind, value, lo, hi)
    test = ", ".join(dict.fromkeys(outcomes_table["test"])) if "test" in outcomes_table else ""
    rule = outcomes_table["missing_rule"].iloc[0] if "missing_rule" in outcomes_table else ""
    axes[0].set_title(f"Cases vs. controls\n({test}; missing: {rule})", fontsize=10)
    return laid_out(fig)


def trajectory_plot(registry: pd.DataFrame, match=None, ax: Sequence[Axes] | None = None, *,
                    missing: str = "complete_case", suppress_below: int | None = None) -> Figure:
    """Mean leg pain, back pain and ODI at baseline, 4 and 12 weeks by imaging group.

    Parameters
    ----------
    registry
        Registry with ``near_normal``, baseline and follow-up columns.
    match
        Optional :class:`esi.matching.MatchResult`; if given only matched patients are shown
        (each once), otherwise every patient with ``near_normal`` 0 or 1.
    ax
        Three Axes (leg pain, back pain, ODI) to draw on; default a new 1 x 3 figure.
    missing
        Single-imputation rule applied first (``"complete_case"``, ``"locf"``, ``"bocf"``).
    suppress_below
        Real data: a visit seen by 1 .. suppress_below - 1 patients of a group is not drawn
        and its n reads ``<5`` (:func:`esi.disclosure.shown_count`).

    Returns
    -------
    matplotlib.figure.Figure
        Means with 95% t intervals of the patients seen at each visit; n per point in the
        legend text of the x axis.
    """
    reg = _indexed(registry)
    if "near_normal" not in reg.columns:
        raise ValueError("registry lacks the 'near_normal' column")
    reg = apply_missing_rule(reg, missing)
    if match is not None:
        pairs = getattr(match, "pairs", None)
        if not isinstance(pairs, pd.DataFrame):
            raise ValueError("match must have a 'pairs' DataFrame")
        ids = pd.unique(pd.concat([pairs["treated"], pairs["control"]]).astype(str))
        reg = reg.loc[[i for i in ids if i in reg.index]]
    group = pd.to_numeric(reg["near_normal"], errors="coerce")
    measures = [("leg_pain", "Average leg pain (0-10)"), ("back_pain", "Average back pain (0-10)"),
                ("odi", "ODI (0-100)")]
    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
        axes = list(axes)
    else:
        axes = list(np.ravel(ax))
        if len(axes) != 3:
            raise ValueError(f"ax must hold 3 Axes (leg pain, back pain, ODI), got {len(axes)}")
        fig = axes[0].figure
    weeks = (0, *TIMEPOINTS)
    from scipy import stats

    from esi.disclosure import shown_count

    for a, (field, title) in zip(axes, measures, strict=True):
        for g, (label, colour, marker) in _GROUP_STYLE.items():
            sub = reg[group == g]
            means, lows, highs, ns = [], [], [], []
            for t in weeks:
                col = f"baseline_{field}" if t == 0 else f"{field}_{t}w"
                vals = _float(sub[col]).dropna().to_numpy() if col in sub else np.array([])
                n = len(vals)
                if suppress_below is not None and 0 < n < suppress_below:
                    vals = np.array([])  # a small group's mean is not drawn
                m = vals.mean() if len(vals) else np.nan
                half = (stats.t.ppf(0.975, n - 1) * vals.std(ddof=1) / np.sqrt(n)
                        if len(vals) > 1 else np.nan)
                means.append(m)
                lows.append(m - half)
                highs.append(m + half)
                ns.append(n)
            offset = -0.3 if g == 1 else 0.3
            x = np.asarray(weeks, dtype=float) + offset
            a.errorbar(x, means, yerr=[np.subtract(means, lows), np.subtract(highs, means)],
                       color=colour, marker=marker, capsize=3,
                       label=f"{label} (n = {'/'.join(shown_count(k, suppress_below) for k in ns)})")
        a.set_xticks(weeks, ["Baseline", "4 wk", "12 wk"])
        a.set_title(title, fontsize=10)
        a.legend(fontsize=7, loc="best")
    return laid_out(fig)
