"""The worker's system figures (worker/system_series.py) as series on a job's curves:
samples/s and the clock at every log point, next to train_loss, the process's RSS at most
every write interval (0.25 s); GPU memory only on CUDA. Checked against readings taken
outside the worker: the job's own duration, the worker process's VmRSS read from /proc by
the test, and the clock series for the RSS cadence."""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path

import pytest
from support import small_spec, submit, wait_done

pytestmark = pytest.mark.service

SYS = "sys_samples_per_s,sys_rss_mib,sys_gpu_mem_mib,sys_gpu_max_mem_mib,sys_time"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _vm_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


MEMORY_EVERY_S = 0.25  # the reporter's min_interval_s
CLOCK_SLACK_S = 0.01  # sys_time and the sampler's monotonic clock are read µs apart


def test_a_job_writes_samples_per_second_at_every_log_point_and_rss_every_interval(service):
    # 22 steps of 64 per epoch, log_every 5: long enough for the RSS cadence to show
    spec = small_spec(epochs=20, device="cpu")
    with service.client() as c:
        job = submit(c, spec)
        done = wait_done(c, job["id"])
        assert done["status"] == "succeeded", done["error"]
        pid = int(service.redis.client().hget(f"tl:job:{job['id']}", "worker_pid"))
        s = c.get(f"/jobs/{job['id']}/curves", params={"metrics": f"train_loss,{SYS}"}).json()[
            "series"
        ]

    # one point per log point, at the same steps as train_loss (same transaction)
    steps = s["train_loss"]["step"]
    assert steps and s["sys_samples_per_s"]["step"] == steps
    assert not s["sys_gpu_mem_mib"]["step"] and not s["sys_gpu_max_mem_mib"]["step"]  # CPU job

    # RSS: read at the first log point, then at the first log point MEMORY_EVERY_S or more
    # after the last reading, by the clock of the log points (sys_time)
    clock = dict(zip(s["sys_time"]["step"], s["sys_time"]["value"], strict=True))
    rss_steps = s["sys_rss_mib"]["step"]
    assert rss_steps[0] == steps[0] and set(rss_steps) <= set(steps), rss_steps
    last = clock[steps[0]]
    for t in steps[1:]:
        gap = clock[t] - last
        if t in rss_steps:
            assert gap >= MEMORY_EVERY_S - CLOCK_SLACK_S, (t, gap)
            last = clock[t]
        else:
            assert gap < MEMORY_EVERY_S + CLOCK_SLACK_S, (t, gap)

    # the clock of the wall-time axis: unix times between the claim and the finish, in order
    assert s["sys_time"]["step"] == steps
    times = s["sys_time"]["value"]
    started = datetime.fromisoformat(done["started_at"]).timestamp()
    finished = datetime.fromisoformat(done["finished_at"]).timestamp()
    assert started <= times[0] and times == sorted(times) and times[-1] <= finished, times

    rates = s["sys_samples_per_s"]["value"]
    assert all(v is not None and math.isfinite(v) and v > 0 for v in rates), rates
    # the last value is the attempt's mean rate over its training time, which is shorter
    # than started_at → finished_at: at least every sample trained / the whole duration
    samples = done["progress"]["total_steps"] * spec["training"]["batch_size"]
    assert rates[-1] >= samples / done["duration_s"], (rates[-1], samples, done["duration_s"])
    assert rates[-1] < 1e8

    rss = s["sys_rss_mib"]["value"]
    assert all(50 <= v <= 10_000 for v in rss), rss
    now = _vm_rss_mib(pid)  # the same pool process, idle now, its model freed
    if now is not None:
        assert now / 2 <= rss[-1] <= now * 2, (rss[-1], now)


def test_rss_is_what_proc_status_says_and_cpu_jobs_read_no_gpu():
    from worker.system_series import SystemSampler

    got = SystemSampler("cpu").sample({"samples_per_second": 12.5})
    want = _vm_rss_mib(os.getpid())
    assert set(got) == {"sys_samples_per_s", "sys_rss_mib", "sys_time"}
    assert got["sys_samples_per_s"] == 12.5
    assert want is not None and abs(got["sys_rss_mib"] - want) <= 16  # MiB: the same counter


@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
def test_gpu_memory_counts_a_tensor_on_cuda():
    import torch

    from worker.system_series import SystemSampler

    s = SystemSampler("cuda:0")
    before = s.sample(None)["sys_gpu_mem_mib"]
    x = torch.empty(64 * 1024 * 1024, dtype=torch.uint8, device="cuda:0")  # 64 MiB
    after = s.sample(None)
    assert after["sys_gpu_mem_mib"] - before == pytest.approx(64, abs=2)
    assert after["sys_gpu_max_mem_mib"] >= after["sys_gpu_mem_mib"]
    del x
