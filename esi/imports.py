"""Importing a research group's own registry: file formats, REDCap, and a column mapping.

A registry export rarely uses the schema's names and codes. A YAML *mapping*
(``params/mapping.example.yaml``) says how the user's columns and codes translate;
:func:`load_mapping` reads and checks it, :func:`apply_mapping` applies it to a table read by
:func:`esi.validate.read_raw` (CSV, Parquet, Excel) or :func:`read_redcap` (a REDCap records
export with its data dictionary), and :func:`esi.validate.validate_frame` then checks the
result against the data dictionary. :func:`load_table` does all of it for one input.

Inputs are opened read-only and read once; their bytes are never written.
:func:`input_fingerprints` records their SHA-256 so a run can show it left them unchanged.

The mapping file
----------------
Keys (all optional; any other key is an error)::

    columns:            # user column -> schema column (one user column per schema column)
      record_id: patient_id
      gender: sex
    codes:              # schema column -> {user code -> schema code}
      sex: {Female: female, Male: male}
      boolean: {Y: "true", N: "false"}   # every boolean column without its own entry
    drop: [notes]       # user columns to ignore (never a direct identifier, see below)
    date_format: "%d/%m/%Y"   # strptime format of the user's dates (converted to ISO)
    missing: ["-99"]    # extra cell texts meaning missing, in every column
    redcap_dictionary: ../exports/dictionary.csv   # the input is a REDCap records export
    delimiter: ";"      # field delimiter of a CSV file (default ","), e.g. European Excel
    decimal: ","        # decimal mark of the numbers (default "."), e.g. 12,5
    sheet: Patients     # the sheet of an Excel file (default the first; --sheet wins)

Every scalar is read as text (YAML's ``yes``/``no``/``1`` stay strings), YAML anchors
(``&grades`` / ``*grades``) may share a code list between columns (flat only: an alias may not
stand inside an anchored value, and aliases may repeat at most 10,000 values in all, so that no
mapping can expand into a huge one), and a key written twice is an error. Columns whose names already are schema names need no entry. Codes are matched exactly
(case and spaces inside the code count; surrounding spaces do not). When a column has codes,
every non-missing value must have an entry.

Direct identifiers are never dropped silently: ``drop`` and ``columns`` refuse a column whose
*name* suggests an identifier (:func:`esi.deid.identifier_by_name`) when the mapping is loaded,
and :func:`apply_mapping` reports a dropped column whose *values* look like identifiers
(:func:`esi.deid.identifier_by_content`) as a privacy problem. Such columns must be removed
from the export itself (REDCap: export with "remove all tagged Identifier fields"), so that
no file holding them sits in ``data/raw/``.
"""

from __future__ import annotations

import collections.abc as _abc
import datetime as _dt
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from esi.deid import IDENTIFIER_KINDS, find_identifiers, identifier_by_name
from esi.params import FlatAliasLoader, YamlFileError, read_yaml
from esi.schema import SCHEMA
from esi.text import excerpt, printable
from esi.validate import Problem, RawTable, read_raw

__all__ = [
    "Mapping",
    "MAPPING_KEYS",
    "load_mapping",
    "apply_mapping",
    "read_redcap",
    "ImportResult",
    "load_table",
    "input_fingerprints",
    "changed_inputs",
    "REDCAP_SPECIAL_COLUMNS",
]

#: The keys a mapping file may hold.
MAPPING_KEYS = ("columns", "codes", "drop", "date_format", "missing", "redcap_dictionary",
                "delimiter", "decimal", "sheet")
#: Field delimiters a mapping's ``delimiter`` may name.
DELIMITERS = (",", ";", "\t", "|")
#: Name under ``codes:`` for the code list shared by every boolean column.
BOOLEAN_CODES = "boolean"


@dataclass(frozen=True)
class Mapping:
    """A checked column mapping (see the module docstring for the file format).

    Attributes
    ----------
    source : str
        The mapping file, as given (named in every problem the mapping causes).
    columns : dict of str to str
        User column -> schema column.
    codes : dict of str to dict of str to str
        Schema column (or ``"boolean"`` for every boolean column without its own entry) ->
        {user code -> schema code}.
    drop : tuple of str
        User columns removed before validation.
    date_format : str or None
        ``strptime`` format of the user's dates; ``None`` for ISO dates.
    missing : tuple of str
        Cell texts that mean missing, beyond the schema's empty cell and ``NA``.
    redcap_dictionary : pathlib.Path or None
        The REDCap data dictionary (resolved from the mapping file's folder) when the input
        is a REDCap records export.
    delimiter : str
        Field delimiter of a CSV input (one of :data:`DELIMITERS`).
    decimal : str
        Decimal mark of the numbers, ``"."`` or ``","`` (``12,5`` is then read as 12.5 in the
        number and integer columns).
    sheet : str or None
        The sheet of an Excel input; ``None`` for the first.
    """

    source: str
    columns: dict[str, str] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    date_format: str | None = None
    missing: tuple[str, ...] = ()
    redcap_dictionary: Path | None = None
    delimiter: str = ","
    decimal: str = "."
    sheet: str | None = None

    def code_map(self, schema_column: str) -> tuple[str, dict[str, str]] | None:
        """The codes that apply to ``schema_column``: ``(key under codes:, map)`` or ``None``."""
        if schema_column in self.codes:
            return schema_column, self.codes[schema_column]
        col = SCHEMA.get(schema_column)
        if col is not None and col.dtype == "boolean" and BOOLEAN_CODES in self.codes:
            return BOOLEAN_CODES, self.codes[BOOLEAN_CODES]
        return None


# --- loading the mapping --------------------------------------------------------------------

class _DuplicateKey(Exception):
    def __init__(self, key: str, first: int, second: int):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _StrictLoader(FlatAliasLoader):
    """Every scalar a string; a key written twice in one mapping is an error; aliases flat
    only (:class:`esi.params.FlatAliasLoader`)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict:
    out: dict = {}
    lines: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain text", key_node.start_mark)
        if key in out:
            raise _DuplicateKey(key, lines[key], key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _fail(src: str, key: str, rule: str) -> ValueError:
    return ValueError(printable(f"{src}: {key}: {rule}"))


def _str_list(src: str, key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(src, key, "must be a list of texts")
    seen: set[str] = set()
    for v in value:
        if v in seen:
            raise _fail(src, key, f"{v!r} is listed twice")
        seen.add(v)
    return tuple(value)


def _check_target_code(src: str, key: str, schema_column: str, code: str) -> None:
    if schema_column == BOOLEAN_CODES:
        dtype, allowed = "boolean", ()
    else:
        col = SCHEMA[schema_column]
        dtype, allowed = col.dtype, col.allowed
    if dtype == "category" and code not in allowed:
        raise _fail(src, key, f"{code!r} is not an allowed code of {schema_column!r} "
                              f"({', '.join(allowed)})")
    if dtype == "boolean" and code not in ("true", "false"):
        raise _fail(src, key, f"{code!r} is not a boolean code; use \"true\" or \"false\"")
    if dtype in ("integer", "number"):
        try:
            x = float(code)
        except ValueError:
            raise _fail(src, key, f"{code!r} is not a number, as {schema_column!r} "
                                  "needs") from None
        if not math.isfinite(x) or (dtype == "integer" and not x.is_integer()):
            raise _fail(src, key, f"{code!r} is not a {'whole ' if dtype == 'integer' else ''}"
                                  f"number, as {schema_column!r} needs")
    if dtype == "date":
        raise _fail(src, key, "codes cannot target a date column; use date_format")


def load_mapping(path: str | os.PathLike[str]) -> Mapping:
    """Read and check a YAML column mapping.

    Parameters
    ----------
    path
        The mapping file (see the module docstring for its keys).

    Returns
    -------
    Mapping
        The checked mapping.

    Raises
    ------
    ValueError
        ``"<file>: <key>: <rule>"`` for every kind of mistake: no such file, bad YAML, a key
        written twice, an unknown key, a user column mapped to something that is not a schema
        column, two user columns mapped to one schema column, a code that the schema column
        does not allow, a column both mapped and dropped, a column whose name suggests a direct
        identifier in ``columns`` or ``drop``, a ``date_format`` that does not read back a full
        date, bytes that are not UTF-8 or an alias that nests (with the line), a
        ``delimiter``, ``decimal`` or ``sheet`` that is not one of the allowed texts.
    """
    src = str(path)
    p = Path(path)
    if not p.is_file():
        raise _fail(src, "(file)", "no such mapping file")
    try:
        doc = read_yaml(p, "mapping file", loader=_StrictLoader)
    except _DuplicateKey as dup:
        raise _fail(src, dup.key, f"key written twice (lines {dup.first} and {dup.second})"
                    ) from None
    except YamlFileError as exc:
        raise _fail(src, "(file)", exc.rule + (f" ({exc.where})" if exc.where else "")
                    ) from None
    if doc is None:
        raise _fail(src, "(file)", "the mapping is empty; expected some of the keys "
                    + ", ".join(MAPPING_KEYS))
    if not isinstance(doc, dict):
        raise _fail(src, "(file)", "the mapping must be a set of `key: value` entries")
    for key in doc:
        if key not in MAPPING_KEYS:
            raise _fail(src, key, "unknown key; allowed keys are " + ", ".join(MAPPING_KEYS))

    columns_in = doc.get("columns", {}) or {}
    if not isinstance(columns_in, dict):
        raise _fail(src, "columns", "must map user column names to schema column names")
    columns: dict[str, str] = {}
    target_of: dict[str, str] = {}
    for user, target in columns_in.items():
        key = f"columns.{user}"
        if not isinstance(target, str):
            raise _fail(src, key, "must be a schema column name")
        if target not in SCHEMA:
            raise _fail(src, key, f"{target!r} is not a column of the registry schema "
                                  "(data/README.md)")
        if target in target_of:
            raise _fail(src, key, f"{target_of[target]!r} and {user!r} both map to schema "
                                  f"column {target!r}; map one user column to each schema "
                                  "column")
        kind = identifier_by_name(user)
        if kind is not None:
            raise _fail(src, key, f"the name suggests {IDENTIFIER_KINDS[kind]}; a direct "
                                  "identifier cannot be imported: remove the column from the "
                                  "export")
        target_of[target] = user
        columns[user] = target

    codes_in = doc.get("codes", {}) or {}
    if not isinstance(codes_in, dict):
        raise _fail(src, "codes", "must map schema columns to {user code: schema code}")
    codes: dict[str, dict[str, str]] = {}
    for target, table in codes_in.items():
        key = f"codes.{target}"
        if target != BOOLEAN_CODES and target not in SCHEMA:
            raise _fail(src, key, f"{target!r} is not a column of the registry schema "
                                  f"(data/README.md) nor {BOOLEAN_CODES!r}")
        if not isinstance(table, dict) or not table:
            raise _fail(src, key, "must map user codes to schema codes")
        cm: dict[str, str] = {}
        for user_code, code in table.items():
            ckey = f"{key}.{user_code}"
            if not isinstance(code, str):
                raise _fail(src, ckey, "must be one schema code")
            _check_target_code(src, ckey, target, code)
            cm[user_code.strip()] = code
        codes[target] = cm

    drop = _str_list(src, "drop", doc.get("drop", []) or [])
    for d in drop:
        if d in columns:
            raise _fail(src, f"drop.{d}", "the column is also mapped under columns; drop it "
                                          "or map it, not both")
        kind = identifier_by_name(d)
        if kind is not None:
            raise _fail(src, f"drop.{d}", f"the name suggests {IDENTIFIER_KINDS[kind]}; a "
                                          "direct identifier is never dropped silently: "
                                          "remove the column from the export")

    date_format = doc.get("date_format")
    if date_format is not None:
        if not isinstance(date_format, str) or "%" not in date_format:
            raise _fail(src, "date_format", "must be a strptime format such as \"%d/%m/%Y\"")
        probe = _dt.datetime(2001, 11, 23)
        try:
            back = _dt.datetime.strptime(probe.strftime(date_format), date_format)
        except ValueError as exc:
            raise _fail(src, "date_format", f"{date_format!r} is not a usable strptime "
                                            f"format: {exc}") from None
        if back.date() != probe.date():
            raise _fail(src, "date_format", f"{date_format!r} does not hold day, month and "
                                            "year")

    missing = _str_list(src, "missing", doc.get("missing", []) or [])
    missing = tuple(m.strip() for m in missing)

    redcap = doc.get("redcap_dictionary")
    redcap_path = None
    if redcap is not None:
        if not isinstance(redcap, str) or not redcap.strip():
            raise _fail(src, "redcap_dictionary", "must be the path of the REDCap data "
                                                  "dictionary (CSV)")
        rp = Path(os.path.expanduser(redcap))
        redcap_path = rp if rp.is_absolute() else (p.parent / rp).resolve()

    delimiter = doc.get("delimiter", ",")
    if delimiter not in DELIMITERS:
        raise _fail(src, "delimiter", "must be one of "
                    + ", ".join(repr(d) for d in DELIMITERS) + " (one character)")
    decimal = doc.get("decimal", ".")
    if decimal not in (".", ","):
        raise _fail(src, "decimal", "must be \".\" or \",\"")
    if decimal == "," and delimiter == ",":
        raise _fail(src, "decimal", "a decimal comma needs another field delimiter, e.g. "
                                    "delimiter: \";\"")
    sheet = doc.get("sheet")
    if sheet is not None and (not isinstance(sheet, str) or not sheet):
        raise _fail(src, "sheet", "must be the name of a sheet of the Excel file")

    return Mapping(source=src, columns=columns, codes=codes, drop=drop,
                   date_format=date_format, missing=missing, redcap_dictionary=redcap_path,
                   delimiter=delimiter, decimal=decimal, sheet=sheet)


# --- applying it ----------------------------------------------------------------------------

def _is_missing(v: object, extra: tuple[str, ...] = ()) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float | np.floating) and math.isnan(v):
        return True
    if isinstance(v, str) and (v.strip() in ("", "NA") or v.strip() in extra):
        return True
    if extra and not isinstance(v, str) and _cell_text(v) in extra:
        return True
    return False


def _cell_text(v: object) -> str:
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, pd.Timestamp | _dt.datetime):
        return pd.Timestamp(v).isoformat()
    return str(v).strip()


def _short(v: object) -> str:
    return excerpt(v, escape=False)


_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")


def apply_mapping(table: RawTable, mapping: Mapping,
                  label: str) -> tuple[RawTable, list[Problem]]:
    """Rename and recode a raw table into the schema's names and codes.

    Parameters
    ----------
    table
        As read by :func:`esi.validate.read_raw` or :func:`read_redcap`.
    mapping
        From :func:`load_mapping`.
    label
        The input file as the user named it (the ``file`` of every problem).

    Returns
    -------
    (RawTable, list of Problem)
        The table with dropped columns removed, user columns renamed, the ``missing`` texts
        emptied, codes translated and dates in ISO form (cells otherwise as read: strings or
        Python objects; lines unchanged), and the problems found, in file order:

        * ``mapped-column-missing`` / ``dropped-column-missing`` - the mapping names a column
          the file lacks;
        * ``mapping-collision`` - a user column is mapped onto a schema name the file already
          has;
        * ``direct-identifier`` (``privacy=True``) - a dropped column whose values look like
          direct identifiers (the column is left out of the table all the same);
        * ``unmapped-code`` - a value with no entry in the column's codes (left as read, so
          validation reports it against the schema too);
        * ``date-format`` - a date that does not match ``date_format`` (left as read).

        With ``decimal: ","`` a text such as ``12,5`` in a number or integer column becomes
        ``12.5`` before validation.

    Notes
    -----
    The table's bytes are never written; the returned table is a new object.
    """
    if not isinstance(table, RawTable):
        raise ValueError(f"table must be an esi.validate.RawTable, got {type(table).__name__}")
    if not isinstance(mapping, Mapping):
        raise ValueError(f"mapping must be an esi.imports.Mapping, got "
                         f"{type(mapping).__name__}")
    src = mapping.source
    header = list(table.header)
    present = set(header)
    problems: list[Problem] = []
    for user, target in mapping.columns.items():
        if user not in present:
            problems.append(Problem(label, "mapped-column-missing",
                                    f"{src} maps {user!r} to {target!r}, but the file has no "
                                    f"column {user!r}", column=user))
        elif target in present and target != user and target not in mapping.columns:
            problems.append(Problem(label, "mapping-collision",
                                    f"{src} maps {user!r} to {target!r}, but the file already "
                                    f"has a column {target!r}; drop one of them", column=target))
    dropped: set[str] = set()
    # Every column of the file is judged as it is in the file, dropped ones included (mapped
    # ones are judged again under their schema names by esi.validate); ages are counted to the
    # column mapped onto procedure_date.
    target_of = {t: u for u, t in mapping.columns.items()}
    found = find_identifiers(table, reference_date=target_of.get("procedure_date"),
                             id_column=target_of.get("patient_id", "patient_id"))
    found = found.drop_duplicates("column").set_index("column")
    for d in mapping.drop:
        if d not in present:
            problems.append(Problem(label, "dropped-column-missing",
                                    f"{src} drops {d!r}, but the file has no such column",
                                    column=d))
            continue
        dropped.add(d)
        if d in found.index:
            rule = found.loc[d, "evidence"]
            problems.append(Problem(label, "direct-identifier",
                                    f"listed under drop: in {src}, but its values look like "
                                    f"{IDENTIFIER_KINDS[found.loc[d, 'kind']]} ({rule}); a "
                                    "direct identifier is never dropped silently: remove the "
                                    "column from the export", column=d, privacy=True))
    keep = [i for i, h in enumerate(header) if h not in dropped]
    new_header = [mapping.columns.get(header[i], header[i]) for i in keep]
    rows = [[r[i] for i in keep] for r in table.rows]
    extra = mapping.missing
    if extra:
        for r in rows:
            for j, v in enumerate(r):
                if _is_missing(v, extra) and not _is_missing(v):
                    r[j] = ""
    pid_col = new_header.index("patient_id") if "patient_id" in new_header else None

    def pid_of(r: list[object]) -> str | None:
        if pid_col is None or _is_missing(r[pid_col]):
            return None
        return _cell_text(r[pid_col])

    user_name = {target: user for user, target in mapping.columns.items()}
    origin = [header[i] for i in keep]
    for j, name in enumerate(new_header):
        if name not in SCHEMA:
            continue
        if name in user_name and origin[j] != user_name[name]:
            continue  # the file's own column of that name: a mapping-collision, left as read
        was = user_name.get(name)
        where = f" (user column {was!r})" if was and was != name else ""
        cm = mapping.code_map(name)
        if cm is not None:
            key, codes = cm
            for r, line in zip(rows, table.lines, strict=True):
                v = r[j]
                if _is_missing(v):
                    continue
                t = _cell_text(v)
                if t in codes:
                    r[j] = codes[t]
                else:
                    problems.append(Problem(
                        label, "unmapped-code", f"no entry for this value under "
                        f"codes.{key} of {src}{where}", line=line, patient_id=pid_of(r),
                        column=name, value=_short(t)))
        if SCHEMA[name].dtype in ("number", "integer") and mapping.decimal == ",":
            for r in rows:
                v = r[j]
                if isinstance(v, str) and _DECIMAL_COMMA.fullmatch(v.strip()):
                    r[j] = v.strip().replace(",", ".")
        if SCHEMA[name].dtype == "date" and mapping.date_format:
            for r, line in zip(rows, table.lines, strict=True):
                v = r[j]
                if _is_missing(v):
                    continue
                if isinstance(v, _dt.datetime | pd.Timestamp | _dt.date):
                    r[j] = pd.Timestamp(v).date().isoformat()
                    continue
                t = _cell_text(v)
                try:
                    r[j] = _dt.datetime.strptime(t, mapping.date_format).date().isoformat()
                except ValueError:
                    problems.append(Problem(
                        label, "date-format", f"does not match date_format "
                        f"{mapping.date_format!r} of {src}{where}", line=line,
                        patient_id=pid_of(r), column=name, value=_short(t)))
    problems.sort(key=lambda q: q.line or 0)
    return RawTable(new_header, rows, list(table.lines), table.sheet, table.sheets), problems


# --- REDCap ---------------------------------------------------------------------------------

#: Columns REDCap adds to a records export: how :func:`read_redcap` treats each.
REDCAP_SPECIAL_COLUMNS = {
    "redcap_event_name": "rows of one record's events are merged into one row",
    "redcap_repeat_instrument": "rows of repeating instruments are refused",
    "redcap_repeat_instance": "rows of repeating instruments or events are refused",
    "redcap_data_access_group": "kept as a column (map it, e.g. to site, or drop it)",
    "redcap_survey_identifier": "kept as a column (drop it)",
}
_DICT_ALIASES = {
    "field": ("Variable / Field Name", "field_name"),
    "form": ("Form Name", "form_name"),
    "type": ("Field Type", "field_type"),
    "label": ("Field Label", "field_label"),
    "choices": ("Choices, Calculations, OR Slider Labels", "select_choices_or_calculations"),
    "validation": ("Text Validation Type OR Show Slider Number",
                   "text_validation_type_or_show_slider_number"),
    "identifier": ("Identifier?", "identifier"),
}
_CHOICE_TYPES = ("radio", "dropdown")
_FIXED_LABELS = {"yesno": {"1": "Yes", "0": "No"}, "truefalse": {"1": "True", "0": "False"}}
_NO_DATA_TYPES = ("descriptive",)


@dataclass(frozen=True)
class _Field:
    name: str
    form: str
    type: str
    choices: dict[str, str]
    identifier: bool


def _parse_choices(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split("|"):
        item = item.strip()
        if not item:
            continue
        code, _, lab = item.partition(",")
        out[code.strip()] = lab.strip()
    return out


def _checkbox_suffix(code: str) -> str:
    return re.sub(r"[^a-z0-9]", "_", code.lower())


def _read_bytes(path: Path, label: str) -> tuple[bytes | None, list[Problem]]:
    if not path.is_file():
        return None, [Problem(label, "no-file", "no such file")]
    try:
        with open(path, "rb") as fh:  # read-only
            return fh.read(), []
    except OSError as exc:
        return None, [Problem(label, "unreadable", f"cannot read: {exc}")]


def _read_dictionary(path: Path, label: str) -> tuple[dict[str, _Field] | None,
                                                       list[Problem]]:
    data, problems = _read_bytes(path, label)
    if data is None:
        return None, problems
    table, problems = read_raw(path, data, label)
    if table is None or not table.rows:
        return None, problems or [Problem(label, "redcap-dictionary",
                                          "the data dictionary holds no field")]
    where: dict[str, int] = {}
    for key, names in _DICT_ALIASES.items():
        for n in names:
            if n in table.header:
                where[key] = table.header.index(n)
                break
    lacking = [_DICT_ALIASES[k][0] for k in ("field", "form", "type", "choices")
               if k not in where]
    if lacking:
        return None, problems + [Problem(label, "redcap-dictionary",
                                         "not a REDCap data dictionary: no column "
                                         + ", ".join(repr(c) for c in lacking), line=1)]
    fields: dict[str, _Field] = {}
    for r, line in zip(table.rows, table.lines, strict=True):
        name = str(r[where["field"]]).strip()
        ftype = str(r[where["type"]]).strip().lower()
        choices_text = str(r[where["choices"]]).strip()
        ident = "identifier" in where and str(r[where["identifier"]]).strip().lower() == "y"
        choices: dict[str, str] = {}
        if ftype in _CHOICE_TYPES or ftype == "checkbox":
            choices = _parse_choices(choices_text)
            if not choices:
                problems.append(Problem(label, "redcap-dictionary",
                                        f"{ftype} field without choices", line=line,
                                        column=name))
        fields[name] = _Field(name, str(r[where["form"]]).strip(), ftype, choices, ident)
    return fields, problems


def read_redcap(records_path: str | os.PathLike[str],
                dictionary_path: str | os.PathLike[str], label: str | None = None,
                labels: bool = True, *, delimiter: str = ",",
                sheet: str | None = None) -> tuple[RawTable | None, list[Problem]]:
    """Read a REDCap records export (raw codes) with its data dictionary, read-only.

    Parameters
    ----------
    records_path
        The records export: CSV, "raw" (coded) values, one column per field, the record id
        first.
    dictionary_path
        The project's data dictionary CSV (standard columns ``"Variable / Field Name"``,
        ``"Form Name"``, ``"Field Type"``, ``"Choices, Calculations, OR Slider Labels"``,
        optional ``"Identifier?"``; the API's ``field_name``, ``form_name`` ... are read too).
    label
        Name of the records file in problems (default: ``str(records_path)``).
    labels
        Decode coded fields (below). ``False`` keeps REDCap's raw codes everywhere.
    delimiter, sheet
        How to read the records file (:func:`esi.validate.read_raw`).

    Returns
    -------
    (RawTable or None, list of Problem)
        One row per record, the record's line in the export as its line, cells as text.
        ``None`` when either file cannot be read.

    Notes
    -----
    * ``radio``/``dropdown`` codes become their labels (``"1"`` -> ``"Female"``); ``yesno``
      becomes ``Yes``/``No``; ``truefalse`` becomes ``True``/``False``; each checkbox column
      ``field___code`` keeps its name and becomes ``true``/``false``. A code missing from
      the dictionary is a ``redcap-unknown-code`` problem (the code is kept).
    * ``{form}_complete`` status columns are removed. ``redcap_data_access_group`` and
      ``redcap_survey_identifier`` and survey timestamps are kept (map or drop them).
    * A longitudinal export (``redcap_event_name``) is merged into one row per record: each
      field takes its one non-empty value across the record's events (a checkbox counts
      only in events whose form holds data); two different values are a
      ``redcap-event-conflict`` problem.
    * Rows of repeating instruments or events (``redcap_repeat_instrument`` /
      ``redcap_repeat_instance`` filled) do not fit one row per patient: each is a
      ``redcap-repeating`` problem and is left out.
    * A field the dictionary tags as an identifier (``Identifier?`` = ``y``) is a
      ``direct-identifier`` problem; a column the dictionary does not know is a
      ``redcap-unknown-field`` problem (kept).

    Both files are opened read-only and read once; their bytes are never written.
    """
    rpath, dpath = Path(records_path), Path(dictionary_path)
    label = str(records_path) if label is None else label
    dlabel = str(dictionary_path)
    fields, problems = _read_dictionary(dpath, dlabel)
    data, more = _read_bytes(rpath, label)
    problems += more
    if fields is None or data is None:
        return None, problems
    table, more = read_raw(rpath, data, label, delimiter=delimiter, sheet=sheet)
    problems += more
    if table is None:
        return None, problems
    header = table.header
    record_id = next(iter(fields))
    forms = {f.form for f in fields.values()}
    checkbox_of: dict[str, tuple[_Field, str]] = {}
    for f in fields.values():
        if f.type == "checkbox":
            for code, lab in f.choices.items():
                checkbox_of[f"{f.name}___{_checkbox_suffix(code)}"] = (f, lab)
    complete_cols = {f"{form}_complete" for form in forms}
    col_field: dict[str, _Field | None] = {}
    for name in header:
        if name in fields and fields[name].type != "checkbox":
            col_field[name] = fields[name]
        elif name in checkbox_of:
            col_field[name] = checkbox_of[name][0]
        else:
            col_field[name] = None
            if name in REDCAP_SPECIAL_COLUMNS or name in complete_cols or \
                    name.endswith("_timestamp"):
                continue
            problems.append(Problem(label, "redcap-unknown-field",
                                    f"not a field of the data dictionary {dlabel}", line=1,
                                    column=name))
    if record_id not in header:
        problems.append(Problem(label, "redcap-record-id",
                                f"the record id field {record_id!r} (first field of the "
                                "dictionary) is not in the export", line=1, column=record_id))
        return None, problems
    for name, f in col_field.items():
        if f is not None and f.identifier:
            problems.append(Problem(label, "direct-identifier",
                                    f"the data dictionary tags this field as an identifier "
                                    f"(Identifier? = y, field {f.name!r}); export with "
                                    "REDCap's de-identification options or remove the field",
                                    column=name, privacy=True))
    ix = {h: i for i, h in enumerate(header)}
    rid = ix[record_id]

    # Repeating instruments / events: refused row by row.
    rows, lines = [], []
    for r, line in zip(table.rows, table.lines, strict=True):
        rep = [r[ix[c]].strip() for c in ("redcap_repeat_instrument", "redcap_repeat_instance")
               if c in ix and r[ix[c]].strip()]
        if rep:
            problems.append(Problem(label, "redcap-repeating",
                                    "a row of a repeating instrument or event; the registry "
                                    "holds one row per patient: summarise the repeats to one "
                                    "value per patient and export without them",
                                    line=line, patient_id=r[rid].strip() or None,
                                    column="redcap_repeat_instrument", value=_short(rep[0])))
            continue
        rows.append(list(r))
        lines.append(line)

    # Longitudinal: merge each record's events.
    if "redcap_event_name" in ix:
        rows, lines = _merge_events(rows, lines, header, col_field, fields, rid, label,
                                    problems)

    # Decode codes and drop REDCap's bookkeeping columns.
    keep = [i for i, h in enumerate(header)
            if h not in complete_cols and h not in ("redcap_event_name",
                                                     "redcap_repeat_instrument",
                                                     "redcap_repeat_instance")]
    out_rows = []
    for r, line in zip(rows, lines, strict=True):
        for i, name in enumerate(header):
            f = col_field.get(name)
            v = r[i].strip()
            if f is None or not v or not labels:
                continue
            if name in checkbox_of:
                code_map = {"1": "true", "0": "false"}
            elif f.type in _CHOICE_TYPES:
                code_map = f.choices
            elif f.type in _FIXED_LABELS:
                code_map = _FIXED_LABELS[f.type]
            else:
                continue
            if v in code_map:
                r[i] = code_map[v]
            else:
                problems.append(Problem(label, "redcap-unknown-code",
                                        f"code not among the choices of {f.type} field "
                                        f"{f.name!r} in {dlabel}", line=line,
                                        patient_id=r[rid].strip() or None, column=name,
                                        value=_short(v)))
        out_rows.append([r[i] for i in keep])
    problems.sort(key=lambda q: q.line or 0)
    return RawTable([header[i] for i in keep], out_rows, lines, table.sheet,
                    table.sheets), problems


def _merge_events(rows: list[list[str]], lines: list[int], header: list[str],
                  col_field: dict[str, _Field | None], fields: dict[str, _Field], rid: int,
                  label: str, problems: list[Problem]) -> tuple[list[list[str]], list[int]]:
    order: list[str] = []
    by_record: dict[str, list[int]] = {}
    for k, r in enumerate(rows):
        key = r[rid].strip()
        if key not in by_record:
            order.append(key)
            by_record[key] = []
        by_record[key].append(k)
    skip = {"redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"}
    form_cols: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        f = col_field.get(name)
        if f is not None and i != rid:
            form_cols.setdefault(f.form, []).append(i)

    def form_present(r: list[str], form: str) -> bool:
        for i in form_cols.get(form, []):
            v = r[i].strip()
            f = col_field[header[i]]
            if f is not None and f.type == "checkbox":
                if v == "1":
                    return True
            elif v:
                return True
        done = f"{form}_complete"
        return done in header and r[header.index(done)].strip() not in ("", "0")

    merged, merged_lines = [], []
    for key in order:
        ks = by_record[key]
        if len(ks) == 1:
            merged.append(rows[ks[0]])
            merged_lines.append(lines[ks[0]])
            continue
        out = list(rows[ks[0]])
        for i, name in enumerate(header):
            if i == rid or name in skip:
                continue
            f = col_field.get(name)
            chosen: tuple[str, int] | None = None
            for k in ks:
                v = rows[k][i].strip()
                if not v:
                    continue
                if f is not None and f.type == "checkbox" and not form_present(rows[k],
                                                                                f.form):
                    continue
                if chosen is None:
                    chosen = (v, lines[k])
                elif v != chosen[0]:
                    problems.append(Problem(
                        label, "redcap-event-conflict",
                        f"record {_short(key)!r} has {_short(chosen[0])!r} in the event on "
                        f"line {chosen[1]} "
                        "and another value here; a field must be filled in one event only",
                        line=lines[k], patient_id=key or None, column=name, value=_short(v)))
            if chosen is not None:
                out[i] = chosen[0]
            elif f is not None and f.type == "checkbox":
                out[i] = next((rows[k][i].strip() for k in ks if rows[k][i].strip()), "")
            else:
                out[i] = ""
        merged.append(out)
        merged_lines.append(lines[ks[0]])
    return merged, merged_lines


# --- one call for an input ------------------------------------------------------------------

@dataclass(frozen=True)
class ImportResult:
    """An input read, mapped and fingerprinted (not yet validated).

    Attributes
    ----------
    table : RawTable or None
        In schema names and codes, ready for :func:`esi.validate.validate_frame`; ``None``
        when the input could not be read.
    problems : tuple of Problem
        Problems of reading and mapping.
    inputs : pandas.DataFrame
        The files read (records, REDCap dictionary, mapping): see :func:`input_fingerprints`.
    """

    table: RawTable | None
    problems: tuple[Problem, ...]
    inputs: pd.DataFrame = field(repr=False)


def load_table(path: str | os.PathLike[str], mapping: str | os.PathLike[str] | Mapping |
               None = None, redcap_dictionary: str | os.PathLike[str] | None = None,
               label: str | None = None, sheet: str | None = None) -> ImportResult:
    """Read one registry input (CSV, Parquet, Excel or REDCap) and apply a mapping.

    Parameters
    ----------
    path
        The registry file (for REDCap, the records export).
    mapping
        A :class:`Mapping`, the path of a mapping file, or ``None`` for a file already in
        schema names and codes.
    redcap_dictionary
        The REDCap data dictionary; default ``mapping.redcap_dictionary``. When neither is
        given the file is read as a plain table.
    label
        Name of the input in problems (default ``str(path)``).
    sheet
        The sheet of an Excel input; default the mapping's ``sheet``, else the first.

    Returns
    -------
    ImportResult
        The mapped table, the problems and the fingerprints of every file read.

    Raises
    ------
    ValueError
        When the mapping file is wrong (see :func:`load_mapping`).
    """
    label = str(path) if label is None else label
    m = load_mapping(mapping) if isinstance(mapping, str | os.PathLike) else mapping
    dictionary = redcap_dictionary if redcap_dictionary is not None else \
        (m.redcap_dictionary if m is not None else None)
    files = [Path(path)] + ([Path(dictionary)] if dictionary is not None else []) + \
        ([Path(m.source)] if m is not None else [])
    delimiter = m.delimiter if m is not None else ","
    if sheet is None and m is not None:
        sheet = m.sheet
    if dictionary is not None:
        table, problems = read_redcap(path, dictionary, label=label, delimiter=delimiter,
                                      sheet=sheet)
    else:
        p = Path(path)
        data, problems = _read_bytes(p, label)
        table = None
        if data is not None:
            table, more = read_raw(p, data, label, delimiter=delimiter, sheet=sheet)
            problems += more
    if table is not None and m is not None:
        table, more = apply_mapping(table, m, label)
        problems += more
    return ImportResult(table, tuple(problems),
                        input_fingerprints([f for f in files if f.is_file()]))


def input_fingerprints(paths: _abc.Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """SHA-256 and size of input files, read read-only.

    Returns
    -------
    pandas.DataFrame
        One row per path: ``path`` (absolute, as text), ``bytes``, ``sha256``.
    """
    rows = []
    for p in paths:
        q = Path(p).resolve()
        h = hashlib.sha256()
        n = 0
        with open(q, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
                n += len(chunk)
        rows.append({"path": str(q), "bytes": n, "sha256": h.hexdigest()})
    return pd.DataFrame(rows, columns=["path", "bytes", "sha256"])


def changed_inputs(before: pd.DataFrame) -> pd.DataFrame:
    """The inputs of ``before`` (from :func:`input_fingerprints`) whose bytes changed since.

    Returns
    -------
    pandas.DataFrame
        Columns ``path``, ``sha256_before``, ``sha256_after`` (``"(missing)"`` when the file
        is gone); empty when every input is unchanged.
    """
    rows = []
    for path, digest in zip(before["path"], before["sha256"], strict=True):
        if not Path(path).is_file():
            rows.append({"path": path, "sha256_before": digest, "sha256_after": "(missing)"})
            continue
        now = input_fingerprints([path])["sha256"].iloc[0]
        if now != digest:
            rows.append({"path": path, "sha256_before": digest, "sha256_after": now})
    return pd.DataFrame(rows, columns=["path", "sha256_before", "sha256_after"])
