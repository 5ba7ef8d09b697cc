"""How a job's failure is told: its error type and message, without server paths.

`error_of` turns an exception out of loading or training into the job's `error`
({type, message}): oom, dataset_missing, disk_full, ... or the exception's class;
`public_message` names paths under the artifact directory for what they are (the job's
directory, a dataset) and cuts any other absolute path to its last part.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tricklab.settings import get_settings


def is_oom(exc: BaseException) -> bool:
    """Out of memory: torch's OutOfMemoryError (CUDA), MemoryError, or CPU torch's
    RuntimeError from its allocator ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower()
    )


def error_of(exc: BaseException) -> dict[str, str]:
    """{type, message} for the job record: readable, one line, no traceback, no server path."""
    from tricks.checkpoint import DiskFull, free_bytes, human_bytes, is_disk_full

    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if is_oom(exc):
        return {
            "type": "oom",
            "message": f"out of memory ({public_message(message)[:300]}): lower "
            "training.batch_size or the model size",
        }
    full = _find(exc, DiskFull)
    if full is not None:
        size = f" ({human_bytes(full.size)})" if full.size is not None else ""
        free = f": {human_bytes(full.free)} free" if full.free is not None else ""
        return {
            "type": "disk_full",
            "message": f"no space left writing {full.what}{size} to the job's directory{free}",
        }
    if is_disk_full(exc):  # a write other than tricks.checkpoint's (no size known)
        name = Path(getattr(exc, "filename", None) or "").name or "a file"
        left = free_bytes(get_settings().artifact_dir)
        free = f": {human_bytes(left)} free" if left is not None else ""
        return {
            "type": "disk_full",
            "message": f"no space left writing {name} to the artifact directory{free}",
        }
    missing = _missing_dataset(exc)
    if missing is not None:
        return {
            "type": "dataset_missing",
            "message": f"dataset {missing} is missing (deleted after the job was submitted?)",
        }
    return {"type": type(exc).__name__, "message": public_message(message)[:500]}


def _find(exc: BaseException, kind: type[BaseException]) -> Any:
    """`exc` or the first exception it was raised from that is a `kind`."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _missing_dataset(exc: BaseException) -> str | None:
    """The id of the uploaded dataset whose file is gone, when that is what `exc` says."""
    e = _find(exc, FileNotFoundError)
    if e is None or not e.filename:
        return None
    path = Path(os.path.abspath(e.filename))
    if path.parent.parent.name == "datasets" and path.suffix == ".npy":
        path = path.parent  # a member file of datasets/{id}/
    if path.parent.name == "datasets" and path.suffix in (".npz", ""):
        return path.stem  # datasets/{id}/ (tricks.uploads.open_stored) or a legacy {id}.npz
    return None


# An absolute path: "/" then at least one more "/"-separated part, not inside a URL.
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@~-]+/)+[\w.+@~-]*")


def public_message(message: str, artifact_dir: Path | None = None) -> str:
    """`message` with every server path replaced: a file in the artifact directory by what
    it is ("dataset d0193…", "checkpoints/ckpt-….pt in the job's directory"), any other
    absolute path by its last part."""
    art = os.path.abspath(artifact_dir or get_settings().artifact_dir)

    def replace(m: re.Match[str]) -> str:
        path = m.group(0)
        rel = os.path.relpath(path, art) if path.startswith(art + os.sep) else None
        if rel is not None:
            parts = Path(rel).parts
            if len(parts) == 2 and parts[0] == "datasets":
                return f"dataset {Path(parts[1]).stem}"
            if len(parts) >= 3 and parts[0] == "jobs":
                return f"{'/'.join(parts[2:])} in the job's directory"
            if len(parts) == 2 and parts[0] == "jobs":
                return "the job's directory"
        name = Path(path.rstrip("/")).name
        return f".../{name}" if name else "..."

    return _ABS_PATH.sub(replace, message)
