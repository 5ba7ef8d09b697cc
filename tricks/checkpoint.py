"""Checkpoints for exact resume, and the final weights as safetensors.

A checkpoint is one `torch.save` file per save, named by the number of optimizer
updates completed (`ckpt-000001234.pt`), holding only tensors, numbers, strings,
lists and dicts so that it loads with `torch.load(weights_only=True)`: no
pickled code runs when a worker resumes someone else's job.

Writes are atomic: the file is written under a temporary name in the same
directory, fsynced, then `os.replace`d into place (and the directory fsynced),
so a crash leaves either the old set of checkpoints or the new one. On load,
files that do not unpickle (truncated, half-written, corrupt) are skipped and
the previous checkpoint is used. The last `KEEP` checkpoints are kept.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEEP = 2
FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


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
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["generator"])
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


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def save_checkpoint(state: dict[str, Any], directory: Path, step: int, keep: int = KEEP) -> Path:
    """Write `state` as the checkpoint for `step` atomically; keep the newest `keep` ones."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, step)
    _atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))
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
    import shutil

    from tricks.pinned import pinned_path

    target = pinned_path(Path(path).parent, epochs_done)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
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
    _atomic_write(path, lambda f: f.write(data))
    return path


def load_model(path: Path) -> dict[str, torch.Tensor]:
    """The state_dict in a model.safetensors (`tricks.load_model` rebuilds the module)."""
    from safetensors.torch import load_file

    return load_file(str(path))
