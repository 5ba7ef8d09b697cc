"""`tricklab keys` writes to the Redis of the `tricklab up` running in the checkout
(var/up.json) unless REDIS_URL names another: a key made while `make up` runs its
embedded Redis reaches the running API."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import ROOT

from tricklab.client.up import StackLock
from tricklab.server.apikeys import KeyRing, stack_target
from tricklab.settings import Settings


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRICKLAB_") and k not in ("REDIS_URL", "ARTIFACT_DIR")
    }
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _create(cwd, env, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *cmd, "create", "bob", "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def running_stack(tmp_path, redis_server):
    """var/up.json as a live `tricklab up` leaves it: this process holds the lock."""
    lock = StackLock(tmp_path)
    lock.acquire()
    lock.write(
        pid=os.getpid(),
        api_url="http://127.0.0.1:9",
        redis_url=redis_server.url,
        key_prefix="tlstack",
        artifact_dir=str(tmp_path / "art"),
    )
    yield tmp_path
    lock.release()


@pytest.mark.parametrize("cmd", [("tricklab.server.apikeys",), ("tricklab.client.cli", "keys")])
def test_keys_create_finds_the_running_stack(running_stack, redis_server, cmd):
    r = _create(running_stack, _env(), *cmd)
    assert r.returncode == 0, r.stderr
    assert redis_server.url in r.stderr and "up.json" in r.stderr  # says where it wrote
    key = json.loads(r.stdout)["key"]
    assert KeyRing(redis_server.client(), "tlstack").verify(key) is not None


def test_redis_url_in_the_environment_wins_over_the_stack(running_stack, redis_server):
    other = redis_server.url.rsplit("/", 1)[0] + "/3"
    r = _create(running_stack, _env(REDIS_URL=other), "tricklab.server.apikeys")
    assert r.returncode == 0, r.stderr
    assert "up.json" not in r.stderr
    key = json.loads(r.stdout)["key"]
    import redis

    assert KeyRing(redis.Redis.from_url(other, decode_responses=True), "tl").verify(key)
    assert KeyRing(redis_server.client(), "tlstack").verify(key) is None


def test_a_stack_file_whose_up_is_gone_is_not_used(tmp_path, redis_server, monkeypatch):
    (tmp_path / "var").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "var" / "up.json").write_text(
        json.dumps({"pid": dead.pid, "redis_url": redis_server.url, "key_prefix": "tlstale"})
    )
    monkeypatch.chdir(tmp_path)
    for name in ("REDIS_URL", "TRICKLAB_REDIS_URL", "TRICKLAB_KEY_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    # nothing names a Redis and the stack is gone: the settings' default, not the dead stack's
    assert stack_target(settings) == (settings.redis_url, "tl")
    assert settings.redis_url != redis_server.url
