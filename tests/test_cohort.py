from __future__ import annotations

import datetime as dt

import pytest

from esi.cohort import define_cohort, imaging_group


def test_imaging_groups(registry_frame):
    groups = imaging_group(registry_frame)
    assert (groups.iloc[::2] == "near_normal").all()
    assert (groups.iloc[1::2] == "abnormal").all()


def test_flow_counts_each_exclusion(registry_frame):
    reg = registry_frame.copy()
    reg.loc["T001", "prior_spine_surgery"] = True
    reg.loc["T002", "age"] = 16
    reg.loc["T003", "pathology_concordant"] = False
    reg.loc["T004", "pathology_concordant"] = False  # pathology, not concordant
    reg.loc["T005", "degenerative_grade"] = 3  # near-normal otherwise
    reg.loc["T006", ["visit_missed_4w", "visit_missed_12w"]] = True
    cohort = define_cohort(reg)
    flow = cohort.flow.set_index("step")
    assert flow.loc["adult", "n_excluded"] == 1
    assert flow.loc["no_prior_surgery", "n_excluded"] == 1
    assert flow.loc["followed_up", "n_excluded"] == 1
    assert flow.loc["imaging_group", "n_excluded"] == 2
    assert flow.loc["imaging_group", "reasons"] == (
        "MRI pathology not concordant with symptoms: 1; moderate/severe degeneration without "
        "concordant pathology: 1")
    assert list(cohort.eligible.index) == ["T003", "T007", "T008"]
    assert cohort.n_near_normal == 2 and cohort.n_abnormal == 1
    assert flow["n_after"].iloc[-1] == len(cohort.eligible)
    assert set(cohort.excluded.index) == {"T001", "T002", "T004", "T005", "T006"}


def test_window_is_checked(registry_frame):
    cohort = define_cohort(registry_frame, window_start=dt.date(2015, 1, 1))
    assert cohort.flow.iloc[0]["n_excluded"] == int(
        (registry_frame["procedure_date"] < "2015-01-01").sum())
    with pytest.raises(ValueError, match="is before window_start"):
        define_cohort(registry_frame, window_start=dt.date(2020, 1, 1),
                      window_end=dt.date(2019, 1, 1))
