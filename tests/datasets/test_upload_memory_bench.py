"""bench/upload_memory.py runs (small) in every --format and prints figures within the targets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import ROOT


@pytest.mark.parametrize(
    ("fmt", "size_mib", "dtype"),
    [("npz", 48, "uint8"), ("csv", 24, "float32"), ("parquet", 24, "float32"), ("zip", 8, "uint8")],
)
def test_upload_memory_bench_small(fmt, size_mib, dtype):
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "upload_memory.py"), "--size-mib", str(size_mib),
         "--format", fmt],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "API peak RSS growth:" in r.stdout and "stored / native bytes:" in r.stdout
    fig = json.loads(r.stdout.strip().splitlines()[-1])
    assert fig["format"] == fmt and fig["size_mib"] > 0.9 * size_mib and fig["dtype"] == dtype
    assert 0 <= fig["peak_growth_mib"] <= 64, fig
    assert 1.0 <= fig["stored_over_native"] <= 1.05, fig
    assert fig["baseline_rss_mib"] > 10  # a real process was measured
