"""The HTML pages a reader opens: the rendered reports, the run's ``index.html``, the list of
runs (``reports/index.html``) and the sweep's ``index.html``.

Every page carries the one stylesheet ``esi/templates/esi.css`` (its text embedded, so each
page stays a single self-contained file; a print section hides the navigation, starts each
report section on a new page and keeps tables and figures whole), a real browser title, and
navigation:

* a report (:func:`finish_report`, applied to nbconvert's HTML) gets the title of its notebook
  (the first Markdown heading), a table of contents built from the headings nbconvert
  rendered (so every entry's anchor exists), and links to the run's index and to the previous
  and next report;
* the run index (:func:`run_index_page`) opens with the study question, the headline answer
  (:func:`headline`, built from the run's already disclosed ``outcomes.csv``: a hidden count
  such as ``"<5"`` is shown as it is, nothing is recomputed from the registry), the
  reproduction score, the key results with readable labels, the parameters in words
  (:func:`parameter_rows`), then the reports and the result files.

Labels come from where the project keeps them: outcome labels from ``outcomes.csv`` (written
from :data:`esi.outcomes.OUTCOMES`), units from :data:`esi.schema.SCHEMA`, the missing-data
rules from :func:`esi.outcomes.describe_missing_rule`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from esi.disclosure import THRESHOLD, shown_count
from esi.outcomes import describe_missing_rule
from esi.outputs import REPORTS_INDEX_TITLE
from esi.params import SENSITIVITY_DEFAULTS
from esi.schema import SCHEMA
from esi.tables import format_p

__all__ = [
    "SITE",
    "STUDY_TITLE",
    "STUDY_QUESTION",
    "GROUP_CASES",
    "GROUP_CONTROLS",
    "CONTINUOUS_TEST_TEXT",
    "BINARY_TEST_TEXT",
    "stylesheet",
    "page",
    "notebook_heading",
    "page_title",
    "finish_report",
    "headline",
    "reproduction_score",
    "key_results",
    "parameter_rows",
    "run_index_page",
    "reports_index_page",
]

#: Appended to every page's browser title.
SITE = "ESI near-normal imaging"

#: The paper's title (as the compendium words it).
STUDY_TITLE = ("Lumbar epidural steroid injections for lumbosacral radicular pain in patients "
               "with near-normal imaging: a propensity-matched study")

#: The question the study answers, opening the run index.
STUDY_QUESTION = (
    "Do patients with lumbosacral radicular pain whose MRI is near-normal benefit from a lumbar "
    "epidural steroid injection as much as matched patients whose MRI shows pathology "
    "concordant with their symptoms?")

#: The two groups, as a reader names them (cases: near-normal MRI; controls: concordant MRI).
GROUP_CASES = "near-normal imaging"
GROUP_CONTROLS = "concordant pathology"

#: The continuous outcomes' tests (run parameter ``test``) in words.
CONTINUOUS_TEST_TEXT: dict[str, str] = {
    "welch": "two-sided Welch t-test",
    "student": "two-sided Student t-test (equal variances)",
    "mann_whitney": "two-sided Mann-Whitney U test",
    "paired_t": "two-sided paired t-test on the matched pairs",
    "wilcoxon": "two-sided Wilcoxon signed-rank test on the matched pairs",
}

#: The binary outcomes' tests (run parameter ``binary_test``) in words.
BINARY_TEST_TEXT: dict[str, str] = {
    "fisher": "two-sided Fisher exact test",
    "fisher_less": "one-sided Fisher exact test (fewer successes among cases)",
    "fisher_greater": "one-sided Fisher exact test (more successes among cases)",
    "chi2": "chi-squared test without continuity correction",
    "chi2_yates": "chi-squared test with Yates' continuity correction",
    "mcnemar": "McNemar test on the matched pairs",
}

_DISTANCE_TEXT = {
    "logit": "on the logit of the propensity score",
    "propensity": "on the propensity score",
    "mahalanobis": "on the Mahalanobis distance of the covariates",
}
_METHOD_TEXT = {"nearest": "nearest neighbour", "optimal": "optimal (smallest total distance)"}

_e = html.escape


# ------------------------------------------------------------------------------ page frame
@cache
def stylesheet() -> str:
    """The text of ``esi/templates/esi.css``, the stylesheet of every page."""
    return (Path(__file__).parent / "templates" / "esi.css").read_text(encoding="utf-8")


def page_title(heading: str) -> str:
    """A browser title: ``"2. Propensity-score matching – ESI near-normal imaging"``."""
    heading = " ".join(heading.split())
    return f"{heading} \N{EN DASH} {SITE}" if heading else SITE


def page(title: str, body: str, *, body_class: str = "") -> str:
    """A complete HTML5 page: ``title`` (plain text), ``body`` (HTML), the shared style."""
    cls = f' class="{_e(body_class)}"' if body_class else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>\n{stylesheet()}</style>\n</head>\n"
            f"<body{cls}>\n{body}\n</body></html>\n")


# ------------------------------------------------------------------------------- reports
_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")


def notebook_heading(notebook: Path | dict[str, Any] | Any) -> str | None:
    """The text of the first Markdown heading of a notebook (a path or a notebook node), with
    Markdown emphasis and code marks removed; ``None`` when it has none or cannot be read."""
    if isinstance(notebook, str | Path):
        try:
            nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    else:
        nb = notebook
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        in_fence = False
        for line in source.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                in_fence = not in_fence
            m = None if in_fence else _MD_HEADING.match(line)
            if m:
                return re.sub(r"[*_`]", "", m.group(2)).strip() or None
    return None


def _fallback_heading(name: str) -> str:
    """``"02_matching"`` -> ``"02 matching"`` (a notebook without a heading)."""
    return name.replace("_", " ")


_HTML_HEADING = re.compile(r'<h([1-3])\b[^>]*\bid="([^"]+)"[^>]*>(.*?)</h\1>', re.S)


def _text(fragment: str) -> str:
    """The text of an HTML fragment (tags and the anchor mark removed, entities kept)."""
    fragment = re.sub(r'<a class="anchor-link"[^>]*>.*?</a>', "", fragment, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", "", fragment).split())


def _toc(headings: Sequence[tuple[int, str, str]]) -> str:
    """A nested ordered list of ``(level, id, text-as-HTML)``; the h1 title is left out."""
    items = [(lvl, hid, txt) for lvl, hid, txt in headings if lvl > 1]
    if not items:
        return ""
    top = min(lvl for lvl, _, _ in items)
    out, depth = ["<ol>"], top
    first = True
    for lvl, hid, txt in items:
        lvl = max(lvl, top)
        while depth < lvl:
            out.append("<ol>")
            depth += 1
        while depth > lvl:
            out.append("</li></ol>")
            depth -= 1
        if not first and out[-1] != "<ol>":
            out.append("</li>")
        out.append(f'<li><a href="#{hid}">{txt}</a>')
        first = False
    while depth > top:
        out.append("</li></ol>")
        depth -= 1
    out.append("</li></ol>")
    return ('<nav class="esi-toc" aria-label="Contents"><p class="esi-toc-title">Contents</p>'
            + "".join(out) + "</nav>")


def _nav(previous: tuple[str, str] | None, following: tuple[str, str] | None,
         bottom: bool = False) -> str:
    parts = ['<a class="esi-home" href="index.html">Run index</a>']
    if previous:
        parts.append(f'<a class="esi-prev" rel="prev" href="{_e(previous[0])}">'
                     f"\N{LEFTWARDS ARROW} {_e(previous[1])}</a>")
    if following:
        parts.append(f'<a class="esi-next" rel="next" href="{_e(following[0])}">'
                     f"{_e(following[1])} \N{RIGHTWARDS ARROW}</a>")
    cls = "esi-nav esi-bottom" if bottom else "esi-nav"
    return f'<nav class="{cls}" aria-label="Reports">' + " ".join(parts) + "</nav>"


def finish_report(body: str, title: str, *, previous: tuple[str, str] | None = None,
                  following: tuple[str, str] | None = None) -> str:
    """Give nbconvert's HTML of a report its title, the shared style and its navigation.

    Parameters
    ----------
    body
        A complete HTML page from ``nbconvert.HTMLExporter``.
    title
        The report's heading (``"2. Propensity-score matching"``); the browser title is
        :func:`page_title` of it.
    previous, following
        ``(file name, heading)`` of the reports before and after it, or ``None``.

    Returns
    -------
    str
        The page with ``<title>`` replaced, the stylesheet appended to ``<head>`` (after
        nbconvert's own, which it overrides), the ``<body>`` marked ``esi-report``, a
        navigation bar at its top and bottom (run index, previous, next) and a table of
        contents after the first ``<h1>`` (or at the top), whose links are the ``id``s of
        the headings in the page.
    """
    head_end = body.find("</head>")
    body_open = re.search(r"<body\b[^>]*>", body)
    body_end = body.rfind("</body>")
    if head_end < 0 or body_open is None or body_end < body_open.end():
        raise ValueError("not a complete HTML page (no </head>, <body> or </body>)")
    style = f"<style>\n{stylesheet()}</style>\n"
    head = body[:head_end]
    title_tag = f"<title>{_e(page_title(title))}</title>"
    if re.search(r"<title>.*?</title>", head, flags=re.S):
        head = re.sub(r"<title>.*?</title>", lambda _: title_tag, head, count=1, flags=re.S)
    else:
        head += title_tag + "\n"
    tag = body_open.group(0)
    if 'class="' in tag:
        new_tag = tag.replace('class="', 'class="esi-report ', 1)
    else:
        new_tag = tag[:-1] + ' class="esi-report">'
    content = body[body_open.end():body_end]
    headings = [(int(lvl), hid, _e(html.unescape(_text(txt))))
                for lvl, hid, txt in _HTML_HEADING.findall(content)]
    toc = _toc(headings)
    h1 = re.search(r"</h1>", content)
    if h1 is not None:
        content = content[:h1.end()] + toc + content[h1.end():]
    else:
        content = toc + content
    return (head + style + body[head_end:body_open.start()] + new_tag + "\n"
            + _nav(previous, following) + content + _nav(previous, following, bottom=True)
            + "\n" + body[body_end:])


# ----------------------------------------------------------------------------- run index
def _value(v: Any) -> Any:
    """A cell of a disclosed CSV: a number, a hidden cell (``"<5"``, ``"-"``) or ``None``."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, str):
        s = v.strip()
        if s == "":
            return None
        try:
            return float(s)
        except ValueError:
            return s
    return v


def _num(v: Any, fmt: str = ".2f") -> str:
    """A number formatted; a hidden cell as it is; a missing one as ``"n/a"``."""
    v = _value(v)
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return format(float(v), fmt)


def _count(v: Any) -> str:
    """A count (``"14"``), or a hidden one as it is (``"<5"``)."""
    v = _value(v)
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    f = float(v)
    return str(int(f)) if f.is_integer() else format(f, ".1f")


def _n_text(v: Any) -> str:
    """``"n = 14"``; a count hidden as ``"<5"`` reads ``"n <5"``, one hidden as ``"-"``
    ``"n not shown"``."""
    c = _count(v)
    if c.startswith("<"):
        return f"n {c}"
    if c == "-" or c == "n/a":
        return "n not shown"
    return f"n = {c}"


def _p_text(v: Any) -> str:
    v = _value(v)
    if isinstance(v, str):
        return f"P {v}" if v.startswith("<") else "P not shown"
    return format_p(float("nan") if v is None else v)


def _outcome_label(label: Any, outcome: str, weeks: Any) -> str:
    """``"Reduction in average leg pain (0-10)"``, 4 -> ``"Reduction in average leg pain at
    4 weeks (0-10)"`` (the unit in brackets stays last)."""
    text = label if isinstance(label, str) and label.strip() else outcome.replace("_", " ")
    text = text[0].upper() + text[1:]
    w = _count(weeks)
    m = re.match(r"^(.*?)\s*(\([^()]*\))$", text)
    if m:
        return f"{m.group(1)} at {w} weeks {m.group(2)}"
    return f"{text} at {w} weeks"


def _read(folder: Path, name: str, *columns: str) -> pd.DataFrame | None:
    """A result table of the run folder read as text (hidden cells stay as written), or
    ``None`` when it is absent or lacks ``columns``."""
    path = folder / name
    if not path.exists():
        return None
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError):
        return None
    return table if set(columns) <= set(table.columns) else None


def _primary_row(outcomes: pd.DataFrame) -> pd.Series | None:
    """The primary outcome at its first time point (leg-pain reduction at 4 weeks)."""
    if outcomes is None or outcomes.empty:
        return None
    primary = outcomes.get("primary")
    rows = outcomes[primary.astype(str).str.lower() == "true"] if primary is not None else \
        outcomes[outcomes["outcome"] == "leg_pain_reduction"]
    if rows.empty:
        rows = outcomes[outcomes["outcome"] == "leg_pain_reduction"]
    if rows.empty:
        return None
    weeks = pd.to_numeric(rows["timepoint_weeks"], errors="coerce")
    return rows.loc[weeks.idxmin()] if weeks.notna().any() else rows.iloc[0]


def headline(outcomes: pd.DataFrame, *, alpha: float = 0.05, margin: float | None = None
             ) -> str | None:
    """The headline answer in one paragraph of plain text, from a disclosed outcome table.

    Parameters
    ----------
    outcomes
        ``outcomes.csv`` of a run (:func:`esi.compare.compare_matched`), as numbers or as the
        text of the file (hidden cells such as ``"<5"`` are shown as they are).
    alpha
        The run's significance level.
    margin
        The equivalence margin (points on the outcome's scale; notebook 04's ``tost_margin``):
        when given, the paragraph says whether the 95% CI rules out a difference that large.

    Returns
    -------
    str or None
        E.g. ``"Leg-pain reduction at 4 weeks (0-10), the primary outcome: mean 2.36 points
        (SD 2.55) with near-normal imaging (n = 14) and 2.61 (SD 2.15) with concordant
        pathology (n = 14); difference -0.25 points (95% CI -2.08 to 1.58), P = 0.72
        (Mann-Whitney U test (two-sided)). No evidence of a difference ..."``; ``None`` when
        the table has no primary outcome row.
    """
    needed = {"outcome", "timepoint_weeks", "estimate", "ci_low", "ci_high", "p_value"}
    if outcomes is None or not needed <= set(outcomes.columns):
        return None
    r = _primary_row(outcomes)
    if r is None:
        return None
    label = _outcome_label(r.get("label"), str(r["outcome"]), r["timepoint_weeks"])
    unit = "points"
    test = CONTINUOUS_TEST_TEXT.get(str(r.get("test", "")), str(r.get("test", "")) or "test")
    cases = f"{GROUP_CASES} ({_n_text(r.get('n_cases'))})"
    controls = f"{GROUP_CONTROLS} ({_n_text(r.get('n_controls'))})"
    est, lo, hi = (_value(r.get(k)) for k in ("estimate", "ci_low", "ci_high"))
    p = _value(r.get("p_value"))
    text = (f"Primary outcome, {label[0].lower() + label[1:]}: mean "
            f"{_num(r.get('mean_cases'))} {unit} (SD {_num(r.get('sd_cases'))}) with {cases} "
            f"and {_num(r.get('mean_controls'))} (SD {_num(r.get('sd_controls'))}) with "
            f"{controls}; difference {_num(est)} {unit} (95% CI {_num(lo)} to {_num(hi)}), "
            f"{_p_text(p)}, {test}.")
    if not all(isinstance(v, float | int) for v in (est, lo, hi, p)):
        return text + " The difference cannot be judged from the shown values."
    if p < alpha and not lo <= 0 <= hi:
        direction = "smaller" if est < 0 else "larger"
        meaning = (f" The reduction was {direction} with {GROUP_CASES} than with "
                   f"{GROUP_CONTROLS} (P below the significance level {alpha:g}).")
    else:
        meaning = (f" No evidence of a difference between the groups: P is not below the "
                   f"significance level {alpha:g} and the 95% CI includes no difference. "
                   f"This does not show that the groups do equally well.")
    if margin is not None and margin > 0:
        if -margin < lo and hi < margin:
            meaning += (f" The 95% CI excludes differences of {margin:g} points or more, the "
                        f"smallest change that matters to patients.")
        else:
            meaning += (f" The 95% CI does not rule out a difference of {margin:g} points, the "
                        f"smallest change that matters to patients.")
    return text + meaning


def reproduction_score(reproduction: pd.DataFrame | None) -> str | None:
    """``"24 of 24 published figures reproduced"`` from ``reproduction.csv`` (its ``match``
    column), or ``None`` without one."""
    if reproduction is None or "match" not in reproduction.columns or reproduction.empty:
        return None
    ok = int(reproduction["match"].astype(str).str.strip().str.lower().eq("true").sum())
    return f"{ok} of {len(reproduction)} published figures reproduced"


#: Outcomes shown in the run index's key results (the rest are in report 3's Table 2).
KEY_OUTCOMES = ("leg_pain_reduction", "odi_reduction", "positive_outcome")


def _events(events: Any, n: Any, percent: Any) -> str:
    """``"4/14 (29%)"``; a hidden count as it is (``"<5/14"``)."""
    ev, nn, pct = _value(events), _value(n), _value(percent)
    text = f"{_count(ev)}/{_count(nn)}"
    if isinstance(pct, float | int) and not isinstance(ev, str):
        text += f" ({pct:.0f}%)"
    return text


def key_results(outcomes: pd.DataFrame | None) -> list[dict[str, str]]:
    """The key outcome rows for the run index, ready to show.

    Returns
    -------
    list of dict
        One per key outcome and time point (:data:`KEY_OUTCOMES`), keys ``label``
        (``"Reduction in average leg pain at 4 weeks (0-10)"``), ``cases``, ``controls``
        (``"2.36 (SD 2.55)"`` or ``"4/14 (29%)"``), ``difference`` (mean difference or risk
        difference in percentage points, with its 95% CI) and ``p``.
    """
    needed = {"outcome", "kind", "timepoint_weeks", "estimate", "ci_low", "ci_high",
              "p_value"}
    if outcomes is None or not needed <= set(outcomes.columns):
        return []
    rows = []
    for _, r in outcomes.iterrows():
        if r["outcome"] not in KEY_OUTCOMES:
            continue
        label = _outcome_label(r.get("label"), str(r["outcome"]), r["timepoint_weeks"])
        est, lo, hi = (_value(r.get(k)) for k in ("estimate", "ci_low", "ci_high"))
        if r["kind"] == "binary":
            cases = _events(r.get("events_cases"), r.get("n_cases"), r.get("percent_cases"))
            controls = _events(r.get("events_controls"), r.get("n_controls"),
                               r.get("percent_controls"))

            def pp(v: Any) -> str:
                return _num(100 * v if isinstance(v, float | int) else v, ".1f")

            diff = f"{pp(est)} ({pp(lo)} to {pp(hi)})"
        else:
            cases = f"{_num(r.get('mean_cases'))} (SD {_num(r.get('sd_cases'))})"
            controls = f"{_num(r.get('mean_controls'))} (SD {_num(r.get('sd_controls'))})"
            diff = f"{_num(est)} ({_num(lo)} to {_num(hi)})"
        rows.append({"label": label, "cases": cases, "controls": controls,
                     "difference": diff, "p": _p_text(r.get("p_value")).removeprefix("P ")
                     .removeprefix("= ")})
    return rows


# ----------------------------------------------------------------------------- parameters
def _empty(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, list | tuple | dict) and len(v) == 0)


def _plain(v: Any) -> str:
    """A parameter value in words: none, yes/no, a list joined by commas, a number."""
    if _empty(v):
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_plain(x)}" for k, x in v.items())
    return str(v)


def _column(name: str) -> str:
    """A registry column in words with its unit: ``"bmi"`` -> ``"BMI (kg/m^2)"``."""
    words = name.replace("_", " ")
    for short, long in (("bmi", "BMI"), ("odi", "ODI"), ("mme", "MME"), ("mri", "MRI"),
                        ("esi", "ESI")):
        words = re.sub(rf"\b{short}\b", long, words)
    words = re.sub(r"^depression anxiety$", "depression or anxiety", words)
    column = SCHEMA.get(name)
    unit = getattr(column, "unit", None)
    if unit and unit.split()[0] in words.split():  # "pain duration months (months)"
        words = " ".join(w for w in words.split() if w != unit.split()[0])
    return f"{words} ({unit})" if unit else words


def _columns(v: Any) -> str:
    if _empty(v):
        return "none"
    return ", ".join(_column(str(c)) for c in v)


def _matching(p: dict[str, Any]) -> str:
    distance = p.get("distance")
    parts = [_METHOD_TEXT.get(p.get("method"), _plain(p.get("method"))) + " " +
             _DISTANCE_TEXT.get(distance, f"on {_plain(distance)}")]
    parts.append(f"1:{_plain(p.get('ratio'))}")
    caliper = p.get("caliper")
    parts.append("no caliper" if _empty(caliper) else f"caliper {_plain(caliper)} SD")
    parts.append("with replacement" if p.get("replace") else "without replacement")
    return ", ".join(parts)


def _synthetic(v: Any) -> str:
    if v is None:
        return "decided by the data (synthetic only for a registry esi synth wrote)"
    return ("claimed: yes (refused unless the data prove it)" if v else
            "no: treated as real patient data")


def _missing(v: Any) -> str:
    try:
        text = describe_missing_rule(v)
    except ValueError:
        return _plain(v)
    return text.removeprefix("Missing follow-up: ").removesuffix(".")


#: Parameters in words: ``(label, parameters covered, value in words)``; the value function
#: receives the whole parameter dictionary. The order is the reading order of the index.
_PARAMETER_TEXT: tuple[tuple[str, tuple[str, ...], Any], ...] = (
    ("Registry file", ("data_path",), lambda p: _plain(p.get("data_path"))),
    ("Column mapping", ("mapping",), lambda p: "none (the registry uses esi's column names)"
     if _empty(p.get("mapping")) else _plain(p.get("mapping"))),
    ("Excel sheet", ("sheet",), lambda p: "the first (or the mapping's)"
     if _empty(p.get("sheet")) else _plain(p.get("sheet"))),
    ("Hand-over folder", ("run_dir",), lambda p: "the run folder (set by esi run)"
     if _empty(p.get("run_dir")) else _plain(p.get("run_dir"))),
    ("Synthetic data", ("synthetic",), lambda p: _synthetic(p.get("synthetic"))),
    ("Random seed", ("seed",), lambda p: _plain(p.get("seed"))),
    ("Propensity-model covariates", ("covariates",), lambda p: _columns(p.get("covariates"))),
    ("Matching", ("method", "distance", "ratio", "caliper", "replace"), _matching),
    ("Mahalanobis matching within the caliper on", ("mahvars",),
     lambda p: _columns(p.get("mahvars"))),
    ("Exact matching on", ("exact",), lambda p: _columns(p.get("exact"))),
    ("Missing follow-up", ("missing",), lambda p: _missing(p.get("missing"))),
    ("Test, continuous outcomes", ("test",),
     lambda p: CONTINUOUS_TEST_TEXT.get(p.get("test"), _plain(p.get("test")))),
    ("Test, binary outcomes", ("binary_test",),
     lambda p: BINARY_TEST_TEXT.get(p.get("binary_test"), _plain(p.get("binary_test")))),
    ("Positive outcome", ("success_threshold",),
     lambda p: f"leg pain fell by at least {_plain(p.get('success_threshold'))} points "
               "(NRS 0-10), global perceived effect much or very much improved, and no "
               "additional intervention before the visit"),
    ("Significance level", ("alpha",), lambda p: _plain(p.get("alpha"))),
    ("Rosenbaum bounds: largest Gamma", ("gamma_max",), lambda p: _plain(p.get("gamma_max"))),
    ("Rosenbaum bounds: Gamma step", ("gamma_step",), lambda p: _plain(p.get("gamma_step"))),
    ("Power: simulated studies per estimate", ("power_n_sim",),
     lambda p: _plain(p.get("power_n_sim"))),
    ("Equivalence margin (TOST)", ("tost_margin",),
     lambda p: f"{_plain(p.get('tost_margin'))} points (NRS 0-10)"),
)


def parameter_rows(params: dict[str, Any]) -> list[tuple[str, str]]:
    """The run's parameters as ``(label, value in words)`` rows.

    Every parameter of ``params`` is in one row: the matching parameters share one
    (``"Matching: nearest neighbour on the logit of the propensity score, 1:1, caliper 0.2
    SD, without replacement"``); a parameter without a label of its own (the multiverse's
    ``multiverse_*``) gets its name in words. No value is shown as ``null``, ``""``, ``[]`` or
    a code such as ``fisher_less``: empty values read "none", tests and rules are described.
    """
    rows, covered = [], set()
    for label, keys, text in _PARAMETER_TEXT:
        if not any(k in params for k in keys):
            continue
        rows.append((label, text(params)))
        covered.update(keys)
    for key, value in params.items():
        if key in covered:
            continue
        label = key.replace("_", " ")
        if label.startswith("multiverse "):
            label = "Multiverse: " + label.removeprefix("multiverse ")
        rows.append((label[0].upper() + label[1:], _plain(value)))
    return rows


def _table(head: Sequence[str], rows: Iterable[Sequence[str]],
           numeric: Sequence[bool] = ()) -> str:
    """A table: ``head`` and ``rows`` of HTML cells; numeric columns right-aligned."""
    def cls(i: int) -> str:
        return ' class="num"' if i < len(numeric) and numeric[i] else ""

    out = ["<table><thead><tr>"
           + "".join(f'<th scope="col"{cls(i)}>{h}</th>' for i, h in enumerate(head))
           + "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(
            (f'<th scope="row">{c}</th>' if i == 0 else f"<td{cls(i)}>{c}</td>")
            for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def run_index_page(folder: Path, params: dict[str, Any], provenance: dict[str, Any],
                   notebooks: Sequence[str]) -> str:
    """The run folder's ``index.html``, read from the run's disclosed result files.

    Parameters
    ----------
    folder
        The (complete) run folder: its ``outcomes.csv``, ``reproduction.csv``,
        ``matched_pairs.csv``, ``balance.csv`` and executed notebooks are read; a file that
        is absent or of another shape leaves its part out.
    params, provenance
        The run's parameters and its ``provenance.json`` content.
    notebooks
        The reports' names in reading order.
    """
    synthetic = bool(provenance.get("synthetic"))
    outcomes = _read(folder, "outcomes.csv", "outcome")
    parts = [f"<h1>{_e(STUDY_TITLE)}</h1>",
             f'<p class="esi-lead"><strong>Question.</strong> {_e(STUDY_QUESTION)}</p>']
    alpha = params.get("alpha", 0.05)
    margin = params.get("tost_margin", SENSITIVITY_DEFAULTS["tost_margin"])
    answer = headline(outcomes, alpha=alpha if isinstance(alpha, float | int) else 0.05,
                      margin=margin if isinstance(margin, float | int) else None) \
        if outcomes is not None else None
    if answer:
        parts.append(f'<p class="esi-answer"><strong>Answer.</strong> {_e(answer)}</p>')
    score = reproduction_score(_read(folder, "reproduction.csv", "match"))
    if score:
        parts.append(f"<p><strong>Reproduction.</strong> {_e(score)} (report 5).</p>")

    facts = []
    pairs = _read(folder, "matched_pairs.csv", "treated", "control")
    if pairs is not None:
        threshold = None if synthetic else THRESHOLD
        facts.append(("Matched cohort",
                      f"{shown_count(pairs['treated'].nunique(), threshold)} patients with "
                      f"{GROUP_CASES}, {shown_count(pairs['control'].nunique(), threshold)} "
                      f"matched patients with {GROUP_CONTROLS}"))
    balance = _read(folder, "balance.csv", "term", "smd_after")
    if balance is not None:
        smd = pd.to_numeric(balance.loc[balance["term"] != "distance", "smd_after"],
                            errors="coerce").abs()
        if smd.notna().any():
            facts.append(("Largest absolute standardised mean difference after matching",
                          f"{smd.max():.3f}"))
    rows = key_results(outcomes)
    if facts or rows:
        parts.append('<h2 id="key-results">Key results</h2>')
    if facts:
        parts.append('<dl class="esi-facts">' + "".join(
            f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>")
    if rows:
        parts.append(_table(
            ["Outcome", f"{GROUP_CASES.capitalize()}", f"{GROUP_CONTROLS.capitalize()}",
             "Difference (95% CI)", "P"],
            ([_e(r["label"]), _e(r["cases"]), _e(r["controls"]), _e(r["difference"]),
              _e(r["p"])] for r in rows),
            numeric=(False, True, True, True, True)))
        parts.append('<p class="esi-note">Continuous outcomes: mean (SD) reduction from '
                     "baseline (points) and the difference of means, near-normal minus "
                     "concordant; binary outcomes: patients with the outcome / patients "
                     "assessed (%) and the risk difference in percentage points. Every outcome at both time points is in report 3 "
                     "(Table 2).</p>")

    parts.append('<h2 id="parameters">Parameters</h2>')
    parts.append(_table(["Parameter", "Value"],
                        ([_e(k), _e(v)] for k, v in parameter_rows(params))))

    parts.append('<h2 id="reports">Reports</h2><ol>')
    for name in notebooks:
        heading = notebook_heading(folder / f"{name}.ipynb") or _fallback_heading(name)
        parts.append(f'<li><a href="{_e(name)}.html">{_e(heading)}</a></li>')
    parts.append("</ol>")
    files = sorted(p.name for p in folder.iterdir()
                   if p.suffix in (".csv", ".json") and not p.name.startswith("."))
    parts.append('<h2 id="result-files">Result files</h2><ul class="esi-files">'
                 + "".join(f'<li><a href="{_e(f)}">{_e(f)}</a></li>' for f in files)
                 + "</ul>")
    data = provenance.get("data", {})
    note = ("synthetic registry (not patient data)" if synthetic
            else "real registry (aggregate results only)")
    parts.append(
        f'<p class="esi-note">Reproducible analysis of Cohen et al., Interventional Pain '
        f"Medicine 2025;4(2):100574. Data: {_e(str(data.get('path')))}, {_e(note)}, sha256 "
        f"{_e(str(data.get('sha256_before')))}. Run finished "
        f"{_e(str(provenance.get('finished')))} in {_e(str(provenance.get('wall_seconds')))} s "
        f"at commit {_e(str(provenance.get('git', {}).get('commit'))[:12])}.</p>")
    return page(page_title("Run index"), "\n".join(parts), body_class="esi-index")


def reports_index_page(runs: Sequence[str]) -> str:
    """``reports/index.html``: a link to each run folder's index; its ``<title>`` is
    :data:`esi.outputs.REPORTS_INDEX_TITLE`, by which esi recognises a list of runs it wrote.
    """
    items = "".join(f'<li><a href="{_e(r)}/index.html">{_e(r)}</a></li>' for r in runs)
    body = (f"<h1>{_e(STUDY_TITLE)}</h1>\n"
            f'<p class="esi-lead">{_e(STUDY_QUESTION)}</p>\n'
            f"<p>Rendered runs of the compendium (each folder: one parameter set; its index "
            f"opens with the answer, then the reports).</p>\n<ul>{items}</ul>")
    text = page("runs", body, body_class="esi-runs")
    return re.sub(r"<title>.*?</title>", lambda _: REPORTS_INDEX_TITLE, text, count=1)
