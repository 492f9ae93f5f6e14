"""Balance primitives on hand-checkable data and against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from esi.balance import ecdf_stats, ks, smd, variance_ratio


def test_smd_conventions():
    x = np.array([1.0, 2.0, 3.0, 4.0, 2.0, 3.0, 5.0, 7.0])
    t = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    diff = x[:4].mean() - x[4:].mean()
    assert smd(x, t) == pytest.approx(diff / x[:4].std(ddof=1))
    assert smd(x, t, estimand="ATC") == pytest.approx(diff / x[4:].std(ddof=1))
    pooled = np.sqrt((x[:4].var(ddof=1) + x[4:].var(ddof=1)) / 2)
    assert smd(x, t, estimand="ATE") == pytest.approx(diff / pooled)
    # weights change the means, never the denominator
    w = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    assert smd(x, t, w) == pytest.approx((2.5 - 2.5) / 1.0, abs=1e-12)
    b = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    assert smd(b, t) == pytest.approx(0.25)  # raw difference in proportions
    assert smd(b, t, binary="std") == pytest.approx(0.25 / np.sqrt(0.5 * 0.5))
    with pytest.raises(ValueError, match="estimand"):
        smd(x, t, estimand="ATX")


def test_variance_ratio_and_ks_against_scipy():
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=300), 1)  # ties
    t = rng.integers(0, 2, size=300)
    assert variance_ratio(x, t) == pytest.approx(x[t == 1].var(ddof=1) / x[t == 0].var(ddof=1))
    # scipy.stats.ks_2samp(x1, x0).statistic
    assert ks(x, t) == pytest.approx(stats.ks_2samp(x[t == 1], x[t == 0]).statistic)
    mean, mx = ecdf_stats(x, t)
    assert 0 < mean < mx
    assert np.isnan(variance_ratio((x > 0).astype(float), t))
