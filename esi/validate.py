"""Check a registry file against the data dictionary (:mod:`esi.schema`).

:func:`validate_file` reads a CSV, Parquet or Excel file *read-only*, checks every cell and every
rule across columns, and returns a :class:`ValidationReport` listing every problem, one per
line, naming the file, the row (line number and patient id), the column, the value and the
rule. ``esi validate FILE`` prints that list and exits 0 when it is empty, 2 otherwise.

The same parse produces the typed registry that :func:`esi.io.read_registry` returns, so a file
that validates is exactly a file the analysis can read.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from esi.schema import (
    EARLIEST_DATE,
    FOLLOW_UP_WEEKS,
    SCHEMA,
    Column,
    follow_up_columns,
)
from esi.text import excerpt, printable

__all__ = [
    "Problem",
    "ValidationReport",
    "validate_file",
    "validate_frame",
    "read_raw",
    "RawTable",
    "check_run_registry",
    "typed_registry",
    "SUPPORTED_SUFFIXES",
]

SUPPORTED_SUFFIXES = {
    ".csv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
}

_MISSING_STRINGS = {"", "NA"}
_TRUE = {"true", "yes", "1", "t", "y"}
_FALSE = {"false", "no", "0", "f", "n"}
_INT_TEXT = re.compile(r"^[+-]?\d+(\.0*)?$")


@dataclass(frozen=True)
class Problem:
    """One problem found in a registry file.

    Attributes
    ----------
    file : str
        The file as given on the command line.
    rule : str
        Short name of the rule broken, e.g. ``out-of-range``, ``off-step``, ``unknown-code``,
        ``duplicate-id``, ``missed-visit-empty``, ``direct-identifier``.
    message : str
        The rule in words, for this value.
    line : int or None
        Line of the file (CSV; the header is line 1) or spreadsheet row (the header is row 1);
        ``None`` for problems of the whole file or of a column.
    patient_id : str or None
        The row's ``patient_id`` when it could be read.
    column : str or None
        The column concerned.
    value : str or None
        The offending value as written in the file: its first line, shortened to 60
        characters (:func:`esi.text.excerpt`); never a whole row.
    privacy : bool
        True for a direct-identifier problem.

    Notes
    -----
    ``str(problem)`` is one line: every text that came from the file (column, patient, value)
    is shown with terminal escapes and line breaks escaped (:func:`esi.text.printable`).
    """

    file: str
    rule: str
    message: str
    line: int | None = None
    patient_id: str | None = None
    column: str | None = None
    value: str | None = None
    privacy: bool = False

    def __post_init__(self) -> None:
        for name in ("value", "patient_id"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, excerpt(v, escape=False))

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.patient_id:
            where.append(f"patient {self.patient_id}")
        if self.column is not None:
            where.append(f"column {self.column}")
        if self.value is not None:
            where.append(f"value {self.value!r}")
        return printable(f"{': '.join(where)}: [{self.rule}] {self.message}")


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one file.

    Attributes
    ----------
    file : str
        The file as given.
    sha256 : str or None
        SHA-256 of the file's bytes (``None`` if it could not be read).
    n_rows : int
        Data rows read (patients, before any check).
    problems : tuple of Problem
        Every problem found, in file order.
    registry : pandas.DataFrame or None
        The typed registry (index ``patient_id``) when there is no problem; else ``None``.
    sheet : str or None
        The sheet read, for an Excel file.
    sheets : tuple of str
        Every sheet of an Excel file, in workbook order (empty for other files).
    """

    file: str
    sha256: str | None
    n_rows: int
    problems: tuple[Problem, ...]
    registry: pd.DataFrame | None = field(default=None, repr=False)
    sheet: str | None = None
    sheets: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def sheet_note(self) -> str | None:
        """For a workbook of several sheets, which one was read (one line naming the sheets
        and how to choose another); ``None`` otherwise."""
        if self.sheet is None or len(self.sheets) < 2:
            return None
        where = self.sheets.index(self.sheet) + 1 if self.sheet in self.sheets else 0
        names = ", ".join(repr(n) for n in self.sheets)
        return printable(f"{self.file}: read sheet {self.sheet!r} (sheet {where} of "
                         f"{len(self.sheets)}: {names}); choose another with --sheet NAME "
                         "or sheet: in the mapping file")

    def to_frame(self) -> pd.DataFrame:
        """The problems as a DataFrame (one row each; the fields of :class:`Problem`)."""
        cols = ["file", "line", "patient_id", "column", "value", "rule", "message", "privacy"]
        return pd.DataFrame([{c: getattr(p, c) for c in cols} for p in self.problems],
                            columns=cols)


@dataclass(frozen=True)
class RawTable:
    """A registry file as read, before any typing.

    Attributes
    ----------
    header : list of str
        Column names as they appear.
    rows : list of list
        Cell values (``str`` for CSV; Python objects for Parquet/Excel), one list per row, all
        of the header's length.
    lines : list of int
        Line (CSV) or sheet row of each kept row.
    sheet : str or None
        The sheet read, for an Excel file.
    sheets : tuple of str
        Every sheet of an Excel file (empty for other files).
    """

    header: list[str]
    rows: list[list[object]]
    lines: list[int]
    sheet: str | None = None
    sheets: tuple[str, ...] = ()


def _short(v: object) -> str:
    return excerpt(v, escape=False)


def _as_written(v: object) -> str:
    """A parsed value as the canonical file form writes it (``true``, ``40``, ``2.5``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return _short(v)


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and v.strip() in _MISSING_STRINGS:
        return True
    return False


def read_raw(path: Path, data: bytes, label: str, *, delimiter: str = ",",
             sheet: str | None = None) -> tuple[RawTable | None, list[Problem]]:
    """Parse the bytes of a registry file into a :class:`RawTable`.

    Parameters
    ----------
    path
        The file (its suffix decides the format).
    data
        Its bytes.
    label
        The file as the user named it, for problems.
    delimiter
        Field delimiter of a CSV file (a mapping's ``delimiter:``).
    sheet
        The sheet of an Excel file to read (default: the first); for any other format a
        ``sheet-not-excel`` problem.

    Returns
    -------
    (RawTable or None, list of Problem)
        The table (``None`` when nothing can be read) and the problems of the file's form:
        unsupported format, undecodable bytes, empty file, no patients, an unbalanced quote,
        a delimiter that is not the file's, an unknown sheet, truncated or overlong rows.
        No problem quotes more of the file than a short excerpt of one cell.
    """
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        return None, [Problem(label, "unsupported-format",
                              f"file type {path.suffix or '(none)'!r} is not supported; use "
                              "CSV (.csv), Parquet (.parquet) or Excel (.xlsx)")]
    if sheet is not None and kind != "excel":
        return None, [Problem(label, "sheet-not-excel", f"a sheet ({sheet!r}) was chosen, but "
                              "only an Excel file (.xlsx) has sheets")]
    if not data.strip():
        return None, [Problem(label, "empty-file", "the file is empty")]
    if kind == "csv":
        return _read_csv(data, label, delimiter)
    sheets: tuple[str, ...] = ()
    try:
        if kind == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            with pd.ExcelFile(io.BytesIO(data)) as book:
                sheets = tuple(str(n) for n in book.sheet_names)
                if sheet is not None and sheet not in sheets:
                    return None, [Problem(label, "unknown-sheet",
                                          f"the workbook has no sheet {sheet!r}; its sheets "
                                          f"are {', '.join(repr(n) for n in sheets)}")]
                sheet = sheets[0] if sheet is None else sheet
                frame = pd.read_excel(book, sheet_name=sheet, dtype=object)
    except Exception as exc:  # any reader failure is a problem of the file, not a crash
        what = "Parquet" if kind == "parquet" else "Excel"
        return None, [Problem(label, "unreadable", f"not a readable {what} file: "
                              f"{type(exc).__name__}: {excerpt(exc, 120)}")]
    header = [str(c) for c in frame.columns]
    rows = [list(r) for r in frame.astype(object).itertuples(index=False, name=None)]
    table = RawTable(header, rows, [i + 2 for i in range(len(rows))],
                     sheet if kind == "excel" else None, sheets)
    if not rows:
        return table, [Problem(label, "no-patients", "the file has a header but no patients")]
    return table, []


#: A CSV field longer than this (characters) stops the parse: no registry cell is that long,
#: so it is a quote left open (Python's csv module's own default limit).
_FIELD_LIMIT = csv.field_size_limit()


def _read_csv(data: bytes, label: str,
              delimiter: str = ",") -> tuple[RawTable | None, list[Problem]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start: exc.end].hex(" ")
        return None, [Problem(label, "undecodable-bytes",
                              f"byte(s) {bad} at offset {exc.start} are not UTF-8; save the "
                              "file as UTF-8", line=line)]
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        return None, [Problem(label, "undecodable-bytes", "the file holds NUL bytes; it is "
                              "not a text CSV file", line=line)]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    problems: list[Problem] = []
    # (first line, last line, fields) of every record: a record runs over several lines
    # only when a quoted field holds a line break.
    records: list[tuple[int, int, list[str]]] = []
    end = 0
    try:
        for r in reader:
            records.append((end + 1, reader.line_num, r))
            end = reader.line_num
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            return None, [Problem(label, "unbalanced-quote",
                                  f"a quoted field of the row starting on this line runs on "
                                  f"for more than {_FIELD_LIMIT:,} characters: a quote (\") "
                                  "opens a field and is never closed, so the field swallows "
                                  "the rows below it; remove the stray quote (a quote that "
                                  "belongs to a value is written doubled inside a quoted "
                                  "field: \"5\"\" disc\")", line=end + 1)]
        return None, [Problem(label, "malformed-csv", f"CSV syntax error: {exc}",
                              line=reader.line_num)]
    records = [(n, m, r) for n, m, r in records if any(c.strip() for c in r)]
    # Leading comment lines (``# ...``) are a note about the file, e.g. "synthetic data".
    while records and records[0][2] and records[0][2][0].lstrip().startswith("#"):
        records = records[1:]
    if not records:
        return None, [Problem(label, "empty-file", "the file holds no header and no rows")]
    header_line, _, header = records[0]
    header = [h.strip() for h in header]
    quote = _unbalanced_quote(records, len(header), header, delimiter, label)
    if quote is not None:
        return None, [quote]
    wrong = _wrong_delimiter(header, delimiter, label, header_line)
    if wrong is not None:
        return None, [wrong]
    body = records[1:]
    if not body:
        return RawTable(header, [], []), [Problem(label, "no-patients",
                                                  "the file has a header but no patients")]
    rows, lines = [], []
    for n, _, r in body:
        if len(r) != len(header):
            rule = "truncated-row" if len(r) < len(header) else "extra-fields"
            msg = (f"the row has {len(r)} fields where the header has {len(header)}"
                   + ("; it was cut short" if len(r) < len(header) else ""))
            pid = r[header.index("patient_id")] if "patient_id" in header and \
                header.index("patient_id") < len(r) else None
            problems.append(Problem(label, rule, msg, line=n, patient_id=pid or None))
            continue
        rows.append(r)
        lines.append(n)
    return RawTable(header, rows, lines), problems


def _unbalanced_quote(records: list[tuple[int, int, list[str]]], n_columns: int,
                      header: list[str], delimiter: str, label: str) -> Problem | None:
    """The first quote left open: a quoted field that holds a line break and either leaves
    its record with the wrong number of fields or swallows a line that looks like a row
    (half the header's delimiters or more). A line break inside a properly quoted free-text
    cell (a REDCap notes field) is neither. The problem names the line and column where the
    quoted field starts, never its contents."""
    row_like = max(2, (n_columns - 1) // 2)
    for k, (first, last, r) in enumerate(records):
        if last == first:
            continue
        col = next((j for j, c in enumerate(r) if "\n" in c or "\r" in c), None)
        if col is None:  # pragma: no cover - a record spans lines only through such a field
            continue
        swallowed = re.split(r"\r\n|\r|\n", r[col])[1:]
        if k > 0 and len(r) == n_columns and \
                not any(s.count(delimiter) >= row_like for s in swallowed):
            continue
        where = "the header" if k == 0 else "this row"
        return Problem(label, "unbalanced-quote",
                       f"a field of {where} starts with a quote (\") that is not closed on its "
                       f"line, so the field runs on to line {last} and swallows the "
                       f"{last - first} line(s) below it; remove the stray quote (a quote "
                       "that belongs to a value is written doubled inside a quoted field: "
                       "\"5\"\" disc\")", line=first,
                       column=header[col] if k > 0 and col < len(header) else None)
    return None


def _wrong_delimiter(header: list[str], delimiter: str, label: str,
                     line: int) -> Problem | None:
    """A hint when the header reads as one or two columns holding another delimiter:
    semicolons (the CSV that Excel saves in many European locales), tabs, or commas when
    a mapping set another delimiter."""
    if len(header) > 2:
        return None
    for other, name, shown in ((";", "semicolon", '";"'), ("\t", "tab", '"\\t"'),
                               (",", "comma", '","')):
        inside = max(h.count(other) for h in header)
        if other == delimiter or inside < 2:
            continue
        what = (f"the header reads as {'one column' if len(header) == 1 else 'two columns'} "
                f"holding {inside} {name}s: the file looks {name}-separated")
        if other == ",":
            fix = f"remove `delimiter: {delimiter!r}` from the mapping file"
        else:
            fix = ("save it as comma-separated CSV (Excel: \"CSV UTF-8 (Comma delimited)\"), "
                   "or read it as it is with a mapping file (--mapping) holding "
                   f"`delimiter: {shown}`")
            if other == ";":
                what += " (the CSV that Excel saves in many European locales)"
                fix += " (and `decimal: \",\"` if its numbers are written like 12,5)"
        return Problem(label, "wrong-delimiter", f"{what}; {fix}", line=line)
    return None


# --- cell parsing ---------------------------------------------------------------------------

class _Bad(Exception):
    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule
        self.message = message


def _parse_number(v: object) -> float:
    if isinstance(v, bool | np.bool_):
        raise _Bad("wrong-type", "expected a number, found a boolean")
    if isinstance(v, int | float | np.integer | np.floating):
        x = float(v)
    else:
        s = str(v).strip()
        try:
            x = float(s)
        except ValueError:
            raise _Bad("wrong-type", "expected a number") from None
        if s.lower() in {"nan", "inf", "-inf", "infinity", "-infinity", "+inf"}:
            raise _Bad("wrong-type", "expected a finite number")
    if not math.isfinite(x):
        raise _Bad("wrong-type", "expected a finite number")
    return x


def _parse_cell(col: Column, v: object) -> object:
    if col.dtype in ("number", "integer"):
        try:
            x = _parse_number(v)
        except _Bad as bad:
            if col.dtype == "integer":
                raise _Bad(bad.rule, bad.message.replace("a number", "a whole number")) from None
            raise
        if col.dtype == "integer":
            if isinstance(v, str) and not _INT_TEXT.match(v.strip()):
                raise _Bad("wrong-type", "expected a whole number")
            if not float(x).is_integer():
                raise _Bad("wrong-type", "expected a whole number")
        if col.minimum is not None and x < col.minimum or \
                col.maximum is not None and x > col.maximum:
            raise _Bad("out-of-range", f"must lie in {col.allowed_text()}")
        if col.step is not None:
            k = (x - (col.minimum or 0.0)) / col.step
            if abs(k - round(k)) > 1e-9:
                raise _Bad("off-step", f"must lie in {col.allowed_text()}")
        return int(x) if col.dtype == "integer" else x
    if col.dtype == "boolean":
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if isinstance(v, int | float | np.integer | np.floating) and float(v) in (0.0, 1.0):
            return bool(v)
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise _Bad("wrong-type", "expected true or false")
    if col.dtype == "category":
        s = str(v).strip()
        if s not in col.allowed:
            raise _Bad("unknown-code", f"allowed codes are {', '.join(col.allowed)}")
        return s
    if col.dtype == "date":
        if isinstance(v, pd.Timestamp | _dt.datetime):
            d = pd.Timestamp(v).date()
        elif isinstance(v, _dt.date):
            d = v
        else:
            s = str(v).strip()
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
                raise _Bad("wrong-type", "expected an ISO date YYYY-MM-DD")
            try:
                d = _dt.date.fromisoformat(s)
            except ValueError:
                raise _Bad("impossible-date", "no such calendar date") from None
        if d < EARLIEST_DATE:
            raise _Bad("impossible-date", f"before {EARLIEST_DATE.isoformat()}")
        if d > _dt.date.today():
            raise _Bad("date-future", "the date lies in the future")
        return d
    s = str(v).strip()
    if col.pattern and not re.fullmatch(col.pattern, s):
        raise _Bad("bad-format", f"must be {col.allowed_text()}")
    return s


# --- the checks -----------------------------------------------------------------------------

def validate_file(path: str | Path, mapping: object = None,
                  redcap_dictionary: str | Path | None = None,
                  sheet: str | None = None) -> ValidationReport:
    """Validate a registry file against :data:`esi.schema.SCHEMA`.

    The file is opened read-only and read once; its bytes are never written.

    Parameters
    ----------
    path
        CSV (UTF-8), Parquet or Excel (.xlsx) file; with ``redcap_dictionary``, a REDCap
        records export.
    mapping
        A YAML mapping file (or :class:`esi.imports.Mapping`) from the file's own column names
        and codes to the schema's (see ``params/mapping.example.yaml``); its ``delimiter``,
        ``decimal`` and ``sheet`` say how to read the file.
    redcap_dictionary
        The REDCap data dictionary CSV that goes with a records export.
    sheet
        The sheet of an Excel file to read; default the mapping's ``sheet``, else the first
        (:attr:`ValidationReport.sheet_note` then says which was read when there are several).

    Returns
    -------
    ValidationReport
        Every problem found, and the typed registry when there is none.
    """
    p = Path(path)
    label = str(path)
    if not p.exists():
        return ValidationReport(label, None, 0, (Problem(label, "no-file", "no such file"),))
    if p.is_dir():
        return ValidationReport(label, None, 0, (Problem(label, "no-file",
                                                         "is a folder, not a file"),))
    try:
        with open(p, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return ValidationReport(label, None, 0,
                                (Problem(label, "unreadable", f"cannot read: {exc}"),))
    digest = hashlib.sha256(data).hexdigest()
    if mapping is not None or redcap_dictionary is not None:
        from esi.imports import load_table

        result = load_table(p, mapping=mapping, redcap_dictionary=redcap_dictionary,
                            label=label, sheet=sheet)
        table, problems = result.table, list(result.problems)
    else:
        table, problems = read_raw(p, data, label, sheet=sheet)
    if table is None:
        return ValidationReport(label, digest, 0, tuple(problems))
    more, registry = validate_frame(table, label)
    problems += more
    problems.sort(key=lambda q: (q.line or 0))
    return ValidationReport(label, digest, len(table.rows), tuple(problems),
                            registry if not problems else None, table.sheet, table.sheets)


def check_run_registry(data_path: str | Path, mapping: str | Path | None = None,
                       sheet: str | None = None, prog: str = "esi run") -> int:
    """Validate the registry a command is about to analyse, before anything runs.

    Prints to standard error every problem (one line each, as ``esi validate`` does) and a
    closing line, or for a clean workbook of several sheets which sheet is read; a bad
    mapping file is one line naming the file, key and rule. Nothing is echoed beyond the
    problems' short cell excerpts.

    Returns
    -------
    int
        0 when the registry is valid, 2 (bad input) otherwise.
    """
    import sys

    path = Path(data_path)
    if not path.is_file():
        print(printable(f"{prog}: data_path: no such registry file: {path}"), file=sys.stderr)
        return 2
    try:
        report = validate_file(path, mapping=mapping, sheet=sheet)
    except ValueError as exc:  # a bad mapping file
        print(printable(f"{prog}: {exc}"), file=sys.stderr)
        return 2
    if not report.ok:
        for prob in report.problems:
            print(prob, file=sys.stderr)
        print(printable(f"{prog}: {path} has {len(report.problems)} problem(s); nothing was "
                        "run (see `esi validate`)"), file=sys.stderr)
        return 2
    if report.sheet_note:
        print(report.sheet_note, file=sys.stderr)
    return 0


def validate_frame(table: RawTable, label: str) -> tuple[list[Problem], pd.DataFrame | None]:
    """Check a :class:`RawTable` cell by cell and across columns.

    Returns the problems and the typed registry (``None`` when a required column is missing).
    """
    problems: list[Problem] = []
    header = table.header
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.append(Problem(label, "duplicate-column",
                                    "the column appears more than once in the header",
                                    line=1, column=name))
        seen.add(name)
    missing_cols = [c for c in SCHEMA if c not in seen]
    for c in missing_cols:
        problems.append(Problem(label, "missing-column", "required column is absent",
                                column=c))
    from esi.deid import IDENTIFIER_KINDS, find_identifiers

    found = find_identifiers(table).drop_duplicates("column").set_index("column")["kind"]
    for name in header:
        if name in SCHEMA:
            continue
        if name in found.index:
            problems.append(Problem(label, "direct-identifier",
                                    "column looks like a direct identifier "
                                    f"({IDENTIFIER_KINDS[found[name]]}); remove it before "
                                    "analysis", column=name, privacy=True))
        else:
            problems.append(Problem(label, "unknown-column",
                                    "not in the data dictionary (data/README.md)", column=name))
    idx = {name: i for i, name in enumerate(header) if name in SCHEMA}
    if "patient_id" in found.index:
        problems.append(Problem(label, "direct-identifier",
                                f"patient_id values look like {IDENTIFIER_KINDS[found['patient_id']]}"
                                "; use study pseudonyms", column="patient_id", privacy=True))

    parsed: dict[str, list[object]] = {c: [] for c in idx}
    ids: list[str | None] = []
    for r, line in zip(table.rows, table.lines, strict=True):
        pid = None
        if "patient_id" in idx and not _is_missing(r[idx["patient_id"]]):
            pid = str(r[idx["patient_id"]]).strip()
        ids.append(pid)
        for name, i in idx.items():
            col = SCHEMA[name]
            v = r[i]
            if _is_missing(v):
                if col.required:
                    problems.append(Problem(label, "missing-value", "a value is required",
                                            line=line, patient_id=pid, column=name, value=""))
                parsed[name].append(None)
                continue
            try:
                parsed[name].append(_parse_cell(col, v))
            except _Bad as bad:
                problems.append(Problem(label, bad.rule, bad.message, line=line,
                                        patient_id=pid, column=name, value=_short(v)))
                parsed[name].append(_INVALID)
    if "patient_id" in idx:
        first: dict[str, int] = {}
        for pid, line in zip(ids, table.lines, strict=True):
            if pid is None:
                continue
            if pid in first:
                problems.append(Problem(label, "duplicate-id",
                                        f"patient_id already used on line {first[pid]}",
                                        line=line, patient_id=pid, column="patient_id",
                                        value=pid))
            else:
                first[pid] = line
    problems += _cross_rules(parsed, ids, table.lines, label)
    if missing_cols:
        return problems, None
    return problems, _typed(parsed, ids)


class _InvalidType:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID = _InvalidType()


def _cross_rules(parsed: dict[str, list[object]], ids: list[str | None], lines: list[int],
                 label: str) -> list[Problem]:
    out: list[Problem] = []

    def get(name: str, k: int) -> object:
        vals = parsed.get(name)
        if vals is None:
            return _INVALID
        return vals[k]

    def ok(v: object) -> bool:
        return v is not None and v is not _INVALID

    mri_cols = ("nerve_root_compression", "disc_herniation_grade", "canal_stenosis_grade",
                "foraminal_stenosis_grade", "degenerative_grade", "pathology_concordant")
    for k, line in enumerate(lines):
        pid = ids[k]

        def add(rule: str, msg: str, column: str, value: object = None,
                _line: int = line, _pid: str | None = pid) -> None:
            out.append(Problem(label, rule, msg, line=_line, patient_id=_pid, column=column,
                               value=None if value is None else _as_written(value)))

        opioid, mme = get("opioid_use", k), get("baseline_mme", k)
        if ok(opioid) and ok(mme):
            if opioid is False and mme > 0:
                add("mme-without-opioid", "baseline_mme is above 0 but opioid_use is false",
                    "baseline_mme", mme)
            if opioid is True and mme == 0:
                add("mme-without-opioid", "opioid_use is true but baseline_mme is 0",
                    "baseline_mme", mme)
        src, blind = get("source_study", k), get("mri_blinded_arm", k)
        if ok(src):
            if src == "mri_rct" and blind is None:
                add("mri-blinded-arm", "mri_rct patients need mri_blinded_arm",
                    "mri_blinded_arm", "")
            if src != "mri_rct" and ok(blind):
                add("mri-blinded-arm", f"filled although source_study is {src!r}",
                    "mri_blinded_arm", blind)
        avail = get("mri_available", k)
        if ok(avail):
            for c in mri_cols:
                v = get(c, k)
                if avail is False and ok(v):
                    add("mri-missing-findings", "mri_available is false, so this MRI "
                        "finding must be empty", c, v)
                if avail is True and v is None:
                    add("mri-missing-findings", "mri_available is true, so this MRI finding "
                        "is required", c, "")
            if avail is False and ok(get("mri_levels", k)):
                add("mri-missing-findings", "mri_available is false, so mri_levels must be "
                    "empty", "mri_levels", get("mri_levels", k))
        comp, hern = get("nerve_root_compression", k), get("disc_herniation_grade", k)
        canal, foram = get("canal_stenosis_grade", k), get("foraminal_stenosis_grade", k)
        degen, conc = get("degenerative_grade", k), get("pathology_concordant", k)
        if all(ok(v) for v in (comp, hern, canal, foram)):
            pathology = comp is True or hern >= 2 or canal >= 2 or foram >= 2
            if conc is True and not pathology:
                add("concordant-without-pathology", "pathology_concordant is true but the "
                    "MRI shows no root compression, no herniation grade 2+ and no stenosis "
                    "grade 2+", "pathology_concordant", conc)
            if ok(degen):
                nothing = (comp is False and hern == 0 and canal == 0 and foram == 0
                           and degen == 0)
                levels = get("mri_levels", k)
                if nothing and ok(levels):
                    add("levels-without-finding", "every MRI grade is 0 and there is no root "
                        "compression, yet levels with a finding are listed", "mri_levels",
                        levels)
        for t in FOLLOW_UP_WEEKS:
            missed = get(f"visit_missed_{t}w", k)
            cols = [c.name for c in follow_up_columns(t)
                    if c.name != f"visit_missed_{t}w"
                    and not c.name.startswith("additional_intervention_days")]
            if missed is True:
                for c in cols + [f"additional_intervention_days_{t}w"]:
                    if ok(get(c, k)):
                        add("missed-visit-empty", f"the {t}-week visit was missed, so this "
                            "must be empty", c, get(c, k))
            elif missed is False:
                for c in cols:
                    if get(c, k) is None:
                        add("missed-visit-empty", f"the {t}-week visit took place, so a value "
                            "is required", c, "")
                inter, days = (get(f"additional_intervention_{t}w", k),
                               get(f"additional_intervention_days_{t}w", k))
                if inter is True and days is None:
                    add("intervention-days", "additional_intervention is true, so its days "
                        "are required", f"additional_intervention_days_{t}w", "")
                if inter is False and ok(days):
                    add("intervention-days", "additional_intervention is false, so its days "
                        "must be empty", f"additional_intervention_days_{t}w", days)
        i4, i12 = get("additional_intervention_4w", k), get("additional_intervention_12w", k)
        if i4 is True and i12 is False:
            add("intervention-cumulative", "an intervention before the 4-week visit is also "
                "before the 12-week visit", "additional_intervention_12w", i12)
        d4, d12 = (get("additional_intervention_days_4w", k),
                   get("additional_intervention_days_12w", k))
        if i4 is True and i12 is True and ok(d4) and ok(d12) and d4 != d12:
            add("intervention-cumulative", f"the first intervention was on day {d4} "
                "(4-week visit), so the 12-week days must be the same",
                "additional_intervention_days_12w", d12)
    return out


def _typed(parsed: dict[str, list[object]], ids: list[str | None]) -> pd.DataFrame:
    values = {name: [None if v is _INVALID else v for v in vals]
              for name, vals in parsed.items() if name != "patient_id"}
    return typed_registry(values, [i if i is not None else "" for i in ids])


def typed_registry(values: dict[str, list[object]], ids: list[str]) -> pd.DataFrame:
    """Build the typed registry table from parsed cell values.

    Parameters
    ----------
    values
        Schema column name -> one parsed value per patient (``None`` when missing).
    ids
        The patient ids, in the same order.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``patient_id``, columns in data-dictionary order, typed as
        :func:`esi.io.read_registry` documents (``Int64``, ``float64``, ``boolean``,
        ``datetime64``, ``str``).
    """
    cols: dict[str, pd.Series] = {}
    for name, vals in values.items():
        dtype = SCHEMA[name].dtype
        if dtype == "integer":
            s = pd.Series(vals, dtype="Int64")
        elif dtype == "number":
            s = pd.Series([np.nan if v is None else v for v in vals], dtype="float64")
        elif dtype == "boolean":
            s = pd.Series(vals, dtype="boolean")
        elif dtype == "date":
            s = pd.to_datetime(pd.Series(vals, dtype=object))
        else:
            s = pd.Series(vals, dtype="str")
        cols[name] = s
    frame = pd.DataFrame(cols)
    frame.index = pd.Index(ids, name="patient_id", dtype="str")
    return frame[[c for c in SCHEMA if c in frame.columns]]
