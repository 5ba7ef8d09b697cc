"""The real `tricklab up` (`python -m tricklab.client.up`) in a temp checkout: its embedded
Redis, a worker and the API on free ports. kill -9 of the Celery main process and of the
API: both come back, the API never goes down with the worker, the job resumes on the new
worker; a second `up` in the same checkout refuses and stops nothing; `tricklab keys` and
the CLI find the stack through var/up.json; SIGTERM stops everything it started.

The tests share one stack and run in file order; the last one stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from support import ROOT, free_port, reliability_spec, submit, wait_done, wait_epoch, wait_for

from tricklab.procs import children_of, pid_alive
from tricklab.server.apikeys import KeyRing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.service,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)"),
]


@dataclass
class Up:
    root: Path
    proc: subprocess.Popen
    log: Path
    env: dict[str, str]
    url: str

    def stack(self) -> dict:
        return json.loads((self.root / "var" / "up.json").read_text())

    def tail(self, n: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def up_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRICKLAB_", "CUDA")) and k not in ("REDIS_URL", "ARTIFACT_DIR")
    }
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        TRICKLAB_WORKER_TTL_S="3",
        TRICKLAB_LEASE_TTL_S="3",
        TRICKLAB_RECONCILE_AFTER_S="2",
        TRICKLAB_UP_RESTART_BACKOFF_S="0.5",
        TRICKLAB_UP_RESTART_BACKOFF_MAX_S="2",
    )
    return env


def ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=3).status_code == 200


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("checkout")
    port, redis_port = free_port(), free_port()
    log = root / "up.log"
    env = up_env()
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tricklab.client.up", "--port", str(port)]
            + ["--redis-port", str(redis_port)],
            cwd=root,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    u = Up(root, proc, log, env, f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: ready(u.url), 180, 0.2, what="tricklab up's /readyz")
        wait_for(lambda: "Ctrl-C stops everything" in u.text(), 30, what="the banner")
    except TimeoutError:
        print(u.tail())
        proc.kill()
        raise
    yield u
    if proc.poll() is None:  # a test failed before the last one stopped it
        leftover = u.stack()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()  # its API and worker get SIGTERM (PDEATHSIG); Redis is ours to stop
            if leftover.get("redis_pid"):
                os.kill(leftover["redis_pid"], signal.SIGTERM)


def test_up_waits_on_readiness_and_prints_the_truth(stack):
    out = stack.text()
    s = stack.stack()
    assert s["pid"] == stack.proc.pid and s["api_url"] == stack.url
    assert f"export REDIS_URL={s['redis_url']}" in out
    assert f"export TRICKLAB_URL={stack.url}" in out
    assert "NO AUTHENTICATION" in out and "loopback" in out  # auto on loopback: open
    # the banner comes after readiness: /readyz said 200 before it was printed
    assert "/readyz 200" in out.split("Ctrl-C stops everything")[0]


def test_kill9_of_the_celery_main_process_restarts_the_worker_and_the_job_resumes(stack):
    s = stack.stack()
    api_pid, launcher = s["processes"]["api"], s["processes"]["worker"]
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        job = submit(c, reliability_spec(epochs=10))
        wait_epoch(c, job["id"], 1, timeout=180)  # past a checkpoint
        (celery_main,) = children_of(launcher)
        pool = children_of(celery_main)
        os.kill(celery_main, signal.SIGKILL)

        def new_worker() -> bool:
            w = stack.stack()["processes"]["worker"]
            return w not in (None, launcher) and pid_alive(w)

        wait_for(new_worker, 60, 0.1, what="a new worker launcher")
        assert c.get("/healthz").status_code == 200  # the API never went down
        assert stack.stack()["processes"]["api"] == api_pid and pid_alive(api_pid)
        wait_for(lambda: children_of(stack.stack()["processes"]["worker"]), 60, what="celery")
        wait_for(lambda: ready(stack.url), 120, 0.2, what="readyz with the new worker")
        # what the dead worker left behind (its pool child) is stopped, not left running
        wait_for(lambda: not any(pid_alive(p) for p in pool), 90, 0.2, what="the orphan to stop")
        done = wait_done(c, job["id"], timeout=300)
    assert done["status"] == "succeeded", done.get("error")
    assert done["attempts"] >= 2  # it ran again on the new worker, from its checkpoint
    out = stack.text()
    assert f"worker (pid {launcher})" in out and "restarting it in" in out
    assert "the rest keeps running" in out and "stopping (API" not in out
    assert stack.proc.poll() is None


def test_kill9_of_the_worker_launcher_stops_the_celery_it_orphaned(stack):
    """Without this the orphaned Celery worker would keep consuming beside the new one,
    and outlive `tricklab up` (and its Redis)."""
    launcher = stack.stack()["processes"]["worker"]
    (celery_main,) = children_of(launcher)
    orphans = [celery_main, *children_of(celery_main)]
    os.kill(launcher, signal.SIGKILL)
    wait_for(
        lambda: stack.stack()["processes"]["worker"] not in (None, launcher), 60, what="restart"
    )
    wait_for(lambda: not any(pid_alive(p) for p in orphans), 90, 0.2, what="orphans to stop")
    assert f"stopping pid {celery_main} that a dead process left behind" in stack.text()
    wait_for(lambda: children_of(stack.stack()["processes"]["worker"]), 60, what="celery")
    wait_for(lambda: ready(stack.url), 120, 0.2, what="readyz with the new worker")


def test_kill9_of_the_api_restarts_only_the_api(stack):
    s = stack.stack()
    api_pid, worker = s["processes"]["api"], s["processes"]["worker"]
    os.kill(api_pid, signal.SIGKILL)
    wait_for(lambda: stack.stack()["processes"]["api"] not in (None, api_pid), 60, what="a new API")
    wait_for(lambda: ready(stack.url), 120, 0.2, what="readyz from the new API")
    assert stack.stack()["processes"]["worker"] == worker and pid_alive(worker)
    assert f"api (pid {api_pid}) was killed by SIGKILL (signal 9)" in stack.text()


def test_a_second_up_in_the_same_checkout_refuses_and_stops_nothing(stack):
    before = stack.stack()
    r = subprocess.run(
        [sys.executable, "-m", "tricklab.client.up", "--port", str(free_port())]
        + ["--redis-port", str(free_port())],
        cwd=stack.root,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"pid {stack.proc.pid}" in r.stderr and stack.url in r.stderr
    assert before["redis_url"] in r.stderr
    assert stack.stack() == before and pid_alive(before["redis_pid"])
    assert ready(stack.url)


def test_keys_and_the_cli_find_the_stack_without_redis_url(stack):
    s = stack.stack()
    r = subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", "keys", "create", "alice", "--json"],
        cwd=stack.root / "var",  # from a subdirectory of the checkout too
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert s["redis_url"] in r.stderr  # says which stack it wrote to
    key = json.loads(r.stdout)["key"]
    ring = KeyRing(redis.Redis.from_url(s["redis_url"], decode_responses=True), "tl")
    assert ring.verify(key) is not None  # in the Redis the running API reads
    ls = subprocess.run(
        [sys.executable, "-m", "tricklab.client.cli", "ls"],
        cwd=stack.root,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ls.returncode == 0, ls.stderr
    assert "reliability" in ls.stdout  # the job of the test above, from this stack's API


def test_sigterm_stops_everything_it_started(stack):
    s = stack.stack()
    launcher = s["processes"]["worker"]
    pids = [s["processes"]["api"], launcher, s["redis_pid"], *children_of(launcher)]
    pids += [p for c in children_of(launcher) for p in children_of(c)]
    assert all(pid_alive(p) for p in pids)
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(120) == 0
    assert not [p for p in pids if pid_alive(p)]
    assert not (stack.root / "var" / "up.json").exists()
    assert "tricklab up: stopped" in stack.text()
