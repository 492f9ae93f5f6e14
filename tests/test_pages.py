"""The pages a reader opens (esi.pages): titles, contents, navigation, the shared stylesheet,
the run index's headline, key results and parameters in words."""

from __future__ import annotations

import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import esi.pipeline as pipeline
from esi import pages, sweep
from esi.outputs import REPORTS_INDEX_TITLE, is_reports_index
from esi.params import CHOICES, DEFAULTS, NOTEBOOK_EXTRA, SENSITIVITY_DEFAULTS
from esi.paths import PROJECT_ROOT

REFERENCE = PROJECT_ROOT / "reports" / "reference"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Page(HTMLParser):
    """A page's title, ids and links; problems: end tags that close no open element,
    elements left open, ids given twice."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.links: list[tuple[str, dict[str, str]]] = []
        self.title = ""
        self._in_title = False
        self.feed(text)
        self.close()
        self.problems += [f"<{t}> not closed" for t in self.stack]
        self.problems += [f"id {i!r} twice" for i in set(self.ids) if self.ids.count(i) > 1]

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a" and "href" in a:
            self.links.append((a["href"], a))
        if tag == "title":
            self._in_title = True
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> at line {self.getpos()[0]} closes "
                                 f"{self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def markdown_notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s) for s in sources]
    nb.cells.append(nbformat.v4.new_code_cell("1 + 1"))
    nbformat.write(nb, path)
    return path


@pytest.fixture
def three_reports(tmp_path, monkeypatch):
    """Three notebooks rendered into a run folder with an index, as esi run renders them."""
    nbdir = tmp_path / "notebooks"
    run = tmp_path / "run"
    nbdir.mkdir()
    run.mkdir()
    markdown_notebook(nbdir / "01_first.ipynb", "# 1. Cohort definition\n\nWho is eligible.",
                      "## Eligibility")
    markdown_notebook(nbdir / "02_second.ipynb",
                      "# 2. Propensity-score *matching*\n\n**Question.** Can each case be "
                      "paired?",
                      "## The propensity model\n\ntext\n\n### Its covariates",
                      "## Balance before & after matching", "```\n# not a heading\n```",
                      "## What was found")
    markdown_notebook(nbdir / "03_third.ipynb", "Text before any heading.",
                      "## 3. Outcomes", "## Table 2")
    monkeypatch.setattr(pipeline, "NOTEBOOKS_DIR", nbdir)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", ("01_first", "02_second", "03_third"))
    for name in pipeline.NOTEBOOKS:
        shutil.copy(nbdir / f"{name}.ipynb", run / f"{name}.ipynb")
        pipeline._render_html(run / f"{name}.ipynb", run / f"{name}.html")
    (run / "index.html").write_text(pages.page("Run index", "<h1>Run</h1>"))
    return run


def test_report_title_is_the_notebook_heading(three_reports):
    titles = {p.stem: Page(p.read_text()).title for p in three_reports.glob("0*.html")}
    assert titles == {
        "01_first": "1. Cohort definition \N{EN DASH} ESI near-normal imaging",
        "02_second": "2. Propensity-score matching \N{EN DASH} ESI near-normal imaging",
        "03_third": "3. Outcomes \N{EN DASH} ESI near-normal imaging",  # first heading
    }
    assert "<title>Notebook</title>" not in (three_reports / "02_second.html").read_text()


def test_contents_list_every_section_and_its_anchor_resolves(three_reports):
    text = (three_reports / "02_second.html").read_text()
    page = Page(text)
    assert page.problems == []
    toc = re.search(r'<nav class="esi-toc".*?</nav>', text, re.S).group(0)
    entries = re.findall(r'<a href="#([^"]+)">([^<]+)</a>', toc)
    assert [t for _, t in entries] == ["The propensity model", "Its covariates",
                                       "Balance before &amp; after matching",
                                       "What was found"]
    for anchor, _ in entries:
        assert html.unescape(anchor) in page.ids
    # the subsection is nested under its section; the title (h1) is not listed
    assert re.search(r"The propensity model</a><ol><li><a [^>]*>Its covariates", toc)
    # the contents follow the title
    assert text.index("</h1>") < text.index('<nav class="esi-toc"')


def test_navigation_links_point_to_existing_reports(three_reports):
    expected = {"01_first": (None, "02_second.html"),
                "02_second": ("01_first.html", "03_third.html"),
                "03_third": ("02_second.html", None)}
    for name, (prev, nxt) in expected.items():
        page = Page((three_reports / f"{name}.html").read_text())
        assert page.problems == []
        rel = {}
        for href, attrs in page.links:
            if href.startswith("#"):
                assert href[1:] in page.ids, href
                continue
            assert (three_reports / href).exists(), f"{name}: {href}"
            rel.setdefault(attrs.get("rel") or attrs.get("class"), set()).add(href)
        assert rel["esi-home"] == {"index.html"}
        assert rel.get("prev") == ({prev} if prev else None)
        assert rel.get("next") == ({nxt} if nxt else None)
    text = (three_reports / "02_second.html").read_text()
    assert "\N{LEFTWARDS ARROW} 1. Cohort definition" in text  # neighbours by their heading
    assert "3. Outcomes \N{RIGHTWARDS ARROW}" in text


def test_report_carries_the_shared_stylesheet_with_print_rules(three_reports):
    text = (three_reports / "01_first.html").read_text()
    css = pages.stylesheet()
    assert css in text
    head = text[:text.index("</head>")]
    # the last style of the head, after nbconvert's own, which it overrides
    assert head.count("<style") > 1 and css in head[head.rindex("<style"):]
    assert 'class="esi-report jp-Notebook"' in text
    media = css[css.index("@media print"):]
    assert re.search(r"nav\.esi-nav, nav\.esi-toc[^{]*\{ display: none", media)
    assert re.search(r"body\.esi-report h2 \{ break-before: page", media)
    assert re.search(r"table, figure, img[^{]*\{ break-inside: avoid", media)
    assert "max-width: 62rem" in css and "sans-serif" in css
    assert re.search(r"td\.num[^{]*\{ text-align: right", css)


def test_finish_report_refuses_a_fragment():
    with pytest.raises(ValueError, match="not a complete HTML page"):
        pages.finish_report("<p>no page</p>", "Title")


def test_notebook_heading(tmp_path):
    assert pages.notebook_heading(markdown_notebook(
        tmp_path / "a.ipynb", "```\n# code\n```\n  ## `Sample` sizes ##")) == "Sample sizes"
    assert pages.notebook_heading(markdown_notebook(tmp_path / "b.ipynb", "no heading")) is None
    assert pages.notebook_heading(tmp_path / "missing.ipynb") is None


# --------------------------------------------------------------------------- the headline
def outcome_rows(**primary) -> pd.DataFrame:
    base = {"outcome": "leg_pain_reduction", "label": "Reduction in average leg pain (0-10)",
            "timepoint_weeks": 4, "kind": "continuous", "primary": True,
            "test": "mann_whitney", "n_cases": 14, "n_controls": 14, "mean_cases": 2.357,
            "sd_cases": 2.545, "mean_controls": 2.607, "sd_controls": 2.15,
            "events_cases": None, "events_controls": None, "percent_cases": None,
            "percent_controls": None, "estimate": -0.25, "ci_low": -2.0828, "ci_high": 1.5828,
            "p_value": 0.7220}
    later = {**base, "timepoint_weeks": 12, "estimate": 9.0, "ci_low": 8.0, "ci_high": 10.0,
             "p_value": 0.0001}
    binary = {**base, "outcome": "positive_outcome", "label": "Positive outcome (composite)",
              "kind": "binary", "primary": False, "test": "fisher_less", "mean_cases": None,
              "sd_cases": None, "mean_controls": None, "sd_controls": None,
              "events_cases": 4, "events_controls": 7, "percent_cases": 28.571,
              "percent_controls": 50.0, "estimate": -0.2143, "ci_low": -0.501,
              "ci_high": 0.1348, "p_value": 0.22}
    return pd.DataFrame([{**base, **primary}, later, binary])


def test_headline_no_difference():
    text = pages.headline(outcome_rows(), alpha=0.05, margin=1.5)
    assert text == (
        "Primary outcome, reduction in average leg pain at 4 weeks (0-10): mean 2.36 points "
        "(SD 2.54) with near-normal imaging (n = 14) and 2.61 (SD 2.15) with concordant "
        "pathology (n = 14); difference -0.25 points (95% CI -2.08 to 1.58), P = 0.72, "
        "two-sided Mann-Whitney U test. No evidence of a difference between the groups: P is "
        "not below the significance level 0.05 and the 95% CI includes no difference. This "
        "does not show that the groups do equally well. The 95% CI does not rule out a "
        "difference of 1.5 points, the smallest change that matters to patients.")


def test_headline_follows_the_numbers():
    text = pages.headline(outcome_rows(estimate=-1.8, ci_low=-2.9, ci_high=-0.7,
                                       p_value=0.004, test="welch"), alpha=0.05, margin=3)
    assert "difference -1.80 points (95% CI -2.90 to -0.70), P = 0.004, two-sided Welch" in text
    assert "The reduction was smaller with near-normal imaging than with concordant " \
           "pathology" in text
    assert "excludes differences of 3 points or more" in text
    assert "No evidence" not in text
    larger = pages.headline(outcome_rows(estimate=1.2, ci_low=0.2, ci_high=2.2, p_value=0.02))
    assert "The reduction was larger with near-normal imaging" in larger
    # the primary outcome's first time point, not the (significant) 12-week row
    assert "at 4 weeks" in larger and "9.00" not in larger


def test_headline_of_a_real_registry_shows_hidden_counts(tmp_path):
    """A disclosed outcomes.csv read as text: "<5" and "-" cells are shown as they are."""
    path = tmp_path / "outcomes.csv"
    outcome_rows(n_cases="<5", n_controls="-", sd_cases="-").to_csv(path, index=False)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    text = pages.headline(table, alpha=0.05, margin=1.5)
    assert "with near-normal imaging (n <5) and 2.61 (SD 2.15) with concordant pathology " \
           "(n not shown)" in text
    assert "(SD -)" in text and "nan" not in text.lower()
    assert "No evidence of a difference" in text
    # hidden effect numbers: the paragraph says they cannot be judged instead of breaking
    hidden = pages.headline(outcome_rows(ci_low="-", p_value="-"))
    assert "95% CI -2.08" not in hidden and "P not shown" in hidden
    assert hidden.endswith("The difference cannot be judged from the shown values.")


def test_headline_without_a_primary_row():
    assert pages.headline(pd.DataFrame({"x": [1]})) is None
    assert pages.headline(outcome_rows().iloc[2:]) is None


def test_key_results_read_as_a_paper():
    rows = pages.key_results(outcome_rows())
    assert rows[0] == {"label": "Reduction in average leg pain at 4 weeks (0-10)",
                       "cases": "2.36 (SD 2.54)", "controls": "2.61 (SD 2.15)",
                       "difference": "-0.25 (-2.08 to 1.58)", "p": "0.72"}
    assert rows[2] == {"label": "Positive outcome at 4 weeks (composite)",
                       "cases": "4/14 (29%)", "controls": "7/14 (50%)",
                       "difference": "-21.4 (-50.1 to 13.5)", "p": "0.22"}
    hidden = pages.key_results(outcome_rows().astype(object).assign(
        events_cases=[None, None, "<5"], percent_cases=[None, None, "-"]))
    assert hidden[2]["cases"] == "<5/14"


def test_reproduction_score():
    table = pd.DataFrame({"match": ["True"] * 23 + ["False"]})
    assert pages.reproduction_score(table) == "23 of 24 published figures reproduced"
    assert pages.reproduction_score(pd.DataFrame({"x": [1]})) is None


# ------------------------------------------------------------------------------ parameters
RAW = re.compile(r'^(null|None|nan|\[\]|""|)$|\b[a-z]+_[a-z_]+\b')


@pytest.mark.parametrize("key", list(DEFAULTS) + list(NOTEBOOK_EXTRA))
def test_every_parameter_has_a_row_in_words(key):
    value = {**DEFAULTS, **SENSITIVITY_DEFAULTS}.get(key)
    rows = pages.parameter_rows({key: value})
    assert len(rows) == 1
    label, text = rows[0]
    assert "_" not in label and label[0].isupper()
    if key != "data_path":
        assert not RAW.search(text), (key, text)


def test_default_parameters_in_words():
    rows = dict(pages.parameter_rows(DEFAULTS))
    assert rows["Matching"] == ("nearest neighbour on the logit of the propensity score, 1:1, "
                                "caliper 0.2 SD, without replacement")
    assert rows["Test, binary outcomes"] == ("one-sided Fisher exact test (fewer successes "
                                             "among cases)")
    assert rows["Test, continuous outcomes"] == "two-sided Mann-Whitney U test"
    assert rows["Exact matching on"] == "none"
    assert rows["Mahalanobis matching within the caliper on"] == "none"
    assert rows["Missing follow-up"].startswith("complete case")
    assert rows["Registry file"] == DEFAULTS["data_path"]
    assert rows["Propensity-model covariates"].startswith("age (years), sex, BMI (kg/m^2), "
                                                          "pain duration (months)")
    for label, text in rows.items():
        if label != "Registry file":
            assert not RAW.search(text), (label, text)


@pytest.mark.parametrize("name", ["distance", "method", "missing", "test", "binary_test"])
def test_every_choice_in_words(name):
    texts = set()
    for choice in CHOICES[name]:
        text = " ".join(v for _, v in pages.parameter_rows({**DEFAULTS, name: choice})[1:])
        assert not RAW.search(text), (name, choice, text)
        texts.add(text)
    assert len(texts) == len(CHOICES[name])  # each choice described in its own words


def test_other_matching_choices_in_words():
    rows = dict(pages.parameter_rows({**DEFAULTS, "caliper": None, "replace": True,
                                      "ratio": 3, "method": "optimal", "mahvars": ["age", "bmi"],
                                      "exact": ["sex"], "synthetic": False}))
    assert rows["Matching"] == ("optimal (smallest total distance) on the logit of the "
                                "propensity score, 1:3, no caliper, with replacement")
    assert rows["Mahalanobis matching within the caliper on"] == "age (years), BMI (kg/m^2)"
    assert rows["Exact matching on"] == "sex"
    assert rows["Synthetic data"] == "no: treated as real patient data"


# ------------------------------------------------------------------------------- indexes
def reference_index(folder: Path) -> str:
    prov = json.loads((folder / "provenance.json").read_text())
    return pages.run_index_page(folder, prov["parameters"], prov, pipeline.NOTEBOOKS)


def test_run_index_of_the_reference_run():
    text = reference_index(REFERENCE)
    page = Page(text)
    assert page.problems == []
    assert page.title == "Run index \N{EN DASH} ESI near-normal imaging"
    assert pages.stylesheet() in text
    order = [text.index(s) for s in (
        "<strong>Question.</strong>", "<strong>Answer.</strong>",
        "24 of 24 published figures reproduced", "Key results", ">Parameters<", ">Reports<",
        ">Result files<")]
    assert order == sorted(order)
    assert "near-normal imaging (n = 14)" in text and "concordant pathology (n = 14)" in text
    assert "Reduction in average leg pain at 4 weeks (0-10)" in text
    assert "4/14 (29%)" in text and "28.57" not in text
    assert "leg_pain_reduction" not in text and "fisher_less" not in text
    assert "null" not in text and "[]" not in text
    assert ">2. Propensity-score matching</a>" in text
    for href, _ in page.links:
        assert (REFERENCE / href).exists(), href


def test_run_index_of_a_real_registry(tmp_path):
    """outcomes.csv with hidden cells: the index shows them and does not break."""
    folder = tmp_path / "run"
    folder.mkdir()
    table = outcome_rows(n_cases="<5").astype(object)
    table.loc[2, "events_cases"] = "<5"
    table.to_csv(folder / "outcomes.csv", index=False)
    (folder / "reproduction.csv").write_text("id,match\nn_cases,True\nn_controls,False\n")
    (folder / "matched_pairs.csv").write_text("treated,control\nP-A,P-B\nP-C,P-D\n")
    prov = {"synthetic": False, "data": {"path": "registry.csv", "sha256_before": "ab"},
            "finished": "2026-01-01", "wall_seconds": 1.0, "git": {"commit": "c0ffee"}}
    text = pages.run_index_page(folder, DEFAULTS, prov, ("01_a",))
    assert Page(text).problems == []
    assert "near-normal imaging (n &lt;5)" in text and "&lt;5/14" in text
    assert "&lt;5 patients with near-normal imaging" in text  # the pairs' counts disclosed
    assert "1 of 2 published figures reproduced" in text
    assert "real registry (aggregate results only)" in text
    assert "nan" not in text.lower()


def test_run_index_without_result_tables(tmp_path):
    (tmp_path / "outcomes.csv").write_text("x\n1\n")  # another shape: that part is left out
    prov = {"synthetic": True, "data": {}, "git": {}}
    text = pages.run_index_page(tmp_path, DEFAULTS, prov, ("01_a",))
    assert Page(text).problems == []
    assert "Answer." not in text and ">01 a</a>" in text


def test_reports_index_is_styled_and_recognised(tmp_path, monkeypatch):
    for name in ("default", "caliper_0.05"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.html").write_text("<html></html>")
    target = pipeline.write_reports_index(tmp_path)
    text = target.read_text()
    page = Page(text)
    assert page.problems == []
    assert REPORTS_INDEX_TITLE in text and is_reports_index(target)
    assert pages.stylesheet() in text
    assert [h for h, _ in page.links] == ["caliper_0.05/index.html", "default/index.html"]


def test_sweep_index_is_styled():
    table = pd.DataFrame([{
        "caliper": 0.1, "point": 1, "status": "ok", "error": "", "n_cases_matched": 14,
        "n_controls_matched": 14, "max_abs_smd": 0.05,
        **{f"{p}_{k}": v for p in ("leg_pain_reduction_4w", "positive_outcome_4w")
           for k, v in (("estimate", -0.25), ("ci_low", -2.0), ("ci_high", 1.5),
                        ("p_value", 0.72))},
        "report": "points/01/index.html"}])
    text = sweep._index_page(table, "grid.yaml")
    page = Page(text)
    assert page.problems == []
    assert page.title == "Parameter sweep: grid.yaml \N{EN DASH} ESI near-normal imaging"
    assert pages.stylesheet() in text and 'class="esi-wide"' in text
    assert '<td class="num">0.050</td>' in text
