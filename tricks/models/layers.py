"""Layers shared by every model: inverted dropout and 1-D/2-D conv helpers.

`Dropout` is inverted dropout (Srivastava et al., "Dropout: A Simple Way to Prevent
Neural Networks from Overfitting", JMLR 2014); see its docstring for why it is not torch's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

KEEP_BITS = 16  # the keep test compares 16 random bits with a threshold: p in steps of 2⁻¹⁶
AHEAD_ELEMS = 1 << 20  # masks drawn ahead (`draw_ahead`) at most this many numbers per layer


class Dropout(nn.Dropout):
    """Inverted dropout with drop probability p: x · 1[keep] / (1 − p), keep ~ Bernoulli(1 − p).

    As nn.Dropout: each element kept independently, kept values scaled by
    1/(1 − p), the identity in eval mode or when p = 0; drawn from torch's global
    RNG, so checkpoints that save that RNG resume exactly. Why not nn.Dropout:
    its CPU kernel fills the mask with `bernoulli_`, about 3× slower than
    comparing uniforms with p, and random-number generation is the floor of the
    cost. So the keep test uses 16 random bits per element, not a float32
    uniform (≈24 bits): one 64-bit draw of torch's generator serves 4 elements,
    ≈1 ns per element instead of ≈3 ns. The price is a keep probability in steps
    of 2⁻¹⁶: round((1 − p)·2¹⁶)/2¹⁶, within 2⁻¹⁷ ≈ 7.6e-6 of 1 − p (`keep_probability`);
    the scale stays exactly 1/(1 − p), as nn.Dropout's.

    `draw_ahead(layers, n)` lets each layer draw the masks of its next n training
    forwards in one go (the training loop does it per chunk of steps), so the
    fixed cost of the half-dozen ops that make a mask is paid once per chunk.
    The masks are those n single draws would give, one layer's after the other.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__(p, inplace)
        self.ahead = _Ahead()  # a plain object: nn.Module's __setattr__ is slow per step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        st = self.ahead
        if st.masks is not None and st.used < st.masks.shape[0] and st.masks.shape[1:] == x.shape:
            mask = st.masks[st.used]
            st.used += 1
        else:
            mask = st.draw(x.shape, self.p, x.device)
        return x * (mask if mask.dtype == x.dtype else mask.to(x.dtype))


class _Ahead:
    """A Dropout layer's masks drawn in advance, and how many forwards may still take one."""

    def __init__(self) -> None:
        self.left = 0  # forwards left that may take a mask drawn in advance
        self.masks: torch.Tensor | None = None  # (k, *shape)
        self.used = 0  # of them

    def draw(self, shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
        """This forward's mask, and the next ones' when `left` says so."""
        k = max(1, min(self.left, AHEAD_ELEMS // max(1, math.prod(shape))))
        self.left = max(0, self.left - k)
        if k == 1:
            self.masks = None
            return keep_mask(shape, p, device)
        self.masks, self.used = keep_mask((k, *shape), p, device), 1
        return self.masks[0]


def dropouts(model: nn.Module) -> list[Dropout]:
    """The model's Dropout layers that drop anything (p > 0)."""
    return [m for m in model.modules() if isinstance(m, Dropout) and m.p > 0]


def draw_ahead(layers: list[Dropout], n: int) -> None:
    """Each layer draws the masks of its next n training forwards at once (see `Dropout`).

    Masks left from an earlier call are dropped: call it where the previous n
    forwards are done (a checkpoint in between saves the RNG after those draws).
    """
    for m in layers:
        m.ahead.left, m.ahead.masks = n, None


def keep_threshold(p: float) -> float:
    """t such that a uniform int16 v is kept when v ≥ t, with probability keep_probability(p)."""
    return float(2 ** (KEEP_BITS - 1) - round((1.0 - p) * 2**KEEP_BITS))


def keep_probability(p: float) -> float:
    """The keep probability that `keep_mask` draws: 1 − p rounded to a multiple of 2⁻¹⁶."""
    return round((1.0 - p) * 2**KEEP_BITS) / 2**KEEP_BITS


def keep_mask(shape: Sequence[int], p: float, device: torch.device) -> torch.Tensor:
    """float32 mask of `shape`: 1/(1 − p) where kept (probability keep_probability(p)), else 0.

    On the CPU, the masks of (k, *s) are those of k draws of s one after the other."""
    *lead, last = shape if len(shape) else (1,)
    words = -(-last // 4)  # 64 random bits per 4 elements of the last axis
    # the full 64-bit range: every bit uniform (random_ with narrower ranges takes a modulo)
    bits = torch.empty((*lead, words), dtype=torch.int64, device=device).random_(-(2**63), None)
    v = bits.view(torch.int16)  # (*lead, 4·words), each uniform on [−2¹⁵, 2¹⁵)
    if 4 * words != last:
        v = v[..., :last]
    # compared in float32 (an exact copy of int16; its compare is the fast vectorized one)
    return v.float().ge_(keep_threshold(p)).mul_(1.0 / (1.0 - p)).reshape(shape)


def conv_cls(dim: int) -> type[nn.Conv1d] | type[nn.Conv2d]:
    return nn.Conv1d if dim == 1 else nn.Conv2d


def bn_cls(dim: int) -> type[nn.BatchNorm1d] | type[nn.BatchNorm2d]:
    return nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d


def halve(spatial: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-dimension factor 2 where the size allows it (>= 2), else 1; and the new sizes."""
    factors = tuple(2 if s >= 2 else 1 for s in spatial)
    return factors, tuple(s // f for s, f in zip(spatial, factors, strict=True))


def kaiming_convs(model: nn.Module) -> None:
    """He-normal (fan_out, ReLU) init of every conv, as torchvision's ResNets do."""
    for m in model.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def zero_last_bns(blocks: nn.Module) -> None:
    """zero_init_residual for post-activation blocks: each block's last BN starts at γ = 0."""
    for b in blocks.children():
        nn.init.zeros_(b.bn2.weight)  # type: ignore[union-attr]
