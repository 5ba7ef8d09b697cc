"""tricks: the shared training core of tricklab.

Spec models and schedules import no torch, so the API can use them; the training
parts (`tricks.train`, models, data, augmentation) do. `tricks.load_model(path)`
rebuilds a trained model from its model.safetensors; it is imported on first use,
so `import tricks.spec` stays torch-free.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from tricks.load import load_model

        return load_model
    raise AttributeError(f"module 'tricks' has no attribute {name!r}")
