"""Matched-pair outcome tables shared by the Rosenbaum bounds and the influence analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["pair_values"]

_PAIR_COLUMNS = ("treated", "control")


def pair_values(pairs: pd.DataFrame, outcomes: pd.DataFrame, column: str, *,
                one_to_one: bool = False) -> pd.DataFrame:
    """Outcome of each matched case and its control, one row per matched control.

    Parameters
    ----------
    pairs
        ``MatchResult.pairs``: columns ``treated`` and ``control`` (patient ids), and
        ``subclass`` (the matched set; optional, the treated id is used without it).
    outcomes
        Per-patient outcomes indexed by ``patient_id`` (``esi.outcomes.derive_outcomes``).
    column
        The outcome column, e.g. ``"leg_pain_reduction_4w"``.
    one_to_one
        Require exactly one control per case (Rosenbaum's bounds for matched pairs).

    Returns
    -------
    pandas.DataFrame
        Columns ``subclass``, ``treated``, ``control``, ``y_treated``, ``y_control``; only the
        pairs where both outcomes are known (a pair with a missing outcome carries no
        within-pair comparison). ``attrs["n_pairs"]`` is the number of pairs before that
        and ``attrs["n_incomplete"]`` the number dropped.

    Raises
    ------
    ValueError
        If ``pairs`` lacks ``treated``/``control``, ``column`` is not in ``outcomes``, a patient
        id is missing from ``outcomes``, or ``one_to_one`` and a case has several controls.
    """
    missing_cols = [c for c in _PAIR_COLUMNS if c not in pairs.columns]
    if missing_cols:
        raise ValueError(f"pairs: missing column(s) {', '.join(missing_cols)} "
                         "(expected MatchResult.pairs with treated, control)")
    if column not in outcomes.columns:
        raise ValueError(f"column: {column!r} is not an outcome column "
                         f"(have {', '.join(map(str, outcomes.columns[:12]))}...)")
    table = pd.DataFrame({
        "subclass": (pairs["subclass"] if "subclass" in pairs.columns
                     else pairs["treated"]).to_numpy(),
        "treated": pairs["treated"].astype(str).to_numpy(),
        "control": pairs["control"].astype(str).to_numpy(),
    })
    if one_to_one and table["treated"].duplicated().any():
        dup = table.loc[table["treated"].duplicated(), "treated"].iloc[0]
        raise ValueError(f"pairs: case {dup!r} has more than one matched control; Rosenbaum "
                         "bounds here are for 1:1 matched pairs (use ratio=1)")
    index = outcomes.index.astype(str)
    values = pd.Series(outcomes[column].to_numpy(), index=index)
    unknown = sorted(set(table["treated"]).union(table["control"]) - set(index))
    if unknown:
        raise ValueError(f"outcomes: no row for patient(s) {', '.join(unknown[:5])}")
    table["y_treated"] = pd.to_numeric(values.reindex(table["treated"]).to_numpy(),
                                       errors="coerce").astype(float)
    table["y_control"] = pd.to_numeric(values.reindex(table["control"]).to_numpy(),
                                       errors="coerce").astype(float)
    complete = np.isfinite(table["y_treated"]) & np.isfinite(table["y_control"])
    out = table.loc[complete].reset_index(drop=True)
    out.attrs["n_pairs"] = len(table)
    out.attrs["n_incomplete"] = int((~complete).sum())
    return out
