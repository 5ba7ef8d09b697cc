"""How often does ASHA keep the trial that would have won a full run: judged by its raw
metric at a rung (plain ASHA) or by a cool-down fork from the rung (tricklab's default)?

In-process with tricks (no service): a grid of learning rates under a cosine schedule,
each trained to the end (the oracle: its final val_acc) with every epoch checkpointed;
at each rung r a cool-down fork from the checkpoint after r epochs decays the lr linearly
to zero over max(1, round(0.2 r)) epochs, exactly as api/search_driver.py forks them.
Then successive halving is replayed many times on random subsets of the configurations
(the trials a search would have drawn), judged by each rule; a replay "keeps the winner"
when the subset's full-run best survives every rung.

    .venv/bin/python bench/asha_judge.py [--epochs 12] [--seeds 2] [--replays 2000]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import torch

from tricklab.search_spec import AshaSpec, cooldown_epochs, rungs
from tricks.data import load_dataset
from tricks.fork import seed_checkpoint
from tricks.pinned import pinned_path
from tricks.schedules import lr_at
from tricks.spec import JobSpec, steps_per_epoch
from tricks.train import train

PROBLEMS = {
    # digits, a small MLP, mild regularization: most lrs in [0.02, 1] end within noise
    "digits": {"mixup": 0.4, "weight_decay": 0.0},
    # strong mixup + weight decay: high lrs look worse mid-schedule than they end
    "digits-strong-reg": {"mixup": 1.0, "weight_decay": 5e-4},
}
PROBLEM = "digits"


def base(lr: float, epochs: int, seed: int) -> dict:
    p = PROBLEMS[PROBLEM]
    return {
        "data": {"dataset": "digits", "val_fraction": 0.3},
        "model": {"arch": "mlp", "hidden": [64]},
        "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9, "weight_decay": p["weight_decay"]},
        "schedule": {"decay": {"kind": "cosine"}},
        "regularization": {"label_smoothing": 0.1, "mixup": {"alpha": p["mixup"]}},
        "training": {"epochs": epochs, "batch_size": 32, "seed": seed, "log_every": 50},
    }


def run_config(lr: float, epochs: int, seed: int, asha: AshaSpec, data, root: Path) -> dict:
    spec = JobSpec.model_validate(base(lr, epochs, seed))
    d = root / f"lr{lr:.5f}-s{seed}"
    full = train(spec, data, checkpoint_dir=d)
    raw = dict(zip(full.history["val_acc"]["step"], full.history["val_acc"]["value"], strict=True))
    spe = steps_per_epoch(len(data.x_train), spec.training.batch_size)
    out = {"final": full.metrics.get("val_acc") or 0.0, "raw": {}, "cool": {}}
    for r in rungs(asha, epochs):
        out["raw"][r] = raw[r * spe - 1]
        c = cooldown_epochs(asha, r)
        lr_r = lr_at(r * spe, lr0=lr, schedule=spec.schedule, steps_per_epoch=spe, epochs=epochs)
        cool = JobSpec.model_validate(
            {
                **spec.model_dump(mode="json"),
                "optimizer": {**spec.optimizer.model_dump(mode="json"), "lr": lr_r},
                "schedule": {
                    "per": "batch",
                    "decay": {"kind": "wsd", "decay_fraction": c / (r + c), "min_lr": 0.0},
                },
                "training": {**spec.training.model_dump(mode="json"), "epochs": r + c},
            }
        )
        cd = root / f"{d.name}-cool{r}"
        seed_checkpoint(pinned_path(d, r), cd, cool)
        res = train(cool, data, checkpoint_dir=cd)
        out["cool"][r] = res.metrics.get("val_acc") or 0.0 if res.status == "succeeded" else 0.0
    return out


def halving(
    ids: list[int], judge: dict[int, dict[int, float]], ladder: list[int], eta: int
) -> list[int]:
    """Synchronous successive halving: at each rung keep the top ceil(n/eta) by the judge."""
    alive = list(ids)
    for r in ladder:
        alive.sort(key=lambda i: judge[i][r], reverse=True)
        alive = alive[: max(1, math.ceil(len(alive) / eta))]
    return alive


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--lrs", type=int, default=10)
    ap.add_argument("--subset", type=int, default=6)
    ap.add_argument("--replays", type=int, default=2000)
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="digits")
    ap.add_argument("--lr-max", type=float, default=1.0)
    a = ap.parse_args()
    global PROBLEM
    PROBLEM = a.problem
    torch.set_num_threads(1)
    asha = AshaSpec(min_epochs=1, reduction_factor=3)
    ladder = rungs(asha, a.epochs)
    lrs = [0.003 * (a.lr_max / 0.003) ** (i / (a.lrs - 1)) for i in range(a.lrs)]
    t0 = time.perf_counter()
    results: list[tuple[float, int, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(a.seeds):
            data = load_dataset(JobSpec.model_validate(base(0.1, a.epochs, seed)).data, seed=seed)
            for lr in lrs:
                results.append((lr, seed, run_config(lr, a.epochs, seed, asha, data, Path(tmp))))
    print(
        f"# {len(results)} full runs of {a.epochs} epochs + cool-downs at rungs {ladder}"
        f" in {time.perf_counter() - t0:.0f} s"
    )
    print(
        f"{'lr':>8} {'seed':>4} {'final':>7} " + " ".join(f"raw@{r:<3} cool@{r:<3}" for r in ladder)
    )
    for lr, seed, r in results:
        cells = " ".join(f"{r['raw'][k]:.4f}  {r['cool'][k]:.4f} " for k in ladder)
        print(f"{lr:8.4f} {seed:4d} {r['final']:7.4f} {cells}")
    rng = random.Random(0)
    raw = {i: r["raw"] for i, (_, _, r) in enumerate(results)}
    cool = {i: r["cool"] for i, (_, _, r) in enumerate(results)}
    final = {i: r["final"] for i, (_, _, r) in enumerate(results)}
    kept = {"raw": 0, "cooldown": 0}
    regret = {"raw": 0.0, "cooldown": 0.0}
    for _ in range(a.replays):
        ids = rng.sample(range(len(results)), a.subset)
        winner = max(ids, key=final.get)
        for name, judge in (("raw", raw), ("cooldown", cool)):
            alive = halving(ids, judge, ladder, asha.reduction_factor)
            kept[name] += winner in alive
            regret[name] += final[winner] - max(final[i] for i in alive)
    print(
        f"# successive halving (eta={asha.reduction_factor}, rungs {ladder}) on "
        f"{a.replays} random subsets of {a.subset} configurations:"
    )
    for name in ("raw", "cooldown"):
        print(
            f"  judge={name:<8}: keeps the full-run winner {kept[name] / a.replays:6.1%} of the "
            f"time; mean regret {regret[name] / a.replays * 100:.2f} points of val_acc"
        )
    print(f"  ratio cooldown/raw kept: {kept['cooldown'] / max(1, kept['raw']):.2f}")


if __name__ == "__main__":
    main()
