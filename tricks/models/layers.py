"""Layers shared by every model: inverted dropout and 1-D/2-D conv helpers.

`Dropout` is inverted dropout (Srivastava et al., "Dropout: A Simple Way to Prevent
Neural Networks from Overfitting", JMLR 2014); see its docstring for why it is not torch's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

KEEP_BITS = 16  # the keep test compares 16 random bits with a threshold: p in steps of 2⁻¹⁶
AHEAD_ELEMS = 1 << 20  # masks of a planned chunk drawn at most this many numbers at a time
# devices whose seeded masks come from numpy's PCG64 on the host; elsewhere (CUDA) from a
# torch generator on the device. Tests set it empty to run the CUDA path on the CPU.
HOST_BITS_DEVICES = frozenset({"cpu"})


class Dropout(nn.Dropout):
    """Inverted dropout with drop probability p: x · 1[keep] / (1 − p), keep ~ Bernoulli(1 − p).

    As nn.Dropout: each element kept independently, kept values scaled by
    1/(1 − p), the identity in eval mode or when p = 0. Why not nn.Dropout:
    its CPU kernel fills the mask with `bernoulli_`, about 3× slower than
    comparing uniforms with p, and random-number generation is the floor of the
    cost. So the keep test uses 16 random bits per element, not a float32
    uniform (≈24 bits): one 64-bit draw of torch's generator serves 4 elements,
    ≈1 ns per element instead of ≈3 ns. The price is a keep probability in steps
    of 2⁻¹⁶: round((1 − p)·2¹⁶)/2¹⁶, within 2⁻¹⁷ ≈ 7.6e-6 of 1 − p (`keep_probability`);
    the scale stays exactly 1/(1 − p), as nn.Dropout's.

    Where the masks come from:
    - in a chunk of steps the training loop planned (`plan_masks`), from the
      layer's own counter-based stream: the masks of forwards [q·k, (q+1)·k) of
      the chunk are one draw of a generator seeded with (the chunk's seed for
      this layer, q), k = AHEAD_ELEMS // mask size. So a chunk's masks are drawn
      a block at a time (the fixed cost of the ops that make a mask is paid once
      per block), and the mask of forward r depends on the seed and r alone: a
      run resumed in the middle of a chunk draws exactly what the uninterrupted
      one drew, without any RNG state to save;
    - otherwise (a forward outside a plan, torch.compile), one draw per forward
      from torch's global RNG, which checkpoints save.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__(p, inplace)
        self.plan = _Plan()  # a plain object: nn.Module's __setattr__ is slow per step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        st = self.plan
        if st.pos < st.end:
            mask = st.take(x.shape, self.p, x.device)
        else:
            mask = keep_mask(x.shape, self.p, x.device)
        return x * (mask if mask.dtype == x.dtype else mask.to(x.dtype))


class _Plan:
    """A Dropout layer's planned forwards: its stream's seed, the next one and the end."""

    def __init__(self) -> None:
        self.seed, self.pos, self.end = 0, 0, 0
        self.block, self.shape, self.k = -1, torch.Size(), 1  # the block `rows` holds
        self.rows: tuple[torch.Tensor, ...] = ()

    def take(self, shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
        """The mask of planned forward `pos`: row pos − q·k of block q's draw."""
        if shape != self.shape:  # k, the forwards per block, follows from the mask's size
            self.shape, self.block = shape, -1
            self.k = max(1, AHEAD_ELEMS // max(1, math.prod(shape)))
        q, i = divmod(self.pos, self.k)
        if q != self.block:
            n = min(self.k, self.end - q * self.k)
            mask = keep_mask((n, *shape), p, device, stream_seed(self.seed, q))
            self.rows = mask.unbind(0)  # views: no select per step
            self.block = q
        self.pos += 1
        return self.rows[i]


def dropouts(model: nn.Module) -> list[Dropout]:
    """The model's Dropout layers that drop anything (p > 0)."""
    return [m for m in model.modules() if isinstance(m, Dropout) and m.p > 0]


def plan_masks(layers: list[Dropout], seed: int, start: int, end: int) -> None:
    """The layers' next forwards are forwards start..end−1 of a chunk seeded with `seed`.

    Layer i draws from stream (seed, i). Forwards past `end` draw from the global RNG.
    """
    for i, m in enumerate(layers):
        st = m.plan
        st.seed, st.pos, st.end, st.block = stream_seed(seed, i), start, end, -1


def stream_seed(*words: int) -> int:
    """A 63-bit seed from integers, splitmix64 over them: the seed of a counter-based stream.

    (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA
    2014: the finalizer's avalanche makes seeds of neighbouring counters unrelated.)
    """
    h = 0
    for w in words:
        z = ((h ^ (w & _M64)) + 0x9E3779B97F4A7C15) & _M64
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _M64
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _M64
        h = z ^ (z >> 31)
    return h >> 1


_M64 = (1 << 64) - 1


def keep_threshold(p: float) -> float:
    """t such that a uniform int16 v is kept when v ≥ t, with probability keep_probability(p)."""
    return float(2 ** (KEEP_BITS - 1) - round((1.0 - p) * 2**KEEP_BITS))


def keep_probability(p: float) -> float:
    """The keep probability that `keep_mask` draws: 1 − p rounded to a multiple of 2⁻¹⁶."""
    return round((1.0 - p) * 2**KEEP_BITS) / 2**KEEP_BITS


def keep_mask(
    shape: Sequence[int],
    p: float,
    device: torch.device,
    seed: int | None = None,  # None: torch's global RNG
) -> torch.Tensor:
    """float32 mask of `shape`: 1/(1 − p) where kept (probability keep_probability(p)), else 0.

    The bits come from torch's global RNG, or from a stream seeded with `seed`: on
    the CPU numpy's PCG64 (O'Neill 2014), whose raw draws cost a third of torch's
    Mersenne Twister per bit, on CUDA a torch generator (Philox) on the device.
    The masks of (k, *s) are those of k draws of s one after the other (on the CPU)."""
    *lead, last = shape if len(shape) else (1,)
    words = -(-last // 4)  # 64 random bits per 4 elements of the last axis
    if seed is not None and device.type in HOST_BITS_DEVICES:
        raw = np.random.PCG64(seed).random_raw(math.prod(lead) * words)
        bits = torch.from_numpy(raw.view(np.int64)).view(*lead, words)
    else:
        # the full 64-bit range: every bit uniform (random_ with narrower ranges takes a modulo)
        gen = None if seed is None else torch.Generator(device=device).manual_seed(seed)
        bits = torch.empty((*lead, words), dtype=torch.int64, device=device)
        bits.random_(-(2**63), None, generator=gen)
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
