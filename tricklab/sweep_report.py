"""The results of a sweep: one row per variant with mean ± std over seeds, and
each row's difference from the row it is compared with (ablation: the previous
row; leave-one-out: the full recipe; grid: the first variant), tested against
seed noise with Welch's t-test (tricklab.welch).

Input is plain data, so the API (child job records), the CLI and bench/ablation.py
(local TrainResults) share it: per variant, a list of finished runs, each
`{"status", "result": {"metrics": {...}, "best": {...}, "duration_s"}}`.
No torch, no Redis.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from tricklab.welch import TEST_NAME, mean_var, welch

ALPHA = 0.05
# column → how to read it from a succeeded run's result
COLUMNS = {
    "final_val_acc": lambda r: (r.get("metrics") or {}).get("val_acc"),
    "best_val_acc": lambda r: (r.get("best") or {}).get("val_acc"),
    "final_val_loss": lambda r: (r.get("metrics") or {}).get("val_loss"),
    "final_val_ece": lambda r: (r.get("metrics") or {}).get("val_ece"),
    "train_time_s": lambda r: r.get("duration_s"),
}
COMPARE_METRICS = ("final_val_acc", "best_val_acc", "final_val_loss", "final_val_ece")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def summarize(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    m, var = mean_var(values)
    return {
        "mean": m,
        "std": math.sqrt(var) if len(values) > 1 else None,
        "n": len(values),
        "values": values,
    }


def compare(a: list[float], b: list[float], metric: str, vs: int, vs_name: str) -> dict[str, Any]:
    """mean(a) − mean(b) and whether it is larger than seed noise."""
    delta = (math.fsum(a) / len(a) - math.fsum(b) / len(b)) if a and b else None
    w = welch(a, b)
    return {
        "metric": metric,
        "vs": vs,
        "vs_name": vs_name,
        "delta": delta,
        "test": TEST_NAME,
        "t": w.t,
        "df": w.df,
        "p": w.p,
        "alpha": ALPHA,
        "significant": None if w.p is None else w.p < ALPHA,
        "note": w.note,
    }


def build_table(
    variants: list[dict[str, Any]],
    runs: list[list[dict[str, Any]]],
    metric: str = "final_val_acc",
) -> list[dict[str, Any]]:
    """One row per variant; `runs[i]` are variant i's child jobs (any status)."""
    assert metric in COMPARE_METRICS, metric
    values: list[dict[str, list[float]]] = []
    rows = []
    for v, children in zip(variants, runs, strict=True):
        done = [c for c in children if c.get("status") == "succeeded" and c.get("result")]
        cols: dict[str, list[float]] = {}
        for name, get in COLUMNS.items():
            cols[name] = [x for c in done if (x := _num(get(c["result"]))) is not None]
        values.append(cols)
        counts: dict[str, int] = {}
        for c in children:
            counts[c.get("status") or "pending"] = counts.get(c.get("status") or "pending", 0) + 1
        rows.append(
            {
                "variant": v["index"],
                "name": v["name"],
                "change": v["change"],
                "n_seeds": len(v["seeds"]),
                "n_done": len(done),
                "counts": counts,
                **{name: summarize(cols[name]) for name in COLUMNS},
                "compare_to": v.get("compare_to"),
                "diff": None,
            }
        )
    for row in rows:
        j = row["compare_to"]
        if j is not None:
            i = row["variant"]
            row["diff"] = compare(values[i][metric], values[j][metric], metric, j, rows[j]["name"])
    return rows


# ------------------------------------------------------------------------ text


def _pm(s: dict[str, Any], scale: float = 1.0, digits: int = 2) -> str:
    if s["mean"] is None:
        return "–"
    m = s["mean"] * scale
    if s["std"] is None:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def _diff(d: dict[str, Any] | None, pct: bool) -> tuple[str, str]:
    if d is None or d["delta"] is None:
        return "", ""
    delta = d["delta"] * (100 if pct else 1)
    text = f"{delta:+.2f}" if pct else f"{delta:+.4f}"
    if d["p"] is None:
        return text, "n/a"
    mark = " *" if d["significant"] else ""
    return text, f"p={d['p']:.3g}{mark}"


def format_table(rows: list[dict[str, Any]], metric: str = "final_val_acc") -> str:
    """A plain-text (markdown) table: accuracies in %, loss and ECE as numbers."""
    pct = metric.endswith("acc")
    head = [
        "variant",
        "n",
        "final val acc %",
        "best val acc %",
        "val loss",
        "val ECE %",
        "time s",
        f"Δ {metric.replace('_', ' ')}",
        "Welch p",
    ]
    body = []
    for r in rows:
        delta, p = _diff(r["diff"], pct)
        body.append(
            [
                r["name"],
                f"{r['n_done']}/{r['n_seeds']}",
                _pm(r["final_val_acc"], 100),
                _pm(r["best_val_acc"], 100),
                _pm(r["final_val_loss"], 1, 3),
                _pm(r["final_val_ece"], 100),
                _pm(r["train_time_s"], 1, 1),
                delta,
                p,
            ]
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) + " |" for b in body
    ]
    foot = (
        f"Δ: mean difference from the row compared with (ablation: previous row; leave-one-out: "
        f"full recipe; grid: first variant). p: {TEST_NAME} over seeds; * p < {ALPHA}; "
        f"n/a with fewer than 2 seeds. ± is the sample std over seeds."
    )
    return "\n".join(lines) + "\n\n" + foot


# ---------------------------------------------------------------------- curves


def band(
    curves: list[tuple[np.ndarray, np.ndarray]], max_points: int = 400
) -> dict[str, list[float | None]]:
    """Mean and min–max over seeds of curves (x, y) aligned on the union of their x.

    Each curve is linearly interpolated onto the common grid inside its own x
    range only (no extrapolation), so a seed that stopped early drops out of
    the band where it has no data instead of being padded.
    """
    curves = [(np.asarray(x, float), np.asarray(y, float)) for x, y in curves if len(x)]
    if not curves:
        return {"x": [], "mean": [], "min": [], "max": [], "n": []}
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    if len(grid) > max_points:
        grid = grid[np.unique(np.linspace(0, len(grid) - 1, max_points).round().astype(int))]
    stack = np.full((len(curves), len(grid)), np.nan)
    for i, (x, y) in enumerate(curves):
        order = np.argsort(x)
        x, y = x[order], y[order]
        inside = (grid >= x[0]) & (grid <= x[-1])
        stack[i, inside] = np.interp(grid[inside], x, y)
    n = np.sum(np.isfinite(stack), axis=0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'All-NaN slice': no seed covers x
        mean = np.nanmean(stack, axis=0)
        lo, hi = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)

    def clean(a: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in a]

    return {
        "x": grid.tolist(),
        "mean": clean(mean),
        "min": clean(lo),
        "max": clean(hi),
        "n": n.tolist(),
    }
