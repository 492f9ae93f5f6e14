"""The synthetic registry: regeneration, validity, and the default analysis reproducing the paper.

The end-to-end test runs the real cohort step, esi.match and esi.compare with the default
parameters on the committed file and checks every published count, mean, SD and percentage
(to the published decimals) through esi.audit.reproduce.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import esi.matching
from esi import audit
from esi.cohort import define_cohort
from esi.compare import compare_historical, compare_matched
from esi.io import read_registry
from esi.matching import match
from esi.outcomes import derive_outcomes
from esi.params import DEFAULTS
from esi.paths import PROJECT_ROOT, PUBLISHED_RESULTS, SYNTHETIC_REGISTRY
from esi.propensity import fit_propensity
from esi.synthetic import (
    CALIBRATION,
    DEFAULT_SEED,
    N_PATIENTS,
    calibration_markdown,
    calibration_table,
    generate_registry,
    write_synthetic_registry,
)
from esi.validate import validate_file


@pytest.fixture(scope="module")
def analysis():
    reg = read_registry(SYNTHETIC_REGISTRY)
    cohort = define_cohort(reg)
    m = match(cohort.eligible, "near_normal", DEFAULTS["covariates"], method="nearest",
              distance="logit", ratio=1, caliper=0.2, replace=False,
              random_state=DEFAULTS["seed"])
    out = compare_matched(cohort.eligible, m, test="welch", binary_test="fisher",
                          missing="complete_case", success_threshold=2.0, alpha=0.05)
    return reg, cohort, m, out


def test_committed_file_is_regenerated_byte_identically(tmp_path):
    path = write_synthetic_registry(tmp_path / "regenerated.csv", seed=DEFAULT_SEED)
    assert path.read_bytes() == SYNTHETIC_REGISTRY.read_bytes()


def test_generated_frame_equals_the_file_as_read():
    pd.testing.assert_frame_equal(generate_registry(), read_registry(SYNTHETIC_REGISTRY),
                                  check_like=False)


def test_file_validates_and_says_it_is_synthetic():
    report = validate_file(SYNTHETIC_REGISTRY)
    assert report.problems == ()
    assert report.n_rows == N_PATIENTS < 500
    head = SYNTHETIC_REGISTRY.read_text(encoding="utf-8").splitlines()[:2]
    assert head[0].startswith("# SYNTHETIC DATA") and f"seed {DEFAULT_SEED}" in head[0]
    assert head[1] == "# Regenerate with: esi synth"


def test_default_analysis_reproduces_every_published_figure(analysis):
    reg, cohort, m, out = analysis
    published = audit.read_published(PUBLISHED_RESULTS)
    pairs = m.pairs
    found = audit.reproduced_figures(published, out, pairs, cohort.flow)
    rep = audit.reproduce(published, found).merge(published[["id", "statistic"]], on="id")
    figures = rep[~rep["statistic"].isin(["p"])]
    assert len(figures) == 20
    assert figures["match"].all(), figures[~figures["match"]]
    # The paper's statement: no significant difference in pain at 12 weeks.
    row = rep.set_index("id").loc["pain_12_no_difference"]
    assert row["match"] and row["reproduced"] >= 0.05


def test_published_p_values_come_from_mann_whitney_and_one_sided_fisher(analysis):
    # The construction picks SPRITE samples whose Mann-Whitney P equals the published P (the
    # paper's tests are not reported); Fisher's one-sided test gives 0.22 from the counts.
    reg, cohort, m, _ = analysis
    out = compare_matched(cohort.eligible, m, test="mann_whitney", binary_test="fisher_less")
    published = audit.read_published(PUBLISHED_RESULTS)
    rep = audit.reproduce(published, audit.reproduced_figures(published, out, m.pairs,
                                                              cohort.flow))
    assert rep["match"].all(), rep[~rep["match"]]


def test_cohort_flow_and_matching(analysis):
    reg, cohort, m, out = analysis
    flow = cohort.flow.set_index("step")
    assert (flow["n_excluded"] > 0).all()  # every eligibility step excludes someone
    assert cohort.n_near_normal == 14
    assert (cohort.excluded["imaging_group"] == "near_normal").sum() >= 3
    assert m.pairs["treated"].nunique() == 14 and m.pairs["control"].nunique() == 14
    ids = list(m.pairs["treated"]) + list(m.pairs["control"])
    assert not reg.loc[ids, ["visit_missed_4w", "visit_missed_12w"]].any().any()
    assert (out["n_cases"] == 14).all() and (out["n_controls"] == 14).all()
    # 2009-2024, two sites, several source studies; 7 + 7 cases as the paper says.
    cases = reg.loc[m.pairs["treated"]]
    assert (cases["source_study"] == "mri_rct").sum() == 7
    assert cases.loc[cases["source_study"] == "mri_rct", "mri_blinded_arm"].all()
    assert (cases["source_study"] == "referral").sum() == 7
    assert set(reg["site"]) == {"A", "B"} and reg["source_study"].nunique() == 6
    eligible_dates = cohort.eligible["procedure_date"]
    assert eligible_dates.min().year == 2009 and eligible_dates.max().year == 2024


def test_default_match_balances_the_groups(analysis):
    # The paper reports a propensity-matched 14 + 14 cohort: the default match must balance
    # every covariate term (binary terms as raw differences in proportions), and not make a
    # term that was already balanced worse; before matching the groups differ modestly.
    reg, cohort, m, _ = analysis
    bal = m.balance(include_distance=False)
    after, before = bal["smd_after"].abs(), bal["smd_before"].abs()
    assert len(bal) == 10
    assert after.max() < 0.15
    small = before < 0.1
    assert (after[small] <= before[small] + 1e-12).all(), bal.loc[small]
    assert 0.2 < before.max() < 0.6
    # Matched controls are similar to their cases, not copies of them.
    cont = ["age", "bmi", "pain_duration_months", "baseline_leg_pain", "baseline_back_pain",
            "baseline_odi"]
    a = reg.loc[m.pairs["treated"], cont].astype(float).to_numpy()
    b = reg.loc[m.pairs["control"], cont].astype(float).to_numpy()
    assert (np.abs(a - b).sum(axis=1) > 0).all()
    assert np.abs(a[:, 0] - b[:, 0]).max() <= 6 and np.abs(a[:, 3] - b[:, 3]).max() <= 1.0


def test_skipped_odi_sections_explain_the_grim_failure(analysis):
    reg, cohort, m, _ = analysis
    fu = reg.loc[m.pairs["treated"], "odi_12w"].to_numpy()
    off_grid = ~np.isclose(fu % 2, 0)
    assert off_grid.sum() == 2 and np.allclose(fu[off_grid] % 2.5, 0)
    odi = reg["odi_12w"].dropna().to_numpy()
    one_skipped = np.isclose(np.round(odi * 45 / 100), odi * 45 / 100) & ~np.isclose(odi % 2, 0)
    assert one_skipped.sum() > 0  # some forms elsewhere have one section skipped


def test_near_normal_cases_fare_worse_on_some_measures_not_all(analysis):
    reg, cohort, m, _ = analysis
    elig = cohort.eligible
    o = derive_outcomes(elig)
    cases = o[elig["near_normal"] == 1]
    larger = o[elig["near_normal"] == 0]
    # Positive outcome: worse than the larger cohort at 4 and 12 weeks, and below the MRI
    # trial's 35.4-40.7 % at 3 months.
    for t in (4, 12):
        col = f"positive_outcome_{t}w"
        assert cases[col].astype(float).mean() < larger[col].dropna().astype(float).mean() - 0.05
    assert cases["positive_outcome_12w"].astype(float).mean() * 100 < 35.4
    # Leg pain at 12 weeks: smaller reduction than the larger cohort.
    assert cases["leg_pain_reduction_12w"].mean() < larger["leg_pain_reduction_12w"].mean()
    # Not on every measure: the 4-week leg-pain reduction (2.36) is above the 2015 trial's 2.2.
    hist = compare_historical(elig).set_index("measure")
    assert hist.loc["leg_pain_change_1mo_mean_sd", "mean_cases"] > 2.2
    assert cases["leg_pain_reduction_4w"].mean() > larger["leg_pain_reduction_4w"].mean() - 0.5


def test_covariates_are_calibrated(analysis):
    reg, *_ = analysis
    mri = reg[reg["source_study"] == "mri_rct"]
    assert abs((mri["sex"] == "female").mean() - 0.57) < 0.12
    assert abs(mri["age"].astype(float).mean() - 52) < 4
    assert abs(reg["opioid_use"].astype(bool).mean() - 0.34) < 0.07
    gaba = reg[reg["source_study"] == "gabapentin_rct"]
    assert (gaba["sex"] == "male").mean() > 0.6
    assert np.corrcoef(reg["baseline_leg_pain"], reg["baseline_odi"])[0, 1] > 0.2
    larger = derive_outcomes(reg)["leg_pain_reduction_4w"].dropna()
    assert 1.6 < larger.mean() < 2.8 and 1.8 < larger.std() < 3.0  # ESI cohorts ~2.2 (2.4)


def test_calibration_table_is_complete():
    tab = calibration_table()
    assert list(tab.columns) == ["quantity", "value", "source", "reason"]
    assert len(tab) == len(CALIBRATION) >= 20
    assert (tab.map(lambda s: isinstance(s, str) and s.strip() != "")).all().all()
    assert (tab["source"] == "assumption").sum() >= 10
    md = calibration_markdown()
    assert md.startswith("## Synthetic registry: calibration")
    assert all(c.quantity in md for c in CALIBRATION)
    assert "skipped" in md and "GRIM" in md


def test_other_seed_and_bad_seed():
    reg = generate_registry(seed=7)
    assert len(reg) == N_PATIENTS
    with pytest.raises(ValueError, match="seed"):
        generate_registry(seed=-1)


def test_constructed_outcomes_have_plausible_correlations(analysis):
    reg, cohort, m, _ = analysis
    o = derive_outcomes(cohort.eligible)
    for col, base in (("leg_pain_reduction_4w", "baseline_leg_pain"),
                      ("back_pain_reduction_4w", "baseline_back_pain"),
                      ("odi_reduction_12w", "baseline_odi")):
        a = o.loc[m.pairs["treated"], col].to_numpy()
        b = o.loc[m.pairs["control"], col].to_numpy()
        assert 0.05 < np.corrcoef(a, b)[0, 1] < 0.4  # within matched pairs
        for ids, v in ((m.pairs["treated"], a), (m.pairs["control"], b)):
            r = np.corrcoef(v, reg.loc[ids, base].astype(float))[0, 1]
            assert 0.15 < r < 0.5  # with baseline
        # Every patient's reduction lies within what the scale allows.
        for ids, v in ((m.pairs["treated"], a), (m.pairs["control"], b)):
            assert np.all(v <= reg.loc[ids, base].to_numpy())


# ------------------------------------------------------------------ the same bytes on every CPU
#: OpenBLAS core types forced in turn (``OPENBLAS_CORETYPE``), with the /proc/cpuinfo flags
#: each kernel needs. Prescott runs OpenBLAS's generic kernels (it reports "Katmai"), which add
#: in another order than Haswell's: before the generator and the propensity fit stopped calling
#: BLAS, it gave other follow-up values, as SkylakeX (AVX-512) did.
OPENBLAS_CORES = {
    "Prescott": {"pni"},  # SSE3
    "Nehalem": {"ssse3", "sse4_2"},
    "Sandybridge": {"avx"},
    "Haswell": {"avx", "avx2", "fma"},
    "Zen": {"avx", "avx2", "fma"},
    "SkylakeX": {"avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"},
    "Cooperlake": {"avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl",
                   "avx512_bf16"},
}
#: The run with numpy's CPU dispatch limited to its baseline (NPY_DISABLE_CPU_FEATURES).
NUMPY_BASELINE = "numpy-baseline"

_CHILD = """
import json, sys
from esi.synthetic import write_synthetic_registry
write_synthetic_registry(sys.argv[1])
sys.path.insert(0, sys.argv[2])
from test_synthetic import fit_fingerprint
print("FIT " + json.dumps(fit_fingerprint()))
"""


def _cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    m = re.search(r"^flags\s*:(.*)$", text, flags=re.MULTILINE)
    return set(m.group(1).split()) if m else None


def _numpy_dispatch_features() -> list[str]:
    """numpy's CPU features above its baseline that this CPU has (its dispatch targets)."""
    simd = np.show_config(mode="dicts")["SIMD Extensions"]
    return list(simd.get("found") or [])


def fit_fingerprint() -> dict[str, str]:
    """SHA-256 of the default analysis' propensity model and match on the committed registry
    and of the model on MatchIt's lalonde (every bit of coefficients, standard errors, linear
    predictors, deviance and the pairs with their distance gaps)."""
    reg = read_registry(SYNTHETIC_REGISTRY)
    m = match(define_cohort(reg).eligible, "near_normal", DEFAULTS["covariates"],
              method=DEFAULTS["method"], distance=DEFAULTS["distance"], ratio=DEFAULTS["ratio"],
              caliper=DEFAULTS["caliper"], replace=DEFAULTS["replace"],
              random_state=DEFAULTS["seed"])
    ref = PROJECT_ROOT / "tests" / "reference" / "matchit"
    lalonde = pd.read_csv(ref / "lalonde.csv", index_col="id")
    other = fit_propensity(lalonde, "treat", ["age", "educ", "race", "married", "nodegree",
                                              "re74", "re75"])
    out = {}
    for name, model, pairs in (("default", m.model, m.pairs), ("lalonde", other, None)):
        h = hashlib.sha256()
        for s in (model.coefficients, model.standard_errors, model.linear_predictor,
                  model.propensity):
            h.update(s.to_numpy(dtype=float).tobytes())
        h.update(np.float64(model.deviance).tobytes())
        if pairs is not None:
            h.update(pairs.to_csv(float_format="%.17g").encode())
        out[name] = h.hexdigest()
    return out


def _variants() -> dict[str, dict[str, str] | None]:
    """Environment of each regeneration; None for a kernel this CPU cannot run."""
    flags = _cpu_flags()
    out: dict[str, dict[str, str] | None] = {}
    for core, need in OPENBLAS_CORES.items():
        out[core] = ({"OPENBLAS_CORETYPE": core} if flags is not None and need <= flags
                     else None)
    out[NUMPY_BASELINE] = {"NPY_DISABLE_CPU_FEATURES": " ".join(_numpy_dispatch_features())}
    return out


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """``write_synthetic_registry`` in a fresh interpreter per variant (two at a time): the
    bytes written, the OpenBLAS kernel that ran (OPENBLAS_VERBOSE), the fit fingerprint."""
    if _cpu_flags() is None:
        pytest.skip("no /proc/cpuinfo: cannot tell which OpenBLAS kernels this CPU runs")
    tmp = tmp_path_factory.mktemp("kernels")

    def run(item):
        name, extra = item
        if extra is None:
            return name, None
        env = {**os.environ, "OPENBLAS_VERBOSE": "2", **extra}
        if "OPENBLAS_CORETYPE" not in extra:
            env.pop("OPENBLAS_CORETYPE", None)
        out = tmp / f"{name}.csv"
        done = subprocess.run([sys.executable, "-c", _CHILD, str(out), str(Path(__file__).parent)],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        core = re.findall(r"Core: (\w+)", done.stderr)
        fit = [json.loads(line[4:]) for line in done.stdout.splitlines()
               if line.startswith("FIT ")]
        return name, {"rc": done.returncode, "stderr": done.stderr[-2000:],
                      "bytes": out.read_bytes() if out.exists() else b"",
                      "core": core[-1] if core else None, "fit": fit[0] if fit else None}

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, _variants().items()))


@pytest.mark.parametrize("variant", [*OPENBLAS_CORES, NUMPY_BASELINE])
def test_registry_is_byte_identical_under_every_kernel(regenerated, variant):
    # The generator's decisions (swaps kept on a correlation, twins tuned to a propensity)
    # must not depend on the last bits that the BLAS kernel or numpy's SIMD path produce.
    got = regenerated[variant]
    if got is None:
        pytest.skip(f"this CPU lacks the flags of OpenBLAS's {variant} kernel")
    assert got["rc"] == 0, got["stderr"]
    n_diff = sum(a != b for a, b in zip(got["bytes"].splitlines(),
                                        SYNTHETIC_REGISTRY.read_bytes().splitlines(),
                                        strict=False))
    assert got["bytes"] == SYNTHETIC_REGISTRY.read_bytes(), (
        f"{variant} (OpenBLAS kernel {got['core']}): {n_diff} lines differ")


@pytest.mark.parametrize("variant", [*OPENBLAS_CORES, NUMPY_BASELINE])
def test_propensity_fit_has_the_same_bits_under_every_kernel(regenerated, variant):
    # esi run's result files (matched_pairs.csv's distance gaps to 10 digits) follow the fit
    # bit for bit, so the fit must not depend on the kernel either.
    got = regenerated[variant]
    if got is None:
        pytest.skip(f"this CPU lacks the flags of OpenBLAS's {variant} kernel")
    assert got["rc"] == 0, got["stderr"]
    assert got["fit"] == fit_fingerprint(), f"{variant} (OpenBLAS kernel {got['core']})"


def test_the_forced_kernels_really_differ(regenerated):
    # Guards the two tests above against an OpenBLAS that ignores OPENBLAS_CORETYPE: the runs
    # must have used several distinct kernels (here: Katmai, Nehalem, Sandybridge, Haswell).
    ran = {v["core"] for k, v in regenerated.items() if v is not None and k != NUMPY_BASELINE}
    assert None not in ran, "OPENBLAS_VERBOSE=2 did not report the kernel"
    assert len(ran) >= 3, ran


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_registry_does_not_depend_on_the_last_bits_of_the_propensity_fit(monkeypatch, sign):
    # A margin far beyond any kernel's rounding: every coefficient, linear predictor and
    # propensity moved by a relative 1e-9 (alternating up and down) leaves the registry
    # unchanged - the twins' tuning and the match decide nothing within such a distance (on
    # this seed the registry first changes near 1e-4).
    calls = []

    def perturbed(*args, **kwargs):
        model = fit_propensity(*args, **kwargs)

        def shift(s: pd.Series) -> pd.Series:
            v = s.to_numpy(dtype=float)
            f = np.where(np.arange(v.size) % 2 == 0, sign, -sign)
            return pd.Series(v * (1.0 + 1e-9 * f), index=s.index, name=s.name)

        lin, prob = shift(model.linear_predictor), shift(model.propensity)
        new = dataclasses.replace(
            model, coefficients=shift(model.coefficients), linear_predictor=lin,
            propensity=prob,
            distance=(lin if model.distance_scale == "logit" else prob).rename("distance"))
        calls.append(not np.array_equal(new.distance.to_numpy(), model.distance.to_numpy()))
        return new

    monkeypatch.setattr(esi.matching, "fit_propensity", perturbed)
    frame = generate_registry()
    assert len(calls) >= 2 and all(calls)  # every round's model was really moved
    pd.testing.assert_frame_equal(frame, read_registry(SYNTHETIC_REGISTRY))
