"""The worker's reporter (worker/reporting.py) under a real training run and a real
redis-server of its own, which the tests pause (SIGSTOP), refuse writes on, flush scripts
from, cancel and fence: the training thread never waits on Redis, and every log point
still lands once, in order.

The oracles are outside the reporter: the training loop's own history (TrainResult), the
steps the loop logged (0, 1, 2, ... with log_every 1), Redis's own command counters and a
second client's PING. Runs are long (as many epochs as a spec allows, one log point per
update); each test stops its run once its scenario is done, so none depends on how fast
the machine trains.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import torch
from support import RedisServer, free_port, long_spec

from tricklab.server.connection import connect
from tricklab.server.series import read_series
from tricklab.server.store import Store
from tricks.callbacks import Callbacks, StopRequest
from tricks.data import load_dataset
from tricks.spec import JobSpec
from tricks.train import train
from worker.reporting import LeaseKeeper, Reporter

pytestmark = pytest.mark.service

LEASE_S = 30.0
MIN_INTERVAL_S = 0.25  # the reporter's default write interval
PAUSE_S = 0.5  # how long Redis stays stopped, at the least, while the loop trains on
WATCHDOG_S = 4.0  # ...and at the most (below the clients' 5 s socket timeout)
STEPS_PER_EPOCH = 22  # digits, 80% of 1,797 rows for training, batch 64
AFTER = 20  # log points a scenario lets pass before it acts again
GIVE_UP_S = 60.0  # a run whose scenario never ends is stopped (and its test fails)


@pytest.fixture(scope="module")
def rs(tmp_path_factory) -> Iterator[RedisServer]:
    srv = RedisServer(free_port(), tmp_path_factory.mktemp("reporter-redis"), aof=False)
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGCONT)  # never leave it stopped, whatever failed
    srv.stop()


@pytest.fixture(scope="module")
def data():
    # one torch thread, as a worker trains: two spin against each other on a small CPU
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    spec = JobSpec.model_validate(_spec())
    yield load_dataset(spec.data, spec.training.seed)
    torch.set_num_threads(threads)


def _spec() -> dict[str, Any]:
    spec = long_spec(batch_size=64, log_every=1, device="cpu")
    return {**spec, "training": {**spec["training"], "checkpoint_every": None}}


class Driven(Callbacks):
    """The reporter as the loop sees it, timed on the training thread, with the test's
    hook after each log point; once the hook says its scenario is done, the run stops."""

    def __init__(self, rep: Reporter, hook: Callable[[int], bool] = lambda step: False):
        self.rep, self.hook = rep, hook
        self.steps: list[int] = []  # every step the loop logged, in order
        self.busy: list[tuple[float, float]] = []  # (monotonic start, seconds) per callback
        self.done = False
        self.deadline = time.monotonic() + GIVE_UP_S

    def _timed(self, fn: Callable[..., None], *args: Any) -> None:
        t = time.monotonic()
        fn(*args)
        self.busy.append((t, time.monotonic() - t))

    def on_start(self, info: dict[str, Any]) -> None:
        self._timed(self.rep.on_start, info)

    def on_log(self, step: int, metrics: dict[str, float], progress: dict[str, Any]) -> None:
        self._timed(self.rep.on_log, step, metrics, progress)
        self.steps.append(step)
        self.done = self.done or self.hook(step)

    def on_epoch_end(self, epoch: int, step: int, metrics: dict, progress: dict) -> None:
        self._timed(self.rep.on_epoch_end, epoch, step, metrics, progress)

    def should_stop(self) -> StopRequest:
        mine = self.done or time.monotonic() > self.deadline
        return self.rep.should_stop() or ("cancel" if mine else None)

    def blocked_s(self, t0: float, t1: float) -> float:
        """Seconds the training thread spent in the reporter's callbacks in [t0, t1]."""
        return sum(d for t, d in self.busy if t0 <= t <= t1)


class Job:
    """One claimed job on the test's Redis, as the runner holds it."""

    def __init__(self, rs: RedisServer) -> None:
        self.r = connect(rs.url)
        self.raw = connect(rs.url, decode=False)
        self.store = Store(self.r, "tl")
        self.id = self.store.create_job(_spec())["id"]
        self.attempt, _ = self.store.claim(self.id, "test", lease_s=LEASE_S, max_attempts=3)
        assert self.attempt == 1

    def reporter(self) -> Reporter:
        return Reporter(self.store, self.raw, self.id, self.attempt, lease_s=LEASE_S)

    def run(self, rep: Reporter, cb: Callbacks, data) -> Any:
        """Train under the lease keeper and flush at the end, as worker.runner does."""
        with LeaseKeeper(rep, LEASE_S / 3):
            result = train(JobSpec.model_validate(_spec()), data, cb)
            rep.flush_pending()
        return result

    def series(self) -> dict[str, dict[str, list]]:
        return read_series(self.raw, self.store.series_prefix(self.id))["series"]

    def events(self, kind: str) -> list[dict]:
        return [
            json.loads(f["data"])
            for _, f in self.r.xrange(f"tl:job:{self.id}:ev")
            if f["type"] == kind
        ]


def assert_every_point_once_in_order(job: Job, cb: Driven, result: Any) -> None:
    """Each step the loop logged has its points exactly once, in step order, with the
    values of the loop's own history; each finished epoch its val_* point and one event."""
    s = job.series()
    steps = cb.steps
    assert steps == list(range(len(steps))), "log_every 1: the loop logs every step"
    for name in ("train_loss", "lr", "train_acc", "val_loss", "val_acc", "epoch_train_loss"):
        want = result.history[name]
        assert s[name]["step"] == want["step"], f"{name}: points missing, repeated or out of order"
        assert s[name]["value"] == want["value"], name  # float64 both: exact
    assert s["train_loss"]["step"] == steps
    assert s["sys_time"]["step"] == steps and s["sys_samples_per_s"]["step"] == steps
    epochs = [e["epoch"] for e in job.events("epoch")]
    assert epochs == list(range(len(result.history["val_acc"]["step"]))), epochs


def test_a_stopped_redis_does_not_stop_the_training_thread(rs, data):
    """Redis is SIGSTOPped at step 30 and resumed by the training thread itself once it
    has trained PAUSE_S and AFTER more log points: it can only get there if no callback
    waits on Redis (a watchdog resumes Redis after WATCHDOG_S otherwise, and the test
    fails). Then every point of the run is in Redis, once, in order."""
    job = Job(rs)
    rep = job.reporter()
    pause: dict[str, Any] = {}
    lock = threading.Lock()

    def resume(by: str) -> None:
        with lock:
            if "resumed_by" not in pause:
                rs.proc.send_signal(signal.SIGCONT)
                pause.update(resumed_by=by, t1=time.monotonic())

    def probe() -> None:  # a second client: Redis really does not answer while stopped
        with socket.create_connection(("127.0.0.1", rs.port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            try:
                pause["answered"] = sock.recv(16) == b"+PONG\r\n" and "resumed_by" not in pause
            except TimeoutError:
                pause["answered"] = False

    def hook(step: int) -> bool:
        if step == 30:
            rs.proc.send_signal(signal.SIGSTOP)
            pause.update(t0=time.monotonic(), step0=step)
            threading.Thread(target=probe, daemon=True).start()
            pause["watchdog"] = threading.Timer(WATCHDOG_S, resume, args=("watchdog",))
            pause["watchdog"].start()
        elif "t0" in pause and "resumed_by" not in pause:
            if time.monotonic() - pause["t0"] >= PAUSE_S and step - pause["step0"] >= AFTER:
                resume("the training thread")
                pause["step1"] = step
        return "step1" in pause and step >= pause["step1"] + AFTER

    try:
        result = job.run(rep, cb := Driven(rep, hook), data)
    finally:
        resume("the end of the test")
        if "watchdog" in pause:
            pause["watchdog"].cancel()
    assert pause.get("answered") is False, "Redis answered while stopped"
    assert pause["resumed_by"] == "the training thread", (
        f"the loop did not train {PAUSE_S} s while Redis was stopped: it waited on Redis "
        f"(longest callback {max(d for _, d in cb.busy):.3f} s)"
    )
    paused = pause["t1"] - pause["t0"]
    blocked = cb.blocked_s(pause["t0"], pause["t1"])
    assert blocked < paused / 2, f"{blocked:.3f} s of {paused:.3f} s inside the reporter"
    assert result.status == "cancelled"  # this test's own stop, after the scenario
    assert_every_point_once_in_order(job, cb, result)


def test_writes_redis_refuses_keep_their_points_for_the_next_write(rs, data):
    """Redis refuses every write (maxmemory below its use, noeviction) from step 30 until
    it has refused one of the reporter's transactions; the points of the refused writes
    go out with a later one: none is missing at the end."""
    job = Job(rs)
    rep = job.reporter()
    admin = redis.Redis(port=rs.port, decode_responses=True)
    state: dict[str, Any] = {}

    def refused() -> int:  # the writes Redis has answered with -OOM so far
        return admin.info("errorstats").get("errorstat_OOM", {}).get("count", 0)

    def hook(step: int) -> bool:
        if step == 30:
            state["before"] = refused()
            admin.config_set("maxmemory", 1)
        elif "before" in state and "back" not in state and step % 5 == 0:
            if refused() > state["before"]:  # a write of the reporter was refused
                admin.config_set("maxmemory", 0)
                state["back"] = step
        return "back" in state and step >= state["back"] + AFTER

    try:
        result = job.run(rep, cb := Driven(rep, hook), data)
    finally:
        admin.config_set("maxmemory", 0)
    assert "back" in state, "Redis never refused a write"
    assert result.status == "cancelled"
    assert_every_point_once_in_order(job, cb, result)


def test_no_script_round_trip_per_write_and_a_flushed_script_cache_breaks_nothing(rs, data):
    """A write is one MULTI/EXEC round trip: no SCRIPT EXISTS before it (Redis's own
    command counters say so). The heartbeat in it still runs after SCRIPT FLUSH (as after
    a Redis restart), so the job's progress keeps up with its series."""
    job = Job(rs)
    rep = job.reporter()
    admin = redis.Redis(port=rs.port, decode_responses=True)
    state: dict[str, Any] = {}

    def hook(step: int) -> bool:
        if step == 30:
            admin.script_flush()
            state["t"] = time.monotonic()
        # past two write intervals after the flush: some writes met the empty cache
        return "t" in state and time.monotonic() - state["t"] > 2 * MIN_INTERVAL_S

    admin.config_resetstat()
    result = job.run(rep, cb := Driven(rep, hook), data)
    stats = admin.info("commandstats")
    assert stats.get("cmdstat_exec", {}).get("calls", 0) >= 3, stats.keys()
    assert "cmdstat_script|exists" not in stats, stats["cmdstat_script|exists"]
    progress = json.loads(job.r.hget(f"tl:job:{job.id}", "progress"))
    assert progress["step"] == cb.steps[-1] + 1  # the last write's heartbeat applied
    assert_every_point_once_in_order(job, cb, result)


def test_a_cancel_reaches_the_loop_within_a_write_interval(rs, data):
    """A cancel requested at step 30 (as POST /jobs/{id}/cancel does) stops the run at a
    log point no later than one write interval + a round trip after it, with slack for
    a loaded machine; everything up to there is written."""
    job = Job(rs)
    rep = job.reporter()
    asked: dict[str, float] = {}

    def hook(step: int) -> bool:
        if step == 30:
            assert job.store.cancel(job.id) == "cancelling"
            asked["t"] = time.monotonic()
        return False

    result = job.run(rep, cb := Driven(rep, hook), data)
    took = time.monotonic() - asked["t"]
    assert result.status == "cancelled" and rep.cancelled
    assert took < MIN_INTERVAL_S + 1.0, f"the cancel took {took:.2f} s to stop the run"
    assert_every_point_once_in_order(job, cb, result)


def test_a_fenced_attempt_writes_nothing_more(rs, data):
    """Another attempt takes the job at step 30 (re-queued and claimed again). This
    attempt's loop trains on after the reporter has learned it (the test holds the stop
    back) for two epochs and two write intervals, and none of those points and events
    goes out, neither from the writer thread nor from the end of the run."""
    job = Job(rs)
    rep = job.reporter()
    seen: dict[str, Any] = {}
    more = 2 * STEPS_PER_EPOCH  # an epoch end among them

    class Watched(Driven):
        def on_log(self, step: int, metrics: dict, progress: dict) -> None:
            if rep.fenced and "step" not in seen:  # before the reporter gets this point
                seen.update(step=step, t=time.monotonic(), events=len(job.events("epoch")))
            super().on_log(step, metrics, progress)

        def should_stop(self) -> StopRequest:
            stop = super().should_stop()
            if "step" not in seen or self.steps[-1] < seen["step"] + more:
                return None
            return stop if time.monotonic() - seen["t"] > 2 * MIN_INTERVAL_S else None

    def hook(step: int) -> bool:
        if step == 30:
            assert job.store.requeue(job.id, job.attempt, "test").name == "REQUEUED"
            attempt, _ = job.store.claim(job.id, "other", lease_s=LEASE_S, max_attempts=3)
            assert attempt == 2
        return False

    result = job.run(rep, cb := Watched(rep, hook), data)
    assert rep.fenced and rep.stop == "preempt" and result.status == "preempted"
    assert cb.steps[-1] >= seen["step"] + more
    stored = job.series()["train_loss"]["step"]
    assert stored == list(range(len(stored))), "points missing or out of order"
    assert stored[-1] < seen["step"], f"written after the fencing: {stored[-3:]}, {seen}"
    assert len(job.events("epoch")) == seen["events"]
