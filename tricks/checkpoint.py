"""Checkpoints for exact resume, and the final weights as safetensors.

A checkpoint is one `torch.save` file per save, named by the number of optimizer
updates completed (`ckpt-000001234.pt`), holding only tensors, numbers, strings,
lists and dicts so that it loads with `torch.load(weights_only=True)`: no
pickled code runs when a worker resumes someone else's job.

Writes are atomic: the file is written under a temporary name in the same
directory, fsynced, then `os.replace`d into place (and the directory fsynced),
so a crash leaves either the old set of checkpoints or the new one. On load,
files that do not unpickle (truncated, half-written, corrupt) are skipped and
the previous checkpoint is used. The last `KEEP` checkpoints are kept. A write
torn by a killed process leaves its `.<name>.<pid>.tmp` behind: `clean_partial_writes`
removes them when a run starts (load_latest calls it).

A full disk at any write raises `DiskFull` (an OSError, errno ENOSPC) that names the
file (never its directory), the bytes it needed and the bytes left.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEEP = 2
FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
# What _atomic_write and pin_epoch write before the rename: ".<final name>.<pid>.tmp".
_PARTIAL = re.compile(r"^\..+\.\d+\.tmp$")


class DiskFull(OSError):
    """No space left writing `what` (a file name, no directory) of about `size` bytes
    (None: unknown); `free` bytes were left on its filesystem (None: unknown)."""

    def __init__(self, what: str, size: int | None, free: int | None) -> None:
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.what, self.size, self.free = what, size, free

    def __str__(self) -> str:
        size = f" ({human_bytes(self.size)})" if self.size is not None else ""
        free = f": {human_bytes(self.free)} free" if self.free is not None else ""
        return f"no space left writing {self.what}{size}{free}"


def human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000  # type: ignore[assignment]
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of `directory`."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC (or EDQUOT) here or in what caused it: torch.save reports a failed write
    as a RuntimeError whose context is the OSError."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        e = e.__cause__ or e.__context__
    return False


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a nested state (what a checkpoint of it will about weigh)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


# ------------------------------------------------------------------ RNG states


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random stream training may touch: torch CPU/CUDA, the data generator, numpy, python."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
        "numpy": {
            "name": str(np_state[0]),
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Put back what `rng_state` saved, as far as this process can take it.

    A run may resume on another kind of device: a `device: auto` job preempted on a
    CPU worker can be claimed next by a GPU worker (those consume the cpu queue too).
    The data generator's state is then of the other kind (a CPU generator's is 5,056
    bytes, a CUDA one's 16) and does not load: the generator is seeded from a hash of
    that state instead (the same checkpoint, the same draws; not the run's first seed,
    whose epoch order the run already used) and the run goes on. The epoch in progress
    keeps its permutation and seed; later ones draw other numbers, as the other device
    would anyway: such a resume is not bit-exact. CUDA states are put back for the GPUs
    this process sees.
    """
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        for i, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, i)
    saved = state["generator"]
    if saved.numel() == generator.get_state().numel():
        generator.set_state(saved)
    else:
        digest = hashlib.sha256(saved.numpy().tobytes()).digest()
        generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["key"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


# ------------------------------------------------------------- save and load


def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"ckpt-{step:09d}.pt"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems (and Windows) cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write, size: int | None = None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as e:
        if not is_disk_full(e):
            raise
        tmp.unlink(missing_ok=True)  # before measuring what is left
        raise DiskFull(path.name, size, free_bytes(path.parent)) from e
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def clean_partial_writes(directory: Path | None) -> list[Path]:
    """Remove the temporary files of torn writes under `directory` (a process killed
    between open and rename); returns them. Call when a run starts, before it writes:
    a temporary file of a live writer of the same directory would be removed too."""
    if directory is None or not Path(directory).is_dir():
        return []
    removed = []
    for p in Path(directory).rglob(".*.tmp"):
        if _PARTIAL.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def save_checkpoint(state: dict[str, Any], directory: Path, step: int, keep: int = KEEP) -> Path:
    """Write `state` as the checkpoint for `step` atomically; keep the newest `keep` ones."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, step)
    _atomic_write(
        path, lambda f: torch.save({"format": FORMAT, **state}, f), size=_tensor_bytes(state)
    )
    for old in _by_step(directory)[keep:]:
        old.unlink(missing_ok=True)
    return path


def _by_step(directory: Path) -> list[Path]:
    """Checkpoint files, newest (most updates) first. Temporary files never match."""
    found = []
    for p in Path(directory).glob("ckpt-*.pt"):
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load one checkpoint on the CPU; raises if the file is incomplete or not ours."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tricks checkpoint (format {FORMAT})")
    return state


def load_latest(directory: Path | None) -> tuple[Path, dict[str, Any]] | None:
    """(path, state) of the newest checkpoint that loads, falling back past broken ones."""
    if directory is None or not Path(directory).is_dir():
        return None
    clean_partial_writes(directory)  # a run starts here: no writer of this directory is live
    for path in _by_step(directory):
        try:
            return path, load_checkpoint(path)
        except Exception:  # truncated zip, bad pickle, wrong format: try the previous one
            continue
    return None


def latest_checkpoint(directory: Path | None) -> Path | None:
    """Path of the newest complete checkpoint in `directory`, or None."""
    found = load_latest(directory)
    return found[0] if found else None


def pin_epoch(path: Path, epochs_done: int) -> Path:
    """Keep checkpoint `path` (written after `epochs_done` epochs) past the rolling KEEP set.

    A hard link in `<dir>/epochs/` (tricks.pinned), or a copy where links are not
    supported; the rolling set is pruned as before. What fork starts from.
    """
    from tricks.pinned import pinned_path

    target = pinned_path(Path(path).parent, epochs_done)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        try:
            shutil.copyfile(path, tmp)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if not is_disk_full(e):
                raise
            size = Path(path).stat().st_size
            raise DiskFull(target.name, size, free_bytes(target.parent)) from e
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------- final weights


def save_model(
    model_state: dict[str, torch.Tensor],
    path: Path,
    *,
    spec: dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> Path:
    """Write a state_dict as safetensors (atomically); what GET /jobs/{id}/model serves.

    With `spec` (the job spec as JSON data), `input_shape` and `num_classes`, the
    file's metadata says how to rebuild the module: `tricks.load_model(path)`.
    Safetensors metadata values are strings, so the structured ones are JSON.
    """
    from safetensors.torch import save

    from tricks.load import model_metadata

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model_state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt"}
    if spec is not None and input_shape is not None and num_classes is not None:
        metadata.update(model_metadata(spec, input_shape, num_classes))
    data = save(tensors, metadata=metadata)
    _atomic_write(path, lambda f: f.write(data), size=len(data))
    return path


def load_model(path: Path) -> dict[str, torch.Tensor]:
    """The state_dict in a model.safetensors (`tricks.load_model` rebuilds the module)."""
    from safetensors.torch import load_file

    return load_file(str(path))
