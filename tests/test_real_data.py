"""Issue 8: the whole pipeline on a 'real' registry seeded with marker values; no output file
may hold a marker (row-level data), ids are pseudonymised, small counts are suppressed, and
the input file is never modified."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

import esi.pipeline as pipeline
from esi.deid import scan_for_markers
from esi.io import read_registry, write_registry
from esi.params import load_params
from esi.paths import SYNTHETIC_REGISTRY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    mp = pytest.MonkeyPatch()
    mp.setenv("ESI_PSEUDONYM_KEY", str(tmp / "pseudonym.key"))
    reg = read_registry(SYNTHETIC_REGISTRY)
    ids = [f"ZQX{i:05d}MARK" for i in range(len(reg))]
    reg.index = pd.Index(ids, name="patient_id")
    # exact dates and a few odd BMI values that only row-level output could reveal
    reg["procedure_date"] = reg["procedure_date"] + pd.to_timedelta(
        (pd.Series(range(len(reg)), index=reg.index) % 7).to_numpy(), unit="D")
    reg.iloc[:5, reg.columns.get_loc("bmi")] = [31.4159, 27.1828, 29.9792, 23.6021, 33.3371]
    data = write_registry(reg, tmp / "registry.csv")
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    params = load_params(overrides={"data_path": str(data), "multiverse_workers": 1},
                         extra=pipeline.notebook_extra())
    out = pipeline.run(params, tmp / "run", timeout=600, log=lambda m: None)
    markers = (ids + [d.date().isoformat() for d in reg["procedure_date"]]
               + ["31.4159", "27.1828", "29.9792", "23.6021", "33.3371"])
    yield out, data, digest, markers
    mp.undo()


def test_no_marker_in_any_output(real_run):
    out, _, _, markers = real_run
    found = scan_for_markers(out, markers)
    assert found.empty, found.head(20).to_string()


def test_matched_pairs_are_pseudonymised(real_run):
    out = real_run[0]
    pairs = pd.read_csv(out / "matched_pairs.csv")
    assert pairs["treated"].str.match(r"^P-[A-Z2-7]{10}$").all()
    assert pairs["control"].str.match(r"^P-[A-Z2-7]{10}$").all()


def test_small_counts_are_suppressed(real_run):
    out = real_run[0]
    flow = pd.read_csv(out / "cohort_flow.csv")
    text = flow.to_csv(index=False)
    assert "<5" in text
    excluded = pd.to_numeric(flow["n_excluded"], errors="coerce").dropna()
    assert not ((excluded > 0) & (excluded < 5)).any()


def test_input_unchanged_and_recorded(real_run):
    out, data, digest, _ = real_run
    assert hashlib.sha256(data.read_bytes()).hexdigest() == digest
    import json

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["synthetic"] is False
    assert prov["data"]["sha256_before"] == prov["data"]["sha256_after"] == digest
