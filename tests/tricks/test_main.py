"""`python -m tricks run` (tricks/__main__.py): a spec file in, progress lines and curves out;
a bad spec exits 2 naming the field."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cli_runs_a_spec_and_writes_curves(tmp_path):
    spec = {"data": {"dataset": "digits"}, "model": {"hidden": [32]}, "training": {"epochs": 2}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "curves.json"
    p = subprocess.run(
        [sys.executable, "-m", "tricks", "run", str(tmp_path / "spec.json"), "--out", str(out)]
        + ["--device", "cpu"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("epoch")]
    assert len(lines) == 2
    for word in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_ece"):
        assert f" {word} " in lines[0]
    curves = json.loads(out.read_text())
    assert curves["status"] == "succeeded" and curves["best"]["val_acc"] > 0.5
    assert len(curves["history"]["val_acc"]["step"]) == 2

    (tmp_path / "bad.yaml").write_text("data: {dataset: digits}\noptimizer: {lr: -1}\n")
    p = subprocess.run(
        [sys.executable, "-m", "tricks", "run", str(tmp_path / "bad.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert p.returncode == 2
    assert re.search(r"^optimizer\.lr: ", p.stderr, re.M), p.stderr
