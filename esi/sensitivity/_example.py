"""A small seeded registry with the contract columns, for the sensitivity tests and benchmark.

Not the compendium's synthetic registry (``esi.paths.SYNTHETIC_REGISTRY``): a quick stand-in
with plausible ranges so that the multiverse can be exercised on any machine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["example_registry"]


def _nrs(values: np.ndarray) -> np.ndarray:
    """Clip to 0-10 and round to 0.5 steps, as the NRS is recorded."""
    return np.clip(np.round(values * 2) / 2, 0, 10)


def example_registry(n_controls: int = 480, n_cases: int = 14, seed: int = 2025,
                     missed_visit_rate: float = 0.08) -> pd.DataFrame:
    """Eligible patients (index ``patient_id``) with ``near_normal`` and the schema columns.

    Parameters
    ----------
    n_controls, n_cases
        Patients with concordant pathology (``near_normal = 0``) and near-normal imaging (1).
    seed
        Seed of the ``numpy`` generator.
    missed_visit_rate
        Share of patients missing each follow-up visit (their follow-up values are NaN).

    Returns
    -------
    pandas.DataFrame
        Columns: ``near_normal``, ``imaging_group``, ``age``, ``sex``, ``bmi``,
        ``pain_duration_months``, ``depression_anxiety``, ``smoking``, ``employment``,
        ``site``, ``baseline_leg_pain``, ``baseline_back_pain``, ``baseline_odi``,
        ``opioid_use``, ``baseline_mme``, ``baseline_analgesic_use`` and, for t in (4, 12),
        ``leg_pain_{t}w``, ``back_pain_{t}w``, ``odi_{t}w``, ``gpe_{t}w``,
        ``satisfaction_{t}w``, ``analgesic_use_{t}w``, ``mme_{t}w``,
        ``additional_intervention_{t}w``, ``visit_missed_{t}w``.
    """
    rng = np.random.default_rng(seed)
    n = n_controls + n_cases
    near_normal = np.r_[np.zeros(n_controls, int), np.ones(n_cases, int)]
    age = np.clip(rng.normal(52 - 4 * near_normal, 12), 18, 85).round(0)
    depression = rng.random(n) < 0.25 + 0.15 * near_normal
    opioid = rng.random(n) < 0.34
    frame = pd.DataFrame({
        "near_normal": near_normal,
        "imaging_group": np.where(near_normal == 1, "near_normal", "abnormal"),
        "age": age,
        "sex": np.where(rng.random(n) < 0.55, "female", "male"),
        "bmi": np.clip(rng.normal(29, 5, n), 17, 50).round(1),
        "pain_duration_months": np.clip(rng.lognormal(2.3, 0.8, n), 1, 120).round(0),
        "depression_anxiety": depression,
        "smoking": rng.choice(["never", "former", "current"], n, p=[0.5, 0.3, 0.2]),
        "employment": rng.choice(["working", "not_working", "disabled", "retired"], n,
                                 p=[0.5, 0.2, 0.15, 0.15]),
        "site": rng.choice(["A", "B"], n),
        "baseline_leg_pain": _nrs(rng.normal(6.3, 1.6, n)),
        "baseline_back_pain": _nrs(rng.normal(5.0, 2.0, n)),
        "baseline_odi": np.clip(rng.normal(40, 15, n), 0, 100).round(0),
        "opioid_use": opioid,
        "baseline_mme": np.where(opioid, rng.gamma(2, 15, n).round(0), 0.0),
        "baseline_analgesic_use": rng.random(n) < 0.6,
    }, index=pd.Index([f"P{i:04d}" for i in range(n)], name="patient_id"))
    for t in (4, 12):
        gain = rng.normal(2.5 - 0.3 * near_normal - 0.5 * depression, 2.3)
        missed = rng.random(n) < missed_visit_rate
        leg = _nrs(frame["baseline_leg_pain"] - gain)
        back = _nrs(frame["baseline_back_pain"] - 0.4 * gain + rng.normal(0, 1.5, n))
        odi = np.clip(frame["baseline_odi"] - 4 * gain + rng.normal(0, 8, n), 0, 100).round(0)
        gpe = np.clip(np.round(4 - 0.8 * gain + rng.normal(0, 1, n)), 1, 7)
        satisfaction = np.clip(np.round(3 + 0.5 * gain + rng.normal(0, 1, n)), 1, 5)
        values = {
            f"leg_pain_{t}w": leg,
            f"back_pain_{t}w": back,
            f"odi_{t}w": odi,
            f"gpe_{t}w": gpe,
            f"satisfaction_{t}w": satisfaction,
            f"analgesic_use_{t}w": (frame["baseline_analgesic_use"]
                                    & (rng.random(n) < 0.7)).astype(object),
            f"mme_{t}w": (frame["baseline_mme"] * rng.uniform(0.5, 1.1, n)).round(0),
            f"additional_intervention_{t}w": (rng.random(n) < 0.1).astype(object),
        }
        for column, value in values.items():
            series = pd.Series(value, index=frame.index)
            series[missed] = np.nan if series.dtype != object else None
            frame[column] = series
        frame[f"visit_missed_{t}w"] = missed
    return frame
