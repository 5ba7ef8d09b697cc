"""API keys: `tl_<id>_<secret>`, shown once, stored only as sha256(secret).

A key's record is a hash {id, name, tenant, hash, created_at, revoked_at, limits (JSON)};
a set holds every key id (names in tricklab.server.keyspace).

Lookup is by the id in the key; the secret is then compared with hmac.compare_digest
on its sha256, so the time taken says nothing about how much of a guess was right.
The secret is 192 random bits, so a plain (unsalted) sha256 is enough: there is no
dictionary to attack. `tricklab keys create NAME [--tenant T]` makes one.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from tricklab.server.keyspace import Keyspace

PREFIX = "tl"
KEY_RE = re.compile(r"^tl_([0-9a-f]{12})_([0-9a-f]{48})$")
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Settings fields that a key may override (api/quotas.py reads them).
LIMIT_FIELDS = (
    "max_active_jobs",
    "max_upload_bytes",
    "max_dataset_bytes_total",
    "max_train_samples",
    "max_total_steps",
    "max_parameters",
    "rate_limit_per_s",
    "rate_limit_burst",
)


@dataclass
class ApiKey:
    id: str
    name: str
    tenant: str
    created_at: float
    revoked_at: float | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "created_at": self.created_at,
            "revoked": self.revoked_at is not None,
            "limits": self.limits,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRing:
    def __init__(self, r: redis.Redis, prefix: str = "tl") -> None:
        self.r = r
        self.keys = Keyspace(prefix)

    def key(self, key_id: str) -> str:
        return self.keys.api_key(key_id)

    @property
    def index(self) -> str:
        return self.keys.api_keys

    def create(
        self, name: str, tenant: str | None = None, limits: dict[str, Any] | None = None
    ) -> tuple[str, ApiKey]:
        """A new key: (the full key to show once, its record). Only the hash is stored."""
        tenant = tenant or name
        if not TENANT_RE.match(tenant):
            raise ValueError(
                f"tenant '{tenant}' must be 1-64 letters, digits, '.', '_' or '-' "
                "(starting with a letter or digit)"
            )
        unknown = set(limits or {}) - set(LIMIT_FIELDS)
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}; known: {', '.join(LIMIT_FIELDS)}")
        key_id, secret = secrets.token_hex(6), secrets.token_hex(24)
        rec = ApiKey(key_id, name, tenant, time.time(), None, dict(limits or {}))
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.key(key_id),
                mapping={
                    "id": key_id,
                    "name": name,
                    "tenant": tenant,
                    "hash": _digest(secret),
                    "created_at": f"{rec.created_at:.6f}",
                    "revoked_at": "",
                    "limits": json.dumps(rec.limits),
                },
            )
            pipe.sadd(self.index, key_id)
            pipe.execute()
        return f"{PREFIX}_{key_id}_{secret}", rec

    @staticmethod
    def _decode(h: dict[str, str]) -> ApiKey:
        return ApiKey(
            id=h["id"],
            name=h.get("name", ""),
            tenant=h["tenant"],
            created_at=float(h.get("created_at") or 0),
            revoked_at=float(h["revoked_at"]) if h.get("revoked_at") else None,
            limits=json.loads(h.get("limits") or "{}"),
        )

    def verify(self, presented: str) -> ApiKey | None:
        """The key's record when `presented` is a live key, else None."""
        m = KEY_RE.match(presented)
        if not m:
            return None
        h = self.r.hgetall(self.key(m.group(1)))
        # Compare even when the id is unknown, so both misses take the same time.
        stored = h.get("hash") or "0" * 64
        ok = hmac.compare_digest(_digest(m.group(2)), stored)
        if not h or not ok or h.get("revoked_at"):
            return None
        return self._decode(h)

    def list(self) -> list[ApiKey]:
        ids = sorted(self.r.smembers(self.index))
        with self.r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(self.key(i))
            rows = pipe.execute()
        return [self._decode(h) for h in rows if h]

    def revoke(self, key_id: str) -> bool:
        """Revoke at once (the record stays, for the audit trail). False when unknown."""
        if not self.r.exists(self.key(key_id)):
            return False
        self.r.hset(self.key(key_id), "revoked_at", f"{time.time():.6f}")
        return True


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tricklab keys", description="Manage API keys (in Redis).")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    c = sub.add_parser("create", help="create a key; it is printed once and stored only hashed")
    c.add_argument("name")
    c.add_argument("--tenant", help="the tenant the key acts for (default: NAME)")
    for f in LIMIT_FIELDS:
        c.add_argument(
            "--" + f.replace("_", "-"),
            type=float if f == "rate_limit_per_s" else int,
            help=f"override settings.{f} for this key",
        )
    c.add_argument("--json", action="store_true", help="print {id, key, tenant} as JSON")
    sub.add_parser("list", help="list keys (never their secrets)")
    r = sub.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("id")
    return p


def stack_target(settings: Any) -> tuple[str, str]:
    """(Redis URL, key prefix) to write keys to: the settings' when the environment or .env
    names a Redis, else those of the stack `tricklab up` runs in this checkout
    (var/up.json), else the settings' defaults."""
    from tricklab.procs import find_stack

    given = settings.model_fields_set
    stack = None if "redis_url" in given else find_stack()
    if not stack:
        return settings.redis_url, settings.key_prefix
    prefix = settings.key_prefix if "key_prefix" in given else stack.get("key_prefix") or "tl"
    print(
        f"tricklab keys: using the Redis of the `tricklab up` running here (pid {stack['pid']}): "
        f"{stack['redis_url']} (from {stack['stack_file']}; set REDIS_URL to choose another)",
        file=sys.stderr,
    )
    return stack["redis_url"], prefix


def main(argv: list[str] | None = None) -> int:
    from tricklab.server.connection import connect
    from tricklab.settings import get_settings

    args = _parser().parse_args(argv)
    settings = get_settings()
    redis_url, prefix = stack_target(settings)
    ring = KeyRing(connect(redis_url), prefix)
    try:
        if args.cmd == "create":
            limits = {f: getattr(args, f) for f in LIMIT_FIELDS if getattr(args, f) is not None}
            try:
                full, rec = ring.create(args.name, args.tenant, limits)
            except ValueError as e:
                print(f"tricklab keys: {e}", file=sys.stderr)
                return 2
            if args.json:
                print(json.dumps({"id": rec.id, "key": full, "tenant": rec.tenant}))
            else:
                print(full)
                print(
                    f"key {rec.id} for tenant '{rec.tenant}': this is the only time it is shown; "
                    "send it as 'Authorization: Bearer <key>' (or set TRICKLAB_API_KEY)",
                    file=sys.stderr,
                )
            return 0
        if args.cmd == "list":
            for k in ring.list():
                state = "revoked" if k.revoked_at else "active"
                lim = " ".join(f"{a}={b}" for a, b in k.limits.items())
                print(f"{k.id}  {state:7}  tenant={k.tenant}  name={k.name}  {lim}".rstrip())
            return 0
        if ring.revoke(args.id):
            print(f"revoked {args.id}")
            return 0
        print(f"tricklab keys: no key with id '{args.id}'", file=sys.stderr)
        return 1
    except redis.RedisError as e:
        print(f"tricklab keys: Redis at {redis_url} is unreachable: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
