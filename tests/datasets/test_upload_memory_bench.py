"""bench/upload_memory.py runs (small) and prints its figures within the targets."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT


def test_upload_memory_bench_small():
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "upload_memory.py"), "--size-mib", "48"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "API peak RSS growth:" in r.stdout and "stored / native bytes:" in r.stdout
    fig = json.loads(r.stdout.strip().splitlines()[-1])
    assert fig["size_mib"] > 40 and fig["dtype"] == "uint8"
    assert 0 <= fig["peak_growth_mib"] <= 64, fig
    assert 1.0 <= fig["stored_over_native"] <= 1.05, fig
    assert fig["baseline_rss_mib"] > 10  # a real process was measured
