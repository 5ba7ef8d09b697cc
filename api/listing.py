"""GET /jobs query checks: sort paths, tags, the text search; each failure a 422 naming the
query parameter (the listing itself is tricklab.server.listing)."""

from __future__ import annotations

import re
import types
import typing
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from api.errors import invalid
from tricklab.server.annotations import MAX_TAG_LEN
from tricklab.server.listing import ROOTS, Sort
from tricks.spec import JobSpec

MAX_SORT_LEN = 200
MAX_Q_LEN = 200
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# roots whose one sub-field is free-form (the worker may report more metrics than it does today)
_OPEN_ROOTS = {
    "best": "best.val_acc",
    "metrics": "metrics.val_loss",
    "progress": "progress.samples_per_second",
    "plan": "plan.parameters",
}
SORT_EXAMPLES = (
    "created_at, -best.val_acc, metrics.val_loss, metrics.val_ece, duration_s, "
    "progress.samples_per_second, spec.optimizer.lr, spec.schedule.decay.kind, name"
)


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, unions, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(annotation) for m in _models(a)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


@lru_cache(maxsize=1024)
def spec_path_known(path: tuple[str, ...]) -> bool:
    """Whether some JobSpec variant has this field path (decay.min_lr: on the kinds that take it)."""
    models: list[type[BaseModel]] = [JobSpec]
    for i, part in enumerate(path):
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields:
            return False
        models = [m for f in fields for m in _models(f.annotation)]
        if not models and i < len(path) - 1:
            return False  # a leaf (number, list, ...) has no sub-fields
    return True


def parse_sort(text: str | None) -> Sort | None:
    """A Sort for the query's sort=, or a 422 on query.sort naming what is wrong."""
    if text is None or text == "":
        return None
    loc: list[str | int] = ["query", "sort"]
    if len(text) > MAX_SORT_LEN:
        raise invalid(loc, f"sort is {len(text)} characters; at most {MAX_SORT_LEN}")
    desc = text.startswith("-")
    path = tuple(text[1:].split(".") if desc else text.split("."))
    if not all(_SEGMENT.match(p) for p in path):
        raise invalid(
            loc,
            f"sort={text!r} is not a field path: dotted names, '-' first for descending (e.g. -best.val_acc)",
        )
    root, rest = path[0], path[1:]
    unknown = (
        f"unknown path {'.'.join(path)!r}: sort by one of {SORT_EXAMPLES}, or another spec.* field"
    )
    if root not in ROOTS:
        raise invalid(loc, unknown)
    if root == "spec":
        if not rest or not spec_path_known(rest):
            raise invalid(loc, unknown)
    elif root in _OPEN_ROOTS:
        if len(rest) != 1:
            raise invalid(
                loc,
                f"unknown path {'.'.join(path)!r}: {root} takes one field, e.g. {_OPEN_ROOTS[root]}",
            )
    elif rest:
        raise invalid(loc, unknown)
    return Sort(path, desc)


def check_tag(tag: str, loc: list[str | int]) -> str:
    """A tag as stored (whitespace trimmed), or a 422 at loc: 1–64 characters, no commas."""
    t = tag.strip()
    if not t:
        raise invalid(loc, "a tag cannot be empty")
    if len(t) > MAX_TAG_LEN:
        raise invalid(loc, f"tag {t[:20]!r}... is {len(t)} characters; at most {MAX_TAG_LEN}")
    if "," in t:
        raise invalid(
            loc, f"tag {t!r} has a comma; tags are single labels (send a list for several)"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in t):
        raise invalid(loc, f"tag {t!r} has a control character")
    return t


def check_q(q: str | None) -> str | None:
    if q is None or q == "":
        return None
    if len(q) > MAX_Q_LEN:
        raise invalid(["query", "q"], f"q is {len(q)} characters; at most {MAX_Q_LEN}")
    return q
