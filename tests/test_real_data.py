"""Issues 8 and 12: the whole pipeline on a 'real' registry seeded with marker values; no output
file may hold a marker (row-level data), ids are pseudonymised, the input file is never
modified; and no count of 1-4 appears in any output (CSV, notebook, HTML, sweep, multiverse)
nor can be recovered by subtraction, while non-counts are left untouched.

The count columns and count texts are listed here independently of esi.disclosure's
declarations, so a declaration that forgets a column fails these tests."""

from __future__ import annotations

import hashlib
import html
import json
import re

import pandas as pd
import pytest

import esi.pipeline as pipeline
from esi.deid import scan_for_markers
from esi.io import read_registry, write_registry
from esi.params import load_params
from esi.paths import SYNTHETIC_REGISTRY

pytestmark = pytest.mark.slow

#: Small matched groups in `esi multiverse` and the sweep (calipers in SDs of the score).
TINY_CALIPERS = [0.2, 0.0005, 0.0002]
MULTIVERSE = {"multiverse_caliper": TINY_CALIPERS, "multiverse_distance": ["propensity"],
              "multiverse_method": ["nearest"], "multiverse_ratio": [1],
              "multiverse_replace": [False], "multiverse_missing": ["complete_case"],
              "multiverse_test": ["welch"], "multiverse_workers": 1}

#: file -> count columns (a tuple (column, rows) counts only where rows(table) is true).
COUNTS = {
    "cohort_flow.csv": ["n_before", "n_excluded", "n_after"],
    "outcomes.csv": ["n_cases", "n_controls", "n_pairs", "events_cases", "events_controls"],
    "larger_cohort.csv": ["n_cases", "n_controls", "n_pairs", "events_cases", "events_controls"],
    "historical.csv": ["n_cases", "events_cases"],
    "table2.csv": ["n_cases", "n_controls"],
    "table1_before.csv": ["n_cases_before", "n_controls_before",
                          ("spread_cases_before", lambda t: t["kind"] != "continuous"),
                          ("spread_controls_before", lambda t: t["kind"] != "continuous")],
    "table1_after.csv": ["n_cases_before", "n_controls_before", "n_cases_after",
                         "n_controls_after"]
    + [(f"spread_{s}_{st}", lambda t: t["kind"] != "continuous")
       for s in ("cases", "controls") for st in ("before", "after")],
    "multiverse.csv": ["n_cases_matched", "n_controls_matched", "n_matched", "primary_n_cases",
                       "primary_n_controls", "positive_n_cases", "positive_n_controls"],
    "rosenbaum.csv": ["n_pairs", "n_complete", "n_informative"],
    "influence.csv": ["n_sets"],
    "power.csv": ["n_per_group"],
    "reproduction.csv": [("reproduced", lambda t: t["id"].isin(["n_cases", "n_controls",
                                                                "control_pool"]))],
    "reproduction_sources.csv": [("reproduced", lambda t: t["id"].isin(
        ["n_cases", "n_controls", "control_pool"]))],
}
#: file -> text columns holding counts.
COUNT_TEXT = {
    "cohort_flow.csv": ["reasons"], "larger_cohort.csv": ["source"],
    "table2.csv": ["cases", "controls", "text"],
    "table1_before.csv": ["cases_before", "controls_before"],
    "table1_after.csv": ["cases_before", "controls_before", "cases_after", "controls_after"],
}
#: Result files without counts of this registry's patients.
NO_COUNTS = {"balance.csv", "matched_pairs.csv", "grim_audit.csv", "p_value_audit.csv",
             "p_value_summary.csv", "sprite_distribution.csv", "sprite_p_narrowing.csv"}

#: Counts written inside text: n/d, n (p%), "reason: n", (n = N), "n = N".
TEXT_COUNTS = [re.compile(r"(?<![\w.<-])(\d+(?:\.\d+)?)/(\d+)(?![\w.])"),
               re.compile(r"(?<![\w./<-])(\d+(?:\.\d+)?) \(\d+(?:\.\d+)?%\)"),
               re.compile(r": (\d+)(?=;|$|\n)"), re.compile(r"\bn = (\d+)\b")]
#: Sentences of the notebooks that state counts of patients or pairs.
SENTENCE_COUNTS = [re.compile(p) for p in (
    r"(\d+) of (\d+) near-normal cases were matched to (\d+) controls",
    r"(\d+) case\(s\) found no control", r"(\d+) pair\(s\) change the conclusion",
    r"(\d+) matched pairs \(one control per case; (\d+) distinct", r"(\d+) further patient",
    r"are eligible: (\d+) with near-normal imaging and (\d+) with", r"(\d+) / (\d+)")]


def _small(x: object) -> bool:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return False
    return 0 < v < 5


def _small_in_text(text: str, patterns=TEXT_COUNTS) -> list[str]:
    hits = []
    for pat in patterns:
        for m in pat.finditer(text):
            if any(g is not None and _small(g) for g in m.groups()):
                hits.append(m[0])
    return hits


def _count_cells(name: str, table: pd.DataFrame):
    for spec in COUNTS.get(name, []):
        col, rows = spec if isinstance(spec, tuple) else (spec, None)
        if col not in table.columns:
            continue
        mask = rows(table) if rows is not None else pd.Series(True, index=table.index)
        yield col, table.loc[mask, col]


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
    yield out, data, digest, markers, params
    mp.undo()


def test_no_marker_in_any_output(real_run):
    out, _, _, markers, _ = real_run
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
    out, data, digest, _, _ = real_run
    assert hashlib.sha256(data.read_bytes()).hexdigest() == digest
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["synthetic"] is False
    assert prov["data"]["sha256_before"] == prov["data"]["sha256_after"] == digest
    page = (out / "index.html").read_text()
    assert "real registry (aggregate results only)" in page and "synthetic registry" not in page


def test_no_count_below_5_in_any_csv(real_run):
    out = real_run[0]
    names = sorted(p.name for p in out.glob("*.csv"))
    assert set(names) <= set(COUNTS) | NO_COUNTS, "a result file nobody classified"
    shown_small = 0
    for name in names:
        table = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        for col, cells in _count_cells(name, table):
            bad = [v for v in cells if _small(v)]
            assert not bad, f"{name} {col}: {bad}"
            shown_small += int((cells == "<5").sum())
        for col in COUNT_TEXT.get(name, []):
            bad = [h for v in table[col] for h in _small_in_text(v)]
            assert not bad, f"{name} {col}: {bad[:5]}"
    assert shown_small >= 10  # the registry has small counts to hide


def test_small_counts_hidden_in_the_tables_the_issue_names(real_run):
    out = real_run[0]
    t2 = pd.read_csv(out / "table2.csv", dtype=str, keep_default_na=False)
    assert (t2["cases"].str.startswith("<5/")).any()
    assert set(t2["n_cases"]) == {"14"}  # disclosed in the notebook and again when written
    for name in ("outcomes.csv", "larger_cohort.csv", "historical.csv"):
        t = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        assert (t["events_cases"] == "<5").any(), name  # floats in the data, counts here


def test_non_counts_are_untouched(real_run):
    out, *_, params = real_run
    for name in ("outcomes.csv", "table2.csv", "larger_cohort.csv", "historical.csv",
                 "multiverse.csv"):
        t = pd.read_csv(out / name)
        assert pd.api.types.is_integer_dtype(t["timepoint_weeks"]), name
        assert set(t["timepoint_weeks"]) <= {0, 4, 12}, name
    mv = pd.read_csv(out / "multiverse.csv")
    assert mv["spec_id"].tolist() == list(range(len(mv)))
    assert pd.api.types.is_integer_dtype(mv["ratio"]) and set(mv["ratio"]) == {1, 2, 3}
    power = pd.read_csv(out / "power.csv")
    assert pd.api.types.is_float_dtype(power["value"])  # nothing hidden: n = 14 per group


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def test_hidden_counts_cannot_be_recovered_from_totals(real_run):
    out = real_run[0]
    flow = pd.read_csv(out / "cohort_flow.csv", dtype=str, keep_default_na=False)
    nb, ex, na = ([_num(v) for v in flow[c]] for c in ("n_before", "n_excluded", "n_after"))
    for i in range(len(flow)):
        for j in range(i, len(flow)):
            if nb[i] is None or na[j] is None:
                continue
            rest = nb[i] - na[j] - sum(ex[k] for k in range(i, j + 1) if ex[k] is not None)
            hidden = [k for k in range(i, j + 1) if ex[k] is None]
            small = [k for k in hidden if flow["n_excluded"][k] == "<5"]
            assert not small or (len(hidden) >= 2 and rest >= 4 * len(small) + 5), (i, j)
    for name in ("outcomes.csv", "larger_cohort.csv"):
        t = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        for _, r in t[t["kind"] == "binary"].iterrows():
            for side in ("cases", "controls"):
                n, e = _num(r[f"n_{side}"]), _num(r[f"events_{side}"])
                if e is None:  # hidden: nothing computed from it is shown
                    assert r[f"percent_{side}"] == "-" and r["estimate"] == "-"
                    assert r["p_value"] == "-" and r["ci_low"] == "-"
                elif n is not None:  # shown: the patients without the event are not few
                    assert not 0 < n - e < 5, (name, r["outcome"], side)
    for name in ("table1_before.csv", "table1_after.csv"):
        t = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        for stage in ("before", "after"):
            if f"n_cases_{stage}" not in t.columns:
                continue
            for side in ("cases", "controls"):
                for _, g in t[t["kind"] == "categorical"].groupby("variable"):
                    hidden = [v for v in g[f"spread_{side}_{stage}"] if _num(v) is None]
                    assert len(hidden) != 1 or _num(g[f"n_{side}_{stage}"].iloc[0]) is None
    _check_multiverse(pd.read_csv(out / "multiverse.csv", dtype=str, keep_default_na=False))


def _check_multiverse(mv: pd.DataFrame) -> None:
    for _, r in mv.iterrows():
        parts = [_num(r["n_cases_matched"]), _num(r["n_controls_matched"])]
        if _num(r["n_matched"]) is not None:
            assert parts.count(None) != 1, r["spec_id"]
        if parts[0] is None:
            assert r["primary_estimate"] in ("-", "") and r["max_abs_smd"] in ("-", "")
        for side in ("cases", "controls"):
            total, part = _num(r[f"n_{side}_matched"]), _num(r[f"primary_n_{side}"])
            if total is not None and part is not None:
                assert not 0 < total - part < 5, r["spec_id"]


def _outputs(nb_path) -> str:
    nb = json.loads(nb_path.read_text())
    texts = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            t = o.get("text") or o.get("data", {}).get("text/plain") or ""
            texts.append("".join(t))
            h = o.get("data", {}).get("text/html")
            if h:
                texts.append(html.unescape(re.sub(r"<[^>]+>", " ", "".join(h))))
    return "\n".join(texts)


def test_notebooks_and_html_show_no_small_count(real_run):
    out = real_run[0]
    patterns = TEXT_COUNTS + SENTENCE_COUNTS
    for nb in sorted(out.glob("*.ipynb")):
        text = _outputs(nb)
        assert not _small_in_text(text, patterns), (nb.name, _small_in_text(text, patterns)[:5])
    for page in sorted(out.glob("*.html")):
        raw = re.sub(r"data:image/[^\"']+", "", page.read_text())
        raw = re.sub(r"<(style|script)\b.*?</\1>", " ", raw, flags=re.DOTALL)
        text = html.unescape(re.sub(r"<[^>]+>", " ", raw))
        assert not _small_in_text(text, patterns), (page.name, _small_in_text(text, patterns)[:5])
    text = _outputs(out / "03_outcomes.ipynb")
    assert "<5/14" in text  # the rendered Table 2
    sizes = _outputs(out / "02_matching.ipynb")
    assert "Empty DataFrame" not in sizes
    assert re.search(r"Matched\s+\S+\s+\S+", sizes) and "Unmatched" in sizes


def test_sweep_and_multiverse_files_of_real_data(real_run, tmp_path):
    from esi.sensitivity import run_multiverse
    from esi.sweep import load_grid, sweep, write_sweep

    _, data, _, _, params = real_run
    base = tmp_path / "base.yaml"
    base.write_text(f"data_path: {data}\n")
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid:\n  caliper: [0.2, 0.0005]\n")
    points, full = load_grid(grid, base=str(base))
    table = sweep(points, full, workers=1, progress=False)
    csv_path, _, page = write_sweep(table, tmp_path / "sweep")
    sw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    assert sw["n_cases_matched"].tolist() == ["14", "<5"]
    assert sw.loc[1, "leg_pain_reduction_4w_estimate"] == "-"
    assert sw["caliper"].tolist() == ["0.2", "0.0005"] and sw["point"].tolist() == ["1", "2"]
    text = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
    assert "<5 / <5" in text and not _small_in_text(text, SENTENCE_COUNTS)
    path = run_multiverse({**params, **MULTIVERSE}, tmp_path / "mv")
    mv = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in COUNTS["multiverse.csv"]:
        assert not [v for v in mv[col] if _small(v)], col
    assert (mv["n_cases_matched"] == "<5").any() and (mv["n_matched"] == "-").any()
    _check_multiverse(mv)
    assert mv["spec_id"].tolist() == [str(i) for i in range(len(mv))]
    assert set(mv["timepoint_weeks"]) == {"4"} and set(mv["ratio"]) == {"1"}
