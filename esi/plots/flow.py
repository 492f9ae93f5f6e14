"""The cohort flow diagram (notebook 01)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from esi.plots import laid_out

__all__ = ["flow_diagram"]


def flow_diagram(flow: pd.DataFrame, groups: pd.DataFrame | None = None,
                 suppress_below: int | None = None) -> Figure:
    """Draw the eligibility flow: one box per step with the patients remaining, and beside
    it the patients excluded at that step with their reasons.

    Parameters
    ----------
    flow
        :attr:`esi.cohort.Cohort.flow` (columns ``criterion``, ``n_before``, ``n_excluded``,
        ``n_after``, ``reasons``).
    groups
        Optional final split (:meth:`esi.cohort.Cohort.group_counts`): the eligible near-normal
        and abnormal patients are drawn under the last box.
    suppress_below
        For real data: the flow and the groups as disclosed (:func:`esi.disclosure.disclose`,
        declarations ``cohort_flow`` and ``group_counts``): counts in
        ``1 .. suppress_below - 1`` are shown as ``<N`` and the counts that would reveal them
        by subtraction as ``-``, in every label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from esi.disclosure import disclose, shown_count

    if suppress_below:
        flow = disclose(flow, "cohort_flow", threshold=suppress_below)
        if groups is not None:
            groups = disclose(groups, "group_counts", threshold=suppress_below)

    def n(x: object) -> str:
        return shown_count(x, None)

    def reasons(text: str) -> str:
        return text.replace("; ", "\n") if isinstance(text, str) else ""

    steps = len(flow)
    height = 1.25 * (steps + 2)
    fig, ax = plt.subplots(figsize=(9.5, height))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, steps + 2)
    ax.axis("off")
    box = dict(boxstyle="round,pad=0.4", fc="#eef3f8", ec="#335577")
    exc = dict(boxstyle="round,pad=0.3", fc="#fbeeee", ec="#aa5555")
    y = steps + 1.5
    ax.text(3, y, f"Registry\nn = {n(flow['n_before'].iloc[0])}", ha="center", va="center",
            bbox=box, fontsize=9)
    for _, row in flow.iterrows():
        y_next = y - 1
        ax.annotate("", xy=(3, y_next + 0.3), xytext=(3, y - 0.3),
                    arrowprops=dict(arrowstyle="->", color="#335577"))
        ax.text(3, y_next, f"{row['criterion']}\nn = {n(row['n_after'])}", ha="center",
                va="center", bbox=box, fontsize=8.5)
        if isinstance(row["n_excluded"], str) or row["n_excluded"]:
            ax.annotate("", xy=(6.1, y - 0.5), xytext=(3, y - 0.5),
                        arrowprops=dict(arrowstyle="->", color="#aa5555"))
            detail = reasons(row["reasons"])
            ax.text(6.2, y - 0.5, f"excluded: {n(row['n_excluded'])}\n{detail}", ha="left",
                    va="center", bbox=exc, fontsize=7.5)
        y = y_next
    if groups is not None:
        g = groups.set_index("imaging_group")["eligible"]
        ax.text(1.6, y - 0.85, f"near-normal MRI\nn = {n(g.get('near_normal', 0))}",
                ha="center", va="center", bbox=box, fontsize=8.5)
        ax.text(4.4, y - 0.85, f"concordant pathology\nn = {n(g.get('abnormal', 0))}",
                ha="center", va="center", bbox=box, fontsize=8.5)
        for x in (1.6, 4.4):
            ax.annotate("", xy=(x, y - 0.55), xytext=(3, y - 0.3),
                        arrowprops=dict(arrowstyle="->", color="#335577"))
    ax.set_title("Cohort flow", fontsize=11)
    return laid_out(fig)
