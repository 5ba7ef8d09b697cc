"""The final model back from its file: `load_model(path)` rebuilds the trained nn.Module.

A `model.safetensors` written by the worker (tricks.checkpoint.save_model) carries,
besides its tensors, string metadata: `spec` (the job spec, JSON), `input_shape`
(JSON list), `num_classes` and `tricklab_version`. That is all `build_model`
needs, so a user gets the module without tricklab's job record or dataset.
Loading reads safetensors only: nothing is unpickled, no code in the file runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from torch import nn

from tricks.models import build_model
from tricks.spec import JobSpec

KEYS = ("spec", "input_shape", "num_classes", "tricklab_version")


def tricklab_version() -> str:
    try:
        return importlib_metadata.version("tricklab")
    except importlib_metadata.PackageNotFoundError:  # running from a bare source tree
        return "unknown"


def model_metadata(
    spec: dict[str, Any], input_shape: Sequence[int], num_classes: int
) -> dict[str, str]:
    """The safetensors metadata that lets `load_model` rebuild the module (all strings)."""
    return {
        "spec": json.dumps(spec, sort_keys=True, separators=(",", ":")),
        "input_shape": json.dumps([int(s) for s in input_shape]),
        "num_classes": str(int(num_classes)),
        "tricklab_version": tricklab_version(),
    }


def read_metadata(path: Path | str) -> dict[str, str]:
    """The file's safetensors metadata (header only: the tensors are not read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_model(path: Path | str, device: str = "cpu") -> nn.Module:
    """The trained module of a model.safetensors, weights loaded, in eval mode.

    Raises ValueError when the file lacks the metadata (files written before it
    was added): load its state_dict with `tricks.checkpoint.load_model` and build
    the module with `tricks.models.build_model` instead.
    """
    from safetensors.torch import load_file

    meta = read_metadata(path)
    missing = [k for k in KEYS[:3] if k not in meta]
    if missing:
        raise ValueError(
            f"{path} has no {', '.join(missing)} in its metadata, so the module cannot be "
            "rebuilt: load its state_dict with tricks.checkpoint.load_model instead"
        )
    spec = JobSpec.model_validate_json(meta["spec"])
    shape = tuple(int(s) for s in json.loads(meta["input_shape"]))
    model = build_model(spec.model, shape, int(meta["num_classes"]), spec.regularization.dropout)
    model.load_state_dict(load_file(str(path), device=device), strict=True)
    return model.to(device).eval()
