"""What GET /searches/{id} answers: the search's status, its trials with their state,
rung and epochs, the best, the budget spent, and the confirm table with Welch's test."""

from __future__ import annotations

from typing import Any

from api.search_jobs import epochs_spent, metric_value
from tricklab import sweep_report
from tricklab.contract import TERMINAL
from tricklab.search_spec import SearchSpec, base_epochs, grid_size, rungs
from tricklab.server.searches import SearchStore


def search_status(search: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> str:
    """queued | running | confirming | succeeded | failed | cancelled."""
    unfinished = [j for j in jobs.values() if j["status"] not in TERMINAL]
    if search["cancelled"]:
        return "running" if any(j["status"] == "running" for j in unfinished) else "cancelled"
    if search["error"]:
        return "failed"
    if search["phase"] == "done":
        return "succeeded"
    if search["phase"] == "confirm":
        return "confirming"
    return "running" if any(j["status"] != "queued" for j in jobs.values()) else "queued"


def _trial_state(t: dict[str, Any], job: dict[str, Any] | None, cancelled: bool) -> str:
    """pending | queued | running | paused (at a rung, being judged) | succeeded | failed |
    cancelled | stopped_early (ASHA) | rejected (not a valid job)."""
    if t.get("rejected"):
        return "rejected"
    if t.get("stopped"):
        return "stopped_early"
    if job is None:
        return "cancelled" if cancelled else "pending"
    if job["status"] == "succeeded" and not t.get("told"):
        return "cancelled" if cancelled else "paused"
    return job["status"]


def trial_jobs(t: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(the trial's own jobs in order: its first job, then each ASHA segment; its cool-downs)."""
    segs = [s["job_id"] for s in t.get("segments") or []] or [t["job_id"]]
    return segs, list((t.get("cooldowns") or {}).values())


def _confirm_public(
    search: dict[str, Any], spec: SearchSpec, jobs: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    if spec.confirm is None:
        return None
    by_number = {t["number"]: t for t in search["trials"]}
    rows: dict[int, dict[str, Any]] = {}
    for c in search["confirm"]:
        row = rows.setdefault(
            c["rank"],
            {
                "rank": c["rank"],
                "trial": c["number"],
                "params": by_number[c["number"]]["params"],
                "search_value": by_number[c["number"]].get("value"),
                "jobs": [],
                "values": [],
            },
        )
        job = jobs.get(c["job_id"])
        row["jobs"].append(
            {
                "job_id": c["job_id"],
                "seed": c["seed"],
                "status": job["status"] if job else "pending",
            }
        )
        v = metric_value(job, spec.metric) if job else None
        if v is not None:
            row["values"].append(v)
    out_rows = []
    for r in rows.values():
        s = sweep_report.summarize(r["values"])
        out_rows.append({**r, "mean": s["mean"], "std": s["std"], "n": s["n"]})
    sign = 1 if spec.mode == "max" else -1
    ranked = sorted((r for r in out_rows if r["n"]), key=lambda r: sign * r["mean"], reverse=True)
    verdict: dict[str, Any] | None = None
    if len(ranked) >= 2:
        win, up = ranked[0], ranked[1]
        cmp = sweep_report.compare(
            win["values"], up["values"], spec.metric, up["rank"], f"trial {up['trial']}"
        )
        beats = bool(cmp["significant"]) and sign * (cmp["delta"] or 0) > 0
        verdict = {
            **cmp,
            "winner_rank": win["rank"],
            "winner_trial": win["trial"],
            "beats_runner_up": "yes" if beats else "no",
            "sentence": (
                f"trial {win['trial']} beats trial {up['trial']} beyond seed noise: "
                f"{'yes' if beats else 'no'} (Welch p = "
                + (f"{cmp['p']:.3g}" if cmp["p"] is not None else "n/a")
                + ")"
            ),
        }
    return {
        "top_k": spec.confirm.top_k,
        "seeds": spec.confirm.seeds,
        "rows": sorted(out_rows, key=lambda r: r["rank"]),
        "winner": verdict,
    }


def search_public(ss: SearchStore, search: dict[str, Any]) -> dict[str, Any]:
    spec = SearchSpec.model_validate(search["request"])
    jobs = ss.jobs(search)
    trials = []
    cooldown_spent = 0
    for t in search["trials"]:
        segs: list[str] = []
        cools: list[str] = []
        if not t.get("rejected"):
            segs, cools = trial_jobs(t)
        last = jobs.get(segs[-1]) if segs else None
        spent_cool = sum(epochs_spent(jobs.get(j)) for j in cools)
        cooldown_spent += spent_cool
        trials.append(
            {
                "number": t["number"],
                "job_id": t.get("job_id"),
                "params": t["params"],
                "state": _trial_state(t, last, search["cancelled"]),
                "rung": len(t.get("rung_values") or {}) if spec.early_stopping else None,
                "rung_values": t.get("rung_values") if spec.early_stopping else None,
                "metric": t.get("value"),
                "epochs_spent": sum(epochs_spent(jobs.get(j)) for j in segs) + spent_cool,
                "jobs": segs,
                "cooldown_jobs": cools,
                **({"rejected": t["rejected"]} if t.get("rejected") else {}),
            }
        )
    live = [t for t in trials if t["state"] != "rejected"]
    scored = [t for t in live if t["metric"] is not None]
    sign = 1 if spec.mode == "max" else -1
    best = max(scored, key=lambda t: sign * t["metric"]) if scored else None
    epochs = base_epochs(spec.base)
    planned = min(spec.trials, grid_size(spec.space)) if spec.algorithm == "grid" else spec.trials
    spent = sum(t["epochs_spent"] for t in live)
    confirm_jobs = [jobs[c["job_id"]] for c in search["confirm"] if c["job_id"] in jobs]
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return {
        "id": search["id"],
        "name": search["name"],
        "status": search_status(search, jobs),
        "phase": search["phase"],
        "created_at": search["created_at"],
        "finished_at": search["finished_at"],
        "algorithm": spec.algorithm,
        "metric": spec.metric,
        "mode": spec.mode,
        "space": {k: v.model_dump(mode="json", by_alias=True) for k, v in spec.space.items()},
        "trials_planned": planned,
        "max_concurrent": spec.max_concurrent,
        "counts": counts,
        "rejected": counts.get("rejected", 0),
        "trials": trials,
        "best": ({k: best[k] for k in ("number", "job_id", "params", "metric")} if best else None),
        "budget": {
            "epochs_spent": spent,
            "epochs_full": planned * epochs,
            "fraction": round(spent / (planned * epochs), 4) if planned * epochs else None,
            "cooldown_epochs": cooldown_spent,
            "confirm_epochs": sum(epochs_spent(j) for j in confirm_jobs),
        },
        "early_stopping": (
            {
                **spec.early_stopping.model_dump(mode="json"),
                "rungs": rungs(spec.early_stopping, epochs),
            }
            if spec.early_stopping
            else None
        ),
        "importance": search["importance"],
        "confirm": _confirm_public(search, spec, jobs),
        "error": search["error"],
        "cancelled": search["cancelled"],
    }
