"""The data dictionary: one schema for a registry of ESI patients, one row per patient.

The schema is defined here, in code, and rendered to ``data/README.md`` by
:func:`render_data_dictionary` (``esi schema --write`` or ``make data-dictionary``); a test keeps
the two in step. Validation (:mod:`esi.validate`), reading (:mod:`esi.io`) and the synthetic
registry (:mod:`esi.synthetic`) all take their rules from :data:`SCHEMA`.

Conventions
-----------
* Missing values are empty cells (``""``) or ``NA``; nothing else means missing.
* Booleans are written ``true``/``false`` (``yes``/``no``, ``1``/``0`` are read too).
* Dates are ISO 8601 (``YYYY-MM-DD``).
* Follow-up columns carry the visit in their suffix: ``_4w`` (4 weeks) and ``_12w`` (12 weeks).
  When ``visit_missed_{t}w`` is true, every other ``{t}w`` column must be empty: a missed visit is
  a missing value, never a zero.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

__all__ = [
    "Column",
    "CrossRule",
    "SCHEMA",
    "COLUMNS",
    "CROSS_RULES",
    "FOLLOW_UP_WEEKS",
    "IDENTIFIER_NAME_HINTS",
    "ANALGESIC_REDUCTION_FRACTION",
    "column",
    "follow_up_columns",
    "required_columns",
    "render_data_dictionary",
]

#: Visits of the study, in weeks after the injection.
FOLLOW_UP_WEEKS: tuple[int, ...] = (4, 12)

#: Analgesic reduction: a fall of at least this fraction in daily MME from baseline (or stopping
#: the non-opioid analgesic taken at baseline). See :mod:`esi.outcomes`.
ANALGESIC_REDUCTION_FRACTION = 0.20

#: Earliest and latest procedure dates a registry may hold (validation bounds, not eligibility).
EARLIEST_DATE = _dt.date(1990, 1, 1)

DTYPES = ("string", "integer", "number", "boolean", "category", "date")
SPINE_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


@dataclass(frozen=True)
class Column:
    """One column of the registry.

    Attributes
    ----------
    name : str
        Column name, exactly as it must appear in the file header.
    dtype : str
        One of ``string``, ``integer``, ``number``, ``boolean``, ``category``, ``date``.
    description : str
        What the value means, in the study's words.
    group : str
        Section of the data dictionary (identification, demographics, baseline, MRI, procedure,
        follow-up at 4 weeks, follow-up at 12 weeks).
    unit : str
        Unit of measurement (empty for unitless values).
    allowed : tuple of str
        Allowed codes of a ``category`` column (empty otherwise).
    minimum, maximum : float or None
        Inclusive range of a numeric column.
    step : float or None
        Allowed step of a score (e.g. 0.5 for the 0-10 pain scales); ``None`` for any value.
    required : bool
        True when an empty cell is a problem. Follow-up columns are required unless the visit
        was missed (see ``missing``).
    missing : str
        The missing-value rule, in words (rendered into the data dictionary).
    pattern : str
        For ``string`` columns, a regular expression the value must match in full.
    """

    name: str
    dtype: str
    description: str
    group: str
    unit: str = ""
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    required: bool = True
    missing: str = "not allowed"
    pattern: str = ""
    visit: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name!r}: dtype {self.dtype!r} not one of {DTYPES}")
        if self.dtype == "category" and not self.allowed:
            raise ValueError(f"column {self.name!r}: a category column needs allowed codes")

    def allowed_text(self) -> str:
        """The allowed values in words, as printed in the data dictionary and in problems."""
        if self.dtype == "category":
            return ", ".join(f"`{a}`" for a in self.allowed)
        if self.dtype == "boolean":
            return "`true`, `false`"
        if self.dtype == "date":
            return f"ISO date, {EARLIEST_DATE.isoformat()} to today"
        if self.dtype in ("integer", "number"):
            rng = f"{_fmt(self.minimum)} to {_fmt(self.maximum)}"
            if self.step is not None:
                rng += f", steps of {_fmt(self.step)}"
            elif self.dtype == "integer":
                rng += ", whole numbers"
            return rng
        if self.pattern:
            return f"text matching `{self.pattern}`"
        return "text"


@dataclass(frozen=True)
class CrossRule:
    """A rule that ties several columns of one row together.

    Attributes
    ----------
    name : str
        Short identifier printed with each problem (e.g. ``missed-visit-empty``).
    columns : tuple of str
        The columns involved.
    text : str
        The rule, in words.
    """

    name: str
    columns: tuple[str, ...]
    text: str


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return str(int(x)) if float(x).is_integer() else str(x)


_ID = "identification and provenance"
_DEM = "demographics and history"
_BASE = "baseline (before the injection)"
_MRI = "MRI findings"
_PROC = "procedure"

_BASE_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", "string", "Study identifier of the patient (pseudonymous; never a "
           "medical record number). Unique in the file.", _ID,
           pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"),
    Column("site", "category", "Treating institution.", _ID, allowed=("A", "B")),
    Column("source_study", "category",
           "Study or pathway through which the patient entered the registry: the 2012 MRI-effect "
           "randomized trial (`mri_rct`), the 2015 ESI vs gabapentin trial (`gabapentin_rct`), "
           "the 2019 hypersensitivity cohort (`hypersensitivity`), the 2022 multicenter "
           "predictors study (`predictors`), another prospective ESI study (`other_prospective`) "
           "or a referral from a surgeon or neurologist (`referral`).", _ID,
           allowed=("mri_rct", "gabapentin_rct", "hypersensitivity", "predictors",
                    "other_prospective", "referral")),
    Column("mri_blinded_arm", "boolean", "For `mri_rct` patients: treated in the arm whose "
           "physician did not see the MRI before injecting. Empty for other studies.", _ID,
           required=False, missing="empty unless source_study is `mri_rct`"),
    Column("procedure_date", "date", "Date of the epidural steroid injection.", _ID),
    Column("age", "integer", "Age at the injection.", _DEM, unit="years", minimum=0,
           maximum=120),
    Column("sex", "category", "Sex recorded in the registry.", _DEM,
           allowed=("female", "male")),
    Column("bmi", "number", "Body-mass index at baseline.", _DEM, unit="kg/m^2",
           minimum=12, maximum=80),
    Column("pain_duration_months", "number", "Duration of the radicular pain episode at the "
           "injection.", _DEM, unit="months", minimum=0, maximum=600),
    Column("depression_anxiety", "boolean", "Diagnosed depression or anxiety disorder.", _DEM),
    Column("smoking", "category", "Smoking status.", _DEM,
           allowed=("never", "former", "current")),
    Column("employment", "category", "Employment status at baseline.", _DEM,
           allowed=("working", "not_working", "disabled", "retired")),
    Column("prior_spine_surgery", "boolean", "Any previous lumbar spine surgery.", _DEM),
    Column("baseline_leg_pain", "number", "Average leg pain over the past week, numeric "
           "rating scale.", _BASE, unit="NRS 0-10", minimum=0, maximum=10, step=0.5),
    Column("baseline_back_pain", "number", "Average low back pain over the past week, numeric "
           "rating scale.", _BASE, unit="NRS 0-10", minimum=0, maximum=10, step=0.5),
    Column("baseline_odi", "number", "Oswestry Disability Index (version 2.1a): the sum of the "
           "10 answered sections (0-5 each) divided by 5 x the number answered, times 100. With "
           "all sections answered the score moves in steps of 2; with a section skipped it need "
           "not.", _BASE, unit="percent", minimum=0, maximum=100),
    Column("opioid_use", "boolean", "Taking opioids daily at baseline.", _BASE),
    Column("baseline_mme", "number", "Daily opioid dose in morphine milligram equivalents; 0 "
           "when `opioid_use` is false.", _BASE, unit="mg MME/day", minimum=0, maximum=1000),
    Column("baseline_analgesic_use", "boolean", "Taking a non-opioid analgesic for the pain "
           "(NSAID, acetaminophen, gabapentinoid, antidepressant, muscle relaxant) at baseline.",
           _BASE),
    Column("mri_available", "boolean", "A lumbar MRI within 12 months before the injection is "
           "on file. When false every other MRI column is empty.", _MRI),
    Column("nerve_root_compression", "boolean", "MRI shows compression (contact with "
           "deformation or displacement) of a lumbosacral nerve root.", _MRI, required=False,
           missing="empty when `mri_available` is false"),
    Column("disc_herniation_grade", "integer", "Worst disc finding: 0 none, 1 bulge, 2 "
           "protrusion, 3 extrusion or sequestration.", _MRI, minimum=0, maximum=3,
           required=False, missing="empty when `mri_available` is false"),
    Column("canal_stenosis_grade", "integer", "Central canal stenosis: 0 none, 1 mild, 2 "
           "moderate, 3 severe.", _MRI, minimum=0, maximum=3, required=False,
           missing="empty when `mri_available` is false"),
    Column("foraminal_stenosis_grade", "integer", "Worst foraminal stenosis on the "
           "symptomatic side: 0 none, 1 mild, 2 moderate, 3 severe.", _MRI, minimum=0,
           maximum=3, required=False, missing="empty when `mri_available` is false"),
    Column("degenerative_grade", "integer", "Degenerative change (disc desiccation, facet "
           "arthropathy, endplate change): 0 none, 1 minor, 2 moderate, 3 severe.", _MRI,
           minimum=0, maximum=3, required=False,
           missing="empty when `mri_available` is false"),
    Column("mri_levels", "string", "Level(s) with a finding, separated by `;` (e.g. "
           "`L4-L5;L5-S1`); empty when the MRI shows nothing.", _MRI, required=False,
           missing="empty when no level has a finding or no MRI",
           pattern=r"(L1-L2|L2-L3|L3-L4|L4-L5|L5-S1)(;(L1-L2|L2-L3|L3-L4|L4-L5|L5-S1))*"),
    Column("pathology_concordant", "boolean", "The MRI pathology (root compression, disc "
           "herniation grade 2+ or stenosis grade 2+) explains the symptoms (level and side "
           "agree with the dermatomal pain). False when there is no such pathology.", _MRI,
           required=False, missing="empty when `mri_available` is false"),
    Column("esi_approach", "category", "Approach of the epidural steroid injection.", _PROC,
           allowed=("transforaminal", "interlaminar")),
    Column("esi_level", "category", "Level injected (the lower vertebra of the interspace for "
           "interlaminar, the foramen for transforaminal).", _PROC,
           allowed=("L3-L4", "L4-L5", "L5-S1", "S1")),
)


def _follow_up(t: int) -> tuple[Column, ...]:
    g = f"follow-up at {t} weeks"
    cond = f"empty when `visit_missed_{t}w` is true, required otherwise"
    return (
        Column(f"visit_missed_{t}w", "boolean", f"The {t}-week visit did not take place (lost "
               "to follow-up or withdrew); every other column of the visit is then empty.",
               g, visit=t),
        Column(f"leg_pain_{t}w", "number", "Average leg pain over the past week.", g,
               unit="NRS 0-10", minimum=0, maximum=10, step=0.5, required=False,
               missing=cond, visit=t),
        Column(f"back_pain_{t}w", "number", "Average low back pain over the past week.", g,
               unit="NRS 0-10", minimum=0, maximum=10, step=0.5, required=False,
               missing=cond, visit=t),
        Column(f"odi_{t}w", "number", "Oswestry Disability Index, scored as at baseline.", g,
               unit="percent", minimum=0, maximum=100, required=False, missing=cond, visit=t),
        Column(f"gpe_{t}w", "integer", "Global perceived effect: 1 very much improved, 2 much "
               "improved, 3 slightly improved, 4 no change, 5 slightly worse, 6 much worse, 7 "
               "very much worse. Positive = 1 or 2.", g, minimum=1, maximum=7, required=False,
               missing=cond, visit=t),
        Column(f"satisfaction_{t}w", "integer", "Satisfaction with the treatment: 1 very "
               "dissatisfied, 2 dissatisfied, 3 neutral, 4 satisfied, 5 very satisfied. "
               "Satisfied = 4 or 5.", g, minimum=1, maximum=5, required=False, missing=cond,
               visit=t),
        Column(f"analgesic_use_{t}w", "boolean", "Taking a non-opioid analgesic for the pain "
               "(as `baseline_analgesic_use`).", g, required=False, missing=cond, visit=t),
        Column(f"mme_{t}w", "number", "Daily opioid dose in morphine milligram equivalents.",
               g, unit="mg MME/day", minimum=0, maximum=1000, required=False, missing=cond,
               visit=t),
        Column(f"additional_intervention_{t}w", "boolean", "Any additional pain intervention "
               "(repeat injection, other procedure, surgery) between the ESI and this visit. "
               "Cumulative: true at 4 weeks implies true at 12 weeks.", g, required=False,
               missing=cond, visit=t),
        Column(f"additional_intervention_days_{t}w", "integer", "Days from the ESI to the "
               "first additional intervention.", g, unit="days", minimum=0, maximum=7 * t,
               required=False,
               missing=f"required when `additional_intervention_{t}w` is true, empty otherwise",
               visit=t),
    )


COLUMNS: tuple[Column, ...] = _BASE_COLUMNS + tuple(
    c for t in FOLLOW_UP_WEEKS for c in _follow_up(t)
)

#: Column name -> :class:`Column`, in file order.
SCHEMA: dict[str, Column] = {c.name: c for c in COLUMNS}

CROSS_RULES: tuple[CrossRule, ...] = (
    CrossRule("duplicate-id", ("patient_id",), "`patient_id` is unique in the file."),
    CrossRule("mme-without-opioid", ("opioid_use", "baseline_mme"),
              "`baseline_mme` is 0 when `opioid_use` is false and above 0 when it is true."),
    CrossRule("mri-missing-findings", ("mri_available",),
              "MRI finding columns are empty when `mri_available` is false and filled when it "
              "is true."),
    CrossRule("concordant-without-pathology",
              ("pathology_concordant", "nerve_root_compression", "disc_herniation_grade",
               "canal_stenosis_grade", "foraminal_stenosis_grade"),
              "`pathology_concordant` can be true only when the MRI shows a pathology: root "
              "compression, disc herniation grade 2 or more, or stenosis grade 2 or more."),
    CrossRule("levels-without-finding", ("mri_levels",),
              "`mri_levels` is empty when every MRI grade is 0 and there is no root "
              "compression."),
    CrossRule("mri-blinded-arm", ("mri_blinded_arm", "source_study"),
              "`mri_blinded_arm` is filled for `mri_rct` patients and empty otherwise."),
    CrossRule("missed-visit-empty", ("visit_missed_4w", "visit_missed_12w"),
              "When a visit is missed, its other columns are empty; when it took place, they "
              "are filled."),
    CrossRule("intervention-days", ("additional_intervention_4w",
                                    "additional_intervention_12w"),
              "`additional_intervention_days_{t}w` is filled exactly when "
              "`additional_intervention_{t}w` is true."),
    CrossRule("intervention-cumulative", ("additional_intervention_4w",
                                          "additional_intervention_12w"),
              "An additional intervention before the 4-week visit is also before the 12-week "
              "visit (true at 4 weeks implies true at 12 weeks, with the same days)."),
    CrossRule("date-future", ("procedure_date",), "`procedure_date` is not after the day of "
              "validation."),
)

#: Fragments of column names that suggest a direct identifier (matched case-insensitively on
#: the name with ``_``/``-``/spaces removed). See :mod:`esi.validate`.
IDENTIFIER_NAME_HINTS: dict[str, str] = {
    "name": "a person's name",
    "surname": "a person's name",
    "initials": "a person's initials",
    "mrn": "a medical record number",
    "medicalrecord": "a medical record number",
    "recordnumber": "a medical record number",
    "hospitalnumber": "a medical record number",
    "nhsnumber": "a national health number",
    "ssn": "a social security number",
    "socialsecurity": "a social security number",
    "dob": "a date of birth",
    "dateofbirth": "a date of birth",
    "birthdate": "a date of birth",
    "birthday": "a date of birth",
    "address": "an address",
    "street": "an address",
    "zip": "a postal code",
    "postcode": "a postal code",
    "postalcode": "a postal code",
    "phone": "a telephone number",
    "telephone": "a telephone number",
    "mobile": "a telephone number",
    "fax": "a fax number",
    "email": "an e-mail address",
    "mail": "an e-mail address",
}


def column(name: str) -> Column:
    """Return the :class:`Column` called ``name``; raise ``KeyError`` naming it otherwise."""
    try:
        return SCHEMA[name]
    except KeyError:
        raise KeyError(f"no column {name!r} in the registry schema") from None


def follow_up_columns(weeks: int) -> tuple[Column, ...]:
    """The columns of the visit at ``weeks`` (4 or 12), ``visit_missed_{t}w`` first."""
    if weeks not in FOLLOW_UP_WEEKS:
        raise ValueError(f"weeks must be one of {FOLLOW_UP_WEEKS}, got {weeks!r}")
    return tuple(c for c in COLUMNS if c.visit == weeks)


def required_columns() -> tuple[str, ...]:
    """Names of the columns every registry file must have in its header (all of them)."""
    return tuple(SCHEMA)


def render_data_dictionary(calibration: str | None = None) -> str:
    """Render the data dictionary (``data/README.md``) from :data:`SCHEMA`.

    Parameters
    ----------
    calibration
        Markdown of the synthetic registry's calibration table, appended as its own section
        (:func:`esi.synthetic.calibration_markdown`). ``None`` looks it up when
        :mod:`esi.synthetic` is available.

    Returns
    -------
    str
        Markdown text. ``tests/test_schema.py`` checks that ``data/README.md`` equals it.
    """
    if calibration is None:
        try:
            from esi.synthetic import calibration_markdown
        except ImportError:
            calibration = ""
        else:
            calibration = calibration_markdown()
    lines = [
        "# Data dictionary: registry of lumbar epidural steroid injections",
        "",
        "<!-- Generated by `esi schema --write` from esi/schema.py. Do not edit by hand. -->",
        "",
        "One row per patient. Every column below must be present in the header, in any order;",
        "no other column is allowed (a column that looks like a direct identifier is refused",
        "as a privacy problem). Check a file with `esi validate FILE` (CSV, Parquet or Excel).",
        "",
        "- Missing values are empty cells or `NA`; nothing else means missing.",
        "- Booleans are `true`/`false` (`yes`/`no` and `1`/`0` are read too).",
        "- Dates are ISO 8601 (`YYYY-MM-DD`).",
        "- Follow-up columns end in `_4w` or `_12w`. A missed visit leaves every other column",
        "  of that visit empty: it is a missing value in the analysis, never a zero.",
        f"- *Analgesic reduction* at a visit: daily MME down by at least "
        f"{int(ANALGESIC_REDUCTION_FRACTION * 100)}% from a",
        "  baseline above 0, or a non-opioid analgesic taken at baseline and stopped.",
        "- *Positive global perceived effect*: `gpe` 1 or 2. *Satisfied*: `satisfaction` 4 or 5.",
        "- *Positive outcome* (composite, pre-designated): leg pain down by at least the success",
        "  threshold (default 2 points) AND a positive global perceived effect AND no additional",
        "  intervention before the visit.",
        "",
        "Folders: `data/synthetic/` holds the embedded synthetic registry (generated by",
        "`esi synth`, regenerated byte-identically; it is not patient data). `data/raw/` is for a",
        "user's own registry export: git-ignored, opened read-only, never edited by hand.",
        "esi writes into `data/` only with `esi synth` (a new file, or one it wrote before) and",
        "`esi schema --write` (this file). `esi run`, `esi sweep` and `esi multiverse` refuse",
        "(exit code 2) an output folder in `data/`, the folder holding the registry or any folder",
        "above it, and any existing file or folder that esi did not make (README, \"Where esi",
        "writes\").",
        "",
    ]
    groups: list[str] = []
    for c in COLUMNS:
        if c.group not in groups:
            groups.append(c.group)
    for g in groups:
        lines += [f"## {g[0].upper()}{g[1:]}", "",
                  "| column | type | unit | allowed values | missing values | meaning |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for c in COLUMNS:
            if c.group != g:
                continue
            missing = c.missing if not c.required else "not allowed"
            lines.append(f"| `{c.name}` | {c.dtype} | {c.unit} | {c.allowed_text()} | "
                         f"{missing} | {c.description} |")
        lines.append("")
    lines += ["## Rules across columns", "", "| rule | columns | what it says |",
              "| --- | --- | --- |"]
    for r in CROSS_RULES:
        cols = ", ".join(f"`{c}`" for c in r.columns)
        lines.append(f"| `{r.name}` | {cols} | {r.text} |")
    lines += ["", "## Direct identifiers", "",
              "Every column of the file is judged, whatever a mapping does with it (a column "
              "listed under `drop:` included). A column whose name suggests a direct "
              "identifier (" +
              ", ".join(sorted({v for v in IDENTIFIER_NAME_HINTS.values()})) +
              "), or whose values look like personal names, free text naming a person (a "
              "title and a name, `patient: Firstname Lastname`, or two capitalised words that "
              "are no category or clinical words), e-mail addresses, telephone numbers, "
              "medical record or national identity numbers, street addresses, postal codes "
              "(UK, Canadian and Dutch postcodes, ZIP+4, and a column of bare 5-digit codes - "
              "the patient id excepted), or dates of birth (most dates before 1990, or, for "
              "any adult age, at least 80% of the dates 18 to 110 years before the row's "
              "procedure date, else its latest other date, else today) is reported as a "
              "privacy problem naming the file, the column and the rule (never a value), and "
              "the file is refused (see `esi/deid.py`). For real data `esi run` also reduces "
              "exact dates to the year and replaces patient ids by keyed pseudonyms.", "",
              "## Synthetic or real", "",
              "Decided by the data, never by a flag or a path: a registry is synthetic only "
              "when esi can prove it generated it - its first line is the header `esi synth` "
              "writes, naming the seed, and its SHA-256 equals that of the file `esi synth "
              "--seed SEED` writes (`esi.synthetic.is_generated`) - and it is read without a "
              "mapping. Everything else is real data. `synthetic: true` (`esi run "
              "--synthetic`) on real data is refused (exit code 2); `synthetic: false` treats "
              "even the synthetic registry as real.", "",
              "## Where esi writes (outputs never replace your files)", "",
              "`esi run`, `esi sweep` and `esi multiverse` write their folder `--out DIR` only "
              "when `DIR` does not exist, is empty, or is a complete earlier esi output of the "
              "same kind (it holds the marker `esi-output.json` naming that kind, and no file "
              "the marker does not list). Anything else is refused with exit code 2 and a "
              "message naming the path: another file or folder, the project root or a folder "
              "above it, `data/` and the project's source folders, an input file (registry, "
              "mapping, parameter or grid file), the folder holding one or any folder above it. "
              "`esi synth --out FILE` replaces only a file `esi synth` wrote (recognised by its "
              "header). Replacing an earlier output is atomic; relative paths on the command "
              "line are taken from the current folder (`esi/outputs.py`; README: Where esi "
              "writes).", ""]
    try:
        from esi.disclosure import rule_text
    except ImportError:  # pragma: no cover - the package is installed whole
        rule_text = None
    if rule_text is not None:
        lines += ["## Real data: disclosure control", "",
                  "What every output of a run on real data shows (CSV files, the notebooks and "
                  "their HTML, figure labels, `sweep.csv` and the sweep's `index.html`, "
                  "`multiverse.csv`), by one mechanism (`esi/disclosure.py`):", "",
                  rule_text().rstrip(), ""]
    if calibration:
        lines += [calibration.rstrip(), ""]
    return "\n".join(lines)
