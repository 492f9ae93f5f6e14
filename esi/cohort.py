"""Cohort definition: who is eligible, and which imaging group each eligible patient is in.

The steps, in order (each excludes patients and says why; :attr:`Cohort.flow` counts them):

1. ``study_window`` - injection between ``window_start`` and ``window_end`` (the paper:
   5 January 2009 to 1 November 2024).
2. ``adult`` - aged 18 or over at the injection.
3. ``no_prior_surgery`` - no previous lumbar spine surgery.
4. ``mri_on_file`` - a lumbar MRI is available.
5. ``followed_up`` - at least one of the 4- and 12-week visits took place.
6. ``imaging_group`` - the MRI is either *near-normal* or shows *concordant pathology*:

   - **near_normal**: no nerve-root compression, disc herniation grade 1 or less (a bulge at
     most), canal and foraminal stenosis grade 1 or less, degenerative change grade 1 or less
     ("minor degenerative changes at most", as the paper defines it);
   - **abnormal** (concordant pathology): root compression, disc herniation grade 2 or more,
     or stenosis grade 2 or more, *and* ``pathology_concordant`` true;
   - anyone else is excluded: pathology that does not explain the symptoms (``discordant
     pathology``) or moderate/severe degeneration with no root-level pathology (``degeneration
     without concordant pathology``).

The treatment indicator of the propensity analysis is ``near_normal`` (1 = near-normal imaging).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Cohort", "define_cohort", "imaging_group", "STUDY_WINDOW"]

#: Treatment dates of the paper (first and last injection).
STUDY_WINDOW = (_dt.date(2009, 1, 5), _dt.date(2024, 11, 1))


@dataclass(frozen=True)
class Cohort:
    """The eligible patients and how they were reached.

    Attributes
    ----------
    eligible : pandas.DataFrame
        Registry rows of the eligible patients (index ``patient_id``) with two added columns:
        ``imaging_group`` (``"near_normal"`` or ``"abnormal"``) and ``near_normal`` (int 0/1,
        the treatment indicator for matching).
    flow : pandas.DataFrame
        One row per step: ``step`` (identifier), ``criterion`` (in words), ``n_before``,
        ``n_excluded``, ``n_after``, ``reasons`` (exclusion reason -> count, as text).
    excluded : pandas.DataFrame
        One row per excluded patient (index ``patient_id``): ``step``, ``reason``, and
        ``imaging_group`` where it was known (``near_normal``/``abnormal``/``other``/empty).
    """

    eligible: pd.DataFrame = field(repr=False)
    flow: pd.DataFrame
    excluded: pd.DataFrame = field(repr=False)

    @property
    def n_near_normal(self) -> int:
        """Eligible near-normal imaging cases."""
        return int((self.eligible["near_normal"] == 1).sum())

    @property
    def n_abnormal(self) -> int:
        """Eligible patients with concordant MRI pathology (the control pool)."""
        return int((self.eligible["near_normal"] == 0).sum())

    def group_counts(self) -> pd.DataFrame:
        """Counts by imaging group among eligible and excluded patients.

        Returns
        -------
        pandas.DataFrame
            Columns ``imaging_group``, ``eligible``, ``excluded``.
        """
        groups = ["near_normal", "abnormal", "other"]
        exc = self.excluded["imaging_group"].value_counts()
        elig = self.eligible["imaging_group"].value_counts()
        return pd.DataFrame({
            "imaging_group": groups,
            "eligible": [int(elig.get(g, 0)) for g in groups],
            "excluded": [int(exc.get(g, 0)) for g in groups],
        })


def imaging_group(registry: pd.DataFrame) -> pd.Series:
    """Classify each patient's MRI: ``near_normal``, ``abnormal``, ``discordant``,
    ``degenerative`` or ``no_mri``.

    Parameters
    ----------
    registry
        Typed registry (:func:`esi.io.read_registry`).

    Returns
    -------
    pandas.Series
        Indexed like ``registry``, of dtype ``str``; the rules are in the module docstring.
    """
    avail = registry["mri_available"].fillna(False).astype(bool)
    comp = registry["nerve_root_compression"].fillna(False).astype(bool)

    def grade(c: str) -> np.ndarray:
        return registry[c].astype("Float64").fillna(0).to_numpy(dtype=float)

    hern, canal, foram, degen = (grade(c) for c in ("disc_herniation_grade",
                                                    "canal_stenosis_grade",
                                                    "foraminal_stenosis_grade",
                                                    "degenerative_grade"))
    conc = registry["pathology_concordant"].fillna(False).astype(bool).to_numpy()
    pathology = comp.to_numpy() | (hern >= 2) | (canal >= 2) | (foram >= 2)
    near = ~pathology & (hern <= 1) & (canal <= 1) & (foram <= 1) & (degen <= 1)
    out = np.where(pathology & conc, "abnormal",
                   np.where(pathology, "discordant",
                            np.where(near, "near_normal", "degenerative")))
    out = np.where(avail.to_numpy(), out, "no_mri")
    return pd.Series(out, index=registry.index, name="imaging", dtype="str")


_REASON_TEXT = {
    "discordant": "MRI pathology not concordant with symptoms",
    "degenerative": "moderate/severe degeneration without concordant pathology",
}


def define_cohort(registry: pd.DataFrame, *, window_start: _dt.date = STUDY_WINDOW[0],
                  window_end: _dt.date = STUDY_WINDOW[1], min_age: int = 18) -> Cohort:
    """Apply the eligibility steps and assign imaging groups.

    Parameters
    ----------
    registry
        Typed registry from :func:`esi.io.read_registry` (index ``patient_id``).
    window_start, window_end
        First and last injection dates included.
    min_age
        Youngest age included, in years.

    Returns
    -------
    Cohort
        Eligible patients with ``imaging_group`` and ``near_normal``; the flow table; the
        excluded patients with their reason.
    """
    if window_end < window_start:
        raise ValueError(f"window_end {window_end} is before window_start {window_start}")
    imaging = imaging_group(registry)
    group_of = imaging.map(lambda g: g if g in ("near_normal", "abnormal") else "other")
    if "procedure_date" in registry.columns:
        dates = pd.to_datetime(registry["procedure_date"]).dt.date
        in_window = (dates >= window_start) & (dates <= window_end)
    elif "in_study_window" in registry.columns:
        # Real data after esi.deid.reduce_dates: the window was checked on the exact date.
        if (window_start, window_end) != STUDY_WINDOW:
            raise ValueError("the exact procedure dates were reduced with the default study "
                             "window; another window needs the exact dates")
        in_window = registry["in_study_window"].fillna(False).astype(bool)
    else:
        raise ValueError("registry has neither procedure_date nor in_study_window")
    steps = [
        ("study_window", f"injection between {window_start.isoformat()} and "
                         f"{window_end.isoformat()}",
         in_window, lambda ids: "injection outside the study window"),
        ("adult", f"aged {min_age} or over", registry["age"].astype("Float64") >= min_age,
         lambda ids: f"under {min_age}"),
        ("no_prior_surgery", "no previous lumbar spine surgery",
         ~registry["prior_spine_surgery"].fillna(False).astype(bool),
         lambda ids: "prior spine surgery"),
        ("mri_on_file", "lumbar MRI available",
         registry["mri_available"].fillna(False).astype(bool), lambda ids: "no MRI on file"),
        ("followed_up", "at least one follow-up visit (4 or 12 weeks)",
         ~(registry["visit_missed_4w"].fillna(True).astype(bool)
           & registry["visit_missed_12w"].fillna(True).astype(bool)),
         lambda ids: "no follow-up visit"),
        ("imaging_group", "near-normal MRI or concordant MRI pathology",
         imaging.isin(["near_normal", "abnormal"]),
         lambda ids: imaging.loc[ids].map(_REASON_TEXT)),
    ]
    remaining = pd.Series(True, index=registry.index)
    flow_rows, excluded_parts = [], []
    for step, criterion, keep, reason in steps:
        keep = pd.Series(np.asarray(keep, dtype=bool), index=registry.index)
        drop = remaining & ~keep
        ids = registry.index[drop.to_numpy()]
        r = reason(ids)
        reasons = pd.Series(r if isinstance(r, pd.Series) else [r] * len(ids), index=ids,
                            dtype="str")
        counts = reasons.value_counts().sort_index()
        flow_rows.append({
            "step": step, "criterion": criterion, "n_before": int(remaining.sum()),
            "n_excluded": int(drop.sum()), "n_after": int((remaining & keep).sum()),
            "reasons": "; ".join(f"{k}: {v}" for k, v in counts.items()),
        })
        excluded_parts.append(pd.DataFrame({"step": step, "reason": reasons,
                                            "imaging_group": group_of.loc[ids]}))
        remaining &= keep
    eligible = registry.loc[remaining.to_numpy()].copy()
    eligible["imaging_group"] = imaging.loc[eligible.index].astype("str")
    eligible["near_normal"] = (eligible["imaging_group"] == "near_normal").astype("int64")
    excluded = pd.concat(excluded_parts) if excluded_parts else pd.DataFrame(
        columns=["step", "reason", "imaging_group"])
    excluded.index.name = "patient_id"
    return Cohort(eligible=eligible, flow=pd.DataFrame(flow_rows), excluded=excluded)
