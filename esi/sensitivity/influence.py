"""Leave-one-pair-out influence on the primary estimate.

With 14 matched pairs one unusual patient can carry the comparison. :func:`leave_one_pair_out`
drops each matched set in turn and recomputes the estimate (mean case-minus-control
difference in the outcome), its 95% confidence interval and the P-value of the analysis's
test, so a reader sees how far any single pair moves the result and whether any single pair
changes the conclusion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from esi import stats as st
from esi.sensitivity._pairs import pair_values

__all__ = ["leave_one_pair_out", "matched_estimate"]

_TESTS = {
    "welch": (st.welch_t, {"paired": False, "equal_var": False}),
    "student": (st.student_t, {"paired": False, "equal_var": True}),
    "mann_whitney": (st.mann_whitney, {"paired": False, "equal_var": False}),
    "paired_t": (st.paired_t, {"paired": True}),
    "wilcoxon": (st.wilcoxon_signed_rank, {"paired": True}),
}


def _collapse(table: pd.DataFrame) -> pd.DataFrame:
    """One row per matched set: the case and the mean of its controls."""
    grouped = table.groupby("subclass", sort=False)
    return pd.DataFrame({
        "treated": grouped["treated"].first(),
        "control": grouped["control"].agg(lambda ids: ";".join(ids)),
        "y_treated": grouped["y_treated"].first(),
        "y_control": grouped["y_control"].mean(),
    }).reset_index()


def matched_estimate(sets: pd.DataFrame, *, test: str = "welch",
                     confidence: float = 0.95) -> dict[str, float]:
    """Mean difference, its interval and the P-value of ``test`` for collapsed matched sets.

    Parameters
    ----------
    sets
        One row per matched set with ``y_treated`` and ``y_control`` (the mean of the set's
        controls), e.g. from :func:`leave_one_pair_out`'s internal collapse.
    test
        The run parameter ``test``: ``"welch"``, ``"student"``, ``"mann_whitney"`` (unpaired:
        cases against the controls' values), ``"paired_t"`` or ``"wilcoxon"`` (paired).
    confidence
        Level of the interval (a t interval: paired for paired tests, Welch or Student
        otherwise; the rank tests give no interval of their own).

    Returns
    -------
    dict
        ``estimate`` (mean of cases minus mean of controls), ``ci_low``, ``ci_high``,
        ``p_value`` (two-sided), ``n_sets``.
    """
    if test not in _TESTS:
        raise ValueError(f"test: must be one of {', '.join(_TESTS)}, got {test!r}")
    function, options = _TESTS[test]
    x, y = sets["y_treated"].to_numpy(float), sets["y_control"].to_numpy(float)
    effect = st.mean_difference(x, y, confidence=confidence, **options)
    result = function(x, y)
    return {"estimate": float(effect.estimate), "ci_low": float(effect.ci_low),
            "ci_high": float(effect.ci_high), "p_value": float(result.p_value),
            "n_sets": len(sets)}


def leave_one_pair_out(pairs: pd.DataFrame, outcomes: pd.DataFrame, *,
                       outcome: str = "leg_pain_reduction_4w", test: str = "welch",
                       alpha: float = 0.05) -> pd.DataFrame:
    """Recompute the primary estimate with each matched pair (matched set) left out.

    Parameters
    ----------
    pairs
        ``MatchResult.pairs`` (``treated``, ``control``, ``subclass``). With several controls
        per case a matched set is left out whole, and each set enters as its case and the
        mean of its controls (the ATT weighting of matching without replacement).
    outcomes
        Per-patient outcomes indexed by ``patient_id`` (after the missing-data rule); sets
        whose case or controls all lack the outcome are left out throughout.
    outcome
        The outcome column.
    test
        Test for the P-value (run parameter ``test``), see :func:`matched_estimate`.
    alpha
        Significance level for the ``significant`` column.

    Returns
    -------
    pandas.DataFrame
        First row ``left_out = "none"`` (all sets), then one row per set: ``left_out``
        (``"none"`` or ``"set"``), ``subclass``, ``treated``, ``control`` (ids, ``;``-joined
        for several), ``y_treated``, ``y_control``, ``estimate``, ``ci_low``, ``ci_high``,
        ``p_value``, ``n_sets``, ``change`` (estimate minus the all-sets estimate),
        ``significant`` (``p_value < alpha``), ``changes_conclusion`` (``significant``
        differs from the all-sets row).

    Raises
    ------
    ValueError
        With fewer than 3 complete matched sets, or an unknown test/column.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be between 0 and 1, got {alpha!r}")
    table = pair_values(pairs, outcomes, outcome)
    sets = _collapse(table)
    if len(sets) < 3:
        raise ValueError(f"pairs: need at least 3 complete matched sets for {outcome!r}, "
                         f"have {len(sets)}")
    full = matched_estimate(sets, test=test)
    rows = [{"left_out": "none", "subclass": None, "treated": "", "control": "",
             "y_treated": np.nan, "y_control": np.nan, **full}]
    for i, row in sets.iterrows():
        rows.append({"left_out": "set", "subclass": row["subclass"], "treated": row["treated"],
                     "control": row["control"], "y_treated": row["y_treated"],
                     "y_control": row["y_control"],
                     **matched_estimate(sets.drop(index=i), test=test)})
    out = pd.DataFrame(rows)
    out["change"] = out["estimate"] - full["estimate"]
    out["significant"] = out["p_value"] < alpha
    out["changes_conclusion"] = out["significant"] != bool(full["p_value"] < alpha)
    return out
