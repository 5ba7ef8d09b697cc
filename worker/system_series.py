"""System figures a worker writes with each log point, as series (`sys_*`) on the job's
curves (GET /jobs/{id}/curves?metrics=sys_samples_per_s,...): how fast it trains and how
much memory it holds, step by step.

- `sys_samples_per_s`: the attempt's mean training throughput so far (the progress the
  loop reports, `samples_per_second`: updates since the attempt started × batch size /
  seconds);
- `sys_rss_mib`: the process's resident memory now (the resident pages of
  /proc/self/statm, what VmRSS counts; where there is no /proc, the peak from getrusage);
- `sys_time`: the unix time of the log point (what the charts' wall-time x axis reads);
- `sys_gpu_mem_mib`, `sys_gpu_max_mem_mib`: CUDA only, torch.cuda.memory_allocated and
  max_memory_allocated of the job's device (what tensors hold, not the caching
  allocator's reserve).

`sys_time` and `sys_samples_per_s` are points of every log point (a clock read; a
figure of the progress the loop passes). The memory figures are read at the first log
point and then at the first log point `memory_every_s` (the reporter's write interval,
0.25 s) or more after the last reading, each one the reading at its own step: a procfs
read takes ~3 µs in a quiet process but 35-50 µs on the training thread right after its
tensor work (cold caches; measured on a shared 2-core VM), which at log_every 1 was a
few percent of a small model's step time, for figures that change no faster than that.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

MIB = 1024 * 1024
STATM = "/proc/self/statm"  # "size resident shared ..." in pages, one short line
_statm: tuple[int, int] | None = None  # (pid, fd): /proc/self is resolved at open, so per pid


def _statm_fd() -> int:
    global _statm
    pid = os.getpid()
    if _statm is None or _statm[0] != pid:  # a forked pool child opens its own
        _statm = (pid, os.open(STATM, os.O_RDONLY))
    return _statm[1]


def rss_mib() -> float:
    """Resident set size of this process in MiB (the peak where /proc is missing).

    One pread of /proc/self/statm on a held descriptor: ~5 µs, where reading
    /proc/self/status whole takes ~75 µs (timeit, on a shared 2-core VM).
    """
    try:
        resident = int(os.pread(_statm_fd(), 256, 0).split()[1])
        return resident * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MIB if sys.platform == "darwin" else 1024)  # bytes on macOS, else KiB


class SystemSampler:
    """Readings for one attempt; `device` is the on_start info's (e.g. "cuda:0", "cpu");
    memory figures at most every `memory_every_s` (0: at every sample)."""

    def __init__(self, device: str | None = None, *, memory_every_s: float = 0.0) -> None:
        self.cuda = bool(device) and str(device).startswith("cuda")
        self.device = device
        self.memory_every_s = memory_every_s
        self._memory_at: float | None = None  # monotonic time of the last memory reading

    def sample(self, progress: dict[str, Any] | None) -> dict[str, float]:
        out: dict[str, float] = {}
        rate = (progress or {}).get("samples_per_second")
        if isinstance(rate, int | float) and not isinstance(rate, bool):
            out["sys_samples_per_s"] = float(rate)
        out["sys_time"] = time.time()
        now = time.monotonic()
        if self._memory_at is None or now - self._memory_at >= self.memory_every_s:
            self._memory_at = now
            out["sys_rss_mib"] = rss_mib()
            if self.cuda:
                out.update(self._gpu())
        return out

    def _gpu(self) -> dict[str, float]:
        try:
            import torch

            if not torch.cuda.is_available():
                return {}
            return {
                "sys_gpu_mem_mib": torch.cuda.memory_allocated(self.device) / MIB,
                "sys_gpu_max_mem_mib": torch.cuda.max_memory_allocated(self.device) / MIB,
            }
        except Exception:  # noqa: BLE001 - a reading must never fail the training run
            return {}
