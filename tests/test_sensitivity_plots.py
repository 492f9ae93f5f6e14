"""Figures of the sensitivity analyses (esi.plots.sensitivity) draw what they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from esi.plots import sensitivity as plots  # noqa: E402
from esi.sensitivity import (  # noqa: E402
    leave_one_pair_out,
    power_curve,
    rosenbaum_bounds,
    specification_grid,
)


def _pairs_outcomes(n=14, seed=1):
    rng = np.random.default_rng(seed)
    ids_t, ids_c = [f"T{i}" for i in range(n)], [f"C{i}" for i in range(n)]
    outcomes = pd.DataFrame({"leg_pain_reduction_4w": rng.normal(2.4, 2.3, 2 * n).round(1),
                             "positive_outcome_4w": rng.random(2 * n) < 0.4},
                            index=ids_t + ids_c)
    pairs = pd.DataFrame({"treated": ids_t, "control": ids_c, "subclass": range(1, n + 1)})
    return pairs, outcomes


def test_specification_curve_sorts_estimates_and_marks_choices():
    grid = specification_grid(ratio=[1, 2], caliper=[None, 0.2], missing=["complete_case"],
                              test=["welch"]).head(40)
    rng = np.random.default_rng(2)
    est = rng.normal(0, 1, len(grid))
    table = grid.assign(primary_estimate=est, primary_ci_low=est - 1, primary_ci_high=est + 1,
                        primary_p_value=rng.random(len(grid)))
    fig = plots.specification_curve(table)
    top, bottom = fig.axes
    drawn = np.concatenate([c.get_offsets()[:, 1] for c in top.collections
                            if hasattr(c, "get_offsets") and len(c.get_offsets())
                            and c.get_offsets().shape[1] == 2 and c.__class__.__name__ ==
                            "PathCollection"])
    assert sorted(drawn) == sorted(est)
    labels = [t.get_text() for t in bottom.get_yticklabels()]
    assert "caliper: none" in labels and "ratio: 2" in labels
    # one mark per specification and choice, on the row of its level
    marks = np.concatenate([c.get_offsets() for c in bottom.collections])
    assert len(marks) == len(table) * len(plots._CHOICES)
    ordered = table.sort_values("primary_estimate").reset_index(drop=True)
    row = labels.index("ratio: 2")
    assert sorted(marks[marks[:, 1] == row, 0]) == list(np.flatnonzero(ordered["ratio"] == 2))
    # intervals: one segment per specification
    segments = [s for c in top.collections if c.__class__.__name__ == "LineCollection"
                for s in c.get_segments()]
    assert sorted(s[1, 1] - s[0, 1] for s in segments) == pytest.approx([2.0] * len(table))
    assert fig.get_layout_engine() is None  # laid out once; savefig draws once
    plt.close(fig)
    with pytest.raises(ValueError, match="outcome"):
        plots.specification_curve(table, outcome="odi")


def test_other_figures_draw():
    pairs, outcomes = _pairs_outcomes()
    for fig in (plots.rosenbaum_plot(rosenbaum_bounds(pairs, outcomes, gamma_max=2)),
                plots.power_curve_plot(power_curve([0, 1, 2], (14, 28), n_sim=100), mdd=2.6),
                plots.influence_plot(leave_one_pair_out(pairs, outcomes))):
        assert fig.axes
        assert fig.get_layout_engine() is None
        plt.close(fig)
    with pytest.raises(ValueError, match="bounds"):
        plots.rosenbaum_plot(pd.DataFrame({"gamma": [1]}))
