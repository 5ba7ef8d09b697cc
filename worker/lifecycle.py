"""Worker process lifecycle, wired through Celery signals.

Parent (MainProcess):
- worker_init: import torch, the training code, torch._dynamo (torch.optim's first
  optimizer imports it) and scikit-learn, and build the digits arrays, once, before
  the pool forks, so a job does not pay for them (`_preimport`; tricks.data keeps the
  built-in arrays once per process). Never touch torch.cuda here: CUDA initialised
  before fork is unusable in the children. The child selects the device.
- worker_ready: a daemon thread writes this worker's heartbeat (for /readyz) every
  worker_ttl_s/3, re-queues running jobs whose lease expired (a worker died) and
  re-publishes queued jobs whose broker message was lost (worker.reconcile).
- worker_shutting_down (SIGTERM/SIGINT: warm shutdown): forward SIGTERM to the pool
  children, so the running job checkpoints and is re-queued instead of finishing late.
- worker_shutdown: stop the thread and remove the heartbeat.

Child (pool process):
- SIGTERM while a job runs sets a flag that the job's should_stop() turns into
  "preempt" (checkpoint, re-queue); when idle, billiard's own handler exits the child.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from celery import signals

from tricklab.contract import TRAIN_TASK
from tricklab.server.outcomes import Requeued
from tricklab.settings import get_settings

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- child side
# billiard installs its own SIGTERM handler after worker_process_init, so ours is
# swapped in only while a job runs (tasks run in the child's main thread).
_preempt_at: float | None = None
_previous: Any = None
_GRACE_S = 60.0  # a SIGTERM this long after the first one kills a stuck job


def preempt_requested() -> bool:
    return _preempt_at is not None


def task_started() -> None:
    global _preempt_at, _previous
    _preempt_at = None
    try:
        _previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. a threads pool): no preemption by signal
        _previous = None


def task_finished() -> None:
    global _previous
    if _previous is not None:
        signal.signal(signal.SIGTERM, _previous)
        _previous = None


def _on_sigterm(signum: int, frame: Any) -> None:
    global _preempt_at
    now = time.monotonic()
    if _preempt_at is None:
        _preempt_at = now
        log.warning("SIGTERM: the running job will checkpoint and be re-queued")
    elif now - _preempt_at > _GRACE_S:
        handler = _previous if callable(_previous) else None
        task_finished()
        if handler is not None:
            handler(signum, frame)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)


# --------------------------------------------------------------- parent side
def visible_gpus() -> int:
    """GPUs this worker may use, without initialising CUDA (launcher pins CUDA_VISIBLE_DEVICES)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return len([d for d in env.split(",") if d.strip() and d.strip() != "-1"])
    from worker.launch import detect_gpus

    return len(detect_gpus())


@signals.worker_init.connect
def _preimport(**_: Any) -> None:
    """What every job would otherwise pay before its first step, once, in the parent: the
    children fork with it loaded (worker_process_init would run it in each child, against
    Celery's 4 s limit on a child's start)."""
    t0 = time.monotonic()
    import torch  # import only; torch.cuda stays untouched before fork

    try:
        import tricks.data
        import tricks.models  # noqa: F401
        import tricks.train  # noqa: F401
    except ImportError as e:  # the training loop may be absent in a partial checkout
        log.warning("could not pre-import the training code: %s", e)
        return
    # torch.optim's first optimizer imports torch._dynamo (≈2 s): make one on a CPU tensor.
    # No forward/backward here: autograd would start its device threads before the fork.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    try:  # scikit-learn and the digits file (the default dataset): ≈1.5 s
        tricks.data.builtin_arrays("digits")  # cached per process: the children fork with it
    except Exception as e:  # noqa: BLE001 - a job names its dataset; this is only a warm-up
        log.warning("could not pre-load the built-in datasets: %s", e)
    log.info("pre-imported torch and the training code in %.1fs", time.monotonic() - t0)


class _Heartbeat(threading.Thread):
    def __init__(self, name: str, queues: list[str], app: Any) -> None:
        super().__init__(name="tricklab-heartbeat", daemon=True)
        self.worker_name = name
        self.queues = queues
        self.app = app
        self.done = threading.Event()
        s = get_settings()
        self.interval = max(0.5, s.worker_ttl_s / 3)
        self.info = {"queues": queues, "gpus": visible_gpus(), "pid": os.getpid()}

    def store(self) -> Any:
        from tricklab.server.connection import connect
        from tricklab.server.store import Store

        s = get_settings()
        return Store(connect(s.redis_url), s.key_prefix, s.events_maxlen)

    def run(self) -> None:
        from worker.reconcile import reconcile

        s = get_settings()
        store = self.store()
        # After a Redis outage, running jobs' leases may have lapsed while their holders
        # could not renew them: give the holders one lease to renew before reaping.
        reap_after = 0.0
        while True:
            try:
                store.workers.beat(self.worker_name, self.info)
                if time.monotonic() >= reap_after:
                    self.reap(store)
                reconcile(
                    store,
                    self.app,
                    after_s=s.reconcile_after_s,
                    lock_s=self.interval * 0.9,
                    owner=self.worker_name,
                )
            except Exception as e:  # Redis down: keep trying, /readyz reports it meanwhile
                log.warning("worker heartbeat failed: %s", e)
                reap_after = time.monotonic() + s.lease_ttl_s
            if self.done.wait(self.interval):
                break
        try:
            store.workers.gone(self.worker_name)
        except Exception:
            pass

    def reap(self, store: Any) -> None:
        """Re-queue running jobs whose lease expired (their worker died). Atomic per job."""
        now = time.time()
        ids = store.running_jobs()
        for job in store.get_jobs(ids) if ids else []:
            if job.get("lease_until") and job["lease_until"] < now:
                if store.requeue(job["id"], None, "lease expired") == Requeued.REQUEUED:
                    log.warning("job %s: lease expired; re-queued", job["id"])
                    self.app.send_task(
                        TRAIN_TASK, args=[job["id"]], queue=job.get("queue") or "cpu"
                    )


_heartbeat: _Heartbeat | None = None


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    global _heartbeat
    hostname = getattr(sender, "hostname", None) or f"worker@{os.uname().nodename}"
    try:
        queues = sorted(sender.app.amqp.queues.consume_from.keys())
    except Exception:
        queues = []
    _heartbeat = _Heartbeat(hostname, queues, sender.app)
    _heartbeat.start()


@signals.worker_shutting_down.connect
def _forward_sigterm(**_: Any) -> None:
    try:
        from billiard.process import active_children

        children = active_children()
    except Exception:
        children = []
    for child in children:
        try:
            if child.pid:
                os.kill(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.done.set()
        _heartbeat.join(5)
