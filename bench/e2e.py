"""End to end: a ~10 s job through the service vs `python -m tricks run` on the same spec.

Service: POST /jobs → succeeded (queueing, claim, data, training, model save, finish).
Direct: the wall time of the `python -m tricks run` process (including `import torch`,
which the service's worker has paid at startup), and its training time alone.

    python bench/e2e.py [--epochs 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, Stack  # noqa: E402


def spec(epochs: int) -> dict:
    return {
        "name": "e2e bench",
        "data": {"dataset": "digits"},
        "model": {"arch": "mlp", "hidden": [256, 128]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"warmup": {"epochs": 2}, "decay": {"kind": "cosine"}},
        "regularization": {"label_smoothing": 0.1, "mixup": {"alpha": 0.2}},
        "training": {"epochs": epochs, "batch_size": 32, "seed": 0, "device": "cpu"},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--epochs", type=int, default=300, help="300 epochs ≈ a 10 s job on a 2-core CPU"
    )
    args = p.parse_args()
    s = spec(args.epochs)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(s))
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tricks", "run", str(path), "--out", str(Path(tmp) / "o.json")],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        direct = time.perf_counter() - t0

    with Stack() as st, httpx.Client(base_url=st.api_url, timeout=30) as c:
        t0 = time.perf_counter()
        job = c.post("/jobs", json=s).json()
        while (j := c.get(f"/jobs/{job['id']}").json())["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            time.sleep(0.05)
        service = time.perf_counter() - t0
        assert j["status"] == "succeeded", j
        train_s = (j.get("result") or {}).get("duration_s")

    print(f"spec: digits, MLP 256-128, {args.epochs} epochs, batch 32, CPU")
    print(f"  python -m tricks run (process wall)  {direct:6.2f} s")
    print(
        f"  service POST -> succeeded            {service:6.2f} s   (worker's job time {train_s} s)"
    )
    print(f"  ratio service / direct               {service / direct:6.2f}")


if __name__ == "__main__":
    main()
