"""GRIM and GRIMMER (esi.grim): published examples and an exhaustive enumeration."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from esi.grim import (
    ODI_COMPLETE,
    ODI_ONE_SKIPPED,
    ODI_TWO_SKIPPED,
    consistent_n,
    grim,
    grim_percent,
    grimmer,
)


# --- published examples -----------------------------------------------------------------------
def test_grim_brown_heathers_2017_example():
    # Brown NJL, Heathers JAJ. The GRIM test. Soc Psychol Personal Sci 2017;8:363-369: a mean
    # of 5.19 from 28 integer responses is impossible (145/28 = 5.18, 146/28 = 5.21).
    res = grim(5.19, 28, 2)
    assert not res.consistent
    assert res.nearest_below == pytest.approx(145 / 28)
    assert res.nearest_above == pytest.approx(146 / 28)
    assert grim(5.18, 28, 2).consistent and grim(5.21, 28, 2).consistent


def test_grim_heathers_ages_example():
    # Heathers' introduction of GRIM (2016 blog post quoted with the paper): 12 ages summing to
    # 251 give 20.92; one birthday later, 252/12 = 21.00; 20.93 cannot come from 12 ages.
    assert grim(20.92, 12, 2).consistent
    assert grim(21.00, 12, 2).consistent
    assert not grim(20.93, 12, 2).consistent


def test_grimmer_examples():
    # Examples of the rsprite2 package (Wallrich), kept in R scrutiny's
    # tests/testthat/test-grimmer.R: grimmer(5.21, 1.6, 28) TRUE, grimmer(3.44, 2.47, 18) FALSE.
    assert grimmer(5.21, 1.60, 28, 2, 2).consistent
    res = grimmer(3.44, 2.47, 18, 2, 2)
    assert res.grim_consistent and not res.consistent
    # Anaya 2016 (PeerJ Preprints 4:e2400) parity argument: the only sum of squares in the
    # interval, 317, is odd while the sum, 62, is even.
    assert res.reason == "parity"


def test_grimmer_sd_bound():
    # n = 5 values on 1-7 with mean 4.2: the SD cannot exceed sqrt(5/4 * 36 * p (1 - p)).
    assert grimmer(4.2, 3.03, 5, 1, 2, 1, lower=1, upper=7).consistent  # 1, 1, 5, 7, 7
    assert grimmer(4.2, 3.4, 5, 1, 2, 1, lower=1, upper=7).reason == "SD too large for the bounds"


# --- exhaustive enumeration: every sample of small size on small scales ------------------------
def _roundings(x: Fraction) -> set[str]:
    # Both roundings of an exact half (a reported value may use either convention).
    lo = Fraction(math.floor(x * 100), 100)
    if x * 100 - math.floor(x * 100) == Fraction(1, 2):
        return {f"{float(lo):.2f}", f"{float(lo + Fraction(1, 100)):.2f}"}
    return {f"{float(round(x, 2)):.2f}"}


def _achievable(values, n):
    means, pairs = set(), set()
    for sample in itertools.combinations_with_replacement(values, n):
        a = np.array(sample, dtype=float)
        ms = _roundings(Fraction(sum(Fraction(v) for v in sample), n))
        s = f"{float(np.std(a, ddof=1)):.2f}"
        means |= ms
        pairs |= {(m, s) for m in ms}
    return means, pairs


@pytest.mark.parametrize("n,step,top", [(3, 1, 6), (5, 1, 4), (4, 0.5, 3.0), (6, 1, 3)])
def test_grim_and_grimmer_never_reject_a_real_sample(n, step, top):
    values = [Fraction(k) * Fraction(step).limit_denominator() for k in
              range(int(round(top / step)) + 1)]
    means, pairs = _achievable(values, n)
    g = Fraction(step).limit_denominator()
    # GRIM is exact inside the scale's range: a mean passes iff some sample has it.
    for k in range(0, int(top * 100) + 1):
        m = f"{k / 100:.2f}"
        assert grim(m, n, 2, g).consistent == (m in means), m
    # GRIMMER is a necessary condition: no achieved (mean, SD) may be rejected.
    for m, s in pairs:
        assert grimmer(m, s, n, 2, 2, g, lower=0, upper=top).consistent, (m, s)


def test_grimmer_rejects_a_share_of_random_pairs():
    # Not a tautology: among GRIM-consistent means, some SDs must be rejected.
    rejected = sum(not grimmer(2.5, s / 100, 6, 2, 2).consistent for s in range(50, 200))
    assert rejected > 10


# --- the study's figures ----------------------------------------------------------------------
def test_odi_mean_needs_forms_with_two_skipped_sections():
    # 8.64 x 14 = 120.96: no even sum (complete forms) rounds to it.
    assert not grim(8.64, 14, 2, ODI_COMPLETE).consistent
    # Mixing complete forms with forms missing one section: sums in steps of 2/9 -> no.
    assert not grim(8.64, 14, 2, Fraction(2, 9)).consistent
    assert ODI_ONE_SKIPPED == Fraction(20, 9)
    # Mixing with forms missing two sections (steps of 2.5): sums in steps of 0.5 -> 121 works.
    assert ODI_TWO_SKIPPED == Fraction(5, 2)
    assert grim(8.64, 14, 2, Fraction(1, 2)).consistent
    sample = np.array([20.5, 22.5] + [24, 14, 4, 6, -4, -6, 4, 20, -2, 0, 22, -4], dtype=float)
    assert round(sample.mean(), 2) == 8.64
    assert grim(0, 14, 2, ODI_COMPLETE).consistent
    assert grimmer(0, 7.69, 14, 2, 2, ODI_COMPLETE).consistent


def test_percentages_and_smaller_n():
    assert grim_percent(28.57, 14, 2).consistent
    assert grim_percent(50, 14, 2).consistent
    assert not grim_percent(28.58, 14, 2).consistent
    # No n up to 14 makes 8.64 possible on complete ODI forms; some larger n would.
    assert consistent_n(8.64, 2, ODI_COMPLETE, range(2, 15)) == []
    assert consistent_n(8.64, 2, ODI_COMPLETE, range(15, 60))
    # 1.20 is impossible from 13 integers (15/13 = 1.15, 16/13 = 1.23) but fine from 10.
    assert not grim(1.20, 13, 2, 1).consistent and 10 in consistent_n(1.20, 2, 1, range(2, 14))


@pytest.mark.parametrize("g", [1, Fraction(1, 2), ODI_COMPLETE, Fraction(2, 9), ODI_TWO_SKIPPED])
def test_consistent_n_is_the_verdict_at_each_n(g):
    # consistent_n works the rounding intervals out once; its answer must be, n by n, that of
    # grim (a mean) and grimmer (a mean and SD).
    ns = range(-1, 45)
    for mean, sd in itertools.product([2.36, 0.75, 8.64, 0.0, 5.19], [2.55, 1.73, 11.36, 0.0]):
        assert consistent_n(mean, 2, g, range(1, 45)) == [
            n for n in range(1, 45) if grim(mean, n, 2, g).consistent]
        assert consistent_n(mean, 2, g, ns, sd=sd, sd_decimals=1) == [
            n for n in ns if n >= 2 and grimmer(mean, sd, n, 2, 1, g).consistent]


@pytest.mark.parametrize("kwargs", [dict(mean=1, n=0, decimals=2), dict(mean=1, n=3, decimals=-1),
                                    dict(mean=1, n=3, decimals=2, granularity=0)])
def test_argument_errors(kwargs):
    with pytest.raises(ValueError):
        grim(**kwargs)


def test_rounding_interval_is_closed_and_refuses_booleans():
    # The audit's one rounding rule (issue 15): both ends of the interval count, so an exact
    # half admits either neighbour (half up and half even).
    from esi.grim import rounding_interval, rounds_to

    assert rounding_interval("2.38", 2) == (Fraction(2375, 1000), Fraction(2385, 1000))
    assert rounds_to(Fraction(19, 8), "2.38", 2) and rounds_to(Fraction(19, 8), "2.37", 2)
    assert not rounds_to(Fraction(19, 8) - Fraction(1, 10**9), "2.38", 2)
    rounding_interval(1, 2)  # memoised: True == 1 must still be refused
    with pytest.raises(ValueError, match="boolean"):
        rounding_interval(True, 2)
    with pytest.raises(ValueError, match="boolean"):
        rounds_to(1.0, True, 2)
