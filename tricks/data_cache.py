"""The stored arrays of uploaded datasets, memory-mapped and kept per process, bounded in bytes.

A sweep runs many jobs on one dataset in the same worker process; each would read
the whole upload again. Here `stored_arrays` opens a dataset once with
`tricks.uploads.open_stored` (the .npy files memory-mapped read-only, a legacy .npz
read fully) and keeps the result in a least-recently-used cache whose size is
counted in bytes (the arrays' nbytes: at most that much of a mapped file is ever
resident), `TRICKLAB_DATA_CACHE_BYTES` (default 4 GiB). Jobs share the cached
arrays (nothing here is ever written): the first job on a dataset reads it from
disk, the next ones find its pages in memory.

An entry is keyed by the dataset id and the (inode, size, mtime) of its stored
files, so a dataset deleted and uploaded again under the same id is a new key and
can never be served stale. Labels keep their stored (compact) dtype too, read into
memory once: uint8 for up to 256 classes (`tricks.ingest.common.label_dtype`), so
a narrow tabular dataset's labels cost 1 byte a row here, not 8; the training
loop widens them a chunk of batches at a time (`tricks.step`). Only a label
dtype that torch cannot index with or gather (a legacy upload's uint16, say)
becomes int64.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tricks.ingest.stored import stored_paths
from tricks.uploads import open_stored

DEFAULT_CACHE_BYTES = 4 * 2**30
CACHE_ENV = "TRICKLAB_DATA_CACHE_BYTES"
# label dtypes kept as stored: every op on labels here takes them (gather, compare, widen)
LABEL_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.int64))


@dataclass
class StoredArrays:
    """One dataset's arrays as CPU tensors, every one in its stored dtype (see `label_tensor`)."""

    arrays: dict[str, torch.Tensor]
    nbytes: int
    # training-split statistics already fitted, by split (tricks.data): a sweep's jobs share seeds
    stats: dict[tuple, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def fingerprint(datasets_dir: Path, dataset_id: str) -> tuple:
    """(file, inode, size, mtime) of every stored file of the dataset; () when none exists."""
    out = []
    for p in stored_paths(Path(datasets_dir), dataset_id):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A tensor on the array's memory (a read-only map: torch warns, and nothing writes it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "The given NumPy array is not writable"
        return torch.from_numpy(a)


def label_tensor(a: np.ndarray) -> torch.Tensor:
    """Labels as an in-memory tensor in their stored dtype when torch's ops take it, else int64."""
    dtype = a.dtype if a.dtype in LABEL_DTYPES else np.dtype(np.int64)
    return torch.from_numpy(np.array(a, dtype=dtype, order="C"))  # a copy: off the map


def read_stored(datasets_dir: Path, dataset_id: str) -> StoredArrays:
    """The dataset's arrays, memory-mapped (the labels read in), without the cache."""
    raw = open_stored(Path(datasets_dir), dataset_id, mmap=True)
    arrays: dict[str, torch.Tensor] = {}
    for key, a in raw.items():
        arrays[key] = label_tensor(a) if key.startswith("y") else _tensor(a)
    return StoredArrays(arrays, sum(t.nbytes for t in arrays.values()))


class ArrayCache:
    """An LRU of `StoredArrays` bounded by the sum of their nbytes; safe across threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple, StoredArrays] = OrderedDict()
        self.hits = self.misses = 0
        self.lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())

    def get(self, datasets_dir: Path, dataset_id: str) -> StoredArrays:
        """The cached arrays of the dataset as stored now, read (and cached) when not there."""
        key = (str(Path(datasets_dir).resolve()), dataset_id, fingerprint(datasets_dir, dataset_id))
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
                self.hits += 1
                return entry
            self.misses += 1
            # a new version of the dataset replaces the old one's entries
            for k in [k for k in self.entries if k[:2] == key[:2]]:
                del self.entries[k]
        entry = read_stored(datasets_dir, dataset_id)  # outside the lock: it may be slow
        with self.lock:
            if entry.nbytes <= self.max_bytes:
                self.entries[key] = entry
                self._evict()
        return entry

    def _evict(self) -> None:
        total = self.nbytes
        while total > self.max_bytes and self.entries:
            _, old = self.entries.popitem(last=False)
            total -= old.nbytes

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.hits = self.misses = 0


def _env_bytes() -> int:
    raw = os.environ.get(CACHE_ENV)
    return int(raw) if raw else DEFAULT_CACHE_BYTES


CACHE = ArrayCache(_env_bytes())  # one per process


def stored_arrays(
    datasets_dir: Path, dataset_id: str, cache_bytes: int | None = None
) -> StoredArrays:
    """The dataset's arrays through the process's cache (`cache_bytes` resizes it; 0: no cache)."""
    if cache_bytes is not None and cache_bytes != CACHE.max_bytes:
        with CACHE.lock:
            CACHE.max_bytes = cache_bytes
            CACHE._evict()
    return CACHE.get(datasets_dir, dataset_id)
