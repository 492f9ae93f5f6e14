"""Disclosure control of real-data outputs: one declaration per table, one function applies it.

Every table that a run on real data shows or writes (CSV files, the tables and sentences of the
notebooks, figure labels, ``sweep.csv``/``index.html``, ``multiverse.csv``) has a
:class:`Disclosure` in :data:`DISCLOSURES` that says which of its columns are counts of
patients (or of pairs, events, exclusions), which text cells hold counts (``"4/14 (28.6%)"``,
``"under 18: 3"``, ``"... (n = 322)"``), which statistics are computed from those counts, and
which counts add up to which totals. :func:`disclose` applies it; nothing else in esi decides
what a count is (in particular no column is taken for a count because of its dtype).

The rule (also in ``data/README.md``, from :func:`rule_text`)
-------------------------------------------------------------
1. *Primary suppression*: a count of 1 to 4 (``threshold - 1``) is shown as ``"<5"``. Zeros are
   shown: they say nobody.
2. *Secondary suppression*: no hidden count may be recoverable by subtraction from totals shown
   in the same table. For every declared sum (a total and its parts, e.g. ``n_before =
   n_excluded + n_after`` in the cohort flow, the levels of a categorical variable and its
   ``n``, ``All = Matched + Unmatched + Discarded``) in which a count is hidden, further
   cells are hidden (shown as ``"-"``), smallest non-zero part first, until at least two parts
   are hidden and the hidden parts add up to at least ``(threshold - 1) * k + threshold``
   (``k`` hidden small counts; 9 for one), so a reader learns no more than "below 5" of each
   small count. A total that is itself hidden needs a hidden part too. The counts a shown total
   implies without showing them (the patients *without* an event: ``n - events``) are small
   counts as well when they lie in 1-4. In the cohort flow every run of consecutive steps is a
   declared sum, so a hidden exclusion cannot be recovered from the steps before and after it.
3. *Derived values*: in a row where a count is hidden, every statistic computed from it (the
   declared ``stats``: percentages, means and SDs, differences, confidence limits, effect
   sizes, test statistics, degrees of freedom, P values) is shown as ``"-"``, and inside text
   the percentage that follows a hidden count is dropped (``"3/14 (21.4%)"`` -> ``"<5/14"``).
4. Columns naming patients or holding one patient's value (``treated``, ``control``,
   ``y_treated``, ``y_control``, ``patient_id``) are dropped, except in ``matched_pairs.csv``,
   whose ids are keyed pseudonyms (``esi/deid.py``).
5. Nothing else is touched: identifiers of rows, parameters (``spec_id``, ``ratio``,
   ``timepoint_weeks``, ``seed`` ...), published reference values and every undeclared column
   keep their values and types.

Synthetic data (a registry esi can prove it generated, :func:`esi.synthetic.is_generated`) are
shown as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "HIDDEN",
    "rule_text",
    "THRESHOLD",
    "Disclosure",
    "Sum",
    "DISCLOSURES",
    "declaration",
    "disclose",
    "shown_count",
    "is_hidden",
    "row_sum",
    "chain",
    "level_sum",
    "label_sum",
    "column_sum",
    "items_sum",
]

#: Counts below this are small (shown as ``"<5"``).
THRESHOLD = 5

#: What a value hidden by secondary suppression (or a derived statistic) shows.
HIDDEN = "-"

#: Columns that name a patient or hold one patient's value.
ROW_LEVEL_COLUMNS = ("treated", "control", "y_treated", "y_control", "patient_id")

#: A cell: (row position, column, -1 for the cell itself or k for the k-th count in its text).
Cell = tuple[int, str, int]

Where = Callable[[pd.DataFrame], Any]
Col = str | tuple[str, Where]


@dataclass(frozen=True)
class Sum:
    """A declared identity between cells: ``total = sum(parts)`` (``+ rest``).

    Attributes
    ----------
    total : Cell or None
        The total; ``None`` for a total the reader knows from elsewhere (always visible).
    parts : tuple of Cell
        The parts.
    rest : bool
        The total also counts patients that no shown part counts (``n - events``): that rest is
        never shown, and is a small count to protect when it lies in 1 .. threshold - 1.
    whole : bool
        A hidden total hides every part (the reasons of a hidden exclusion count), so the
        parts cannot narrow down what the total hides.
    """

    total: Cell | None
    parts: tuple[Cell, ...]
    rest: bool = False
    whole: bool = False


Builder = Callable[[pd.DataFrame, "_Cells"], list[Sum]]


@dataclass(frozen=True)
class Disclosure:
    """What a table holds, for disclosure control (see the module docstring).

    Attributes
    ----------
    counts : tuple
        Count columns; an item ``(column, where)`` counts only in the rows where
        ``where(table)`` is true (e.g. Table 1's ``spread_*``: SDs in continuous rows, event
        counts in the others).
    count_text : tuple
        Text columns with counts inside (``"n (p%)"``, ``"n/d (p%)"``, ``"label: n; ..."``,
        ``"(n = N)"``); their ``"mean (SD sd)"`` and ``"P = p"`` parts are statistics of the
        row. Items may carry a ``where`` as in ``counts``.
    stats : tuple of (triggers, columns)
        Statistic columns hidden in a row where a count of ``triggers`` (count or count-text
        columns; ``()`` = any count of the row) is hidden.
    links : tuple of (text column, k, count column)
        The ``k``-th count inside the text equals the count column of the same row.
    sums : tuple of builders
        Functions ``(table, cells) -> [Sum, ...]`` declaring which counts add up to which
        totals (:func:`row_sum`, :func:`chain`, :func:`level_sum`, :func:`label_sum`,
        :func:`column_sum`, :func:`items_sum`).
    row_level : tuple of str
        Columns dropped for real data (patient ids, one patient's values).
    always : tuple
        Statistics hidden in every row (items may carry a ``where``): they are computed from
        counts this table does not show, so it cannot tell whether those are small (the P
        values that the audit recomputes from the data of a binary outcome).
    what : str
        One line for the data dictionary.
    """

    counts: tuple[Col, ...] = ()
    count_text: tuple[Col, ...] = ()
    stats: tuple[tuple[tuple[str, ...], tuple[Col, ...]], ...] = ()
    links: tuple[tuple[str, int, str], ...] = ()
    sums: tuple[Builder, ...] = ()
    row_level: tuple[str, ...] = ROW_LEVEL_COLUMNS
    always: tuple[Col, ...] = ()
    what: str = field(default="", compare=False)


# --- text cells ---------------------------------------------------------------------------------

_NUM = r"\d+(?:\.\d+)?"
_CNT = rf"(?:{_NUM}|<\d+)"  # a count, or one already hidden as "<5"
_TOKEN = re.compile(
    rf"(?P<frac>(?<![\w.<])(?P<fn>{_CNT}|-)/(?P<fd>{_CNT}|-)(?![\w.])(?P<fp> \({_NUM}%\))?)"
    rf"|(?P<npct>(?<![\w./<])(?P<nn>{_NUM})(?P<np> \({_NUM}%\)))"
    rf"|(?P<nis>\(n = (?P<nv>{_CNT}|-)\))"
    rf"|(?P<item>(?<=: )(?P<iv>{_CNT}|-)(?=;|$))"
    rf"|(?P<msd>(?:-?{_NUM}|n/a) \(SD (?:{_NUM}|n/a)\))"
    rf"|(?P<p>P (?:=|<|>) (?:{_NUM}|n/a))"
)
_BARE = re.compile(rf"^\s*({_CNT}|-)\s*$")


def _parse(text: str) -> list[Any]:
    """Split a text cell into literal strings and slots: ``("n", value)`` (a count),
    ``("pct", text, k...)`` (a percentage of the counts ``k``), ``("stat", text)``."""
    m = _BARE.match(text)
    if m:
        return [("n", m[1])]
    out: list[Any] = []
    pos, k = 0, 0
    for m in _TOKEN.finditer(text):
        out.append(text[pos:m.start()])
        if m["frac"]:
            out += [("n", m["fn"]), "/", ("n", m["fd"])]
            if m["fp"]:
                out.append(("pct", m["fp"], k, k + 1))
            k += 2
        elif m["npct"]:
            out += [("n", m["nn"]), ("pct", m["np"], k)]
            k += 1
        elif m["nis"]:
            out += ["(n = ", ("n", m["nv"]), ")"]
            k += 1
        elif m["item"]:
            out.append(("n", m["iv"]))
            k += 1
        else:
            out.append(("stat", m[0]))
        pos = m.end()
    out.append(text[pos:])
    return [s for s in out if s != ""]


def _slots(parsed: list[Any]) -> list[str]:
    return [s[1] for s in parsed if isinstance(s, tuple) and s[0] == "n"]


# --- cells -------------------------------------------------------------------------------------

def _mask(table: pd.DataFrame, spec: Col) -> tuple[str, np.ndarray]:
    if isinstance(spec, tuple):
        col, where = spec
        return col, np.asarray(where(table), dtype=bool)
    return spec, np.ones(len(table), dtype=bool)


def _marker(v: Any, small: str) -> str | None:
    if isinstance(v, str):
        s = v.strip()
        if s == small:
            return "primary"
        if s == HIDDEN:
            return "secondary"
    return None


class _Cells:
    """The count cells of a table: value (None when already hidden), and state."""

    def __init__(self, table: pd.DataFrame, decl: Disclosure, threshold: int):
        self.small = f"<{threshold}"
        self.threshold = threshold
        self.value: dict[Cell, float | None] = {}
        self.state: dict[Cell, str] = {}
        self.parsed: dict[tuple[int, str], list[Any]] = {}
        self.count_cols: set[str] = set()
        for spec in decl.counts:
            col, mask = _mask(table, spec)
            if col not in table.columns:
                continue
            self.count_cols.add(col)
            for r, v in enumerate(table[col].tolist()):
                if not mask[r]:
                    continue
                self._add((r, col, -1), v)
        for spec in decl.count_text:
            col, mask = _mask(table, spec)
            if col not in table.columns:
                continue
            self.count_cols.add(col)
            for r, v in enumerate(table[col].tolist()):
                if not mask[r] or not isinstance(v, str):
                    continue
                parsed = _parse(v)
                self.parsed[(r, col)] = parsed
                for k, n in enumerate(_slots(parsed)):
                    self._add((r, col, k), n)

    def _add(self, cell: Cell, v: Any) -> None:
        mark = _marker(v, self.small)
        if mark is not None:
            self.value[cell] = None
            self.state[cell] = mark
            return
        if isinstance(v, bool | np.bool_) or v is None or v is pd.NA:
            return
        try:
            x = float(v)
        except (TypeError, ValueError):
            return
        if math.isnan(x):
            return
        self.value[cell] = x
        if 0 < x < self.threshold:
            self.state[cell] = "primary"

    def cells_of(self, row: int, col: str) -> list[Cell]:
        if (row, col, -1) in self.value:
            return [(row, col, -1)]
        return [c for c in self.value if c[0] == row and c[1] == col and c[2] >= 0]

    def hidden(self, cell: Cell) -> bool:
        return cell in self.state

    def low(self, cell: Cell) -> float:
        """The value, or the least a reader may assume of a value already hidden."""
        v = self.value.get(cell)
        if v is not None:
            return v
        return 1.0 if self.state.get(cell) == "primary" else float(self.threshold)


def _unsafe(cells: _Cells, s: Sum) -> bool:
    """Whether a declared sum lets a reader recover a hidden count (module docstring, rule 2)."""
    t = cells.threshold
    values = [cells.value.get(c) for c in ((s.total,) if s.total is not None else ()) + s.parts]
    rest = None
    if s.rest and s.total is not None and all(v is not None for v in values):
        rest = values[0] - sum(values[1:])
    rest_small = rest is not None and 0 < rest < t
    hidden = [p for p in s.parts if cells.hidden(p)]
    total_hidden = s.total is not None and cells.hidden(s.total)
    if not hidden and not rest_small and not total_hidden:
        return False
    n_hidden = len(hidden) + int(s.rest)  # the rest is never shown
    if total_hidden:
        return n_hidden == 0 or (s.whole and len(hidden) < len(s.parts))
    n_primary = sum(cells.state[p] == "primary" for p in hidden) + int(rest_small)
    if n_hidden < 2:
        return True
    if not n_primary or any(cells.value.get(p) is None for p in hidden):
        return False  # (a part hidden by an earlier disclosure: that one made the sum safe)
    size = sum(cells.low(p) for p in hidden) + (rest if rest is not None else t)
    return size < (t - 1) * n_primary + t


def _protect(cells: _Cells, sums: list[Sum]) -> None:
    """Secondary suppression: hide cells until no declared sum is unsafe (rule 2): the smallest
    visible non-zero part first, the total when no part is left."""
    sums = sorted((s for s in sums if (s.total is None or s.total in cells.value)
                   and s.parts and all(p in cells.value for p in s.parts)),
                  key=lambda s: len(s.parts))
    while True:
        for s in sums:
            if not _unsafe(cells, s):
                continue
            visible = [p for p in s.parts if not cells.hidden(p)
                       and (cells.low(p) > 0 or (s.whole and cells.hidden(s.total)))]
            if visible:
                pick = min(visible, key=lambda c: (cells.low(c), c))
            elif s.total is not None and not cells.hidden(s.total):
                pick = s.total
            else:
                continue  # a total known from elsewhere: nothing left to hide here
            cells.state[pick] = "secondary"
            break  # start again from the smallest sums
        else:
            return


# --- sums -------------------------------------------------------------------------------------

def row_sum(total: str, *parts: str, rest: bool = False) -> Builder:
    """In every row, ``total = sum(parts)`` (``+`` an unshown rest when ``rest``)."""
    def build(table: pd.DataFrame, cells: _Cells) -> list[Sum]:
        return [Sum((r, total, -1), tuple((r, p, -1) for p in parts), rest)
                for r in range(len(table))]
    return build


def items_sum(total: str, text: str) -> Builder:
    """In every row, the counts inside ``text`` (``"label: n; ..."``) add up to ``total``."""
    def build(table: pd.DataFrame, cells: _Cells) -> list[Sum]:
        out = []
        for r in range(len(table)):
            items = tuple(c for c in cells.cells_of(r, text) if c[2] >= 0)
            if items:
                out.append(Sum((r, total, -1), items, whole=True))
        return out
    return build


def chain(before: str, excluded: str, after: str) -> Builder:
    """A flow of steps: ``before = excluded + after`` in each row, ``after`` of a row is
    ``before`` of the next, and so every run of consecutive steps ``i..j`` is a sum:
    ``before[i] = excluded[i] + ... + excluded[j] + after[j]``."""
    def build(table: pd.DataFrame, cells: _Cells) -> list[Sum]:
        n = len(table)
        out = []
        for i in range(n):
            for j in range(i, n):
                out.append(Sum((i, before, -1),
                               tuple((k, excluded, -1) for k in range(i, j + 1))
                               + ((j, after, -1),)))
            if i + 1 < n:
                out.append(Sum((i, after, -1), ((i + 1, before, -1),)))
        return out
    return build


def level_sum(by: str, total: str, part: str, where: Where) -> Builder:
    """Rows with the same ``by`` value (where ``where``) are the levels of one variable: their
    ``part`` counts add up to ``total``, which every level row repeats."""
    def build(table: pd.DataFrame, cells: _Cells) -> list[Sum]:
        mask = np.asarray(where(table), dtype=bool)
        groups: dict[Any, list[int]] = {}
        for r, key in enumerate(table[by].tolist()):
            if mask[r]:
                groups.setdefault(key, []).append(r)
        out = []
        for rows in groups.values():
            first = rows[0]
            out.append(Sum((first, total, -1), tuple((r, part, -1) for r in rows)))
            out += [Sum((first, total, -1), ((r, total, -1),)) for r in rows[1:]]
            out += [Sum((r, total, -1), ((first, total, -1),)) for r in rows[1:]]
        return out
    return build


def label_sum(total: str, parts: tuple[str, ...], columns: tuple[str, ...],
              equal: tuple[tuple[str, str], ...] = ()) -> Builder:
    """A table whose rows are labelled (its index): in each of ``columns``, row ``total`` is
    the sum of rows ``parts``; pairs in ``equal`` hold the same count (either hidden hides the
    other)."""
    def build(table: pd.DataFrame, cells: _Cells) -> list[Sum]:
        labels = [str(x) for x in table.index]

        def pos(label: str) -> int | None:
            return labels.index(label) if label in labels else None

        out = []
        for col in columns:
            rows = [pos(p) for p in parts]
            top = pos(total)
            if top is not None and all(r is not None for r in rows):
                out.append(Sum((top, col, -1), tuple((r, col, -1) for r in rows)))
            for a, b in equal:
                ra, rb = pos(a), pos(b)
                if ra is not None and rb is not None:
                    out += [Sum((ra, col, -1), ((rb, col, -1),)),
                            Sum((rb, col, -1), ((ra, col, -1),))]
        return out
    return build


def column_sum(column: str) -> Builder:
    """The counts of ``column`` add up to a total the reader knows from elsewhere."""
    def build(table: pd.DataFrame, cells: _Cells) -> list[Sum]:
        return [Sum(None, tuple((r, column, -1) for r in range(len(table))))]
    return build


def _links(decl: Disclosure) -> Builder:
    def build(table: pd.DataFrame, cells: _Cells) -> list[Sum]:
        out = []
        for text, k, col in decl.links:
            for r in range(len(table)):
                a, b = (r, text, k), (r, col, -1)
                if a in cells.value and b in cells.value:
                    out += [Sum(a, (b,)), Sum(b, (a,))]
        return out
    return build


# --- applying a declaration --------------------------------------------------------------------

def is_hidden(value: object, threshold: int = THRESHOLD) -> bool:
    """Whether a shown cell is a hidden value (``"<5"`` or ``"-"``)."""
    return isinstance(value, str) and value.strip() in (f"<{threshold}", HIDDEN)


def shown_count(n: object, threshold: int | None = THRESHOLD) -> str:
    """One count as text: ``"<5"`` for 1 .. threshold - 1 (``threshold=None``: as it is);
    a value already hidden stays as it is."""
    if isinstance(n, str):
        return n
    if threshold is not None and n is not None and not pd.isna(n) and 0 < float(n) < threshold:
        return f"<{threshold}"
    if n is None or pd.isna(n):
        return "n/a"
    f = float(n)
    return str(int(f)) if f.is_integer() else f"{f:g}"


def _render_text(parsed: list[Any], states: list[str | None], small: str,
                 row_hidden: bool) -> str:
    out, k = [], 0
    slot_state: list[str | None] = list(states)
    for s in parsed:
        if isinstance(s, str):
            out.append(s)
            continue
        kind = s[0]
        if kind == "n":
            st = slot_state[k]
            if st == "primary":
                out.append(small)
            elif st == "secondary":
                out.append(HIDDEN)
            else:
                out.append(s[1])
            k += 1
        elif kind == "pct":
            if not any(slot_state[j] for j in s[2:] if j < len(slot_state)):
                out.append(s[1])
        else:  # a statistic of the row
            if row_hidden:
                out.append(f"P = {HIDDEN}" if s[1].startswith("P ") else HIDDEN)
            else:
                out.append(s[1])
    return "".join(out)


def disclose(table: pd.DataFrame, decl: Disclosure | str,
             threshold: int = THRESHOLD) -> pd.DataFrame:
    """A table as it may be shown for real data: the declaration ``decl`` applied.

    Parameters
    ----------
    table
        The table as computed (or as disclosed once: applying it again changes nothing).
    decl
        A :class:`Disclosure`, or the name of one in :data:`DISCLOSURES` (a file name such as
        ``"table2.csv"`` or its stem).
    threshold
        Counts 1 .. threshold - 1 are small (default 5).

    Returns
    -------
    pandas.DataFrame
        A copy (index and ``attrs`` kept) with the row-level columns dropped, small counts shown
        as ``"<5"``, secondary and derived values as ``"-"``. Columns with a hidden cell become
        ``object`` columns (whole-number counts as ``int``); every other column keeps its values
        and dtype.
    """
    if isinstance(decl, str):
        decl = declaration(decl)
    if isinstance(threshold, bool) or not isinstance(threshold, int | np.integer) \
            or threshold < 2:
        raise ValueError(f"threshold must be a whole number of at least 2, got {threshold!r}")
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a DataFrame, got {type(table).__name__}")
    out = table.drop(columns=[c for c in decl.row_level if c in table.columns])
    cells = _Cells(out, decl, threshold)
    sums: list[Sum] = []
    for build in (*decl.sums, _links(decl)):
        sums += build(out, cells)
    _protect(cells, sums)
    n = len(out)
    hidden_rows: dict[str | None, np.ndarray] = {None: np.zeros(n, dtype=bool)}
    by_col: dict[str, np.ndarray] = {}
    for (r, col, _k) in cells.state:
        by_col.setdefault(col, np.zeros(n, dtype=bool))[r] = True
        hidden_rows[None][r] = True
    new: dict[str, list[Any]] = {}

    def column(col: str) -> list[Any]:
        if col not in new:
            new[col] = out[col].tolist()
        return new[col]

    # count cells
    for (r, col, k), st in cells.state.items():
        if k == -1:
            column(col)[r] = cells.small if st == "primary" else HIDDEN
    # text cells
    for (r, col), parsed in cells.parsed.items():
        slots = len(_slots(parsed))
        states = [cells.state.get((r, col, k)) for k in range(slots)]
        text = _render_text(parsed, states, cells.small, bool(hidden_rows[None][r]))
        if text != out[col].iat[r]:
            column(col)[r] = text
    # statistics of rows with a hidden count
    for triggers, cols in decl.stats:
        if triggers:
            rows = np.zeros(n, dtype=bool)
            for c in triggers:
                if c in by_col:
                    rows |= by_col[c]
        else:
            rows = hidden_rows[None]
        if not rows.any():
            continue
        for spec in cols:
            col, mask = _mask(out, spec)
            if col not in out.columns:
                continue
            for r in np.flatnonzero(rows & mask):
                if (r, col, -1) in cells.state:
                    continue
                v = column(col)[r]
                if isinstance(v, str) and (r, col) in cells.parsed:
                    continue  # text cells with counts: rendered above
                if v is None or (not isinstance(v, str) and pd.isna(v)):
                    continue
                column(col)[r] = HIDDEN
    for spec in decl.always:
        col, mask = _mask(out, spec)
        if col not in out.columns:
            continue
        for r in np.flatnonzero(mask):
            v = column(col)[r]
            if v is not None and (isinstance(v, str) or not pd.isna(v)):
                column(col)[r] = HIDDEN
    for col, values in new.items():
        if values == out[col].tolist():
            continue
        if col in cells.count_cols:
            values = [int(v) if isinstance(v, float | np.floating) and float(v).is_integer()
                      else (int(v) if isinstance(v, np.integer) else v) for v in values]
        out[col] = pd.Series(values, index=out.index, dtype=object)
    out.attrs = dict(table.attrs)
    return out


# --- declarations ------------------------------------------------------------------------------

def _kind_not(value: str) -> Where:
    return lambda t: (t["kind"] != value).to_numpy() if "kind" in t.columns else np.ones(
        len(t), dtype=bool)


def _kind_is(value: str) -> Where:
    return lambda t: (t["kind"] == value).to_numpy() if "kind" in t.columns else np.zeros(
        len(t), dtype=bool)


def _count_ids(t: pd.DataFrame) -> np.ndarray:
    from esi.audit import PUBLISHED_RESULTS

    pub = pd.read_csv(PUBLISHED_RESULTS)
    ids = set(pub.loc[pub["statistic"].astype(str).str.startswith("n"), "id"])
    return t["id"].isin(ids).to_numpy() if "id" in t.columns else np.zeros(len(t), dtype=bool)


def _binary_outcome(names: pd.Series) -> np.ndarray:
    from esi.outcomes import OUTCOMES

    binary = {o.name for o in OUTCOMES if o.kind == "binary"}
    stems = names.astype(str).str.replace(r"_\d+w$", "", regex=True)
    return stems.isin(binary).to_numpy()


def _binary_from_data(t: pd.DataFrame) -> np.ndarray:
    if not {"outcome", "source"} <= set(t.columns):
        return np.zeros(len(t), dtype=bool)
    return _binary_outcome(t["outcome"]) & (t["source"] == "data").to_numpy()


def _binary_ids(t: pd.DataFrame) -> np.ndarray:
    from esi.audit import PUBLISHED_RESULTS

    if "id" not in t.columns:
        return np.zeros(len(t), dtype=bool)
    pub = pd.read_csv(PUBLISHED_RESULTS)
    binary = pub.loc[_binary_outcome(pub["outcome"]), "id"]
    return t["id"].isin(set(binary)).to_numpy()


_COMPARISON_STATS = ("mean_cases", "sd_cases", "mean_controls", "sd_controls", "percent_cases",
                     "percent_controls", "estimate", "ci_low", "ci_high", "effect_size",
                     "effect_ci_low", "effect_ci_high", "statistic", "dof", "p_value")

_COMPARISON = Disclosure(
    counts=("n_cases", "n_controls", "n_pairs", "events_cases", "events_controls"),
    count_text=("source",),
    stats=(((), _COMPARISON_STATS),),
    sums=(row_sum("n_cases", "events_cases", rest=True),
          row_sum("n_controls", "events_controls", rest=True)),
    what="n_cases, n_controls, n_pairs, events_cases, events_controls; '(n = N)' in source; "
         "n - events",
)


def _table1() -> Disclosure:
    counts: list[Col] = []
    texts: list[Col] = []
    stats: list[tuple[tuple[str, ...], tuple[Col, ...]]] = []
    sums: list[Builder] = []
    links: list[tuple[str, int, str]] = []
    for stage in ("before", "after"):
        for side in ("cases", "controls"):
            n, spread, text = f"n_{side}_{stage}", f"spread_{side}_{stage}", f"{side}_{stage}"
            counts += [n, (spread, _kind_not("continuous"))]
            texts.append((text, _kind_not("continuous")))
            links.append((text, 0, spread))
            stats.append(((n, spread, text), (
                f"value_{side}_{stage}", f"smd_{stage}",
                (spread, _kind_is("continuous")), (text, _kind_is("continuous")))))
            sums += [level_sum("variable", n, spread, _kind_is("categorical")),
                     _binary_rest(n, spread)]
    return Disclosure(counts=tuple(counts), count_text=tuple(texts), stats=tuple(stats),
                      links=tuple(links), sums=tuple(sums),
                      what="n_* (patients with a value), spread_* of binary and categorical "
                           "rows (patients with the level) and the n (%) texts; levels add "
                           "up to n; n - events of binary rows")


def _binary_rest(n: str, spread: str) -> Builder:
    def build(table: pd.DataFrame, cells: _Cells) -> list[Sum]:
        mask = _kind_is("binary")(table)
        return [Sum((r, n, -1), ((r, spread, -1),), rest=True)
                for r in range(len(table)) if mask[r]]
    return build


_MV_PRIMARY = ("primary_estimate", "primary_ci_low", "primary_ci_high", "primary_p_value")
_MV_POSITIVE = ("positive_estimate", "positive_ci_low", "positive_ci_high", "positive_p_value")
_SWEEP_STATS = tuple(f"{o}_{t}w_{s}" for o, t in (("leg_pain_reduction", 4),
                                                  ("leg_pain_reduction", 12),
                                                  ("positive_outcome", 4),
                                                  ("positive_outcome", 12))
                     for s in ("estimate", "ci_low", "ci_high", "p_value"))

#: Every table a run shows or writes -> its declaration (file stems; aliases share one).
DISCLOSURES: dict[str, Disclosure] = {
    "cohort_flow": Disclosure(
        counts=("n_before", "n_excluded", "n_after"), count_text=("reasons",),
        sums=(chain("n_before", "n_excluded", "n_after"), items_sum("n_excluded", "reasons")),
        what="n_before, n_excluded, n_after and the counts in reasons; each run of steps is "
             "a sum, the reasons add up to n_excluded"),
    "group_counts": Disclosure(
        counts=("eligible", "excluded"), sums=(column_sum("eligible"), column_sum("excluded")),
        what="eligible, excluded (each column adds up to a total shown in the flow)"),
    "table1": _table1(),
    "sample_sizes": Disclosure(
        counts=("control", "treated"), row_level=(),
        sums=(label_sum("All", ("Matched", "Unmatched", "Discarded"), ("control", "treated"),
                        equal=(("Matched (ESS)", "Matched"),)),),
        what="every cell (rows All = Matched + Unmatched + Discarded; the effective sample "
             "size goes with Matched)"),
    "balance": Disclosure(what="no counts"),
    "matched_pairs": Disclosure(row_level=(),
                                what="no counts; the ids are keyed pseudonyms"),
    "outcomes": _COMPARISON,
    "larger_cohort": _COMPARISON,
    "historical": Disclosure(
        counts=("n_cases", "events_cases"),
        stats=(((), ("mean_cases", "sd_cases", "percent_cases", "statistic", "dof",
                     "estimate", "ci_low", "ci_high", "p_value")),),
        sums=(row_sum("n_cases", "events_cases", rest=True),),
        what="n_cases, events_cases and n - events (the reference cohorts' published "
             "figures are public)"),
    "table2": Disclosure(
        counts=("n_cases", "n_controls"), count_text=("cases", "controls", "text"),
        stats=(((), ("estimate", "effect_size", "p", "p_value")),),
        links=(("cases", 1, "n_cases"), ("controls", 1, "n_controls"),
               ("text", 1, "n_cases"), ("text", 3, "n_controls")),
        sums=(lambda t, c: [s for r in range(len(t)) for s in (
            Sum((r, "n_cases", -1), ((r, "cases", 0),), rest=True),
            Sum((r, "n_controls", -1), ((r, "controls", 0),), rest=True),
            Sum((r, "cases", 0), ((r, "text", 0),)), Sum((r, "text", 0), ((r, "cases", 0),)),
            Sum((r, "controls", 0), ((r, "text", 2),)),
            Sum((r, "text", 2), ((r, "controls", 0),)))],),
        what="n_cases, n_controls and the events in cases, controls and text (events/n)"),
    "equivalence": Disclosure(
        counts=("n_cases", "n_controls"),
        stats=(((), ("estimate", "ci_low", "ci_high", "df", "t_lower", "p_lower", "t_upper",
                     "p_upper", "p_value", "equivalent")),),
        what="n_cases, n_controls"),
    "rosenbaum": Disclosure(
        counts=("n_pairs", "n_complete", "n_informative"),
        stats=(((), ("p_upper", "p_lower", "statistic")),),
        sums=(row_sum("n_pairs", "n_complete", rest=True),
              row_sum("n_complete", "n_informative", rest=True)),
        what="n_pairs, n_complete, n_informative and the pairs between them"),
    "gamma_at_change": Disclosure(what="no counts"),
    "power": Disclosure(counts=("n_per_group",), stats=(((), ("value", "mc_se")),),
                        what="n_per_group"),
    "influence": Disclosure(
        counts=("n_sets",),
        stats=(((), ("estimate", "ci_low", "ci_high", "p_value", "change")),),
        what="n_sets (the ids and values of single patients are dropped)"),
    "multiverse": Disclosure(
        counts=("n_cases_matched", "n_controls_matched", "n_matched", "primary_n_cases",
                "primary_n_controls", "positive_n_cases", "positive_n_controls",
                "positive_events_cases", "positive_events_controls"),
        stats=((("n_cases_matched", "n_controls_matched", "n_matched"),
                ("max_abs_smd",) + _MV_PRIMARY + _MV_POSITIVE),
               (("primary_n_cases", "primary_n_controls"), _MV_PRIMARY),
               (("positive_n_cases", "positive_n_controls", "positive_events_cases",
                 "positive_events_controls"), _MV_POSITIVE)),
        sums=(row_sum("n_matched", "n_cases_matched", "n_controls_matched"),
              row_sum("n_cases_matched", "primary_n_cases", rest=True),
              row_sum("n_controls_matched", "primary_n_controls", rest=True),
              row_sum("n_cases_matched", "positive_n_cases", rest=True),
              row_sum("n_controls_matched", "positive_n_controls", rest=True),
              row_sum("positive_n_cases", "positive_events_cases", rest=True),
              row_sum("positive_n_controls", "positive_events_controls", rest=True)),
        what="n_*_matched, n_matched, primary_n_*, positive_n_* (n_matched is their sum; "
             "the patients without the outcome are a rest)"),
    "sweep": Disclosure(
        counts=("n_cases_matched", "n_controls_matched")
        + tuple(f"positive_outcome_{t}w_{c}" for t in (4, 12)
                for c in ("n_cases", "n_controls", "events_cases", "events_controls")),
        stats=((("n_cases_matched", "n_controls_matched"), ("max_abs_smd",) + _SWEEP_STATS),)
        + tuple(((f"positive_outcome_{t}w_n_cases", f"positive_outcome_{t}w_n_controls",
                  f"positive_outcome_{t}w_events_cases", f"positive_outcome_{t}w_events_controls"),
                 tuple(f"positive_outcome_{t}w_{s}"
                       for s in ("estimate", "ci_low", "ci_high", "p_value")))
                for t in (4, 12)),
        sums=tuple(row_sum(f"positive_outcome_{t}w_{n}", f"positive_outcome_{t}w_{e}",
                           rest=True)
                   for t in (4, 12) for n, e in (("n_cases", "events_cases"),
                                                 ("n_controls", "events_controls"))),
        what="n_cases_matched, n_controls_matched, and the positive outcome's n and events "
             "of cases and controls at 4 and 12 weeks (n = events + those without it)"),
    "reproduction": Disclosure(
        counts=(("reproduced", _count_ids),), stats=(((), ("match",)),),
        what="reproduced of the published counts (n_cases, n_controls, control_pool)"),
    "reproduction_sources": Disclosure(counts=(("reproduced", _count_ids),),
                                       what="reproduced of the published counts"),
    "p_value_audit": Disclosure(
        always=(("p_value", _binary_from_data), ("gives_published", _binary_from_data)),
        what="no counts; the P values recomputed from the data of a binary outcome (and "
             "whether they give the published one) are always hidden: they would reveal "
             "event counts"),
    "p_value_summary": Disclosure(
        always=(("from_data", _binary_ids), ("verdict", _binary_ids)),
        what="no counts; which tests on the data of a binary outcome give the published P "
             "is always hidden"),
    "grim_audit": Disclosure(what="no counts of this registry (published n)"),
    "sprite_distribution": Disclosure(what="no counts of this registry (published summaries)"),
    "sprite_p_narrowing": Disclosure(what="no counts of this registry (published summaries)"),
}

_ALIASES = {"table1_before": "table1", "table1_after": "table1"}


def declaration(name: str) -> Disclosure:
    """The declaration of a table by name: a file name (``"table2.csv"``) or its stem.

    Raises
    ------
    ValueError
        For a table nobody declared (every output must be declared before it is written).
    """
    stem = str(name).rsplit("/", 1)[-1]
    stem = stem[:-4] if stem.endswith(".csv") else stem
    stem = _ALIASES.get(stem, stem)
    try:
        return DISCLOSURES[stem]
    except KeyError:
        raise ValueError(f"no disclosure declaration for the table {name!r}: add one to "
                         "esi.disclosure.DISCLOSURES (which columns are counts)") from None


def rule_text() -> str:
    """The disclosure-control rule and every table's counts, as Markdown (data dictionary)."""
    body = __doc__.split("---\n", 1)[1].split("\nSynthetic data (", 1)[0].strip()
    lines = [body.replace("``", "`"), "", "The counts each output table declares "
             "(`esi.disclosure.DISCLOSURES`):", ""]
    for name, decl in DISCLOSURES.items():
        alias = [a for a, b in _ALIASES.items() if b == name] or [name]
        lines.append(f"- {', '.join(f'`{a}`' for a in alias)}: {decl.what}.")
    return "\n".join(lines) + "\n"
