"""Compact bookkeeping (labels in their stored dtype, int32 split index and epoch permutation)
changes no seeded run: the same permutations as int64, and the same weights, curves and
metrics, bit for bit, as the code before it, run from a scratch copy of that commit.

The reference is not hard-coded: it is the tricks/ package of the last commit whose
tricks/step.py still gathered the epoch's labels into an int64 copy (`self.Yp =
self.Y[perm]`), found with `git log -S` and unpacked with `git archive`, so it stays the
code before the change wherever this repository's history is (skipped without one)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tricks.data import split_index
from tricks.step import perm_dtype

ROOT = Path(__file__).resolve().parents[2]
OLD_LINE = "self.Yp = self.Y[perm]"


@pytest.mark.parametrize("n", [1, 2, 7, 1437, 100_003])
def test_int32_randperm_draws_the_int64_permutation(n: int) -> None:
    """Same values and the generator left in the same state (the epoch seed is drawn next)."""
    assert perm_dtype(n, torch.device("cpu")) == torch.int32
    for seed in (0, 5):
        g64, g32 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        p64 = torch.randperm(n, generator=g64)
        p32 = torch.randperm(n, generator=g32, dtype=perm_dtype(n, torch.device("cpu")))
        assert p32.dtype == torch.int32 and torch.equal(p32.long(), p64)
        assert torch.equal(g32.get_state(), g64.get_state())


@pytest.mark.parametrize("n", [1, 10, 1797, 250_001])
def test_split_index_is_numpys_permutation_as_int32(n: int) -> None:
    for seed, frac in ((0, 0.2), (11, 0.5)):
        train, val = split_index(n, frac, seed)
        perm = np.random.default_rng(seed).permutation(n)  # int64: what the split always was
        assert train.dtype == val.dtype == np.int32
        np.testing.assert_array_equal(np.concatenate([val, train]), perm)


# One run per case, in whichever tricks/ is first on sys.path: the weights (safetensors,
# nothing unpickled) and the result's curves and metrics (JSON: floats round-trip exactly).
RUN = """
import json, sys
from pathlib import Path
import torch
from safetensors.torch import save_file
import tricks.data, tricks.step
from tricks.callbacks import Callbacks
from tricks.data import load_dataset
from tricks.spec import JobSpec
from tricks.train import train

torch.set_num_threads(1)
tricks.step.CHUNK_ELEMS = 1 << 11  # chunks of a few batches: log intervals straddle them

class PreemptAt(Callbacks):
    def __init__(self, n):
        self.n, self.polls = n, 0
    def should_stop(self):
        self.polls += 1
        return "preempt" if self.polls == self.n else None

root, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for name, case in json.loads(Path(sys.argv[4]).read_text()).items():
    if mode != "run" and "preempt_at" not in case:
        continue
    tricks.data.PRENORM_ELEMS = case.get("prenorm", 1 << 22)
    spec = JobSpec.model_validate(case["spec"])
    data = load_dataset(spec.data, spec.training.seed, root)
    ckpt = root / f"{name}-checkpoints"
    if mode == "run":
        r = train(spec, data)
    elif mode == "preempt":
        r = train(spec, data, PreemptAt(case["preempt_at"]), checkpoint_dir=ckpt)
        assert r.status == "preempted", r.status
        continue
    else:  # resume what the other version preempted
        r = train(spec, data, checkpoint_dir=ckpt)
    weights = {k: v.contiguous() for k, v in (r.model_state or {}).items()}  # range test: none
    save_file(weights, out / f"{name}-{mode}.st")
    keep = {"status": r.status, "steps": r.steps, "history": r.history, "metrics": r.metrics,
            "best": r.best, "lr_range": r.lr_range, "labels": str(data.y_train.dtype)}
    (out / f"{name}-{mode}.json").write_text(json.dumps(keep))
"""

EVERY_TRICK = {
    "dropout": 0.1,
    "label_smoothing": 0.1,
    "l1": 1e-5,
    "l2": 1e-4,
    "mixup": {"alpha": 0.4},
    "cutmix": {"alpha": 1.0, "prob": 0.5},
    "augment": {"hflip": True, "rotate": 10, "crop_padding": 1, "noise_std": 0.05},
}
IMAGES = {
    "data": {"dataset": "images"},
    "model": {"arch": "cnn", "channels": [8], "hidden": 16},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
    "schedule": {"decay": {"kind": "onecycle"}},  # cycles the momentum too
    "regularization": EVERY_TRICK,
    "training": {
        "epochs": 3,
        "batch_size": 16,
        "log_every": 4,
        "grad_clip": 1.0,
        "seed": 3,
        "device": "cpu",
    },
}
CASES = {
    # uint8 images (indexed, made float a chunk at a time), uint8 labels, every trick on
    "images": {"spec": IMAGES, "preempt_at": 5},
    # a narrow table through the indexed float path, int16 labels, hard-label cross-entropy
    # (train_acc counted from the labels), early stopping on val_loss
    "table": {
        "prenorm": 0,
        "preempt_at": 7,
        "spec": {
            "data": {"dataset": "table", "val_fraction": 0.25},
            "model": {"arch": "mlp", "hidden": [16]},
            "optimizer": {"name": "adamw", "lr": 0.01},
            "schedule": {"warmup": {"epochs": 1}, "decay": {"kind": "cosine"}},
            "regularization": {"dropout": 0.1, "l1": 1e-5, "augment": {"noise_std": 0.1}},
            "training": {
                "epochs": 4,
                "batch_size": 32,
                "log_every": 5,
                "seed": 1,
                "device": "cpu",
                "early_stopping": {"patience": 3},
            },
        },
    },
    # the built-in digits (int64 labels, standardized up front) with every trick on
    "digits": {
        "spec": {
            **IMAGES,
            "data": {"dataset": "digits"},
            "model": {"hidden": [32]},
            "training": {**IMAGES["training"], "batch_size": 64, "epochs": 2},
        },
    },
    # the LR range test (a read every step) on the images
    "range": {
        "spec": {
            **IMAGES,
            "task": "lr_range_test",
            "lr_range": {"steps": 30},
            "training": {**IMAGES["training"], "epochs": 1},
        },
    },
}


def reference_tricks(dest: Path) -> Path:
    """tricks/ as it was before the change, unpacked under dest (see the module docstring)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the repository's git history for the reference code")

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)

    found = git("log", "-1", "--format=%H", "-S", OLD_LINE, "--", "tricks/step.py")
    rev = found.stdout.decode().strip()
    if found.returncode or not rev:
        pytest.skip("no commit in this history has the int64 bookkeeping")
    # the newest commit that changed the line's count: the one that removed it (the reference
    # is its parent) or, before the change is committed, the one that still has it
    if OLD_LINE not in git("show", f"{rev}:tricks/step.py").stdout.decode():
        rev += "^"
    tar = git("archive", "--format=tar", rev, "tricks")
    if tar.returncode:  # a shallow clone without the parent
        pytest.skip(f"cannot unpack the reference commit: {tar.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(dest, filter="data")
    assert OLD_LINE in (dest / "tricks" / "step.py").read_text()
    return dest


def write_datasets(root: Path) -> None:
    """The stored layout the API writes: uint8 images + uint8 labels; a float32 table + int16."""
    rng = np.random.default_rng(0)
    y = np.arange(240) % 4
    x = rng.integers(0, 160, (240, 3, 8, 8))
    for k in range(4):  # each class brightens one quadrant: learnable, so curves move
        x[y == k, k % 3, (k // 2) * 4 : (k // 2) * 4 + 4, (k % 2) * 4 : (k % 2) * 4 + 4] += 95
    tables = rng.standard_normal((1200, 4)).astype(np.float32)
    arrays = {
        "images": (x.astype(np.uint8), y.astype(np.uint8)),
        "table": (tables, ((tables[:, 0] > 0) + (tables[:, 1] > 0.5)).astype(np.int16)),
    }
    for name, (xa, ya) in arrays.items():
        (root / name).mkdir()
        np.save(root / name / "x.npy", xa)
        np.save(root / name / "y.npy", ya)


def run(code: Path, root: Path, out: Path, mode: str, cases: Path) -> None:
    out.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-c", RUN, str(root), str(out), mode, str(cases)],
        cwd=code,
        env=env,
        check=True,
        timeout=600,
    )


def load(out: Path, name: str, mode: str) -> tuple[dict, dict]:
    return load_file(out / f"{name}-{mode}.st"), json.loads(
        (out / f"{name}-{mode}.json").read_text()
    )


def assert_same(got: tuple[dict, dict], want: tuple[dict, dict]) -> None:
    (w_got, r_got), (w_want, r_want) = got, want
    for key in ("status", "steps", "history", "metrics", "best", "lr_range"):
        assert r_got[key] == r_want[key], key  # floats compared exactly
    assert w_got.keys() == w_want.keys()
    for k in w_want:
        assert torch.equal(w_got[k], w_want[k]), k


@pytest.mark.slow
def test_seeded_runs_are_bit_for_bit_those_of_the_int64_code(tmp_path: Path) -> None:
    """Every case above, uninterrupted, gives the reference's weights, curves and metrics; and
    a run the reference preempted mid-epoch (its checkpoint holds an int64 permutation), resumed
    by this code, ends where the reference's uninterrupted run ends."""
    ref_code = reference_tricks(tmp_path / "ref")
    data = tmp_path / "data"
    data.mkdir()
    write_datasets(data)
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(CASES))
    ref_out, new_out = tmp_path / "ref-out", tmp_path / "new-out"
    run(ref_code, data, ref_out, "run", cases)
    run(ref_code, data, ref_out, "preempt", cases)
    run(ROOT, data, new_out, "run", cases)
    run(ROOT, data, new_out, "resume", cases)
    labels = {n: load(new_out, n, "run")[1]["labels"] for n in CASES}
    assert labels == {  # the compact paths really ran
        "images": "torch.uint8",
        "table": "torch.int16",
        "digits": "torch.int64",
        "range": "torch.uint8",
    }
    for name, case in CASES.items():
        want = load(ref_out, name, "run")
        assert want[1]["status"] == "succeeded", name
        assert_same(load(new_out, name, "run"), want)
        if "preempt_at" in case:
            assert_same(load(new_out, name, "resume"), want)
    assert load(ref_out, "images", "run")[1]["metrics"]["val_acc"] > 0.5  # it learned something
