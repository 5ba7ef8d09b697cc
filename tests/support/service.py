"""The stack the `service` fixture yields (Redis + the API + Celery workers, all real
processes reached over HTTP), and `Cleanup`, which stops what a test left running."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.jobs import stop_job
from support.processes import Proc, RedisServer, start_worker
from support.waiting import TERMINAL, wait_for


@dataclass
class Service:
    redis: RedisServer
    artifact_dir: Path
    api_url: str
    env: dict[str, str]
    logs: Path
    api: Proc
    workers: list[Proc] = field(default_factory=list)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30, **kw)

    def add_worker(self, name: str, queues: str = "cpu") -> Proc:
        w = start_worker(self.env, self.logs / f"{name}.log", name, queues)
        self.workers.append(w)
        return w


@dataclass
class Cleanup:
    """Jobs and sweeps a test registered, cancelled after it whatever happened in it.

    The session has one worker: a job meant to run until cancelled that a failing test
    left behind would keep it busy for every later test. `close` cancels each one that
    has not finished and waits until it has.
    """

    api_url: str
    jobs: list[str] = field(default_factory=list)
    sweeps: list[str] = field(default_factory=list)

    def job(self, job: dict) -> dict:
        self.jobs.append(job["id"])
        return job

    def sweep(self, sweep: dict) -> dict:
        self.sweeps.append(sweep["id"])
        return sweep

    def close(self, timeout: float = 60) -> None:
        with httpx.Client(base_url=self.api_url, timeout=30) as c:
            for sweep_id in self.sweeps:
                sweep = c.get(f"/sweeps/{sweep_id}").json()
                if sweep["status"] not in TERMINAL:
                    c.post(f"/sweeps/{sweep_id}/cancel")
                children = [j["job_id"] for v in sweep["variants"] for j in v["jobs"]]
                self.jobs += [j for j in children if c.get(f"/jobs/{j}").status_code == 200]
                wait_for(
                    lambda s=sweep_id: c.get(f"/sweeps/{s}").json()["status"] in TERMINAL,
                    timeout,
                    0.1,
                    what=f"sweep {sweep_id} to stop",
                )
            for job_id in self.jobs:
                stop_job(c, job_id, timeout)
