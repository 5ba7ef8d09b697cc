"""The per-process cache of stored arrays (tricks.data_cache): hits, eviction by bytes, a new
upload under the same id invalidates, the split is today's seeded permutation, labels stay in
their stored dtype, and a job's resident memory stays within 1.2 × the dataset's bytes (images)
or its bytes plus a few compact bytes a row (a narrow table)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import tricks.data_cache as cache_mod
from tricks.data import load_dataset
from tricks.data_cache import ArrayCache
from tricks.spec import DataSpec, JobSpec

ROOT = Path(__file__).resolve().parents[2]


def store(root: Path, name: str, x: np.ndarray, y: np.ndarray) -> int:
    """Write the stored layout atomically, as the API does; the arrays' bytes."""
    tmp = root / f".{name}.tmp"
    tmp.mkdir()
    np.save(tmp / "x.npy", x)
    np.save(tmp / "y.npy", y)
    shutil.rmtree(root / name, ignore_errors=True)
    os.rename(tmp, root / name)
    return x.nbytes + y.nbytes  # labels are cached in their stored dtype too


def images(n: int, fill: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    x = rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)
    if fill is not None:
        x[:] = fill
    return x, (np.arange(n) % 3).astype(np.uint8)


@pytest.fixture(autouse=True)
def fresh_cache():
    cache_mod.CACHE.clear()
    yield
    cache_mod.CACHE.clear()


def test_second_job_on_a_dataset_is_a_hit(tmp_path: Path) -> None:
    store(tmp_path, "d", *images(100))
    a = load_dataset(DataSpec(dataset="d"), 0, tmp_path)
    b = load_dataset(DataSpec(dataset="d"), 1, tmp_path)
    assert (cache_mod.CACHE.misses, cache_mod.CACHE.hits) == (1, 1)
    assert a.train.src is b.train.src  # the same cached array, not a second copy
    assert not torch.equal(a.train.index, b.train.index)  # each job its own split


def test_eviction_by_bytes_least_recently_used_first(tmp_path: Path) -> None:
    sizes = {name: store(tmp_path, name, *images(200)) for name in "abc"}
    cache = ArrayCache(max_bytes=sizes["a"] + sizes["b"] + 10)  # two of the three fit
    cache.get(tmp_path, "a")
    cache.get(tmp_path, "b")
    cache.get(tmp_path, "a")  # a is now the most recently used
    cache.get(tmp_path, "c")  # evicts b
    assert [k[1] for k in cache.entries] == ["a", "c"]
    assert cache.nbytes == sizes["a"] + sizes["c"] <= cache.max_bytes
    cache.get(tmp_path, "b")
    assert (cache.hits, cache.misses) == (1, 4)
    assert [k[1] for k in cache.entries] == ["c", "b"]


def test_an_entry_over_the_budget_is_not_cached(tmp_path: Path) -> None:
    size = store(tmp_path, "big", *images(300))
    cache = ArrayCache(max_bytes=size - 1)
    got = cache.get(tmp_path, "big")
    assert got.nbytes == size and not cache.entries
    assert cache.get(tmp_path, "big").arrays["x"].shape == (300, 3, 4, 4)
    assert cache.misses == 2


def test_a_new_upload_under_the_same_id_is_never_served_stale(tmp_path: Path) -> None:
    store(tmp_path, "d", *images(100, fill=10))
    first = load_dataset(DataSpec(dataset="d", standardize=False), 0, tmp_path)
    assert float(first.x_train.max()) == 10.0
    store(tmp_path, "d", *images(100, fill=20))  # same id, same size, new files
    again = load_dataset(DataSpec(dataset="d", standardize=False), 0, tmp_path)
    assert float(again.x_train.max()) == 20.0
    assert cache_mod.CACHE.misses == 2 and len(cache_mod.CACHE.entries) == 1  # old one dropped


def test_touching_the_files_invalidates_too(tmp_path: Path) -> None:
    store(tmp_path, "d", *images(50))
    cache = ArrayCache(max_bytes=1 << 30)
    cache.get(tmp_path, "d")
    st = (tmp_path / "d" / "x.npy").stat()
    os.utime(tmp_path / "d" / "x.npy", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    cache.get(tmp_path, "d")
    assert cache.misses == 2


def test_split_is_the_seeded_permutation_val_first(tmp_path: Path) -> None:
    x, y = images(101)
    store(tmp_path, "d", x, y)
    for seed in (0, 4):
        ds = load_dataset(
            DataSpec(dataset="d", val_fraction=0.3, standardize=False), seed, tmp_path
        )
        perm = np.random.default_rng(seed).permutation(101)
        n_val = 30  # round(101 · 0.3)
        np.testing.assert_array_equal(ds.x_train.numpy(), x[perm[n_val:]].astype(np.float32))
        np.testing.assert_array_equal(ds.x_val.numpy(), x[perm[:n_val]].astype(np.float32))
        np.testing.assert_array_equal(ds.y_train.numpy(), y[perm[n_val:]])
        assert ds.num_classes == 3 and ds.kind == "image"


def test_labels_stay_in_their_stored_dtype(tmp_path: Path) -> None:
    """uint8/int16 labels are cached and split as stored (1-2 bytes a row, not 8); a dtype
    torch cannot gather (uint16) becomes int64. The values are the stored ones either way."""
    x, y = images(100)
    want = {"u8": torch.uint8, "i16": torch.int16, "u16": torch.int64}
    for name, dtype in zip(want, (np.uint8, np.int16, np.uint16), strict=True):
        store(tmp_path, name, x, y.astype(dtype))
    perm = np.random.default_rng(2).permutation(100)
    for name, dtype in want.items():
        ds = load_dataset(DataSpec(dataset=name), 2, tmp_path)
        assert ds.y_train.dtype == ds.y_val.dtype == dtype, name
        np.testing.assert_array_equal(ds.y_train.numpy(), y[perm[20:]])
        np.testing.assert_array_equal(ds.y_val.numpy(), y[perm[:20]])
    entry = cache_mod.CACHE.get(tmp_path, "u8")
    assert entry.nbytes == x.nbytes + y.nbytes and entry.arrays["y"].dtype == torch.uint8


def test_shipped_validation_split_and_the_legacy_npz(tmp_path: Path) -> None:
    x, y = images(60)
    (tmp_path / "own").mkdir()
    for key, a in {"x": x[:40], "y": y[:40], "x_val": x[40:], "y_val": y[40:]}.items():
        np.save(tmp_path / "own" / f"{key}.npy", a)
    ds = load_dataset(DataSpec(dataset="own", standardize=False), 0, tmp_path)
    assert (len(ds.train), len(ds.val)) == (40, 20) and ds.train.index is None
    np.testing.assert_array_equal(ds.x_val.numpy(), x[40:].astype(np.float32))
    np.savez(tmp_path / "old.npz", x=x.astype(np.float32), y=y.astype(np.int64))
    old = load_dataset(DataSpec(dataset="old", standardize=False), 0, tmp_path)
    assert old.train.dtype == torch.float32 and len(old.train) + len(old.val) == 60


def test_cache_size_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(cache_mod.CACHE_ENV, "12345")
    assert cache_mod._env_bytes() == 12345
    monkeypatch.delenv(cache_mod.CACHE_ENV)
    assert cache_mod._env_bytes() == cache_mod.DEFAULT_CACHE_BYTES


RSS_JOB = """
import json, sys, torch
from pathlib import Path
from tricks.data import load_dataset
from tricks.spec import JobSpec
from tricks.train import train

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

root = Path(sys.argv[1])
spec = JobSpec.model_validate_json(sys.argv[2])  # on dataset "big"
checkpoints = json.loads(sys.argv[3])  # write checkpoints as a worker does

def run(spec, name):
    ckpt = root / f"checkpoints-{name}" if checkpoints else None
    train(spec, load_dataset(spec.data, spec.training.seed, root), checkpoint_dir=ckpt)

# the baseline: the same job on a small dataset of the same shape (the model, a batch's
# working memory and torch's own pools), so what grows past it is what the data costs
run(spec.model_copy(update={"data": spec.data.model_copy(update={"dataset": "small"})}), "warm")
base = rss("VmHWM")  # its peak
peaks = []
for seed in (0, 1):  # two jobs of a sweep in one process
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the RSS now
    run(spec.model_copy(update={"training": spec.training.model_copy(update={"seed": seed})}),
        str(seed))
    peaks.append(rss("VmHWM"))
print(json.dumps({"base": base, "peaks": peaks}))
"""


def job_growth(root: Path, spec: JobSpec, *, checkpoints: bool = False) -> tuple[int, dict]:
    """Peak resident growth of two jobs of `spec` on "big" over the same job on "small"."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(RSS_JOB),
            str(root),
            spec.model_dump_json(),
            json.dumps(checkpoints),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=True,
        # glibc's dynamic mmap threshold otherwise keeps freed batch temporaries on the heap,
        # where fragmentation adds ±50 MB of noise from run to run; fixed, big blocks go back
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)},
    )
    m = json.loads(out.stdout.strip().splitlines()[-1])
    return max(m["peaks"]) - m["base"], m  # the model is in the baseline


@pytest.mark.slow
def test_job_resident_memory_stays_within_the_dataset_bytes(tmp_path: Path) -> None:
    """Two jobs of a sweep on a CIFAR-sized uint8 upload, in one process: its peak resident
    memory grows by at most 1.2 × the dataset's bytes over the same job on 2,048 images
    (which holds the model, a batch's working memory and torch's pools). A float32 copy
    per job would be 4× on its own."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8)  # CIFAR-10's shape: 154 MB
    y = (np.arange(50_000) % 10).astype(np.uint8)
    store(tmp_path, "big", x, y)
    store(tmp_path, "small", x[:2048], y[:2048])
    data_bytes = x.nbytes + y.nbytes
    del x
    spec = JobSpec(
        data={"dataset": "big"},
        model={"arch": "mlp", "hidden": [8], "batch_norm": False},
        training={"epochs": 1, "batch_size": 512, "device": "cpu"},
        regularization={"augment": {"hflip": True}},
    )
    growth, m = job_growth(tmp_path, spec)
    assert growth <= 1.2 * data_bytes, (growth / data_bytes, m)


NARROW_ROWS = 2_000_000
ROW_BOOKKEEPING = 14  # bytes a row past the data: ≈ 12 now; the int64 bookkeeping took ≈ 50


@pytest.mark.slow
def test_narrow_table_job_keeps_its_bookkeeping_compact(tmp_path: Path) -> None:
    """Two jobs of a sweep on 2,000,000 rows × 4 float32 features with uint8 labels (34 MB),
    2 epochs each, checkpointing as a worker does: peak resident memory grows by at most the
    dataset's bytes plus ROW_BOOKKEEPING bytes a row over the same job on 2,048 rows.

    Here the rows are narrow (17 bytes), so what each row costs besides its data decides:
    int64 labels, split index, epoch permutation and batch-order labels (8 bytes each, some
    twice at once), an N × K logit table at evaluation and a copy of the permutation per
    checkpoint came to ≈ 50 bytes a row, 3.9 × the data. What stays (≈ 12 bytes a row,
    1.7 ×): the int32 split index (4 bytes a row) and epoch permutation (4 bytes a training
    row), which a seeded split and batch order need as they are, a compact copy of the
    labels per split, each validation row's log-likelihood at evaluation, and the fixed
    working memory of a chunk of batches (≈ 5 MB)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((NARROW_ROWS, 4), dtype=np.float32)
    y = ((x[:, 0] > 0).astype(np.uint8) + 2 * (x[:, 1] > 0)).astype(np.uint8)
    store(tmp_path, "big", x, y)
    store(tmp_path, "small", x[:2048], y[:2048])
    data_bytes = x.nbytes + y.nbytes
    del x, y
    spec = JobSpec(
        data={"dataset": "big"},
        model={"arch": "mlp", "hidden": [8], "batch_norm": False},
        training={
            "epochs": 2,  # the second epoch's permutation is drawn after the first's is freed
            "batch_size": 512,
            "log_every": 100,
            "device": "cpu",
            "checkpoint_every_s": 0.1,  # a mid-epoch checkpoint every few log points
        },
    )
    growth, m = job_growth(tmp_path, spec, checkpoints=True)
    assert growth <= data_bytes + ROW_BOOKKEEPING * NARROW_ROWS, (growth / data_bytes, m)
