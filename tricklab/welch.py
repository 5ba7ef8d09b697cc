"""Welch's unequal-variances t-test, pure Python (no scipy in the API).

B. L. Welch, "The generalization of 'Student's' problem when several different
population variances are involved", Biometrika 34 (1947).

    t  = (mean_a − mean_b) / sqrt(s_a²/n_a + s_b²/n_b)
    df = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1))   (Welch–Satterthwaite)
    p  = I_{df/(df+t²)}(df/2, 1/2)            two-sided, Student t with df degrees of freedom

s² are sample variances (ddof 1). The regularized incomplete beta I_x(a, b) is
evaluated with the continued fraction of Numerical Recipes §6.4 (modified
Lentz), which converges fast for x < (a+1)/(a+b+2) and via the symmetry
I_x(a, b) = 1 − I_{1−x}(b, a) otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TEST_NAME = "Welch's t-test (two-sided, unequal variances)"
_EPS = 1e-15
_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (Numerical Recipes betacf, modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with df (real, > 0) degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


@dataclass(frozen=True)
class WelchResult:
    t: float | None
    df: float | None
    p: float | None
    note: str | None = None  # why t/p are missing ("n/a: ...")


def mean_var(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (ddof 1; 0 for a single value)."""
    n = len(xs)
    m = math.fsum(xs) / n
    v = math.fsum((x - m) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    return m, v


def welch(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Welch's t-test of mean(a) − mean(b); p is two-sided."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return WelchResult(None, None, None, "n/a: needs at least 2 seeds in both rows")
    ma, va = mean_var(a)
    mb, vb = mean_var(b)
    sa, sb = va / na, vb / nb
    se2 = sa + sb
    if se2 <= 0.0:
        return WelchResult(None, None, None, "n/a: no variance over seeds in either row")
    t = (ma - mb) / math.sqrt(se2)
    df = se2 * se2 / (sa * sa / (na - 1) + sb * sb / (nb - 1))
    return WelchResult(t, df, t_sf_two_sided(t, df))
