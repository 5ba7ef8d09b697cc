"""The names shared by upload parsing, the API and the workers (numpy only, no torch).

The API ingests uploads with tricks.ingest: streamed from disk with bounded memory, every
format, native dtypes, into the stored layout that workers read. This module keeps what
other code imports: `open_stored` / `stored_bytes` / `remove_stored` (the stored layout,
tricks.ingest.stored), `UploadError`, `kind_of`, the label column names and the limits.
"""

from __future__ import annotations

import csv
from typing import Literal

from tricks.ingest.stored import open_stored, remove_stored, stored_bytes  # noqa: F401

MIN_SAMPLES = 10
LABEL_COLUMNS = ("label", "y", "target", "class")
KINDS: dict[int, Literal["tabular", "sequence", "image"]] = {
    2: "tabular",
    3: "sequence",
    4: "image",
}


class UploadError(ValueError):
    """An upload we refuse; `field` names the array, column or "file" at fault."""

    def __init__(self, message: str, field: str = "file") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def kind_of(x_ndim: int) -> Literal["tabular", "sequence", "image"]:
    """tabular (N,F), sequence (N,C,L) or image (N,C,H,W), by the rank of x."""
    if x_ndim not in KINDS:
        raise UploadError(
            f"x has {x_ndim} dimensions; expected (N,F) tabular, (N,C,L) sequences or (N,C,H,W) images",
            "x",
        )
    return KINDS[x_ndim]


def _csv_problem(e: csv.Error) -> str:
    """csv's message, with what to do about the one a caller can hit by accident."""
    msg = str(e)
    if "field larger than field limit" in msg:
        return (
            f"a field is longer than {csv.field_size_limit()} characters; numeric cells are "
            "short, so check the quoting (an unclosed quote swallows the rest of the file)"
        )
    return msg
