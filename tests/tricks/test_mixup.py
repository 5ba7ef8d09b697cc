"""Label smoothing values, mixup/CutMix targets, λ's distribution against numpy's Beta."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tricks.mixup import (
    cutmix,
    cutmix_box,
    host_rng,
    mix_batch,
    plan_mixing,
    sample_lambda,
    smooth_targets,
    soft_cross_entropy,
)
from tricks.spec import CutMixSpec, MixupSpec, RegularizationSpec


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_smooth_targets_hand_values() -> None:
    t = smooth_targets(torch.tensor([2, 0]), 4, 0.1)
    expected = torch.tensor([[0.025, 0.025, 0.925, 0.025], [0.925, 0.025, 0.025, 0.025]])
    torch.testing.assert_close(t, expected)
    torch.testing.assert_close(t.sum(1), torch.ones(2))
    assert torch.equal(smooth_targets(torch.tensor([1]), 3, 0.0), torch.tensor([[0.0, 1.0, 0.0]]))


def test_soft_cross_entropy_matches_torch_label_smoothing() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(16, 5), torch.randint(0, 5, (16,))
    ours = soft_cross_entropy(logits, smooth_targets(y, 5, 0.2))
    torch.testing.assert_close(ours, F.cross_entropy(logits, y, label_smoothing=0.2))
    hard = soft_cross_entropy(logits, smooth_targets(y, 5, 0.0))
    torch.testing.assert_close(hard, F.cross_entropy(logits, y))


def batch(n: int = 16, k: int = 4, eps: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(n, 1, 6, 6)
    y = torch.arange(n) % k
    return x, smooth_targets(y, k, eps)


def test_mixup_is_a_convex_combination_with_a_permutation() -> None:
    x, t = batch()
    reg = RegularizationSpec(mixup=MixupSpec(alpha=1.0))
    xm, tm = mix_batch(x, t, reg, "image", gen(3))
    torch.testing.assert_close(tm.sum(1), torch.ones(len(t)))
    # Recompute by hand from the same generator draws: seed → λ, then the permutation.
    g = gen(3)
    rng = host_rng(g)
    lam = sample_lambda(1.0, rng)
    perm = torch.randperm(len(x), generator=g)
    assert sorted(perm.tolist()) == list(range(len(x)))
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(tm, lam * t + (1 - lam) * t[perm])
    assert 0 < lam < 1


def test_same_seed_same_batch_different_seed_differs() -> None:
    x, t = batch()
    reg = RegularizationSpec(mixup=MixupSpec(alpha=0.4), cutmix=CutMixSpec())
    a = mix_batch(x, t, reg, "image", gen(7))
    b = mix_batch(x, t, reg, "image", gen(7))
    c = mix_batch(x, t, reg, "image", gen(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_global_rng_is_untouched() -> None:
    x, t = batch()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    mix_batch(x, t, RegularizationSpec(mixup=MixupSpec()), "image", gen(0))
    assert torch.equal(torch.rand(3), expected)


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic, on a fine grid of [0, 1]."""
    grid = np.linspace(0, 1, 401)
    cdf = [np.searchsorted(np.sort(v), grid, "right") / len(v) for v in (a, b)]
    return float(np.abs(cdf[0] - cdf[1]).max())


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_lambda_follows_beta_alpha_alpha(alpha: float) -> None:
    g = gen(0)
    ours = np.array([sample_lambda(alpha, host_rng(g)) for _ in range(2000)])
    oracle = np.random.default_rng(99).beta(alpha, alpha, 20000)
    # KS critical value at 1% for n=2000 vs 20000 is about 0.038.
    assert ks_distance(ours, oracle) < 0.05
    assert abs(ours.mean() - 0.5) < 0.03
    if alpha == 0.2:
        assert np.mean((ours < 0.1) | (ours > 0.9)) > 0.6


def test_lambda_recovered_from_mixed_targets_matches_beta() -> None:
    """Through mix_batch itself: with sample i of class i, row i holds λ on class i
    whenever its partner is another sample."""
    n = 8
    x = torch.zeros(n, 3)
    t = smooth_targets(torch.arange(n), n, 0.0)
    reg = RegularizationSpec(mixup=MixupSpec(alpha=0.2))
    g = gen(5)
    lams = []
    for _ in range(1500):
        _, tm = mix_batch(x, t, reg, "tabular", g)
        rows = (tm > 0).sum(1) == 2  # mixed with another sample (and 0 < λ < 1)
        if rows.any():
            i = int(torch.nonzero(rows)[0])
            lams.append(tm[i, i].item())
    oracle = np.random.default_rng(1).beta(0.2, 0.2, 20000)
    assert len(lams) > 1400
    assert ks_distance(np.array(lams), oracle) < 0.06


def test_mixup_prob_zero_leaves_batch_unchanged() -> None:
    x, t = batch()
    xm, tm = mix_batch(x, t, RegularizationSpec(mixup=MixupSpec(prob=0.0)), "image", gen(0))
    assert xm is x and tm is t


def test_cutmix_box_and_area_corrected_lambda() -> None:
    x, t = batch(n=8)
    perm = torch.roll(torch.arange(8), 1)
    box = (1, 4, 2, 6)  # 3 × 4 = 12 of 36 pixels
    xm, tm, lam = cutmix(x, t, box, perm)
    assert lam == pytest.approx(1 - 12 / 36)
    inside = torch.zeros(6, 6, dtype=torch.bool)
    inside[1:4, 2:6] = True
    assert torch.equal(xm[..., inside], x[perm][..., inside])
    assert torch.equal(xm[..., ~inside], x[..., ~inside])
    torch.testing.assert_close(tm, lam * t + (1 - lam) * t[perm])


def test_cutmix_box_is_clipped_and_near_the_requested_area() -> None:
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(500):
        y0, y1, x0, x1 = cutmix_box(32, 32, 0.75, rng)
        assert 0 <= y0 <= y1 <= 32 and 0 <= x0 <= x1 <= 32
        areas.append((y1 - y0) * (x1 - x0))
    assert max(areas) == 16 * 16  # unclipped boxes have area (1 − λ)·H·W
    assert min(areas) < 16 * 16  # clipped ones less


def test_mix_batch_with_cutmix_only_keeps_rows_summing_to_one() -> None:
    x, t = batch()
    reg = RegularizationSpec(cutmix=CutMixSpec(alpha=1.0), label_smoothing=0.1)
    for seed in range(10):
        xm, tm = mix_batch(x, t, reg, "image", gen(seed))
        torch.testing.assert_close(tm.sum(1), torch.ones(len(t)))
        changed = (xm != x).flatten(1).any(1)
        # pixels are either from the sample or its partner
        assert xm.shape == x.shape and changed.any() | (tm == t).all()


def test_cutmix_is_skipped_for_non_images() -> None:
    x, t = torch.randn(8, 1, 16), smooth_targets(torch.arange(8) % 2, 2, 0.0)
    xm, tm = mix_batch(x, t, RegularizationSpec(cutmix=CutMixSpec()), "sequence", gen(0))
    assert xm is x and tm is t


def test_both_enabled_picks_each_sometimes() -> None:
    x, t = batch()
    reg = RegularizationSpec(mixup=MixupSpec(alpha=1.0), cutmix=CutMixSpec(alpha=1.0))
    kinds = set()
    for seed in range(20):
        xm, _ = mix_batch(x, t, reg, "image", gen(seed))
        # CutMix copies pixels exactly, so most pixels equal the input; mixup changes them all.
        kinds.add("cutmix" if (xm == x).float().mean() > 0.3 else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_mix_batches_mixes_each_batch_within_itself_with_its_own_lambda() -> None:
    """Hand oracle: sample i is class i (one-hot) and has the value i; batch b mixed with λ_b
    must give row i = λ_b on class i plus 1−λ_b on one partner from the same batch, and
    x̃_i = λ_b·i + (1−λ_b)·partner; λ = 1 (an unmixed batch) gives the batch back exactly."""
    from tricks.mixup import Mix, mix_batches

    c, bs = 3, 8
    n = c * bs
    x = torch.arange(n, dtype=torch.float32).view(n, 1)
    t = torch.eye(n)
    mixes = [Mix("mixup", 0.7), None, Mix("mixup", 0.25)]
    lams = torch.tensor([0.7, 1.0, 0.25])
    xm, tm = mix_batches(x, t, mixes, lams, gen(5))
    assert torch.equal(xm[bs : 2 * bs], x[bs : 2 * bs]) and torch.equal(
        tm[bs : 2 * bs], t[bs : 2 * bs]
    )
    partners = []
    for b, lam in ((0, 0.7), (2, 0.25)):
        for i in range(b * bs, (b + 1) * bs):
            row = tm[i]
            others = [j for j in range(n) if j != i and row[j] > 0]
            if not others:  # its own partner
                assert row[i].item() == pytest.approx(1.0)
                j = i
            else:
                (j,) = others
                assert row[i].item() == pytest.approx(lam) and row[j].item() == pytest.approx(
                    1 - lam
                )
            assert b * bs <= j < (b + 1) * bs
            assert xm[i, 0].item() == pytest.approx(lam * i + (1 - lam) * j)
            partners.append(j)
    assert sorted(partners) == [*range(bs), *range(2 * bs, 3 * bs)]  # a permutation per batch


def test_mixup_only_plan_draws_the_lambdas_of_single_draws() -> None:
    # the one-call plan (mixup alone, prob 1) is the sequence of one Beta draw per batch
    reg = RegularizationSpec(mixup={"alpha": 0.4})
    plan = plan_mixing(reg, "image", (8, 8), 30, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    assert [m.lam for m in plan if m is not None] == [sample_lambda(0.4, rng) for _ in range(30)]
    assert all(m is not None and m.method == "mixup" and m.box is None for m in plan)
