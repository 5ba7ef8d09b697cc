"""PNG plots of curves, learning rates and comparisons (matplotlib, Agg backend).

matplotlib is imported inside each function: `tricklab --help` must not pay for it.
Every function returns the Figure it saved (closed), so tests can read its labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOSSES = ("train_loss", "val_loss")
ACCURACIES = ("train_acc", "val_acc")
LABELS = {
    "train_loss": "train loss",
    "val_loss": "val loss",
    "train_acc": "train acc",
    "val_acc": "val acc",
    "val_ece": "val ECE",
    "lr": "learning rate",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _series(curves: dict[str, Any]) -> dict[str, dict[str, list]]:
    """Accept a /curves answer ({"series": {...}}) or the series dict itself."""
    s = curves.get("series", curves) if isinstance(curves, dict) else {}
    return {k: v for k, v in s.items() if isinstance(v, dict) and v.get("step")}


def _save(fig, path: str | Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return fig


def plot_curves(curves: dict[str, Any], path: str | Path, title: str | None = None):
    """Loss panel (train/val), accuracy panel (train/val), and ECE and lr panels when present."""
    plt = _pyplot()
    series = _series(curves)
    panels: list[tuple[str, Sequence[str]]] = [("loss", LOSSES), ("accuracy", ACCURACIES)]
    if "val_ece" in series:
        panels.append(("ECE", ("val_ece",)))
    if "lr" in series:
        panels.append(("learning rate", ("lr",)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (ylabel, names) in zip(axes[0], panels, strict=True):
        drawn = False
        for name in names:
            s = series.get(name)
            if not s:
                continue
            # per-step train series are dense; per-epoch ones get markers so single points show
            marker = "o" if len(s["step"]) <= 60 else None
            ax.plot(s["step"], s["value"], label=LABELS.get(name, name), marker=marker, ms=3)
            drawn = True
        ax.set_xlabel("step (optimizer updates)")
        ax.set_ylabel(ylabel)
        if ylabel == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title or curves.get("name") or "training curves")
    fig.tight_layout()
    return _save(fig, path)


def plot_lr(
    planned: dict[str, list] | None,
    actual: dict[str, list] | None,
    path: str | Path,
    *,
    log_y: bool = False,
    title: str = "learning-rate schedule",
):
    """The planned schedule as a line, with the lr the worker actually used as points on top."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if planned and planned.get("step"):
        ax.plot(planned["step"], planned["lr"], label="planned", color="C0", lw=1.5, zorder=1)
    if actual and actual.get("step"):
        ax.scatter(actual["step"], actual["lr"], label="actual", color="C3", s=10, zorder=2)
    ax.set_xlabel("step (optimizer updates)")
    ax.set_ylabel("learning rate")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_compare(
    runs: Sequence[tuple[str, dict[str, list]]],
    metric: str,
    x: str,
    path: str | Path,
    *,
    title: str | None = None,
):
    """Overlay one metric of several runs; `runs` is [(label, {"x": [...], "value": [...]})].

    `x` only names the axis ("step", "epoch" or "fraction"); callers convert steps.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, s in runs:
        xs = s.get("x", s.get("step", []))
        marker = "o" if len(xs) <= 60 else None
        ax.plot(xs, s["value"], label=label, marker=marker, ms=3)
    ax.set_xlabel(
        {
            "step": "step (optimizer updates)",
            "epoch": "epoch",
            "fraction": "fraction of training",
        }.get(x, x)
    )
    ax.set_ylabel(LABELS.get(metric, metric))
    if x == "epoch":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize="small")
    ax.set_title(title or f"{LABELS.get(metric, metric)} by {x}")
    fig.tight_layout()
    return _save(fig, path)
