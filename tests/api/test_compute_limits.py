"""Heavy compute from one tenant (issue 10): step and parameter limits, the sampled planned
lr curve, and the bounded pool that previews and lr curves run in.

A private API under uvicorn with TRICKLAB_AUTH=required on its own Redis database, keys
made by tricklab.server.apikeys (per-key limits), a small max_total_steps, and a heavy
pool of one thread and one waiting place. No worker: jobs stay queued.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from support import assert_error, launch_api, locs, minimal_spec

from tricklab.server.apikeys import KeyRing, _parser
from tricklab.server.connection import connect
from tricks.schedules import lr_curve
from tricks.spec import ScheduleSpec

MAX_STEPS = 5_000  # this API's max_total_steps
SPE = 22  # digits (1437 training samples) in batches of 64


@dataclass
class LimitedApi:
    url: str
    ring: KeyRing

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=120, headers={"Authorization": f"Bearer {key}"}
        )

    def key(self, name: str, **limits: int) -> str:
        return self.ring.create(name, limits=limits)[0]


@pytest.fixture(scope="module")
def limited(redis_server, tmp_path_factory) -> Iterator[LimitedApi]:
    p = launch_api(
        redis_server.port,
        tmp_path_factory,
        12,
        "compute-limits",
        TRICKLAB_AUTH="required",
        TRICKLAB_MAX_TOTAL_STEPS=str(MAX_STEPS),
        TRICKLAB_HEAVY_WORKERS="1",
        TRICKLAB_HEAVY_QUEUE="1",
        TRICKLAB_HEAVY_PER_TENANT="1",
        TRICKLAB_RATE_LIMIT_PER_S="1000",
        TRICKLAB_RATE_LIMIT_BURST="1000",
    )
    yield LimitedApi(p.url, KeyRing(connect(p.redis_url), "tl"))
    p.proc.stop()


def limit_detail(err: dict, loc: list[str], limit: str) -> dict:
    assert err["code"] == "quota_exceeded", err
    assert locs(err) == [loc], err
    d = err["details"][0]
    assert d["limit"] == limit and limit in err["message"], err
    return d


# ----------------------------------------------------------------- total steps


def test_job_over_max_total_steps_is_422_at_training_epochs(limited):
    epochs = MAX_STEPS // SPE + 1  # 228 x 22 = 5016 steps
    with limited.client(limited.key("steps-a")) as c:
        ok = c.post("/jobs", json=minimal_spec(epochs=MAX_STEPS // SPE))
        assert ok.status_code == 201, ok.text
        assert ok.json()["plan"]["steps_per_epoch"] == SPE
        err = assert_error(c.post("/jobs", json=minimal_spec(epochs=epochs)), 422)
    d = limit_detail(err, ["training", "epochs"], "max_total_steps")
    assert d["max_total_steps"] == MAX_STEPS and d["total_steps"] == epochs * SPE == 5016
    assert "5016 steps" in err["message"] and f"at most {MAX_STEPS // SPE} epochs" in err["message"]


def test_a_key_may_raise_or_lower_max_total_steps(limited):
    epochs = MAX_STEPS // SPE + 1
    with limited.client(limited.key("steps-big", max_total_steps=10 * MAX_STEPS)) as c:
        assert c.post("/jobs", json=minimal_spec(epochs=epochs)).status_code == 201
    with limited.client(limited.key("steps-small", max_total_steps=SPE * 2)) as c:
        err = assert_error(c.post("/jobs", json=minimal_spec(epochs=3)), 422)
    assert limit_detail(err, ["training", "epochs"], "max_total_steps")["max_total_steps"] == 44


def test_preview_over_max_total_steps_is_422_at_epochs(limited):
    with limited.client(limited.key("steps-preview")) as c:
        body = {"lr": 0.1, "epochs": 51, "steps_per_epoch": 100}
        err = assert_error(c.post("/schedules/preview", json=body), 422)
        d = limit_detail(err, ["epochs"], "max_total_steps")
        assert d["total_steps"] == 5100 and "at most 50 epochs" in err["message"]
        ok = c.post("/schedules/preview", json={**body, "epochs": 50})
        assert ok.status_code == 200 and ok.json()["total_steps"] == 5000


# ------------------------------------------------------------------ parameters


def mlp_with_bn(widths: list[int], n_in: int = 64, classes: int = 10) -> int:
    """Hand count: Linear without bias + BatchNorm (2 per unit) per hidden layer, then a head."""
    n, prev = 0, n_in
    for w in widths:
        n += prev * w + 2 * w
        prev = w
    return n + prev * classes + classes


def test_a_billion_parameters_is_422_at_model(limited):
    hidden = [8192] * 16
    want = mlp_with_bn(hidden)
    assert want > 10**9
    with limited.client(limited.key("params-a")) as c:
        spec = {**minimal_spec(), "model": {"arch": "mlp", "hidden": hidden}}
        err = assert_error(c.post("/jobs", json=spec), 422)
    d = limit_detail(err, ["model"], "max_parameters")
    assert d["parameters"] == want and d["max_parameters"] == 100_000_000
    assert f"{want:,}" in err["message"]


def test_a_key_may_lower_max_parameters(limited):
    default_mlp = mlp_with_bn([256, 128])  # 51,210
    with limited.client(limited.key("params-small", max_parameters=50_000)) as c:
        err = assert_error(c.post("/jobs", json=minimal_spec()), 422)
        d = limit_detail(err, ["model"], "max_parameters")
        assert d == {**d, "parameters": default_mlp, "max_parameters": 50_000}
        small = {**minimal_spec(), "model": {"arch": "mlp", "hidden": [64]}}
        assert c.post("/jobs", json=small).status_code == 201


def test_a_sweep_variant_over_a_limit_names_its_own_field(limited):
    """Each limit's loc survives the sweep's per-variant error (not always training.epochs)."""
    with limited.client(limited.key("params-sweep")) as c:
        grid = {"model.hidden": [[64], [8192] * 16]}
        err = assert_error(c.post("/sweeps", json={"base": minimal_spec(), "grid": grid}), 422)
        assert locs(err) == [["variants", 1, "model"]] and "max_parameters" in err["message"]
        grid = {"training.epochs": [3, MAX_STEPS // SPE + 1]}
        err = assert_error(c.post("/sweeps", json={"base": minimal_spec(), "grid": grid}), 422)
        assert locs(err) == [["variants", 1, "training", "epochs"]]
        assert "max_total_steps" in err["message"]


def test_keys_cli_takes_the_new_limits():
    args = _parser().parse_args(["create", "x", "--max-parameters", "7", "--max-total-steps", "9"])
    assert (args.max_parameters, args.max_total_steps) == (7, 9)


# -------------------------------------------------------- planned lr, sampled


def test_planned_lr_honours_max_points_and_equals_the_full_curve(limited):
    """1000 epochs of batch 1: 1.437M planned steps, 200 points back, each the exact lr."""
    sched = {"warmup": {"epochs": 3, "start_lr": 0.0}, "decay": {"kind": "step", "gamma": 0.5,
             "step_epochs": 300}}  # fmt: skip
    spec = {**minimal_spec(epochs=1000, batch_size=1), "schedule": sched}
    with limited.client(limited.key("lr-long", max_total_steps=2_000_000)) as c:
        job = c.post("/jobs", json=spec)
        assert job.status_code == 201, job.text
        plan, lr0 = job.json()["plan"], job.json()["spec"]["optimizer"]["lr"]
        r = c.get(f"/jobs/{job.json()['id']}/lr", params={"max_points": 200})
    assert r.status_code == 200, r.text
    planned = r.json()["planned"]
    n = plan["steps_per_epoch"] * 1000
    assert n == plan["total_steps"] > 1_000_000
    full = lr_curve(
        lr0=lr0, schedule=ScheduleSpec(**sched), steps_per_epoch=plan["steps_per_epoch"],
        epochs=1000,
    )  # fmt: skip
    steps = np.asarray(planned["step"])
    assert 4 <= len(steps) <= 200 and steps[0] == 0 and steps[-1] == n - 1
    assert np.array_equal(np.asarray(planned["lr"]), full[steps])
    assert max(planned["lr"]) == full.max() and min(planned["lr"]) == full.min()
    assert r.json()["actual"] == {"step": [], "lr": []}


# ------------------------------------------------------------ the heavy pool

# 5,000 steps of a walked schedule (cosine restarts: no closed-form pieces) is quick, so
# the slow request raises its tenant's max_total_steps: 50M steps walk for several seconds
# (10M took under 0.5 s on a quiet machine, too short to hold the pool reliably).
SLOW = {
    "lr": 0.1,
    "epochs": 1000,
    "steps_per_epoch": 50_000,
    "max_points": 100,
    "schedule": {"decay": {"kind": "cosine_restarts", "t0_epochs": 3}},
}


def post_in_thread(c: httpx.Client, body: dict, out: dict, name: str) -> threading.Thread:
    def go() -> None:
        r = c.post("/schedules/preview", json=body)
        out[name] = (r, time.monotonic())

    t = threading.Thread(target=go)
    t.start()
    return t


def wait_busy(c: httpx.Client, out: dict, name: str) -> None:
    """Give the slow request time to be admitted (it then runs for a second or more)."""
    time.sleep(0.5)
    assert name not in out, "the slow preview finished too soon to test the pool"


def test_full_pool_answers_429_per_tenant_and_503_overall(limited):
    big = {"max_total_steps": 50_000_000}
    ka, kb, kc = (limited.key(n, **big) for n in ("pool-a", "pool-b", "pool-c"))
    with limited.client(ka) as a, limited.client(kb) as b, limited.client(kc) as cc:
        out: dict = {}
        t1 = post_in_thread(a, SLOW, out, "a1")
        wait_busy(a, out, "a1")
        # the tenant's one place is taken: 429, at once
        r = a.post("/schedules/preview", json={**SLOW, "epochs": 1})
        err = assert_error(r, 429, "too_many_requests")
        assert r.headers["retry-after"] == "1" and "heavy_per_tenant" in err["message"]
        # b takes the pool's one waiting place; c finds the pool full: 503
        t2 = post_in_thread(b, SLOW, out, "b1")
        time.sleep(0.3)
        r = cc.post("/schedules/preview", json={**SLOW, "epochs": 1})
        err = assert_error(r, 503, "busy")
        assert r.headers["retry-after"] == "1" and "heavy_queue" in err["message"]
        answered_c = time.monotonic()
        # meanwhile liveness and readiness answer on the event loop
        t0 = time.monotonic()
        h = httpx.get(f"{limited.url}/healthz", timeout=30)
        assert h.status_code == 200 and time.monotonic() - t0 < 2.0
        t1.join(120)
        t2.join(120)
    assert out["a1"][0].status_code == 200 and out["b1"][0].status_code == 200, out
    assert out["b1"][1] > answered_c  # b was still waiting or running when c was refused
    got = out["a1"][0].json()
    assert got["total_steps"] == 50_000_000 and len(got["step"]) <= 100
    # once both ended, every place is free again
    with limited.client(kc) as cc:
        assert cc.post("/schedules/preview", json={**SLOW, "epochs": 1}).status_code == 200
