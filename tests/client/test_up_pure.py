"""`tricklab up`'s parts without a stack: backoff, exit descriptions, the auth banner's rule
(against api/auth.py's own), the per-checkout lock and stack file, and the supervisor on
real short-lived processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from api.auth import auth_required as api_auth_required
from tricklab.client import up
from tricklab.procs import find_stack, read_stack
from tricklab.settings import Settings


def test_backoff_doubles_from_the_base_and_stops_at_the_cap():
    assert [up.backoff_delay(n, 1.0, 30.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert up.backoff_delay(1, 0.5, 2.0) == 0.5
    assert up.backoff_delay(40, 0.5, 2.0) == 2.0


def test_exit_described_with_code_or_signal_name():
    assert up.describe_exit(-9) == "was killed by SIGKILL (signal 9)"
    assert up.describe_exit(-15) == "was killed by SIGTERM (signal 15)"
    assert up.describe_exit(247) == "exited with code 247"


@pytest.mark.parametrize("auth", ["auto", "required", "off"])
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "::1", "0.0.0.0", "10.1.2.3", "example"]
)
def test_auth_rule_is_the_apis(auth, host):
    settings = Settings(auth=auth, host=host)
    assert up.auth_required(auth, host) == api_auth_required(settings)


def test_banner_never_says_no_authentication_when_keys_are_required():
    for auth, host in [("required", "127.0.0.1"), ("auto", "0.0.0.0"), ("required", "0.0.0.0")]:
        text = "\n".join(up.auth_banner(auth, host))
        assert "NO AUTHENTICATION" not in text
        assert "API keys required" in text and "tricklab keys create" in text
    assert "required (TRICKLAB_AUTH=required)" in "\n".join(up.auth_banner("required", "::1"))
    for auth, host in [("auto", "127.0.0.1"), ("off", "127.0.0.1"), ("off", "0.0.0.0")]:
        assert "NO AUTHENTICATION" in "\n".join(up.auth_banner(auth, host))
    assert "not loopback" in "\n".join(up.auth_banner("off", "0.0.0.0"))


# ------------------------------------------------------------------ lock and stack file


def test_second_lock_in_the_same_checkout_is_refused_naming_the_owner(tmp_path):
    first = up.StackLock(tmp_path)
    assert first.acquire() is None
    first.write(pid=os.getpid(), api_url="http://127.0.0.1:1234", redis_url="redis://x:1/0")
    # another process (flock is per open file: a second open in this process conflicts too)
    code = (
        "import sys; from pathlib import Path; from tricklab.client.up import StackLock, StackBusy\n"
        "try:\n    StackLock(Path(sys.argv[1])).acquire()\nexcept StackBusy as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 3, r.stderr
    assert f"pid {os.getpid()}" in r.stdout and "http://127.0.0.1:1234" in r.stdout
    assert "redis://x:1/0" in r.stdout and "Nothing was started or stopped" in r.stdout
    assert read_stack(tmp_path)["api_url"] == "http://127.0.0.1:1234"
    assert find_stack(tmp_path / "sub" / "dir")["pid"] == os.getpid()  # from a subdirectory
    first.release()
    assert not (tmp_path / "var" / "up.json").exists()
    assert read_stack(tmp_path) is None


def test_a_stale_stack_file_is_ignored_by_readers_and_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "var").mkdir()
    stale = {"pid": dead.pid, "api_url": "http://127.0.0.1:9", "redis_url": "redis://x:9/0"}
    (tmp_path / "var" / "up.json").write_text(json.dumps(stale))
    assert read_stack(tmp_path) is None and find_stack(tmp_path) is None
    # a live pid without the lock held is stale too (the pid may have been reused)
    (tmp_path / "var" / "up.json").write_text(json.dumps({**stale, "pid": os.getpid()}))
    assert read_stack(tmp_path) is None
    lock = up.StackLock(tmp_path)
    assert lock.acquire()["pid"] == os.getpid()  # what was there, for the takeover message
    lock.release()


# ------------------------------------------------------------------------- supervisor


def _svc(name: str, code: str) -> up.Supervised:
    return up.Supervised(name, [sys.executable, "-c", code], dict(os.environ), 5)


def test_supervisor_restarts_a_crashing_process_with_backoff_and_leaves_the_other_alone(capfd):
    crash = _svc("worker", "import sys; sys.exit(3)")
    steady = _svc("api", "import time; time.sleep(60)")
    sup = up.Supervisor([crash, steady], base_s=0.1, cap_s=0.4, stable_s=100)
    starts: list[float] = []
    crash.start()
    steady.start()
    steady_pid = steady.proc.pid
    seen = crash.proc.pid
    starts.append(time.monotonic())
    deadline = time.monotonic() + 60
    while len(starts) < 6 and time.monotonic() < deadline:
        sup.tick(time.monotonic())
        if crash.proc is not None and crash.proc.pid != seen:
            seen = crash.proc.pid
            starts.append(time.monotonic())
        time.sleep(0.01)
    try:
        assert len(starts) == 6, "the crashing process was not restarted 5 times"
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        # each gap is the process's run (a Python start-up) plus the backoff 0.1, 0.2, 0.4, 0.4, 0.4
        for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.4, 0.4], strict=True):
            assert gap >= delay
        assert crash.failures >= 5 and crash.restarts == 5
        assert steady.proc.pid == steady_pid and steady.proc.poll() is None
        err = capfd.readouterr().err
        assert "worker (pid" in err and "exited with code 3" in err
        assert "restarting it in 0.4 s" in err and "the rest keeps running" in err
    finally:
        sup.stop_all({"n": 0})
    assert steady.proc.poll() is not None


def test_a_process_that_stayed_up_restarts_after_the_first_delay_again():
    s = _svc("worker", "import time; time.sleep(0.3)")
    sup = up.Supervisor([s], base_s=0.05, cap_s=10, stable_s=0.2)
    s.start()
    s.failures = 6  # a long run of quick exits before this one
    deadline = time.monotonic() + 30
    while s.restarts < 2 and time.monotonic() < deadline:
        sup.tick(time.monotonic())
        time.sleep(0.01)
    try:
        assert s.restarts == 2 and s.failures == 1
    finally:
        sup.stop_all({"n": 0})
