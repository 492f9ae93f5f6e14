"""Disclosure control (esi.disclosure): one declaration per table, primary and secondary
suppression, nothing but counts and their statistics touched; and what decides "synthetic"."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest

from esi.disclosure import DISCLOSURES, HIDDEN, declaration, disclose, rule_text, shown_count
from esi.params import ParameterError

SMALL = "<5"


def _flow():
    return pd.DataFrame({
        "step": ["window", "adult", "mri", "pathology"],
        "criterion": ["in window", "aged 18 or over", "MRI", "concordant"],
        "n_before": [487, 475, 472, 400], "n_excluded": [12, 3, 72, 10],
        "n_after": [475, 472, 400, 390],
        "reasons": ["outside the window: 12", "under 18: 3", "no MRI: 70; unreadable: 2",
                    "discordant: 10"]})


def _recoverable_flow_cells(flow: pd.DataFrame) -> list[str]:
    """Independent check: every run of steps i..j whose n_before[i] and n_after[j] are shown
    gives the sum of its exclusions; a hidden small count must not be pinned down by it."""
    problems = []
    num = [[v if not isinstance(v, str) else None for v in flow[c]]
           for c in ("n_before", "n_excluded", "n_after")]
    nb, ex, na = num
    for i in range(len(flow)):
        for j in range(i, len(flow)):
            if nb[i] is None or na[j] is None:
                continue
            rest = nb[i] - na[j] - sum(ex[k] for k in range(i, j + 1) if ex[k] is not None)
            hidden = [k for k in range(i, j + 1) if ex[k] is None]
            small = [k for k in hidden if flow["n_excluded"].iloc[k] == SMALL]
            if small and (len(hidden) < 2 or rest < 4 * len(small) + 5):
                problems.append(f"steps {i}..{j}: hidden {hidden} sum to {rest}")
    return problems


def test_flow_hides_the_small_count_and_what_reveals_it():
    flow = _flow()
    out = disclose(flow, "cohort_flow")
    assert out.loc[1, ["n_before", "n_excluded", "n_after"]].tolist() == [475, SMALL, HIDDEN]
    assert out.loc[1, "reasons"] == "under 18: <5"
    # the next step's n_before (the same number) and an exclusion are hidden too
    assert out.loc[2, ["n_before", "n_excluded"]].tolist() == [HIDDEN, HIDDEN]
    # the reasons of a hidden exclusion count are hidden with it
    assert out.loc[2, "reasons"] == "no MRI: -; unreadable: <5"
    assert _recoverable_flow_cells(out) == []
    naive = flow.astype(object)  # primary suppression alone: 475 - 472 gives it back
    naive.loc[1, "n_excluded"] = SMALL
    assert "steps 1..1: hidden [1] sum to 3" in _recoverable_flow_cells(naive)
    # untouched: the rows without small counts, the texts, the input
    assert out.loc[0].tolist() == flow.loc[0].tolist()
    assert out["criterion"].tolist() == flow["criterion"].tolist()
    assert flow.loc[1, "n_excluded"] == 3
    pd.testing.assert_frame_equal(disclose(out, "cohort_flow"), out)  # idempotent


def test_flow_with_a_zero_step_between_keeps_hiding_until_a_real_complement():
    flow = _flow()
    flow.loc[2, ["n_excluded", "n_after", "reasons"]] = [0, 472, ""]
    flow.loc[3, ["n_before", "n_after"]] = [472, 462]
    out = disclose(flow, "cohort_flow")
    assert out.loc[2, "n_excluded"] == 0  # zeros are shown
    assert out.loc[3, "n_excluded"] == HIDDEN
    assert _recoverable_flow_cells(out) == []


def test_non_counts_are_never_touched():
    mv = pd.DataFrame({"spec_id": [0, 1, 2, 3], "ratio": [1, 2, 3, 4],
                       "caliper": [None, 0.1, 0.2, 4.0], "timepoint_weeks": [4, 4, 4, 4],
                       "n_cases_matched": [14, 3, 14, 2], "n_controls_matched": [14, 3, 28, 8],
                       "n_matched": [28, 6, 42, 10], "primary_n_cases": [14, 3, 13, 2],
                       "primary_n_controls": [14, 3, 28, 8],
                       "primary_estimate": [0.5, 0.7, -0.2, 0.1],
                       "positive_n_cases": [14, 3, 14, 2],
                       "positive_n_controls": [14, 3, 28, 8],
                       "positive_estimate": [0.1, 0.2, 0.3, 0.4], "status": ["ok"] * 4})
    out = disclose(mv, "multiverse")
    for col in ("spec_id", "ratio", "caliper", "timepoint_weeks", "status"):
        pd.testing.assert_series_equal(out[col], mv[col])
    assert out.loc[1, ["n_cases_matched", "n_controls_matched", "n_matched"]].tolist() == [
        SMALL, SMALL, HIDDEN]
    assert out.loc[1, "primary_estimate"] == HIDDEN and out.loc[0, "primary_estimate"] == 0.5
    # one primary case missing follow-up: 14 - 13 = 1 patient, hidden with its complement
    assert out.loc[2, "primary_n_cases"] == HIDDEN and out.loc[2, "n_cases_matched"] == 14
    assert out.loc[2, "primary_estimate"] == HIDDEN
    # 2 cases + 8 controls = 10: the 8 is hidden, else n_matched - 8 gives the 2
    assert out.loc[3, ["n_cases_matched", "n_controls_matched", "n_matched"]].tolist() == [
        SMALL, HIDDEN, 10]


def test_outcome_events_stored_as_floats_are_counts():
    o = pd.DataFrame({"outcome": ["x", "y", "z"], "timepoint_weeks": [4, 12, 4],
                      "kind": ["binary", "binary", "continuous"], "n_cases": [14, 14, 3],
                      "n_controls": [14, 14, 14], "n_pairs": [None, None, None],
                      "events_cases": [4.0, 13.0, None], "events_controls": [7.0, 7.0, None],
                      "percent_cases": [28.6, 92.9, None], "percent_controls": [50.0, 50.0, None],
                      "mean_cases": [None, None, 2.5], "estimate": [-0.21, 0.43, 1.0],
                      "p_value": [0.4, 0.03, 0.5]})
    out = disclose(o, "outcomes")
    assert out.loc[0, ["events_cases", "percent_cases", "estimate", "p_value"]].tolist() == [
        SMALL, HIDDEN, HIDDEN, HIDDEN]
    assert out.loc[0, "events_controls"] == 7
    # 13 of 14: the one patient without the event is a small count too
    assert out.loc[1, "events_cases"] == HIDDEN and out.loc[1, "percent_cases"] == HIDDEN
    # 3 cases with a value: n hidden with every statistic of the row, the mean included
    assert out.loc[2, ["n_cases", "mean_cases", "estimate"]].tolist() == [SMALL, HIDDEN, HIDDEN]
    assert out["timepoint_weeks"].tolist() == [4, 12, 4]


def test_table2_text_cells():
    t2 = pd.DataFrame({
        "label": ["Positive outcome", "Leg pain"], "timepoint_weeks": [4, 4],
        "n_cases": [14, 3], "n_controls": [14, 14],
        "cases": ["4/14 (28.6%)", "2.36 (SD 2.55)"], "controls": ["7/14 (50.0%)", "2.61 (SD 2.15)"],
        "estimate": ["-21.4 (-50.0 to 14.0) points", "-0.25 (-2.08 to 1.58)"],
        "effect_size": ["odds_ratio 0.40 (0.1 to 2.0)", "rank_biserial -0.08 (-0.48 to 0.34)"],
        "p": ["P = 0.22", "P = 0.72"],
        "text": ["4/14 (28.6%) vs. 7/14 (50.0%); P = 0.22",
                 "2.36 (SD 2.55) vs. 2.61 (SD 2.15); P = 0.72"],
        "p_value": [0.22, 0.72]})
    out = disclose(t2, "table2")
    assert out.loc[0, ["cases", "controls", "estimate", "p"]].tolist() == [
        "<5/14", "7/14 (50.0%)", HIDDEN, HIDDEN]
    assert out.loc[0, "text"] == "<5/14 vs. 7/14 (50.0%); P = -"
    assert out.loc[1, ["n_cases", "cases", "p_value"]].tolist() == [SMALL, HIDDEN, HIDDEN]
    assert out.loc[1, "text"] == "- vs. - ; P = -".replace(" ;", ";")
    assert out["timepoint_weeks"].tolist() == [4, 4] and out["label"].equals(t2["label"])
    pd.testing.assert_frame_equal(disclose(out, "table2"), out)  # a shown table again: as is


def test_table1_levels_and_binary_rows():
    t1 = pd.DataFrame({
        "variable": ["age", "sex", "sex", "opioid_use"], "level": ["", "female", "male", "yes"],
        "kind": ["continuous", "categorical", "categorical", "binary"],
        "n_cases_before": [14.0] * 4, "n_controls_before": [322.0] * 4,
        "value_cases_before": [50.3, 3 / 14, 11 / 14, 13 / 14],
        "value_controls_before": [51.5, 0.46, 0.54, 0.33],
        "spread_cases_before": [13.0, 3.0, 11.0, 13.0],
        "spread_controls_before": [12.8, 148.0, 174.0, 105.0],
        "cases_before": ["50.3 (13.0)", "3 (21.4%)", "11 (78.6%)", "13 (92.9%)"],
        "controls_before": ["51.5 (12.8)", "148 (46.0%)", "174 (54.0%)", "105 (32.6%)"],
        "smd_before": [-0.1, -0.2, 0.2, 0.6]})
    out = disclose(t1, "table1_before")
    assert out.loc[1, ["spread_cases_before", "cases_before", "value_cases_before",
                       "smd_before"]].tolist() == [SMALL, SMALL, HIDDEN, HIDDEN]
    # the other level: 14 - 11 would give the 3
    assert out.loc[2, ["spread_cases_before", "cases_before"]].tolist() == [HIDDEN, HIDDEN]
    # 13 of 14 with opioids: one without
    assert out.loc[3, ["spread_cases_before", "cases_before"]].tolist() == [HIDDEN, HIDDEN]
    # SDs of continuous rows are not counts; the controls' texts and counts stay
    assert out.loc[0].tolist() == t1.loc[0].tolist()
    assert out["controls_before"].tolist() == t1["controls_before"].tolist()


def test_sample_sizes_keep_their_columns():
    ss = pd.DataFrame({"control": [322.0, 3.0, 3.0, 319.0, 0.0],
                       "treated": [14.0, 3.0, 3.0, 11.0, 0.0]},
                      index=pd.Index(["All", "Matched (ESS)", "Matched", "Unmatched",
                                      "Discarded"], name="sample"))
    out = disclose(ss, "sample_sizes")
    assert list(out.columns) == ["control", "treated"] and not out.empty
    assert out["treated"].tolist() == [14, SMALL, SMALL, HIDDEN, 0]
    assert out["control"].tolist() == [322, SMALL, SMALL, HIDDEN, 0]


def test_row_level_columns_are_dropped_except_from_the_pseudonymised_pairs():
    inf = pd.DataFrame({"left_out": ["none", "set"], "subclass": [None, 1],
                        "treated": [None, "P-A"], "control": [None, "P-B"],
                        "y_treated": [None, 3.0], "y_control": [None, 2.0],
                        "estimate": [0.1, 0.2], "n_sets": [14, 13]})
    assert "treated" not in disclose(inf, "influence").columns
    pairs = pd.DataFrame({"treated": ["P-A"], "control": ["P-B"], "subclass": [1]})
    pd.testing.assert_frame_equal(disclose(pairs, "matched_pairs.csv"), pairs)


def test_every_output_needs_a_declaration():
    with pytest.raises(ValueError, match="no disclosure declaration for the table 'new.csv'"):
        declaration("new.csv")
    assert declaration("table1_after.csv") is DISCLOSURES["table1"]
    assert shown_count(3) == SMALL and shown_count(0) == "0" and shown_count(14.0) == "14"
    assert shown_count(3, None) == "3" and shown_count(SMALL) == SMALL


def test_the_rule_is_in_the_data_dictionary():
    from esi.paths import DATA_DICTIONARY
    from esi.schema import render_data_dictionary

    rule = rule_text()
    assert "Secondary suppression" in rule and "`cohort_flow`" in rule
    assert rule in render_data_dictionary()
    assert rule in DATA_DICTIONARY.read_text(encoding="utf-8")  # `make data-dictionary` ran


def test_flow_diagram_labels_are_disclosed():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from esi.plots.flow import flow_diagram

    flow = _flow()
    groups = pd.DataFrame({"imaging_group": ["near_normal", "abnormal", "other"],
                           "eligible": [3, 387, 0], "excluded": [9, 80, 8]})
    fig = flow_diagram(flow, groups, suppress_below=5)
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)
    assert "excluded: <5" in text and "under 18: <5" in text and "n = 472" not in text
    assert "near-normal MRI\nn = <5" in text and "n = 387" not in text
    fig = flow_diagram(flow, groups)  # synthetic data: as they are
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)
    assert "excluded: 3" in text and "n = 472" in text


# --- what decides "synthetic" ----------------------------------------------------------------

def test_synthetic_is_decided_by_the_bytes(tmp_path, monkeypatch):
    from esi.paths import SYNTHETIC_REGISTRY
    from esi.pipeline import is_synthetic
    from esi.synthetic import header_seed, is_generated

    monkeypatch.setenv("ESI_CACHE_DIR", str(tmp_path / "cache"))
    copy = shutil.copy(SYNTHETIC_REGISTRY, tmp_path / "copy.csv")
    assert header_seed(copy) == 100574
    assert is_generated(copy)  # the bytes decide, not the path
    assert is_synthetic({"data_path": str(copy), "mapping": None, "synthetic": None})
    assert not is_synthetic({"data_path": str(copy), "mapping": None, "synthetic": False})
    text = SYNTHETIC_REGISTRY.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    edited = tmp_path / "edited.csv"  # header kept, one value changed: a real export
    edited.write_text("".join(lines[:6]) + lines[6].replace(",", ",9", 1) + "".join(lines[7:]))
    headless = tmp_path / "export.csv"  # what a registry export looks like
    headless.write_text("".join(line for line in lines if not line.startswith("#")))
    for path in (edited, headless):
        assert not is_generated(path)
        params = {"data_path": str(path), "mapping": None, "synthetic": None}
        assert not is_synthetic(params)
        with pytest.raises(ParameterError, match="not a registry that esi generated"):
            is_synthetic({**params, "synthetic": True})
    # a mapping means the file is not what esi synth wrote
    assert not is_synthetic({"data_path": str(copy), "mapping": "m.yaml", "synthetic": None})
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert digest in (tmp_path / "cache" / "generated-registries.json").read_text()
    assert oct((tmp_path / "cache" / "generated-registries.json").stat().st_mode)[-3:] == "600"


def test_esi_run_refuses_a_false_synthetic_claim(tmp_path, capsys):
    from esi.cli import main
    from esi.io import write_registry

    from factory import example_registry

    data = write_registry(example_registry(n=40), tmp_path / "registry.csv")
    assert main(["run", "--data", str(data), "--synthetic", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "synthetic: true" in err and "not a registry that esi generated" in err
    assert not (tmp_path / "o").exists()
    params = tmp_path / "p.yaml"
    params.write_text(f"data_path: {data}\nsynthetic: true\n")
    assert main(["multiverse", "--params", str(params), "--out", str(tmp_path / "m")]) == 2
    assert "not a registry that esi generated" in capsys.readouterr().err


def test_figures_of_real_data_draw_nothing_hidden():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from esi.paths import REFERENCE_RUN_DIR
    from esi.plots.outcomes import forest_plot
    from esi.plots.sensitivity import specification_curve

    outcomes = pd.read_csv(REFERENCE_RUN_DIR / "outcomes.csv")
    shown = disclose(outcomes, "outcomes")
    hidden = int((shown["estimate"] == HIDDEN).sum())
    assert hidden >= 3  # the reference run has small counts in its binary outcomes
    fig = forest_plot(shown)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    plt.close(fig)
    assert texts.count("not shown (counts below 5)") == hidden
    mv = pd.read_csv(REFERENCE_RUN_DIR / "multiverse.csv").head(40)
    mv.loc[:9, ["n_cases_matched", "n_controls_matched", "n_matched"]] = [3, 3, 6]
    fig = specification_curve(disclose(mv, "multiverse"))
    assert fig.axes[0].get_title() == "30 specifications, sorted by estimate"
    plt.close(fig)


def _positive(events_cases, events_controls, n=14):
    estimate = (events_cases - events_controls) / n
    return {"estimate": estimate, "ci_low": estimate - 0.3, "ci_high": estimate + 0.3,
            "p_value": 0.22}


@pytest.mark.parametrize("events", [(3, 7), (7, 3), (11, 7), (7, 12)])
def test_multiverse_risk_difference_of_a_small_count_is_hidden(events):
    # the risk difference times n gives the difference of the event counts: with one arm's
    # events (or non-events, n - events) below 5 the estimate would give the hidden count back
    stats = _positive(*events)
    table = pd.DataFrame([{
        "spec_id": 1, "ratio": 1, "timepoint_weeks": 4, "n_cases_matched": 14,
        "n_controls_matched": 14, "n_matched": 28, "max_abs_smd": 0.05,
        "primary_n_cases": 14, "primary_n_controls": 14, "primary_estimate": -0.25,
        "primary_ci_low": -2.0, "primary_ci_high": 1.5, "primary_p_value": 0.72,
        "positive_n_cases": 14, "positive_n_controls": 14,
        "positive_events_cases": events[0], "positive_events_controls": events[1],
        **{f"positive_{k}": v for k, v in stats.items()}}])
    out = disclose(table, "multiverse")
    for k in stats:
        assert out.loc[0, f"positive_{k}"] == HIDDEN, k
    assert out.loc[0, "primary_estimate"] == -0.25  # not computed from the hidden count
    assert out.loc[0, ["spec_id", "ratio", "timepoint_weeks"]].tolist() == [1, 1, 4]
    shown = disclose(table.assign(positive_events_cases=7, positive_events_controls=7),
                     "multiverse")
    assert shown.loc[0, "positive_p_value"] == 0.22


def test_sweep_risk_difference_of_a_small_count_is_hidden():
    row = {"point": 1, "n_cases_matched": 14, "n_controls_matched": 14, "max_abs_smd": 0.05,
           "leg_pain_reduction_4w_estimate": -0.25}
    for t, events in ((4, (3, 7)), (12, (7, 7))):
        row.update({f"positive_outcome_{t}w_{k}": v for k, v in _positive(*events).items()})
        row.update({f"positive_outcome_{t}w_n_cases": 14, f"positive_outcome_{t}w_n_controls": 14,
                    f"positive_outcome_{t}w_events_cases": events[0],
                    f"positive_outcome_{t}w_events_controls": events[1]})
    out = disclose(pd.DataFrame([row]), "sweep")
    assert out.loc[0, "positive_outcome_4w_events_cases"] == SMALL
    assert out.loc[0, "positive_outcome_4w_estimate"] == HIDDEN
    assert out.loc[0, "positive_outcome_4w_p_value"] == HIDDEN
    assert out.loc[0, "positive_outcome_12w_estimate"] == 0.0  # 7 vs 7: nothing small
    assert out.loc[0, "leg_pain_reduction_4w_estimate"] == -0.25
