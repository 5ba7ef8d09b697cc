"""Welch's t-test against scipy (the oracle), including the incomplete beta it rests on."""

from __future__ import annotations

import numpy as np
import pytest

from tricklab.welch import betainc, welch

scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")


@pytest.mark.parametrize(
    "a,b,x",
    [(0.5, 0.5, 0.3), (1.0, 0.5, 0.9), (2.5, 0.5, 0.01), (30.0, 0.5, 0.97), (1.7, 4.2, 0.5)],
)
def test_betainc_matches_scipy(a, b, x):
    assert betainc(a, b, x) == pytest.approx(scipy_special.betainc(a, b, x), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("seed", range(12))
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    na, nb = rng.integers(2, 8, size=2)
    a = rng.normal(0.9, rng.uniform(0.001, 0.05), na).tolist()
    b = rng.normal(0.9 + rng.uniform(-0.05, 0.05), rng.uniform(0.001, 0.05), nb).tolist()
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    got = welch(a, b)
    assert got.t == pytest.approx(ref.statistic, rel=1e-9)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-12)


def test_hand_values():
    # a = [1,2,3]: mean 2, s² 1; b = [4,5,6]: mean 5, s² 1 → t = −3/sqrt(2/3), df = 4
    w = welch([1, 2, 3], [4, 5, 6])
    assert w.t == pytest.approx(-3 / (2 / 3) ** 0.5)
    assert w.df == pytest.approx(4.0)


def test_not_applicable():
    assert welch([0.9], [0.8, 0.85]).p is None and "n/a" in welch([0.9], [0.8, 0.85]).note
    assert welch([0.9, 0.9], [0.9, 0.9]).p is None
