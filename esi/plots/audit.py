"""Figures of the reproduction audit (notebook 05): SPRITE distributions, GRIM/GRIMMER grid,
published versus reproduced figures.

Every function draws with matplotlib's object API and returns the Figure; none calls
``plt.show()``.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from esi.plots import laid_out

__all__ = ["sprite_plot", "grim_plot", "reproduction_plot"]


def sprite_plot(distribution: pd.DataFrame, *, ncols: int = 2,
                width: float = 0.4) -> Figure:
    """Distribution of values over the SPRITE samples of each published mean/SD.

    Parameters
    ----------
    distribution
        :func:`esi.audit.sprite_audit` ``["distribution"]`` (``sprite_distribution.csv``):
        columns ``id``, ``value``, ``share``, ``share_given_p``.
    ncols
        Panels per row.
    width
        Bar width as a fraction of the value step.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per published mean (its ``id``): the share of each value over all samples
        (grey) and over the samples that give a published P with some test (blue, when a P
        applies).
    """
    need = {"id", "value", "share", "share_given_p"}
    if not need.issubset(distribution.columns):
        raise ValueError(f"distribution needs columns {sorted(need)}")
    ids = list(dict.fromkeys(distribution["id"]))
    if not ids:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no SPRITE samples", ha="center", va="center")
        ax.set_axis_off()
        return laid_out(fig)
    nrows = math.ceil(len(ids) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 2.6 * nrows), squeeze=False)
    # Each set of bars is one collection of rectangles (what ax.bar draws, without an artist
    # per bar); the legend shows one patch per label, in order of first appearance.
    legend: dict[str, Patch] = {}

    def bars(ax, left: np.ndarray, height: np.ndarray, w: float, colour: str, label: str):
        x0, x1 = left, left + w
        y0 = np.zeros_like(height)
        verts = np.stack([np.column_stack(c) for c in
                          ((x0, y0), (x1, y0), (x1, height), (x0, height))], axis=1)
        coll = PolyCollection(verts, facecolors=colour, label=label)
        coll.sticky_edges.y.append(0)  # as ax.bar: no margin below the bars' base
        ax.add_collection(coll)
        legend.setdefault(label, Patch(facecolor=colour, label=label))

    for ax, fid in zip(axes.ravel(), ids, strict=False):
        d = distribution[distribution["id"] == fid].sort_values("value")
        v = d["value"].to_numpy(float)
        step = float(np.min(np.diff(v))) if len(v) > 1 else 1.0
        w = width * step
        # ax.bar(x, ...) centres a bar of width w on x: the grey bar ends at v, the blue starts.
        bars(ax, (v - w / 2) - w / 2, d["share"].to_numpy(float), w, "0.6", "all samples")
        given = d["share_given_p"].to_numpy(float)
        if np.isfinite(given).any():
            bars(ax, (v + w / 2) - w / 2, np.nan_to_num(given), w, "C0",
                 "samples giving the published P")
        ax.set_title(fid, fontsize=10)
        ax.set_xlabel("value of one patient")
        ax.set_ylabel("share")
    for ax in axes.ravel()[len(ids):]:
        ax.set_axis_off()
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=2, frameon=False)
    return laid_out(fig, rect=(0, 0.06, 1, 1))


def grim_plot(grim_audit: pd.DataFrame) -> Figure:
    """Consistency of every published mean/SD (rows) on every scale tried (columns).

    Parameters
    ----------
    grim_audit
        :func:`esi.audit.grim_audit` output (``grim_audit.csv``).

    Returns
    -------
    matplotlib.figure.Figure
        A grid: green = consistent, red = inconsistent, blank = not tried; the figure's own
        scale is outlined.
    """
    tab = grim_audit[grim_audit["check"].isin(["GRIM", "GRIMMER"])]
    ids = list(dict.fromkeys(tab["id"]))
    scales = list(dict.fromkeys(tab.loc[~tab["own_scale"].astype(bool), "scale"]))
    cols = ["own scale"] + scales
    grid = np.full((len(ids), len(cols)), np.nan)
    for _, r in tab.iterrows():
        j = 0 if r["own_scale"] else cols.index(r["scale"])
        grid[ids.index(r["id"]), j] = float(bool(r["consistent"]))
    fig, ax = plt.subplots(figsize=(1.4 * len(cols) + 3, 0.32 * len(ids) + 1.8))
    cmap = plt.matplotlib.colors.ListedColormap(["#d73027", "#1a9850"])
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), [c.replace(" + ", "\n+ ") for c in cols], fontsize=7,
                  rotation=30, ha="right")
    ax.set_yticks(range(len(ids)), ids, fontsize=8)
    ax.add_patch(plt.Rectangle((-0.5, -0.5), 1, len(ids), fill=False, lw=2, ec="k"))
    ax.set_title("GRIM / GRIMMER: green consistent, red inconsistent", fontsize=10)
    return laid_out(fig)


def reproduction_plot(reproduction: pd.DataFrame) -> Figure:
    """Published against reproduced value of every figure (reproduction.csv).

    Returns
    -------
    matplotlib.figure.Figure
        One row per figure: the difference reproduced - published in units of the last
        published decimal (0 = exact to the published decimals), coloured by ``match``.
    """
    r = reproduction.copy()
    diff = (r["reproduced"].astype(float) - r["published"].astype(float)) * \
        10.0 ** r["decimals"].astype(float)
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(r) + 1.5))
    y = np.arange(len(r))[::-1]
    colours = np.where(r["match"].astype(bool), "C2", "C3")
    ax.scatter(diff.fillna(0), y, c=colours, zorder=3)
    ax.axvline(0, color="0.5", lw=1, ls="--")
    ax.set_yticks(y, r["id"], fontsize=8)
    ax.set_xlabel("reproduced - published (units of the last published decimal)")
    ax.set_title("Green: matches (bounds: satisfied); red: does not", fontsize=10)
    return laid_out(fig)
