"""Helpers shared by the `tricklab` commands: exit codes, spec files, one-line errors, tables."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
# The reader of stdout went away (`tricklab ls | head -1`): 128 + SIGPIPE, what a program
# killed by SIGPIPE returns, so `set -o pipefail` scripts see it as coreutils' tools do.
EXIT_PIPE = 141
EPILOG = """exit codes:
  0    success (for --watch / watch: the job succeeded)
  1    the job failed, or the API answered with an error, or it could not be reached
  2    invalid spec or arguments (checked locally, or a 4xx validation error from the API)
  130  the job was cancelled (or you pressed Ctrl-C)
  141  the reader of stdout stopped early (`tricklab ls | head -1`); nothing else went wrong

epochs: shown 1-based, "epoch 9/20" is the 9th of 20 (the API's progress.epoch and
best.epoch are 0-based indexes: 8 there); a job that has not started shows "—/20".

environment: TRICKLAB_URL (default http://127.0.0.1:8000), TRICKLAB_API_KEY."""


class UsageError(Exception):
    """A problem with the user's input found before any request; exit 2."""


# ---------------------------------------------------------------------- helpers


def _out(*a: Any) -> None:
    print(*a, flush=True)


def load_file(path: str) -> Any:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except ValueError as e:  # json.JSONDecodeError and yaml.YAMLError's line info
        raise UsageError(f"{path} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}") from None
    except Exception as e:  # yaml.YAMLError does not subclass ValueError
        msg = " ".join(str(e).split())
        raise UsageError(f"{path} is not valid YAML: {msg}") from None


def _one_line_errors(exc: Exception) -> str:
    from tricks.spec import validation_errors

    parts = []
    for e in validation_errors(exc):  # type: ignore[arg-type]
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


def validate_spec(raw: Any, source: str) -> dict[str, Any]:
    """Validate a job spec locally (JobSpec, plus the dataset checks for built-ins)."""
    from pydantic import ValidationError

    from tricks.catalog import builtin_meta
    from tricks.spec import JobSpec, SpecError, check_against_dataset

    if not isinstance(raw, dict):
        raise UsageError(f"invalid spec {source}: expected a JSON/YAML object at the top level")
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as e:
        raise UsageError(f"invalid spec {source}: {_one_line_errors(e)}") from None
    meta = builtin_meta(spec.data.dataset, spec.data.val_fraction)
    if meta is not None:
        try:
            check_against_dataset(spec, meta)
        except SpecError as e:
            raise UsageError(f"invalid spec {source}: {e}") from None
    return raw


def _age(ts: str | None) -> str:
    if not ts:
        return "-"
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    return _duration((datetime.now(UTC) - t).total_seconds()) + " ago"


def _duration(s: float | None) -> str:
    if s is None or not math.isfinite(s) or s < 0:
        return "-"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def _num(v: Any, fmt: str = ".4g") -> str:
    return format(v, fmt) if isinstance(v, int | float) and not isinstance(v, bool) else "-"


def _ep(epoch: Any) -> str:
    """Epochs are 0-based in the API; people (and the progress bar) count from 1."""
    return str(epoch + 1) if isinstance(epoch, int) and not isinstance(epoch, bool) else "-"


def epoch_of(progress: dict[str, Any], status: str | None) -> str:
    """'9/20' for the 9th of 20 epochs (the 0-based progress.epoch 8); '—/20' before the
    first update (a queued job's progress is the plan's zeros, not epoch 1); '-' without one."""
    epochs = progress.get("epochs")
    if not progress or not epochs:
        return "-"
    ep, step = progress.get("epoch"), progress.get("step")
    if status == "queued" and not step:
        return f"—/{epochs}"
    if not isinstance(ep, int) or isinstance(ep, bool):
        return f"-/{epochs}"
    return f"{min(ep + 1, int(epochs))}/{epochs}"


def train_val(d: dict[str, Any]) -> tuple[Any, Any]:
    """(n_train, n_val) of a GET /datasets item, as a job with the default val_fraction splits it.

    A dataset without its own validation split is split by each job (data.val_fraction);
    an API that reports such a dataset as n_val 0 (older ones did) gets the default split
    computed here, with the same rule the API and worker use (tricks.spec.split_sizes).
    """
    n_train, n_val = d.get("n_train"), d.get("n_val")
    own = d.get("own_val")
    if isinstance(n_train, int) and n_val == 0 and own is not True:
        from tricks.spec import DataSpec, split_sizes

        return split_sizes(n_train, DataSpec.model_fields["val_fraction"].default)
    return n_train, n_val


def error_text(status: str | None, err: Any) -> str:
    """'failed: diverged — the loss became nan or inf at step 123 (lr 0.9)': the status, the
    error type and its message once (the message often repeats the type)."""
    if not isinstance(err, dict):
        return f"{status}: {' '.join(str(err).split())}" if err else str(status)
    kind = str(err.get("type") or "error")
    msg = " ".join(str(err.get("message") or "").split())
    m = _DIVERGED.fullmatch(msg) if kind == "diverged" else None
    if m:
        msg = f"the loss became nan or inf at step {m['step']} (lr {m['lr']})"
    elif msg.lower().startswith(kind.replace("_", " ").lower()):
        msg = msg[len(kind) :].lstrip(" :")
    return f"{status}: {kind.replace('_', ' ')}" + (f" — {msg}" if msg else "")


_DIVERGED = re.compile(r"diverged at step (?P<step>\d+) \(lr = (?P<lr>[^)]+)\)")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        _out("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
