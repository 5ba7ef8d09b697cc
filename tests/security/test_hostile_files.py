"""Hostile uploads over HTTP: each is a 4xx naming the problem; nothing stored, nothing run."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, assert_error

from tests.security.conftest import MAX_UPLOAD

pytestmark = pytest.mark.service


class Evil:
    """Unpickling this creates (opens for writing) the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def npz(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
    return buf.getvalue()


def good_arrays(n: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x": rng.normal(size=(n, 4)).astype(np.float32), "y": np.arange(n) % 3}


def good_npz(**over: np.ndarray) -> bytes:
    arrays = {**good_arrays(), **over}
    return npz({k: npy(v) for k, v in arrays.items()})


def sized(data: bytes, declared: int) -> bytes:
    """Rewrite the one member's declared uncompressed size (local header + central directory)."""
    b = bytearray(data)
    lh = b.index(b"PK\x03\x04")
    b[lh + 22 : lh + 26] = struct.pack("<I", declared)
    cd = b.index(b"PK\x01\x02")
    b[cd + 24 : cd + 28] = struct.pack("<I", declared)
    return bytes(b)


def bomb(declared: int) -> bytes:
    """x.npy: a valid header and 8 MiB of zeros, deflated to a few KB, with a declared size."""
    x = npy(np.zeros((2**21, 1), dtype=np.float32))
    return sized(npz({"x": x}), declared)


def snapshot(api) -> tuple[set, set]:
    ds_dir = api.artifact_dir / "datasets"
    files = set(os.listdir(ds_dir)) if ds_dir.exists() else set()
    keys = set(api.redis().scan_iter(match="tl:ds:*", count=1000))
    keys |= set(api.redis().scan_iter(match="tl:t:*:datasets", count=1000))
    return files, keys


def cases(marker: Path) -> list[tuple[str, str, bytes, int, str]]:
    """(id, filename, bytes, status, words the message must contain)."""
    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = Evil(str(marker)), Evil(str(marker))
    n = 40
    nan_x = good_arrays()["x"].copy()
    nan_x[3, 1] = np.nan
    inf_x = good_arrays()["x"].copy()
    inf_x[5, 0] = np.inf
    valid = good_npz()
    csv_text = "f1,f2,label\n" + "".join(f"{i * 0.1:.1f},{i},{i % 2}\n" for i in range(20))
    csv_text = csv_text.replace("1.2,12,", "abc,12,")
    return [
        ("pickle", "evil.npz", npz({"x": npy(evil), "y": npy(np.arange(2))}), 422, "pickle"),
        (
            "raw-pickle",
            "evil.npz",
            __import__("pickle").dumps(Evil(str(marker))),
            422,
            "zip",
        ),
        (
            "object-dtype",
            "obj.npz",
            npz({"x": npy(np.array([[1, "a"]] * n, dtype=object)), "y": npy(np.arange(n) % 2)}),
            422,
            "object",
        ),
        ("nan", "nan.npz", good_npz(x=nan_x), 422, "nan"),
        ("inf", "inf.npz", good_npz(x=inf_x), 422, "inf"),
        ("mismatched", "mm.npz", good_npz(y=np.arange(n - 1) % 3), 422, "39"),
        ("negative-label", "neg.npz", good_npz(y=np.arange(n) % 3 - 1), 422, "label"),
        ("huge-label", "big.npz", good_npz(y=np.full(n, 10**6)), 422, "0..999"),
        ("float-label", "fl.npz", good_npz(y=np.arange(n) + 0.5), 422, "integer"),
        ("zip-bomb-declared", "bomb.npz", bomb(600 * 2**20), 422, "inflates"),
        ("zip-bomb-lying", "bomb.npz", bomb(4096), 422, "corrupt"),
        ("extra-member", "x.npz", npz({"x": npy(np.zeros(3)), "evil": b"x"}), 422, "unexpected"),
        ("truncated", "trunc.npz", valid[: len(valid) // 2], 422, "zip"),
        ("truncated-member", "trunc.npz", npz({"x": npy(np.zeros((n, 4)))[:-50]}), 422, "x"),
        ("csv-text", "text.csv", csv_text.encode(), 422, "abc"),
        ("not-a-dataset", "run.sh", b"#!/bin/sh\ntouch /tmp/pwned\n", 422, ".npz"),
        ("too-large", "big.npz", b"\0" * (MAX_UPLOAD + 1), 413, "limit"),
    ]


def test_hostile_uploads_are_refused_and_nothing_is_kept(open_api, tmp_path):
    marker = tmp_path / "unpickled-marker"
    before = snapshot(open_api)
    failures = []
    with open_api.client() as c:
        for case_id, filename, data, status, words in cases(marker):
            resp = c.post("/datasets", files={"file": (filename, data, "application/octet-stream")})
            try:
                err = assert_error(resp, status)
                text = (err["message"] + str(err["details"])).lower()
                assert words.lower() in text, f"{words!r} not in {text!r}"
            except AssertionError as e:
                failures.append(f"{case_id}: {resp.status_code} {resp.text[:300]} ({e})")
            assert not marker.exists(), f"{case_id}: the pickle was loaded"
            assert snapshot(open_api) == before, f"{case_id}: something was stored"
        # the API is still fine afterwards
        assert c.get("/healthz").status_code == 200
    assert not failures, "\n".join(failures)


def test_no_pickle_loading_in_worker_or_tricks():
    """Workers load checkpoints with weights_only=True and datasets with allow_pickle=False."""
    out = subprocess.run(
        ["grep", "-rnE", r"torch\.load\(|np\.load\(|numpy\.load\(|pickle\.loads?\(",
         "worker", "tricks", "tricklab", "api"],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        if "torch.load(" in line:
            assert "weights_only=True" in line, line
        elif "np.load(" in line or "numpy.load(" in line:
            assert "allow_pickle=False" in line, line
        else:
            pytest.fail(f"pickle load in service code: {line}")
