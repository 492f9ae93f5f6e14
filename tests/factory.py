"""A small valid registry for tests, built in code (not the synthetic generator)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from esi.schema import FOLLOW_UP_WEEKS


def example_registry(n: int = 8, seed: int = 1) -> pd.DataFrame:
    """``n`` patients that pass validation: half near-normal, half concordant pathology."""
    rng = np.random.default_rng(seed)
    rows = {}
    for i in range(n):
        near = i % 2 == 0
        base_leg = float(rng.integers(8, 19)) / 2
        row = {
            "site": "A" if i % 3 else "B", "source_study": "referral" if near else "mri_rct",
            "mri_blinded_arm": None if near else bool(i % 4 == 1),
            "procedure_date": pd.Timestamp(2012 + i % 10, 1 + i % 12, 1 + i % 27),
            "age": int(rng.integers(25, 75)),
            "sex": "female" if rng.random() < 0.55 else "male",
            "bmi": round(float(rng.normal(28, 4)), 1),
            "pain_duration_months": float(rng.integers(1, 30)),
            "depression_anxiety": bool(i % 5 == 0), "smoking": "never",
            "employment": "working", "prior_spine_surgery": False,
            "baseline_leg_pain": base_leg,
            "baseline_back_pain": float(rng.integers(4, 17)) / 2,
            "baseline_odi": float(2 * rng.integers(10, 30)), "opioid_use": bool(i % 3 == 0),
            "baseline_mme": 30.0 if i % 3 == 0 else 0.0, "baseline_analgesic_use": True,
            "mri_available": True, "nerve_root_compression": not near,
            "disc_herniation_grade": 1 if near else 3, "canal_stenosis_grade": 0,
            "foraminal_stenosis_grade": 1, "degenerative_grade": 1,
            "mri_levels": "L4-L5" if near else "L5-S1",
            "pathology_concordant": not near, "esi_approach": "transforaminal",
            "esi_level": "L5-S1",
        }
        for t in FOLLOW_UP_WEEKS:
            leg = max(0.0, base_leg - float(rng.integers(0, 9)) / 2)
            row.update({
                f"visit_missed_{t}w": False, f"leg_pain_{t}w": leg, f"back_pain_{t}w": 3.5,
                f"odi_{t}w": 20.0, f"gpe_{t}w": int(rng.integers(1, 6)),
                f"satisfaction_{t}w": int(rng.integers(2, 6)), f"analgesic_use_{t}w": True,
                f"mme_{t}w": 20.0 if i % 3 == 0 else 0.0,
                f"additional_intervention_{t}w": False,
                f"additional_intervention_days_{t}w": None,
            })
        rows[f"T{i + 1:03d}"] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "patient_id"
    return frame


def tiny_notebook(path, code: str) -> None:
    """Write a two-cell notebook: a ``parameters`` cell (caliper, data_path), then ``code``
    (stands in for the real notebooks in tests of esi run and sweeps)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    params = new_code_cell("caliper = 0.2\ndata_path = ''")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
