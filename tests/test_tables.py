"""Table 1, Table 2, publication text and the outcome figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402
from test_compare import toy_match, toy_registry  # noqa: E402

from esi.compare import compare_matched  # noqa: E402
from esi.plots.outcomes import forest_plot, trajectory_plot  # noqa: E402
from esi.tables import (  # noqa: E402
    format_comparison,
    format_p,
    format_table1,
    format_table2,
    table1,
    table2,
)


@pytest.fixture(scope="module")
def registry():
    return toy_registry()


@pytest.fixture(scope="module")
def match(registry):
    return toy_match(registry)


@pytest.mark.parametrize(("p", "text"), [
    (0.72, "P = 0.72"), (0.047, "P = 0.047"), (0.0004, "P < 0.001"), (0.001, "P = 0.001"),
    (0.1, "P = 0.10"), (0.999, "P > 0.99"), (1.0, "P > 0.99"), (float("nan"), "P = n/a"),
    (0.0999, "P = 0.100"),
])
def test_format_p(p, text):
    assert format_p(p) == text


def test_format_p_rejects_impossible_values():
    with pytest.raises(ValueError, match="p must lie"):
        format_p(1.5)


def test_format_comparison_matches_the_paper_style():
    row = {"kind": "continuous", "mean_cases": 2.36, "sd_cases": 2.55, "mean_controls": 2.61,
           "sd_controls": 2.15, "p_value": 0.7201}
    assert format_comparison(row) == "2.36 (SD 2.55) vs. 2.61 (SD 2.15); P = 0.72"
    row = {"kind": "binary", "events_cases": 4, "n_cases": 14, "percent_cases": 100 * 4 / 14,
           "events_controls": 7, "n_controls": 14, "percent_controls": 50.0, "p_value": 0.4401}
    assert format_comparison(row) == "4/14 (28.6%) vs. 7/14 (50.0%); P = 0.44"


def test_table1_before_and_after(registry, match):
    t1 = table1(registry, match=match)
    assert {"variable", "level", "kind", "smd_before", "smd_after", "cases_before",
            "controls_after"} <= set(t1.columns)
    age = t1[t1["variable"] == "age"].iloc[0]
    cases = registry.loc[registry["near_normal"] == 1, "age"]
    controls = registry.loc[registry["near_normal"] == 0, "age"]
    # ATT convention: denominator = SD of the cases in the unmatched sample
    assert_allclose(age["smd_before"], (cases.mean() - controls.mean()) / cases.std(ddof=1))
    matched_controls = registry.loc[match.pairs["control"], "age"]
    assert_allclose(age["smd_after"],
                    (cases.mean() - matched_controls.mean()) / cases.std(ddof=1))
    assert age["cases_before"] == f"{cases.mean():.1f} ({cases.std(ddof=1):.1f})"
    female = t1[(t1["variable"] == "sex") & (t1["level"] == "female")].iloc[0]
    p1 = (registry.loc[registry["near_normal"] == 1, "sex"] == "female").mean()
    p0 = (registry.loc[registry["near_normal"] == 0, "sex"] == "female").mean()
    assert_allclose(female["smd_before"], p1 - p0)  # binary: raw difference in proportions
    assert t1[t1["variable"] == "smoking"]["level"].tolist() == ["current", "former", "never"]
    assert "Table 1" in format_table1(t1)
    assert "smd_after" not in table1(registry).columns


def test_table1_agrees_with_balance_table(registry, match):
    from esi.balance import balance_table

    t1 = table1(registry, covariates=["age", "baseline_odi", "opioid_use"], match=match)
    data = registry.assign(opioid_use=registry["opioid_use"].astype(int))
    bal = balance_table(data, "near_normal", ["age", "baseline_odi", "opioid_use"],
                        weights=match.weights)
    assert_allclose(t1["smd_after"].to_numpy(), bal["smd"].to_numpy())


def test_table1_errors(registry):
    with pytest.raises(ValueError, match="not in the data"):
        table1(registry, covariates=["height"])
    with pytest.raises(ValueError, match="treatment"):
        table1(registry, treatment="case")


def test_table2_and_text(registry, match):
    outcomes = compare_matched(registry, match, missing="locf")
    t2 = table2(outcomes)
    assert len(t2) == 14
    assert t2["text"].iloc[0] == format_comparison(outcomes.iloc[0])
    assert t2["p"].str.startswith("P ").all()
    text = format_table2(t2)
    assert "last observation carried forward" in text  # the rule in force is printed
    assert "welch" in text and "fisher" in text
    with pytest.raises(ValueError, match="lacks column"):
        table2(outcomes.drop(columns="p_value"))


def test_forest_plot(registry, match):
    outcomes = compare_matched(registry, match)
    fig = forest_plot(outcomes)
    assert len(fig.axes) == 2  # Hedges' g and odds ratios need separate scales
    assert fig.axes[1].get_xscale() == "log"
    continuous = outcomes[outcomes["kind"] == "continuous"]
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert forest_plot(continuous, ax=ax) is ax.figure
    assert len(ax.get_yticklabels()) == 6
    with pytest.raises(ValueError, match="mixes effect sizes"):
        forest_plot(outcomes, ax=ax)
    fig2 = forest_plot(outcomes, measure="estimate")
    assert len(fig2.axes) == 2
    plt.close("all")


def test_forest_plot_marks_unestimable_rows():
    reg = toy_registry(n_cases=1, n_controls=1, miss_frac=0.0)
    fig = forest_plot(compare_matched(reg, toy_match(reg)))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "not estimable" in texts


def test_trajectory_plot(registry, match):
    fig = trajectory_plot(registry, match)
    assert len(fig.axes) == 3
    lines = fig.axes[0].lines
    assert lines  # error bars drawn
    leg_texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("n = 8/" in t for t in leg_texts)  # 8 matched cases at baseline
    # the plotted baseline mean of the cases is the mean baseline leg pain of the cases
    cases = registry.loc[match.pairs["treated"], "baseline_leg_pain"].mean()
    ydata = [np.asarray(line.get_ydata()) for line in lines if len(line.get_ydata()) == 3]
    assert any(np.isclose(y[0], cases) for y in ydata)
    import matplotlib.pyplot as plt

    with pytest.raises(ValueError, match="3 Axes"):
        trajectory_plot(registry, ax=plt.subplots(1, 2)[1])
    plt.close("all")


def test_table2_requires_one_rule(registry, match):
    a = compare_matched(registry, match)
    b = compare_matched(registry, match, missing="bocf")
    with pytest.raises(ValueError, match="missing_rule"):
        table2(pd.concat([a, b]))
