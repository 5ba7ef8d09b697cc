"""Shared pieces of the spec models: the strict base model, limits, and errors with field paths."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

MAX_EPOCHS = 1000
MAX_BATCH = 65536


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


class SpecError(ValueError):
    """A cross-field problem found outside pydantic, with the field path it concerns."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc = loc
        self.msg = msg


_TAGGED = {
    "optimizer": {"sgd", "adam", "adamw"},
    "model": {
        "mlp",
        "cnn",
        "resnet",
        "resnet18",
        "resnet34",
        "preact_resnet18",
        "wide_resnet",
        "airbench",
    },
    "decay": {
        "constant",
        "step",
        "multistep",
        "cosine",
        "linear",
        "exponential",
        "onecycle",
        "cosine_restarts",
        "polynomial",
        "inverse_sqrt",
        "wsd",
    },
}


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Flatten a ValidationError into [{loc, msg, type}], moving SpecError paths into loc.

    Cross-field validators raise SpecError with a path relative to the model they
    check; pydantic reports them at that model, so the two paths are joined here.
    """
    out = []
    for e in exc.errors(include_url=False):
        # pydantic puts the union tag in the path (optimizer.adam.lr); users think optimizer.lr
        loc = [
            p
            for i, p in enumerate(e["loc"])
            if not (i > 0 and e["loc"][i - 1] in _TAGGED and p in _TAGGED[e["loc"][i - 1]])
        ]
        msg = e["msg"]
        err = (e.get("ctx") or {}).get("error")
        if isinstance(err, SpecError):
            loc += list(err.loc)
            msg = err.msg
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append({"loc": loc, "msg": msg, "type": e["type"]})
    return out
