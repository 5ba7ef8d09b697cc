"""Write a small .npz of 1-D signals to try `tricklab upload` with.

Three classes of length-64 signals, one channel, shape (N, 1, 64): a chirp (rising
frequency), a damped sine and a train of pulses, each with random phase, amplitude
and noise. numpy only.

    python examples/make_signals.py signals.npz --n 900
    tricklab upload signals.npz --name chirps        # prints the dataset id
    tricklab submit examples/signal_conv1d.json --dataset <that id> --watch
"""

from __future__ import annotations

import argparse

import numpy as np

LENGTH = 64
CLASSES = ("chirp", "damped_sine", "pulses")


def make(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, LENGTH, dtype=np.float64)
    y = rng.integers(0, len(CLASSES), size=n)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    amp = rng.uniform(0.5, 1.5, size=(n, 1))
    f0 = rng.uniform(2.0, 4.0, size=(n, 1))
    chirp = np.sin(2 * np.pi * (f0 * t + 4.0 * t**2) + phase)
    damped = np.exp(-3.0 * t) * np.sin(2 * np.pi * 2 * f0 * t + phase)
    period = rng.integers(8, 16, size=(n, 1))
    shift = rng.integers(0, 8, size=(n, 1))
    pulses = (((np.arange(LENGTH) + shift) % period) < 2).astype(np.float64)
    x = np.where(y[:, None] == 0, chirp, np.where(y[:, None] == 1, damped, pulses))
    x = amp * x + rng.normal(0.0, 0.3, size=x.shape)
    return x[:, None, :].astype(np.float32), y.astype(np.int64)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="signals.npz")
    ap.add_argument("--n", type=int, default=900, help="number of signals")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    x, y = make(a.n, a.seed)
    np.savez(a.out, x=x, y=y)
    print(f"wrote {a.out}: x {x.shape} float32, y {y.shape} in {len(CLASSES)} classes")


if __name__ == "__main__":
    main()
