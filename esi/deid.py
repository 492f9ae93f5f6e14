"""De-identification guard: find direct identifiers, reduce dates, pseudonymise, suppress.

A research group's own registry must never leak patient data through the compendium. This
module holds the building blocks; :mod:`esi.validate`, :mod:`esi.pipeline` and the notebooks
call them.

* :func:`find_identifiers` judges every column of a table by its **name**
  (:func:`identifier_by_name`) and by its **content** (:func:`identifier_by_content`) and lists
  the ones that look like direct identifiers: names, initials, medical record numbers, national
  numbers, dates of birth, addresses, postal codes, telephone numbers and e-mail addresses. The
  evidence it reports says how a column was judged and how many values matched; it never
  echoes the values themselves.
* :func:`reduce_dates` replaces exact dates by the year (``procedure_date`` ->
  ``procedure_year``) or by days from the procedure, before any analysis.
* :class:`Pseudonymizer` / :func:`pseudonymize` replace patient ids by stable pseudonyms: an
  HMAC-SHA256 keyed hash whose key lives *outside* the repository (default
  ``~/.config/esi/pseudonym.key``, or the path in the environment variable
  ``ESI_PSEUDONYM_KEY``), created on first use with permissions 0600.
* :func:`suppress_small_counts` and :func:`suppress_count_text` show counts between 1 and
  ``threshold - 1`` as ``"<5"`` in explicitly named cells (primary suppression only). The
  outputs of a run use :func:`esi.disclosure.disclose` instead, which knows each table's
  declared counts and adds secondary suppression.
* :func:`scan_for_markers` reads every file under a folder and reports where any marker
  string (a value seeded into a test registry) occurs: the check that no row-level data leaks
  into a report.

What counts as an identifier, and what does not
-----------------------------------------------
Exact dates other than a date of birth (procedure, MRI, survey timestamps) are *not* reported
as identifiers: they are reduced by :func:`reduce_dates` (schema columns) or removed by the
import mapping (other columns). A column of dates is judged a date of birth by its name
(``dob``, ``birth_date``, ...), when most of its dates lie before 1990-01-01, the earliest
procedure date the schema accepts (:data:`esi.schema.EARLIEST_DATE`), or - for people of any
adult age - when at least 80% of its dates lie 18 to 110 years before the row's procedure
date (else its latest other date, else today): an MRI or visit date lies within months of the
procedure and never does. Free text naming a person (``Mr. Okafor``, ``patient: Anna Berg``,
``John Smith came ...``) and a column of bare 5-digit codes (ZIP codes in a neutrally named
column) are identifiers too. Every column of a file is judged, the ones a mapping drops
included (:func:`esi.imports.apply_mapping`). The schema's own columns and codes are never
reported (a test runs :func:`find_identifiers` over a valid registry).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import html
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from esi.schema import EARLIEST_DATE, IDENTIFIER_NAME_HINTS, SCHEMA

__all__ = [
    "IDENTIFIER_KINDS",
    "identifier_by_name",
    "identifier_by_content",
    "find_identifiers",
    "reduce_dates",
    "Pseudonymizer",
    "pseudonymize",
    "pseudonymize_frame",
    "default_key_path",
    "KEY_ENV_VAR",
    "suppress_small_counts",
    "suppress_count_text",
    "scan_for_markers",
    "protect_registry",
]

#: Kind of direct identifier -> the words used in problems and in ``find_identifiers``.
IDENTIFIER_KINDS: dict[str, str] = {
    "name": "a person's name",
    "initials": "a person's initials",
    "mrn": "a medical record number",
    "national_id": "a national or social security number",
    "date_of_birth": "a date of birth",
    "address": "an address",
    "postal_code": "a postal code",
    "phone": "a telephone or fax number",
    "email": "an e-mail address",
}

# The words of :data:`esi.schema.IDENTIFIER_NAME_HINTS` -> our kind codes.
_HINT_KIND = {
    "a person's name": "name",
    "a person's initials": "initials",
    "a medical record number": "mrn",
    "a national health number": "national_id",
    "a social security number": "national_id",
    "a date of birth": "date_of_birth",
    "an address": "address",
    "a postal code": "postal_code",
    "a telephone number": "phone",
    "a fax number": "phone",
    "an e-mail address": "email",
}

# Name fragments beyond the schema's hints (matched the same way).
_EXTRA_NAME_HINTS = {
    "forename": "name",
    "firstname": "name",
    "lastname": "name",
    "fullname": "name",
    "givenname": "name",
    "familyname": "name",
    "middlename": "name",
    "maidenname": "name",
    "patientname": "name",
    "passport": "national_id",
    "nationalid": "national_id",
    "insurancenumber": "national_id",
    "city": "address",
    "residence": "address",
    "cellphone": "phone",
}

# Whole column names (separators removed) that are a person's name.
_NAME_KEYS = {"name", "names", "fname", "lname", "ptname", "surname", "forename", "namefirst",
              "namelast", "namefull", "namegiven", "namefamily"}


def _tokens(name: str) -> list[str]:
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", str(name))
    s = re.sub(r"([A-Za-z])(\d)", r"\1_\2", s)
    return [t for t in re.split(r"[^A-Za-z0-9]+", s.lower()) if t]


def identifier_by_name(name: str) -> str | None:
    """Judge a column by its name alone.

    Parameters
    ----------
    name
        A column name as written in the file header.

    Returns
    -------
    str or None
        The kind of identifier (a key of :data:`IDENTIFIER_KINDS`) the name suggests, or
        ``None``.

    Notes
    -----
    The name is split into lower-case tokens at separators (``_``, ``-``, ``.``, spaces) and
    at camelCase and letter-digit boundaries, and also joined without separators. Fragments
    of five letters or more (``address``, ``phone``, ``dateofbirth``, ``lastname`` ...) match
    anywhere in the joined name; short fragments (``mrn``, ``dob``, ``ssn``, ``zip``, ``fax``,
    ``mail``) must start a token, so ``redcap_event_name``, ``site_name`` or ``mri_levels``
    are not reported. A bare ``name`` is reported only as the whole name or together with a
    person qualifier (``first_name``, ``patient_name``, ...). Every fragment of
    :data:`esi.schema.IDENTIFIER_NAME_HINTS` is honoured.
    """
    if SCHEMA.get(str(name)) is not None:
        return None
    toks = _tokens(name)
    if not toks:
        return None
    key = "".join(toks)
    if key in _NAME_KEYS:
        return "name"
    if any(t in {"mail", "email", "emails"} for t in toks) or "email" in key:
        return "email"  # before "address": e_mail_address is an e-mail address
    hints: dict[str, str] = {frag: _HINT_KIND[what] for frag, what in
                             IDENTIFIER_NAME_HINTS.items()}
    hints.update(_EXTRA_NAME_HINTS)
    for frag, kind in hints.items():
        if frag == "name":
            continue  # handled above and by the person-name fragments
        if frag in ("mail", "email"):
            continue  # handled above
        if len(frag) >= 5:
            if frag in key:
                return kind
        elif any(t == frag or (t.startswith(frag) and not t[len(frag):].isalpha())
                 or t in {frag + "code", frag + "no", frag + "nr", frag + "num"}
                 for t in toks):
            return kind
    return None


# --- content --------------------------------------------------------------------------------

_EMAIL_IN = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_SHAPE = re.compile(r"^\+?[\d\s().-]+$")
_SSN = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_MRN = re.compile(r"^(?:(?:MRN|MR|HN|NHS)\s*[:#-]?\s*)?\d{6,15}$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$")
_SLASH_DATE = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})$")
_STREET_TYPES = (r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|"
                 r"place|pl|terrace|parkway|pkwy|highway|hwy|square|sq|crescent|close|circle")
_STREET_FIRST = re.compile(rf"^\d{{1,5}}[A-Za-z]?,?\s+(?:[A-Za-z.'-]+\s+){{0,4}}"
                           rf"(?:{_STREET_TYPES})\b\.?", re.IGNORECASE)
_STREET_LAST = re.compile(r"^(?:[^\W\d_][\w.'-]*\s+){0,3}[^\W\d_]*(?:stra(?:ss|ß)e|str\.|weg|"
                          r"laan|straat|gasse|platz|vej|gatan|gata)\s+\d{1,5}[a-z]?\b",
                          re.IGNORECASE)
_STREET_ROMANCE = re.compile(r"^(?:rue|avenue|boulevard|via|viale|calle|avenida|rua|piazza|"
                             r"plaza)\s+.+\d", re.IGNORECASE)
_PO_BOX = re.compile(r"^p\.?\s?o\.?\s+box\s+\d+", re.IGNORECASE)
_UK_POSTCODE = re.compile(r"^[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}$", re.IGNORECASE)
_ZIP_PLUS4 = re.compile(r"^\d{5}-\d{4}$")
_CA_POSTCODE = re.compile(r"^[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d$",
                          re.IGNORECASE)
_NL_POSTCODE = re.compile(r"^[1-9]\d{3} ?[A-Z]{2}$")
_ZIP5 = re.compile(r"^\d{5}$")
# Free text naming a person: a title before a capitalised name, a label such as
# "patient: John Smith", or two capitalised words that are neither category nor clinical words
# ("John Smith came with his wife").
_TITLED = re.compile(r"\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Herr|Frau|Mme|Mlle|Sr|Sra|Dhr|Mevr)\.?"
                     r"\s+[A-Z][a-z'\u2019-]+")
_LABELLED = re.compile(r"\b(?i:patient|pt|name|called|named|husband|wife|son|daughter|mother|"
                       r"father|brother|sister)\s*[:,]?\s+(?:is\s+)?[A-Z][a-z'\u2019-]+\s+"
                       r"[A-Z][a-z'\u2019-]+")
_CAPITAL_PAIR = re.compile(r"\b([A-Z][a-z'\u2019-]{1,})\s+([A-Z][a-z'\u2019-]{1,})\b")
# Short numbers and lower-case codes: never an identifier (a quick pass for most cells).
_PLAIN = re.compile(r"-?\d{1,5}(?:\.\d+)?|[a-z_]+")
_NAME_PARTICLES = {"van", "von", "de", "der", "den", "da", "di", "del", "della", "la", "le",
                   "du", "bin", "ibn", "al", "y", "dos", "das"}
# Words that make a Title Case value a category label rather than a person's name.
_LABEL_WORDS = {
    "very", "much", "not", "no", "yes", "none", "other", "unknown", "missing", "slightly",
    "improved", "worse", "change", "satisfied", "dissatisfied", "neutral", "never", "former",
    "current", "working", "retired", "disabled", "male", "female", "site", "left", "right",
    "both", "mild", "moderate", "severe", "bulge", "protrusion", "extrusion", "study",
    "trial", "cohort", "referral", "transforaminal", "interlaminar", "pain", "back", "leg",
    "and", "or", "the", "of", "with", "without", "in", "on", "at", "to", "for", "by",
    "high", "low", "normal", "abnormal", "positive", "negative", "present", "absent",
    "group", "arm", "visit", "week", "weeks", "month", "months", "year", "years", "day",
    "days", "baseline", "follow", "up", "true", "false", "checked", "unchecked", "smoker",
    "employed", "unemployed", "student", "homemaker", "single", "married", "divorced",
    "widowed", "white", "black", "asian", "hispanic", "latino", "opioid", "nsaid",
    "injection", "surgery", "center", "centre", "hospital", "clinic", "university",
}


def _text(v: object) -> str | None:
    """A cell as text for content checks; ``None`` when missing."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, bool | np.bool_):
        return None  # booleans identify nobody
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return None
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else str(v)
    if isinstance(v, pd.Timestamp | _dt.datetime | _dt.date):
        return pd.Timestamp(v).date().isoformat()
    s = str(v).strip()
    return s if s and s != "NA" else None


def _date_of(s: str) -> _dt.date | None:
    m = _ISO_DATE.match(s)
    try:
        if m:
            return _dt.date(int(m[1]), int(m[2]), int(m[3]))
        m = _SLASH_DATE.match(s)
        if m:
            a, b, y = int(m[1]), int(m[2]), int(m[3])
            if y < 100:
                y += 1900 if y > _dt.date.today().year % 100 else 2000
            day, month = (a, b) if b <= 12 else (b, a)
            return _dt.date(y, month, day)
    except ValueError:
        return None
    return None


def _looks_like_person_name(s: str) -> bool:
    if any(ch.isdigit() for ch in s) or len(s) > 60:
        return False
    if s.count(",") == 1:  # "Lastname, Firstname"
        last, first = (p.strip() for p in s.split(","))
        if not last or not first:
            return False
        s = f"{first} {last}"
    words = s.split()
    if not 2 <= len(words) <= 4:
        return False
    proper = 0
    for w in words:
        lw = w.lower().strip(".")
        if lw in _LABEL_WORDS:
            return False
        if lw in _NAME_PARTICLES:
            continue
        if re.fullmatch(r"[^\W\d_]\.", w):  # a middle initial
            continue
        core = w.replace("-", "").replace("'", "").replace("\u2019", "")
        if not (core.isalpha() and w[0].isupper() and any(c.islower() for c in core)
                and len(core) >= 2):
            return False
        proper += 1
    return proper >= 2


def _classify(s: str) -> str | None:
    """The identifier kind a single value looks like (``None`` for none)."""
    if _EMAIL_IN.search(s):
        return "email"
    if _SSN.match(s):
        return "national_id"
    if _MRN.match(s):
        return "mrn"
    digits = sum(ch.isdigit() for ch in s)
    if _PHONE_SHAPE.match(s) and 9 <= digits <= 15 and _date_of(s) is None:
        return "phone"
    if (_UK_POSTCODE.match(s) or _ZIP_PLUS4.match(s) or _CA_POSTCODE.match(s)
            or _NL_POSTCODE.match(s)):
        return "postal_code"
    if _STREET_FIRST.match(s) or _STREET_LAST.match(s) or _STREET_ROMANCE.match(s) \
            or _PO_BOX.match(s):
        return "address"
    d = _date_of(s)
    if d is not None:
        return "date_of_birth" if d < EARLIEST_DATE else "date"
    if _looks_like_person_name(s):
        return "name"
    return None


#: Internal verdicts of the content rules -> the kind of identifier they find.
_KIND_OF = {k: k for k in IDENTIFIER_KINDS} | {"zip5": "postal_code", "notes": "name",
                                                "adult_dob": "date_of_birth"}

_CONTENT_WORDS = {
    "email": "e-mail addresses",
    "national_id": "social security numbers",
    "mrn": "6-15 digit numbers (like medical record numbers)",
    "phone": "telephone numbers",
    "postal_code": "postal codes",
    "address": "street addresses",
    "date_of_birth": "dates before 1990 (like dates of birth)",
    "name": "person names (Firstname Lastname)",
    "zip5": "5-digit codes (like ZIP codes)",
    "notes": "free text naming a person (a title and a name, or Firstname Lastname)",
    "adult_dob": "dates 18 to 110 years before the row's procedure or other dates (like "
                 "dates of birth of adults)",
}

#: Ages (years between a date and the row's reference date) that make a date column a
#: plausible date of birth of an adult, and the share of rows that must show them.
ADULT_AGES = (18.0, 110.0)
DOB_SHARE = 0.8


def _free_text_names(s: str) -> bool:
    """Whether a cell of free text (four words or more) names a person."""
    if len(s.split()) < 4:
        return False
    if _TITLED.search(s) or _LABELLED.search(s):
        return True
    for m in _CAPITAL_PAIR.finditer(s):
        a, b = m[1], m[2]
        if a.lower() in _LABEL_WORDS or b.lower() in _LABEL_WORDS \
                or a.lower() in _NOT_NAMES or b.lower() in _NOT_NAMES:
            continue
        return True
    return False


# Capitalised words of clinical notes that are not names (beside the label words).
_NOT_NAMES = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "mri", "ct", "esi", "nrs", "odi", "gpe", "nsaids", "emg", "er", "ed",
    "icu", "pt", "ot", "follow", "see", "seen", "called", "plan", "note", "notes", "history",
    "lumbar", "sacral", "cervical", "thoracic", "spine", "disc", "nerve", "root", "epidural",
    "steroid", "physical", "therapy", "emergency", "department", "no", "yes", "ok",
}


def _content_judgement(values: Iterable[object], min_share: float,
                       allow_dates: bool = False, ids: bool = False
                       ) -> tuple[str, int, int] | None:
    texts = [t for t in (_text(v) for v in values) if t is not None]
    if not texts:
        return None
    found = _judge_values(texts, min_share, allow_dates)
    if found is not None:
        return found
    n = len(texts)
    # Free text: one note naming a person is enough (like an e-mail address).
    notes = sum(_free_text_names(t) for t in texts if len(t) > 20)
    if notes:
        return "notes", notes, n
    # Bare 5-digit codes repeat within a region; an id column is judged by its own rules.
    zips = sum(bool(_ZIP5.match(t)) for t in texts)
    if not ids and zips >= max(3, math.ceil(0.9 * n)):
        return "zip5", zips, n
    return None


def _judge_values(texts: list[str], min_share: float,
                  allow_dates: bool) -> tuple[str, int, int] | None:
    counts: dict[str, int] = {}
    name_values: set[str] = set()
    mrn_values: set[str] = set()
    cache: dict[str, str | None] = {}
    for t in texts:
        if t not in cache:
            cache[t] = None if _PLAIN.fullmatch(t) else _classify(t)
        kind = cache[t]
        if kind is None or kind == "date":
            continue
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "name":
            name_values.add(t)
        if kind == "mrn":
            mrn_values.add(t)
    if allow_dates:
        counts.pop("date_of_birth", None)
    n = len(texts)
    # An e-mail address is unambiguous: one is enough.
    if counts.get("email", 0) >= 1:
        return "email", counts["email"], n
    # Names and record numbers identify one person each: a repeated value is a category code.
    if "name" in counts and len(name_values) < 0.8 * counts["name"]:
        counts.pop("name")
    if "mrn" in counts and len(mrn_values) < 0.8 * counts["mrn"]:
        counts.pop("mrn")
    if not counts:
        return None
    kind, k = max(counts.items(), key=lambda kv: kv[1])
    if k >= max(1, math.ceil(min_share * n)):
        return kind, k, n
    return None


def identifier_by_content(values: Iterable[object], min_share: float = 0.5) -> str | None:
    """Judge a column by its values.

    Parameters
    ----------
    values
        The column's cells (strings as read from CSV, or Python/NumPy objects from Parquet or
        Excel). Missing cells (``None``, ``NaN``, ``""``, ``NA``) and booleans are ignored.
    min_share
        Share of the non-missing values that must look like one kind of identifier.

    Returns
    -------
    str or None
        A key of :data:`IDENTIFIER_KINDS`, or ``None``.

    Notes
    -----
    Each value is classified by the first rule it meets:

    * ``email`` - contains an e-mail address (one such value is enough);
    * ``national_id`` - ``123-45-6789``;
    * ``mrn`` - 6 to 15 digits, optionally after ``MRN``/``MR``/``HN``/``NHS``;
    * ``phone`` - digits with ``+``, spaces, dots, dashes or parentheses, 9 to 15 digits;
    * ``postal_code`` - a UK postcode or a US ZIP+4 (a bare 5-digit ZIP is judged by name);
    * ``address`` - a house number and street (``12 Oak Street``, ``Hauptstrasse 5``,
      ``rue de la Paix 3``, ``PO Box 12``);
    * ``date_of_birth`` - a date (ISO or d/m/y) before 1990-01-01 (with the other columns of a
      table, :func:`find_identifiers` also recognises later dates of birth);
    * ``name`` - two to four capitalised words (``Mary O'Neil``, ``Smith, John``), none of
      them a common category word (``Very Satisfied`` is a label, not a name).

    ``name`` and ``mrn`` also need at least 80% distinct values among the matches, because
    they identify one person each (a repeated value is a category code). Then, whatever
    ``min_share``:

    * ``name`` - free text (four words or more) naming a person in any cell: a title and a
      name (``Mr. Smith``, ``Dr Jones``), a label and a name (``patient: John Smith``), or
      two capitalised words inside a sentence that are neither category nor clinical words;
    * ``postal_code`` - at least 90% (and 3 or more) of the values are bare 5-digit codes
      (US ZIP, German, French ... postal codes).
    """
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must lie in (0, 1], got {min_share!r}")
    found = _content_judgement(values, min_share)
    return None if found is None else _KIND_OF[found[0]]


def _columns_of(table: object) -> list[tuple[str, list[object]]]:
    from esi.validate import RawTable

    if isinstance(table, RawTable):
        return [(name, [r[i] for r in table.rows]) for i, name in enumerate(table.header)]
    if isinstance(table, pd.DataFrame):
        cols: list[tuple[str, list[object]]] = []
        if table.index.name is not None or not isinstance(table.index, pd.RangeIndex):
            cols.append((str(table.index.name or "(index)"), list(table.index)))
        for c in table.columns:
            s = table[c]
            if pd.api.types.is_bool_dtype(s.dtype):
                continue
            cols.append((str(c), s.tolist()))
        return cols
    raise ValueError("table must be an esi.validate.RawTable or a pandas.DataFrame, got "
                     f"{type(table).__name__}")


def find_identifiers(table: object, min_share: float = 0.5, *,
                     reference_date: str | None = None,
                     id_column: str = "patient_id") -> pd.DataFrame:
    """List the columns of a table that look like direct identifiers.

    Parameters
    ----------
    table
        An :class:`esi.validate.RawTable` (as read from a file) or a DataFrame (a named index,
        e.g. ``patient_id``, is judged as a column too). Every column is judged, whatever a
        mapping later does with it.
    min_share
        Passed to :func:`identifier_by_content`.
    reference_date
        The column holding each row's procedure date (default ``procedure_date`` when the
        table has it): the date that ages are counted to (see Notes).
    id_column
        The patient-id column: its values are unique by design, so the 5-digit-code rule
        (postal codes repeat) is not applied to it.

    Returns
    -------
    pandas.DataFrame
        One row per suspicious column, in table order, with columns

        * ``column`` - the column name;
        * ``kind`` - a key of :data:`IDENTIFIER_KINDS` (the name's verdict when both name and
          content speak);
        * ``evidence`` - how it was judged, e.g. ``"name: 'pt_email' suggests an e-mail
          address"`` or ``"content: 12 of 14 values look like telephone numbers"``, both
          joined by ``"; "`` when both apply. The values themselves are never echoed.

        Empty (with these columns) when nothing looks like an identifier.

    Notes
    -----
    Columns of the registry schema are never judged by name, and a schema ``date`` column
    (``procedure_date``) is not judged a date of birth (validation bounds it to 1990 or
    later); their other content is checked, so ``patient_id`` values that are medical record
    numbers or e-mail addresses are reported.

    A column of dates is a **date of birth** when its name says so, when most of its dates lie
    before 1990, or - for a person of any adult age - when in at least
    :data:`DOB_SHARE` (80%) of the rows (3 or more) it lies 18 to 110 years
    (:data:`ADULT_AGES`) before the row's reference date: the procedure date
    (``reference_date``), else the latest other date of the row, else today. An injection,
    MRI or visit date lies within months of the procedure and never qualifies. No R reference
    exists for this heuristic; the tests cover every kind and a full valid registry with no
    finding.
    """
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must lie in (0, 1], got {min_share!r}")
    columns = _columns_of(table)
    dates = _date_columns(columns)
    ref_name = reference_date if reference_date is not None else (
        "procedure_date" if "procedure_date" in dates else None)
    rows = []
    for name, values in columns:
        by_name = identifier_by_name(name)
        col = SCHEMA.get(name)
        schema_date = col is not None and col.dtype == "date"
        content = _content_judgement(values, min_share, allow_dates=schema_date,
                                     ids=name == id_column)
        if content is None and name in dates and not schema_date and name != ref_name:
            content = _adult_birth_dates(name, dates, ref_name)
        if by_name is None and content is None:
            continue
        evidence = []
        if by_name is not None:
            evidence.append(f"name: {name!r} suggests {IDENTIFIER_KINDS[by_name]}")
        if content is not None:
            kind, k, n = content
            evidence.append(f"content: {k} of {n} values look like {_CONTENT_WORDS[kind]}")
        rows.append({"column": name,
                     "kind": by_name or _KIND_OF[content[0]],  # type: ignore[index]
                     "evidence": "; ".join(evidence)})
    return pd.DataFrame(rows, columns=["column", "kind", "evidence"])


def _date_columns(columns: list[tuple[str, list[object]]]) -> dict[str, list[_dt.date | None]]:
    """Columns most of whose values are dates -> each row's date (``None`` when not one)."""
    out: dict[str, list[_dt.date | None]] = {}
    for name, values in columns:
        parsed: list[_dt.date | None] = []
        present = 0
        for v in values:
            t = _text(v)
            if t is None:
                parsed.append(None)
                continue
            present += 1
            parsed.append(None if _PLAIN.fullmatch(t) else _date_of(t))
        hits = sum(d is not None for d in parsed)
        if hits and hits >= 0.5 * present:
            out[name] = parsed
    return out


def _adult_birth_dates(name: str, dates: dict[str, list[_dt.date | None]],
                       ref_name: str | None) -> tuple[str, int, int] | None:
    """The date-of-birth verdict of the date column ``name`` by the ages it gives (see
    :func:`find_identifiers`), or ``None``."""
    own = dates[name]
    others = [v for k, v in dates.items() if k != name]
    today = _dt.date.today()
    lo, hi = ADULT_AGES
    adult = n = 0
    for i, d in enumerate(own):
        if d is None:
            continue
        if ref_name is not None and ref_name in dates and ref_name != name:
            ref = dates[ref_name][i]
        else:
            later = [o[i] for o in others if o[i] is not None]
            ref = max(later) if later else (today if not others else None)
        if ref is None:
            continue
        n += 1
        adult += lo <= (ref - d).days / 365.25 <= hi
    if n >= 3 and adult >= DOB_SHARE * n:
        return "adult_dob", adult, n
    return None


# --- dates ----------------------------------------------------------------------------------

def reduce_dates(registry: pd.DataFrame, mode: str = "year", *,
                 window: tuple[_dt.date, _dt.date] | None = None) -> pd.DataFrame:
    """Replace exact dates by the year or by days from the procedure.

    Parameters
    ----------
    registry
        A typed registry (:func:`esi.io.read_registry`) or any table with date columns.
        Date columns are those of dtype ``datetime64`` and the schema's ``date`` columns.
    mode
        ``"year"``: every date column ``X_date`` becomes ``X_year`` (Int64).
        ``"days"``: ``procedure_date`` becomes ``procedure_year``; every other date column
        ``X_date`` becomes ``X_days``, the whole days from the procedure (Int64, negative
        before it).
    window
        ``(first, last)`` procedure dates of the study window. When given, a boolean column
        ``in_study_window`` records whether the exact procedure date lies in it, so that the
        cohort's window check (:func:`esi.cohort.define_cohort`, step ``study_window``) can
        still be made after the exact date is gone.

    Returns
    -------
    pandas.DataFrame
        A copy with the date columns replaced, in the same position (the index, other columns
        and ``attrs`` are kept; ``attrs["date_reduction"]`` records ``mode``). A column name
        without the ``_date`` suffix gets ``_year``/``_days`` appended.

    Notes
    -----
    What the analysis still needs: the study-window check compares the procedure date with
    5 January 2009 and 1 November 2024, which the year alone cannot decide for injections in
    early January 2009 or after 1 November 2024. Pass ``window`` (or check the window before
    reducing); the rest of the analysis uses no date.
    """
    if mode not in ("year", "days"):
        raise ValueError(f"mode must be 'year' or 'days', got {mode!r}")
    if not isinstance(registry, pd.DataFrame):
        raise ValueError(f"registry must be a DataFrame, got {type(registry).__name__}")
    date_cols = [c for c in registry.columns
                 if pd.api.types.is_datetime64_any_dtype(registry[c].dtype)
                 or (c in SCHEMA and SCHEMA[c].dtype == "date")]
    proc = None
    if "procedure_date" in registry.columns:
        proc = pd.to_datetime(registry["procedure_date"])
    if mode == "days" and proc is None and any(c != "procedure_date" for c in date_cols):
        raise ValueError("mode='days' needs a procedure_date column to count days from")
    out = registry.copy()
    if window is not None:
        if proc is None:
            raise ValueError("window needs a procedure_date column")
        first, last = (pd.Timestamp(w) for w in window)
        if last < first:
            raise ValueError(f"window ends ({last.date()}) before it starts ({first.date()})")
        inside = (proc >= first) & (proc <= last)
        out["in_study_window"] = inside.where(proc.notna()).astype("boolean")
    renames = {}
    for c in date_cols:
        d = pd.to_datetime(registry[c])
        stem = c[: -len("_date")] if c.endswith("_date") else c
        if c == "procedure_date" or mode == "year":
            out[c] = d.dt.year.astype("Int64")
            renames[c] = f"{stem}_year"
        else:
            out[c] = (d - proc).dt.days.astype("Int64")  # type: ignore[operator]
            renames[c] = f"{stem}_days"
    out = out.rename(columns=renames)
    out.attrs = dict(registry.attrs)
    out.attrs["date_reduction"] = mode
    return out


# --- pseudonyms -----------------------------------------------------------------------------

#: Environment variable holding the path of the pseudonym key file.
KEY_ENV_VAR = "ESI_PSEUDONYM_KEY"
_KEY_BYTES = 32


def default_key_path() -> Path:
    """The pseudonym key file: ``$ESI_PSEUDONYM_KEY`` if set, else
    ``~/.config/esi/pseudonym.key``."""
    env = os.environ.get(KEY_ENV_VAR, "").strip()
    return Path(os.path.expanduser(env)) if env else Path.home() / ".config" / "esi" / \
        "pseudonym.key"


def _refuse_inside_project(path: Path) -> Path:
    from esi.paths import PROJECT_ROOT

    resolved = path.expanduser().resolve()
    if resolved.is_relative_to(PROJECT_ROOT.resolve()):
        raise ValueError(f"pseudonym key path {str(path)!r} lies inside the project "
                         f"({PROJECT_ROOT}); the key must live outside the repository, e.g. "
                         f"~/.config/esi/pseudonym.key (set {KEY_ENV_VAR} to choose another)")
    return resolved


def _create_key(path: Path) -> None:
    """Create the key file ``path`` with a new random key unless it exists, atomically.

    The key is written and synced to a private (0600) temporary file beside ``path``, which is
    then hard-linked to ``path``; the link fails when another process created ``path`` first,
    and that process's key is the one everybody reads. ``path`` therefore never exists empty or
    half written, and processes creating the key at once all end up with the same key.
    """
    import tempfile

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(secrets.token_hex(_KEY_BYTES) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces: FileExistsError when another process won
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def _load_or_create_key(path: Path) -> bytes:
    path = _refuse_inside_project(path)
    if not path.exists():
        _create_key(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(f"pseudonym key file {str(path)!r} is readable by others (mode "
                         f"{mode:o}); run `chmod 600 {path}`")
    text = path.read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"pseudonym key file {str(path)!r} does not hold a hex key") from None
    if len(key) < 16:
        raise ValueError(f"pseudonym key file {str(path)!r} holds {len(key)} bytes; at least "
                         "16 are needed")
    return key


@dataclass(frozen=True)
class Pseudonymizer:
    """Stable pseudonyms for patient ids: ``"P-"`` + base32 of HMAC-SHA256(key, id).

    Attributes
    ----------
    key : bytes
        The secret key (not shown in the repr).
    length : int
        Base32 characters kept (default 10, i.e. 50 bits; 8 to 52).
    prefix : str
        Text before the hash (default ``"P-"``).

    Notes
    -----
    The same id and key always give the same pseudonym; another key gives unrelated ones.
    Without the key the pseudonyms cannot be traced back to ids, even by someone who knows
    the ids (unlike an unkeyed hash). Build one with :meth:`from_key_file`, which creates
    the key on first use.
    """

    key: bytes = field(repr=False)
    length: int = 10
    prefix: str = "P-"

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) < 16:
            raise ValueError("key must be bytes of length 16 or more")
        if not 8 <= self.length <= 52:
            raise ValueError(f"length must lie in 8..52, got {self.length!r}")

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str] | None = None,
                      length: int = 10) -> Pseudonymizer:
        """Read the key from ``path`` (default :func:`default_key_path`), creating it first
        (32 random bytes, hex, mode 0600, via ``O_CREAT | O_EXCL``) when absent.

        Raises ``ValueError`` when the path lies inside the project root, when the file is
        readable by group or others, or when it does not hold a key.
        """
        p = Path(os.fspath(path)) if path is not None else default_key_path()
        return cls(_load_or_create_key(p), length=length)

    def pseudonym(self, patient_id: object) -> str:
        """The pseudonym of one id (taken as ``str(patient_id)``)."""
        if patient_id is None or (isinstance(patient_id, float) and math.isnan(patient_id)) \
                or patient_id is pd.NA:
            raise ValueError("patient_id is missing; every patient needs an id")
        digest = hmac.new(self.key, str(patient_id).encode("utf-8"), hashlib.sha256).digest()
        return self.prefix + base64.b32encode(digest).decode("ascii")[: self.length]

    def __call__(self, ids: Iterable[object]) -> pd.Series:
        """Pseudonyms of many ids; see :func:`pseudonymize`."""
        index = ids.index if isinstance(ids, pd.Series) else None
        values = list(ids)
        out = [self.pseudonym(v) for v in values]
        seen: dict[str, str] = {}
        for v, p in zip(values, out, strict=True):
            if p in seen and seen[p] != str(v):
                raise ValueError(f"two patient ids share the pseudonym {p}; use a larger "
                                 "length")
            seen[p] = str(v)
        return pd.Series(out, index=index, name="pseudonym", dtype="str")


def pseudonymize(ids: Iterable[object], key: bytes | str | os.PathLike[str] | None = None,
                 length: int = 10) -> pd.Series:
    """Replace patient ids by stable keyed pseudonyms.

    Parameters
    ----------
    ids
        Patient ids (a Series keeps its index; anything else gets a RangeIndex).
    key
        ``bytes``: the secret key itself. ``str`` or path: a key file. ``None``: the default
        key file (:func:`default_key_path`), created on first use.
    length
        Base32 characters after ``"P-"``.

    Returns
    -------
    pandas.Series
        Named ``pseudonym``, of dtype ``str``, e.g. ``"P-K3V7Q2MZ4A"``, in the order of
        ``ids``. Equal ids get equal pseudonyms.
    """
    if isinstance(key, bytes):
        p = Pseudonymizer(key, length=length)
    else:
        p = Pseudonymizer.from_key_file(key, length=length)
    return p(ids)


def pseudonymize_frame(frame: pd.DataFrame, id_columns: Sequence[str] = (),
                       key: bytes | str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """A copy of ``frame`` whose patient ids are pseudonyms.

    Parameters
    ----------
    frame
        E.g. the matched pairs.
    id_columns
        Columns holding patient ids (e.g. ``["case_id", "control_id"]``). An index named
        ``patient_id`` is always replaced.
    key
        As in :func:`pseudonymize`.

    Returns
    -------
    pandas.DataFrame
        The same table with every id replaced (the same id gets the same pseudonym wherever
        it occurs).
    """
    missing = [c for c in id_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"id_columns not in the frame: {', '.join(missing)}")
    p = Pseudonymizer(key) if isinstance(key, bytes) else Pseudonymizer.from_key_file(key)
    out = frame.copy()
    for c in id_columns:
        out[c] = p(out[c].astype(object)).to_numpy()
    if out.index.name == "patient_id":
        out.index = pd.Index(p(list(out.index)).to_numpy(), name="patient_id", dtype="str")
    return out


# --- small-cell suppression -----------------------------------------------------------------

#: What a hidden percentage shows.
HIDDEN = "-"
_COUNT_CELL = re.compile(r"^\s*(\d+)(\s*/\s*\d+)?(\s*\(\s*[\d.]+\s*%?\s*\))?\s*$")
_REASON_ITEM = re.compile(r"^(.*?:\s*)(\d+)\s*$")


def suppress_count_text(text: object, threshold: int = 5) -> object:
    """Suppress a small count written as text.

    Parameters
    ----------
    text
        A cell such as ``"3"``, ``"3 (21.4%)"``, ``"3/14"``, ``"3/14 (21%)"``, or a list of
        ``"reason: count"`` items separated by ``"; "`` (the ``reasons`` of
        :attr:`esi.cohort.Cohort.flow`). Anything else is returned unchanged.
    threshold
        Counts ``1 .. threshold - 1`` are suppressed.

    Returns
    -------
    object
        ``"<5"`` (for ``threshold=5``) in place of a small count, with its percentage dropped
        (``"3/14 (21%)"`` -> ``"<5/14"``); zeros and counts of ``threshold`` or more unchanged.
    """
    _check_threshold(threshold)
    if not isinstance(text, str):
        return text
    m = _COUNT_CELL.match(text)
    if m:
        n = int(m[1])
        if 0 < n < threshold:
            return f"<{threshold}" + (m[2].replace(" ", "") if m[2] else "")
        return text
    if ":" in text:
        items = text.split(";")
        out = []
        for item in items:
            mi = _REASON_ITEM.match(item)
            if mi and 0 < int(mi[2]) < threshold:
                out.append(f"{mi[1]}<{threshold}")
            else:
                out.append(item)
        return ";".join(out)
    return text


def _check_threshold(threshold: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int | np.integer) \
            or threshold < 1:
        raise ValueError(f"threshold must be a whole number of at least 1, got {threshold!r}")


def _is_count_text_column(s: pd.Series) -> bool:
    vals = [v for v in s.tolist() if isinstance(v, str) and v.strip()]
    return bool(vals) and all(_COUNT_CELL.match(v) for v in vals)


def suppress_small_counts(table: pd.DataFrame, threshold: int = 5,
                          columns: Sequence[str] | None = None,
                          percent_columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Show counts below ``threshold`` as ``"<threshold"`` and hide their percentages.

    Parameters
    ----------
    table
        A table of counts (a flow diagram, a contingency table, a table of n (%) cells).
    threshold
        Counts ``1 .. threshold - 1`` are suppressed (default 5: ``"<5"``). Zeros are shown:
        they say nobody, and a suppressed zero would hide that a category is empty.
    columns
        Count columns. Default: every integer column and every text column whose cells all
        read as counts (``"12"``, ``"3 (21.4%)"``, ``"3/14"``); text columns are passed
        through :func:`suppress_count_text`. ``reasons``-style columns (``"label: n; ..."``)
        must be named here.
    percent_columns
        Percentage column -> its count column; a percentage whose count is suppressed shows
        :data:`HIDDEN` (``"-"``). Default: ``X_pct``, ``X_percent``, ``pct_X`` and
        ``percent_X`` for each count column ``X``.

    Returns
    -------
    pandas.DataFrame
        A copy; suppressed columns become ``object`` columns holding the original values and
        the ``"<5"`` strings.

    Notes
    -----
    This is primary suppression only. A suppressed cell can still be recovered by
    subtraction when its row and column totals are shown (e.g. ``n_before - n_after`` in a
    flow diagram); suppress the totals or a second cell too when that matters.
    """
    _check_threshold(threshold)
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a DataFrame, got {type(table).__name__}")
    if columns is None:
        columns = [c for c in table.columns
                   if (pd.api.types.is_integer_dtype(table[c].dtype)
                       and not pd.api.types.is_bool_dtype(table[c].dtype))
                   or (not pd.api.types.is_numeric_dtype(table[c].dtype)
                       and _is_count_text_column(table[c]))]
    else:
        unknown = [c for c in columns if c not in table.columns]
        if unknown:
            raise ValueError(f"columns not in the table: {', '.join(map(str, unknown))}")
    if percent_columns is None:
        percent_columns = {}
        for c in columns:
            for pc in (f"{c}_pct", f"{c}_percent", f"pct_{c}", f"percent_{c}"):
                if pc in table.columns:
                    percent_columns[pc] = c
    else:
        bad = [f"{p} -> {c}" for p, c in percent_columns.items()
               if p not in table.columns or c not in table.columns]
        if bad:
            raise ValueError(f"percent_columns names columns not in the table: {bad}")
    out = table.copy()
    small: dict[str, pd.Series] = {}
    for c in columns:
        s = table[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            x = pd.to_numeric(s, errors="coerce")
            is_small = (x > 0) & (x < threshold)
            small[c] = is_small.fillna(False).astype(bool)
            vals = [f"<{threshold}" if flag else
                    (int(v) if isinstance(v, float | np.floating) and float(v).is_integer()
                     else (int(v) if isinstance(v, np.integer) else v))
                    for v, flag in zip(s.astype(object).tolist(), small[c].tolist(),
                                       strict=True)]
            out[c] = pd.Series(vals, index=s.index, dtype=object)
        else:
            new = [suppress_count_text(v, threshold) for v in s.tolist()]
            small[c] = pd.Series([n != v for n, v in zip(new, s.tolist(), strict=True)],
                                 index=s.index)
            out[c] = pd.Series(new, index=s.index, dtype=object)
    for pc, c in percent_columns.items():
        if c in small:
            vals = [HIDDEN if flag else v for v, flag in
                    zip(out[pc].astype(object).tolist(), small[c].tolist(), strict=True)]
            out[pc] = pd.Series(vals, index=out.index, dtype=object)
    return out


# --- leak scan ------------------------------------------------------------------------------

def scan_for_markers(folder: str | os.PathLike[str], markers: Iterable[str]) -> pd.DataFrame:
    """Report every occurrence of any marker string in the files under ``folder``.

    Parameters
    ----------
    folder
        Searched recursively, hidden files and folders included; symbolic links are not
        followed.
    markers
        Non-empty strings seeded into a test registry (e.g. ``"ZQXMARKER-7"``).

    Returns
    -------
    pandas.DataFrame
        One row per (file, marker, line) with columns ``file`` (path relative to
        ``folder``, ``/``-separated), ``marker``, ``line`` (1-based line of the hit, counted
        in ``\\n`` bytes). Empty when no marker occurs.

    Notes
    -----
    Every file is read as bytes and nothing is decompressed (a marker inside a zip,
    compressed Parquet page or PNG stream is not seen, so reports must not store data that
    way). Each marker is searched as UTF-8 bytes, as UTF-16 (little and big endian), in
    JSON string escaping (``\\u00e9``, ``\\/``) and in HTML escaping (``&amp;``, ``&#x27;``),
    which covers text, CSV, HTML, notebooks and JSON.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"folder {str(folder)!r} is not a folder")
    marks = list(markers)
    if not marks or any(not isinstance(m, str) or not m for m in marks):
        raise ValueError("markers must be a non-empty list of non-empty strings")
    forms: dict[str, set[bytes]] = {}
    for m in marks:
        variants = {m, json.dumps(m)[1:-1], json.dumps(m, ensure_ascii=False)[1:-1],
                    json.dumps(m)[1:-1].replace("/", "\\/"), html.escape(m),
                    html.escape(m, quote=False), html.escape(m).replace("&#x27;", "&#39;")}
        b = {v.encode("utf-8") for v in variants}
        b |= {m.encode("utf-16-le"), m.encode("utf-16-be")}
        forms[m] = b
    rows = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for fname in sorted(filenames):
            path = Path(dirpath) / fname
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            rel = path.relative_to(root).as_posix()
            for m in marks:
                lines: set[int] = set()
                for form in forms[m]:
                    start = data.find(form)
                    while start != -1:
                        lines.add(data.count(b"\n", 0, start) + 1)
                        start = data.find(form, start + 1)
                rows += [{"file": rel, "marker": m, "line": ln} for ln in sorted(lines)]
    return pd.DataFrame(rows, columns=["file", "marker", "line"])


def protect_registry(registry: pd.DataFrame, key: bytes | str | os.PathLike[str] | None = None
                     ) -> pd.DataFrame:
    """Prepare a real registry for analysis: exact dates reduced, ids pseudonymised.

    The study window is checked on the exact procedure date first (``in_study_window``), then
    every date is reduced to its year (:func:`reduce_dates`), and the ``patient_id`` index is
    replaced by stable keyed pseudonyms (:func:`pseudonymize`), so every output that names a
    patient names a pseudonym.

    Parameters
    ----------
    registry
        A typed registry (:func:`esi.io.read_registry`), index ``patient_id``.
    key
        The pseudonym key (bytes) or a key-file path; default: the key file outside the
        repository (:func:`default_key_path`), created on first use.

    Returns
    -------
    pandas.DataFrame
        A copy, with ``attrs["protected"] = True``.
    """
    from esi.cohort import STUDY_WINDOW

    out = reduce_dates(registry, "year", window=STUDY_WINDOW)
    out.index = pd.Index(pseudonymize(out.index, key=key).to_numpy(), name="patient_id",
                         dtype="str")
    out.attrs["protected"] = True
    return out
